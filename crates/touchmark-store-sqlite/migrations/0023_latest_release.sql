-- The release each unit runs now (issue 18, item 4): a field update records on the unit's
-- firmware row the release it delivered, so that the units a vulnerability report affects are
-- read from one index of the current firmware instead of every delivery being checked for a
-- later one. NULL while the unit runs the release it was provisioned with.
ALTER TABLE unit_firmware ADD COLUMN latest_release_id TEXT REFERENCES releases (id);

UPDATE unit_firmware SET latest_release_id = (
    SELECT d.release_id FROM firmware_deliveries d
    WHERE d.order_id = unit_firmware.order_id AND d.serial = unit_firmware.serial
    ORDER BY d.event_index DESC LIMIT 1
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
