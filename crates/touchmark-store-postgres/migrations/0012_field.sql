-- Devices in the field (issue 17), as SQLite's 0013_field.sql.
--
-- A field backend's API token has the role `field`.
ALTER TABLE tokens DROP CONSTRAINT tokens_role_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_role_check
    CHECK (role IN ('admin', 'auditor', 'field'));

-- Challenges for a proof of possession: the SHA-256 of each nonce given out, the token it was
-- given to, and until when it is accepted. A nonce is accepted once (`used`), whichever
-- replica the proof reaches: the row is locked while it is marked.
CREATE TABLE field_challenges (
    nonce_sha256 bytea PRIMARY KEY,
    token        text COLLATE "C" NOT NULL,
    expires_at   timestamptz NOT NULL,
    used         boolean NOT NULL DEFAULT false
);
CREATE INDEX field_challenges_by_expiry ON field_challenges (expires_at);
