//! Randomness the authority draws: secrets shown once, generated ids, certificate serial
//! numbers, and default OIDs. All from the operating system's generator, through `rand`.

use base64::Engine;
use rand::RngCore;
use touchmark_pki::SerialNumber;

/// A random secret, URL-safe base64 of 32 bytes, with a prefix naming what it is.
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A random identifier with a prefix, such as `tok-3f9a1c2e`.
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 4];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// 64 random bits.
pub fn random_u64() -> u64 {
    rand::rng().next_u64()
}

/// A random, positive certificate serial number (RFC 5280 §4.1.2.2).
pub fn serial_number() -> SerialNumber {
    SerialNumber::random(&mut rand::rng())
}
