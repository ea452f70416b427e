//! Webhook deliveries (design.md §9): the outbox the store fills with each alert, delivered at
//! least once, signed in the Standard Webhooks scheme, retried with exponential backoff.
//!
//! A message keeps its id (`webhook-id`, `msg_<alert>_<webhook>`) across attempts, so a receiver
//! deduplicates. The signature is `v1,<base64(HMAC-SHA256(secret, id.timestamp.body))>` with the
//! secret's bytes (`whsec_<base64>`), in `webhook-signature`, beside `webhook-timestamp` (Unix
//! seconds). The outbox is in the database: a message written with its alert survives a crash
//! or a restart, and is sent by whichever process runs the delivery loop next.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use time::OffsetDateTime;
use touchmark_authority::alerts::secret_bytes;
use touchmark_core::Clock;
use touchmark_store::{Delivery, DeliveryResult, Store, Webhook};

/// How often the loop looks for messages due.
pub const POLL: Duration = Duration::from_millis(250);

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The Standard Webhooks signature of `body` sent as message `id` at `timestamp` (Unix
/// seconds), with `secret`'s bytes: `v1,<base64>`.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    )
}

/// The wait before attempt `attempts + 1`, after `attempts` failed: 1 s, 2 s, 4 s, ... up to an
/// hour.
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(12)).min(MAX_BACKOFF)
}

/// An HTTP client for deliveries: TLS through aws-lc-rs, trusting the Mozilla roots.
fn client() -> anyhow::Result<reqwest::Client> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

async fn attempt(
    http: &reqwest::Client,
    hook: &Webhook,
    message: &Delivery,
    now: OffsetDateTime,
) -> Result<(), String> {
    let secret = secret_bytes(&hook.secret)?;
    let timestamp = now.unix_timestamp();
    let signature = sign(&secret, &message.id, timestamp, &message.payload);
    let answer = http
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("webhook-id", &message.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(message.payload.clone())
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered HTTP {}", status.as_u16()))
    }
}

/// Delivers the messages due now, once each; returns how many were delivered.
///
/// # Errors
/// The store's; a failed attempt is recorded, not returned.
pub async fn deliver_due(
    store: &dyn Store,
    http: &reqwest::Client,
    clock: &dyn Clock,
) -> Result<usize, touchmark_store::StoreError> {
    let due = store.due_deliveries(clock.now(), 32).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let hooks: HashMap<String, Webhook> = store
        .webhooks()
        .await?
        .into_iter()
        .map(|h| (h.id.clone(), h))
        .collect();
    let mut delivered = 0;
    for message in due {
        let now = clock.now();
        let result = match hooks.get(&message.webhook) {
            Some(hook) => attempt(http, hook, &message, now).await,
            None => Err(format!("webhook {} is gone", message.webhook)),
        };
        let outcome = match result {
            Ok(()) => {
                delivered += 1;
                tracing::info!(message = %message.id, attempts = message.attempts + 1, "webhook delivered");
                DeliveryResult::Delivered(clock.now())
            }
            Err(error) => {
                let wait = backoff(message.attempts);
                tracing::warn!(message = %message.id, attempts = message.attempts + 1, %error, retry_in_s = wait.as_secs(), "webhook delivery failed");
                DeliveryResult::Failed {
                    error,
                    retry_at: clock.now() + wait,
                }
            }
        };
        store.record_delivery(&message.id, outcome).await?;
    }
    Ok(delivered)
}

/// The delivery loop, every [`POLL`], until aborted.
pub async fn run(store: Arc<dyn Store>, clock: Arc<dyn Clock>) {
    let http = match client() {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "webhook deliveries cannot start");
            return;
        }
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = deliver_due(store.as_ref(), &http, clock.as_ref()).await {
            tracing::warn!(error = %e, "webhook outbox unreadable");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (and of its reference libraries).
        let secret = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let waits: Vec<u64> = (0..4).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8]);
        assert_eq!(backoff(30), Duration::from_secs(3600));
    }
}
