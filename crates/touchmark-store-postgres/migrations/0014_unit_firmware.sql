-- Firmware per unit (issue 13, items 4 and 5), as SQLite's 0015_unit_firmware.sql: the release
-- an order's units receive, and each unit's wrap of the release's content key, stored in the
-- statement that issues the unit.
CREATE TABLE order_releases (
    order_id   text COLLATE "C" PRIMARY KEY REFERENCES orders (id),
    release_id text COLLATE "C" NOT NULL REFERENCES releases (id),
    set_at     timestamptz NOT NULL
);

CREATE TABLE unit_firmware (
    order_id     text COLLATE "C" NOT NULL REFERENCES orders (id),
    serial       text COLLATE "C" NOT NULL,
    release_id   text COLLATE "C" NOT NULL REFERENCES releases (id),
    wrap         bytea NOT NULL,
    image_sha256 bytea NOT NULL,
    event_seq    bigint NOT NULL,
    PRIMARY KEY (order_id, serial)
);
CREATE INDEX unit_firmware_by_release ON unit_firmware (release_id);
