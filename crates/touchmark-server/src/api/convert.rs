//! Domain records to their wire shapes.

use touchmark_core::api::{FactoryBody, OrderBody, ProductBody, StationBody, UnitBody};
use touchmark_core::clock::format_timestamp;
use touchmark_core::entity::{Factory, Product, Station};
use touchmark_core::order::Order;
use touchmark_store::UnitSummary;

/// A product on the wire.
pub fn product(p: Product) -> ProductBody {
    ProductBody {
        id: p.id.into(),
        name: p.name,
        organization: p.organization,
        common_name: p.common_name,
        hw_type_oid: p.hw_type_oid,
        crl_url: p.crl_url,
        ocsp_url: p.ocsp_url,
        cert_not_after: p.cert_not_after.map(format_timestamp),
        issuing_ca_pem: p.issuing_ca_pem,
        created_at: format_timestamp(p.created_at),
        attestation_roots_pem: p.attestation_roots_pem,
    }
}

/// A factory on the wire.
pub fn factory(f: Factory) -> FactoryBody {
    FactoryBody {
        id: f.id.into(),
        name: f.name,
        created_at: format_timestamp(f.created_at),
    }
}

/// A station on the wire.
pub fn station(s: Station) -> StationBody {
    StationBody {
        id: s.id.into(),
        factory: s.factory.into(),
        name: s.name,
        status: s.status.as_str().to_owned(),
        enrollment_expires_at: format_timestamp(s.enrollment_expires_at),
        cert_sha256: s.cert_sha256.map(|h| h.to_hex()),
        created_at: format_timestamp(s.created_at),
    }
}

/// An order on the wire.
pub fn order(o: Order) -> OrderBody {
    OrderBody {
        remaining: o.remaining(),
        id: o.id.into(),
        product: o.product.into(),
        factory: o.factory.into(),
        quota: o.quota,
        issued: o.issued,
        state: o.state.as_str().to_owned(),
        serial_rule: o.serial_rule.to_string(),
        not_before: o.not_before.map(format_timestamp),
        not_after: o.not_after.map(format_timestamp),
        created_at: format_timestamp(o.created_at),
    }
}

/// A unit on the wire.
pub fn unit(u: UnitSummary) -> UnitBody {
    UnitBody {
        product: u.product.into(),
        serial: u.serial.into(),
        order: u.order.into(),
        status: u.status.as_str().to_owned(),
        station: u.station.map(Into::into),
        cert_sha256: u.cert_sha256.map(|h| h.to_hex()),
        test_attempts: u.test_attempts,
    }
}

/// A release key on the wire.
pub fn release_key(k: touchmark_core::firmware::ReleaseKey) -> touchmark_core::api::ReleaseKeyBody {
    touchmark_core::api::ReleaseKeyBody {
        id: k.id,
        product: k.product.into(),
        algorithm: k.algorithm.as_str().to_owned(),
        public_key_pem: k.public_key_pem,
        public_key_sha256: k.public_key_sha256.to_hex(),
        created_at: format_timestamp(k.created_at),
    }
}

/// A firmware signing key on the wire.
pub fn firmware_key(
    k: touchmark_core::firmware::FirmwareKey,
) -> touchmark_core::api::FirmwareKeyBody {
    touchmark_core::api::FirmwareKeyBody {
        product: k.product.into(),
        key_id: k.key_id.to_hex(),
        algorithm: k.algorithm,
        public_key_pem: k.public_key_pem,
        created_at: format_timestamp(k.created_at),
    }
}

/// A release on the wire.
pub fn release(r: touchmark_core::firmware::Release) -> touchmark_core::api::ReleaseBody {
    touchmark_core::api::ReleaseBody {
        id: r.id,
        product: r.product.into(),
        version: r.version,
        image_sha256: r.image_sha256.to_hex(),
        image_size: r.image_size,
        signing_key: r.signing_key.to_hex(),
        release_key: r.release_key,
        plaintext_hash: r.plaintext_hash,
        sbom_sha256: r.sbom_sha256.map(|h| h.to_hex()),
        created_at: format_timestamp(r.created_at),
        withdrawn_at: r.withdrawn_at.map(format_timestamp),
    }
}
