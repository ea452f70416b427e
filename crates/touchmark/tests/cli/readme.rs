//! The README's walk-through, run exactly as written: every `bash` block between the
//! `walkthrough:start` and `walkthrough:end` markers, in order, in one shell.

use std::process::Command;

#[test]
#[cfg_attr(
    not(tm_openssl),
    ignore = "needs openssl: install it, or set TOUCHMARK_TEST_OPENSSL"
)]
fn readme_walkthrough_works_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("<!-- walkthrough:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- walkthrough:end -->").next())
        .expect("README has a walkthrough section");
    let mut script = String::from("set -euo pipefail\n");
    let mut in_block = false;
    for line in section.lines() {
        match line.trim() {
            "```bash" => in_block = true,
            "```" if in_block => in_block = false,
            _ if in_block => {
                script.push_str(line);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(script.lines().count() > 10, "the walkthrough has commands");
    // The script calls `openssl` by name: the one the tests were given comes first on PATH.
    let openssl = touchmark_testenv::tool(&touchmark_testenv::OPENSSL);
    let work = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(super::kit::bin())
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        openssl.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The walkthrough's server is stopped by the script's own trap; kill_on_exit guards a failure.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}"
        ))
        .current_dir(work.path())
        .env("PATH", path)
        .env("TOUCHMARK_TEST_PORT", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "walkthrough failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("certificate.pem: OK"),
        "openssl verified the chain\n{stdout}"
    );
    assert!(
        stdout.contains("issued   1 of 500"),
        "the order counts the unit\n{stdout}"
    );
}
