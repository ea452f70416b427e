-- Which installation this database belongs to: the audit log's verifier key, written once by
-- `touchmark init`. A replica of another installation refuses to write here.
CREATE TABLE log_owner (
    id         smallint PRIMARY KEY CHECK (id = 1),
    verifier   text NOT NULL,
    claimed_at timestamptz NOT NULL
);
