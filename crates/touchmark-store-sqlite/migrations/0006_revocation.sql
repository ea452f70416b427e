-- Revocation (design.md §8). A revoked certificate stays in `certificates` (its serial stays
-- taken) with why and when it was revoked; a release of a hold clears both. A product's
-- issuing CA, once revoked, has a row in `ca_revocations`.
ALTER TABLE certificates ADD COLUMN revoked_at TEXT;
ALTER TABLE certificates ADD COLUMN revocation_reason TEXT
    CHECK ((revocation_reason IS NULL) = (revoked_at IS NULL));

-- What a CRL lists, and a revocation by provenance reads.
CREATE INDEX certificates_revoked ON certificates (product, revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX certificates_by_station ON certificates (station, issued_at);
CREATE INDEX certificates_by_cert_serial ON certificates (product, cert_serial);

CREATE TABLE ca_revocations (
    product    TEXT PRIMARY KEY REFERENCES products (id),
    reason     TEXT NOT NULL,
    revoked_at TEXT NOT NULL
) STRICT;
