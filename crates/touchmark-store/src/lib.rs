//! Touchmark's storage: the role traits every backend implements, the types they take and
//! give, and (with the `testsuite` feature) the conformance suite every backend runs.
//!
//! Every method that changes state appends its log event in the same durable transaction, so
//! no change exists without its event and no event without its change (design.md I3). A store
//! records; it never decides. The rules that depend on what is stored (design.md §4 checks 6 to 8,
//! an order's life, a station's revocation) are functions of `touchmark_core::policy`: a
//! backend reads their facts under its locks, calls them, and applies what they return.
//!
//! The roles, composed into one [`Store`] (as lldap composes its handler traits):
//! - [`CatalogStore`]: tokens, products, factories, stations and orders;
//! - [`IssuanceStore`]: issuances, refusals, units and their counts;
//! - [`LogStore`]: the log's entries, the sequencer lease, checkpoints and tiles;
//! - [`TestDataStore`]: test records as data, for a unit's history and for analytics.
//! - [`RevocationStore`]: revocations of units, orders, CAs and a station's units.
//! - [`FirmwareStore`]: release encryption keys and firmware signing keys.
//! - [`FieldStore`]: devices in the field: the challenges of proofs of possession.
//! - [`VulnStore`]: vulnerability reports, their links, and their CRA clocks' alerts.
//!
//! Backends, each in a crate of its own with its own migrations:
//! - `touchmark-store-sqlite`: the embedded default (WAL, `synchronous=FULL`, group commit).
//!   Events take their log index at commit.
//! - `touchmark-store-postgres`: one database shared by any number of server replicas. Events
//!   commit without an index; the one sequencer elected through
//!   [`LogStore::acquire_sequencer`] gives them indices in batches.

pub mod codec;
mod error;
pub mod log;
mod records;
pub mod sql;
#[cfg(feature = "testsuite")]
pub mod testsuite;
mod types;

use async_trait::async_trait;
use time::OffsetDateTime;
use touchmark_core::entity::{ApiToken, Factory, Product, Station};
use touchmark_core::event::{Event, Logged, Sha256Hash};
use touchmark_core::order::Order;
use touchmark_core::policy::order::OrderChange;
use touchmark_core::policy::station::StationChange;
use touchmark_core::{FactoryId, OrderId, ProductId, Serial, StationId};

pub use error::{Constraint, LogConflict, Record, RecordKind, StoreError};
pub use records::{
    AttemptRow, Delivery, DeliveryResult, FailureCount, MeasurementSample, OrderMeasurement,
    Webhook, Window,
};
pub use types::{
    IssueOutcome, IssueRequest, IssuedUnit, LogState, LogTile, NewCertificate, NewToken,
    OrderCounts, PoolStatus, Rejection, Rule, SequencerLease, StoredEvent, TestAttempt,
    UnitSummary, to_millis,
};
pub use types::{Revoked, RevokedCa, RevokedCertificate};

/// Shorthand for storage results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Tokens, products, factories, stations and orders: what an admin manages.
#[async_trait]
pub trait CatalogStore: Send + Sync + std::fmt::Debug + 'static {
    /// This store's connection pool now, for metrics; `None` for a store without a bounded
    /// pool (SQLite opens a reader per read on demand and keeps a few idle).
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }
    /// Stores a new API token and its `token.created` event.
    async fn create_token(&self, token: NewToken, event: Event) -> Result<Logged>;
    /// Finds a token, revoked or not, by the SHA-256 of its secret.
    async fn token_by_secret(&self, secret_sha256: Sha256Hash) -> Result<Option<ApiToken>>;

    /// Stores a product and its `product.created` event. `Exists` if the id is taken.
    async fn create_product(&self, product: Product, event: Event) -> Result<Logged>;
    /// Stores the issuing CA certificate `issuing_ca_pem` of a product that awaits one (its
    /// device root is offline), with its `ca.installed` event. `NotFound` for no such product;
    /// `Refused` (`conflict`) when it has its certificate already: a CA is never replaced.
    async fn install_product_ca(
        &self,
        id: &ProductId,
        issuing_ca_pem: String,
        event: Event,
    ) -> Result<Logged>;
    /// A product by id.
    async fn product(&self, id: &ProductId) -> Result<Option<Product>>;
    /// All products.
    async fn products(&self) -> Result<Vec<Product>>;

    /// Stores a factory and its `factory.created` event.
    async fn create_factory(&self, factory: Factory, event: Event) -> Result<Logged>;
    /// A factory by id.
    async fn factory(&self, id: &FactoryId) -> Result<Option<Factory>>;
    /// All factories.
    async fn factories(&self) -> Result<Vec<Factory>>;

    /// Stores a pending station with the SHA-256 of its one-time enrollment token.
    async fn create_station(
        &self,
        station: Station,
        token_sha256: Sha256Hash,
        event: Event,
    ) -> Result<Logged>;
    /// A station by id.
    async fn station(&self, id: &StationId) -> Result<Option<Station>>;
    /// All stations, or those of one factory.
    async fn stations(&self, factory: Option<&FactoryId>) -> Result<Vec<Station>>;
    /// The pending station whose enrollment token has this SHA-256, if it has not expired at `now`.
    async fn station_for_enrollment(
        &self,
        token_sha256: Sha256Hash,
        now: OffsetDateTime,
    ) -> Result<Option<Station>>;
    /// Marks the station enrolled with its certificate, consuming the token; only one caller can
    /// win. `EnrollmentTokenInvalid` if the token was used, expired or does not match.
    async fn enroll_station(
        &self,
        id: &StationId,
        token_sha256: Sha256Hash,
        cert_sha256: Sha256Hash,
        now: OffsetDateTime,
        event: Event,
    ) -> Result<Logged>;
    /// Changes a station by `rule`, run on the station as stored under the store's lock, and
    /// records the rule's event. `NotFound`, or `Refused` with the rule's refusal.
    async fn update_station(
        &self,
        id: &StationId,
        rule: Rule<Station, StationChange>,
    ) -> Result<Station>;

    /// Stores an order (in draft) and its `order.created` event.
    async fn create_order(&self, order: Order, event: Event) -> Result<Logged>;
    /// An order by id.
    async fn order(&self, id: &OrderId) -> Result<Option<Order>>;
    /// All orders.
    async fn orders(&self) -> Result<Vec<Order>>;
    /// Changes an order's state and quota by `rule`, run on the order as stored under the
    /// store's lock (so no issuance counts in between), and records the rule's event.
    /// `NotFound`, or `Refused` with the rule's refusal.
    async fn update_order(&self, id: &OrderId, rule: Rule<Order, OrderChange>) -> Result<Order>;
}

/// Issuances, refusals and failed tests, the units they leave, and their counts.
#[async_trait]
pub trait IssuanceStore: Send + Sync + std::fmt::Debug + 'static {
    /// Counts for an order, from every table that records them.
    async fn order_counts(&self, id: &OrderId) -> Result<OrderCounts>;

    /// Commits one issuance, or records why it was refused: inside one transaction it reads the
    /// facts of `touchmark_core::policy::issue::decide` under its locks and applies the
    /// decision. The count moves by a conditional update (`issued < quota`), the race guard
    /// behind the quota check. Durable before it returns.
    async fn issue(&self, request: IssueRequest) -> Result<IssueOutcome>;
    /// Records a refusal or a failed test with its event. Counts nothing.
    async fn record_rejection(&self, rejection: Rejection) -> Result<Logged>;
    /// Records an alert: an event that changes no other record, such as the
    /// `station.refusal_flood` that counts a station's refusals instead of logging each.
    async fn record_alert(&self, event: Event) -> Result<Logged>;
    /// The issued certificate of a serial, if it has one.
    async fn issued_unit(&self, product: &ProductId, serial: &Serial)
    -> Result<Option<IssuedUnit>>;
    /// Units of an order, in serial order.
    async fn units(&self, order: &OrderId) -> Result<Vec<UnitSummary>>;
    /// One unit by serial, in any product.
    async fn unit(&self, serial: &Serial) -> Result<Vec<UnitSummary>>;
}

/// The audit log's storage: its entries, the sequencer lease, and the signed checkpoints with
/// their tiles.
#[async_trait]
pub trait LogStore: Send + Sync + std::fmt::Debug + 'static {
    /// The audit log verifier key of the installation this database belongs to, once one
    /// claimed it.
    async fn owner(&self) -> Result<Option<String>>;
    /// Records that this database belongs to the installation whose log verifier key is
    /// `verifier`, unless one claimed it before; returns the owner's key either way (the first
    /// claim wins, whoever races it).
    async fn claim(&self, verifier: &str, at: OffsetDateTime) -> Result<String>;
    /// Sequenced events from index `start`, at most `limit`, in index order.
    async fn events(&self, start: u64, limit: u32) -> Result<Vec<StoredEvent>>;
    /// Whether the store holds no record at all. Every record comes with its event (I3), so this
    /// is whether any event was ever committed, sequenced or not.
    async fn is_empty(&self) -> Result<bool>;
    /// How many events hold an index: the log's sequenced size. Entries still waiting for the
    /// sequencer are not counted.
    async fn event_count(&self) -> Result<u64>;

    /// Grants the sequencer lease to `holder` for `ttl` if it is free, expired, or already
    /// `holder`'s (a renewal, same epoch). `None` while another holder's lease runs.
    /// Expiry is judged by the store's clock (the database server's, when it has one), so
    /// replicas with skewed clocks still agree.
    async fn acquire_sequencer(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<SequencerLease>>;
    /// Grants the lease to `holder` for `ttl` in a new epoch, whoever holds it and however
    /// long it still runs: the previous holder is fenced. Only for a caller that can prove no
    /// other live process may hold the lease (a server holding a SQLite data directory's
    /// exclusive lock), so that a lease still running is a dead process's and need not be
    /// waited out after a crash. `None` when the lease row is locked by a stalled transaction
    /// (as for [`LogStore::acquire_sequencer`]).
    async fn take_over_sequencer(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<SequencerLease>>;
    /// Gives up the lease, so another replica can take over at once.
    async fn release_sequencer(&self, lease: &SequencerLease) -> Result<()>;
    /// Gives committed entries that have no index yet the next indices, in commit order, at
    /// most `max` of them, and returns the log's sequenced size afterwards. Backends that index
    /// at commit only check the lease. `Fenced` if `lease` is no longer held.
    async fn sequence_entries(&self, lease: &SequencerLease, max: u64) -> Result<u64>;

    /// The latest signed checkpoint and the tree state at it, if the log signed one.
    async fn log_state(&self) -> Result<Option<LogState>>;
    /// Records a newly signed checkpoint with the tiles it published and the tree state, in one
    /// transaction, if `lease` is still held and the saved state is still the one of size
    /// `previous` (the sequencer's starting point; `None` before the first checkpoint).
    /// `Fenced` if the lease was lost; `LogConflict` if the saved state moved, a checkpoint of
    /// this size or a larger one exists, or it covers events that do not.
    async fn save_log_state(
        &self,
        lease: &SequencerLease,
        previous: Option<u64>,
        state: LogState,
        tiles: Vec<LogTile>,
        at: OffsetDateTime,
    ) -> Result<()>;
    /// A hash tile's latest contents.
    async fn log_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>>;
    /// The signed checkpoint note of exactly this size, if one was signed.
    async fn checkpoint_at(&self, size: u64) -> Result<Option<String>>;
}

/// Revocations (design.md §8): a unit's certificate, an order's, a product's issuing CA, and
/// the units one station provisioned in a span of time. What CRLs and OCSP answers are made
/// from.
#[async_trait]
pub trait RevocationStore: Send + Sync + std::fmt::Debug + 'static {
    /// Reads the facts of `target` (`touchmark_core::policy::revocation::RevocationFacts`) under
    /// the store's lock, runs `rule` on them, and applies the change it returns with its event,
    /// in one transaction: certificates revoked or released (their units' status with them), the
    /// order closed, the CA revoked. A change without an event (already in force) writes
    /// nothing. `Refused` with the rule's refusal.
    async fn revoke(
        &self,
        target: &touchmark_core::policy::revocation::Target,
        rule: Rule<
            touchmark_core::policy::revocation::RevocationFacts,
            touchmark_core::policy::revocation::RevocationChange,
        >,
    ) -> Result<Revoked>;
    /// The revoked certificates (on hold included) issued by `product`'s CA, in the order they
    /// were revoked.
    async fn revoked_certificates(&self, product: &ProductId) -> Result<Vec<RevokedCertificate>>;
    /// The revoked issuing CAs.
    async fn revoked_cas(&self) -> Result<Vec<RevokedCa>>;
    /// A certificate's revocation, by the issuing product and the certificate's serial number
    /// (hex, as stored): `None` when no such certificate was issued, `Some(None)` when it is
    /// not revoked.
    async fn certificate_status(
        &self,
        product: &ProductId,
        cert_serial_hex: &str,
    ) -> Result<Option<Option<touchmark_core::policy::revocation::RevokedAt>>>;
}

/// Firmware (design.md §7): a product's release encryption keys (their public halves; the
/// private keys live in the key provider) and the public keys that sign its images.
#[async_trait]
pub trait FirmwareStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a release key and its `release_key.created` event. `Exists` if the id is taken.
    async fn create_release_key(
        &self,
        key: touchmark_core::firmware::ReleaseKey,
        event: Event,
    ) -> Result<Logged>;
    /// A product's release keys, oldest first.
    async fn release_keys(
        &self,
        product: &ProductId,
    ) -> Result<Vec<touchmark_core::firmware::ReleaseKey>>;
    /// Stores a firmware signing key and its `firmware_key.added` event. `Exists` if the
    /// product has this key already.
    async fn add_firmware_key(
        &self,
        key: touchmark_core::firmware::FirmwareKey,
        event: Event,
    ) -> Result<Logged>;
    /// A product's firmware signing keys, oldest first.
    async fn firmware_keys(
        &self,
        product: &ProductId,
    ) -> Result<Vec<touchmark_core::firmware::FirmwareKey>>;

    /// Stores a release with its image, its SBOM, its SBOM's components and its
    /// `release.created` event, in one transaction. `Exists` if the id, or the product's
    /// version, is taken.
    async fn create_release(
        &self,
        release: touchmark_core::firmware::NewRelease,
        event: Event,
    ) -> Result<Logged>;
    /// A release by id (without its bytes).
    async fn release(&self, id: &str) -> Result<Option<touchmark_core::firmware::Release>>;
    /// A product's releases, oldest first (without their bytes).
    async fn releases(&self, product: &ProductId)
    -> Result<Vec<touchmark_core::firmware::Release>>;
    /// A release's image, as uploaded.
    async fn release_image(&self, id: &str) -> Result<Option<Vec<u8>>>;
    /// A release's SBOM, as uploaded, if it has one (`None` for an unknown release too).
    async fn release_sbom(&self, id: &str) -> Result<Option<Vec<u8>>>;
    /// The releases whose SBOM holds a component of match key `key`
    /// (`PackageUrl::key`: no version, qualifiers or subpath), one row per release and
    /// component, by release creation, then release id, then package URL.
    async fn releases_with_component(
        &self,
        key: &str,
    ) -> Result<Vec<touchmark_core::firmware::ComponentRelease>>;
    /// Changes a release by `rule`, run on the release as stored under the store's lock, and
    /// records the rule's event. `NotFound`, or `Refused` with the rule's refusal.
    async fn update_release(
        &self,
        id: &str,
        rule: Rule<
            touchmark_core::firmware::Release,
            touchmark_core::policy::firmware::ReleaseChange,
        >,
    ) -> Result<touchmark_core::firmware::Release>;
    /// Names the release `order`'s units receive, replacing any before, with its
    /// `order.release_set` event. `NotFound` for an unknown order or release.
    async fn set_order_release(
        &self,
        order: &OrderId,
        release: &str,
        event: Event,
    ) -> Result<Logged>;
    /// The release `order`'s units receive, if it names one (without its bytes).
    async fn order_release(
        &self,
        order: &OrderId,
    ) -> Result<Option<touchmark_core::firmware::Release>>;
    /// The firmware stored with a unit's issuance in `order`, if its order had a release.
    async fn unit_firmware(
        &self,
        order: &OrderId,
        serial: &Serial,
    ) -> Result<Option<touchmark_core::firmware::UnitFirmware>>;
    /// The field update of `release` a unit of `order` received, if it received one (its
    /// `encryption_key` is `None`: it is the unit's, stored with its issuance).
    async fn firmware_delivery(
        &self,
        order: &OrderId,
        serial: &Serial,
        release: &str,
    ) -> Result<Option<touchmark_core::firmware::UnitFirmware>>;
    /// Records a field update delivered to a unit, with its `unit.firmware_delivered` event,
    /// unless the unit received that release before: then nothing is recorded, and the
    /// delivery stored first is returned, so that every unit has one wrap of each release.
    /// `NotFound` for an unknown order or release.
    async fn record_firmware_delivery(
        &self,
        delivery: touchmark_core::firmware::UnitFirmware,
        event: Event,
    ) -> Result<Option<touchmark_core::firmware::UnitFirmware>>;
}

/// A challenge for a proof of possession, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChallenge {
    /// The token it was given to.
    pub token: touchmark_core::TokenId,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
    /// Whether a proof had named it before this one.
    pub used_before: bool,
}

/// Devices in the field (issue 17): the challenges of proofs of possession, each accepted once
/// whichever replica a proof reaches. `touchmark_core::policy::field` decides what a stored
/// challenge allows.
#[async_trait]
pub trait FieldStore: Send + Sync + std::fmt::Debug + 'static {
    /// Records a challenge: the SHA-256 of its nonce, the token it is given to, and when it
    /// stops being accepted; challenges that expired before `now` are deleted.
    async fn add_challenge(
        &self,
        nonce_sha256: Sha256Hash,
        token: &touchmark_core::TokenId,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<()>;
    /// Marks the challenge used, and returns it as it was: `None` when none is stored with
    /// that nonce. Two proofs naming one nonce at once see `used_before` false exactly once.
    async fn use_challenge(&self, nonce_sha256: Sha256Hash) -> Result<Option<StoredChallenge>>;
}

/// A complete storage backend: every role. Every backend passes the same conformance suite
/// ([`testsuite`], behind the `testsuite` feature).
pub trait Store:
    CatalogStore
    + IssuanceStore
    + LogStore
    + RevocationStore
    + TestDataStore
    + AlertStore
    + FirmwareStore
    + FieldStore
    + VulnStore
{
}

impl<T> Store for T where
    T: CatalogStore
        + IssuanceStore
        + LogStore
        + RevocationStore
        + TestDataStore
        + AlertStore
        + FirmwareStore
        + FieldStore
        + VulnStore
{
}

/// Vulnerability reports (issue 18, design.md §13): what the public intake received, each
/// report's state, CRA classification and notifications (moved by the rules of
/// `touchmark_core::policy::vuln`), its links to products, releases and SBOM components, and
/// which of its deadlines raised their alert.
#[async_trait]
pub trait VulnStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new report with its `vuln.received` event. `Exists` if the id is taken;
    /// `NotFound` for a product that does not exist.
    async fn create_report(
        &self,
        report: touchmark_core::vuln::Report,
        event: Event,
    ) -> Result<Logged>;
    /// A report by id.
    async fn report(&self, id: &str) -> Result<Option<touchmark_core::vuln::Report>>;
    /// Every report, newest first.
    async fn reports(&self) -> Result<Vec<touchmark_core::vuln::Report>>;
    /// Changes a report by `rule`, run on the report as stored under the store's lock, and
    /// records the rule's event. `NotFound`, or `Refused` with the rule's refusal.
    async fn update_report(
        &self,
        id: &str,
        rule: Rule<touchmark_core::vuln::Report, touchmark_core::policy::vuln::ReportChange>,
    ) -> Result<touchmark_core::vuln::Report>;
    /// Stores a link with its `vuln.linked` event. `NotFound` for a report, product or release
    /// that does not exist (or a release of another product); `Exists` for the same link twice.
    async fn add_link(&self, link: touchmark_core::vuln::Link, event: Event) -> Result<Logged>;
    /// A report's links, oldest first.
    async fn links(&self, report: &str) -> Result<Vec<touchmark_core::vuln::Link>>;
    /// The lots report `report` affects, with their counts, in one query that reads no unit
    /// row: each order of a release a link names (or that `releases` names: the releases its
    /// component links resolve to) with the units whose current firmware (the release they
    /// received last, at provisioning or by a field update, by log order) it is; and each
    /// order of a product a link names without a release or component, with all its issued
    /// units (then the product's releases are not looked at). In no particular order. With
    /// `counted`, lots without a unit are left out; without it, no unit is read and every lot
    /// has counts of 0 (enough to page through the units).
    async fn affected_lots(
        &self,
        report: &str,
        releases: &[String],
        counted: bool,
    ) -> Result<Vec<touchmark_core::vuln::LotCount>>;
    /// The units of each stream from its serial on (inclusive; `""` for the first), by
    /// serial, at most `limit` per stream: one list per stream, in the streams' order.
    async fn affected_streams(
        &self,
        streams: &[(touchmark_core::vuln::AffectedStream, String)],
        limit: usize,
    ) -> Result<Vec<Vec<touchmark_core::vuln::StreamUnit>>>;
    /// Marks `deadline`'s alert of report `id` raised at `at`, unless it was: whether this
    /// call marked it. Not an event of its own: the alert is (`alert.raised`).
    async fn mark_alerted(
        &self,
        id: &str,
        deadline: touchmark_core::vuln::Deadline,
        at: OffsetDateTime,
    ) -> Result<bool>;
    /// Stores a published revision of a report's CSAF advisory with its
    /// `vuln.advisory_published` event. `NotFound` for a report that does not exist; `Exists`
    /// unless its version is one more than the last stored of its tracking id (another
    /// revision was published meanwhile).
    async fn publish_advisory(
        &self,
        advisory: touchmark_core::csaf::Advisory,
        event: Event,
    ) -> Result<Logged>;
    /// Every published revision of report `report`'s advisories, by tracking id, then version.
    async fn advisories(&self, report: &str) -> Result<Vec<touchmark_core::csaf::Advisory>>;
    /// The latest revision of every advisory published, by tracking id: what the provider's
    /// directory serves.
    async fn latest_advisories(&self) -> Result<Vec<touchmark_core::csaf::Advisory>>;
}

/// Test records as data (design.md §9): the steps and measurements of every stored test
/// attempt, which each backend projects from the attempt's normalized record in the
/// transaction that stores it, and the certificates of a serial, for its history and for
/// analytics. Reads only.
#[async_trait]
pub trait TestDataStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every test attempt stored for `serial`, in any product, in the order stored, each with
    /// its steps and measurements.
    async fn unit_attempts(
        &self,
        serial: &Serial,
    ) -> Result<Vec<touchmark_core::oversight::AttemptEntry>>;
    /// The certificates issued to `serial`, in any product, oldest first, as history entries
    /// of kind `certificate.issued`.
    async fn unit_certificates(
        &self,
        serial: &Serial,
    ) -> Result<Vec<touchmark_core::oversight::HistoryEntry>>;
    /// An order's test attempts received within `window`, in the order stored.
    async fn order_attempts(&self, order: &OrderId, window: Window) -> Result<Vec<AttemptRow>>;
    /// The numeric measurements of an order's test attempts received within `window`, by step
    /// and name, then in the order stored.
    async fn order_measurements(
        &self,
        order: &OrderId,
        window: Window,
    ) -> Result<Vec<MeasurementSample>>;
    /// The failed steps and failed measurements of an order's test attempts received within
    /// `window`, counted by step and by step and measurement, in name order.
    async fn order_failures(&self, order: &OrderId, window: Window) -> Result<Vec<FailureCount>>;
    /// The numeric measurements of the test attempts stored after attempt `after`, in every
    /// order, by attempt id, then by step and place in the step, as recorded: a page for a
    /// reader that tails them. A page ends with a whole attempt: it holds the first `limit`
    /// rows and the rest of the last one's attempt, so a page shorter than `limit` is the last
    /// one for now, and the next page starts after the last row's attempt.
    async fn measurements_after(&self, after: u64, limit: u32) -> Result<Vec<OrderMeasurement>>;
}

/// Alerts (design.md §9), their webhooks and the webhook outbox, and the projectors' cursors.
#[async_trait]
pub trait AlertStore: Send + Sync + std::fmt::Debug + 'static {
    /// Records `alert` (open) with its `alert.raised` event, and for each webhook whose kinds
    /// match, one outbox message `msg_<alert>_<webhook>` carrying `payload` and due at once, in
    /// one transaction; unless an alert with the same key is open or acknowledged: then nothing
    /// is written, and `None`.
    async fn raise_alert(
        &self,
        alert: touchmark_core::alert::Alert,
        event: Event,
        payload: String,
    ) -> Result<Option<Logged>>;
    /// Moves an alert by `rule`, run on the alert as stored under the store's lock, and records
    /// the rule's event. `NotFound`, or `Refused` with the rule's refusal.
    async fn update_alert(
        &self,
        id: &str,
        rule: Rule<touchmark_core::alert::Alert, touchmark_core::policy::alerts::AlertChange>,
    ) -> Result<touchmark_core::alert::Alert>;
    /// One alert.
    async fn alert(&self, id: &str) -> Result<Option<touchmark_core::alert::Alert>>;
    /// Alerts, newest first: all of them, or those not resolved.
    async fn alerts(&self, unresolved_only: bool) -> Result<Vec<touchmark_core::alert::Alert>>;
    /// Records a webhook with its `webhook.added` event.
    async fn add_webhook(&self, webhook: Webhook, event: Event) -> Result<Logged>;
    /// Every webhook.
    async fn webhooks(&self) -> Result<Vec<Webhook>>;
    /// Outbox messages not delivered whose next attempt is due at `now`, oldest first, at
    /// most `limit`.
    async fn due_deliveries(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Delivery>>;
    /// Every outbox message, oldest first (for operators and tests).
    async fn deliveries(&self) -> Result<Vec<Delivery>>;
    /// Records what became of an attempt of delivery `id`.
    async fn record_delivery(&self, id: &str, result: DeliveryResult) -> Result<()>;
    /// A projector's position in the log: the index of the next event it has not folded.
    async fn cursor(&self, name: &str) -> Result<u64>;
    /// Saves a projector's position.
    async fn save_cursor(&self, name: &str, position: u64) -> Result<()>;
}
