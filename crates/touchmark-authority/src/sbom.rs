//! A release's SBOM (issue 18, item 5; `docs/firmware.md`, "SBOM"): checked at upload as a
//! CycloneDX 1.6 JSON BOM valid against its schema (`touchmark-sbom`), bound to the image it
//! came with, and read for the package URLs of its components, which are stored with the
//! release for vulnerability links.

use std::collections::HashSet;

use touchmark_core::code::ErrorCode;
use touchmark_core::event::Sha256Hash;
use touchmark_core::firmware::ReleaseComponent;
use touchmark_core::vuln::PackageUrl;
use touchmark_sbom::SbomError;

use crate::AuthorityError;

fn refused(message: impl std::fmt::Display) -> AuthorityError {
    AuthorityError::denied(ErrorCode::SbomInvalid, format!("the SBOM {message}"))
}

/// Checks `sbom`, uploaded with the image of SHA-256 `image_sha256`, and gives its components
/// that name a package URL, once each (the first of two that write the same one).
///
/// The binding: when the component the SBOM describes (`metadata.component`) carries SHA-256
/// hashes, each must be the SHA-256 of the image file as uploaded, the `image_sha256` that
/// `release.created` logs beside `sbom_sha256`, so an auditor checks it from the log alone.
///
/// # Errors
/// `sbom_invalid`, with the validator's messages (bounded), for bytes that are not a valid
/// CycloneDX 1.6 JSON BOM, a component's package URL that does not parse, or a hash that is
/// not the image's; `internal` if the embedded schema does not compile.
pub(crate) fn check(
    sbom: &[u8],
    image_sha256: &Sha256Hash,
) -> Result<Vec<ReleaseComponent>, AuthorityError> {
    let bom = touchmark_sbom::validate(sbom).map_err(|e| match e {
        SbomError::Internal(_) => AuthorityError::internal(e),
        e => refused(format_args!("is {e}")),
    })?;
    for hash in bom
        .subject_sha256()
        .map_err(|e| refused(format_args!("is {e}")))?
    {
        if hash != image_sha256.0 {
            return Err(refused(format_args!(
                "describes another image: the SHA-256 of metadata.component is {}, the \
                 uploaded image's is {}",
                hex::encode(hash),
                image_sha256.to_hex()
            )));
        }
    }
    let mut seen = HashSet::new();
    let mut components = Vec::new();
    for c in bom.components() {
        let purl = PackageUrl::parse("purl", c.purl).map_err(|e| {
            refused(format_args!(
                "has a component whose package URL does not parse, at {}/purl: {}",
                c.pointer, e.reason
            ))
        })?;
        if !seen.insert(c.purl) {
            continue;
        }
        components.push(ReleaseComponent {
            key: purl.key(),
            version: purl.version().or_else(|| c.version.map(str::to_owned)),
            purl: c.purl.to_owned(),
        });
    }
    Ok(components)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn code_and_message(e: AuthorityError) -> (ErrorCode, String) {
        match e {
            AuthorityError::Denied(r) => (r.code, r.message),
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn bound_to_the_image_and_indexed_by_package_url() {
        let image = Sha256Hash::of(b"image");
        let bom = |hash: &str| {
            format!(
                r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
                "metadata":{{"component":{{"type":"firmware","name":"fw",
                  "hashes":[{{"alg":"SHA-256","content":"{hash}"}}]}}}},
                "components":[
                  {{"type":"library","name":"rustls","version":"0.23.5","purl":"pkg:cargo/rustls@0.23.5"}},
                  {{"type":"library","name":"rustls","purl":"pkg:cargo/rustls@0.23.5"}},
                  {{"type":"library","name":"mbedtls","version":"3.5.0","purl":"pkg:generic/mbedtls?x=1"}}]}}"#
            )
        };
        let found = check(bom(&image.to_hex()).as_bytes(), &image).unwrap();
        assert_eq!(
            found,
            [
                ReleaseComponent {
                    key: "pkg:cargo/rustls".into(),
                    purl: "pkg:cargo/rustls@0.23.5".into(),
                    version: Some("0.23.5".into()),
                },
                ReleaseComponent {
                    key: "pkg:generic/mbedtls".into(),
                    purl: "pkg:generic/mbedtls?x=1".into(),
                    version: Some("3.5.0".into()),
                },
            ]
        );
        let other = Sha256Hash::of(b"another image").to_hex();
        let (code, message) = code_and_message(check(bom(&other).as_bytes(), &image).unwrap_err());
        assert_eq!(code, ErrorCode::SbomInvalid);
        assert!(
            message.contains(&other) && message.contains(&image.to_hex()),
            "{message}"
        );
    }

    #[test]
    fn a_package_url_that_does_not_parse_is_refused_with_its_place() {
        let bom = br#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":[
            {"type":"library","name":"a","components":[{"type":"library","name":"b","purl":"cargo/b"}]}]}"#;
        let (code, message) = code_and_message(check(bom, &Sha256Hash::of(b"image")).unwrap_err());
        assert_eq!(code, ErrorCode::SbomInvalid);
        assert!(
            message.contains("/components/0/components/0/purl"),
            "{message}"
        );
    }

    #[test]
    fn every_kind_of_invalid_sbom_is_sbom_invalid() {
        for bad in [
            &b"not json"[..],
            br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#,
            br#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library"}]}"#,
        ] {
            let (code, message) =
                code_and_message(check(bad, &Sha256Hash::of(b"image")).unwrap_err());
            assert_eq!(code, ErrorCode::SbomInvalid);
            assert!(message.starts_with("the SBOM is "), "{message}");
        }
    }
}
