//! What Touchmark's tests need from the machine (a PostgreSQL server, openssl, Mosquitto,
//! pkilint, SoftHSM2, imgtool), and an honest answer when one is missing.
//!
//! A crate whose tests need something calls [`declare`] from its build script. For each need
//! it finds, the script sets a `cfg` (`tm_postgres`, `tm_openssl`, `tm_mosquitto`,
//! `tm_pkilint`), and a test
//! carries `#[cfg_attr(not(tm_postgres), ignore = "needs PostgreSQL: …")]`: without the
//! service, `cargo test` reports it as ignored, with the reason, never as passed. Under
//! `CI=true` every need counts as present, so a missing one fails its tests instead.
//!
//! At run time, [`postgres_url`] and [`tool`] give the test what it needs, or stop it with what
//! to set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Something a test needs.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    /// The `cfg` set when it is present.
    pub cfg: &'static str,
    /// The environment variable that names it.
    pub var: &'static str,
    /// For a tool: the program looked up on `PATH` when `var` is unset.
    pub program: Option<&'static str>,
}

/// A PostgreSQL server: `TOUCHMARK_TEST_POSTGRES_URL`.
pub const POSTGRES: Need = Need {
    cfg: "tm_postgres",
    var: "TOUCHMARK_TEST_POSTGRES_URL",
    program: None,
};

/// openssl: `TOUCHMARK_TEST_OPENSSL`, else `openssl` on `PATH`.
pub const OPENSSL: Need = Need {
    cfg: "tm_openssl",
    var: "TOUCHMARK_TEST_OPENSSL",
    program: Some("openssl"),
};

/// The Mosquitto broker: `TOUCHMARK_TEST_MOSQUITTO`, else `mosquitto` on `PATH` (its clients
/// are asked for by [`MOSQUITTO_PUB`] and [`MOSQUITTO_SUB`]).
pub const MOSQUITTO: Need = Need {
    cfg: "tm_mosquitto",
    var: "TOUCHMARK_TEST_MOSQUITTO",
    program: Some("mosquitto"),
};

/// `mosquitto_pub`: `TOUCHMARK_TEST_MOSQUITTO_PUB`, else on `PATH`.
pub const MOSQUITTO_PUB: Need = Need {
    cfg: "tm_mosquitto",
    var: "TOUCHMARK_TEST_MOSQUITTO_PUB",
    program: Some("mosquitto_pub"),
};

/// `mosquitto_sub`: `TOUCHMARK_TEST_MOSQUITTO_SUB`, else on `PATH`.
pub const MOSQUITTO_SUB: Need = Need {
    cfg: "tm_mosquitto",
    var: "TOUCHMARK_TEST_MOSQUITTO_SUB",
    program: Some("mosquitto_sub"),
};

/// `openapi-spec-validator` (PyPI): `TOUCHMARK_TEST_OPENAPI_SPEC_VALIDATOR`, else on `PATH`.
/// With [`SCHEMATHESIS`], the oracles of the OpenAPI document.
pub const OPENAPI_SPEC_VALIDATOR: Need = Need {
    cfg: "tm_openapi_tools",
    var: "TOUCHMARK_TEST_OPENAPI_SPEC_VALIDATOR",
    program: Some("openapi-spec-validator"),
};

/// `schemathesis` (PyPI): `TOUCHMARK_TEST_SCHEMATHESIS`, else on `PATH`.
pub const SCHEMATHESIS: Need = Need {
    cfg: "tm_openapi_tools",
    var: "TOUCHMARK_TEST_SCHEMATHESIS",
    program: Some("schemathesis"),
};

/// `script` (util-linux), which runs a program under a pseudo-terminal and records what it
/// draws: `TOUCHMARK_TEST_SCRIPT`, else `script` on `PATH`.
pub const SCRIPT: Need = Need {
    cfg: "tm_script",
    var: "TOUCHMARK_TEST_SCRIPT",
    program: Some("script"),
};

/// pkilint's RFC 5280 certificate linter (PyPI `pkilint`): `TOUCHMARK_TEST_PKILINT`, else
/// `lint_pkix_cert` on `PATH` (its issuer and subject linter is asked for by
/// [`PKILINT_CHAIN`]).
pub const PKILINT: Need = Need {
    cfg: "tm_pkilint",
    var: "TOUCHMARK_TEST_PKILINT",
    program: Some("lint_pkix_cert"),
};

/// pkilint's issuer and subject linter: `TOUCHMARK_TEST_PKILINT_CHAIN`, else
/// `lint_pkix_signer_signee_cert_chain` on `PATH`.
pub const PKILINT_CHAIN: Need = Need {
    cfg: "tm_pkilint",
    var: "TOUCHMARK_TEST_PKILINT_CHAIN",
    program: Some("lint_pkix_signer_signee_cert_chain"),
};

/// SoftHSM2's token tool (Debian `softhsm2`): `TOUCHMARK_TEST_SOFTHSM2_UTIL`, else
/// `softhsm2-util` on `PATH`. Tests of the PKCS#11 key backend make a throwaway token with it
/// ([`softhsm::Token`]); its module is found by [`softhsm::module`].
pub const SOFTHSM2_UTIL: Need = Need {
    cfg: "tm_softhsm",
    var: "TOUCHMARK_TEST_SOFTHSM2_UTIL",
    program: Some("softhsm2-util"),
};

/// OpenSC's `pkcs11-tool` (Debian `opensc`), an independent PKCS#11 client:
/// `TOUCHMARK_TEST_PKCS11_TOOL`, else `pkcs11-tool` on `PATH`.
pub const PKCS11_TOOL: Need = Need {
    cfg: "tm_softhsm",
    var: "TOUCHMARK_TEST_PKCS11_TOOL",
    program: Some("pkcs11-tool"),
};

pub mod softhsm;
/// A Python interpreter with numpy (PyPI `numpy`), the oracle of the analytics' statistics:
/// `TOUCHMARK_TEST_NUMPY_PYTHON`, the interpreter's path.
pub const NUMPY: Need = Need {
    cfg: "tm_numpy",
    var: "TOUCHMARK_TEST_NUMPY_PYTHON",
    program: None,
};

/// `promtool` (Debian `prometheus`), the oracle of `/metrics`: `TOUCHMARK_TEST_PROMTOOL`, else
/// `promtool` on `PATH`.
pub const PROMTOOL: Need = Need {
    cfg: "tm_promtool",
    var: "TOUCHMARK_TEST_PROMTOOL",
    program: Some("promtool"),
};

/// A Python interpreter with the Standard Webhooks library (PyPI `standardwebhooks`), the
/// oracle of the webhook signatures: `TOUCHMARK_TEST_STANDARDWEBHOOKS_PYTHON`.
pub const STANDARD_WEBHOOKS: Need = Need {
    cfg: "tm_standardwebhooks",
    var: "TOUCHMARK_TEST_STANDARDWEBHOOKS_PYTHON",
    program: None,
};

/// A Python interpreter with Playwright (PyPI `playwright`), which drives the dashboard in a
/// real browser: `TOUCHMARK_TEST_PLAYWRIGHT_PYTHON`. Its browser is [`CHROMIUM`]: Playwright's
/// own browser download is not used.
pub const PLAYWRIGHT: Need = Need {
    cfg: "tm_playwright",
    var: "TOUCHMARK_TEST_PLAYWRIGHT_PYTHON",
    program: None,
};

/// Debian's `chromium`, which Playwright drives by its executable path:
/// `TOUCHMARK_TEST_CHROMIUM`, else `chromium` on `PATH`.
pub const CHROMIUM: Need = Need {
    cfg: "tm_playwright",
    var: "TOUCHMARK_TEST_CHROMIUM",
    program: Some("chromium"),
};

/// A Python interpreter with OpenHTF (PyPI `openhtf`), which writes real OpenHTF test records:
/// `TOUCHMARK_TEST_OPENHTF_PYTHON`, the interpreter's path.
pub const OPENHTF: Need = Need {
    cfg: "tm_openhtf",
    var: "TOUCHMARK_TEST_OPENHTF_PYTHON",
    program: None,
};

/// imgtool 2.5.0 (PyPI `imgtool==2.5.0`), MCUboot's image tool, the oracle of the firmware
/// images: `TOUCHMARK_TEST_IMGTOOL`, else `imgtool` on `PATH`.
pub const IMGTOOL: Need = Need {
    cfg: "tm_imgtool",
    var: "TOUCHMARK_TEST_IMGTOOL",
    program: Some("imgtool"),
};

/// The Python that runs the independent MCUboot re-wrap reference (`mcuboot_rewrap.py`, which
/// needs the `cryptography` package that `pip install imgtool` brings):
/// `TOUCHMARK_TEST_PYTHON3`, else `python3` on `PATH`. Shares [`IMGTOOL`]'s `cfg`.
pub const PYTHON3: Need = Need {
    cfg: "tm_imgtool",
    var: "TOUCHMARK_TEST_PYTHON3",
    program: Some("python3"),
};

/// age (Debian `age`, the reference implementation in Go), the oracle of encrypted
/// vulnerability reports: `TOUCHMARK_TEST_AGE`, else `age` on `PATH`.
pub const AGE: Need = Need {
    cfg: "tm_age",
    var: "TOUCHMARK_TEST_AGE",
    program: Some("age"),
};

/// `age-keygen`, from the same package: `TOUCHMARK_TEST_AGE_KEYGEN`, else `age-keygen` on
/// `PATH`. Shares [`AGE`]'s `cfg`.
pub const AGE_KEYGEN: Need = Need {
    cfg: "tm_age",
    var: "TOUCHMARK_TEST_AGE_KEYGEN",
    program: Some("age-keygen"),
};

/// A Python interpreter with `sectxt` (PyPI), the RFC 9116 validator of
/// `/.well-known/security.txt`: `TOUCHMARK_TEST_SECTXT_PYTHON`.
pub const SECTXT: Need = Need {
    cfg: "tm_sectxt",
    var: "TOUCHMARK_TEST_SECTXT_PYTHON",
    program: None,
};

/// A Python interpreter with `cvss` (PyPI, Red Hat's CVSS library), the oracle of the
/// intake's CVSS vector checks: `TOUCHMARK_TEST_CVSS_PYTHON`.
pub const CVSS: Need = Need {
    cfg: "tm_cvss",
    var: "TOUCHMARK_TEST_CVSS_PYTHON",
    program: None,
};

/// A Python interpreter with `cyclonedx-python-lib` and its `json-validation` extra (PyPI), the
/// CycloneDX project's JSON schema validator, the oracle of release SBOMs and of Touchmark's
/// own SBOM: `TOUCHMARK_TEST_CYCLONEDX_PYTHON`.
pub const CYCLONEDX: Need = Need {
    cfg: "tm_cyclonedx",
    var: "TOUCHMARK_TEST_CYCLONEDX_PYTHON",
    program: None,
};

/// The npm prefix `@secvisogram/csaf-validator-lib` (the BSI's CSAF 2.0 validator) is installed
/// under, which the CSAF advisories' tests run with `node`: `TOUCHMARK_TEST_CSAF_VALIDATOR`.
pub const CSAF: Need = Need {
    cfg: "tm_csaf",
    var: "TOUCHMARK_TEST_CSAF_VALIDATOR",
    program: None,
};

/// Whether this is a CI run, where nothing a test needs may be missing.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Where a tool is: its variable's path, else its program found on `PATH` (or under `/usr/sbin`,
/// where Debian puts the Mosquitto broker).
fn locate(need: &Need) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(need.var).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let program = need.program?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Whether `path` can be started (`--help` or `version` may exit non-zero; only "cannot run"
/// counts as missing).
fn runs(path: &Path) -> bool {
    Command::new(path)
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// For a build script: sets the `cfg` of every need in `needs` that this machine has (or all
/// of them under `CI=true`), and asks Cargo to look again when what decides it changes.
pub fn declare(needs: &[Need]) {
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-env-changed=PATH");
    let mut present: Vec<&str> = Vec::new();
    let mut absent: Vec<&str> = Vec::new();
    for need in needs {
        println!("cargo:rustc-check-cfg=cfg({})", need.cfg);
        println!("cargo:rerun-if-env-changed={}", need.var);
        let found = match need.program {
            None => std::env::var(need.var).is_ok_and(|v| !v.trim().is_empty()),
            Some(_) => match locate(need) {
                Some(path) => {
                    // Installed or removed later: this file's change reruns the script.
                    println!("cargo:rerun-if-changed={}", path.display());
                    runs(&path)
                }
                None => false,
            },
        };
        if found {
            present.push(need.cfg);
        } else {
            absent.push(need.cfg);
        }
    }
    for cfg in present {
        // A need shared by several tools (Mosquitto, pkilint) holds only if every one of them is
        // there.
        if is_ci() || !absent.contains(&cfg) {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
    if is_ci() {
        for cfg in absent {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}

/// The PostgreSQL server's URL, for a test that runs only with `tm_postgres`.
///
/// # Panics
/// When it is not set: only under `CI=true` does the test run without it, and there a missing
/// service is a failure.
#[allow(clippy::panic)]
pub fn postgres_url() -> String {
    match std::env::var(POSTGRES.var) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => panic!(
            "{} is not set: this test needs a PostgreSQL server (CI=true makes it required), \
             for example postgres://postgres@127.0.0.1:5432/test",
            POSTGRES.var
        ),
    }
}

/// The path of a tool, for a test that runs only with its `cfg`.
///
/// # Panics
/// When it cannot be found or started: only under `CI=true` does the test run without it, and
/// there a missing tool is a failure.
#[allow(clippy::panic)]
pub fn tool(need: &Need) -> PathBuf {
    match locate(need) {
        Some(path) if runs(&path) => path,
        _ => panic!(
            "{} cannot be run: install it, or set {} (CI=true makes it required)",
            need.program.unwrap_or(need.var),
            need.var
        ),
    }
}

/// Runs `program` with `args` in `dir`: whether it succeeded, and its stdout then stderr, for
/// the assertion's message.
///
/// # Panics
/// When the program cannot be started at all: a test's tool that is missing is a failure.
#[allow(clippy::panic)]
pub fn run(program: &Path, dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
