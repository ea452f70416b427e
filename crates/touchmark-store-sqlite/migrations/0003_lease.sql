-- The sequencer lease (design.md §10): one holder at a time signs the log. With SQLite there is
-- one server process, but the lease keeps the same fencing rules as on a shared database.
-- expires_at is in milliseconds since the Unix epoch.

CREATE TABLE log_lease (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,
    epoch      INTEGER NOT NULL CHECK (epoch > 0),
    expires_at INTEGER NOT NULL
) STRICT;
