//! The read side's projector (design.md §9): it tails the committed log, as the sequencer
//! does, folds each event into what the oversight rules need, and raises their alerts through
//! the authority. It also tells the dashboard's live streams that something changed.
//!
//! What it folds, per event (`touchmark_core::policy::alerts`):
//! - every `unit.refused` and `station.refusal_flood`: [`alerts::from_event`] (clones, beyond
//!   quota, outside the window, stations without standing);
//! - `unit.issued` and `unit.test_failed`: each unit's first attempt into its order's
//!   first-pass series ([`alerts::fpy_low`]), and each station's units per minute
//!   ([`alerts::station_rate`], judged as each minute ends);
//! - the orders that had attempts: their measurements' last values, read from the stored test
//!   records, at most every [`DRIFT_EVERY`] ([`alerts::drift`]).
//!
//! Its position is saved in the store (cursor `alerts`) after each batch; the store keeps one
//! alert per key open, so an event folded twice after a crash raises nothing new. It runs only
//! in the process that holds the sequencer lease, so replicas do not fold the log twice. The
//! series it keeps in memory start again empty after a restart.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Mutex, broadcast};
use touchmark_authority::Authority;
use touchmark_authority::log::Log;
use touchmark_core::event::{Event, EventBody};
use touchmark_core::policy::alerts::{self, AlertConfig, Raise};
use touchmark_core::{Clock, OrderId, StationId};
use touchmark_store::{Store, Window};

/// How often the projector looks for new entries.
pub const POLL: Duration = Duration::from_millis(200);

/// How often at most an order's measurements are read for drift.
pub const DRIFT_EVERY: Duration = Duration::from_secs(2);

/// How far back drift looks.
const DRIFT_LOOKBACK: time::Duration = time::Duration::hours(1);

/// The cursor's name in the store.
const CURSOR: &str = "alerts";

/// Events read per batch.
const BATCH: u32 = 1000;

/// Minutes of history kept per station.
const RATE_HISTORY: usize = 60;

#[derive(Debug, Default)]
struct StationMinutes {
    /// Units per minute of the minutes ended, oldest first.
    history: VecDeque<u64>,
    /// The minute being counted (Unix minutes) and its count.
    current: Option<(i64, u64)>,
}

#[derive(Debug, Default)]
struct State {
    loaded: bool,
    cursor: u64,
    /// Units seen, per order: a unit's first attempt is the first time it is seen.
    seen: HashSet<(OrderId, String)>,
    first_attempts: HashMap<OrderId, VecDeque<bool>>,
    stations: HashMap<StationId, StationMinutes>,
    /// Per station, attempts and passes per minute of the last hour, for the dashboard.
    live: HashMap<StationId, VecDeque<(i64, u64, u64)>>,
    /// Orders with attempts since their drift was last judged, and when it was.
    dirty: HashSet<OrderId>,
    drift_checked: HashMap<OrderId, tokio::time::Instant>,
}

/// Tails the log and raises the oversight rules' alerts.
#[derive(Debug)]
pub struct Projector {
    authority: Arc<Authority>,
    store: Arc<dyn Store>,
    log: Arc<Log>,
    clock: Arc<dyn Clock>,
    config: AlertConfig,
    state: Mutex<State>,
    live: broadcast::Sender<Arc<str>>,
    latest: std::sync::RwLock<Option<Arc<str>>>,
}

impl Projector {
    /// A projector raising alerts through `authority` with the rules' `config`.
    pub fn new(
        authority: Arc<Authority>,
        store: Arc<dyn Store>,
        log: Arc<Log>,
        clock: Arc<dyn Clock>,
        config: AlertConfig,
    ) -> Self {
        let (live, _) = broadcast::channel(64);
        Self {
            authority,
            store,
            log,
            clock,
            config,
            state: Mutex::default(),
            live,
            latest: std::sync::RwLock::default(),
        }
    }

    /// The latest live snapshot (JSON), if one was made, and a receiver of the next ones: the
    /// dashboard's streams. A snapshot is made after each batch that folded something.
    pub fn subscribe(&self) -> (Option<Arc<str>>, broadcast::Receiver<Arc<str>>) {
        let rx = self.live.subscribe();
        let latest = self
            .latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (latest, rx)
    }

    /// Folds every committed entry not folded yet, raises what the rules see, and judges drift
    /// for the orders due. Returns the alerts raised.
    ///
    /// # Errors
    /// The store's or the authority's.
    pub async fn step(&self) -> Result<usize, touchmark_authority::AuthorityError> {
        self.fold_and_raise(false).await
    }

    /// [`Projector::step`], judging drift for every order with attempts, however recently it
    /// was judged: what a caller that drives the projector (a test, the demo) wants.
    ///
    /// # Errors
    /// The store's or the authority's.
    pub async fn catch_up(&self) -> Result<usize, touchmark_authority::AuthorityError> {
        self.fold_and_raise(true).await
    }

    async fn fold_and_raise(
        &self,
        force: bool,
    ) -> Result<usize, touchmark_authority::AuthorityError> {
        let mut st = self.state.lock().await;
        if !st.loaded {
            st.cursor = self.store.cursor(CURSOR).await?;
            st.loaded = true;
        }
        let mut raises = Vec::new();
        let start = st.cursor;
        loop {
            let entries = self.store.events(st.cursor, BATCH).await?;
            let Some(last) = entries.last().map(|e| e.index) else {
                break;
            };
            for entry in &entries {
                match Event::from_canonical(&entry.bytes) {
                    Ok(event) => self.fold(&mut st, entry.index, &event, &mut raises),
                    Err(e) => {
                        tracing::warn!(index = entry.index, error = %e, "an entry the projector cannot read")
                    }
                }
            }
            st.cursor = last + 1;
            if entries.len() < BATCH as usize {
                break;
            }
        }
        raises.extend(self.drift(&mut st, force).await?);
        let mut raised = 0;
        for raise in raises {
            if self.authority.raise_alert(raise).await?.is_some() {
                raised += 1;
            }
        }
        let first = self
            .latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none();
        if st.cursor != start || raised > 0 || first {
            if st.cursor != start {
                self.store.save_cursor(CURSOR, st.cursor).await?;
            }
            let snapshot: Arc<str> = self.snapshot(&st).await?.into();
            *self.latest.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&snapshot));
            let _ = self.live.send(snapshot);
        }
        Ok(raised)
    }

    fn fold(&self, st: &mut State, index: u64, event: &Event, raises: &mut Vec<Raise>) {
        raises.extend(alerts::from_event(index, event));
        let (order, station, serial, passed) = match &event.body {
            EventBody::UnitIssued {
                order,
                station,
                serial,
                ..
            } => (order, station, serial, true),
            EventBody::TestFailed {
                order,
                station,
                serial,
                ..
            } => (order, station, serial, false),
            _ => return,
        };
        if st.seen.insert((order.clone(), serial.to_string())) {
            let series = st.first_attempts.entry(order.clone()).or_default();
            series.push_back(passed);
            while series.len() > self.config.fpy_window.max(1) {
                series.pop_front();
            }
            let series: Vec<bool> = series.iter().copied().collect();
            raises.extend(alerts::fpy_low(order, &series, &self.config));
        }
        st.dirty.insert(order.clone());
        let minute = event.at.unix_timestamp().div_euclid(60);
        let live = st.live.entry(station.clone()).or_default();
        match live.back_mut() {
            Some((m, attempts, passes)) if *m == minute => {
                *attempts += 1;
                *passes += u64::from(passed);
            }
            _ => live.push_back((minute, 1, u64::from(passed))),
        }
        while live.front().is_some_and(|(m, _, _)| *m <= minute - 60) {
            live.pop_front();
        }
        let minutes = st.stations.entry(station.clone()).or_default();
        match minutes.current {
            Some((m, ref mut n)) if m == minute => *n += 1,
            Some((m, n)) if m < minute => {
                // The minute that just ended, against the ones before it.
                minutes.history.push_back(n);
                while minutes.history.len() > RATE_HISTORY {
                    minutes.history.pop_front();
                }
                let series: Vec<u64> = minutes.history.iter().copied().collect();
                raises.extend(alerts::station_rate(station, &series, &self.config));
                // Minutes without a unit count as zeros.
                for _ in 0..(minute - m - 1).min(RATE_HISTORY as i64) {
                    minutes.history.push_back(0);
                }
                while minutes.history.len() > RATE_HISTORY {
                    minutes.history.pop_front();
                }
                minutes.current = Some((minute, 1));
            }
            // An entry of an earlier minute than the one counted (clocks of replicas): count
            // it in the current one.
            Some((_, ref mut n)) => *n += 1,
            None => minutes.current = Some((minute, 1)),
        }
    }

    /// Judges drift for the orders with attempts, at most every [`DRIFT_EVERY`] per order.
    async fn drift(
        &self,
        st: &mut State,
        force: bool,
    ) -> Result<Vec<Raise>, touchmark_store::StoreError> {
        let now = tokio::time::Instant::now();
        let due: Vec<OrderId> = st
            .dirty
            .iter()
            .filter(|o| {
                force
                    || st
                        .drift_checked
                        .get(*o)
                        .is_none_or(|at| now.duration_since(*at) >= DRIFT_EVERY)
            })
            .cloned()
            .collect();
        let mut raises = Vec::new();
        for order in due {
            st.dirty.remove(&order);
            st.drift_checked.insert(order.clone(), now);
            let window = Window {
                from: Some(self.clock.now() - DRIFT_LOOKBACK),
                until: None,
            };
            let samples = self.store.order_measurements(&order, window).await?;
            // One series per line (station) and measurement, in the order stored.
            type Series = (Vec<f64>, Option<f64>, Option<f64>);
            let mut series: BTreeMap<(String, String, String), Series> = BTreeMap::new();
            // A failed value is a failed test, which the yield and the Pareto report; drift
            // watches the passing population move.
            for s in samples.into_iter().filter(|s| s.passed) {
                let entry = series
                    .entry((s.station, s.step, s.name))
                    .or_insert_with(|| (Vec::new(), None, None));
                entry.0.push(s.value);
                entry.1 = s.low;
                entry.2 = s.high;
            }
            for ((station, step, name), (values, low, high)) in series {
                let Ok(station) = StationId::parse(&station) else {
                    continue;
                };
                raises.extend(alerts::drift(
                    &order,
                    &station,
                    &format!("{step}/{name}"),
                    &values,
                    low,
                    high,
                    &self.config,
                ));
            }
        }
        Ok(raises)
    }

    /// The dashboard's live snapshot: the log's size, the orders with their quotas, each
    /// station's attempts and passes in the last hour, and how many alerts are open.
    async fn snapshot(&self, st: &State) -> Result<String, touchmark_store::StoreError> {
        let orders: Vec<serde_json::Value> = self
            .store
            .orders()
            .await?
            .into_iter()
            .map(|o| {
                serde_json::json!({
                    "id": o.id.as_str(),
                    "product": o.product.as_str(),
                    "factory": o.factory.as_str(),
                    "state": o.state.as_str(),
                    "quota": o.quota,
                    "issued": o.issued,
                    "remaining": o.remaining(),
                })
            })
            .collect();
        let now_minute = self.clock.now().unix_timestamp().div_euclid(60);
        let mut stations: Vec<serde_json::Value> = st
            .live
            .iter()
            .map(|(id, minutes)| {
                let recent = minutes.iter().filter(|(m, _, _)| *m > now_minute - 60);
                let (attempts, passes) =
                    recent.fold((0u64, 0u64), |(a, p), (_, ma, mp)| (a + ma, p + mp));
                serde_json::json!({
                    "id": id.as_str(),
                    "attempts_last_hour": attempts,
                    "passed_last_hour": passes,
                    "yield_last_hour": if attempts == 0 { None } else { Some(passes as f64 / attempts as f64) },
                })
            })
            .collect();
        stations.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        let open_alerts = self.store.alerts(true).await?.len();
        let issued: u64 = orders.iter().filter_map(|o| o["issued"].as_u64()).sum();
        Ok(serde_json::json!({
            "at": touchmark_core::clock::format_timestamp(self.clock.now()),
            "log_size": self.log.latest().map_or(0, |l| l.size()),
            "entries_folded": st.cursor,
            "units_issued": issued,
            "orders": orders,
            "stations": stations,
            "open_alerts": open_alerts,
        })
        .to_string())
    }

    /// Runs [`Projector::step`] every [`POLL`] while this process holds the sequencer lease,
    /// until aborted.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !self.log.is_sequencer() {
                continue;
            }
            if let Err(e) = self.step().await {
                tracing::warn!(error = %e, "the oversight projector failed a step");
            }
        }
    }

    /// The time by the projector's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}
