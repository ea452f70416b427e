-- Test records as data (issue 15): every stored test attempt's steps and measurements, one row
-- each, projected from the attempt's normalized record (Touchmark's canonical JSON, whichever
-- shape the station sent) by a trigger in the same statement as the attempt, so that no
-- backend's write path changes and an attempt is never stored without its rows. A statement
-- trigger over the inserted rows keeps a batch of issuances one pass. Analytics read these
-- tables; the record itself stays the evidence.
CREATE TABLE test_steps (
    attempt_id bigint NOT NULL REFERENCES test_attempts (id),
    idx        integer NOT NULL,
    name       text COLLATE "C" NOT NULL,
    outcome    text NOT NULL,
    PRIMARY KEY (attempt_id, idx)
);

-- `value` holds a numeric value, `text` any other (a string, or `true`/`false`). The order, the
-- station and the time are copied from the attempt, so that a report over one order and window reads one
-- index range.
CREATE TABLE test_measurements (
    attempt_id bigint NOT NULL REFERENCES test_attempts (id),
    step_idx   integer NOT NULL,
    idx        integer NOT NULL,
    order_id   text COLLATE "C" NOT NULL,
    station    text COLLATE "C" NOT NULL,
    created_at timestamptz NOT NULL,
    step       text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    value      double precision,
    text       text,
    unit       text,
    low        double precision,
    high       double precision,
    outcome    text NOT NULL,
    PRIMARY KEY (attempt_id, step_idx, idx)
);
CREATE INDEX test_measurements_by_order ON test_measurements (order_id, step, name, created_at);
CREATE INDEX test_attempts_by_order_time ON test_attempts (order_id, created_at);
CREATE INDEX test_attempts_by_serial_alone ON test_attempts (serial);

CREATE FUNCTION test_attempts_as_data() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_steps (attempt_id, idx, name, outcome)
    SELECT t.id, s.ord - 1, s.v ->> 'name', s.v ->> 'outcome'
    FROM new_attempts t,
         jsonb_array_elements(coalesce(t.record::jsonb -> 'steps', '[]')) WITH ORDINALITY s(v, ord)
    WHERE t.record LIKE '{%';
    INSERT INTO test_measurements (attempt_id, step_idx, idx, order_id, station, created_at, step, name,
                                   value, text, unit, low, high, outcome)
    SELECT t.id, s.ord - 1, m.ord - 1, t.order_id, t.station, t.created_at, s.v ->> 'name', m.v ->> 'name',
           CASE WHEN jsonb_typeof(m.v -> 'value') = 'number' THEN (m.v ->> 'value')::float8 END,
           CASE WHEN jsonb_typeof(m.v -> 'value') <> 'number' THEN m.v ->> 'value' END,
           m.v ->> 'unit', (m.v ->> 'low')::float8, (m.v ->> 'high')::float8, m.v ->> 'outcome'
    FROM new_attempts t,
         jsonb_array_elements(coalesce(t.record::jsonb -> 'steps', '[]')) WITH ORDINALITY s(v, ord),
         jsonb_array_elements(coalesce(s.v -> 'measurements', '[]')) WITH ORDINALITY m(v, ord)
    WHERE t.record LIKE '{%';
    RETURN NULL;
END
$$;

CREATE TRIGGER test_attempts_as_data AFTER INSERT ON test_attempts
REFERENCING NEW TABLE AS new_attempts
FOR EACH STATEMENT EXECUTE FUNCTION test_attempts_as_data();

-- The attempts stored before this migration, the same way.
INSERT INTO test_steps (attempt_id, idx, name, outcome)
SELECT t.id, s.ord - 1, s.v ->> 'name', s.v ->> 'outcome'
FROM test_attempts t,
     jsonb_array_elements(coalesce(t.record::jsonb -> 'steps', '[]')) WITH ORDINALITY s(v, ord)
WHERE t.record LIKE '{%';
INSERT INTO test_measurements (attempt_id, step_idx, idx, order_id, station, created_at, step, name,
                               value, text, unit, low, high, outcome)
SELECT t.id, s.ord - 1, m.ord - 1, t.order_id, t.station, t.created_at, s.v ->> 'name', m.v ->> 'name',
       CASE WHEN jsonb_typeof(m.v -> 'value') = 'number' THEN (m.v ->> 'value')::float8 END,
       CASE WHEN jsonb_typeof(m.v -> 'value') <> 'number' THEN m.v ->> 'value' END,
       m.v ->> 'unit', (m.v ->> 'low')::float8, (m.v ->> 'high')::float8, m.v ->> 'outcome'
FROM test_attempts t,
     jsonb_array_elements(coalesce(t.record::jsonb -> 'steps', '[]')) WITH ORDINALITY s(v, ord),
     jsonb_array_elements(coalesce(s.v -> 'measurements', '[]')) WITH ORDINALITY m(v, ord)
WHERE t.record LIKE '{%';

-- Alerts (design.md §9): one open (or acknowledged) alert per key, so that a rule that keeps
-- firing raises one alert. Every change has its event in the log.
CREATE TABLE alerts (
    id         text COLLATE "C" PRIMARY KEY,
    kind       text NOT NULL,
    key        text COLLATE "C" NOT NULL,
    order_id   text COLLATE "C",
    station    text COLLATE "C",
    state      text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    evidence   text NOT NULL,
    raised_at  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX alerts_one_per_key ON alerts (key) WHERE state <> 'resolved';
CREATE INDEX alerts_by_time ON alerts (raised_at);

-- Webhooks and their outbox: a message per alert and webhook, written with the alert, kept
-- until delivered (at least once, under a stable id).
CREATE TABLE webhooks (
    id         text COLLATE "C" PRIMARY KEY,
    url        text NOT NULL,
    secret     text NOT NULL,
    kinds      text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE webhook_deliveries (
    id              text COLLATE "C" PRIMARY KEY,
    seq             bigserial UNIQUE,
    webhook         text COLLATE "C" NOT NULL REFERENCES webhooks (id),
    payload         text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    delivered_at    timestamptz,
    last_error      text
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL;

-- Where each projector of the log stands: the index of the next event it has not folded.
CREATE TABLE projector_cursors (
    name     text COLLATE "C" PRIMARY KEY,
    position bigint NOT NULL CHECK (position >= 0)
);
