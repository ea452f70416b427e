//! `touchmark sbom`: Touchmark's own SBOM, made at build time from `Cargo.lock` by the CycloneDX
//! Cargo generator. It describes the binary, lists what the binary links at the versions locked
//! (and no build or dev tool), is the same on stdout and in `--out`, and cyclonedx-python-lib's
//! strict validator finds it valid CycloneDX 1.5.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::kit::bin;

/// The version `Cargo.lock` locks for `name` (the first, if several).
fn locked(name: &str) -> String {
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock"))
            .unwrap();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            let version = lines.next().unwrap();
            return version
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
                .unwrap()
                .to_owned();
        }
    }
    panic!("{name} is not in Cargo.lock");
}

#[test]
fn touchmark_sbom_lists_the_locked_dependencies_it_links() {
    let out = Command::new(bin()).arg("sbom").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bom: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.5");
    assert_eq!(bom["metadata"]["component"]["name"], "touchmark");
    let purls: Vec<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    let has = |name: &str| {
        purls
            .iter()
            .any(|p| p.starts_with(&format!("pkg:cargo/{name}@")))
    };
    for (name, version) in [
        ("rustls", locked("rustls")),
        ("jsonschema", locked("jsonschema")),
        ("axum", locked("axum")),
    ] {
        let purl = format!("pkg:cargo/{name}@{version}");
        assert!(purls.contains(&purl.as_str()), "{purl} missing");
    }
    // The workspace's own crates the binary links are components too.
    assert!(has("touchmark-sbom") && has("touchmark-core"));
    // Only what the binary links: not the generator that made the SBOM (a build dependency),
    // nor a test-only crate.
    for absent in ["cargo-cyclonedx", "proptest", "touchmark-testkit"] {
        assert!(!has(absent), "{absent} is listed");
    }

    // --out writes the same document.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("touchmark.cdx.json");
    let written = Command::new(bin())
        .args(["sbom", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(written.status.success());
    assert!(written.stdout.is_empty());
    assert_eq!(std::fs::read(&file).unwrap(), out.stdout);
}

#[test]
#[cfg_attr(
    not(tm_cyclonedx),
    ignore = "needs cyclonedx-python-lib: `pip install 'cyclonedx-python-lib[json-validation]'`, and TOUCHMARK_TEST_CYCLONEDX_PYTHON"
)]
fn cyclonedx_python_lib_finds_touchmarks_sbom_valid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("touchmark.cdx.json");
    let out = Command::new(bin())
        .args(["sbom", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A copy with one component's type broken, which the oracle must refuse: it does judge.
    let mut broken: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    broken["components"][0]["type"] = Value::from("gadget");
    let bad = dir.path().join("broken.cdx.json");
    std::fs::write(&bad, serde_json::to_vec(&broken).unwrap()).unwrap();

    let python =
        std::env::var("TOUCHMARK_TEST_CYCLONEDX_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../touchmark-server/tests/cyclonedx_validate.py");
    let verdict = Command::new(&python)
        .arg(&script)
        .arg("1.5")
        .arg(&file)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        verdict.status.success(),
        "{}",
        String::from_utf8_lossy(&verdict.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(verdict.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["valid"], true, "{}", lines[0]["error"]);
    assert_eq!(lines[1]["valid"], false);
}
