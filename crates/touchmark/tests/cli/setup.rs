//! Setting up: `init`, `serve` and `station enroll` refuse what they cannot do, with a clear
//! message and a non-zero exit, and change nothing; a flag overrides the environment.

use std::process::Command;

use crate::kit;

fn touchmark(passphrase: Option<&str>) -> Command {
    let mut command = Command::new(kit::bin());
    command
        .env_remove("TOUCHMARK_KEY_PASSPHRASE")
        .env_remove("TOUCHMARK_KEY_PASSPHRASE_FILE");
    if let Some(p) = passphrase {
        command.env("TOUCHMARK_KEY_PASSPHRASE", p);
    }
    command
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serve_refuses_a_missing_or_wrong_passphrase() {
    let (_tmp, dir) = kit::tempdir();
    kit::init(&dir);
    let missing = touchmark(None)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        stderr_of(&missing).contains("TOUCHMARK_KEY_PASSPHRASE"),
        "{}",
        stderr_of(&missing)
    );
    let wrong = touchmark(Some("not the passphrase"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        stderr_of(&wrong).contains("passphrase is wrong"),
        "{}",
        stderr_of(&wrong)
    );
    // From a file works, with its trailing newline.
    let file = dir.parent().unwrap().join("passphrase");
    std::fs::write(&file, format!("{}\n", kit::PASSPHRASE)).unwrap();
    let served = Command::new(kit::bin())
        .env_remove("TOUCHMARK_KEY_PASSPHRASE")
        .env("TOUCHMARK_KEY_PASSPHRASE_FILE", &file)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut served = served;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(served.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(
        line.starts_with("touchmark listening on https://"),
        "{line}"
    );
    served.kill().unwrap();
    served.wait().unwrap();
}

#[test]
fn init_refuses_an_existing_installation_and_serve_an_empty_directory() {
    let (_tmp, dir) = kit::tempdir();
    kit::init(&dir);
    let before = std::fs::read(dir.join("certs/infra-root-ca.pem")).unwrap();
    let again = touchmark(Some(kit::PASSPHRASE))
        .args(["init", "--data"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr_of(&again).contains("already holds a Touchmark installation"),
        "{}",
        stderr_of(&again)
    );
    assert_eq!(
        std::fs::read(dir.join("certs/infra-root-ca.pem")).unwrap(),
        before,
        "nothing was replaced"
    );
    let empty = dir.parent().unwrap().join("empty");
    let out = touchmark(Some(kit::PASSPHRASE))
        .args(["serve", "--data"])
        .arg(&empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("touchmark init"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn bad_config_and_arguments_are_refused_clearly() {
    let (_tmp, dir) = kit::tempdir();
    kit::init(&dir);
    std::fs::write(
        dir.join("touchmark.toml"),
        "listen = \"127.0.0.1:0\"\nlisten_port = 9\n",
    )
    .unwrap();
    let out = touchmark(Some(kit::PASSPHRASE))
        .args(["serve", "--data"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("unknown field"),
        "{}",
        stderr_of(&out)
    );
    let out = touchmark(None)
        .args(["station", "run", "--order", "o", "--fail-rate", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("--fail-rate"),
        "{}",
        stderr_of(&out)
    );
    let out = touchmark(None)
        .args(["order", "create", "--quota", "lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
}

/// Creates station `id` of factory `cm` through the CLI; returns its enrollment token file.
fn create_station(
    served: &kit::Served,
    data: &std::path::Path,
    token: &str,
    id: &str,
) -> std::path::PathBuf {
    let file = data.parent().unwrap().join(format!("{id}.token"));
    let out = touchmark(None)
        .args(["station", "create", "--factory", "cm", "--id", id])
        .arg("--enrollment-token-file")
        .arg(&file)
        .args(["--server", &served.url, "--token", token, "--data"])
        .arg(data)
        .output()
        .unwrap();
    kit::assert_success(&out, "station create");
    file
}

fn enroll(server: &str, data: &std::path::Path, station: &std::path::Path) -> Command {
    let mut command = touchmark(None);
    command
        .args(["station", "enroll", "--server", server, "--ca"])
        .arg(data.join("certs/infra-root-ca.pem"))
        .arg("--dir")
        .arg(station);
    command
}

/// What a station directory holds, by name.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn a_failed_enrollment_leaves_nothing_behind_and_a_retry_works() {
    let (tmp, data) = kit::tempdir();
    let token = kit::init(&data);
    let served = kit::Served::start(&data);
    let admin = kit::admin(&served.url, &data, &token);
    admin
        .create_factory(&touchmark_core::api::CreateFactory {
            id: Some("cm".into()),
            name: "CM".into(),
        })
        .await
        .unwrap();
    let token_file = create_station(&served, &data, &token, "line-1");
    let station = tmp.path().join("fixture");

    // A token file that is not there.
    let out = enroll(&served.url, &data, &station)
        .arg("--token-file")
        .arg(tmp.path().join("missing.token"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("missing.token"),
        "{}",
        stderr_of(&out)
    );
    assert!(!station.exists(), "{:?}", files_in(&station));

    // A token the server refuses.
    let out = enroll(&served.url, &data, &station)
        .args(["--token", "tm_enroll_not_a_token"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("enrollment_token_invalid"),
        "{}",
        stderr_of(&out)
    );
    assert!(!station.exists(), "{:?}", files_in(&station));

    // A directory made beforehand is kept, and left as empty as it was.
    std::fs::create_dir(&station).unwrap();
    let out = enroll(&served.url, &data, &station)
        .args(["--token", "tm_enroll_not_a_token"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(files_in(&station), Vec::<String>::new());
    std::fs::remove_dir(&station).unwrap();

    // Interrupted while the server has not answered yet (here, one that never answers).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("https://localhost:{}", silent.local_addr().unwrap().port());
    let mut child = enroll(&silent_url, &data, &station)
        .arg("--token-file")
        .arg(&token_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (_connection, _) = silent.accept().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !station.join("station.key").exists(),
        "{:?}",
        files_in(&station)
    );

    // The retry works.
    let out = enroll(&served.url, &data, &station)
        .arg("--token-file")
        .arg(&token_file)
        .output()
        .unwrap();
    kit::assert_success(&out, "the retry");
    let mut files = files_in(&station);
    files.sort();
    assert_eq!(
        files,
        ["root-ca.pem", "station.json", "station.key", "station.pem"]
    );
}

#[test]
fn a_token_flag_overrides_the_environment() {
    let (tmp, data) = kit::tempdir();
    let token = kit::init(&data);
    let served = kit::Served::start(&data);
    let stale = tmp.path().join("stale.token");
    std::fs::write(&stale, "tm_stale_token\n").unwrap();
    let good = tmp.path().join("good.token");
    std::fs::write(&good, format!("{token}\n")).unwrap();
    let list = |command: &mut Command| {
        command
            .args(["order", "list", "--server", &served.url, "--data"])
            .arg(&data)
            .env_remove("TOUCHMARK_TOKEN")
            .env_remove("TOUCHMARK_TOKEN_FILE");
    };

    // --token beats an exported TOUCHMARK_TOKEN_FILE.
    let mut command = touchmark(None);
    list(&mut command);
    let out = command
        .args(["--token", &token])
        .env("TOUCHMARK_TOKEN_FILE", &stale)
        .output()
        .unwrap();
    kit::assert_success(&out, "--token with TOUCHMARK_TOKEN_FILE exported");

    // --token-file beats an exported TOUCHMARK_TOKEN.
    let mut command = touchmark(None);
    list(&mut command);
    let out = command
        .arg("--token-file")
        .arg(&good)
        .env("TOUCHMARK_TOKEN", "tm_stale_token")
        .output()
        .unwrap();
    kit::assert_success(&out, "--token-file with TOUCHMARK_TOKEN exported");

    // Both variables exported: refused, naming the variables and no flag.
    let mut command = touchmark(None);
    list(&mut command);
    let out = command
        .env("TOUCHMARK_TOKEN", &token)
        .env("TOUCHMARK_TOKEN_FILE", &good)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("TOUCHMARK_TOKEN ") && stderr.contains("TOUCHMARK_TOKEN_FILE"),
        "{stderr}"
    );
    assert!(!stderr.contains("--token"), "names no flag: {stderr}");

    // Both flags typed: that conflict is the user's own.
    let mut command = touchmark(None);
    list(&mut command);
    let out = command
        .args(["--token", &token, "--token-file"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));

    // `station enroll`: --token-file beats an exported TOUCHMARK_ENROLLMENT_TOKEN.
    let out = touchmark(None)
        .args(["station", "enroll", "--server", &served.url, "--ca"])
        .arg(data.join("certs/infra-root-ca.pem"))
        .arg("--dir")
        .arg(tmp.path().join("fixture"))
        .arg("--token-file")
        .arg(tmp.path().join("missing.token"))
        .env("TOUCHMARK_ENROLLMENT_TOKEN", "tm_enroll_stale")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("missing.token"),
        "the file was used: {stderr}"
    );
    assert!(!stderr.contains("'--token "), "names no flag: {stderr}");
}
