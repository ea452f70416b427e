-- Field updates (issue 13, item 6), as SQLite's 0017_field_updates.sql: the encryption key each
-- unit bound at provisioning, and each later release a unit in the field received, with its
-- wrap.
ALTER TABLE unit_firmware ADD COLUMN encryption_key bytea;

CREATE TABLE firmware_deliveries (
    order_id     text COLLATE "C" NOT NULL REFERENCES orders (id),
    serial       text COLLATE "C" NOT NULL,
    release_id   text COLLATE "C" NOT NULL REFERENCES releases (id),
    wrap         bytea NOT NULL,
    image_sha256 bytea NOT NULL,
    event_seq    bigint NOT NULL,
    delivered_at timestamptz NOT NULL,
    PRIMARY KEY (order_id, serial, release_id)
);
CREATE INDEX firmware_deliveries_by_release ON firmware_deliveries (release_id);
