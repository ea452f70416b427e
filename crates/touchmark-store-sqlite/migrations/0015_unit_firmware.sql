-- Firmware per unit (issue 13, items 4 and 5): the release an order's units receive, and each
-- unit's wrap of the release's content key, stored in the transaction that issues the unit so
-- that a retry returns the same wrap (I2) and every serial names its release.
CREATE TABLE order_releases (
    order_id   TEXT PRIMARY KEY REFERENCES orders (id),
    release_id TEXT NOT NULL REFERENCES releases (id),
    set_at     TEXT NOT NULL
) STRICT;

CREATE TABLE unit_firmware (
    order_id     TEXT NOT NULL REFERENCES orders (id),
    serial       TEXT NOT NULL,
    release_id   TEXT NOT NULL REFERENCES releases (id),
    wrap         BLOB NOT NULL,
    image_sha256 BLOB NOT NULL,
    event_index  INTEGER NOT NULL,
    PRIMARY KEY (order_id, serial)
) STRICT;
CREATE INDEX unit_firmware_by_release ON unit_firmware (release_id);
