//! Alerts, webhooks, the webhook outbox and the projectors' cursors ([`AlertStore`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use touchmark_core::alert::{Alert, AlertKind, AlertState};
use touchmark_core::event::{Event, Logged};
use touchmark_core::policy::alerts::AlertChange;
use touchmark_core::{OrderId, StationId};
use touchmark_store::{
    AlertStore, Delivery, DeliveryResult, RecordKind, Rule, StoreError, Webhook,
};

use crate::error::{Error, Result};
use crate::rows::corrupt;
use crate::rows::get;
use crate::{PostgresStore, append, append_and_commit};

macro_rules! alert_sql {
    ($rest:literal) => {
        concat!(
            "SELECT id, kind, key, order_id, station, state, evidence, raised_at, updated_at \
             FROM alerts",
            $rest
        )
    };
}

macro_rules! delivery_sql {
    ($rest:literal) => {
        concat!(
            "SELECT id, webhook, payload, attempts, next_attempt_at, delivered_at, last_error \
             FROM webhook_deliveries",
            $rest
        )
    };
}

fn alert_row(r: &PgRow) -> Result<Alert> {
    let kind: String = get(r, 1)?;
    let state: String = get(r, 5)?;
    let evidence: String = get(r, 6)?;
    Ok(Alert {
        id: get(r, 0)?,
        kind: AlertKind::parse(&kind).ok_or_else(|| corrupt("alert kind", &kind))?,
        key: get(r, 2)?,
        order: get::<Option<String>>(r, 3)?
            .map(|o| OrderId::parse(&o).map_err(|e| corrupt("alert order", e)))
            .transpose()?,
        station: get::<Option<String>>(r, 4)?
            .map(|s| StationId::parse(&s).map_err(|e| corrupt("alert station", e)))
            .transpose()?,
        state: AlertState::parse(&state).ok_or_else(|| corrupt("alert state", &state))?,
        evidence: serde_json::from_str::<BTreeMap<String, String>>(&evidence)
            .map_err(|e| corrupt("alert evidence", e))?,
        raised_at: get(r, 7)?,
        updated_at: get(r, 8)?,
    })
}

fn delivery_row(r: &PgRow) -> Result<Delivery> {
    Ok(Delivery {
        id: get(r, 0)?,
        webhook: get(r, 1)?,
        payload: get(r, 2)?,
        attempts: u32::try_from(get::<i32>(r, 3)?).map_err(|e| corrupt("delivery attempts", e))?,
        next_attempt_at: get(r, 4)?,
        delivered_at: get(r, 5)?,
        last_error: get(r, 6)?,
    })
}

fn kinds_of(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| corrupt("webhook kinds", e))
}

#[async_trait]
impl AlertStore for PostgresStore {
    async fn raise_alert(
        &self,
        alert: Alert,
        event: Event,
        payload: String,
    ) -> touchmark_store::Result<Option<Logged>> {
        let run = async {
            let evidence =
                serde_json::to_string(&alert.evidence).map_err(|e| corrupt("alert evidence", e))?;
            let mut tx = self.pool().begin().await?;
            // Two replicas raising one key: the partial unique index lets one in.
            let inserted = sqlx::query(
                "INSERT INTO alerts (id, kind, key, order_id, station, state, evidence, raised_at,
                                     updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                 ON CONFLICT (key) WHERE state <> 'resolved' DO NOTHING",
            )
            .bind(&alert.id)
            .bind(alert.kind.as_str())
            .bind(&alert.key)
            .bind(alert.order.as_ref().map(OrderId::as_str))
            .bind(alert.station.as_ref().map(StationId::as_str))
            .bind(alert.state.as_str())
            .bind(&evidence)
            .bind(alert.raised_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok::<_, Error>(None);
            }
            let hooks = sqlx::query("SELECT id, kinds FROM webhooks ORDER BY id")
                .fetch_all(&mut *tx)
                .await?;
            for hook in &hooks {
                let id: String = get(hook, 0)?;
                let kinds = kinds_of(&get::<String>(hook, 1)?)?;
                if !kinds.is_empty() && !kinds.iter().any(|k| k == alert.kind.as_str()) {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO webhook_deliveries (id, webhook, payload, next_attempt_at)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(format!("msg_{}_{id}", alert.id))
                .bind(&id)
                .bind(&payload)
                .bind(alert.raised_at)
                .execute(&mut *tx)
                .await?;
            }
            let logged = append(&mut tx, &event).await?;
            tx.commit().await?;
            Ok(Some(logged))
        };
        Ok(run.await?)
    }

    async fn update_alert(
        &self,
        id: &str,
        rule: Rule<Alert, AlertChange>,
    ) -> touchmark_store::Result<Alert> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            let alert = sqlx::query(alert_sql!(" WHERE id = $1 FOR UPDATE"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| alert_row(&r))
                .transpose()?
                .ok_or_else(|| Error::from(StoreError::not_found(RecordKind::Alert, id)))?;
            let change = rule.apply(&alert)?;
            sqlx::query("UPDATE alerts SET state = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(change.state.as_str())
                .bind(change.event.at)
                .execute(&mut *tx)
                .await?;
            append(&mut tx, &change.event).await?;
            tx.commit().await?;
            Ok::<_, Error>(Alert {
                state: change.state,
                updated_at: change.event.at,
                ..alert
            })
        };
        Ok(run.await?)
    }

    async fn alert(&self, id: &str) -> touchmark_store::Result<Option<Alert>> {
        let run = async {
            sqlx::query(alert_sql!(" WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .map(|r| alert_row(&r))
                .transpose()
        };
        Ok(run.await?)
    }

    async fn alerts(&self, unresolved_only: bool) -> touchmark_store::Result<Vec<Alert>> {
        let run = async {
            let sql = if unresolved_only {
                alert_sql!(" WHERE state <> 'resolved' ORDER BY raised_at DESC, id DESC")
            } else {
                alert_sql!(" ORDER BY raised_at DESC, id DESC")
            };
            sqlx::query(sql)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(alert_row)
                .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn add_webhook(&self, webhook: Webhook, event: Event) -> touchmark_store::Result<Logged> {
        let run = async {
            let kinds =
                serde_json::to_string(&webhook.kinds).map_err(|e| corrupt("webhook kinds", e))?;
            let mut tx = self.pool().begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO webhooks (id, url, secret, kinds, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&webhook.id)
            .bind(&webhook.url)
            .bind(&webhook.secret)
            .bind(&kinds)
            .bind(webhook.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::exists(RecordKind::Webhook, &webhook.id).into());
            }
            append_and_commit(tx, &event).await
        };
        Ok(run.await?)
    }

    async fn webhooks(&self) -> touchmark_store::Result<Vec<Webhook>> {
        let run = async {
            let rows = sqlx::query(
                "SELECT id, url, secret, kinds, created_at FROM webhooks ORDER BY created_at, id",
            )
            .fetch_all(self.pool())
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Webhook {
                        id: get(r, 0)?,
                        url: get(r, 1)?,
                        secret: get(r, 2)?,
                        kinds: kinds_of(&get::<String>(r, 3)?)?,
                        created_at: get(r, 4)?,
                    })
                })
                .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> touchmark_store::Result<Vec<Delivery>> {
        let run = async {
            sqlx::query(delivery_sql!(
                " WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY seq LIMIT $2"
            ))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(delivery_row)
            .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn deliveries(&self) -> touchmark_store::Result<Vec<Delivery>> {
        let run = async {
            sqlx::query(delivery_sql!(" ORDER BY seq"))
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(delivery_row)
                .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn record_delivery(
        &self,
        id: &str,
        result: DeliveryResult,
    ) -> touchmark_store::Result<()> {
        let run =
            async {
                match result {
                    DeliveryResult::Delivered(at) => {
                        sqlx::query(
                            "UPDATE webhook_deliveries SET attempts = attempts + 1,
                                delivered_at = $2, last_error = NULL
                         WHERE id = $1 AND delivered_at IS NULL",
                        )
                        .bind(id)
                        .bind(at)
                        .execute(self.pool())
                        .await?
                    }
                    DeliveryResult::Failed { error, retry_at } => sqlx::query(
                        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = $2,
                                next_attempt_at = $3
                         WHERE id = $1 AND delivered_at IS NULL",
                    )
                    .bind(id)
                    .bind(error)
                    .bind(retry_at)
                    .execute(self.pool())
                    .await?,
                };
                Ok::<_, Error>(())
            };
        Ok(run.await?)
    }

    async fn cursor(&self, name: &str) -> touchmark_store::Result<u64> {
        let run = async {
            let position: Option<i64> =
                sqlx::query_scalar("SELECT position FROM projector_cursors WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.pool())
                    .await?;
            u64::try_from(position.unwrap_or(0)).map_err(|e| corrupt("cursor", e))
        };
        Ok(run.await?)
    }

    async fn save_cursor(&self, name: &str, position: u64) -> touchmark_store::Result<()> {
        let run = async {
            let position = i64::try_from(position).map_err(|e| corrupt("cursor", e))?;
            sqlx::query(
                "INSERT INTO projector_cursors (name, position) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            )
            .bind(name)
            .bind(position)
            .execute(self.pool())
            .await?;
            Ok::<_, Error>(())
        };
        Ok(run.await?)
    }
}
