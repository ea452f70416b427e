//! The device certificate profile (IEEE 802.1AR IDevID, docs/design.md §5) and device certificate issuance.

use rcgen::{
    CrlDistributionPoint, CustomExtension, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::cert::{CaIssuer, Certificate, SerialNumber, SubjectKey, base_params, checked_name};
use crate::csr::VerifiedCsr;
use crate::der;
use crate::error::PkiError;

/// notAfter for devices without a well-defined expiry: 99991231235959Z (RFC 5280 §4.1.2.5).
pub const NO_WELL_DEFINED_EXPIRY: OffsetDateTime = datetime!(9999-12-31 23:59:59 UTC);

/// id-on-hardwareModuleName (RFC 4108 §5).
pub const OID_HARDWARE_MODULE_NAME: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 8, 4];
/// id-ce-subjectAltName.
const OID_SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];
/// id-pe-authorityInfoAccess.
const OID_AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// id-ad-ocsp.
const OID_AD_OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
/// id-at-serialNumber (X.520).
const OID_AT_SERIAL_NUMBER: &[u64] = &[2, 5, 4, 5];

/// Upper bound for the serialNumber attribute (RFC 5280 Appendix A, ub-serial-number).
const UB_SERIAL_NUMBER: usize = 64;
/// Upper bound for CRL and OCSP URLs.
const MAX_URL_LEN: usize = 1024;

/// What a product's device certificates contain, besides the unit's serial and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceProfile {
    /// Subject organizationName (O): the brand.
    pub organization: String,
    /// Subject commonName (CN): usually the product name.
    pub common_name: String,
    /// The hwType OID of the hardwareModuleName (RFC 4108), identifying the hardware module type.
    pub hw_type_oid: Vec<u64>,
    /// CRL distribution point URL, if the product publishes CRLs.
    pub crl_url: Option<String>,
    /// OCSP responder URL, put in the AIA extension, if the product runs OCSP.
    pub ocsp_url: Option<String>,
    /// notAfter; `None` means 99991231235959Z ([`NO_WELL_DEFINED_EXPIRY`]).
    pub not_after: Option<OffsetDateTime>,
}

fn checked_url<'a>(what: &str, url: &'a str) -> Result<&'a str, PkiError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= MAX_URL_LEN
        && url.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(url)
    } else {
        Err(PkiError::InvalidParameter(format!(
            "{what} must be an http:// or https:// URL of printable ASCII"
        )))
    }
}

fn oid_tlv(arcs: &[u64]) -> Result<Vec<u8>, PkiError> {
    der::oid_content(arcs)
        .map(|c| der::tlv(der::OID, &c))
        .ok_or_else(|| PkiError::InvalidParameter(format!("{arcs:?} is not a valid OID")))
}

/// The subjectAltName value holding only the hardwareModuleName otherName:
///
/// ```text
/// GeneralNames ::= SEQUENCE { [0] IMPLICIT OtherName {
///     type-id id-on-hardwareModuleName,
///     value [0] EXPLICIT HardwareModuleName { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING } } }
/// ```
pub(crate) fn hardware_module_name_san(
    hw_type: &[u64],
    hw_serial: &[u8],
) -> Result<Vec<u8>, PkiError> {
    let mut hmn = oid_tlv(hw_type)?;
    hmn.extend_from_slice(&der::tlv(der::OCTET_STRING, hw_serial));
    let hmn = der::tlv(der::SEQUENCE, &hmn);

    let mut other_name = oid_tlv(OID_HARDWARE_MODULE_NAME)?;
    other_name.extend_from_slice(&der::tlv(0xa0, &hmn));
    let general_name = der::tlv(0xa0, &other_name);
    Ok(der::tlv(der::SEQUENCE, &general_name))
}

/// The authorityInfoAccess value with one OCSP access description (RFC 5280 §4.2.2.1).
fn ocsp_aia(url: &str) -> Result<Vec<u8>, PkiError> {
    let mut access = oid_tlv(OID_AD_OCSP)?;
    // accessLocation: [6] IMPLICIT IA5String uniformResourceIdentifier.
    access.extend_from_slice(&der::tlv(0x86, url.as_bytes()));
    Ok(der::tlv(der::SEQUENCE, &der::tlv(der::SEQUENCE, &access)))
}

/// The unit serial as a directory string: PrintableString as X.520 specifies for serialNumber,
/// or UTF8String if the serial has characters PrintableString cannot hold (such as `_`).
fn serial_attribute(unit_serial: &str) -> Result<DnValue, PkiError> {
    if unit_serial.is_empty()
        || unit_serial.chars().count() > UB_SERIAL_NUMBER
        || unit_serial.chars().any(char::is_control)
    {
        return Err(PkiError::InvalidParameter(format!(
            "unit serial must be 1 to {UB_SERIAL_NUMBER} characters without control characters"
        )));
    }
    Ok(
        match rcgen::string::PrintableString::try_from(unit_serial) {
            Ok(p) => DnValue::PrintableString(p),
            Err(_) => DnValue::Utf8String(unit_serial.to_owned()),
        },
    )
}

/// Issues a device's IDevID certificate from its verified CSR.
///
/// Profile (IEEE 802.1AR, docs/design.md §5):
/// - subject O and CN from the profile, and serialNumber (2.5.4.5) = `unit_serial`;
/// - subjectAltName holding only the RFC 4108 hardwareModuleName otherName (hwType from the
///   profile, hwSerialNum = the bytes of `unit_serial`), non-critical as the subject is not empty;
/// - critical keyUsage digitalSignature, EKU clientAuth, critical basicConstraints cA false;
/// - SKI (SHA-1 of the public key), AKI = the issuer's SKI;
/// - CRL distribution point and AIA OCSP only when the profile has the URLs;
/// - notBefore = `now` (whole seconds), notAfter = the profile's, or 99991231235959Z;
/// - signed by the issuer's [`crate::Signer`].
///
/// # Errors
/// [`PkiError::InvalidParameter`] for a bad profile or serial, or a signer error.
pub fn issue_device_cert(
    issuer: &CaIssuer,
    csr: &VerifiedCsr,
    unit_serial: &str,
    profile: &DeviceProfile,
    now: OffsetDateTime,
    serial: SerialNumber,
) -> Result<Certificate, PkiError> {
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(checked_name("organization", &profile.organization)?.to_owned()),
    );
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String(checked_name("common name", &profile.common_name)?.to_owned()),
    );
    dn.push(
        DnType::CustomDnType(OID_AT_SERIAL_NUMBER.to_vec()),
        serial_attribute(unit_serial)?,
    );

    let key = SubjectKey::p256(csr.public_key_raw());
    let mut params = base_params(
        dn,
        now,
        profile.not_after.unwrap_or(NO_WELL_DEFINED_EXPIRY),
        &serial,
        IsCa::ExplicitNoCa,
        vec![KeyUsagePurpose::DigitalSignature],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
        csr.public_key_raw(),
    )?;

    let san = hardware_module_name_san(&profile.hw_type_oid, unit_serial.as_bytes())?;
    // Non-critical: RFC 5280 §4.2.1.6 requires criticality only for an empty subject.
    params.custom_extensions = vec![CustomExtension::from_oid_content(OID_SUBJECT_ALT_NAME, san)];
    if let Some(url) = &profile.crl_url {
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![checked_url("CRL URL", url)?.to_owned()],
        }];
    }
    if let Some(url) = &profile.ocsp_url {
        let aia = ocsp_aia(checked_url("OCSP URL", url)?)?;
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                OID_AUTHORITY_INFO_ACCESS,
                aia,
            ));
    }
    issuer.sign(&params, &key, csr.spki_der())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn hardware_module_name_encoding() {
        let san = hardware_module_name_san(&[1, 3, 6, 1, 4, 1, 99999, 1], b"SN1").unwrap();
        let expected = hex_literal(
            "3020 a01e 0608 2b06010505070804 a012 3010 0609 2b06010401868d1f01 0403 534e31",
        );
        assert_eq!(hex::encode(&san), hex::encode(expected));
    }

    fn hex_literal(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn urls_and_serials_are_checked() {
        assert!(checked_url("u", "http://crl.example.com/a.crl").is_ok());
        assert!(checked_url("u", "ftp://x").is_err());
        assert!(checked_url("u", "http://a b").is_err());
        assert!(serial_attribute("").is_err());
        assert!(serial_attribute("a\nb").is_err());
        assert!(matches!(
            serial_attribute("SN-0001").unwrap(),
            DnValue::PrintableString(_)
        ));
        assert!(matches!(
            serial_attribute("SN_0001").unwrap(),
            DnValue::Utf8String(_)
        ));
    }
}
