-- Field updates (issue 13, item 6): the encryption key each unit bound at provisioning, kept
-- with its firmware so that later releases can be wrapped to it, and each later release a unit
-- in the field received, with its wrap, so that asking again returns the same image (I2).
ALTER TABLE unit_firmware ADD COLUMN encryption_key BLOB;

CREATE TABLE firmware_deliveries (
    order_id     TEXT NOT NULL REFERENCES orders (id),
    serial       TEXT NOT NULL,
    release_id   TEXT NOT NULL REFERENCES releases (id),
    wrap         BLOB NOT NULL,
    image_sha256 BLOB NOT NULL,
    event_index  INTEGER NOT NULL,
    delivered_at TEXT NOT NULL,
    PRIMARY KEY (order_id, serial, release_id)
) STRICT;
CREATE INDEX firmware_deliveries_by_release ON firmware_deliveries (release_id);
