-- Firmware (issue 13, design.md §7): a product's release encryption keys (the public halves;
-- the private keys live in the installation's key provider) and the public keys that sign its
-- images. Touchmark never holds a firmware signing private key.
CREATE TABLE release_keys (
    id                text COLLATE "C" PRIMARY KEY,
    product           text COLLATE "C" NOT NULL REFERENCES products (id),
    algorithm         text NOT NULL,
    public_key_pem    text NOT NULL,
    public_key_sha256 bytea NOT NULL,
    created_at        timestamptz NOT NULL
);
CREATE INDEX release_keys_by_product ON release_keys (product, created_at);

CREATE TABLE firmware_keys (
    product        text COLLATE "C" NOT NULL REFERENCES products (id),
    key_id         bytea NOT NULL,
    algorithm      text NOT NULL,
    public_key_pem text NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (product, key_id)
);

-- A release: the image as uploaded (ciphertext; no plaintext image and no content key is ever
-- stored), its SBOM as uploaded, and what the checks found. Withdrawn releases stay.
CREATE TABLE releases (
    id             text COLLATE "C" PRIMARY KEY,
    product        text COLLATE "C" NOT NULL REFERENCES products (id),
    version        text COLLATE "C" NOT NULL,
    image          bytea NOT NULL,
    image_sha256   bytea NOT NULL,
    image_size     bigint NOT NULL,
    signing_key    bytea NOT NULL,
    release_key    text COLLATE "C" NOT NULL REFERENCES release_keys (id),
    plaintext_hash text NOT NULL,
    sbom           bytea,
    sbom_sha256    bytea,
    created_at     timestamptz NOT NULL,
    withdrawn_at   timestamptz,
    UNIQUE (product, version)
);
