//! Builders for domain values and their events, a ready-made order with enrolled stations, and
//! the checks every test ends with.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{
    IssueOutcome, IssueRequest, IssuedUnit, NewCertificate, OrderCounts, Rejection, Rule,
    SequencerLease, Store, StoreError, StoredEvent, TestAttempt,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use touchmark_core::Clock;
use touchmark_core::clock::ManualClock;
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::{Factory, Product, Station, StationStatus, UnitStatus};
use touchmark_core::event::{Actor, Event, EventBody, Leaf, Logged, Sha256Hash};
use touchmark_core::order::{Order, OrderState};
use touchmark_core::policy;
use touchmark_core::policy::issue::{Attempt, Issuance};
use touchmark_core::policy::order::OrderChange;
use touchmark_core::policy::station::StationChange;
use touchmark_core::testrecord::{RecordFormat, Verdict};
use touchmark_core::{FactoryId, OrderId, ProductId, Serial, SerialRule, StationId};

/// The suite's epoch: every timestamp is whole seconds after it, so that it survives storage.
pub const T0: OffsetDateTime = datetime!(2026-03-01 08:00:00 UTC);

/// `T0 + secs`.
pub fn at(secs: i64) -> OffsetDateTime {
    T0 + Duration::seconds(secs)
}

/// A clock stopped at `now`, as the authority's clock reads inside a store's transaction.
pub fn clock_at(now: OffsetDateTime) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(now))
}

/// The clock the kit's requests are decided by: stopped at their attempt's time, `at(100)`.
pub fn clock() -> Arc<dyn Clock> {
    clock_at(at(100))
}

/// A product id; panics on a bad one (a test bug).
pub fn product_id(id: &str) -> ProductId {
    ProductId::parse(id).unwrap()
}

/// A factory id; panics on a bad one.
pub fn factory_id(id: &str) -> FactoryId {
    FactoryId::parse(id).unwrap()
}

/// A station id; panics on a bad one.
pub fn station_id(id: &str) -> StationId {
    StationId::parse(id).unwrap()
}

/// An order id; panics on a bad one.
pub fn order_id(id: &str) -> OrderId {
    OrderId::parse(id).unwrap()
}

/// A serial; panics on a bad one.
pub fn serial(text: &str) -> Serial {
    Serial::parse(text).unwrap()
}

/// `store.issue(request)` as a station sends it: again while the store answers
/// [`StoreError::Unavailable`] (a lock or a connection it waited too long for), which
/// idempotent issuance (I2) makes safe. Panics on any other error, or after 100 tries.
pub async fn issue_as_station(store: &dyn Store, request: IssueRequest) -> IssueOutcome {
    for _ in 0..100 {
        match store.issue(request.clone()).await {
            Ok(outcome) => return outcome,
            Err(StoreError::Unavailable(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("issue: {e}"),
        }
    }
    panic!("the store stayed unavailable for 100 tries")
}

/// The SHA-256 of a device key named `name`.
pub fn key(name: &str) -> Sha256Hash {
    Sha256Hash::of(format!("device key {name}").as_bytes())
}

/// The SHA-256 of station `id`'s one-time enrollment token.
pub fn enrollment_token(id: &StationId) -> Sha256Hash {
    Sha256Hash::of(format!("enrollment token of {id}").as_bytes())
}

/// Product `id`, with a fake issuing CA.
pub fn product(id: &str) -> Product {
    Product {
        id: product_id(id),
        name: format!("Product {id}"),
        organization: "Touchmark Test Devices".into(),
        common_name: format!("{id} device"),
        hw_type_oid: "1.3.6.1.4.1.99999.1".into(),
        crl_url: Some("http://crl.example.test/device.crl".into()),
        ocsp_url: None,
        cert_not_after: None,
        issuing_ca_pem: format!(
            "-----BEGIN CERTIFICATE-----\nZHVtbXkgaXNzdWluZyBDQSBvZiB7aWR9\n-----END CERTIFICATE-----\n# {id}\n"
        ),
        created_at: at(0),
        attestation_roots_pem: None,
    }
}

/// The `product.created` event of `p`.
pub fn product_created(p: &Product) -> Event {
    Event::new(
        p.created_at,
        EventBody::ProductCreated {
            product: p.id.clone(),
            organization: p.organization.clone(),
            common_name: p.common_name.clone(),
            issuing_ca_sha256: Some(Sha256Hash::of(p.issuing_ca_pem.as_bytes())),
            attestation_roots: Vec::new(),
            actor: Actor::System,
        },
    )
}

/// Factory `id`.
pub fn factory(id: &str) -> Factory {
    Factory {
        id: factory_id(id),
        name: format!("Factory {id}"),
        created_at: at(1),
    }
}

/// The `factory.created` event of `f`.
pub fn factory_created(f: &Factory) -> Event {
    Event::new(
        f.created_at,
        EventBody::FactoryCreated {
            factory: f.id.clone(),
            actor: Actor::System,
        },
    )
}

/// A pending station whose token expires an hour after `T0`.
pub fn station(id: &str, factory: &FactoryId) -> Station {
    Station {
        id: station_id(id),
        factory: factory.clone(),
        name: format!("Station {id}"),
        status: StationStatus::Pending,
        enrollment_expires_at: at(3600),
        cert_sha256: None,
        created_at: at(2),
    }
}

/// The `station.created` event of `s`.
pub fn station_created(s: &Station) -> Event {
    Event::new(
        s.created_at,
        EventBody::StationCreated {
            station: s.id.clone(),
            factory: s.factory.clone(),
            actor: Actor::System,
        },
    )
}

/// The SHA-256 of station `id`'s mTLS certificate.
pub fn station_cert(id: &StationId) -> Sha256Hash {
    Sha256Hash::of(format!("station certificate of {id}").as_bytes())
}

/// The `station.enrolled` event of `s` at `now`.
pub fn station_enrolled(s: &Station, now: OffsetDateTime) -> Event {
    Event::new(
        now,
        EventBody::StationEnrolled {
            station: s.id.clone(),
            factory: s.factory.clone(),
            cert_sha256: station_cert(&s.id),
            pubkey_sha256: Sha256Hash::of(format!("station key of {}", s.id).as_bytes()),
        },
    )
}

/// A draft order admitting any serial.
pub fn order(id: &str, product: &ProductId, factory: &FactoryId, quota: u64) -> Order {
    Order {
        id: order_id(id),
        product: product.clone(),
        factory: factory.clone(),
        quota,
        issued: 0,
        serial_rule: SerialRule::Any,
        not_before: None,
        not_after: None,
        state: OrderState::Draft,
        created_at: at(3),
    }
}

/// The `order.created` event of `o`.
pub fn order_created(o: &Order) -> Event {
    Event::new(
        o.created_at,
        EventBody::OrderCreated {
            order: o.id.clone(),
            product: o.product.clone(),
            factory: o.factory.clone(),
            quota: o.quota,
            serial_rule: o.serial_rule.to_string(),
            not_before: o.not_before.map(touchmark_core::clock::format_timestamp),
            not_after: o.not_after.map(touchmark_core::clock::format_timestamp),
            actor: Actor::System,
        },
    )
}

/// The rule that moves an order to `to` at `at`, as the authority builds it.
pub fn move_order(to: OrderState, at: OffsetDateTime) -> Rule<Order, OrderChange> {
    Rule::new(move |order| policy::order::transition(order, to, Actor::System, at))
}

/// The rule that sets an order's quota at `at`, as the authority builds it.
pub fn set_quota(quota: u64, at: OffsetDateTime) -> Rule<Order, OrderChange> {
    Rule::new(move |order| policy::order::change_quota(order, quota, Actor::System, at))
}

/// The rule that revokes a station at `at`, as the authority builds it.
pub fn revoke(at: OffsetDateTime) -> Rule<Station, StationChange> {
    Rule::new(move |station| policy::station::revoke(station, Actor::System, at))
}

/// The event of moving `order` to `to` (open, closed or cancelled).
pub fn order_moved(order: &OrderId, to: OrderState, at: OffsetDateTime) -> Event {
    let order = order.clone();
    let actor = Actor::System;
    let body = match to {
        OrderState::Open => EventBody::OrderOpened { order, actor },
        OrderState::Closed => EventBody::OrderClosed { order, actor },
        OrderState::Cancelled => EventBody::OrderCancelled { order, actor },
        OrderState::Draft => panic!("no order moves back to draft"),
    };
    Event::new(at, body)
}

static CERTIFICATES: AtomicU64 = AtomicU64::new(0);

/// A fake device certificate: unique pseudo-random bytes and a unique serial.
pub fn fake_certificate() -> NewCertificate {
    let n = CERTIFICATES.fetch_add(1, Ordering::Relaxed);
    let nonce = std::process::id();
    let mut der = b"0\x82fake certificate ".to_vec();
    let mut block = Sha256Hash::of(format!("{nonce}:{n}").as_bytes());
    for _ in 0..8 {
        der.extend_from_slice(&block.0);
        block = Sha256Hash::of(&block.0);
    }
    NewCertificate {
        serial_hex: format!("{:016x}{}", n, &block.to_hex()[..24]),
        der,
    }
}

/// A unique test record of `serial` with `verdict`.
pub fn attempt(
    station: &StationId,
    serial: &Serial,
    verdict: Verdict,
    at: OffsetDateTime,
) -> TestAttempt {
    let n = CERTIFICATES.fetch_add(1, Ordering::Relaxed);
    let record = format!(
        r#"{{"attempt":{n},"serial":"{serial}","station":"{station}","verdict":"{verdict}"}}"#
    );
    TestAttempt {
        verdict,
        format: RecordFormat::Touchmark,
        sha256: Sha256Hash::of(record.as_bytes()),
        record,
        at,
    }
}

/// A product, a factory, enrolled stations and an open order, all created through the store.
pub struct Kit {
    /// The store the kit made its records in.
    pub store: Arc<dyn Store>,
    /// The product.
    pub product: ProductId,
    /// The factory.
    pub factory: FactoryId,
    /// The enrolled stations.
    pub stations: Vec<StationId>,
    /// The open order.
    pub order: OrderId,
}

impl Kit {
    /// Product `{tag}-p`, factory `{tag}-f`, `stations` enrolled stations `{tag}-s{i}` and the
    /// open order `{tag}-o` with `quota`.
    pub async fn new(store: &Arc<dyn Store>, tag: &str, quota: u64, stations: usize) -> Kit {
        let p = product(&format!("{tag}-p"));
        store
            .create_product(p.clone(), product_created(&p))
            .await
            .unwrap();
        let f = factory(&format!("{tag}-f"));
        store
            .create_factory(f.clone(), factory_created(&f))
            .await
            .unwrap();
        let mut kit = Kit {
            store: Arc::clone(store),
            product: p.id,
            factory: f.id,
            stations: Vec::new(),
            order: order_id(&format!("{tag}-o")),
        };
        for i in 0..stations {
            let s = kit.add_station(&format!("{tag}-s{i}")).await;
            kit.enroll(&s).await;
            kit.stations.push(s.id);
        }
        let order = kit.order.clone();
        kit.add_order(order.as_str(), quota).await;
        kit
    }

    /// Creates a pending station of the kit's factory.
    pub async fn add_station(&self, id: &str) -> Station {
        let s = station(id, &self.factory);
        self.store
            .create_station(s.clone(), enrollment_token(&s.id), station_created(&s))
            .await
            .unwrap();
        s
    }

    /// Enrolls a pending station with its token.
    pub async fn enroll(&self, s: &Station) {
        self.store
            .enroll_station(
                &s.id,
                enrollment_token(&s.id),
                station_cert(&s.id),
                at(10),
                station_enrolled(s, at(10)),
            )
            .await
            .unwrap();
    }

    /// Creates and opens another order of the kit's product and factory.
    pub async fn add_order(&self, id: &str, quota: u64) -> OrderId {
        self.add_order_within(id, quota, None, None).await
    }

    /// The same, accepting units only from `not_before` to `not_after`.
    pub async fn add_order_within(
        &self,
        id: &str,
        quota: u64,
        not_before: Option<OffsetDateTime>,
        not_after: Option<OffsetDateTime>,
    ) -> OrderId {
        let o = Order {
            not_before,
            not_after,
            ..order(id, &self.product, &self.factory, quota)
        };
        self.store
            .create_order(o.clone(), order_created(&o))
            .await
            .unwrap();
        let opened = self
            .store
            .update_order(&o.id, move_order(OrderState::Open, at(4)))
            .await
            .unwrap();
        assert_eq!(opened.state, OrderState::Open);
        o.id
    }

    /// A passing request for `serial` with key `key_name` from station `station`, on the kit's order.
    pub fn request(&self, station: usize, serial_text: &str, key_name: &str) -> IssueRequest {
        self.request_for(&self.order, station, serial_text, key_name)
    }

    /// The same, on `order` (of the kit's product and factory).
    pub fn request_for(
        &self,
        order: &OrderId,
        station: usize,
        serial_text: &str,
        key_name: &str,
    ) -> IssueRequest {
        let test = attempt(
            &self.stations[station],
            &serial(serial_text),
            Verdict::Pass,
            at(99),
        );
        self.request_with(order, station, serial_text, key_name, test, clock())
    }

    /// A request on `order` that carries `test` and is decided by `clock`.
    pub fn request_with(
        &self,
        order: &OrderId,
        station: usize,
        serial_text: &str,
        key_name: &str,
        test: TestAttempt,
        clock: Arc<dyn Clock>,
    ) -> IssueRequest {
        let station = self.stations[station].clone();
        let certificate = fake_certificate();
        let issuance = Issuance {
            attempt: Attempt {
                at: at(100),
                order: order.clone(),
                factory: self.factory.clone(),
                station,
            },
            product: self.product.clone(),
            serial: serial(serial_text),
            pubkey_sha256: key(key_name),
            cert_sha256: Sha256Hash::of(&certificate.der),
            test_sha256: test.sha256,
        };
        IssueRequest::new(issuance, certificate, test, clock)
    }

    /// A failed test of `serial` on the kit's order, to record with `record_rejection`.
    pub fn failed_test(&self, station: usize, serial_text: &str) -> Rejection {
        let station = self.stations[station].clone();
        let serial = serial(serial_text);
        let test = attempt(&station, &serial, Verdict::Fail, at(50));
        Rejection {
            event: Event::new(
                test.at,
                EventBody::TestFailed {
                    order: self.order.clone(),
                    factory: self.factory.clone(),
                    station: station.clone(),
                    serial: serial.clone(),
                    pubkey_sha256: None,
                    test_sha256: test.sha256,
                    reason: ErrorCode::TestFailed,
                },
            ),
            product: Some(self.product.clone()),
            order: self.order.clone(),
            station,
            serial: Some(serial),
            test: Some(test),
            failed_unit: true,
        }
    }

    /// The kit order's counts, from every table that records them.
    pub async fn counts(&self) -> OrderCounts {
        self.store.order_counts(&self.order).await.unwrap()
    }
}

/// The unit of an `Issued` outcome; panics on any other.
pub fn issued(outcome: IssueOutcome) -> IssuedUnit {
    match outcome {
        IssueOutcome::Issued(unit) => unit,
        other => panic!("expected Issued, got {other:?}"),
    }
}

/// The unit of an `AlreadyIssued` outcome; panics on any other.
pub fn already_issued(outcome: IssueOutcome) -> IssuedUnit {
    match outcome {
        IssueOutcome::AlreadyIssued(unit) => unit,
        other => panic!("expected AlreadyIssued, got {other:?}"),
    }
}

/// Counts by code, as `OrderCounts::refusals` holds them (codes never met are absent).
pub fn refusals(codes: &[(ErrorCode, u64)]) -> BTreeMap<String, u64> {
    codes
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(code, n)| (code.as_str().to_owned(), *n))
        .collect()
}

/// Expected counts of an order that only issued and refused.
pub fn counts(issued: u64, failed_tests: u64, codes: &[(ErrorCode, u64)]) -> OrderCounts {
    OrderCounts {
        issued,
        certificates: issued,
        issued_events: issued,
        failed_tests,
        refusals: refusals(codes),
    }
}

/// A unit's state without its attempt count (which grows with every recorded attempt).
pub type UnitState = (
    ProductId,
    Serial,
    OrderId,
    UnitStatus,
    Option<StationId>,
    Option<Sha256Hash>,
);

/// The states of an order's units (see [`UnitState`]).
pub async fn unit_states(store: &Arc<dyn Store>, order: &OrderId) -> Vec<UnitState> {
    store
        .units(order)
        .await
        .unwrap()
        .into_iter()
        .map(|u| {
            (
                u.product,
                u.serial,
                u.order,
                u.status,
                u.station,
                u.cert_sha256,
            )
        })
        .collect()
}

/// Every stored event, in index order.
pub async fn all_events(store: &Arc<dyn Store>) -> Vec<StoredEvent> {
    let mut out: Vec<StoredEvent> = Vec::new();
    loop {
        let page = store.events(out.len() as u64, 1000).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// The event at `index`, parsed.
pub async fn event_at(store: &Arc<dyn Store>, index: u64) -> (StoredEvent, Event) {
    let stored = store
        .events(index, 1)
        .await
        .unwrap()
        .pop()
        .unwrap_or_else(|| panic!("no event at {index}"));
    assert_eq!(stored.index, index);
    let event = Event::from_canonical(&stored.bytes).unwrap();
    (stored, event)
}

/// I3 on the whole log, once every committed entry is sequenced: indices 0..n without a gap,
/// `event_count` = n, every leaf canonical with its kind and leaf hash. Returns the parsed
/// events.
pub async fn check_log(store: &Arc<dyn Store>) -> Vec<Event> {
    let sequenced = sequence(store).await;
    let stored = all_events(store).await;
    assert_eq!(
        stored.len() as u64,
        sequenced,
        "events() disagrees with the sequencer"
    );
    assert_eq!(store.event_count().await.unwrap(), stored.len() as u64);
    stored
        .iter()
        .enumerate()
        .map(|(i, e)| {
            assert_eq!(e.index, i as u64, "the log has a gap or a reordering");
            let event = Event::from_canonical(&e.bytes)
                .unwrap_or_else(|err| panic!("event {i} does not parse: {err}"));
            assert_eq!(e.kind, event.body.kind(), "event {i}");
            assert_eq!(
                e.leaf_hash,
                Leaf::try_from(&event).unwrap().hash,
                "event {i}"
            );
            event
        })
        .collect()
}

/// The sequencer lease holder the kit's helpers use. Tests that take the lease under other
/// names give it back before they call a helper that sequences.
pub const KIT_SEQUENCER: &str = "conformance-kit";

/// Entries [`sequence`] asks for per `sequence_entries` call.
const SEQUENCE_BATCH: u64 = 1000;

/// Takes the sequencer lease as [`KIT_SEQUENCER`], waiting (10 s at most) while another
/// holder's lease runs.
pub async fn kit_lease(store: &Arc<dyn Store>) -> SequencerLease {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ttl = std::time::Duration::from_secs(30);
        if let Some(lease) = store.acquire_sequencer(KIT_SEQUENCER, ttl).await.unwrap() {
            assert_eq!(lease.holder, KIT_SEQUENCER);
            assert!(lease.epoch > 0, "epochs start at 1: {lease:?}");
            return lease;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the kit cannot take the sequencer lease: another holder keeps it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Gives every committed entry its log index, as the elected sequencer would: takes the lease
/// as [`KIT_SEQUENCER`], calls `sequence_entries` until a call leaves nothing waiting, and
/// releases the lease. Returns the log's sequenced size. (A backend that indexes at commit
/// only checks the lease.)
///
/// Tasks of one test share the kit's holder name, so one may release the lease while another
/// sequences: `Fenced` then means "take it again", and nothing was skipped.
pub async fn sequence(store: &Arc<dyn Store>) -> u64 {
    let mut lease = kit_lease(store).await;
    let mut last: Option<u64> = None;
    let mut fenced = 0;
    let size = loop {
        match store.sequence_entries(&lease, SEQUENCE_BATCH).await {
            Ok(size) => {
                if let Some(last) = last {
                    assert!(
                        size >= last,
                        "the sequenced size went back: {last} → {size}"
                    );
                    // Less than a full batch: nothing was left waiting.
                    if size - last < SEQUENCE_BATCH {
                        break size;
                    }
                }
                last = Some(size);
            }
            Err(StoreError::Fenced(why)) => {
                fenced += 1;
                assert!(fenced < 50, "the kit's lease keeps being fenced: {why}");
                lease = kit_lease(store).await;
            }
            Err(e) => panic!("sequence_entries: {e:?}"),
        }
    };
    // Another task may hold the lease by now; releasing one's own stale lease changes nothing.
    match store.release_sequencer(&lease).await {
        Ok(()) | Err(StoreError::Fenced(_)) => {}
        Err(e) => panic!("release_sequencer: {e:?}"),
    }
    let count = store.event_count().await.unwrap();
    assert!(
        count >= size,
        "event_count ({count}) is below the sequenced size ({size})"
    );
    size
}

/// The log's size once every committed entry is sequenced: what `event_count` must report
/// then. For serial steps of a test (nothing else writes meanwhile).
pub async fn log_size(store: &Arc<dyn Store>) -> u64 {
    let size = sequence(store).await;
    assert_eq!(
        store.event_count().await.unwrap(),
        size,
        "event_count disagrees with the sequencer"
    );
    size
}

/// The log index of each receipt: its own when the backend gave one at commit; otherwise,
/// after sequencing, the index of the entry with its leaf hash, searching from the end (the
/// same event can be logged twice) and never handing one index to two receipts.
pub async fn indices_of(store: &Arc<dyn Store>, receipts: &[Logged]) -> Vec<u64> {
    if receipts.iter().all(|r| r.index.is_some()) {
        return receipts.iter().filter_map(|r| r.index).collect();
    }
    sequence(store).await;
    let mut by_leaf: HashMap<touchmark_tlog::Hash, Vec<u64>> = HashMap::new();
    for e in all_events(store).await {
        by_leaf.entry(e.leaf_hash).or_default().push(e.index);
    }
    // Indices the backend gave are taken; the others are handed out from the end.
    let taken: HashSet<u64> = receipts.iter().filter_map(|r| r.index).collect();
    receipts
        .iter()
        .map(|r| match r.index {
            Some(index) => index,
            None => {
                let indices = by_leaf.get_mut(&r.leaf_hash);
                let mut free = indices
                    .into_iter()
                    .flat_map(|indices| std::iter::from_fn(|| indices.pop()))
                    .filter(|i| !taken.contains(i));
                free.next().unwrap_or_else(|| {
                    panic!(
                        "no sequenced entry is left with leaf hash {}",
                        r.leaf_hash.to_hex()
                    )
                })
            }
        })
        .collect()
}

/// The log index of one receipt (see [`indices_of`]).
pub async fn index_of(store: &Arc<dyn Store>, receipt: &Logged) -> u64 {
    indices_of(store, std::slice::from_ref(receipt)).await[0]
}

/// `unit` with its receipt's index filled in (see [`index_of`]): units read at different
/// times compare equal when they are the same issuance, whether or not it was sequenced in
/// between.
pub async fn settled(store: &Arc<dyn Store>, mut unit: IssuedUnit) -> IssuedUnit {
    unit.logged.index = Some(index_of(store, &unit.logged).await);
    unit
}

/// [`settled`], for a unit that may be absent.
pub async fn settled_opt(store: &Arc<dyn Store>, unit: Option<IssuedUnit>) -> Option<IssuedUnit> {
    match unit {
        Some(unit) => Some(settled(store, unit).await),
        None => None,
    }
}

/// The receipt of any outcome that logged or names an event.
pub fn receipt_of(outcome: &IssueOutcome) -> Logged {
    match outcome {
        IssueOutcome::Issued(unit) | IssueOutcome::AlreadyIssued(unit) => unit.logged,
        IssueOutcome::Refused { logged, .. } => *logged,
    }
}
