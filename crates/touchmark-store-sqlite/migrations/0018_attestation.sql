-- Secure-element attestation (issue 13, item 7): the chip vendor's root certificates a
-- product's units' keys must be certified up to, set when the product is created.
ALTER TABLE products ADD COLUMN attestation_roots_pem TEXT;
