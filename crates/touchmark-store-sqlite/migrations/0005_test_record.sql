-- One test record issues one unit (issue 11, finding 5): each certificate keeps the SHA-256 of
-- the normalized test record it was issued with, under a unique index. The index is both the
-- lookup the reuse check makes (one indexed read per issuance) and the last line of defence
-- behind it. Certificates issued before this migration take their record's hash from their
-- test attempt; where an older log already issued two units with one record, the first keeps
-- it and the later ones stay NULL (the auditor reports them from the log).
ALTER TABLE certificates ADD COLUMN test_sha256 BLOB
    CHECK (test_sha256 IS NULL OR length(test_sha256) = 32);

UPDATE certificates SET test_sha256 = (
    SELECT t.sha256 FROM test_attempts t WHERE t.event_index = certificates.event_index LIMIT 1)
WHERE NOT EXISTS (
    SELECT 1 FROM certificates c
    JOIN test_attempts t ON t.event_index = c.event_index
    WHERE c.event_index < certificates.event_index
      AND t.sha256 = (SELECT t2.sha256 FROM test_attempts t2
                      WHERE t2.event_index = certificates.event_index LIMIT 1));

CREATE UNIQUE INDEX certificates_by_test ON certificates (test_sha256);
