//! A store wrapper for backends that give events their log index at commit (SQLite): every
//! `Logged` they hand back, from any method, must carry its index (`Logged::index` is `Some`).
//! The suite itself accepts `None` (a backend shared by replicas sequences later), so this is
//! where the stricter promise of such a backend is held to account, on every call of every
//! test.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use touchmark_core::entity::{ApiToken, Factory, Product, Station};
use touchmark_core::event::{Event, Logged, Sha256Hash};
use touchmark_core::order::Order;
use touchmark_core::policy::order::OrderChange;
use touchmark_core::policy::station::StationChange;
use touchmark_core::{FactoryId, OrderId, ProductId, Serial, StationId};
use touchmark_store::{
    CatalogStore, IssuanceStore, IssueOutcome, IssueRequest, IssuedUnit, LogState, LogStore,
    LogTile, NewToken, OrderCounts, Rejection, Result, Rule, SequencerLease, Store, StoredEvent,
    UnitSummary,
};

/// Delegates to `S`, asserting that every `Logged` it hands back has its index.
#[derive(Debug)]
pub struct IndexedAtCommit<S>(pub S);

fn indexed(logged: Logged, what: &str) -> Logged {
    assert!(
        logged.index.is_some(),
        "{what}: this backend indexes at commit, but the event was logged without an index"
    );
    logged
}

fn indexed_outcome(outcome: IssueOutcome) -> IssueOutcome {
    match &outcome {
        IssueOutcome::Issued(unit) | IssueOutcome::AlreadyIssued(unit) => {
            indexed(unit.logged, "issue");
        }
        IssueOutcome::Refused { logged, .. } => {
            indexed(*logged, "issue (refused)");
        }
    }
    outcome
}

#[async_trait]
impl<S: Store> CatalogStore for IndexedAtCommit<S> {
    async fn create_token(&self, token: NewToken, event: Event) -> Result<Logged> {
        let r = self.0.create_token(token, event).await?;
        Ok(indexed(r, "create_token"))
    }

    async fn token_by_secret(&self, secret_sha256: Sha256Hash) -> Result<Option<ApiToken>> {
        self.0.token_by_secret(secret_sha256).await
    }

    async fn create_product(&self, product: Product, event: Event) -> Result<Logged> {
        let r = self.0.create_product(product, event).await?;
        Ok(indexed(r, "create_product"))
    }

    async fn product(&self, id: &ProductId) -> Result<Option<Product>> {
        self.0.product(id).await
    }

    async fn products(&self) -> Result<Vec<Product>> {
        self.0.products().await
    }

    async fn create_factory(&self, factory: Factory, event: Event) -> Result<Logged> {
        let r = self.0.create_factory(factory, event).await?;
        Ok(indexed(r, "create_factory"))
    }

    async fn factory(&self, id: &FactoryId) -> Result<Option<Factory>> {
        self.0.factory(id).await
    }

    async fn factories(&self) -> Result<Vec<Factory>> {
        self.0.factories().await
    }

    async fn create_station(
        &self,
        station: Station,
        token_sha256: Sha256Hash,
        event: Event,
    ) -> Result<Logged> {
        let r = self.0.create_station(station, token_sha256, event).await?;
        Ok(indexed(r, "create_station"))
    }

    async fn station(&self, id: &StationId) -> Result<Option<Station>> {
        self.0.station(id).await
    }

    async fn stations(&self, factory: Option<&FactoryId>) -> Result<Vec<Station>> {
        self.0.stations(factory).await
    }

    async fn station_for_enrollment(
        &self,
        token_sha256: Sha256Hash,
        now: OffsetDateTime,
    ) -> Result<Option<Station>> {
        self.0.station_for_enrollment(token_sha256, now).await
    }

    async fn enroll_station(
        &self,
        id: &StationId,
        token_sha256: Sha256Hash,
        cert_sha256: Sha256Hash,
        now: OffsetDateTime,
        event: Event,
    ) -> Result<Logged> {
        let r = self
            .0
            .enroll_station(id, token_sha256, cert_sha256, now, event)
            .await?;
        Ok(indexed(r, "enroll_station"))
    }

    async fn update_station(
        &self,
        id: &StationId,
        rule: Rule<Station, StationChange>,
    ) -> Result<Station> {
        self.0.update_station(id, rule).await
    }

    async fn create_order(&self, order: Order, event: Event) -> Result<Logged> {
        let r = self.0.create_order(order, event).await?;
        Ok(indexed(r, "create_order"))
    }

    async fn order(&self, id: &OrderId) -> Result<Option<Order>> {
        self.0.order(id).await
    }

    async fn orders(&self) -> Result<Vec<Order>> {
        self.0.orders().await
    }

    async fn update_order(&self, id: &OrderId, rule: Rule<Order, OrderChange>) -> Result<Order> {
        self.0.update_order(id, rule).await
    }
}

#[async_trait]
impl<S: Store> IssuanceStore for IndexedAtCommit<S> {
    async fn order_counts(&self, id: &OrderId) -> Result<OrderCounts> {
        self.0.order_counts(id).await
    }

    async fn issue(&self, request: IssueRequest) -> Result<IssueOutcome> {
        Ok(indexed_outcome(self.0.issue(request).await?))
    }

    async fn record_rejection(&self, rejection: Rejection) -> Result<Logged> {
        let r = self.0.record_rejection(rejection).await?;
        Ok(indexed(r, "record_rejection"))
    }

    async fn issued_unit(
        &self,
        product: &ProductId,
        serial: &Serial,
    ) -> Result<Option<IssuedUnit>> {
        let unit = self.0.issued_unit(product, serial).await?;
        if let Some(unit) = &unit {
            indexed(unit.logged, "issued_unit");
        }
        Ok(unit)
    }

    async fn units(&self, order: &OrderId) -> Result<Vec<UnitSummary>> {
        self.0.units(order).await
    }

    async fn unit(&self, serial: &Serial) -> Result<Vec<UnitSummary>> {
        self.0.unit(serial).await
    }
}

#[async_trait]
impl<S: Store> LogStore for IndexedAtCommit<S> {
    async fn owner(&self) -> Result<Option<String>> {
        self.0.owner().await
    }

    async fn claim(&self, verifier: &str, at: OffsetDateTime) -> Result<String> {
        self.0.claim(verifier, at).await
    }

    async fn events(&self, start: u64, limit: u32) -> Result<Vec<StoredEvent>> {
        self.0.events(start, limit).await
    }

    async fn is_empty(&self) -> Result<bool> {
        self.0.is_empty().await
    }

    async fn event_count(&self) -> Result<u64> {
        self.0.event_count().await
    }

    async fn acquire_sequencer(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<SequencerLease>> {
        self.0.acquire_sequencer(holder, ttl).await
    }

    async fn release_sequencer(&self, lease: &SequencerLease) -> Result<()> {
        self.0.release_sequencer(lease).await
    }

    async fn sequence_entries(&self, lease: &SequencerLease, max: u64) -> Result<u64> {
        self.0.sequence_entries(lease, max).await
    }

    async fn log_state(&self) -> Result<Option<LogState>> {
        self.0.log_state().await
    }

    async fn save_log_state(
        &self,
        lease: &SequencerLease,
        previous: Option<u64>,
        state: LogState,
        tiles: Vec<LogTile>,
        at: OffsetDateTime,
    ) -> Result<()> {
        self.0
            .save_log_state(lease, previous, state, tiles, at)
            .await
    }

    async fn log_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>> {
        self.0.log_tile(level, index).await
    }

    async fn checkpoint_at(&self, size: u64) -> Result<Option<String>> {
        self.0.checkpoint_at(size).await
    }
}
