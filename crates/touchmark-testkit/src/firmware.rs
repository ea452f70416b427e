//! Releases for tests: a product's release key, the reference signing key registered, and an
//! image built as `imgtool sign --encrypt` builds it.

use touchmark_client::Client;
use touchmark_client::api::{AddFirmwareKey, CreateReleaseKey, ReleaseBody};
use touchmark_firmware::builder::{BuildOptions, build_release};
use touchmark_firmware::{ContentKey, EncKind, Ephemeral, PublicKey};

/// The reference Ed25519 signing key of the MCUboot vectors, PKCS#8 PEM, and its public half.
const SIGNING_KEY: &str =
    include_str!("../../touchmark-firmware/tests/vectors/mcuboot/keys/sign-ed25519.pem");
const SIGNING_PUB: &str =
    include_str!("../../touchmark-firmware/tests/vectors/mcuboot/keys/sign-ed25519.pub.pem");

/// The payload of the releases built here.
pub fn payload() -> Vec<u8> {
    (0..6000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// The content key of the releases built here.
pub const CONTENT_KEY: [u8; 16] = [7; 16];

/// See [`crate::TestServer::release`]. The product's first X25519 release key is used, made if
/// it has none; the signing key is registered once.
pub async fn release(
    admin: &Client,
    product: &str,
    version: (u8, u8, u16),
) -> (ReleaseBody, Vec<u8>) {
    let keys = admin.release_keys(product).await.expect("release keys");
    let key = match keys.into_iter().find(|k| k.algorithm == "x25519") {
        Some(key) => key,
        None => admin
            .create_release_key(
                product,
                &CreateReleaseKey {
                    algorithm: Some("x25519".into()),
                },
            )
            .await
            .expect("release key"),
    };
    let registered = admin.firmware_keys(product).await.expect("signing keys");
    if registered.is_empty() {
        admin
            .add_firmware_key(
                product,
                &AddFirmwareKey {
                    public_key_pem: SIGNING_PUB.to_owned(),
                },
            )
            .await
            .expect("signing key");
    }
    let signing =
        touchmark_firmware::keys::pem_decode(SIGNING_KEY, "PRIVATE KEY").expect("signing key");
    let image = build_release(
        &payload(),
        &BuildOptions {
            header_size: 0x200,
            version: (version.0, version.1, version.2, 0),
            kind: EncKind::X25519,
        },
        &signing,
        &PublicKey::from_pem(&key.public_key_pem).expect("release key"),
        &ContentKey::new(&CONTENT_KEY).expect("content key"),
        Ephemeral::Fresh,
    )
    .expect("release image");
    let text = format!("{}.{}.{}", version.0, version.1, version.2);
    let release = admin
        .upload_release(product, &text, &image, None)
        .await
        .expect("release");
    (release, image)
}
