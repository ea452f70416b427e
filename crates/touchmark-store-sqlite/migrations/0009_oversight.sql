-- Test records as data (issue 15): every stored test attempt's steps and measurements, one row
-- each, projected from the attempt's normalized record (Touchmark's canonical JSON, whichever
-- shape the station sent) by a trigger in the same transaction as the attempt, so that no
-- backend's write path changes and an attempt is never stored without its rows. Analytics read
-- these tables; the record itself stays the evidence.
CREATE TABLE test_steps (
    attempt_id INTEGER NOT NULL REFERENCES test_attempts (id),
    idx        INTEGER NOT NULL,
    name       TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    PRIMARY KEY (attempt_id, idx)
) STRICT;

-- `value` holds a numeric value, `text` any other (a string, or `true`/`false`). The order, the
-- station and the time are copied from the attempt, so that a report over one order and window reads one
-- index range.
CREATE TABLE test_measurements (
    attempt_id INTEGER NOT NULL REFERENCES test_attempts (id),
    step_idx   INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    order_id   TEXT NOT NULL,
    station    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    step       TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      REAL,
    text       TEXT,
    unit       TEXT,
    low        REAL,
    high       REAL,
    outcome    TEXT NOT NULL,
    PRIMARY KEY (attempt_id, step_idx, idx)
) STRICT;
CREATE INDEX test_measurements_by_order ON test_measurements (order_id, step, name, created_at);
CREATE INDEX test_attempts_by_order_time ON test_attempts (order_id, created_at);
CREATE INDEX test_attempts_by_serial_alone ON test_attempts (serial);

CREATE TRIGGER test_attempts_as_data AFTER INSERT ON test_attempts
WHEN json_valid(NEW.record)
BEGIN
    INSERT INTO test_steps (attempt_id, idx, name, outcome)
    SELECT NEW.id, s.key, json_extract(s.value, '$.name'), json_extract(s.value, '$.outcome')
    FROM json_each(NEW.record, '$.steps') s;
    INSERT INTO test_measurements (attempt_id, step_idx, idx, order_id, station, created_at, step, name,
                                   value, text, unit, low, high, outcome)
    SELECT NEW.id, s.key, m.key, NEW.order_id, NEW.station, NEW.created_at, json_extract(s.value, '$.name'),
           json_extract(m.value, '$.name'),
           CASE WHEN json_type(m.value, '$.value') IN ('integer', 'real')
                THEN json_extract(m.value, '$.value') END,
           CASE json_type(m.value, '$.value')
                WHEN 'text' THEN json_extract(m.value, '$.value')
                WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END,
           json_extract(m.value, '$.unit'), json_extract(m.value, '$.low'),
           json_extract(m.value, '$.high'), json_extract(m.value, '$.outcome')
    FROM json_each(NEW.record, '$.steps') s, json_each(s.value, '$.measurements') m;
END;

-- The attempts stored before this migration, the same way.
INSERT INTO test_steps (attempt_id, idx, name, outcome)
SELECT t.id, s.key, json_extract(s.value, '$.name'), json_extract(s.value, '$.outcome')
FROM test_attempts t, json_each(t.record, '$.steps') s
WHERE json_valid(t.record);
INSERT INTO test_measurements (attempt_id, step_idx, idx, order_id, station, created_at, step, name,
                               value, text, unit, low, high, outcome)
SELECT t.id, s.key, m.key, t.order_id, t.station, t.created_at, json_extract(s.value, '$.name'),
       json_extract(m.value, '$.name'),
       CASE WHEN json_type(m.value, '$.value') IN ('integer', 'real')
            THEN json_extract(m.value, '$.value') END,
       CASE json_type(m.value, '$.value')
            WHEN 'text' THEN json_extract(m.value, '$.value')
            WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END,
       json_extract(m.value, '$.unit'), json_extract(m.value, '$.low'),
       json_extract(m.value, '$.high'), json_extract(m.value, '$.outcome')
FROM test_attempts t, json_each(t.record, '$.steps') s, json_each(s.value, '$.measurements') m
WHERE json_valid(t.record);

-- Alerts (design.md §9): one open (or acknowledged) alert per key, so that a rule that keeps
-- firing raises one alert. Every change has its event in the log.
CREATE TABLE alerts (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    order_id   TEXT,
    station    TEXT,
    state      TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    evidence   TEXT NOT NULL,
    raised_at  TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX alerts_one_per_key ON alerts (key) WHERE state <> 'resolved';
CREATE INDEX alerts_by_time ON alerts (raised_at);

-- Webhooks and their outbox: a message per alert and webhook, written with the alert, kept
-- until delivered (at least once, under a stable id).
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    kinds      TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL UNIQUE,
    webhook         TEXT NOT NULL REFERENCES webhooks (id),
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at    TEXT,
    last_error      TEXT
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL;

-- Where each projector of the log stands: the index of the next event it has not folded.
CREATE TABLE projector_cursors (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL CHECK (position >= 0)
) STRICT;
