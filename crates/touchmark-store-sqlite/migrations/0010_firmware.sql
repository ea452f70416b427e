-- Firmware (issue 13, design.md §7): a product's release encryption keys (the public halves;
-- the private keys live in the installation's key provider) and the public keys that sign its
-- images. Touchmark never holds a firmware signing private key.
CREATE TABLE release_keys (
    id                TEXT PRIMARY KEY,
    product           TEXT NOT NULL REFERENCES products (id),
    algorithm         TEXT NOT NULL,
    public_key_pem    TEXT NOT NULL,
    public_key_sha256 BLOB NOT NULL,
    created_at        TEXT NOT NULL
) STRICT;
CREATE INDEX release_keys_by_product ON release_keys (product, created_at);

CREATE TABLE firmware_keys (
    product        TEXT NOT NULL REFERENCES products (id),
    key_id         BLOB NOT NULL,
    algorithm      TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (product, key_id)
) STRICT;

-- A release: the image as uploaded (ciphertext; no plaintext image and no content key is ever
-- stored), its SBOM as uploaded, and what the checks found. Withdrawn releases stay.
CREATE TABLE releases (
    id             TEXT PRIMARY KEY,
    product        TEXT NOT NULL REFERENCES products (id),
    version        TEXT NOT NULL,
    image          BLOB NOT NULL,
    image_sha256   BLOB NOT NULL,
    image_size     INTEGER NOT NULL,
    signing_key    BLOB NOT NULL,
    release_key    TEXT NOT NULL REFERENCES release_keys (id),
    plaintext_hash TEXT NOT NULL,
    sbom           BLOB,
    sbom_sha256    BLOB,
    created_at     TEXT NOT NULL,
    withdrawn_at   TEXT,
    UNIQUE (product, version)
) STRICT;
