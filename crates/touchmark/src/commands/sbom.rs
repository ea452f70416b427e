//! `touchmark sbom`: Touchmark's own SBOM, a CycloneDX 1.5 JSON document of the Rust
//! dependencies this binary was built with, made by `build.rs` with the CycloneDX project's
//! Cargo generator from `Cargo.lock`, and embedded.

use std::path::PathBuf;

use crate::output;

/// The SBOM `build.rs` wrote; empty if the build could not make one.
const OWN_SBOM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sbom.cdx.json"));

/// `touchmark sbom`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SbomArgs {
    /// Write it to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Writes the embedded SBOM.
///
/// # Errors
/// The build made none, or it cannot be written.
pub fn run(args: &SbomArgs) -> anyhow::Result<()> {
    if OWN_SBOM.is_empty() {
        anyhow::bail!(
            "this build of touchmark carries no SBOM: its build script could not read the \
             locked dependencies (`cargo metadata --offline --locked`; see the build's warnings)"
        );
    }
    output::document(args.out.as_deref(), OWN_SBOM)
}
