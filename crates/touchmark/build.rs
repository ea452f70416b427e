//! Declares what this crate's tests need from the machine (see `touchmark-testenv`), and makes
//! Touchmark's own SBOM: a CycloneDX JSON document of the `touchmark` binary's Rust
//! dependencies, as locked in `Cargo.lock`, made by the CycloneDX project's Cargo generator
//! (`cargo-cyclonedx`, used as a library) and embedded in the binary for `touchmark sbom`.
//!
//! `cargo metadata` runs `--offline --locked`: it reads what this build already resolved and
//! downloaded, never the network, and never changes the lock file. If it cannot (a toolchain
//! that does not offer it), the build goes on with a warning, and `touchmark sbom` says the
//! build has none rather than printing an incomplete one.

use std::path::{Path, PathBuf};

use cargo_cyclonedx::config::{IncludedDependencies, SbomConfig, Target};
use cargo_cyclonedx::generator::SbomGenerator;
use cyclonedx_bom::models::bom::SpecVersion;

fn main() {
    touchmark_testenv::declare(&[
        touchmark_testenv::POSTGRES,
        touchmark_testenv::OPENSSL,
        touchmark_testenv::MOSQUITTO,
        touchmark_testenv::MOSQUITTO_PUB,
        touchmark_testenv::MOSQUITTO_SUB,
        touchmark_testenv::SCRIPT,
        touchmark_testenv::PKILINT,
        touchmark_testenv::PKILINT_CHAIN,
        touchmark_testenv::SOFTHSM2_UTIL,
        touchmark_testenv::PKCS11_TOOL,
        touchmark_testenv::PLAYWRIGHT,
        touchmark_testenv::CHROMIUM,
        touchmark_testenv::IMGTOOL,
        touchmark_testenv::CYCLONEDX,
        touchmark_testenv::CSAF,
    ]);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("sbom.cdx.json");
    let bom = match own_sbom() {
        Ok(bom) => bom,
        Err(why) => {
            println!("cargo:warning=no SBOM of touchmark's dependencies in this build: {why}");
            Vec::new()
        }
    };
    if let Err(e) = std::fs::write(&out, bom) {
        println!("cargo:warning=cannot write {}: {e}", out.display());
    }
}

/// The SBOM of this package's dependencies, CycloneDX 1.5 JSON (the newest version the
/// generator writes).
fn own_sbom() -> Result<Vec<u8>, String> {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?,
    );
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .ok_or("the package is not two levels below its workspace")?;
    // Any change to what is locked or declared makes a new SBOM.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    for manifest in manifests(&root.join("crates")) {
        println!("cargo:rerun-if-changed={}", manifest.display());
    }
    let cargo = std::env::var_os("CARGO").ok_or("CARGO is not set")?;
    let target = std::env::var("TARGET").map_err(|e| format!("TARGET: {e}"))?;
    let mut metadata = cargo_metadata::MetadataCommand::new()
        .cargo_path(cargo)
        .manifest_path(manifest_dir.join("Cargo.toml"))
        .other_options(vec![
            "--offline".to_owned(),
            "--locked".to_owned(),
            "--filter-platform".to_owned(),
            target.clone(),
        ])
        .exec()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    let package = std::env::var("CARGO_PKG_NAME").map_err(|e| format!("CARGO_PKG_NAME: {e}"))?;
    // One SBOM, of this package (the other workspace members it depends on are components).
    let ids: Vec<_> = metadata
        .packages
        .iter()
        .filter(|p| p.name == package)
        .map(|p| p.id.clone())
        .collect();
    metadata.workspace_members.retain(|m| ids.contains(m));
    let config = SbomConfig {
        included_dependencies: Some(IncludedDependencies::AllDependencies),
        target: Some(Target::SingleTarget(target)),
        // What the binary links: no build or dev dependencies.
        only_normal_deps: Some(true),
        spec_version: Some(SpecVersion::V1_5),
        ..SbomConfig::empty_config()
    };
    let generated =
        SbomGenerator::create_sboms(metadata, &config).map_err(|e| format!("generator: {e}"))?;
    let mut bom = generated
        .into_iter()
        .next()
        .ok_or("the generator made no SBOM")?
        .bom;
    // The same sources make the same binary: no random serial number, no build time.
    bom.serial_number = None;
    if let Some(meta) = bom.metadata.as_mut() {
        meta.timestamp = None;
    }
    let mut json = Vec::new();
    bom.output_as_json(&mut json, SpecVersion::V1_5)
        .map_err(|e| format!("writing JSON: {e}"))?;
    json.push(b'\n');
    Ok(json)
}

/// The `Cargo.toml` of each crate under `crates`.
fn manifests(crates: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(crates) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path().join("Cargo.toml"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
}
