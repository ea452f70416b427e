//! Queries that both backends run as written here: a rule of what to read is stated once.
//! Parameters are PostgreSQL's `$1`, `$2`...; SQLite reads the same text with each `$` made
//! `?` ([`for_sqlite`]), its numbered form. A backend fills in only what its dialect spells
//! differently.

/// `sql` with PostgreSQL's `$N` parameters written as SQLite's `?N`.
pub fn for_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

/// The lots a report affects (`VulnStore::affected_lots`): the releases its links name and
/// those of `$2` (read by `released`, the backend's way of listing a bound array of release
/// ids as rows of one column `value`), each with the orders of its product; then the orders of
/// a product a link names without a release or component. Columns: order, product, factory,
/// release, version, units, revoked.
///
/// When `counted`, each lot's units are counted in its index ranges, `unit_firmware_running`
/// (still on the release of their provisioning) and `unit_firmware_updated` (moved there by a
/// field update), with the revoked ones (by `units_revoked`, a few rows), and lots without a
/// unit are left out. Otherwise every lot is listed with counts of 0, reading no unit.
pub fn affected_lots(released: &str, counted: bool) -> String {
    let lots = format!(
        "
WITH named AS (
    SELECT release_id FROM vuln_links
    WHERE report_id = $1 AND release_id IS NOT NULL AND status = 'affected'
    UNION SELECT value FROM {released}
), wide AS (
    SELECT DISTINCT product FROM vuln_links
    WHERE report_id = $1 AND release_id IS NULL AND purl IS NULL AND status = 'affected'
), lots AS MATERIALIZED (
    SELECT rel.id AS release_id, rel.version, o.id AS order_id, o.product, o.factory
    FROM named n
    JOIN releases rel ON rel.id = n.release_id
    JOIN orders o ON o.product = rel.product
    WHERE o.product NOT IN (SELECT product FROM wide)
)"
    );
    if !counted {
        return format!(
            "{lots}
SELECT order_id, product, factory, release_id, version, CAST(0 AS BIGINT), CAST(0 AS BIGINT)
FROM lots
UNION ALL
SELECT o.id, o.product, o.factory, NULL, NULL, CAST(0 AS BIGINT), CAST(0 AS BIGINT)
FROM orders o WHERE o.product IN (SELECT product FROM wide)"
        );
    }
    format!(
        "{lots}, counted AS (
    SELECT l.*,
        (SELECT count(*) FROM unit_firmware uf
         WHERE uf.release_id = l.release_id AND uf.order_id = l.order_id
           AND uf.latest_release_id IS NULL)
        + (SELECT count(*) FROM unit_firmware uf
           WHERE uf.latest_release_id = l.release_id AND uf.order_id = l.order_id) AS units,
        (SELECT count(*) FROM units u
         JOIN unit_firmware uf ON uf.order_id = u.order_id AND uf.serial = u.serial
         WHERE u.product = l.product AND u.status = 'revoked' AND u.order_id = l.order_id
           AND coalesce(uf.latest_release_id, uf.release_id) = l.release_id) AS revoked
    FROM lots l
)
SELECT order_id, product, factory, release_id, version, units, revoked
FROM counted WHERE units > 0
UNION ALL
SELECT o.id, o.product, o.factory, NULL, NULL, count(*),
       count(*) FILTER (WHERE u.status = 'revoked')
FROM units u JOIN orders o ON o.id = u.order_id
WHERE u.product IN (SELECT product FROM wide) AND u.status IN ('provisioned', 'revoked')
GROUP BY o.id"
    )
}

/// The units of one lot (release `$1`, order `$2`, product `$5`) from serial `$3` on
/// (inclusive), by serial, at most `$4`: the first of each of the lot's two index ranges,
/// merged. Columns: serial, order, revoked.
pub const LOT_STREAM: &str = "
SELECT s.serial, s.order_id, EXISTS (
    SELECT 1 FROM units u WHERE u.product = $5 AND u.serial = s.serial AND u.status = 'revoked')
FROM (
    SELECT * FROM (
        SELECT serial, order_id FROM unit_firmware
        WHERE release_id = $1 AND order_id = $2 AND latest_release_id IS NULL AND serial >= $3
        ORDER BY serial LIMIT $4) running
    UNION ALL
    SELECT * FROM (
        SELECT serial, order_id FROM unit_firmware
        WHERE latest_release_id = $1 AND order_id = $2 AND serial >= $3
        ORDER BY serial LIMIT $4) updated
) s
ORDER BY s.serial LIMIT $4";

/// The issued units of product `$1` from serial `$2` on (inclusive), by serial, at most `$3`,
/// by the primary key. Columns: serial, order, revoked.
pub const PRODUCT_STREAM: &str = "
SELECT serial, order_id, status = 'revoked' FROM units
WHERE product = $1 AND serial >= $2 AND status IN ('provisioned', 'revoked')
ORDER BY serial LIMIT $3";
