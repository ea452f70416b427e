-- Which installation this database belongs to: the audit log's verifier key, written once by
-- `touchmark init`. A server of another installation refuses to write here.
CREATE TABLE log_owner (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    verifier   TEXT NOT NULL,
    claimed_at TEXT NOT NULL
);
