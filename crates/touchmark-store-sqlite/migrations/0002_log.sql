-- The audit log's signed state (design.md §6). Events are the leaves (table events).
-- log_checkpoints is append-only: every checkpoint the log ever signed, by size.
-- log_tiles holds each hash tile's latest contents; a partial tile only ever grows, so a
-- smaller width is a prefix of the stored contents.
-- log_state is the sequencer's incremental tree state at the latest checkpoint.

CREATE TABLE log_checkpoints (
    size       INTEGER PRIMARY KEY CHECK (size >= 0),
    root       BLOB NOT NULL CHECK (length(root) = 32),
    note       TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE log_tiles (
    level INTEGER NOT NULL CHECK (level >= 0),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    data  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT;

CREATE TABLE log_state (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    size  INTEGER NOT NULL CHECK (size >= 0),
    tree  BLOB NOT NULL
) STRICT;
