//! Admin and auditor commands: thin calls to the API, printed as tables or JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use touchmark_audit::UnitReceipt;
use touchmark_client::{Client, ClientConfig};
use touchmark_core::api::{
    CreateFactory, CreateOrder, CreateProduct, CreateStation, CreateToken, OrderBody,
};

use crate::args::ApiArgs;
use crate::output::{self, Table, fields, or_dash};

/// `product` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    /// Create a product and its issuing CA.
    Create {
        /// The product id [default: generated].
        #[arg(long)]
        id: Option<String>,
        /// A human name.
        #[arg(long)]
        name: String,
        /// Subject O of device certificates.
        #[arg(long)]
        org: String,
        /// Subject CN of device certificates.
        #[arg(long)]
        cn: String,
        /// RFC 4108 hwType OID for hardwareModuleName [default: a random arc under 2.25].
        #[arg(long)]
        hw_type_oid: Option<String>,
        /// CRL distribution point URL.
        #[arg(long)]
        crl_url: Option<String>,
        /// OCSP responder URL.
        #[arg(long)]
        ocsp_url: Option<String>,
        /// Device certificate notAfter, RFC 3339 [default: 9999-12-31T23:59:59Z].
        #[arg(long)]
        cert_not_after: Option<String>,
        /// Require secure-element attestation: a PEM file of the chip vendor's root CA
        /// certificates, which every unit's identity key (and encryption key, for a release)
        /// must be certified up to. Set only when the product is created.
        #[arg(long, value_name = "PEM")]
        attestation_roots: Option<std::path::PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List products.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a product, with its issuing CA.
    Show {
        /// The product id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Register and list the public keys that sign the product's firmware images.
    #[command(subcommand)]
    FirmwareKey(crate::commands::firmware::FirmwareKeyCommand),
}

/// `factory` subcommands.
#[derive(Debug, Subcommand)]
pub enum FactoryCommand {
    /// Create a factory.
    Create {
        /// The factory id [default: generated].
        #[arg(long)]
        id: Option<String>,
        /// A human name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List factories.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// The admin's `station` subcommands.
#[derive(Debug, Subcommand)]
pub enum StationCommand {
    /// Create a station and print its one-time enrollment token.
    Create {
        /// The factory the station belongs to.
        #[arg(long)]
        factory: String,
        /// The station id [default: generated].
        #[arg(long)]
        id: Option<String>,
        /// A human name.
        #[arg(long)]
        name: Option<String>,
        /// Minutes until the enrollment token expires.
        #[arg(long, default_value_t = 1440)]
        ttl_minutes: u64,
        /// Also write the enrollment token to this file (created with mode 0600).
        #[arg(long)]
        enrollment_token_file: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List stations.
    List {
        /// Only stations of this factory.
        #[arg(long)]
        factory: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a station.
    Show {
        /// The station id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke a station: it is refused at once.
    Revoke {
        /// The station id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `order` subcommands.
#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Create an order (in draft unless --open).
    Create {
        /// The order id [default: generated].
        #[arg(long)]
        id: Option<String>,
        /// The product built.
        #[arg(long)]
        product: String,
        /// The factory that builds it.
        #[arg(long)]
        factory: String,
        /// How many units may receive an identity.
        #[arg(long)]
        quota: u64,
        /// Admitted serials as a range, such as SN-000001..SN-000500.
        #[arg(long, conflicts_with = "serial_pattern")]
        serial_range: Option<String>,
        /// Admitted serials as a regular expression the whole serial must match.
        #[arg(long)]
        serial_pattern: Option<String>,
        /// Start of the window, RFC 3339.
        #[arg(long)]
        not_before: Option<String>,
        /// End of the window, RFC 3339.
        #[arg(long)]
        not_after: Option<String>,
        /// Open the order at once.
        #[arg(long)]
        open: bool,
        /// The version of the product's release its units receive, each re-wrapped to the
        /// unit's own key (units must then send their encryption key).
        #[arg(long, value_name = "VERSION")]
        release: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Name the release an order's units receive from now on (logged; an open order too).
    Release {
        /// The order id.
        id: String,
        /// The release's version, of the order's product.
        #[arg(long, value_name = "VERSION")]
        release: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List orders.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show an order with its counts.
    Show {
        /// The order id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Open an order.
    Open {
        /// The order id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Close an order.
    Close {
        /// The order id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel an order.
    Cancel {
        /// The order id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change an order's quota (logged with the old and new value).
    Quota {
        /// The order id.
        id: String,
        /// The new quota.
        quota: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `unit` subcommands.
#[derive(Debug, Subcommand)]
pub enum UnitCommand {
    /// List an order's units.
    List {
        /// The order.
        #[arg(long)]
        order: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a unit by serial.
    Show {
        /// The serial.
        serial: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a unit's receipt (`c2sp.org/tlog-proof@v1`): the inclusion proof of its issuance
    /// and the signed checkpoint. With --key, verify it here first.
    Receipt {
        /// The serial.
        serial: String,
        /// The log's verifier key (`<origin>+<id>+<key>`), or `@FILE` holding it.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a unit's history, oldest first: every test attempt with its failed steps and
    /// measurements (all of them with --json), and its certificate.
    History {
        /// The serial.
        serial: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; the secret is printed once.
    Create {
        /// `admin`, `auditor` (read-only) or `field` (a field backend: `/v1/field/*` only).
        #[arg(long)]
        role: String,
        /// A note for humans.
        #[arg(long)]
        label: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Arguments of `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// First index.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Most events shown (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// A client for `api`: the server URL, the token and the root CA to trust.
///
/// # Errors
/// When no root CA can be read or the client cannot be built.
pub fn client(api: &ApiArgs) -> anyhow::Result<Client> {
    let ca_path = api.trust.path();
    let root_ca_pem = std::fs::read_to_string(&ca_path).with_context(|| {
        format!(
            "cannot read the root CA {} (give --ca, or --data for the installation)",
            ca_path.display()
        )
    })?;
    let mut config = ClientConfig::new(api.server.clone(), root_ca_pem);
    config.token = api.token()?;
    Ok(Client::new(config)?)
}

fn order_table(orders: Vec<OrderBody>) {
    let mut table = Table::new(&[
        "ORDER", "PRODUCT", "FACTORY", "STATE", "ISSUED", "QUOTA", "SERIALS",
    ]);
    for o in orders {
        table.row(vec![
            o.id,
            o.product,
            o.factory,
            o.state,
            o.issued.to_string(),
            o.quota.to_string(),
            o.serial_rule,
        ]);
    }
    table.print();
}

fn order_fields(o: &OrderBody) {
    fields(&[
        ("order", o.id.clone()),
        ("product", o.product.clone()),
        ("factory", o.factory.clone()),
        ("state", o.state.clone()),
        (
            "issued",
            format!("{} of {} ({} left)", o.issued, o.quota, o.remaining),
        ),
        ("serials", o.serial_rule.clone()),
        (
            "window",
            format!(
                "{} .. {}",
                or_dash(o.not_before.as_deref()),
                or_dash(o.not_after.as_deref())
            ),
        ),
    ]);
}

/// Runs a `product` subcommand.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn product(command: ProductCommand) -> anyhow::Result<()> {
    match command {
        ProductCommand::Create {
            id,
            name,
            org,
            cn,
            hw_type_oid,
            crl_url,
            ocsp_url,
            cert_not_after,
            attestation_roots,
            api,
        } => {
            let attestation_roots_pem = attestation_roots
                .map(|path| {
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))
                })
                .transpose()?;
            let request = CreateProduct {
                id,
                name,
                organization: org,
                common_name: cn,
                hw_type_oid,
                crl_url,
                ocsp_url,
                cert_not_after,
                attestation_roots_pem,
            };
            let p = client(&api)?.create_product(&request).await?;
            if api.json {
                return output::json(&p);
            }
            if p.issuing_ca_pem.trim().is_empty() {
                println!(
                    "Created product {}. The device root is offline: `touchmark ca csr --product {0}`, \
                     have the root sign the request, then `touchmark ca install`.",
                    p.id
                );
            } else {
                println!("Created product {} with its issuing CA.", p.id);
            }
            fields(&[
                (
                    "subject",
                    format!("O={}, CN={}", p.organization, p.common_name),
                ),
                ("hwType", p.hw_type_oid),
            ]);
        }
        ProductCommand::List { api } => {
            let products = client(&api)?.products().await?;
            if api.json {
                return output::json(&products);
            }
            let mut table = Table::new(&["PRODUCT", "NAME", "ORGANIZATION", "COMMON NAME"]);
            for p in products {
                table.row(vec![p.id, p.name, p.organization, p.common_name]);
            }
            table.print();
        }
        ProductCommand::FirmwareKey(c) => crate::commands::firmware::firmware_key(c).await?,
        ProductCommand::Show { id, api } => {
            let p = client(&api)?.product(&id).await?;
            if api.json {
                return output::json(&p);
            }
            fields(&[
                ("product", p.id),
                ("name", p.name),
                (
                    "subject",
                    format!("O={}, CN={}", p.organization, p.common_name),
                ),
                ("hwType", p.hw_type_oid),
                ("CRL", or_dash(p.crl_url.as_deref())),
                ("OCSP", or_dash(p.ocsp_url.as_deref())),
                (
                    "notAfter",
                    p.cert_not_after.unwrap_or_else(|| "99991231235959Z".into()),
                ),
                (
                    "attestation",
                    if p.attestation_roots_pem.is_some() {
                        "required (vendor roots below the issuing CA)".into()
                    } else {
                        "not required".into()
                    },
                ),
            ]);
            print!("{}", p.issuing_ca_pem);
            if let Some(roots) = &p.attestation_roots_pem {
                print!("{roots}");
            }
        }
    }
    Ok(())
}

/// Runs a `factory` subcommand.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn factory(command: FactoryCommand) -> anyhow::Result<()> {
    match command {
        FactoryCommand::Create { id, name, api } => {
            let f = client(&api)?
                .create_factory(&CreateFactory { id, name })
                .await?;
            if api.json {
                return output::json(&f);
            }
            println!("Created factory {} ({}).", f.id, f.name);
        }
        FactoryCommand::List { api } => {
            let factories = client(&api)?.factories().await?;
            if api.json {
                return output::json(&factories);
            }
            let mut table = Table::new(&["FACTORY", "NAME", "CREATED"]);
            for f in factories {
                table.row(vec![f.id, f.name, f.created_at]);
            }
            table.print();
        }
    }
    Ok(())
}

/// Runs an admin `station` subcommand (what runs on the fixture PC is in `fixture` and `run`).
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn station(command: StationCommand) -> anyhow::Result<()> {
    match command {
        StationCommand::Create {
            factory,
            id,
            name,
            ttl_minutes,
            enrollment_token_file,
            api,
        } => {
            let request = CreateStation {
                id,
                factory,
                name,
                enrollment_ttl_minutes: Some(ttl_minutes),
            };
            let created = client(&api)?.create_station(&request).await?;
            if let Some(path) = enrollment_token_file {
                crate::secrets::write_secret_file(&path, &created.enrollment_token)?;
            }
            if api.json {
                return output::json(&created);
            }
            let s = &created.station;
            println!("Created station {} in factory {}.", s.id, s.factory);
            println!(
                "Enrollment token (one use, expires {}):\n\n  {}\n",
                s.enrollment_expires_at, created.enrollment_token
            );
            println!(
                "On the fixture PC: touchmark station enroll --server {} --token <token> --ca infra-root-ca.pem",
                api.server
            );
        }
        StationCommand::List { factory, api } => {
            let stations = client(&api)?.stations(factory.as_deref()).await?;
            if api.json {
                return output::json(&stations);
            }
            let mut table = Table::new(&["STATION", "FACTORY", "STATUS", "NAME"]);
            for s in stations {
                table.row(vec![s.id, s.factory, s.status, s.name]);
            }
            table.print();
        }
        StationCommand::Show { id, api } => {
            let s = client(&api)?.station(&id).await?;
            if api.json {
                return output::json(&s);
            }
            fields(&[
                ("station", s.id),
                ("factory", s.factory),
                ("status", s.status),
                ("name", s.name),
                ("certificate", or_dash(s.cert_sha256.as_deref())),
            ]);
        }
        StationCommand::Revoke { id, api } => {
            let s = client(&api)?.revoke_station(&id).await?;
            if api.json {
                return output::json(&s);
            }
            println!("Revoked station {}; it is refused from now on.", s.id);
        }
    }
    Ok(())
}

/// Runs an `order` subcommand.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn order(command: OrderCommand) -> anyhow::Result<()> {
    let (api, result) = match command {
        OrderCommand::Create {
            id,
            product,
            factory,
            quota,
            serial_range,
            serial_pattern,
            not_before,
            not_after,
            open,
            release,
            api,
        } => {
            let request = CreateOrder {
                id,
                product,
                factory,
                quota,
                serial_range,
                serial_pattern,
                not_before,
                not_after,
                open,
                release,
            };
            let o = client(&api)?.create_order(&request).await?;
            (api, o)
        }
        OrderCommand::Release { id, release, api } => {
            let named = client(&api)?.set_order_release(&id, &release).await?;
            if api.json {
                return output::json(&named);
            }
            fields(&[
                ("order", named.order),
                ("release", named.release),
                ("version", named.version),
            ]);
            return Ok(());
        }
        OrderCommand::List { api } => {
            let orders = client(&api)?.orders().await?;
            if api.json {
                return output::json(&orders);
            }
            order_table(orders);
            return Ok(());
        }
        OrderCommand::Show { id, api } => {
            let detail = client(&api)?.order(&id).await?;
            if api.json {
                return output::json(&detail);
            }
            order_fields(&detail.order);
            fields(&[
                ("certificates", detail.certificates.to_string()),
                ("issued events", detail.issued_events.to_string()),
                ("failed tests", detail.failed_tests.to_string()),
            ]);
            if !detail.refusals.is_empty() {
                println!("refusals:");
                for (code, n) in &detail.refusals {
                    println!("  {code:<24} {n}");
                }
            }
            return Ok(());
        }
        OrderCommand::Open { id, api } => {
            let o = client(&api)?.open_order(&id).await?;
            (api, o)
        }
        OrderCommand::Close { id, api } => {
            let o = client(&api)?.close_order(&id).await?;
            (api, o)
        }
        OrderCommand::Cancel { id, api } => {
            let o = client(&api)?.cancel_order(&id).await?;
            (api, o)
        }
        OrderCommand::Quota { id, quota, api } => {
            let o = client(&api)?.set_quota(&id, quota).await?;
            (api, o)
        }
    };
    if api.json {
        return output::json(&result);
    }
    order_fields(&result);
    Ok(())
}

/// Runs a `unit` subcommand.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn unit(command: UnitCommand) -> anyhow::Result<()> {
    let (api, units) = match command {
        UnitCommand::Receipt { serial, key, api } => {
            return receipt(&serial, key.as_deref(), &api).await;
        }
        UnitCommand::History { serial, api } => {
            return super::oversight::history(&serial, &api).await;
        }
        UnitCommand::List { order, api } => {
            let units = client(&api)?.order_units(&order).await?;
            (api, units)
        }
        UnitCommand::Show { serial, api } => {
            let units = client(&api)?.unit(&serial).await?;
            (api, units)
        }
    };
    if api.json {
        return output::json(&units);
    }
    let mut table = Table::new(&[
        "SERIAL",
        "PRODUCT",
        "ORDER",
        "STATUS",
        "STATION",
        "TESTS",
        "CERTIFICATE SHA-256",
    ]);
    for u in units {
        table.row(vec![
            u.serial,
            u.product,
            u.order,
            u.status,
            or_dash(u.station.as_deref()),
            u.test_attempts.to_string(),
            or_dash(u.cert_sha256.as_deref()),
        ]);
    }
    table.print();
    Ok(())
}

/// Runs a `token` subcommand.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { role, label, api } => {
            let created = client(&api)?
                .create_token(&CreateToken { role, label })
                .await?;
            if api.json {
                return output::json(&created);
            }
            println!(
                "Created {} token {} (shown once):\n\n  {}\n",
                created.role, created.id, created.token
            );
        }
    }
    Ok(())
}

/// Runs `events`.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let events = client(&args.api)?.events(args.start, args.limit).await?;
    if args.api.json {
        return output::json(&events);
    }
    for e in events {
        println!("{:>8}  {}", e.index, e.canonical);
    }
    Ok(())
}

/// Fetches a unit's receipt and, given the log's key, verifies it: the signature of the
/// checkpoint, the inclusion proof, and that the proven entry is this unit's issuance.
async fn receipt(serial: &str, key: Option<&str>, api: &ApiArgs) -> anyhow::Result<()> {
    let client = client(api)?;
    let text = client.unit_receipt(serial).await?;
    let Some(key) = key else {
        print!("{text}");
        return Ok(());
    };
    let verifier = touchmark_audit::verifier_key(key).context("--key")?;
    let receipt = UnitReceipt::parse(&text).context("the server's receipt")?;
    let entry = client
        .events(receipt.index(), 1)
        .await?
        .into_iter()
        .next()
        .with_context(|| format!("log entry {} is missing", receipt.index()))?;
    let checkpoint = receipt.verify(entry.canonical.as_bytes(), serial, &verifier)?;
    if api.json {
        return output::json(&serde_json::json!({
            "serial": serial, "index": receipt.index(), "checkpoint_size": checkpoint.size(), "verified": true, "receipt": text
        }));
    }
    print!("{text}");
    eprintln!(
        "verified: entry {} (the issuance of {serial}) is in the log of size {}, signed by {}",
        receipt.index(),
        checkpoint.size(),
        verifier.name()
    );
    Ok(())
}
