//! `touchmark doctor`'s checks of an installation: its permissions, its keys, its database,
//! its log and the clock, each ending ok, warn or fail with a sentence that says what was
//! found and, when it is not ok, what to do. Nothing here writes.

use std::path::Path;

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use touchmark_core::event::Event;
use touchmark_pki::{Certificate, Passphrase};
use touchmark_store::Store;
use touchmark_tlog::checkpoint::SignedCheckpoint;

use super::{Installation, InstallationError, RootLayout, guard, key_names};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As it should be.
    Ok,
    /// Works, but needs attention soon.
    Warn,
    /// Broken: the server would refuse to start, or would misbehave.
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        })
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked: `permissions`, `keys`, `database`, `log`, `clock`...
    pub name: String,
    /// How it ended.
    pub status: Status,
    /// What was found, and what to do when it is not ok.
    pub detail: String,
}

impl Check {
    /// A check named `name` that ended with `status`.
    pub fn new(name: &str, status: Status, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            status,
            detail: detail.into(),
        }
    }
}

/// How long before a certificate expires the clock check warns.
pub const EXPIRY_WARNING: Duration = Duration::days(30);

/// How long entries may wait for a checkpoint before the log check warns: a running
/// sequencer signs one at least every second while there are new entries.
pub const CHECKPOINT_LAG: Duration = Duration::minutes(1);

/// Where `now` stands in a certificate's validity window: fail outside it (before notBefore
/// the clock is behind, or the certificate is from the future; after notAfter it expired),
/// warn within [`EXPIRY_WARNING`] of its end.
pub fn validity_status(
    now: OffsetDateTime,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Status {
    if now < not_before || now > not_after {
        Status::Fail
    } else if not_after - now < EXPIRY_WARNING {
        Status::Warn
    } else {
        Status::Ok
    }
}

/// Whether entries that a checkpoint does not cover yet, the oldest of them made at `oldest`,
/// have waited too long: warn after [`CHECKPOINT_LAG`].
pub fn lag_status(now: OffsetDateTime, oldest: OffsetDateTime) -> Status {
    if now - oldest > CHECKPOINT_LAG {
        Status::Warn
    } else {
        Status::Ok
    }
}

impl Installation {
    /// Every path of the data directory `dir` that others can reach, where it must be its
    /// owner's alone: the directory, `keys/` and each key (0700 and 0600), and with `sqlite`
    /// the database and its `-wal` and `-shm` files.
    pub fn doctor_permissions(dir: &Path, sqlite: bool) -> Check {
        let mut paths = vec![(dir.to_owned(), 0o700), (dir.join("keys"), 0o700)];
        if let Ok(keys) = std::fs::read_dir(dir.join("keys")) {
            let mut files: Vec<_> = keys.flatten().map(|e| e.path()).collect();
            files.sort();
            paths.extend(files.into_iter().map(|p| (p, 0o600)));
        }
        if sqlite {
            let database = Self::database_path(dir);
            for suffix in ["", "-wal", "-shm"] {
                let mut name = database.clone().into_os_string();
                name.push(suffix);
                paths.push((name.into(), 0o600));
            }
        }
        let problems: Vec<String> = paths
            .iter()
            .filter_map(|(path, wanted)| guard::check_mode(path, *wanted).err())
            .map(|e| e.to_string())
            .collect();
        if problems.is_empty() {
            Check::new(
                "permissions",
                Status::Ok,
                "the directory, its keys and its database are its owner's alone",
            )
        } else {
            Check::new("permissions", Status::Fail, problems.join("; "))
        }
    }

    /// Opens the installation in `dir` with the passphrase from its configured source
    /// (`passphrase` is that source's answer, or why there is none), which decrypts the root
    /// CA, station CA, server TLS and log keys and checks each against its certificate or
    /// verifier key. The installation comes back when its keys are sound.
    pub fn doctor_keys(
        dir: &Path,
        passphrase: Result<Passphrase, String>,
    ) -> (Check, Option<Installation>) {
        let passphrase = match passphrase {
            Ok(passphrase) => passphrase,
            Err(why) => return (Check::new("keys", Status::Fail, why), None),
        };
        match Self::open(dir, &passphrase) {
            Ok(installation) => (
                Check::new(
                    "keys",
                    Status::Ok,
                    "the passphrase decrypts the root CAs, station CA, server TLS and log keys, \
                     and each matches its certificate or verifier key",
                ),
                Some(installation),
            ),
            Err(e) => (Check::new("keys", Status::Fail, e.to_string()), None),
        }
    }

    /// Checks the database as this installation's: it is claimed by it (or, unclaimed, holds
    /// its log), every product's issuing CA key decrypts and matches the product's CA
    /// certificate, and the latest checkpoint is signed by the log key, agrees with the stored
    /// tree, and covers the entries made more than [`CHECKPOINT_LAG`] ago. Nothing is written
    /// (an unclaimed database stays unclaimed).
    pub async fn doctor_database(&self, store: &dyn Store, now: OffsetDateTime) -> Vec<Check> {
        let mut checks = vec![self.doctor_owner(store).await];
        checks.push(self.doctor_product_keys(store).await);
        checks.push(self.doctor_log(store, now).await);
        checks
    }

    async fn doctor_owner(&self, store: &dyn Store) -> Check {
        let ours = self.log_verifier.to_string();
        let name = "installation";
        match store.owner().await {
            Ok(Some(owner)) if owner == ours => Check::new(
                name,
                Status::Ok,
                "the database belongs to this installation (its log key)",
            ),
            Ok(Some(owner)) => Check::new(
                name,
                Status::Fail,
                InstallationError::DatabaseOfAnother {
                    ours,
                    theirs: owner,
                }
                .to_string(),
            ),
            Ok(None) => match store.is_empty().await {
                Ok(true) => Check::new(
                    name,
                    Status::Fail,
                    InstallationError::DatabaseEmpty.to_string(),
                ),
                Ok(false) => Check::new(
                    name,
                    Status::Warn,
                    "the database is not claimed by any installation yet; `touchmark serve` \
                     claims it when its log is this installation's",
                ),
                Err(e) => Check::new(name, Status::Fail, format!("cannot read the database: {e}")),
            },
            Err(e) => Check::new(name, Status::Fail, format!("cannot read the database: {e}")),
        }
    }

    async fn doctor_product_keys(&self, store: &dyn Store) -> Check {
        let name = "product keys";
        let products = match store.products().await {
            Ok(products) => products,
            Err(e) => return Check::new(name, Status::Fail, format!("cannot list products: {e}")),
        };
        let mut problems = Vec::new();
        for product in &products {
            let key = self.keys.load(&key_names::product(&product.id));
            if !product.ca_installed() {
                if let Err(e) = key {
                    problems.push(format!("product {}: its key: {e}", product.id));
                }
                continue;
            }
            let cert = Certificate::from_pem(&product.issuing_ca_pem);
            match (key, cert) {
                (Ok(key), Ok(cert)) if cert.spki_der() == key.public_key_spki() => {}
                (Ok(_), Ok(_)) => problems.push(format!(
                    "product {}: its key does not match its issuing CA certificate",
                    product.id
                )),
                (Err(e), _) => problems.push(format!("product {}: its key: {e}", product.id)),
                (_, Err(e)) => problems.push(format!(
                    "product {}: its issuing CA certificate: {e}",
                    product.id
                )),
            }
        }
        match (problems.is_empty(), products.len()) {
            (true, 0) => Check::new(name, Status::Ok, "no products yet"),
            (true, n) => Check::new(
                name,
                Status::Ok,
                format!(
                    "the issuing CA keys of {n} product(s) decrypt and match their certificates"
                ),
            ),
            (false, _) => Check::new(name, Status::Fail, problems.join("; ")),
        }
    }

    async fn doctor_log(&self, store: &dyn Store, now: OffsetDateTime) -> Check {
        let name = "log";
        let (state, count) = match (store.log_state().await, store.event_count().await) {
            (Ok(state), Ok(count)) => (state, count),
            (Err(e), _) | (_, Err(e)) => {
                return Check::new(name, Status::Fail, format!("cannot read the log: {e}"));
            }
        };
        let covered = match &state {
            None => 0,
            Some(state) => {
                let signed = match SignedCheckpoint::open(state.note.as_bytes(), &self.log_verifier)
                {
                    Ok(signed) => signed,
                    Err(e) => {
                        return Check::new(
                            name,
                            Status::Fail,
                            format!(
                                "the latest checkpoint is not signed by this installation's log \
                                 key ({}): {e}",
                                self.log_verifier
                            ),
                        );
                    }
                };
                let checkpoint = signed.checkpoint();
                if checkpoint.size() != state.size || checkpoint.root() != &state.root {
                    return Check::new(
                        name,
                        Status::Fail,
                        format!(
                            "the latest checkpoint (size {}) disagrees with the stored tree \
                             (size {})",
                            checkpoint.size(),
                            state.size
                        ),
                    );
                }
                state.size
            }
        };
        if count <= covered {
            return Check::new(
                name,
                Status::Ok,
                format!(
                    "the latest checkpoint is signed by the log key and covers all {count} entries"
                ),
            );
        }
        let waiting = count - covered;
        let oldest = match store.events(covered, 1).await {
            Ok(events) => events
                .first()
                .and_then(|e| Event::from_canonical(&e.bytes).ok())
                .map(|e| e.at),
            Err(e) => {
                return Check::new(name, Status::Fail, format!("cannot read the log: {e}"));
            }
        };
        let status = oldest.map_or(Status::Warn, |at| lag_status(now, at));
        let since = oldest.map_or_else(String::new, |at| {
            format!(
                ", the oldest made {} s ago",
                (now - at).whole_seconds().max(0)
            )
        });
        Check::new(
            name,
            status,
            format!(
                "{waiting} of {count} entries are not covered by a checkpoint yet{since}{}",
                if status == Status::Ok {
                    ""
                } else {
                    ": the server is not running, or its sequencer is stuck; `touchmark serve` \
                     signs a checkpoint within a second of starting"
                }
            ),
        )
    }

    /// Checks the clock against the validity of the installation's certificates and the
    /// products' issuing CAs in `store`, when it can be read: `now` must be inside each
    /// window (see [`validity_status`]).
    pub async fn doctor_clock(&self, store: Option<&dyn Store>, now: OffsetDateTime) -> Check {
        let roots = match self.layout {
            RootLayout::Split => vec![
                (
                    "device root CA".to_owned(),
                    Ok(self.device_root.certificate().clone()),
                ),
                (
                    "infrastructure root CA".to_owned(),
                    Ok(self.infra_root.certificate().clone()),
                ),
            ],
            RootLayout::Single => vec![(
                "root CA".to_owned(),
                Ok(self.device_root.certificate().clone()),
            )],
        };
        let mut certs = roots;
        certs.extend([
            (
                "station CA".to_owned(),
                Ok(self.station_ca.certificate().clone()),
            ),
            ("server TLS".to_owned(), Ok(self.server_cert.clone())),
        ]);
        if let Some(store) = store
            && let Ok(products) = store.products().await
        {
            for product in products.into_iter().filter(|p| p.ca_installed()) {
                certs.push((
                    format!("product {} CA", product.id),
                    Certificate::from_pem(&product.issuing_ca_pem),
                ));
            }
        }
        let ts = touchmark_core::clock::format_timestamp;
        let mut worst = Status::Ok;
        let mut notes = Vec::new();
        for (what, cert) in certs {
            let window = cert.and_then(|c| c.validity());
            let (status, note) = match window {
                Ok((from, until)) => {
                    let status = validity_status(now, from, until);
                    let note = match status {
                        Status::Ok => None,
                        _ if now < from => Some(format!(
                            "the {what} certificate is valid only from {}: is this \
                             machine's clock behind?",
                            ts(from)
                        )),
                        _ if now > until => {
                            Some(format!("the {what} certificate expired at {}", ts(until)))
                        }
                        _ => Some(format!("the {what} certificate expires at {}", ts(until))),
                    };
                    (status, note)
                }
                Err(e) => (Status::Fail, Some(format!("the {what} certificate: {e}"))),
            };
            worst = worst.max(status);
            notes.extend(note);
        }
        if notes.is_empty() {
            Check::new(
                "clock",
                Status::Ok,
                format!("{} is inside every certificate's validity", ts(now)),
            )
        } else {
            Check::new(
                "clock",
                worst,
                format!("the clock reads {}; {}", ts(now), notes.join("; ")),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn validity_and_lag() {
        let from = datetime!(2026-01-01 00:00 UTC);
        let until = datetime!(2027-01-01 00:00 UTC);
        let cases = [
            (
                "before notBefore: clock behind",
                datetime!(2025-12-31 23:59 UTC),
                Status::Fail,
            ),
            ("inside", datetime!(2026-06-01 00:00 UTC), Status::Ok),
            (
                "within 30 days of the end",
                datetime!(2026-12-15 00:00 UTC),
                Status::Warn,
            ),
            (
                "after notAfter",
                datetime!(2027-01-01 00:01 UTC),
                Status::Fail,
            ),
        ];
        for (name, now, want) in cases {
            assert_eq!(validity_status(now, from, until), want, "{name}");
        }
        let now = datetime!(2026-06-01 00:00 UTC);
        let lags = [
            ("just made", now, Status::Ok),
            ("59 s", now - Duration::seconds(59), Status::Ok),
            ("two minutes", now - Duration::minutes(2), Status::Warn),
        ];
        for (name, oldest, want) in lags {
            assert_eq!(lag_status(now, oldest), want, "{name}");
        }
    }
}
