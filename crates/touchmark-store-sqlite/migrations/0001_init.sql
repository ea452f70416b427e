-- Touchmark schema, version 1 (SQLite).
-- The CHECK and UNIQUE constraints repeat the policy's invariants as a last line of defence:
-- an order can never count past its quota (I1), a key binds one serial (certificates), a serial
-- one unit. Every index on a random key (a hash) costs a random page write per issuance, so
-- only those that guard an invariant exist.

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    secret_sha256 BLOB NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'auditor')),
    label         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE products (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    organization   TEXT NOT NULL,
    common_name    TEXT NOT NULL,
    hw_type_oid    TEXT NOT NULL,
    crl_url        TEXT,
    ocsp_url       TEXT,
    cert_not_after TEXT,
    issuing_ca_pem TEXT NOT NULL,
    created_at     TEXT NOT NULL
) STRICT;

CREATE TABLE factories (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE stations (
    id                    TEXT PRIMARY KEY,
    factory               TEXT NOT NULL REFERENCES factories (id),
    name                  TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
    enrollment_sha256     BLOB UNIQUE,
    enrollment_expires_at TEXT NOT NULL,
    cert_sha256           TEXT,
    created_at            TEXT NOT NULL
) STRICT;

CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    product     TEXT NOT NULL REFERENCES products (id),
    factory     TEXT NOT NULL REFERENCES factories (id),
    quota       INTEGER NOT NULL CHECK (quota >= 0),
    issued      INTEGER NOT NULL DEFAULT 0 CHECK (issued >= 0 AND issued <= quota),
    serial_rule TEXT NOT NULL,
    not_before  TEXT,
    not_after   TEXT,
    state       TEXT NOT NULL CHECK (state IN ('draft', 'open', 'closed', 'cancelled')),
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE events (
    idx        INTEGER PRIMARY KEY CHECK (idx >= 0),
    kind       TEXT NOT NULL,
    order_id   TEXT,
    bytes      BLOB NOT NULL,
    leaf_hash  BLOB NOT NULL CHECK (length(leaf_hash) = 32)
) STRICT;
CREATE INDEX events_by_order ON events (order_id, kind);

CREATE TABLE units (
    product       TEXT NOT NULL REFERENCES products (id),
    serial        TEXT NOT NULL,
    order_id      TEXT NOT NULL REFERENCES orders (id),
    status        TEXT NOT NULL CHECK (status IN ('failed_test', 'provisioned', 'revoked')),
    station       TEXT,
    pubkey_sha256 BLOB,
    cert_sha256   BLOB,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (product, serial)
) STRICT;
CREATE INDEX units_by_order ON units (order_id);
CREATE INDEX units_by_serial ON units (serial);

CREATE TABLE certificates (
    sha256        BLOB PRIMARY KEY,
    product       TEXT NOT NULL,
    serial        TEXT NOT NULL,
    order_id      TEXT NOT NULL REFERENCES orders (id),
    station       TEXT NOT NULL,
    pubkey_sha256 BLOB NOT NULL UNIQUE,
    cert_serial   TEXT NOT NULL,
    der           BLOB NOT NULL,
    event_index   INTEGER NOT NULL UNIQUE REFERENCES events (idx),
    issued_at     TEXT NOT NULL,
    UNIQUE (product, serial)
) STRICT;
CREATE INDEX certificates_by_order ON certificates (order_id);

CREATE TABLE test_attempts (
    id          INTEGER PRIMARY KEY,
    product     TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    station     TEXT NOT NULL,
    serial      TEXT,
    verdict     TEXT NOT NULL,
    format      TEXT NOT NULL,
    sha256      BLOB NOT NULL,
    record      TEXT NOT NULL,
    event_index INTEGER REFERENCES events (idx),
    created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX test_attempts_by_serial ON test_attempts (product, serial);
CREATE INDEX test_attempts_by_order ON test_attempts (order_id, verdict);
