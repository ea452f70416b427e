//! Alerts and their webhooks (design.md §9): raising what a rule of
//! `touchmark_core::policy::alerts` saw, acknowledging and resolving, and registering webhook
//! endpoints. Every change is logged.

use base64::Engine as _;
use serde_json::json;
use touchmark_core::alert::{Alert, AlertKind, AlertState};
use touchmark_core::clock::format_timestamp;
use touchmark_core::code::ErrorCode;
use touchmark_core::event::{Actor, Event, EventBody};
use touchmark_core::field::HttpUrl;
use touchmark_core::policy::alerts::{self, Raise};
use touchmark_store::{Rule, Webhook};

use crate::secrets::random_id;
use crate::{Authority, AuthorityError, Result};

/// A webhook secret's rule as a JSON Schema pattern: `whsec_` and 8 to 16 groups of standard
/// base64 (22 to 48 bytes), the last one padded or not.
pub const SECRET_PATTERN: &str =
    "^whsec_(?:[A-Za-z0-9+/]{4}){7,15}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$";

/// The bytes of a Standard Webhooks secret, `whsec_<base64>` as [`SECRET_PATTERN`] says.
///
/// # Errors
/// A message for a secret not in that form.
pub fn secret_bytes(secret: &str) -> std::result::Result<Vec<u8>, String> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or("a webhook secret starts with `whsec_`")?;
    let groups = encoded.len() / 4;
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let body = encoded.trim_end_matches('=');
    let padding = encoded.len() - body.len();
    let well_formed = encoded.len() % 4 == 0
        && (8..=16).contains(&groups)
        && padding <= 2
        && body.bytes().all(alphabet);
    if !well_formed {
        return Err(
            "a webhook secret is `whsec_` and 8 to 16 groups of standard base64 (22 to 48 bytes)"
                .into(),
        );
    }
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    lenient
        .decode(encoded)
        .map_err(|e| format!("a webhook secret is `whsec_` and base64: {e}"))
}

/// The JSON body every webhook receives for `alert`: Standard Webhooks' `{type, timestamp,
/// data}`.
pub fn payload(alert: &Alert) -> String {
    json!({
        "type": "alert.raised",
        "timestamp": format_timestamp(alert.raised_at),
        "data": {
            "id": alert.id,
            "kind": alert.kind.as_str(),
            "order": alert.order.as_ref().map(|o| o.as_str()),
            "station": alert.station.as_ref().map(|s| s.as_str()),
            "evidence": alert.evidence,
            "raised_at": format_timestamp(alert.raised_at),
        }
    })
    .to_string()
}

impl Authority {
    /// Raises what a rule saw, with its outbox messages, unless an alert of its key is open:
    /// then `None`.
    ///
    /// # Errors
    /// The store's.
    pub async fn raise_alert(&self, raise: Raise) -> Result<Option<Alert>> {
        let now = self.clock.now();
        let id = random_id("al-");
        let event = raise.event(&id, now);
        let alert = Alert {
            id,
            kind: raise.kind,
            key: raise.key,
            order: raise.order,
            station: raise.station,
            state: AlertState::Open,
            evidence: raise.evidence,
            raised_at: now,
            updated_at: now,
        };
        let body = payload(&alert);
        match self.store.raise_alert(alert.clone(), event, body).await? {
            Some(_) => {
                tracing::info!(alert = %alert.id, kind = %alert.kind, key = %alert.key, "alert raised");
                Ok(Some(alert))
            }
            None => Ok(None),
        }
    }

    /// Acknowledges an open alert (logged).
    ///
    /// # Errors
    /// `NotFound`; `Denied` (`conflict`) for one acknowledged or resolved already.
    pub async fn acknowledge_alert(&self, actor: Actor, id: &str) -> Result<Alert> {
        let at = self.clock.now();
        Ok(self
            .store
            .update_alert(
                id,
                Rule::new(move |alert| alerts::acknowledge(alert, actor, at)),
            )
            .await?)
    }

    /// Resolves an open or acknowledged alert (logged).
    ///
    /// # Errors
    /// `NotFound`; `Denied` (`conflict`) for one resolved already.
    pub async fn resolve_alert(&self, actor: Actor, id: &str) -> Result<Alert> {
        let at = self.clock.now();
        Ok(self
            .store
            .update_alert(
                id,
                Rule::new(move |alert| alerts::resolve(alert, actor, at)),
            )
            .await?)
    }

    /// Registers a webhook for alerts of `kinds` (all when empty), delivering to `url`, signed
    /// with `secret` ([`SECRET_PATTERN`]).
    ///
    /// # Errors
    /// `Invalid` for a URL that is not http(s); `Denied` (`invalid_request`) for a malformed
    /// secret or an unknown kind.
    pub async fn add_webhook(
        &self,
        actor: Actor,
        url: &str,
        secret: &str,
        kinds: &[String],
    ) -> Result<Webhook> {
        let invalid = |m: String| AuthorityError::denied(ErrorCode::InvalidRequest, m);
        let url = HttpUrl::parse("url", url)?;
        secret_bytes(secret).map_err(|e| invalid(format!("secret: {e}")))?;
        let mut checked = Vec::new();
        for kind in kinds {
            let k = AlertKind::parse(kind).ok_or_else(|| {
                invalid(format!(
                    "kind: {kind:?} is not one of {}",
                    AlertKind::ALL.map(AlertKind::as_str).join(", ")
                ))
            })?;
            if !checked.contains(&k.as_str().to_owned()) {
                checked.push(k.as_str().to_owned());
            }
        }
        let webhook = Webhook {
            id: random_id("wh-"),
            url: url.as_str().to_owned(),
            secret: secret.to_owned(),
            kinds: checked,
            created_at: self.clock.now(),
        };
        let event = Event::new(
            webhook.created_at,
            EventBody::WebhookAdded {
                webhook: webhook.id.clone(),
                url: webhook.url.clone(),
                kinds: webhook.kinds.clone(),
                actor,
            },
        );
        self.store.add_webhook(webhook.clone(), event).await?;
        Ok(webhook)
    }
}
