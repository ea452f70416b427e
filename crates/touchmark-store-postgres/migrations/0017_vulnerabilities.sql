-- Vulnerability reports (issue 18), as SQLite's 0019_vulnerabilities.sql: what the public
-- intake received, kept as sent, with only the SHA-256 of the reporter's secret; the state,
-- the CRA classification and clocks, moved by core's policy::vuln with their events.
CREATE TABLE vuln_reports (
    id                       text COLLATE "C" PRIMARY KEY,
    secret_sha256            bytea NOT NULL,
    state                    text NOT NULL,
    product                  text COLLATE "C" REFERENCES products (id),
    version                  text,
    description              text,
    encrypted                text,
    cvss                     text,
    contact                  text,
    content_sha256           bytea NOT NULL,
    class                    text,
    aware_at                 timestamptz,
    corrective_at            timestamptz,
    early_warning_at         timestamptz,
    notification_at          timestamptz,
    final_report_at          timestamptz,
    early_warning_alerted_at timestamptz,
    notification_alerted_at  timestamptz,
    final_report_alerted_at  timestamptz,
    received_at              timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL
);
CREATE INDEX vuln_reports_by_received ON vuln_reports (received_at);

-- A report's links: a product, optionally one of its releases (by id, as unit_firmware names
-- it: the units a report affects are one join on release_id), optionally an SBOM component.
CREATE TABLE vuln_links (
    report_id     text COLLATE "C" NOT NULL REFERENCES vuln_reports (id),
    product       text COLLATE "C" NOT NULL REFERENCES products (id),
    release_id    text COLLATE "C" REFERENCES releases (id),
    version       text,
    purl          text,
    version_range text,
    linked_at     timestamptz NOT NULL
);
CREATE UNIQUE INDEX vuln_links_unique ON vuln_links (
    report_id, product, coalesce(release_id, ''), coalesce(purl, ''), coalesce(version_range, '')
);
CREATE INDEX vuln_links_by_release ON vuln_links (release_id);
