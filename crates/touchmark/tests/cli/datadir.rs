//! The data directory: served by one process at a time on SQLite, and private to its owner
//! (issue 11, security findings 2 and 7).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::kit::{self, Served};

fn serve(dir: &Path) -> Command {
    let mut command = Command::new(kit::bin());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir)
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE);
    command
}

/// Runs a `serve` that must refuse to start: its output once it exits. One that is still
/// running after a while started, which fails the test (it is killed first).
fn refused(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the server started instead of refusing:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
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

#[tokio::test]
async fn a_second_server_on_one_sqlite_directory_refuses_to_start() {
    let (_tmp, dir) = kit::tempdir();
    let token = kit::init(&dir);
    let first = Served::start(&dir);
    let out = refused(serve(&dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(
        stderr.contains(&format!("process {}", first.child.id())),
        "names the holder: {stderr}"
    );
    assert!(stderr.contains("PostgreSQL"), "names the way out: {stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The first server is unharmed, and once it is gone (even by SIGKILL, which runs no
    // shutdown code) the directory can be served again.
    let admin = kit::admin(&first.url, &dir, &token);
    assert!(admin.orders().await.unwrap().is_empty());
    first.kill();
    let again = Served::start(&dir);
    again.kill();
}

#[cfg(unix)]
#[test]
fn init_makes_the_data_directory_and_database_private() {
    let (tmp, dir) = kit::tempdir();
    let token_file = tmp.path().join("admin.token");
    let out = Command::new(kit::bin())
        .args(["init", "--data"])
        .arg(&dir)
        .arg("--admin-token-file")
        .arg(&token_file)
        .env("TOUCHMARK_KEY_PASSPHRASE", kit::PASSPHRASE)
        .output()
        .unwrap();
    kit::assert_success(&out, "init");
    assert_eq!(mode(&dir), 0o700, "the data directory");
    assert_eq!(mode(&dir.join("touchmark.db")), 0o600, "the database");
    assert_eq!(mode(&dir.join("keys")), 0o700, "the key store");
    for key in std::fs::read_dir(dir.join("keys")).unwrap() {
        let key = key.unwrap().path();
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
    assert_eq!(mode(&token_file), 0o600, "the admin token");
    // SQLite makes its WAL and shared-memory files while the database is open, with the
    // database file's mode.
    let served = Served::start(&dir);
    for file in ["touchmark.db-wal", "touchmark.db-shm"] {
        let path = dir.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    served.kill();
}

#[cfg(unix)]
#[test]
fn serve_refuses_a_data_directory_or_database_others_can_read() {
    let (_tmp, dir) = kit::tempdir();
    kit::init(&dir);
    set_mode(&dir, 0o755);
    let out = refused(serve(&dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("chmod 700 {}", dir.display())),
        "names the path and the fix: {stderr}"
    );
    set_mode(&dir, 0o700);
    let database = dir.join("touchmark.db");
    set_mode(&database, 0o644);
    let out = refused(serve(&dir));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("chmod 600 {}", database.display())),
        "names the path and the fix: {stderr}"
    );
    set_mode(&database, 0o600);
    Served::start(&dir).kill();
}
