//! `touchmark demo`: DESIGN §12 on one machine. A fresh installation, a server on a free port,
//! a product, a factory with three stations, an order of 500, three simulated lines on 600
//! passing units plus some that fail their test, two clones, the log replayed, and a summary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use indicatif::MultiProgress;
use serde::Serialize;
use touchmark_authority::log::LogConfig;
use touchmark_authority::{InitOptions, Installation};
use touchmark_client::{Client, ClientConfig, Identity};
use touchmark_core::api::{
    CreateFactory, CreateOrder, CreateProduct, CreateStation, EnrollRequest,
};
use touchmark_core::command::NewTokenRequest;
use touchmark_core::entity::Role;
use touchmark_core::event::Actor;
use touchmark_core::field::Label;
use touchmark_core::{Clock, SystemClock};
use touchmark_pki::{KeyAlgorithm, Passphrase, SoftwareSigner, build_csr};
use touchmark_server::Server;
use touchmark_store::Store;
use touchmark_store_sqlite::SqliteStore;

use crate::cli::DemoArgs;
use crate::output::{self, Table};
use crate::sim::{self, Kind, Outcome, SimUnit, Tally};
use crate::{config, secrets};

const DEFAULT_DIR: &str = "touchmark-demo";
const MARKER: &str = ".touchmark-demo";
const ORDER: &str = "PO-DEMO-0001";
const QUOTA: u64 = 500;
const LINES: usize = 3;
const PASSING: u64 = 600;
/// Every 26th unit fails its test: 24 failures among 624 units.
const FAIL_EVERY: u64 = 26;

/// What the demo showed, and whether it is what it should be.
#[derive(Debug, Serialize)]
struct Summary {
    url: String,
    data: String,
    quota: u64,
    issued: u64,
    refused_beyond_quota: u64,
    failed_tests: u64,
    clones: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    errors: u64,
    events_replayed: u64,
    checkpoint_size: u64,
    audit_violations: Vec<String>,
    database_agrees_with_log: bool,
    seconds: f64,
    as_expected: bool,
    problems: Vec<String>,
}

/// Picks and prepares the data directory: a fresh one. The default directory is replaced when
/// it holds an earlier demo; anything else that exists is left alone.
fn prepare(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let (dir, ours) = match dir {
        Some(dir) => (dir, false),
        None => (PathBuf::from(DEFAULT_DIR), true),
    };
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if ours && dir.join(MARKER).exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove the earlier demo in {}", dir.display()))?;
        } else if !empty {
            bail!(
                "{} exists and is not an earlier demo's directory; give --data a new directory",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "created by touchmark demo; removed by the next demo\n",
    )?;
    Ok(dir)
}

fn passphrase(dir: &Path) -> anyhow::Result<Passphrase> {
    if std::env::var_os("TOUCHMARK_KEY_PASSPHRASE").is_some()
        || std::env::var_os("TOUCHMARK_KEY_PASSPHRASE_FILE").is_some()
    {
        return secrets::passphrase();
    }
    // A demo on a fresh machine needs no set-up: a random passphrase, kept beside the data.
    let secret = touchmark_authority::secrets::random_secret("demo-");
    secrets::write_secret_file(&dir.join("passphrase.txt"), &secret)?;
    Ok(Passphrase::new(secret)?)
}

async fn enroll(admin: &Client, url: &str, root: &str, id: &str) -> anyhow::Result<Client> {
    let created = admin
        .create_station(&CreateStation {
            id: Some(id.into()),
            factory: "cm-demo".into(),
            name: None,
            enrollment_ttl_minutes: Some(60),
        })
        .await?;
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256)?;
    let csr = touchmark_pki::pem::encode("CERTIFICATE REQUEST", &build_csr(&key, id)?);
    let anonymous = Client::new(ClientConfig::new(url, root))?;
    let enrolled = anonymous
        .enroll(&EnrollRequest {
            token: created.enrollment_token,
            csr,
        })
        .await?;
    let mut config = ClientConfig::new(url, root);
    config.identity = Some(Identity::new(
        enrolled.certificate_pem,
        key.pkcs8_pem().to_string(),
    ));
    Ok(Client::new(config)?)
}

/// Audits the demo's log as an auditor would, over HTTPS with the log's key alone, once a
/// checkpoint covers every event; then compares the log's story with the database's counts.
async fn audit(
    log: &touchmark_authority::log::Log,
    store: &Arc<dyn Store>,
    url: &str,
    dir: &Path,
) -> anyhow::Result<(crate::commands::audit::Report, bool)> {
    while log.latest().map(|l| l.size()) != Some(store.event_count().await?) {
        log.sequence_once(time::OffsetDateTime::now_utc()).await?;
    }
    let args = crate::commands::audit::VerifyArgs {
        source: url.to_owned(),
        key: format!("{}", log.verifier()),
        state: dir.join("audit.state"),
        cache: None,
        trust: crate::cli::RootCaArgs::of_installation(dir),
        json: false,
        quiet: true,
    };
    let report = crate::commands::audit::verify(&args, None).await?;
    let order = touchmark_core::OrderId::parse(ORDER)?;
    let counts = store.order_counts(&order).await?;
    let logged = report.orders.get(ORDER).cloned().unwrap_or_default();
    let agrees = logged.issued == counts.issued
        && counts.issued == counts.certificates
        && logged.failed_tests == counts.failed_tests
        && logged.refusals == counts.refusals;
    Ok((report, agrees))
}

/// Runs `touchmark demo`.
///
/// # Errors
/// When the demo cannot be set up; with `--exit`, also when an outcome is not as expected.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let dir = prepare(args.data)?;
    let passphrase = passphrase(&dir)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = InitOptions {
        organization: "Touchmark Demo".into(),
        hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        log_origin: "demo.touchmark.local/log".into(),
    };
    let installation = Installation::init(&dir, &passphrase, &options, clock.now())?;
    std::fs::write(
        dir.join(config::FILE),
        config::initial_file(&crate::database::Database::for_dir(&dir, None)),
    )?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&Installation::database_path(&dir))?);
    installation.claim(store.as_ref(), clock.now()).await?;
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = Server::bind(
        listen,
        &installation,
        Arc::clone(&store),
        clock,
        LogConfig::default(),
    )
    .await?;
    let port = server.local_addr()?.port();
    let log = Arc::clone(server.log());
    let admin = NewTokenRequest {
        role: Role::Admin,
        label: Label::parse("label", "touchmark demo")?,
    };
    let (_, _, token) = server
        .authority()
        .create_token(Actor::System, admin)
        .await
        .context("cannot create the admin token")?;
    secrets::write_secret_file(&dir.join("admin.token"), &token)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let url = format!("https://localhost:{port}");
    let root = std::fs::read_to_string(dir.join("certs/root-ca.pem"))?;
    let quiet = args.json;
    let say = |line: String| {
        if !quiet {
            println!("{line}");
        }
    };
    say(format!(
        "Touchmark demo: server at {url}, data in {}",
        dir.display()
    ));

    let mut config = ClientConfig::new(url.clone(), root.clone());
    config.token = Some(token.clone());
    let admin = Client::new(config)?;
    admin
        .create_product(&CreateProduct {
            id: Some("sensor-v2".into()),
            name: "Sensor v2".into(),
            organization: "Acme Devices".into(),
            common_name: "Acme Sensor".into(),
            hw_type_oid: Some("1.3.6.1.4.1.99999.1.2".into()),
            crl_url: None,
            ocsp_url: None,
            cert_not_after: None,
        })
        .await?;
    admin
        .create_factory(&CreateFactory {
            id: Some("cm-demo".into()),
            name: "Demo contract manufacturer".into(),
        })
        .await?;
    admin
        .create_order(&CreateOrder {
            id: Some(ORDER.into()),
            product: "sensor-v2".into(),
            factory: "cm-demo".into(),
            quota: QUOTA,
            serial_range: Some("SN-000001..SN-000999".into()),
            serial_pattern: None,
            not_before: None,
            not_after: None,
            open: true,
        })
        .await?;
    let mut stations = Vec::new();
    for line in 1..=LINES {
        stations.push(enroll(&admin, &url, &root, &format!("line-{line}")).await?);
    }
    say(format!(
        "Product sensor-v2, factory cm-demo with {LINES} enrolled stations, order {ORDER} open with a quota of {QUOTA}."
    ));

    // 600 passing units and every 26th failing, dealt to the lines in turn.
    let total = PASSING + PASSING / (FAIL_EVERY - 1);
    let mut rng = sim::rng(Some(2026));
    let mut per_line: Vec<Vec<SimUnit>> = vec![Vec::new(); LINES];
    let mut keys = Vec::new();
    for n in 1..=total {
        let kind = if n % FAIL_EVERY == 0 {
            Kind::FailsTest
        } else {
            Kind::Good
        };
        let (unit, key) = SimUnit::new(format!("SN-{n:06}"), kind, &mut rng)?;
        per_line[(n as usize - 1) % LINES].push(unit);
        keys.push(key);
    }
    say(format!(
        "Running {LINES} lines on {total} units ({} will fail their test)...",
        total - PASSING
    ));
    let bars = MultiProgress::new();
    if quiet {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut lines = Vec::new();
    for (i, units) in per_line.into_iter().enumerate() {
        let bar = bars.add(sim::bar(units.len() as u64, &format!("line-{}", i + 1)));
        lines.push(tokio::spawn(sim::run_line(
            stations[i].clone(),
            ORDER.into(),
            units,
            4,
            0.0,
            Some(bar),
        )));
    }
    let mut tally = Tally::default();
    for line in lines {
        let (line_tally, _) = line.await?;
        tally.merge(&line_tally);
    }
    bars.clear().ok();

    // Two clones: a serial seen again with a new key, and a key seen again with a new serial.
    let issued = store.units(&touchmark_core::OrderId::parse(ORDER)?).await?;
    let first = issued
        .iter()
        .find(|u| u.status == touchmark_core::entity::UnitStatus::Provisioned)
        .map(|u| u.serial.to_string());
    if let Some(first) = first {
        let number: usize = first.trim_start_matches("SN-").parse().unwrap_or(1);
        let (serial_clone, _) = SimUnit::new(first.clone(), Kind::CloneSerial, &mut rng)?;
        let key_clone = SimUnit::clone_key("SN-000900".into(), &keys[number - 1], &mut rng)?;
        for unit in [serial_clone, key_clone] {
            let outcome = sim::provision(&stations[0], ORDER, &unit).await;
            tally.add(unit.kind, &outcome);
            if let Outcome::Refused(code) = &outcome {
                say(format!(
                    "Clone {} ({:?}) refused: {code}",
                    unit.serial, unit.kind
                ));
            }
        }
    }

    let (audit_report, agrees) = audit(&log, &store, &url, &dir).await?;
    let report = audit_report.orders.get(ORDER).cloned().unwrap_or_default();
    let mut summary = Summary {
        url: url.clone(),
        data: dir.display().to_string(),
        quota: QUOTA,
        issued: tally.issued,
        refused_beyond_quota: tally.refused_with("quota_exhausted"),
        failed_tests: tally.refused_with("test_failed"),
        clones: tally.clones.clone(),
        errors: tally.errors.values().sum(),
        events_replayed: audit_report.events,
        checkpoint_size: audit_report.checkpoint.size,
        audit_violations: audit_report
            .violations
            .iter()
            .map(|v| v.to_string())
            .collect(),
        database_agrees_with_log: agrees,
        seconds: started.elapsed().as_secs_f64(),
        as_expected: false,
        problems: Vec::new(),
    };
    let clone_code = |kind: &str, code: &str| {
        summary
            .clones
            .get(kind)
            .and_then(|c| c.get(code))
            .copied()
            .unwrap_or(0)
    };
    let checks = [
        (
            summary.issued == QUOTA && report.issued == QUOTA,
            format!(
                "issued {} (log: {}), expected {QUOTA}",
                summary.issued, report.issued
            ),
        ),
        (
            summary.refused_beyond_quota == PASSING - QUOTA,
            format!(
                "{} refused beyond quota, expected {}",
                summary.refused_beyond_quota,
                PASSING - QUOTA
            ),
        ),
        (
            summary.failed_tests == total - PASSING,
            format!(
                "{} failed tests, expected {}",
                summary.failed_tests,
                total - PASSING
            ),
        ),
        (
            clone_code("clone_serial", "serial_conflict") == 1,
            "the serial clone was not refused with serial_conflict".to_owned(),
        ),
        (
            clone_code("clone_key", "key_reused") == 1,
            "the key clone was not refused with key_reused".to_owned(),
        ),
        (
            summary.errors == 0,
            format!("{} errors: {:?}", summary.errors, tally.errors),
        ),
        (
            summary.audit_violations.is_empty(),
            format!(
                "the log replay found violations: {:?}",
                summary.audit_violations
            ),
        ),
        (
            agrees,
            "the database's counts differ from the log's".to_owned(),
        ),
    ];
    summary.problems = checks
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, why)| why.clone())
        .collect();
    summary.as_expected = summary.problems.is_empty();

    if args.json {
        output::json(&summary)?;
    } else {
        println!();
        let mut table = Table::new(&["", "UNITS"]);
        table.row(vec![
            format!("issued (quota {QUOTA})"),
            summary.issued.to_string(),
        ]);
        table.row(vec![
            "refused beyond quota: quota_exhausted".into(),
            summary.refused_beyond_quota.to_string(),
        ]);
        table.row(vec![
            "failed tests: test_failed (recorded, no quota used)".into(),
            summary.failed_tests.to_string(),
        ]);
        table.row(vec![
            "clone, same serial new key: serial_conflict".into(),
            clone_code("clone_serial", "serial_conflict").to_string(),
        ]);
        table.row(vec![
            "clone, same key new serial: key_reused".into(),
            clone_code("clone_key", "key_reused").to_string(),
        ]);
        table.row(vec!["errors".into(), summary.errors.to_string()]);
        table.print();
        println!(
            "\nAudit (over HTTPS, with the log's public key alone): the checkpoint of {} entries is \
             signed, every entry, tile and the root recomputed, {} events replayed, {} violations; \
             the log and the database {}.",
            summary.checkpoint_size,
            summary.events_replayed,
            summary.audit_violations.len(),
            if agrees { "agree" } else { "DISAGREE" }
        );
        println!(
            "Done in {:.1} s: {}.",
            summary.seconds,
            if summary.as_expected {
                "every outcome as expected"
            } else {
                "NOT as expected"
            }
        );
        for problem in &summary.problems {
            println!("  problem: {problem}");
        }
    }
    if args.exit {
        let _ = stop.send(());
        let _ = serving.await;
        if !summary.as_expected {
            bail!(
                "the demo's outcomes were not as expected: {}",
                summary.problems.join("; ")
            );
        }
        return Ok(());
    }
    if !args.json {
        println!("\nThe server keeps running until Ctrl-C:");
        output::fields(&[
            ("API", format!("{url}/v1  (OpenAPI: {url}/openapi.json)")),
            (
                "root CA",
                dir.join("certs/root-ca.pem").display().to_string(),
            ),
            ("admin token", token),
        ]);
        println!(
            "\nTry: touchmark order show {ORDER} --server {url} --data {} --token-file {}",
            dir.display(),
            dir.join("admin.token").display()
        );
    }
    crate::commands::serve::shutdown_signal().await;
    let _ = stop.send(());
    let _ = serving.await;
    Ok(())
}
