-- As SQLite's 0020_units_revoked.sql: the few revoked units, for the affected-units query.
CREATE INDEX units_revoked ON units (product, serial) WHERE status = 'revoked';
