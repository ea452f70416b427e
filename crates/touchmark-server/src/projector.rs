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
//! series it keeps in memory start again empty after a restart, but drift's: each order's is
//! read again from the store's last [`DRIFT_LOOKBACK`] when the order is first judged.
//!
//! Drift keeps, per order, line and measurement, only the last values the rule looks at, and
//! reads only the measurements stored since its last read (by attempt id, in every order at
//! once), so judging an order costs the same at its millionth unit as at its hundredth.

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
use touchmark_store::{MeasurementSample, Store, Window};

/// How often the projector looks for new entries.
pub const POLL: Duration = Duration::from_millis(200);

/// How often at most an order's measurements are read for drift.
pub const DRIFT_EVERY: Duration = Duration::from_secs(2);

/// How far back drift looks: an order's series is read from this far back when the order is
/// first judged, and a value older than this is dropped from its series.
const DRIFT_LOOKBACK: time::Duration = time::Duration::hours(1);

/// How long an attempt may take to commit once its id is taken. Ids are handed out before
/// commit, and on PostgreSQL transactions of several replicas commit in any order: an attempt
/// may become visible after one with a higher id was read. So each read starts again from the
/// highest id read at least this long ago, and skips the attempts it applied already; a value
/// found late joins its series last. (The database ends a transaction left idle for 2 s, and
/// waits 1 s at most for a lock.)
const DRIFT_SETTLE: Duration = Duration::from_secs(10);

/// Measurement rows read per page.
const DRIFT_PAGE: u32 = 5000;

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
    drift: Drift,
}

/// One measurement's last passing values on one line of one order, oldest first, each with
/// its attempt's time, and the limits of the last.
#[derive(Debug, Default)]
struct Series {
    values: VecDeque<(OffsetDateTime, f64)>,
    low: Option<f64>,
    high: Option<f64>,
}

/// Drift's series, and where its reads of the stored measurements stand.
#[derive(Debug, Default)]
struct Drift {
    /// Per order, per (station, step, measurement). An order is here once its series were read
    /// from the store's last [`DRIFT_LOOKBACK`]; from then on, [`Projector::tail`] feeds them.
    series: HashMap<OrderId, BTreeMap<(String, String, String), Series>>,
    /// The highest attempt id read, once some order's series were read.
    tail: Option<u64>,
    /// Where the next read starts: [`Drift::tail`] as it was [`DRIFT_SETTLE`] ago.
    floor: u64,
    /// [`Drift::tail`] after each read, with when, for [`Drift::floor`].
    marks: VecDeque<(tokio::time::Instant, u64)>,
    /// The attempts above [`Drift::floor`] already applied, which a read skips.
    applied: HashSet<u64>,
    /// Per order, the last attempt of its values read from its last [`DRIFT_LOOKBACK`], while
    /// above [`Drift::floor`]: a read skips this order's attempts up to it.
    seeded: HashMap<OrderId, u64>,
    /// Whether a read followed the first series read (see [`Projector::tail`]).
    caught_up: bool,
}

impl Drift {
    /// Appends a passing value to its series, keeping the last `keep`.
    fn push(&mut self, order: &OrderId, sample: MeasurementSample, keep: usize) {
        // A failed value is a failed test, which the yield and the Pareto report; drift
        // watches the passing population move.
        if !sample.passed {
            return;
        }
        let Some(lines) = self.series.get_mut(order) else {
            return;
        };
        let series = lines
            .entry((sample.station, sample.step, sample.name))
            .or_default();
        series.values.push_back((sample.at, sample.value));
        series.low = sample.low;
        series.high = sample.high;
        while series.values.len() > keep {
            series.values.pop_front();
        }
    }
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

    /// Judges drift for the orders with attempts, at most every [`DRIFT_EVERY`] per order: reads
    /// the series of the orders due that it has not read yet, then the measurements stored
    /// since its last read, and judges each due order's series.
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
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let keep = self.config.drift_window.max(4);
        let since = self.clock.now() - DRIFT_LOOKBACK;
        self.seed(&mut st.drift, &due, since, keep).await?;
        self.tail(&mut st.drift, now, keep).await?;
        let mut raises = Vec::new();
        for order in due {
            st.dirty.remove(&order);
            st.drift_checked.insert(order.clone(), now);
            let Some(lines) = st.drift.series.get_mut(&order) else {
                continue;
            };
            for series in lines.values_mut() {
                while series.values.front().is_some_and(|(at, _)| *at < since) {
                    series.values.pop_front();
                }
            }
            lines.retain(|_, series| !series.values.is_empty());
            for ((station, step, name), series) in lines.iter() {
                let Ok(station) = StationId::parse(station) else {
                    continue;
                };
                let values: Vec<f64> = series.values.iter().map(|(_, v)| *v).collect();
                raises.extend(alerts::drift(
                    &order,
                    &station,
                    &format!("{step}/{name}"),
                    &values,
                    series.low,
                    series.high,
                    &self.config,
                ));
            }
        }
        Ok(raises)
    }

    /// Reads the series of the orders in `due` not read yet, from the store's values since
    /// `since`.
    async fn seed(
        &self,
        drift: &mut Drift,
        due: &[OrderId],
        since: OffsetDateTime,
        keep: usize,
    ) -> Result<(), touchmark_store::StoreError> {
        let window = Window {
            from: Some(since),
            until: None,
        };
        let mut first_tail: Option<u64> = None;
        for order in due {
            if drift.series.contains_key(order) {
                continue;
            }
            // By step and name, then in the order stored: each series oldest first.
            let samples = self.store.order_measurements(order, window).await?;
            let last = samples.iter().map(|s| s.attempt).max();
            if drift.tail.is_none() {
                // Until some order has values there is no attempt to tail from: an order
                // without any is read again the next time it is due.
                let Some(last) = last else {
                    continue;
                };
                // Values of the orders read before this one, stored since, have higher ids
                // than their own last (SQLite commits in id order): tail from the lowest.
                first_tail = Some(first_tail.map_or(last, |t| t.min(last)));
            }
            if let Some(last) = last {
                // The tail may read these again: it skips this order's up to here.
                drift.seeded.insert(order.clone(), last);
            }
            drift.series.insert(order.clone(), BTreeMap::new());
            for sample in samples {
                drift.push(order, sample, keep);
            }
        }
        if let Some(tail) = first_tail {
            drift.tail = Some(tail);
            drift.floor = tail;
            drift.caught_up = false;
        }
        Ok(())
    }

    /// Reads the measurements stored after the floor, in pages, and appends those of attempts
    /// not applied yet to the series of the orders read already (another order's are in the
    /// store's values read when it is first due). Then moves the floor.
    async fn tail(
        &self,
        drift: &mut Drift,
        now: tokio::time::Instant,
        keep: usize,
    ) -> Result<(), touchmark_store::StoreError> {
        let Some(mut tail) = drift.tail else {
            return Ok(());
        };
        let mut after = drift.floor;
        let mut read = HashSet::new();
        loop {
            let page = self.store.measurements_after(after, DRIFT_PAGE).await?;
            let Some(last) = page.last().map(|m| m.sample.attempt) else {
                break;
            };
            let full = page.len() >= DRIFT_PAGE as usize;
            for m in page {
                let attempt = m.sample.attempt;
                if drift.applied.contains(&attempt) {
                    continue;
                }
                if drift.caught_up {
                    read.insert(attempt);
                }
                let Ok(order) = OrderId::parse(&m.order) else {
                    continue;
                };
                if drift.seeded.get(&order).is_some_and(|s| attempt <= *s) {
                    continue;
                }
                drift.push(&order, m.sample, keep);
            }
            after = last;
            tail = tail.max(last);
            if !full {
                break;
            }
        }
        drift.tail = Some(tail);
        if drift.caught_up {
            drift.applied.extend(read);
            drift.marks.push_back((now, tail));
            while let Some(&(at, mark)) = drift.marks.front() {
                if now.duration_since(at) < DRIFT_SETTLE {
                    break;
                }
                drift.floor = drift.floor.max(mark);
                drift.marks.pop_front();
            }
        } else {
            // The first read after the series were first read catches up from the oldest of
            // their last values: it is not read again (an attempt committing out of id order
            // at that moment, on PostgreSQL, can be missed once).
            drift.floor = tail;
            drift.marks.clear();
            drift.caught_up = true;
        }
        let floor = drift.floor;
        drift.applied.retain(|a| *a > floor);
        drift.seeded.retain(|_, s| *s > floor);
        Ok(())
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
