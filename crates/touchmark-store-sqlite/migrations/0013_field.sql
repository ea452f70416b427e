-- Devices in the field (issue 17).
--
-- A field backend's API token has the role `field`. SQLite cannot change a CHECK constraint in
-- place, so the tokens table is made again with the new one; nothing refers to it.
CREATE TABLE tokens_field (
    id            TEXT PRIMARY KEY,
    secret_sha256 BLOB NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'field')),
    label         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0
) STRICT;
INSERT INTO tokens_field (id, secret_sha256, role, label, created_at, revoked)
    SELECT id, secret_sha256, role, label, created_at, revoked FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_field RENAME TO tokens;

-- Challenges for a proof of possession: the SHA-256 of each nonce given out, the token it was
-- given to, and until when it is accepted. A nonce is accepted once (`used`), whichever
-- replica the proof reaches. Rows expired long ago are deleted as new ones are added.
CREATE TABLE field_challenges (
    nonce_sha256 BLOB PRIMARY KEY,
    token        TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1))
) STRICT;
CREATE INDEX field_challenges_by_expiry ON field_challenges (expires_at);
