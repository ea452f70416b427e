-- The audit log's signed state (design.md §6) and the sequencer lease (design.md §10). Events are the
-- leaves (table events).
-- log_checkpoints is append-only: every checkpoint the log ever signed, by size.
-- log_tiles holds each hash tile's latest contents; a partial tile only ever grows, so a
-- smaller width is a prefix of the stored contents.
-- log_state is the sequencer's incremental tree state at the latest checkpoint.
-- log_lease names the one replica allowed to sequence and sign; its expiry is judged by this
-- server's clock, never a replica's, and its epoch fences out a former holder.

CREATE TABLE log_checkpoints (
    size       bigint PRIMARY KEY CHECK (size >= 0),
    root       bytea NOT NULL CHECK (octet_length(root) = 32),
    note       text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE log_tiles (
    level smallint NOT NULL CHECK (level >= 0),
    idx   bigint NOT NULL CHECK (idx >= 0),
    data  bytea NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE log_state (
    id   smallint PRIMARY KEY CHECK (id = 1),
    size bigint NOT NULL CHECK (size >= 0),
    tree bytea NOT NULL
);

CREATE TABLE log_lease (
    id         smallint PRIMARY KEY CHECK (id = 1),
    holder     text NOT NULL,
    epoch      bigint NOT NULL CHECK (epoch > 0),
    expires_at timestamptz NOT NULL
);
