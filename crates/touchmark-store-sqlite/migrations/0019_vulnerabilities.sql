-- Vulnerability reports (issue 18, docs/vulnerabilities.md): what the public intake received,
-- kept as sent (the text is data, never markup); only the SHA-256 of the reporter's secret.
-- The state, the CRA classification and clocks are moved by core's policy::vuln; each move
-- appends its event in the same transaction.
CREATE TABLE vuln_reports (
    id                       TEXT PRIMARY KEY,
    secret_sha256            BLOB NOT NULL,
    state                    TEXT NOT NULL,
    product                  TEXT REFERENCES products (id),
    version                  TEXT,
    description              TEXT,
    encrypted                TEXT,
    cvss                     TEXT,
    contact                  TEXT,
    content_sha256           BLOB NOT NULL,
    class                    TEXT,
    aware_at                 TEXT,
    corrective_at            TEXT,
    early_warning_at         TEXT,
    notification_at          TEXT,
    final_report_at          TEXT,
    early_warning_alerted_at TEXT,
    notification_alerted_at  TEXT,
    final_report_alerted_at  TEXT,
    received_at              TEXT NOT NULL,
    updated_at               TEXT NOT NULL
) STRICT;
CREATE INDEX vuln_reports_by_received ON vuln_reports (received_at);

-- A report's links: a product, optionally one of its releases (by id, as unit_firmware names
-- it, so that the units a report affects are one join: vuln_links.release_id =
-- unit_firmware.release_id), optionally an SBOM component (package URL and vers range).
CREATE TABLE vuln_links (
    report_id     TEXT NOT NULL REFERENCES vuln_reports (id),
    product       TEXT NOT NULL REFERENCES products (id),
    release_id    TEXT REFERENCES releases (id),
    version       TEXT,
    purl          TEXT,
    version_range TEXT,
    linked_at     TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX vuln_links_unique ON vuln_links (
    report_id, product, coalesce(release_id, ''), coalesce(purl, ''), coalesce(version_range, '')
);
CREATE INDEX vuln_links_by_release ON vuln_links (release_id);
