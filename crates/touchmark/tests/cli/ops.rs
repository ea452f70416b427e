//! Operations (issue 11, newcomer 9): a backup taken while units are provisioned, restored
//! into a new data directory, served and audited; `doctor` finding each broken thing; shell
//! completions and manual pages that bash and roff accept.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::kit::{self, Served};

fn touchmark(work: &Path) -> Command {
    let mut command = Command::new(kit::bin());
    command
        .current_dir(work)
        .env_remove("TOUCHMARK_KEY_PASSPHRASE_FILE")
        .env_remove("TOUCHMARK_DATABASE_URL")
        .env_remove("TOUCHMARK_DATABASE_URL_FILE")
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE);
    command
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file under `dir`, with its mode, for the privacy checks.
#[cfg(unix)]
fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private(&path);
        } else {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(tree(&path));
            } else {
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_units_are_provisioned_restores_serves_and_verifies() {
    let (tmp, data) = kit::tempdir();
    let work = tmp.path();
    let token = kit::init(&data);
    let served = Served::start(&data);
    let admin = kit::admin(&served.url, &data, &token);
    kit::setup_order(&admin, "PO-1", 5000).await;
    let identity = kit::enroll(&admin, &served.url, &data, "cm", "line-1").await;
    let station = kit::station_client(&served.url, &data, &identity);
    for n in 1..=20 {
        let unit = kit::Unit::new(format!("SN-{n:06}"));
        station.provision("PO-1", &unit.request()).await.unwrap();
    }
    // A line keeps provisioning, four at a time, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut line = Vec::new();
    for worker in 0..4u64 {
        let (station, stop) = (station.clone(), Arc::clone(&stop));
        line.push(tokio::spawn(async move {
            let mut n = 1000 + worker;
            while !stop.load(Ordering::SeqCst) && n < 5000 {
                let unit = kit::Unit::new(format!("SN-{n:06}"));
                station.provision("PO-1", &unit.request()).await.unwrap();
                n += 4;
            }
        }));
    }
    while admin.order("PO-1").await.unwrap().certificates < 60 {
        tokio::task::yield_now().await;
    }
    let before = admin.order("PO-1").await.unwrap().certificates;
    let dest = work.join("backup");
    let out = tokio::task::spawn_blocking({
        let (work, data, dest) = (work.to_owned(), data.clone(), dest.clone());
        move || {
            touchmark(&work)
                .arg("backup")
                .arg(&dest)
                .arg("--data")
                .arg(&data)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let after = admin.order("PO-1").await.unwrap().certificates;
    assert!(
        line.iter().all(|w| !w.is_finished()),
        "the line ran through the whole backup"
    );
    stop.store(true, Ordering::SeqCst);
    for worker in line {
        worker.await.unwrap();
    }
    kit::assert_success(&out, "backup");
    #[cfg(unix)]
    assert_private(&dest);

    // A backup's destination and a restore's target must be new or empty.
    let out = touchmark(work)
        .arg("backup")
        .arg(&dest)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("not empty"), "{}", stderr_of(&out));
    let live = tree(&data.join("keys"));
    let out = touchmark(work)
        .arg("restore")
        .arg(&dest)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("already served"),
        "a live data directory is refused: {}",
        stderr_of(&out)
    );
    assert_eq!(tree(&data.join("keys")), live, "the live one is unchanged");
    let full = work.join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("precious"), "keep").unwrap();
    let out = touchmark(work)
        .arg("restore")
        .arg(&dest)
        .arg("--data")
        .arg(&full)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("not empty"), "{}", stderr_of(&out));
    assert_eq!(tree(&full).len(), 1);
    // A damaged backup is refused before anything is written.
    let damaged = work.join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    for (path, bytes) in tree(&dest) {
        let relative = Path::new(&path).strip_prefix(&dest).unwrap();
        let target = damaged.join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
    let mut verifier = std::fs::read(damaged.join("log-verifier.txt")).unwrap();
    verifier[0] ^= 1;
    std::fs::write(damaged.join("log-verifier.txt"), verifier).unwrap();
    let out = touchmark(work)
        .arg("restore")
        .arg(&damaged)
        .arg("--data")
        .arg(work.join("never"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("damaged"), "{}", stderr_of(&out));
    assert!(!work.join("never").exists());

    // The restore: private, served, audited, and holding every unit committed before the
    // backup began and none that did not exist when it ended.
    let restored = work.join("restored");
    let out = touchmark(work)
        .arg("restore")
        .arg(&dest)
        .arg("--data")
        .arg(&restored)
        .output()
        .unwrap();
    kit::assert_success(&out, "restore");
    #[cfg(unix)]
    assert_private(&restored);
    served.kill();
    let again = Served::start(&restored);
    let audit = kit::audit(&again.url, &restored, &work.join("restored.state"));
    kit::assert_success(&audit, "audit verify of the restored log");
    let admin = kit::admin(&again.url, &restored, &token);
    let detail = admin.order("PO-1").await.unwrap();
    assert!(
        (before..=after).contains(&detail.certificates),
        "restored {} units; {before} were issued when the backup began, {after} when it ended",
        detail.certificates
    );
    assert_eq!(detail.issued_events, detail.certificates);
    for n in 1..=20 {
        let serial = format!("SN-{n:06}");
        assert_eq!(admin.unit(&serial).await.unwrap().len(), 1, "{serial}");
    }
    // It goes on issuing.
    let identity_station = kit::station_client(&again.url, &restored, &identity);
    let unit = kit::Unit::new("SN-000021".into());
    identity_station
        .provision("PO-1", &unit.request())
        .await
        .unwrap();
    let out = touchmark(work)
        .arg("doctor")
        .arg("--data")
        .arg(&restored)
        .output()
        .unwrap();
    kit::assert_success(&out, "doctor on the restored installation");
}

#[test]
fn backup_refuses_a_postgresql_installation_and_names_pg_dump() {
    let (tmp, data) = kit::tempdir();
    kit::init(&data);
    let dest = tmp.path().join("backup");
    let out = touchmark(tmp.path())
        .arg("backup")
        .arg(&dest)
        .arg("--data")
        .arg(&data)
        .args([
            "--database",
            "postgres://touchmark@db.invalid:5432/touchmark",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("pg_dump"), "{}", stderr_of(&out));
    assert!(!dest.exists(), "nothing written");
}

/// `touchmark doctor --json` on `data`: its exit status and its checks by name.
fn doctor(
    work: &Path,
    data: &Path,
    passphrase: Option<&str>,
) -> (
    Option<i32>,
    std::collections::BTreeMap<String, (String, String)>,
) {
    let mut command = touchmark(work);
    command.args(["doctor", "--json", "--data"]).arg(data);
    match passphrase {
        Some(p) => command.env("TOUCHMARK_KEY_PASSPHRASE", p),
        None => command.env_remove("TOUCHMARK_KEY_PASSPHRASE"),
    };
    let out = command.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr_of(&out)
        )
    });
    let checks = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                (
                    c["status"].as_str().unwrap().to_owned(),
                    c["detail"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    (out.status.code(), checks)
}

/// The database file's bytes with everything in it: its WAL checkpointed into it and removed
/// (a server killed with SIGKILL leaves one).
fn settled(database: &Path) -> Vec<u8> {
    let conn = rusqlite::Connection::open(database).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    std::fs::read(database).unwrap()
}

/// Puts `bytes` in place of the database file, with no WAL of the one before.
fn replace(database: &Path, bytes: &[u8]) {
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    std::fs::write(database, bytes).unwrap();
}

/// Asserts that `check` ended `status` and that doctor's exit status follows.
fn assert_check(
    seen: &(
        Option<i32>,
        std::collections::BTreeMap<String, (String, String)>,
    ),
    check: &str,
    status: &str,
    detail: &str,
) {
    let (code, checks) = seen;
    let (got, text) = checks
        .get(check)
        .unwrap_or_else(|| panic!("no {check} check in {checks:?}"));
    assert_eq!(got, status, "{check}: {text}\n{checks:?}");
    assert!(text.contains(detail), "{check}: {detail:?} in {text:?}");
    let failed = checks.values().any(|(s, _)| s == "fail");
    assert_eq!(*code, Some(if failed { 1 } else { 0 }), "{checks:?}");
}

#[tokio::test]
async fn doctor_passes_a_sound_installation_and_fails_each_broken_thing() {
    let (tmp, data) = kit::tempdir();
    let work = tmp.path();
    let token = kit::init(&data);
    let served = Served::start(&data);
    let admin = kit::admin(&served.url, &data, &token);
    kit::setup_order(&admin, "PO-1", 10).await;
    let sound = doctor(work, &data, Some(kit::PASSPHRASE));
    assert!(
        sound.1.values().all(|(s, _)| s == "ok"),
        "a sound installation, beside its server: {:?}",
        sound.1
    );
    assert_eq!(sound.0, Some(0));
    for name in [
        "permissions",
        "keys",
        "database",
        "installation",
        "product keys",
        "log",
        "clock",
    ] {
        assert!(sound.1.contains_key(name), "{name}: {:?}", sound.1);
    }
    served.kill();

    // Permissions.
    #[cfg(unix)]
    {
        set_mode(&data, 0o755);
        assert_check(
            &doctor(work, &data, Some(kit::PASSPHRASE)),
            "permissions",
            "fail",
            "chmod 700",
        );
        set_mode(&data, 0o700);
        let key = data.join("keys/log.key");
        set_mode(&key, 0o644);
        assert_check(
            &doctor(work, &data, Some(kit::PASSPHRASE)),
            "permissions",
            "fail",
            "chmod 600",
        );
        set_mode(&key, 0o600);
    }
    // Keys: no passphrase source, a wrong passphrase, a certificate of another key.
    assert_check(
        &doctor(work, &data, None),
        "keys",
        "fail",
        "TOUCHMARK_KEY_PASSPHRASE",
    );
    assert_check(
        &doctor(work, &data, Some("wrong")),
        "keys",
        "fail",
        "passphrase is wrong",
    );
    let other = work.join("other");
    kit::init(&other);
    let server_pem = std::fs::read(data.join("certs/server.pem")).unwrap();
    std::fs::copy(
        other.join("certs/server.pem"),
        data.join("certs/server.pem"),
    )
    .unwrap();
    assert_check(
        &doctor(work, &data, Some(kit::PASSPHRASE)),
        "keys",
        "fail",
        "server.pem",
    );
    std::fs::write(data.join("certs/server.pem"), &server_pem).unwrap();
    // A product's issuing CA key gone.
    let product_key = data.join("keys/product-sensor.key");
    let kept = std::fs::read(&product_key).unwrap();
    std::fs::remove_file(&product_key).unwrap();
    assert_check(
        &doctor(work, &data, Some(kit::PASSPHRASE)),
        "product keys",
        "fail",
        "product sensor",
    );
    std::fs::write(&product_key, kept).unwrap();
    #[cfg(unix)]
    set_mode(&product_key, 0o600);
    assert_eq!(
        doctor(work, &data, Some(kit::PASSPHRASE)).0,
        Some(0),
        "whole again"
    );

    // The database: another installation's, a schema from a newer build, damaged.
    let database = data.join("touchmark.db");
    let ours = settled(&database);
    let theirs = settled(&other.join("touchmark.db"));
    replace(&database, &theirs);
    assert_check(
        &doctor(work, &data, Some(kit::PASSPHRASE)),
        "installation",
        "fail",
        "another installation",
    );
    replace(&database, &ours);
    {
        let conn = rusqlite::Connection::open(&database).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    assert_check(
        &doctor(work, &data, Some(kit::PASSPHRASE)),
        "database",
        "fail",
        "newer than this build",
    );
    replace(&database, &ours);
    let mut damaged = ours.clone();
    damaged[0..16].copy_from_slice(b"not a database!\0");
    replace(&database, &damaged);
    assert_check(
        &doctor(work, &data, Some(kit::PASSPHRASE)),
        "database",
        "fail",
        "touchmark.db",
    );
    replace(&database, &ours);

    // The log: a checkpoint that its key did not sign.
    {
        let conn = rusqlite::Connection::open(&database).unwrap();
        let changed = conn
            .execute(
                "UPDATE log_checkpoints SET note = replace(note, char(10) || char(10) || '— ', \
                 char(10) || char(10) || '— x') WHERE size = (SELECT size FROM log_state)",
                [],
            )
            .unwrap();
        assert_eq!(changed, 1, "the latest checkpoint is in the database");
    }
    assert_check(
        &doctor(work, &data, Some(kit::PASSPHRASE)),
        "log",
        "fail",
        "not signed",
    );
    replace(&database, &ours);
    assert_eq!(
        doctor(work, &data, Some(kit::PASSPHRASE)).0,
        Some(0),
        "whole again"
    );
}

#[test]
fn doctor_fails_the_clock_when_it_is_behind_the_certificates() {
    use touchmark_core::Clock;
    let (tmp, data) = kit::tempdir();
    // An installation whose certificates begin two days from now, as one made on a machine
    // whose clock runs ahead looks to a machine whose clock is right.
    let ahead = touchmark_core::SystemClock.now() + time::Duration::days(2);
    let options = touchmark_authority::InitOptions {
        organization: "Ahead".into(),
        hosts: vec!["localhost".into()],
        log_origin: "ahead.example/log".into(),
        offline_root: None,
    };
    let passphrase = touchmark_pki::Passphrase::new(kit::PASSPHRASE.into()).unwrap();
    touchmark_authority::Installation::init(&data, &passphrase, &options, ahead).unwrap();
    let seen = doctor(tmp.path(), &data, Some(kit::PASSPHRASE));
    assert_check(&seen, "clock", "fail", "clock behind");
    assert_check(&seen, "keys", "ok", "");
}

#[test]
fn completions_are_bash_and_man_pages_are_roff() {
    let work = tempfile::tempdir().unwrap();
    let out = touchmark(work.path())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    kit::assert_success(&out, "completions bash");
    let script = work.path().join("touchmark.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["station", "provision", "backup", "doctor", "--server"] {
        assert!(text.contains(word), "{word} completes");
    }
    // bash parses it, and once sourced it completes `touchmark sta` to `station`.
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    kit::assert_success(&check, "bash -n");
    let complete = Command::new("bash")
        .arg("-c")
        .arg(
            "source \"$1\"; COMP_WORDS=(touchmark sta); COMP_CWORD=1; COMP_LINE='touchmark sta'; \
             COMP_POINT=${#COMP_LINE}; _touchmark touchmark sta touchmark; printf '%s\\n' \"${COMPREPLY[@]}\"",
        )
        .arg("bash")
        .arg(&script)
        .output()
        .unwrap();
    kit::assert_success(&complete, "completion");
    assert_eq!(String::from_utf8_lossy(&complete.stdout).trim(), "station");
    for shell in ["zsh", "fish"] {
        let out = touchmark(work.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        kit::assert_success(&out, shell);
        assert!(!out.stdout.is_empty());
    }
    let out = touchmark(work.path())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );

    // One page on stdout, or one per command in a directory.
    let out = touchmark(work.path()).arg("man").output().unwrap();
    kit::assert_success(&out, "man");
    let page = String::from_utf8(out.stdout).unwrap();
    assert_roff(&page, "touchmark");
    let dir = work.path().join("man");
    let out = touchmark(work.path())
        .arg("man")
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    kit::assert_success(&out, "man --dir");
    for name in [
        "touchmark",
        "touchmark-station-provision",
        "touchmark-backup",
        "touchmark-doctor",
    ] {
        let page = std::fs::read_to_string(dir.join(format!("{name}.1"))).unwrap();
        assert_roff(&page, name);
    }
    // groff, when the machine has it, formats the page without a warning.
    if let Ok(groff) = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(dir.join("touchmark-station-provision.1"))
        .output()
    {
        kit::assert_success(&groff, "groff");
        assert!(
            groff.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&groff.stderr)
        );
    }
}

/// The structure of a man(7) page: a title line naming it, the sections every page has, and
/// only roff requests or text on each line.
fn assert_roff(page: &str, name: &str) {
    let title = page
        .lines()
        .find(|l| l.starts_with(".TH "))
        .unwrap_or_else(|| panic!("{name}: no .TH title line"));
    assert!(title.contains(name) && title.contains(" 1 "), "{title}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS"] {
        assert!(page.contains(section), "{name}: {section}");
    }
    let escaped = name.replace('-', "\\-");
    assert!(
        page.contains(&format!(".SH NAME\n{escaped} \\- ")),
        "{name}: NAME line"
    );
    for line in page.lines() {
        assert!(
            !line.starts_with('.')
                || line.len() > 1 && line.as_bytes()[1].is_ascii_alphabetic()
                || line.starts_with(".\\\""),
            "{name}: not a request: {line:?}"
        );
    }
}

#[tokio::test]
#[cfg_attr(
    not(tm_postgres),
    ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL"
)]
async fn doctor_checks_a_postgresql_installation_and_fails_another_s_database() {
    let (tmp, data) = kit::tempdir();
    let work = tmp.path();
    let database = crate::pg::Fresh::create().await;
    let token = kit::init_with(&data, Some(&database.url));
    let served = Served::start_with(&data, Some(&database.url));
    kit::setup_order(&kit::admin(&served.url, &data, &token), "PO-1", 10).await;
    // The URL is in the installation's touchmark.toml: doctor finds it there.
    let sound = doctor(work, &data, Some(kit::PASSPHRASE));
    assert!(
        sound.1.values().all(|(s, _)| s == "ok"),
        "a sound PostgreSQL installation: {:?}",
        sound.1
    );
    assert_check(&sound, "database", "ok", "PostgreSQL");
    assert_check(&sound, "product keys", "ok", "1 product");
    // Another installation pointed at this database is told it is not its own.
    let other = work.join("other");
    kit::init(&other);
    let mut command = touchmark(work);
    command
        .args(["doctor", "--json", "--data"])
        .arg(&other)
        .args(["--database", &database.url]);
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let installation = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "installation")
        .unwrap();
    assert_eq!(installation["status"], "fail", "{report:#}");
    assert!(
        installation["detail"]
            .as_str()
            .unwrap()
            .contains("another installation"),
        "{report:#}"
    );
    served.kill();
}
