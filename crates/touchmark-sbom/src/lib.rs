//! CycloneDX 1.6 JSON SBOMs, checked strictly: the bytes must be JSON, name the format and
//! version (`bomFormat` `CycloneDX`, `specVersion` `1.6`), and be valid against the official
//! JSON schema, embedded in the binary (`schema/README.md`) so no check ever reaches the
//! network. A valid SBOM is then read for what an auditor joins it to: the hashes of the
//! component it describes (`metadata.component`) and the package URLs of its components.
//!
//! Nothing of Touchmark's domain is here; the rules that use it (which hash must match, how
//! a package URL is keyed) are the authority's and core's.

use std::fmt;
use std::sync::LazyLock;

use jsonschema::{Draft, Registry, Validator};
use serde_json::Value;

/// The CycloneDX specification version accepted.
pub const SPEC_VERSION: &str = "1.6";

/// The CycloneDX 1.6 JSON schema, as the CycloneDX project publishes it (`schema/README.md`).
const BOM_SCHEMA: &str = include_str!("../schema/bom-1.6.SNAPSHOT.schema.json");
/// The SPDX license identifiers the BOM schema refers to.
const SPDX_SCHEMA: &str = include_str!("../schema/spdx.SNAPSHOT.schema.json");
/// The JSON Signature Format schema the BOM schema refers to.
const JSF_SCHEMA: &str = include_str!("../schema/jsf-0.82.SNAPSHOT.schema.json");

/// Where the BOM schema's relative `$ref`s resolve: its `$id` is
/// `http://cyclonedx.org/schema/bom-1.6.schema.json`, and it names its neighbours by these file
/// names. They are registered under these addresses, so resolving them never fetches anything.
const SPDX_URI: &str = "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json";
const JSF_URI: &str = "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json";

/// How many of the validator's messages a refusal carries.
pub const MAX_MESSAGES: usize = 5;
/// The longest message kept, in characters; longer ones end in `…` (so a huge value the
/// validator quotes is not echoed).
pub const MAX_MESSAGE_CHARS: usize = 200;

/// Why bytes are not an SBOM accepted here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SbomError {
    /// The bytes are not JSON (or nest deeper than the parser allows).
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not a CycloneDX 1.6 BOM by its `bomFormat` or `specVersion`.
    #[error("not a CycloneDX {SPEC_VERSION} JSON BOM: {0}")]
    NotCycloneDx(String),
    /// A CycloneDX 1.6 BOM that the schema refuses.
    #[error("not valid against the CycloneDX {SPEC_VERSION} JSON schema: {}", Violations(.0))]
    Schema(Vec<Violation>),
    /// A value the schema allows, but that cannot be what it says (a hash that is not hex).
    #[error("{0}")]
    Content(String),
    /// The embedded schema did not compile: a defect of this build, not of the input.
    #[error("the embedded CycloneDX schema does not compile: {0}")]
    Internal(String),
}

/// One schema violation: where in the SBOM, and what failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The JSON pointer of the value that failed (`""` for the document).
    pub pointer: String,
    /// What failed, bounded to [`MAX_MESSAGE_CHARS`].
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "at {at}: {}", self.message)
    }
}

struct Violations<'a>(&'a [Violation]);

impl fmt::Display for Violations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// `text` cut to `max` characters, with `…` where it was cut.
fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// The compiled validator, built once from the embedded files.
static VALIDATOR: LazyLock<Result<Validator, String>> = LazyLock::new(compile);

fn compile() -> Result<Validator, String> {
    let parse = |what: &str, text: &str| {
        serde_json::from_str::<Value>(text).map_err(|e| format!("{what}: {e}"))
    };
    let bom = parse("bom-1.6", BOM_SCHEMA)?;
    let spdx = parse("spdx", SPDX_SCHEMA)?;
    let jsf = parse("jsf-0.82", JSF_SCHEMA)?;
    let registry = Registry::new()
        .add(SPDX_URI, spdx)
        .and_then(|r| r.add(JSF_URI, jsf))
        .and_then(|r| r.prepare())
        .map_err(|e| e.to_string())?;
    jsonschema::options()
        .with_draft(Draft::Draft7)
        // As the CycloneDX tools validate: `format` is asserted (date-time, iri-reference…).
        .should_validate_formats(true)
        .with_registry(&registry)
        .build(&bom)
        .map_err(|e| e.to_string())
}

/// An SBOM checked by [`validate`].
#[derive(Debug, Clone)]
pub struct Bom {
    document: Value,
}

/// A component of a [`Bom`] that names a package URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component<'a> {
    /// The JSON pointer of the component in the SBOM.
    pub pointer: String,
    /// Its `purl`, as written.
    pub purl: &'a str,
    /// Its `version`, if it has one.
    pub version: Option<&'a str>,
}

/// Checks `bytes` as a CycloneDX 1.6 JSON SBOM.
///
/// # Errors
/// [`SbomError`]: not JSON, not CycloneDX 1.6, or the schema's violations (the first
/// [`MAX_MESSAGES`], each bounded).
pub fn validate(bytes: &[u8]) -> Result<Bom, SbomError> {
    // serde_json stops at 128 levels of nesting, so a deeply nested document is refused here
    // before anything recurses over it.
    let document: Value =
        serde_json::from_slice(bytes).map_err(|e| SbomError::NotJson(e.to_string()))?;
    let Some(object) = document.as_object() else {
        return Err(SbomError::NotCycloneDx(
            "the document is not a JSON object".to_owned(),
        ));
    };
    match object.get("bomFormat") {
        Some(Value::String(s)) if s == "CycloneDX" => {}
        _ => {
            return Err(SbomError::NotCycloneDx(
                "`bomFormat` is not \"CycloneDX\"".to_owned(),
            ));
        }
    }
    match object.get("specVersion") {
        Some(Value::String(s)) if s == SPEC_VERSION => {}
        Some(Value::String(s)) => {
            return Err(SbomError::NotCycloneDx(format!(
                "`specVersion` is \"{}\", not \"{SPEC_VERSION}\"",
                bounded(&s.escape_debug().to_string(), 20)
            )));
        }
        _ => {
            return Err(SbomError::NotCycloneDx(format!(
                "`specVersion` is not the string \"{SPEC_VERSION}\""
            )));
        }
    }
    let validator = VALIDATOR
        .as_ref()
        .map_err(|e| SbomError::Internal(e.clone()))?;
    let violations: Vec<Violation> = validator
        .iter_errors(&document)
        .take(MAX_MESSAGES)
        .map(|e| Violation {
            pointer: bounded(e.instance_path().as_str(), MAX_MESSAGE_CHARS),
            message: bounded(&e.to_string(), MAX_MESSAGE_CHARS),
        })
        .collect();
    if !violations.is_empty() {
        return Err(SbomError::Schema(violations));
    }
    Ok(Bom { document })
}

impl Bom {
    /// The SHA-256 hashes that `metadata.component` (what the SBOM describes) declares, each
    /// 32 bytes.
    ///
    /// # Errors
    /// [`SbomError::Content`] for a SHA-256 hash that is not 64 hex digits (the schema
    /// allows 64 hex digits only, so this is for completeness).
    pub fn subject_sha256(&self) -> Result<Vec<[u8; 32]>, SbomError> {
        let Some(hashes) = self
            .document
            .pointer("/metadata/component/hashes")
            .and_then(Value::as_array)
        else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for (i, hash) in hashes.iter().enumerate() {
            if hash.get("alg").and_then(Value::as_str) != Some("SHA-256") {
                continue;
            }
            let content = hash.get("content").and_then(Value::as_str).unwrap_or("");
            found.push(hex32(content).ok_or_else(|| {
                SbomError::Content(format!(
                    "at /metadata/component/hashes/{i}: a SHA-256 hash is 64 hex digits"
                ))
            })?);
        }
        Ok(found)
    }

    /// Every component that names a package URL: `metadata.component`, `components` and the
    /// components nested in them, in document order.
    pub fn components(&self) -> Vec<Component<'_>> {
        let mut found = Vec::new();
        // An explicit stack, not recursion: the parser already bounds the depth, and this
        // keeps that bound the only one.
        let mut stack: Vec<(String, &Value)> = Vec::new();
        if let Some(list) = self.document.get("components").and_then(Value::as_array) {
            for (i, c) in list.iter().enumerate().rev() {
                stack.push((format!("/components/{i}"), c));
            }
        }
        if let Some(subject) = self.document.pointer("/metadata/component") {
            stack.push(("/metadata/component".to_owned(), subject));
        }
        while let Some((pointer, component)) = stack.pop() {
            if let Some(nested) = component.get("components").and_then(Value::as_array) {
                for (i, c) in nested.iter().enumerate().rev() {
                    stack.push((format!("{pointer}/components/{i}"), c));
                }
            }
            if let Some(purl) = component.get("purl").and_then(Value::as_str) {
                found.push(Component {
                    pointer,
                    purl,
                    version: component.get("version").and_then(Value::as_str),
                });
            }
        }
        found
    }
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn bom(extra: &str) -> String {
        format!(r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","version":1{extra}}}"#)
    }

    #[test]
    fn the_embedded_schema_compiles() {
        assert!(VALIDATOR.is_ok(), "{:?}", VALIDATOR.as_ref().err());
    }

    #[test]
    fn a_minimal_bom_is_valid() {
        let bom = validate(bom("").as_bytes()).unwrap();
        assert!(bom.components().is_empty());
        assert!(bom.subject_sha256().unwrap().is_empty());
    }

    #[test]
    fn refusals_name_their_kind() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("not json", b"{", "not JSON"),
            ("an array", b"[]", "not a JSON object"),
            (
                "another format",
                br#"{"bomFormat":"SPDX","specVersion":"1.6"}"#,
                "`bomFormat`",
            ),
            (
                "version 1.5",
                br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#,
                "\"1.5\", not \"1.6\"",
            ),
            (
                "a number as version",
                br#"{"bomFormat":"CycloneDX","specVersion":1.6}"#,
                "not the string",
            ),
        ];
        for (name, bytes, says) in cases {
            let e = validate(bytes).unwrap_err();
            assert!(e.to_string().contains(says), "{name}: {e}");
        }
    }

    #[test]
    fn schema_violations_carry_the_pointer_and_what_failed() {
        let cases: &[(&str, String, &str, &str)] = &[
            (
                "a component without its name",
                bom(r#","components":[{"type":"library"}]"#),
                "/components/0",
                "name",
            ),
            (
                "a type that is no type",
                bom(r#","components":[{"type":"gadget","name":"x"}]"#),
                "/components/0/type",
                "gadget",
            ),
            (
                "a number for a string",
                bom(r#","components":[{"type":"library","name":7}]"#),
                "/components/0/name",
                "string",
            ),
            (
                "an unknown property",
                bom(r#","colour":"blue""#),
                "at /:",
                "colour",
            ),
            (
                "a bad date",
                bom(r#","metadata":{"timestamp":"yesterday"}"#),
                "/metadata/timestamp",
                "date-time",
            ),
        ];
        for (name, text, at, says) in cases {
            let e = validate(text.as_bytes()).unwrap_err();
            let SbomError::Schema(ref violations) = e else {
                panic!("{name}: {e:?}");
            };
            assert!(!violations.is_empty() && violations.len() <= MAX_MESSAGES);
            let text = e.to_string();
            assert!(text.contains(at) && text.contains(says), "{name}: {text}");
        }
    }

    #[test]
    fn the_referenced_spdx_schema_is_resolved_from_the_embedded_copy() {
        let licensed = |id: &str| {
            bom(&format!(
                r#","components":[{{"type":"library","name":"a","licenses":[{{"license":{{"id":"{id}"}}}}]}}]"#
            ))
        };
        assert!(validate(licensed("Apache-2.0").as_bytes()).is_ok());
        let e = validate(licensed("Not-A-License").as_bytes()).unwrap_err();
        assert!(matches!(e, SbomError::Schema(_)), "{e}");
    }

    #[test]
    fn messages_are_bounded() {
        let huge = "x".repeat(100_000);
        let e = validate(
            bom(&format!(
                r#","components":[{{"type":"{huge}","name":"a"}}]"#
            ))
            .as_bytes(),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.len() < MAX_MESSAGES * (MAX_MESSAGE_CHARS + 100) * 4,
            "{}",
            text.len()
        );
        let many: String = (0..50)
            .map(|_| r#"{"type":"nope","name":"a"}"#)
            .collect::<Vec<_>>()
            .join(",");
        let SbomError::Schema(v) =
            validate(bom(&format!(r#","components":[{many}]"#)).as_bytes()).unwrap_err()
        else {
            panic!("not a schema refusal");
        };
        assert_eq!(v.len(), MAX_MESSAGES);
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let depth = 100_000;
        let text = format!(
            r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","x":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert!(matches!(
            validate(text.as_bytes()),
            Err(SbomError::NotJson(_))
        ));
        // Nested components as deep as the parser allows: valid, and read without recursion.
        let levels = 40;
        let mut nested = String::new();
        for i in 0..levels {
            nested.push_str(&format!(
                r#"{{"type":"library","name":"c{i}","purl":"pkg:generic/c{i}@1","components":["#
            ));
        }
        for _ in 0..levels {
            nested.push_str("]}");
        }
        let bom = validate(bom(&format!(r#","components":[{nested}]"#)).as_bytes()).unwrap();
        let found = bom.components();
        assert_eq!(found.len(), levels);
        assert_eq!(found[0].purl, "pkg:generic/c0@1");
        assert_eq!(found[1].pointer, "/components/0/components/0");
    }

    #[test]
    fn components_and_subject_hashes_are_read() {
        let sha = "ab".repeat(32);
        let bom = validate(
            bom(&format!(
                r#","metadata":{{"component":{{"type":"firmware","name":"fw","version":"1.4.0",
                "purl":"pkg:generic/acme/fw@1.4.0",
                "hashes":[{{"alg":"SHA-1","content":"{}"}},{{"alg":"SHA-256","content":"{sha}"}}]}}}},
                "components":[{{"type":"library","name":"a","version":"0.23.5","purl":"pkg:cargo/rustls@0.23.5",
                "components":[{{"type":"library","name":"b","purl":"pkg:npm/%40s/b@2"}}]}},
                {{"type":"library","name":"no-purl"}}]"#,
                "cd".repeat(20)
            ))
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(bom.subject_sha256().unwrap(), vec![[0xab; 32]]);
        let components = bom.components();
        let found: Vec<(&str, Option<&str>, &str)> = components
            .iter()
            .map(|c| (c.purl, c.version, c.pointer.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    "pkg:generic/acme/fw@1.4.0",
                    Some("1.4.0"),
                    "/metadata/component"
                ),
                ("pkg:cargo/rustls@0.23.5", Some("0.23.5"), "/components/0"),
                ("pkg:npm/%40s/b@2", None, "/components/0/components/0"),
            ]
        );
    }

    #[test]
    fn bounded_cuts_on_characters() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("ééé", 2), "éé…");
    }
}
