//! Alerts, webhooks, the webhook outbox and the projectors' cursors ([`AlertStore`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use time::OffsetDateTime;
use touchmark_core::alert::{Alert, AlertKind, AlertState};
use touchmark_core::clock::{format_timestamp, parse_timestamp};
use touchmark_core::event::{Event, Logged};
use touchmark_core::policy::alerts::AlertChange;
use touchmark_core::{OrderId, StationId};
use touchmark_store::{
    AlertStore, Delivery, DeliveryResult, RecordKind, Rule, StoreError, Webhook,
};

use crate::SqliteStore;
use crate::error::Result;
use crate::rows::corrupt;

const ALERT_SQL: &str = "SELECT id, kind, key, order_id, station, state, evidence, raised_at, \
                         updated_at FROM alerts";

const DELIVERY_SQL: &str = "SELECT id, webhook, payload, attempts, next_attempt_at, delivered_at, \
                            last_error FROM webhook_deliveries";

fn time(what: &str, text: &str) -> Result<OffsetDateTime> {
    parse_timestamp(text).map_err(|e| corrupt(what, e))
}

fn alert_row(r: &Row<'_>) -> rusqlite::Result<Result<Alert>> {
    let (id, kind, key, order, station, state, evidence, raised, updated): (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        String,
        String,
        String,
    ) = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    );
    Ok((|| {
        Ok(Alert {
            kind: AlertKind::parse(&kind).ok_or_else(|| corrupt("alert kind", &kind))?,
            state: AlertState::parse(&state).ok_or_else(|| corrupt("alert state", &state))?,
            order: order
                .map(|o| OrderId::parse(&o).map_err(|e| corrupt("alert order", e)))
                .transpose()?,
            station: station
                .map(|s| StationId::parse(&s).map_err(|e| corrupt("alert station", e)))
                .transpose()?,
            evidence: serde_json::from_str::<BTreeMap<String, String>>(&evidence)
                .map_err(|e| corrupt("alert evidence", e))?,
            raised_at: time("alert time", &raised)?,
            updated_at: time("alert time", &updated)?,
            id,
            key,
        })
    })())
}

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<Result<Delivery>> {
    let (id, webhook, payload, attempts, next, delivered, error): (
        String,
        String,
        String,
        i64,
        String,
        Option<String>,
        Option<String>,
    ) = (
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    );
    Ok((|| {
        Ok(Delivery {
            id,
            webhook,
            payload,
            attempts: u32::try_from(attempts).map_err(|e| corrupt("delivery attempts", e))?,
            next_attempt_at: time("delivery time", &next)?,
            delivered_at: delivered.map(|d| time("delivery time", &d)).transpose()?,
            last_error: error,
        })
    })())
}

fn kinds_of(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| corrupt("webhook kinds", e))
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn raise_alert(
        &self,
        alert: Alert,
        event: Event,
        payload: String,
    ) -> touchmark_store::Result<Option<Logged>> {
        self.write(move |ctx| {
            let open: Option<String> = ctx
                .conn
                .prepare_cached("SELECT id FROM alerts WHERE key = ?1 AND state <> 'resolved'")?
                .query_row([alert.key.as_str()], |r| r.get(0))
                .optional()?;
            if open.is_some() {
                return Ok(None);
            }
            let evidence =
                serde_json::to_string(&alert.evidence).map_err(|e| corrupt("alert evidence", e))?;
            ctx.conn
                .prepare_cached(
                    "INSERT INTO alerts (id, kind, key, order_id, station, state, evidence,
                                         raised_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                )?
                .execute(params![
                    alert.id,
                    alert.kind.as_str(),
                    alert.key,
                    alert.order.as_ref().map(OrderId::as_str),
                    alert.station.as_ref().map(StationId::as_str),
                    alert.state.as_str(),
                    evidence,
                    format_timestamp(alert.raised_at),
                ])?;
            let hooks: Vec<(String, String)> = ctx
                .conn
                .prepare_cached("SELECT id, kinds FROM webhooks ORDER BY id")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (hook, kinds) in hooks {
                let kinds = kinds_of(&kinds)?;
                if !kinds.is_empty() && !kinds.iter().any(|k| k == alert.kind.as_str()) {
                    continue;
                }
                ctx.conn
                    .prepare_cached(
                        "INSERT INTO webhook_deliveries (id, seq, webhook, payload, next_attempt_at)
                         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM webhook_deliveries),
                                 ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        format!("msg_{}_{hook}", alert.id),
                        hook,
                        payload,
                        format_timestamp(alert.raised_at),
                    ])?;
            }
            let (_, logged) = ctx.append(&event)?;
            Ok(Some(logged))
        })
        .await
    }

    async fn update_alert(
        &self,
        id: &str,
        rule: Rule<Alert, AlertChange>,
    ) -> touchmark_store::Result<Alert> {
        let id = id.to_owned();
        self.write(move |ctx| {
            let alert = ctx
                .conn
                .prepare_cached(&format!("{ALERT_SQL} WHERE id = ?1"))?
                .query_row([id.as_str()], alert_row)
                .optional()?
                .transpose()?
                .ok_or_else(|| StoreError::not_found(RecordKind::Alert, &id))?;
            let change = rule.apply(&alert)?;
            ctx.conn
                .prepare_cached("UPDATE alerts SET state = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![
                    id,
                    change.state.as_str(),
                    format_timestamp(change.event.at)
                ])?;
            ctx.append(&change.event)?;
            Ok(Alert {
                state: change.state,
                updated_at: change.event.at,
                ..alert
            })
        })
        .await
    }

    async fn alert(&self, id: &str) -> touchmark_store::Result<Option<Alert>> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!("{ALERT_SQL} WHERE id = ?1"))?
                .query_row([id.as_str()], alert_row)
                .optional()?
                .transpose()
        })
        .await
    }

    async fn alerts(&self, unresolved_only: bool) -> touchmark_store::Result<Vec<Alert>> {
        self.read(move |conn| {
            let filter = if unresolved_only {
                " WHERE state <> 'resolved'"
            } else {
                ""
            };
            let mut stmt = conn.prepare_cached(&format!(
                "{ALERT_SQL}{filter} ORDER BY raised_at DESC, id DESC"
            ))?;
            let rows = stmt.query_map([], alert_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn add_webhook(&self, webhook: Webhook, event: Event) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            let kinds =
                serde_json::to_string(&webhook.kinds).map_err(|e| corrupt("webhook kinds", e))?;
            let inserted = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO webhooks (id, url, secret, kinds, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    webhook.id,
                    webhook.url,
                    webhook.secret,
                    kinds,
                    format_timestamp(webhook.created_at)
                ])?;
            if inserted == 0 {
                return Err(StoreError::exists(RecordKind::Webhook, &webhook.id).into());
            }
            Ok(ctx.append(&event)?.1)
        })
        .await
    }

    async fn webhooks(&self) -> touchmark_store::Result<Vec<Webhook>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, url, secret, kinds, created_at FROM webhooks ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, url, secret, kinds, created) = row?;
                out.push(Webhook {
                    id,
                    url,
                    secret,
                    kinds: kinds_of(&kinds)?,
                    created_at: time("webhook time", &created)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn due_deliveries(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> touchmark_store::Result<Vec<Delivery>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{DELIVERY_SQL} WHERE delivered_at IS NULL AND next_attempt_at <= ?1
                 ORDER BY seq LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![format_timestamp(now), limit], delivery_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn deliveries(&self) -> touchmark_store::Result<Vec<Delivery>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!("{DELIVERY_SQL} ORDER BY seq"))?;
            let rows = stmt.query_map([], delivery_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn record_delivery(
        &self,
        id: &str,
        result: DeliveryResult,
    ) -> touchmark_store::Result<()> {
        let id = id.to_owned();
        self.write(move |ctx| {
            match result {
                DeliveryResult::Delivered(at) => ctx
                    .conn
                    .prepare_cached(
                        "UPDATE webhook_deliveries SET attempts = attempts + 1, delivered_at = ?2,
                                last_error = NULL
                         WHERE id = ?1 AND delivered_at IS NULL",
                    )?
                    .execute(params![id, format_timestamp(at)])?,
                DeliveryResult::Failed { error, retry_at } => ctx
                    .conn
                    .prepare_cached(
                        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ?2,
                                next_attempt_at = ?3
                         WHERE id = ?1 AND delivered_at IS NULL",
                    )?
                    .execute(params![id, error, format_timestamp(retry_at)])?,
            };
            Ok(())
        })
        .await
    }

    async fn cursor(&self, name: &str) -> touchmark_store::Result<u64> {
        let name = name.to_owned();
        self.read(move |conn| {
            let position: Option<i64> = conn
                .prepare_cached("SELECT position FROM projector_cursors WHERE name = ?1")?
                .query_row([name.as_str()], |r| r.get(0))
                .optional()?;
            u64::try_from(position.unwrap_or(0)).map_err(|e| corrupt("cursor", e))
        })
        .await
    }

    async fn save_cursor(&self, name: &str, position: u64) -> touchmark_store::Result<()> {
        let name = name.to_owned();
        self.write(move |ctx| {
            let position = i64::try_from(position).map_err(|e| corrupt("cursor", e))?;
            ctx.conn
                .prepare_cached(
                    "INSERT INTO projector_cursors (name, position) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                )?
                .execute(params![name, position])?;
            Ok(())
        })
        .await
    }
}
