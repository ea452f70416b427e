//! The firmware crate against the MCUboot vectors made with imgtool 2.5.0 (FIRMWARE.md), the
//! independent Python reference `mcuboot_rewrap.py`, and imgtool itself.
//!
//! Modules: `vectors` (every release, per-unit image and negative of `check_vectors.py`),
//! `robustness` (bad images and a property test of the parser), `oracles` (the Python reference
//! and imgtool on what this crate makes).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use touchmark_firmware::{
    Curve, Ephemeral, FirmwareError, KeyAgreement, Limits, PerUnitImage, PublicKey,
    SoftwareAgreementKey, check_identical, decrypt, enc_tlv, import_release, parse, rewrap_value,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/mcuboot")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn text(rel: &str) -> String {
    String::from_utf8(read(rel)).unwrap()
}

fn manifest() -> Value {
    serde_json::from_slice(&read("vectors.json")).unwrap()
}

fn private(rel: &str) -> SoftwareAgreementKey {
    SoftwareAgreementKey::from_pem(&text(rel)).unwrap()
}

fn public(rel: &str) -> PublicKey {
    PublicKey::from_pem(&text(rel)).unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn n(v: &Value, k: &str) -> usize {
    usize::try_from(v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))).unwrap()
}

fn unit_curve(file: &str) -> Curve {
    if file.contains("x25519") {
        Curve::X25519
    } else {
        Curve::P256
    }
}

/// Imports `img` as the reference's `rewrap` does, with one release key and one signing key.
fn import(
    img: &[u8],
    release_key: &dyn KeyAgreement,
    signing: &[PublicKey],
) -> Result<touchmark_firmware::ImportedRelease, FirmwareError> {
    import_release(img, &[release_key], signing, Limits::default())
}

mod vectors {
    use super::*;

    /// Every release: layout, content key, plaintext hash, signature, as recorded.
    #[test]
    fn releases_import_with_the_recorded_values() {
        let m = manifest();
        let releases = m["releases"].as_array().unwrap();
        assert_eq!(releases.len(), 7);
        for r in releases {
            let img = read(s(r, "file"));
            let rel = private(s(r, "release_key"));
            let sign = public(s(r, "signing_pub"));
            let other_sign = if s(r, "signing_pub").contains("ed25519") {
                public("keys/sign-ecdsa-p256.pub.pem")
            } else {
                public("keys/sign-ed25519.pub.pem")
            };
            // The registered key is found among several.
            let imported = import(&img, &rel, &[other_sign, sign.clone()])
                .unwrap_or_else(|e| panic!("{}: {e}", s(r, "id")));
            let info = &imported.info;
            assert_eq!(info.signing_key, 1, "{}", s(r, "id"));
            assert_eq!(hex::encode(info.image_sha256), s(r, "sha256"));
            assert_eq!(
                hex::encode(imported.content_key.as_bytes()),
                s(r, "content_key")
            );
            assert_eq!(hex::encode(&info.plaintext_hash), s(r, "plaintext_hash"));
            assert_eq!(info.enc.key_len * 8, n(r, "aes_bits"));
            let e = &r["enc_tlv"];
            assert_eq!(usize::from(info.enc.kind.tlv()), n(e, "type"));
            assert_eq!(info.enc.value_off, n(e, "value_off"));
            assert_eq!(info.enc.len, n(e, "len"));
            let h = &r["header"];
            let l = &info.layout;
            assert_eq!(usize::from(l.header.hdr_size), n(h, "hdr_size"));
            assert_eq!(
                usize::from(l.header.protect_tlv_size),
                n(h, "protect_tlv_size")
            );
            assert_eq!(
                usize::try_from(l.header.img_size).unwrap(),
                n(h, "img_size")
            );
            assert_eq!(usize::try_from(l.header.flags).unwrap(), n(h, "flags"));
            assert_eq!(l.header.version_string(), s(h, "version"));
            assert_eq!(l.tlv_off, n(h, "tlv_off"));
            assert_eq!(l.unprot_off, n(h, "unprot_off"));
            assert_eq!(l.tlv_end, n(h, "tlv_end"));
            assert_eq!(img.len() - l.tlv_end, n(h, "trailing_len"));
            assert_eq!(l.hashed_len, n(h, "hashed_len"));
            let tlvs = r["tlvs"].as_array().unwrap();
            assert_eq!(l.entries.len(), tlvs.len(), "{}", s(r, "id"));
            for (got, want) in l.entries.iter().zip(tlvs) {
                assert_eq!(usize::from(got.typ), n(want, "type"));
                assert_eq!(got.tlv_off, n(want, "tlv_off"));
                assert_eq!(got.off, n(want, "off"));
                assert_eq!(got.len, n(want, "len"));
                let area = match got.area {
                    touchmark_firmware::image::Area::Protected => "protected",
                    touchmark_firmware::image::Area::Unprotected => "unprotected",
                };
                assert_eq!(area, s(want, "area"));
            }
        }
    }

    /// Every per-unit image: the recorded ephemeral key reproduces it byte for byte; the unit's
    /// key opens it to the payload; the other unit's key and the release key do not.
    #[test]
    fn per_unit_images_are_reproduced_byte_for_byte() {
        let m = manifest();
        let releases = m["releases"].as_array().unwrap();
        let units = m["units"].as_array().unwrap();
        assert_eq!(units.len(), 14);
        for u in units {
            let file = s(u, "file");
            let r = releases
                .iter()
                .find(|r| s(r, "id") == s(u, "release"))
                .unwrap();
            let release_img = read(s(r, "file"));
            let rel = private(s(r, "release_key"));
            let imported = import(&release_img, &rel, &[public(s(r, "signing_pub"))]).unwrap();
            let curve = unit_curve(file);
            let eph = hex::decode(s(u, "ephemeral_private")).unwrap();
            let eph = SoftwareAgreementKey::from_raw(curve, &eph).unwrap();
            let value = rewrap_value(
                &imported.info.enc,
                &imported.content_key,
                &public(s(u, "unit_pub")),
                Ephemeral::Fixed(eph),
            )
            .unwrap();
            assert_eq!(hex::encode(&value), s(u, "enc_tlv_value"), "{file}");
            let per_unit = PerUnitImage::new(&release_img, &imported.info.enc, &value).unwrap();
            let want = read(file);
            assert_eq!(per_unit.to_vec(), want, "{file}");
            let mut written = Vec::new();
            per_unit.write_to(&mut written).unwrap();
            assert_eq!(written, want);
            assert_eq!(hex::encode(per_unit.sha256()), s(u, "sha256"));
            check_identical(&want, &release_img).unwrap();

            // The unit's key opens it: primary-slot form, body = payload + zero pad.
            let unit_key = private(s(u, "unit_key"));
            let plain = decrypt(&want, &unit_key).unwrap();
            let layout = parse(&want).unwrap();
            let payload = read(s(r, "payload"));
            let body = &plain[layout.body_off..layout.tlv_off];
            assert_eq!(&body[..payload.len()], &payload[..], "{file}");
            assert!(body[payload.len()..].iter().all(|b| *b == 0));
            assert_eq!(body.len() - payload.len(), n(r, "zero_pad_len"));
            assert_eq!(plain[..layout.body_off], want[..layout.body_off]);
            assert_eq!(plain[layout.tlv_off..], want[layout.tlv_off..]);

            let other = s(u, "unit_key")
                .replace("-1.pem", "-X.pem")
                .replace("-2.pem", "-1.pem")
                .replace("-X.pem", "-2.pem");
            assert_eq!(
                decrypt(&want, &private(&other)).unwrap_err().code(),
                "enc_tlv_hmac_mismatch",
                "{file} with {other}"
            );
            assert_eq!(
                decrypt(&want, &rel).unwrap_err().code(),
                "enc_tlv_hmac_mismatch"
            );
        }
    }

    /// A fresh ephemeral key each time: two wraps to the same unit differ, and both open.
    #[test]
    fn fresh_ephemeral_keys_are_never_reused() {
        let img = read("release/R3-ed25519sig-x25519-aes128-prot-odd.bin");
        let rel = private("keys/release-x25519.pem");
        let imported = import(&img, &rel, &[public("keys/sign-ed25519.pub.pem")]).unwrap();
        let unit = public("keys/unit-x25519-1.pub.pem");
        let a = rewrap_value(
            &imported.info.enc,
            &imported.content_key,
            &unit,
            Ephemeral::Fresh,
        )
        .unwrap();
        let b = rewrap_value(
            &imported.info.enc,
            &imported.content_key,
            &unit,
            Ephemeral::Fresh,
        )
        .unwrap();
        assert_ne!(a[..32], b[..32]);
        for v in [&a, &b] {
            let img_u = PerUnitImage::new(&img, &imported.info.enc, v)
                .unwrap()
                .to_vec();
            decrypt(&img_u, &private("keys/unit-x25519-1.pem")).unwrap();
        }
    }

    /// The builder makes imgtool's bytes: given the recorded content key, everything but the
    /// key TLV's value equals the release imgtool 2.5.0 made (Ed25519 signatures are
    /// deterministic), and the result imports.
    #[test]
    fn the_builder_makes_imgtools_bytes() {
        use touchmark_firmware::builder::{BuildOptions, build_release};
        use touchmark_firmware::{ContentKey, EncKind};
        let m = manifest();
        for (id, kind) in [
            ("R4", EncKind::X25519),
            ("R5", EncKind::Ec256),
            ("R6", EncKind::X25519Sha512),
        ] {
            let r = m["releases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| s(r, "id") == id)
                .unwrap();
            let want = read(s(r, "file"));
            let signing =
                touchmark_firmware::keys::pem_decode(&text("keys/sign-ed25519.pem"), "PRIVATE KEY")
                    .unwrap();
            let rel = private(s(r, "release_key"));
            let key = ContentKey::new(&hex::decode(s(r, "content_key")).unwrap()).unwrap();
            let opts = BuildOptions {
                header_size: 0x200,
                version: (1, 2, 3, 4),
                kind,
            };
            let got = build_release(
                &read(s(r, "payload")),
                &opts,
                &signing,
                rel.public_key(),
                &key,
                Ephemeral::Fresh,
            )
            .unwrap();
            assert_eq!(got.len(), want.len(), "{id}");
            let e = &r["enc_tlv"];
            let (a, b) = (n(e, "value_off"), n(e, "value_off") + n(e, "len"));
            assert_eq!(got[..a], want[..a], "{id}");
            assert_eq!(got[b..], want[b..], "{id}");
            assert_ne!(got[a..b], want[a..b], "{id}: a fresh ephemeral key");
            let imported = import(&got, &rel, &[public("keys/sign-ed25519.pub.pem")]).unwrap();
            assert_eq!(imported.content_key, key);
        }
    }

    fn refusal(path: &str, op: &str) -> FirmwareError {
        let img = read(path);
        let sp_ec = public("keys/sign-ecdsa-p256.pub.pem");
        let rk_ec = private("keys/release-ec256.pem");
        let rk_x = private("keys/release-x25519.pem");
        let unit_ec = private("keys/unit-ec256-1.pem");
        let u1 = public("keys/unit-ec256-1.pub.pem");
        let ux = public("keys/unit-x25519-1.pub.pem");
        let rewrap = |rk: &dyn KeyAgreement, unit: &PublicKey, signing: &[PublicKey]| {
            let imported = import(&img, rk, signing)?;
            rewrap_value(
                &imported.info.enc,
                &imported.content_key,
                unit,
                Ephemeral::Fresh,
            )
        };
        let result = match op {
            "rewrap" if path.contains("R4") => {
                rewrap(&rk_x, &ux, &[public("keys/sign-ed25519.pub.pem")])
            }
            "rewrap" => rewrap(&rk_ec, &u1, &[sp_ec]),
            "check" => {
                let rel = if path.contains("R2") {
                    "release/R2-p256sig-ec256-aes256-prot.bin"
                } else {
                    "release/R1-p256sig-ec256-aes128.bin"
                };
                check_identical(&img, &read(rel)).map(|_| Vec::new())
            }
            "decrypt" => decrypt(&img, &unit_ec),
            "rewrap-wrong-release-key" => rewrap(&unit_ec, &u1, &[sp_ec]),
            "rewrap-to-x25519-unit" => rewrap(&rk_ec, &ux, &[sp_ec]),
            "rewrap-with-ec256-release-key" => {
                rewrap(&rk_ec, &ux, &[public("keys/sign-ed25519.pub.pem")])
            }
            "rewrap-wrong-signing-key" => {
                rewrap(&rk_ec, &u1, &[public("keys/sign-ed25519.pub.pem")])
            }
            "rewrap-to-low-order-x25519" => rewrap(
                &rk_x,
                &public("neg/N10-unit-x25519-low-order.pub.pem"),
                &[public("keys/sign-ed25519.pub.pem")],
            ),
            other => panic!("unknown operation {other}"),
        };
        match result {
            Ok(_) => panic!("{path} {op} was accepted"),
            Err(e) => e,
        }
    }

    /// Every negative of `check_vectors.py` gets its code.
    #[test]
    fn every_negative_gets_its_code() {
        let m = manifest();
        let negatives = m["negatives"].as_array().unwrap();
        assert_eq!(negatives.len(), 19);
        for neg in negatives {
            let (path, op, code) = (s(neg, "file"), s(neg, "operation"), s(neg, "expected_code"));
            let e = refusal(path, op);
            assert_eq!(e.code(), code, "{path} {op}: {e}");
            assert!(!e.to_string().is_empty());
        }
    }

    /// `imgtool sign --clear` makes an image whose flag and key TLV say encrypted: refused as
    /// `body_not_encrypted`, and its layout still parses.
    #[test]
    fn a_clear_image_parses_but_is_refused() {
        let img = read("neg/X1-clear-p256sig-ec256-aes128.bin");
        let layout = parse(&img).unwrap();
        assert_eq!(layout.aes_key_len().unwrap(), 16);
        enc_tlv(&layout).unwrap();
        assert_eq!(
            refusal("neg/X1-clear-p256sig-ec256-aes128.bin", "rewrap").code(),
            "body_not_encrypted"
        );
    }
}

mod robustness {
    use proptest::prelude::*;

    use super::*;

    fn outcome(img: &[u8]) -> Result<(), FirmwareError> {
        let rel_x = private("keys/release-x25519.pem");
        let rel_ec = private("keys/release-ec256.pem");
        import_release(
            img,
            &[&rel_x, &rel_ec],
            &[
                public("keys/sign-ed25519.pub.pem"),
                public("keys/sign-ecdsa-p256.pub.pem"),
            ],
            Limits::default(),
        )
        .map(|_| ())
    }

    /// Every prefix of a release is refused with a structural code, never a panic.
    #[test]
    fn every_truncation_is_refused() {
        for file in [
            "release/R1-p256sig-ec256-aes128.bin",
            "release/R3-ed25519sig-x25519-aes128-prot-odd.bin",
        ] {
            let img = read(file);
            for len in 0..img.len() {
                let code = parse(&img[..len]).map(|_| ()).unwrap_err().code();
                let want = if len < 32 {
                    "not_mcuboot_image"
                } else {
                    "malformed_tlv"
                };
                assert_eq!(code, want, "{file} cut at {len}");
            }
            // R7 is padded: cutting the trailing bytes leaves a valid image.
        }
        let img = read("release/R7-p256sig-ec256-aes128-padded.bin");
        let end = parse(&img).unwrap().tlv_end;
        outcome(&img[..end]).unwrap();
        assert_eq!(parse(&img[..end - 1]).unwrap_err().code(), "malformed_tlv");
    }

    fn r1() -> Vec<u8> {
        read("release/R1-p256sig-ec256-aes128.bin")
    }

    /// A named edit of R1 and the code it must get.
    type Case = (&'static str, Box<dyn Fn(&mut Vec<u8>)>, &'static str);

    /// Hand-made bad headers and TLV lengths.
    #[test]
    fn bad_headers_and_lengths_get_clear_codes() {
        let cases: Vec<Case> = vec![
            ("wrong magic", Box::new(|b| b[0] ^= 1), "not_mcuboot_image"),
            (
                "zip file",
                Box::new(|b| b[..4].copy_from_slice(b"PK\x03\x04")),
                "not_mcuboot_image",
            ),
            (
                "hdr_size < 32",
                Box::new(|b| b[8..10].copy_from_slice(&16u16.to_le_bytes())),
                "not_mcuboot_image",
            ),
            (
                "hdr_size past the end",
                Box::new(|b| b[8..10].copy_from_slice(&0xfff0u16.to_le_bytes())),
                "malformed_tlv",
            ),
            (
                "hdr_size off by one",
                Box::new(|b| b[8..10].copy_from_slice(&513u16.to_le_bytes())),
                "malformed_tlv",
            ),
            (
                "img_size u32::MAX",
                Box::new(|b| b[12..16].copy_from_slice(&u32::MAX.to_le_bytes())),
                "malformed_tlv",
            ),
            (
                "protect size lies",
                Box::new(|b| b[10..12].copy_from_slice(&8u16.to_le_bytes())),
                "malformed_tlv",
            ),
            (
                "unprotected tot overflows",
                Box::new(|b| b[4610..4612].copy_from_slice(&u16::MAX.to_le_bytes())),
                "malformed_tlv",
            ),
            (
                "unprotected tot too small",
                Box::new(|b| b[4610..4612].copy_from_slice(&2u16.to_le_bytes())),
                "malformed_tlv",
            ),
            (
                "TLV length overflows the area",
                Box::new(|b| b[4614..4616].copy_from_slice(&u16::MAX.to_le_bytes())),
                "malformed_tlv",
            ),
            (
                "TLV length one too long",
                Box::new(|b| b[4614..4616].copy_from_slice(&33u16.to_le_bytes())),
                "malformed_tlv",
            ),
            (
                "hash TLV changed",
                Box::new(|b| b[4620] ^= 1),
                "hash_mismatch",
            ),
            ("body changed", Box::new(|b| b[600] ^= 1), "hash_mismatch"),
            ("header changed", Box::new(|b| b[4] ^= 1), "hash_mismatch"),
            (
                "signature changed",
                Box::new(|b| b[4700] ^= 1),
                "signature_invalid",
            ),
            (
                "key hash changed",
                Box::new(|b| b[4660] ^= 1),
                "signature_invalid",
            ),
            (
                "key TLV turned RSA",
                Box::new(|b| b[4758] = 0x30),
                "unsupported_enc_tlv",
            ),
            (
                "key TLV turned SEC_CNT",
                Box::new(|b| b[4758] = 0x50),
                "unprotected_tlv_not_allowed",
            ),
            (
                "key TLV turned X25519",
                Box::new(|b| b[4758] = 0x33),
                "enc_tlv_bad_length",
            ),
            ("not encrypted", Box::new(|b| b[16] = 0), "not_encrypted"),
        ];
        for (name, mutate, code) in cases {
            let mut img = r1();
            mutate(&mut img);
            let got = outcome(&img).unwrap_err();
            assert_eq!(got.code(), code, "{name}: {got}");
        }
        // The key TLV removed: no key TLV at all (the unprotected area shrinks by its 117 bytes).
        let mut img = r1();
        img.truncate(4758);
        img[4610..4612].copy_from_slice(&(267u16 - 117).to_le_bytes());
        assert_eq!(outcome(&img).unwrap_err().code(), "no_enc_tlv");
        // The key TLV moved into a protected area: the header, hashed, says so.
        let mut img = r1();
        let key_tlv = img[4758..4875].to_vec();
        img.truncate(4758);
        img[4610..4612].copy_from_slice(&(267u16 - 117).to_le_bytes());
        let unprot = img.split_off(4608);
        let prot_len = u16::try_from(4 + key_tlv.len()).unwrap();
        img[10..12].copy_from_slice(&prot_len.to_le_bytes());
        img.extend_from_slice(&0x6908u16.to_le_bytes());
        img.extend_from_slice(&prot_len.to_le_bytes());
        img.extend_from_slice(&key_tlv);
        img.extend_from_slice(&unprot);
        assert_eq!(outcome(&img).unwrap_err().code(), "enc_tlv_protected");
    }

    /// A product whose bootloader takes one key TLV type and AES size refuses the others.
    #[test]
    fn the_bootloader_build_is_enforced() {
        use touchmark_firmware::EncKind;
        let img = read("release/R4-ed25519sig-x25519-aes256.bin");
        let rel = private("keys/release-x25519.pem");
        let sign = [public("keys/sign-ed25519.pub.pem")];
        let with = |kind, key_len| Limits {
            bootloader_kind: kind,
            bootloader_key_len: key_len,
            ..Limits::default()
        };
        for (limits, ok) in [
            (with(Some(EncKind::X25519), Some(32)), true),
            (with(None, Some(32)), true),
            (with(Some(EncKind::X25519), None), true),
            (with(Some(EncKind::X25519), Some(16)), false),
            (with(Some(EncKind::X25519Sha512), Some(32)), false),
            (with(Some(EncKind::Ec256), None), false),
        ] {
            match import_release(&img, &[&rel], &sign, limits) {
                Ok(_) => assert!(ok, "{limits:?}"),
                Err(e) => {
                    assert!(!ok, "{limits:?}: {e}");
                    assert_eq!(e.code(), "bootloader_mismatch");
                }
            }
        }
    }

    /// A 100 MB upload is refused on its size before anything is parsed.
    #[test]
    fn a_100_mb_upload_is_refused_on_size() {
        let mut img = vec![0u8; 100_000_000];
        img[..r1().len()].copy_from_slice(&r1());
        let got = outcome(&img).unwrap_err();
        assert_eq!(got.code(), "image_too_large");
        assert!(got.to_string().contains("100000000"), "{got}");
        // Under a larger limit the same bytes are parsed, and refused for what they are: the
        // trailing zeros are not part of the image, which is R1 and valid.
        let rel = private("keys/release-ec256.pem");
        import_release(
            &img,
            &[&rel],
            &[public("keys/sign-ecdsa-p256.pub.pem")],
            Limits {
                max_image_size: 200_000_000,
                ..Limits::default()
            },
        )
        .unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Random edits of a valid release: the parser and the import never panic, and an
        /// image whose hashed or signed bytes changed is never accepted.
        #[test]
        fn edits_never_panic_nor_pass(
            edits in proptest::collection::vec((0usize..4916, any::<u8>()), 1..8),
            cut in proptest::option::of(0usize..4916),
        ) {
            let orig = read("release/R3-ed25519sig-x25519-aes128-prot-odd.bin");
            let mut img = orig.clone();
            for (at, v) in &edits {
                let at = at % img.len();
                img[at] = *v;
            }
            if let Some(c) = cut {
                img.truncate(c % (img.len() + 1));
            }
            let _ = parse(&img);
            if outcome(&img).is_ok() {
                // Only bytes outside what is hashed and signed may have changed: none here, as
                // R3 has no trailing bytes and every TLV is checked.
                prop_assert_eq!(&img, &orig);
            }
        }

        /// Arbitrary bytes behind a valid magic: never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut img = vec![0x3d, 0xb8, 0xf3, 0x96];
            img.extend_from_slice(&tail);
            let _ = parse(&img);
            prop_assert!(outcome(&img).is_err());
        }
    }
}

mod oracles {
    use std::process::Command;

    use super::*;

    fn python() -> PathBuf {
        touchmark_testenv::tool(&touchmark_testenv::PYTHON3)
    }

    fn imgtool() -> PathBuf {
        touchmark_testenv::tool(&touchmark_testenv::IMGTOOL)
    }

    /// Runs the reference; its JSON answer and whether it exited 0.
    fn reference(args: &[&str]) -> (bool, Value) {
        let out = Command::new(python())
            .current_dir(dir())
            .arg("mcuboot_rewrap.py")
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json = serde_json::from_str(&stdout).unwrap_or_else(|_| {
            panic!(
                "mcuboot_rewrap.py {args:?}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), json)
    }

    fn fresh_per_unit(release: &str, rel_key: &str, sign: &str, unit_pub: &str) -> Vec<u8> {
        let img = read(release);
        let imported = import(&img, &private(rel_key), &[public(sign)]).unwrap();
        let value = rewrap_value(
            &imported.info.enc,
            &imported.content_key,
            &public(unit_pub),
            Ephemeral::Fresh,
        )
        .unwrap();
        PerUnitImage::new(&img, &imported.info.enc, &value)
            .unwrap()
            .to_vec()
    }

    const CASES: [(&str, &str, &str, &str, &str); 4] = [
        (
            "release/R1-p256sig-ec256-aes128.bin",
            "keys/release-ec256.pem",
            "keys/sign-ecdsa-p256.pub.pem",
            "keys/unit-ec256-2",
            "ec256",
        ),
        (
            "release/R2-p256sig-ec256-aes256-prot.bin",
            "keys/release-ec256.pem",
            "keys/sign-ecdsa-p256.pub.pem",
            "keys/unit-ec256-1",
            "ec256",
        ),
        (
            "release/R4-ed25519sig-x25519-aes256.bin",
            "keys/release-x25519.pem",
            "keys/sign-ed25519.pub.pem",
            "keys/unit-x25519-2",
            "x25519",
        ),
        (
            "release/R6-ed25519sig-x25519sha512-aes128.bin",
            "keys/release-x25519.pem",
            "keys/sign-ed25519.pub.pem",
            "keys/unit-x25519-1",
            "x25519",
        ),
    ];

    /// The reference's `check` accepts what this crate re-wraps with a fresh ephemeral key, and
    /// finds the same plaintext hash; its `unwrap` finds the same content key.
    #[test]
    #[cfg_attr(
        not(tm_imgtool),
        ignore = "needs python3 with cryptography (pip install imgtool==2.5.0)"
    )]
    fn the_python_reference_accepts_fresh_per_unit_images() {
        let tmp = tempfile::tempdir().unwrap();
        for (release, rel_key, sign, unit, _) in CASES {
            let out = tmp.path().join("unit.bin");
            std::fs::write(
                &out,
                fresh_per_unit(release, rel_key, sign, &format!("{unit}.pub.pem")),
            )
            .unwrap();
            let out_s = out.to_str().unwrap();
            let unit_key = dir().join(format!("{unit}.pem"));
            let (ok, json) = reference(&[
                "check",
                "--release",
                release,
                "--sign-pub",
                sign,
                "--unit-key",
                unit_key.to_str().unwrap(),
                "--release-key",
                rel_key,
                out_s,
            ]);
            assert!(ok, "{release}: {json}");
            assert_eq!(json["identical_outside_enc_tlv_value"], true);
            let imported = import(&read(release), &private(rel_key), &[public(sign)]).unwrap();
            assert_eq!(
                s(&json, "plaintext_hash"),
                hex::encode(&imported.info.plaintext_hash)
            );
            let (ok, json) = reference(&["unwrap", "--key", unit_key.to_str().unwrap(), out_s]);
            assert!(ok, "{json}");
            assert_eq!(
                s(&json, "content_key"),
                hex::encode(imported.content_key.as_bytes())
            );
            // And the release key no longer opens it.
            let (ok, json) = reference(&["unwrap", "--key", rel_key, out_s]);
            assert!(!ok);
            assert_eq!(s(&json, "code"), "enc_tlv_hmac_mismatch");
        }
    }

    /// imgtool reads the per-unit images (`dumpinfo`), refuses their ciphertext (`verify`: invalid
    /// hash, FIRMWARE.md §2), and validates what this crate decrypts in the primary-slot form.
    #[test]
    #[cfg_attr(
        not(tm_imgtool),
        ignore = "needs imgtool 2.5.0 (pip install imgtool==2.5.0)"
    )]
    fn imgtool_reads_and_validates_per_unit_images() {
        let tmp = tempfile::tempdir().unwrap();
        for (release, rel_key, sign, unit, _) in CASES {
            let per_unit = fresh_per_unit(release, rel_key, sign, &format!("{unit}.pub.pem"));
            let enc_path = tmp.path().join("unit.bin");
            std::fs::write(&enc_path, &per_unit).unwrap();
            let sign_path = dir().join(sign);
            let (ok, out) = touchmark_testenv::run(
                &imgtool(),
                tmp.path(),
                &["dumpinfo", enc_path.to_str().unwrap()],
            );
            assert!(ok, "dumpinfo {release}: {out}");
            // imgtool reads the header and TLVs as this crate does, the new key TLV value
            // included (it prints the first 8 bytes of a value on one line).
            let layout = parse(&per_unit).unwrap();
            assert!(out.contains("magic:              0x96f3b83d"), "{out}");
            assert!(
                out.contains(&format!(
                    "img_size:           {:#x}",
                    layout.header.img_size
                )),
                "{out}"
            );
            assert!(
                out.contains(&format!(
                    "hdr_size:           {:#x}",
                    layout.header.hdr_size
                )),
                "{out}"
            );
            let enc = enc_tlv(&layout).unwrap();
            assert!(out.contains(&format!("({:#x})", enc.kind.tlv())), "{out}");
            let first8: Vec<String> = per_unit[enc.range()][..8]
                .iter()
                .map(|b| format!("{b:#04x}"))
                .collect();
            assert!(
                out.contains(&first8.join(" ")),
                "{}: {out}",
                first8.join(" ")
            );
            let (ok, out) = touchmark_testenv::run(
                &imgtool(),
                tmp.path(),
                &[
                    "verify",
                    "-k",
                    sign_path.to_str().unwrap(),
                    enc_path.to_str().unwrap(),
                ],
            );
            assert!(
                !ok && out.contains("invalid hash"),
                "verify on ciphertext {release}: {out}"
            );
            let plain = decrypt(&per_unit, &private(&format!("{unit}.pem"))).unwrap();
            let plain_path = tmp.path().join("plain.bin");
            std::fs::write(&plain_path, &plain).unwrap();
            let (ok, out) = touchmark_testenv::run(
                &imgtool(),
                tmp.path(),
                &[
                    "verify",
                    "-k",
                    sign_path.to_str().unwrap(),
                    plain_path.to_str().unwrap(),
                ],
            );
            assert!(
                ok && out.contains("Image was correctly validated"),
                "verify on plaintext {release}: {out}"
            );
        }
    }

    /// A release made now by imgtool (fresh content key, not a recorded vector) goes through
    /// import, re-wrap and decrypt; imgtool validates the decrypted image.
    #[test]
    #[cfg_attr(
        not(tm_imgtool),
        ignore = "needs imgtool 2.5.0 (pip install imgtool==2.5.0)"
    )]
    fn a_release_signed_now_by_imgtool_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let rel = SoftwareAgreementKey::generate(Curve::X25519).unwrap();
        std::fs::write(t.join("rel.pub.pem"), rel.public_key().to_pem()).unwrap();
        let payload: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(t.join("app.bin"), &payload).unwrap();
        let (ok, out) = touchmark_testenv::run(
            &imgtool(),
            t,
            &["keygen", "-k", "sign.pem", "-t", "ed25519"],
        );
        assert!(ok, "{out}");
        let (ok, out) = touchmark_testenv::run(
            &imgtool(),
            t,
            &[
                "getpub",
                "-k",
                "sign.pem",
                "-e",
                "pem",
                "-o",
                "sign.pub.pem",
            ],
        );
        assert!(ok, "{out}");
        let (ok, out) = touchmark_testenv::run(
            &imgtool(),
            t,
            &[
                "sign",
                "--header-size",
                "0x200",
                "--pad-header",
                "--slot-size",
                "0x20000",
                "--version",
                "2.0.1",
                "--key",
                "sign.pem",
                "--encrypt",
                "rel.pub.pem",
                "app.bin",
                "signed.bin",
            ],
        );
        assert!(ok, "{out}");
        let img = std::fs::read(t.join("signed.bin")).unwrap();
        let sign =
            PublicKey::from_pem(&std::fs::read_to_string(t.join("sign.pub.pem")).unwrap()).unwrap();
        let imported = import(&img, &rel, &[sign]).unwrap();
        assert_eq!(imported.info.layout.header.version_string(), "2.0.1+0");
        let unit = SoftwareAgreementKey::generate(Curve::X25519).unwrap();
        let value = rewrap_value(
            &imported.info.enc,
            &imported.content_key,
            unit.public_key(),
            Ephemeral::Fresh,
        )
        .unwrap();
        let per_unit = PerUnitImage::new(&img, &imported.info.enc, &value)
            .unwrap()
            .to_vec();
        let plain = decrypt(&per_unit, &unit).unwrap();
        assert_eq!(&plain[0x200..0x200 + payload.len()], &payload[..]);
        std::fs::write(t.join("plain.bin"), &plain).unwrap();
        let (ok, out) = touchmark_testenv::run(
            &imgtool(),
            t,
            &["verify", "-k", "sign.pub.pem", "plain.bin"],
        );
        assert!(ok && out.contains("Image was correctly validated"), "{out}");
    }
}
