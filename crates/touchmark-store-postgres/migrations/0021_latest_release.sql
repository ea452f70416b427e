-- As SQLite's 0023_latest_release.sql: the release each unit runs now, recorded on its
-- firmware row by a field update; NULL while it runs the release it was provisioned with.
ALTER TABLE unit_firmware ADD COLUMN latest_release_id text COLLATE "C" REFERENCES releases (id);

UPDATE unit_firmware u SET latest_release_id = (
    SELECT d.release_id FROM firmware_deliveries d
    WHERE d.order_id = u.order_id AND d.serial = u.serial
    ORDER BY d.event_seq DESC LIMIT 1
);

DROP INDEX unit_firmware_by_release;
-- The units still on the release of their provisioning, and those a field update moved to
-- another, each by release and order with the serial in the index, so that the affected-units
-- query reads the units of one order and release as one range and no table row (the running
-- index holds its NULL latest_release_id for that).
CREATE INDEX unit_firmware_running
    ON unit_firmware (release_id, order_id, serial, latest_release_id)
    WHERE latest_release_id IS NULL;
CREATE INDEX unit_firmware_updated ON unit_firmware (latest_release_id, order_id, serial)
    WHERE latest_release_id IS NOT NULL;
