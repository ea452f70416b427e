-- Secure-element attestation (issue 13, item 7), as SQLite's 0018_attestation.sql.
ALTER TABLE products ADD COLUMN attestation_roots_pem text;
