-- One test record issues one unit (issue 11, finding 5): each certificate keeps the SHA-256 of
-- the normalized test record it was issued with, under a unique index. The index is both the
-- lookup the reuse check makes and the race guard behind it: of two replicas that issue two
-- serials with one record at once, the second insert fails whole and its issuance runs again,
-- to be refused `test_record_reused`. Certificates issued before this migration take their
-- record's hash from their test attempt; where an older log already issued two units with one
-- record, the first keeps it and the later ones stay NULL (the auditor reports them from the
-- log).
ALTER TABLE certificates ADD COLUMN test_sha256 bytea
    CHECK (octet_length(test_sha256) = 32);

UPDATE certificates c SET test_sha256 = t.sha256
FROM test_attempts t
WHERE t.event_seq = c.event_seq
  AND NOT EXISTS (
      SELECT 1 FROM certificates c2
      JOIN test_attempts t2 ON t2.event_seq = c2.event_seq
      WHERE t2.sha256 = t.sha256 AND c2.event_seq < c.event_seq);

CREATE UNIQUE INDEX certificates_by_test ON certificates (test_sha256);
