-- CSAF advisories (issue 18, docs/vulnerabilities.md, "Advisories").
-- A link states a status of its product or release: affected (every link before this
-- migration), fixed, or not_affected with a CSAF flag label as its justification. Only
-- affected links count in the affected units.
ALTER TABLE vuln_links ADD COLUMN status TEXT NOT NULL DEFAULT 'affected'
    CHECK (status IN ('affected', 'fixed', 'not_affected'));
ALTER TABLE vuln_links ADD COLUMN justification TEXT;

-- Every published revision of a report's advisory, with the exact bytes served; the latest
-- version of each tracking id is the one the provider's directory serves. Each insert
-- appends its vuln.advisory_published event in the same transaction.
CREATE TABLE csaf_advisories (
    tracking_id  TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    report_id    TEXT NOT NULL REFERENCES vuln_reports (id),
    vex          INTEGER NOT NULL,
    summary      TEXT NOT NULL,
    initial_at   TEXT NOT NULL,
    published_at TEXT NOT NULL,
    document     BLOB NOT NULL,
    sha256       BLOB NOT NULL,
    PRIMARY KEY (tracking_id, version)
) STRICT;
CREATE INDEX csaf_advisories_by_report ON csaf_advisories (report_id);
