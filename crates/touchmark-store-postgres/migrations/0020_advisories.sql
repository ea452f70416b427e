-- CSAF advisories (issue 18), as SQLite's 0022_advisories.sql: a link's status (affected,
-- fixed, not_affected with its justification; only affected links count in the affected
-- units), and every published revision of a report's advisory with the exact bytes served.
ALTER TABLE vuln_links ADD COLUMN status text NOT NULL DEFAULT 'affected'
    CHECK (status IN ('affected', 'fixed', 'not_affected'));
ALTER TABLE vuln_links ADD COLUMN justification text;

CREATE TABLE csaf_advisories (
    tracking_id  text COLLATE "C" NOT NULL,
    version      integer NOT NULL CHECK (version >= 1),
    report_id    text COLLATE "C" NOT NULL REFERENCES vuln_reports (id),
    vex          boolean NOT NULL,
    summary      text NOT NULL,
    initial_at   timestamptz NOT NULL,
    published_at timestamptz NOT NULL,
    document     bytea NOT NULL,
    sha256       bytea NOT NULL,
    PRIMARY KEY (tracking_id, version)
);
CREATE INDEX csaf_advisories_by_report ON csaf_advisories (report_id);
