-- Touchmark schema, version 1 (PostgreSQL). The same tables and constraints as SQLite's
-- (migrations/sqlite), with two differences that several replicas sharing this database need
-- (design.md §10):
-- - events are identified by seq, given at insert; idx, the log index, is given later by the
--   one elected sequencer, in batches (partial index events_unsequenced). Certificates and test
--   attempts refer to their event by seq.
-- - the key text columns use the "C" collation, so they compare and sort byte by byte, as in
--   SQLite, whatever the database's locale.
-- The CHECK and UNIQUE constraints repeat the policy's invariants as a last line of defence:
-- an order can never count past its quota (I1), a key binds one serial, a serial one unit.

CREATE TABLE tokens (
    id            text COLLATE "C" PRIMARY KEY,
    secret_sha256 bytea NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('admin', 'auditor')),
    label         text NOT NULL,
    created_at    timestamptz NOT NULL,
    revoked       boolean NOT NULL DEFAULT false
);

CREATE TABLE products (
    id             text COLLATE "C" PRIMARY KEY,
    name           text NOT NULL,
    organization   text NOT NULL,
    common_name    text NOT NULL,
    hw_type_oid    text NOT NULL,
    crl_url        text,
    ocsp_url       text,
    cert_not_after timestamptz,
    issuing_ca_pem text NOT NULL,
    created_at     timestamptz NOT NULL
);

CREATE TABLE factories (
    id         text COLLATE "C" PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE stations (
    id                    text COLLATE "C" PRIMARY KEY,
    factory               text COLLATE "C" NOT NULL REFERENCES factories (id),
    name                  text NOT NULL,
    status                text NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
    enrollment_sha256     bytea UNIQUE,
    enrollment_expires_at timestamptz NOT NULL,
    cert_sha256           text,
    created_at            timestamptz NOT NULL
);

-- Every issuance updates its order's row: leave room in each page so that the update stays on
-- the page (a HOT update, no index write).
CREATE TABLE orders (
    id          text COLLATE "C" PRIMARY KEY,
    product     text COLLATE "C" NOT NULL REFERENCES products (id),
    factory     text COLLATE "C" NOT NULL REFERENCES factories (id),
    quota       bigint NOT NULL CHECK (quota >= 0),
    issued      bigint NOT NULL DEFAULT 0,
    serial_rule text NOT NULL,
    not_before  timestamptz,
    not_after   timestamptz,
    state       text NOT NULL CHECK (state IN ('draft', 'open', 'closed', 'cancelled')),
    created_at  timestamptz NOT NULL,
    CHECK (issued >= 0 AND issued <= quota)
) WITH (fillfactor = 50);

-- seq's sequence keeps the default CACHE 1: every value is handed out in time order across
-- all sessions, so an event inserted after another committed (having waited for its row locks)
-- takes a larger seq, and the sequencer orders them as they happened. Never raise the cache.
CREATE TABLE events (
    seq       bigserial PRIMARY KEY,
    idx       bigint UNIQUE CHECK (idx >= 0),
    kind      text NOT NULL,
    order_id  text COLLATE "C",
    bytes     bytea NOT NULL,
    leaf_hash bytea NOT NULL CHECK (octet_length(leaf_hash) = 32)
);
CREATE INDEX events_unsequenced ON events (seq) WHERE idx IS NULL;
CREATE INDEX events_by_order ON events (order_id, kind);

CREATE TABLE units (
    product       text COLLATE "C" NOT NULL REFERENCES products (id),
    serial        text COLLATE "C" NOT NULL,
    order_id      text COLLATE "C" NOT NULL REFERENCES orders (id),
    status        text NOT NULL CHECK (status IN ('failed_test', 'provisioned', 'revoked')),
    station       text COLLATE "C",
    pubkey_sha256 bytea,
    cert_sha256   bytea,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (product, serial)
);
CREATE INDEX units_by_order ON units (order_id);
CREATE INDEX units_by_serial ON units (serial);

CREATE TABLE certificates (
    sha256        bytea PRIMARY KEY,
    product       text COLLATE "C" NOT NULL,
    serial        text COLLATE "C" NOT NULL,
    order_id      text COLLATE "C" NOT NULL REFERENCES orders (id),
    station       text COLLATE "C" NOT NULL,
    pubkey_sha256 bytea NOT NULL UNIQUE,
    cert_serial   text NOT NULL,
    der           bytea NOT NULL,
    event_seq     bigint NOT NULL UNIQUE REFERENCES events (seq),
    issued_at     timestamptz NOT NULL,
    UNIQUE (product, serial)
);
CREATE INDEX certificates_by_order ON certificates (order_id);

CREATE TABLE test_attempts (
    id         bigserial PRIMARY KEY,
    product    text COLLATE "C" NOT NULL,
    order_id   text COLLATE "C" NOT NULL,
    station    text COLLATE "C" NOT NULL,
    serial     text COLLATE "C",
    verdict    text NOT NULL,
    format     text NOT NULL,
    sha256     bytea NOT NULL,
    record     text NOT NULL,
    event_seq  bigint REFERENCES events (seq),
    created_at timestamptz NOT NULL
);
CREATE INDEX test_attempts_by_serial ON test_attempts (product, serial);
CREATE INDEX test_attempts_by_order ON test_attempts (order_id, verdict);
