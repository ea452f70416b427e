-- The units a vulnerability report affects (issue 18, item 4) are marked revoked from this
-- index of the few revoked units, instead of a lookup in units per affected unit.
CREATE INDEX units_revoked ON units (product, serial) WHERE status = 'revoked';
