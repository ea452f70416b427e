//! The README, run exactly as written: every `bash` block, from the top to the bottom, in
//! order, in one shell, in an empty directory (issue 11, newcomer 1). `text` blocks are
//! examples and are not run. The binary is the one this test was built with, so `cargo` is a
//! stand-in that accepts only the README's `cargo build --release`.

use std::process::Command;

/// Every `bash` block of `readme`, in order, each as `(line number, code)`.
fn bash_blocks(readme: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in readme.lines().enumerate() {
        match (&mut current, line.trim_end()) {
            (None, "```bash") => current = Some((n + 1, String::new())),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some((_, code)), _) => {
                code.push_str(line);
                code.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "a bash block is not closed");
    blocks
}

#[test]
#[cfg_attr(
    not(all(tm_openssl, tm_imgtool)),
    ignore = "needs openssl and imgtool 2.5.0: install them (pip install imgtool==2.5.0), or set TOUCHMARK_TEST_OPENSSL and TOUCHMARK_TEST_IMGTOOL"
)]
fn the_readme_works_from_top_to_bottom_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let blocks = bash_blocks(&readme);
    assert!(blocks.len() >= 10, "the README is a path of commands");
    // Each block announces itself, so a failure names the block (by its README line) that
    // failed; `set -e` stops at the first command that fails.
    let mut script = String::from("set -euo pipefail\n");
    for (line, code) in &blocks {
        script.push_str(&format!("echo \"### README.md:{line}\" >&2\n{code}"));
    }
    script.push_str("echo '### the end' >&2\n");
    // The script calls `openssl` by name: the one the tests were given comes first on PATH.
    let openssl = touchmark_testenv::tool(&touchmark_testenv::OPENSSL);
    let imgtool = touchmark_testenv::tool(&touchmark_testenv::IMGTOOL);
    let work = tempfile::tempdir().unwrap();
    let stand_in = work.path().join(".bin");
    std::fs::create_dir(&stand_in).unwrap();
    let cargo = stand_in.join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\n\
         [ \"$*\" = 'build --release' ] || { echo \"the README's path runs only cargo build --release, not: cargo $*\" >&2; exit 1; }\n\
         echo 'cargo build --release: the test runs the binary it was built with'\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let bin_dir = std::path::Path::new(super::kit::bin())
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}:{}:{}:{}",
        stand_in.display(),
        bin_dir.display(),
        openssl.parent().unwrap().display(),
        imgtool.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let workdir = work.path().join("clone");
    std::fs::create_dir(&workdir).unwrap();
    // A server the path leaves running is stopped by the trap; the path stops its own.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}"
        ))
        .current_dir(&workdir)
        .env("PATH", path)
        .env_remove("TOUCHMARK_KEY_PASSPHRASE")
        .env_remove("TOUCHMARK_KEY_PASSPHRASE_FILE")
        .env_remove("TOUCHMARK_TOKEN")
        .env_remove("TOUCHMARK_TOKEN_FILE")
        .env_remove("TOUCHMARK_SERVER")
        .env_remove("TOUCHMARK_CA")
        .env_remove("TOUCHMARK_DATA")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("### the end"),
        "the README's path failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let expect = [
        ("certificate.pem: OK", "openssl verified the chain"),
        ("issued   1 of 500", "the order counts the unit"),
        (
            "refused: serial_conflict",
            "the line's serial clone is refused",
        ),
        ("refused: key_reused", "the line's key clone is refused"),
        (
            "firmware opened with the unit's own key",
            "each unit opens its own image",
        ),
        ("Backed up into backups/first", "the backup"),
        ("Restored restored", "the restore"),
    ];
    for (text, what) in expect {
        assert!(stdout.contains(text), "{what}: {text:?} in\n{stdout}");
    }
    // The installation and its restored copy both pass every check.
    assert!(
        !stdout.contains(" fail "),
        "doctor found nothing failing\n{stdout}"
    );
    for dir in ["touchmark-data", "restored"] {
        let doctor = Command::new(super::kit::bin())
            .args(["doctor", "--json", "--data", dir])
            .current_dir(&workdir)
            .env("TOUCHMARK_KEY_PASSPHRASE", "correct horse battery staple")
            .output()
            .unwrap();
        super::kit::assert_success(&doctor, "doctor");
    }
}
