-- A release's image and SBOM leave its row for a table of their own. SQLite keeps a large BLOB
-- in overflow pages inside the row, and reading any column stored after it walks that chain:
-- every provisioning of an order with a release reads the release's state (is it withdrawn?),
-- which cost a walk over the whole image, hundreds of KiB, per unit.
CREATE TABLE release_blobs (
    release_id TEXT PRIMARY KEY REFERENCES releases (id),
    image      BLOB NOT NULL,
    sbom       BLOB
) STRICT;
INSERT INTO release_blobs (release_id, image, sbom) SELECT id, image, sbom FROM releases;
ALTER TABLE releases DROP COLUMN image;
ALTER TABLE releases DROP COLUMN sbom;
