//! Setting up: `init` and `serve` refuse what they cannot do, with a clear message and a
//! non-zero exit, and change nothing.

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
    let before = std::fs::read(dir.join("certs/root-ca.pem")).unwrap();
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
        std::fs::read(dir.join("certs/root-ca.pem")).unwrap(),
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
