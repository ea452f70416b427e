//! `touchmark revoke`: revoke a unit, an order, a product's issuing CA, a station, or the units
//! one station provisioned in a span of time, with an RFC 5280 reason; release a unit's hold.

use clap::{Args, Subcommand};
use touchmark_client::RevocationKind;
use touchmark_core::api::{Release, RevocationBody, Revoke, RevokeProvenance};

use crate::args::ApiArgs;
use crate::commands::admin::client;
use crate::output::{self, fields, or_dash};

/// The RFC 5280 reason of a revocation.
#[derive(Debug, Args)]
pub struct ReasonArg {
    /// Why: unspecified, keyCompromise, cACompromise, affiliationChanged, superseded,
    /// cessationOfOperation, certificateHold (a unit only; `revoke release` undoes it),
    /// privilegeWithdrawn or aACompromise (any case).
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
}

/// `revoke` subcommands.
#[derive(Debug, Subcommand)]
pub enum RevokeCommand {
    /// Revoke a unit's certificate. Its serial stays taken: it can never be provisioned again.
    Unit {
        /// The unit's serial.
        serial: String,
        /// The product, needed only when the serial exists in several products.
        #[arg(long)]
        product: Option<String>,
        #[command(flatten)]
        reason: ReasonArg,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Release a unit's certificateHold: its certificate is valid again.
    Release {
        /// The unit's serial.
        serial: String,
        /// The product, needed only when the serial exists in several products.
        #[arg(long)]
        product: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke every certificate issued under an order, and close the order.
    Order {
        /// The order id.
        id: String,
        #[command(flatten)]
        reason: ReasonArg,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke a product's issuing CA: every unit under it is revoked for relying parties, and
    /// the CA issues nothing more.
    Ca {
        /// The product whose issuing CA it is.
        product: String,
        #[command(flatten)]
        reason: ReasonArg,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke a station's mTLS identity: it is refused at once, on open connections too.
    Station {
        /// The station id.
        id: String,
        #[command(flatten)]
        reason: ReasonArg,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke every unit one station provisioned between two times (a station found
    /// compromised after the fact): one logged event an auditor can recompute.
    Provenance {
        /// The station id.
        station: String,
        /// The span's start, RFC 3339, inclusive.
        #[arg(long)]
        from: String,
        /// The span's end, RFC 3339, exclusive.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        reason: ReasonArg,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Runs a `revoke` subcommand.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn run(command: RevokeCommand) -> anyhow::Result<()> {
    let revoke = |reason: ReasonArg, product: Option<String>| Revoke {
        reason: reason.reason,
        product,
    };
    let (api, done) = match command {
        RevokeCommand::Unit {
            serial,
            product,
            reason,
            api,
        } => {
            let body = revoke(reason, product);
            let done = client(&api)?
                .revoke(RevocationKind::Unit, &serial, &body)
                .await?;
            (api, done)
        }
        RevokeCommand::Release {
            serial,
            product,
            api,
        } => {
            let done = client(&api)?
                .release_unit(&serial, &Release { product })
                .await?;
            (api, done)
        }
        RevokeCommand::Order { id, reason, api } => {
            let done = client(&api)?
                .revoke(RevocationKind::Order, &id, &revoke(reason, None))
                .await?;
            (api, done)
        }
        RevokeCommand::Ca {
            product,
            reason,
            api,
        } => {
            let done = client(&api)?
                .revoke(RevocationKind::Ca, &product, &revoke(reason, None))
                .await?;
            (api, done)
        }
        RevokeCommand::Station { id, reason, api } => {
            let done = client(&api)?
                .revoke(RevocationKind::Station, &id, &revoke(reason, None))
                .await?;
            (api, done)
        }
        RevokeCommand::Provenance {
            station,
            from,
            to,
            reason,
            api,
        } => {
            let body = RevokeProvenance {
                station,
                from,
                to,
                reason: reason.reason,
            };
            let done = client(&api)?.revoke_provenance(&body).await?;
            (api, done)
        }
    };
    if api.json {
        return output::json(&done);
    }
    print(&done);
    Ok(())
}

fn print(done: &RevocationBody) {
    let what = if done.changed {
        "done"
    } else {
        "already in force: nothing changed"
    };
    fields(&[
        ("target", format!("{} {}", done.target, done.id)),
        ("reason", done.reason.clone()),
        ("revoked", done.revoked.to_string()),
        ("released", done.released.to_string()),
        ("result", what.to_owned()),
        (
            "log index",
            or_dash(done.index.map(|i| i.to_string()).as_deref()),
        ),
    ]);
}
