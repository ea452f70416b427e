//! What the OpenAPI document says that the handlers' annotations cannot: the rules of every
//! identifier, name, URL, OID, count and log position, taken from where `touchmark-core` states
//! them, so that a client (or schemathesis, which CI runs against the server) knows from the
//! document alone which requests the server accepts. A request the document allows is never
//! answered `400 invalid_request`; one it forbids always is.

use serde_json::{Value, json};
use touchmark_core::alert::AlertKind;
use touchmark_core::command::NewStation;
use touchmark_core::csaf;
use touchmark_core::field::{HttpUrl, Label, Oid, ProductName, SubjectText, TEXT_PATTERN};
use touchmark_core::id::ID_PATTERN;
use touchmark_core::order::MAX_QUOTA;
use touchmark_core::vuln::{self, CraClass, Deadline, ReportState};

use super::extract::{MAX_LOG_POSITION, MAX_PAGE};

fn id() -> Value {
    json!({ "pattern": ID_PATTERN, "minLength": 1, "maxLength": 64 })
}

fn text(max: usize) -> Value {
    json!({ "pattern": TEXT_PATTERN, "minLength": 1, "maxLength": max })
}

fn url() -> Value {
    json!({ "pattern": HttpUrl::PATTERN, "maxLength": HttpUrl::MAX })
}

fn timestamp() -> Value {
    json!({ "format": "date-time" })
}

fn reasons() -> Value {
    json!({ "enum": touchmark_core::policy::revocation::Reason::ALL.map(|r| r.as_str()) })
}

fn position() -> Value {
    json!({ "minimum": 0, "maximum": MAX_LOG_POSITION })
}

/// The constraints of each request body's properties: (schema, property, constraints).
fn body_rules() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("CreateProduct", "id", id()),
        ("CreateProduct", "name", text(ProductName::MAX)),
        ("CreateProduct", "organization", text(SubjectText::MAX)),
        ("CreateProduct", "common_name", text(SubjectText::MAX)),
        (
            "CreateProduct",
            "hw_type_oid",
            json!({ "pattern": Oid::PATTERN }),
        ),
        ("CreateProduct", "crl_url", url()),
        ("CreateProduct", "ocsp_url", url()),
        ("CreateProduct", "cert_not_after", timestamp()),
        ("CreateFactory", "id", id()),
        ("CreateFactory", "name", text(Label::MAX)),
        ("CreateStation", "id", id()),
        ("CreateStation", "factory", id()),
        ("CreateStation", "name", text(Label::MAX)),
        (
            "CreateStation",
            "enrollment_ttl_minutes",
            json!({ "minimum": 1, "maximum": NewStation::TTL_MAX_MINUTES }),
        ),
        ("CreateOrder", "id", id()),
        ("CreateOrder", "product", id()),
        ("CreateOrder", "factory", id()),
        ("CreateOrder", "quota", json!({ "maximum": MAX_QUOTA })),
        ("CreateOrder", "not_before", timestamp()),
        ("CreateOrder", "not_after", timestamp()),
        ("SetQuota", "quota", json!({ "maximum": MAX_QUOTA })),
        (
            "CreateToken",
            "role",
            json!({ "enum": ["admin", "auditor", "field"] }),
        ),
        ("CreateToken", "label", text(Label::MAX)),
        ("CreateWebhook", "url", url()),
        (
            "CreateWebhook",
            "secret",
            json!({ "pattern": touchmark_authority::alerts::SECRET_PATTERN }),
        ),
        (
            "CreateWebhook",
            "kinds",
            json!({ "items": { "type": "string", "enum": AlertKind::ALL.map(AlertKind::as_str) } }),
        ),
        ("Revoke", "reason", reasons()),
        ("Revoke", "product", id()),
        ("Release", "product", id()),
        ("RevokeProvenance", "station", id()),
        ("RevokeProvenance", "from", timestamp()),
        ("RevokeProvenance", "to", timestamp()),
        ("RevokeProvenance", "reason", reasons()),
        (
            "CreateReleaseKey",
            "algorithm",
            json!({ "enum": ["x25519", "ec256", null] }),
        ),
        (
            "UploadRelease",
            "version",
            json!({ "pattern": touchmark_core::firmware::VERSION_PATTERN }),
        ),
        // Vulnerability reports (issue 18).
        ("SubmitReport", "product", id()),
        ("SubmitReport", "version", text(vuln::VERSION_MAX)),
        (
            "SubmitReport",
            "description",
            json!({ "pattern": vuln::MULTILINE_PATTERN, "minLength": 1, "maxLength": vuln::DESCRIPTION_MAX }),
        ),
        (
            "SubmitReport",
            "encrypted",
            json!({ "pattern": vuln::ARMOR_PATTERN, "maxLength": vuln::ENCRYPTED_MAX }),
        ),
        (
            "SubmitReport",
            "cvss",
            json!({ "maxLength": vuln::CVSS_MAX }),
        ),
        ("SubmitReport", "contact", text(vuln::CONTACT_MAX)),
        (
            "ChangeReportState",
            "state",
            json!({ "enum": ReportState::ALL[1..].iter().map(|s| s.as_str()).collect::<Vec<_>>() }),
        ),
        ("ChangeReportState", "corrective_at", timestamp()),
        (
            "ClassifyReport",
            "class",
            json!({ "enum": CraClass::ALL.map(CraClass::as_str) }),
        ),
        ("ClassifyReport", "aware_at", timestamp()),
        (
            "RecordSubmission",
            "deadline",
            json!({ "enum": Deadline::ALL.map(Deadline::as_str) }),
        ),
        ("RecordSubmission", "submitted_at", timestamp()),
        ("LinkReport", "product", id()),
        (
            "LinkReport",
            "release",
            json!({ "pattern": touchmark_core::firmware::VERSION_PATTERN }),
        ),
        (
            "LinkReport",
            "purl",
            json!({ "maxLength": vuln::COMPONENT_MAX }),
        ),
        (
            "LinkReport",
            "range",
            json!({ "maxLength": vuln::COMPONENT_MAX }),
        ),
        (
            "LinkReport",
            "status",
            json!({ "enum": vuln::LinkStatus::ALL.map(vuln::LinkStatus::as_str) }),
        ),
        (
            "LinkReport",
            "justification",
            json!({ "enum": vuln::Justification::ALL.map(vuln::Justification::as_str) }),
        ),
        (
            "WriteAdvisory",
            "cve",
            json!({ "pattern": "^CVE-[0-9]{4}-[0-9]{4,19}$" }),
        ),
        ("WriteAdvisory", "title", text(csaf::TITLE_MAX)),
        (
            "WriteAdvisory",
            "description",
            json!({ "pattern": vuln::MULTILINE_PATTERN, "minLength": 1, "maxLength": csaf::DESCRIPTION_MAX }),
        ),
        ("WriteAdvisory", "summary", text(csaf::SUMMARY_MAX)),
    ]
}

/// The constraints of a path or query parameter, by its name (and its path's, for a page
/// of affected units, larger than one of events).
fn parameter_rule(path: &str, name: &str) -> Option<Value> {
    match name {
        "limit" if path.ends_with("/affected") || path.ends_with("/affected/units") => {
            Some(json!({ "minimum": 1, "maximum": super::vuln::AFFECTED_MAX_PAGE }))
        }
        "id" | "order" | "serial" | "factory" | "product" | "release" => Some(id()),
        "start" | "index" | "size" | "old" | "new" => Some(position()),
        "limit" => Some(json!({ "minimum": 1, "maximum": MAX_PAGE })),
        "after" => Some(json!({ "pattern": vuln::CURSOR_PATTERN, "maxLength": 129 })),
        "from" | "until" => Some(timestamp()),
        "state" => Some(json!({ "enum": ["unresolved", "all"] })),
        "year" => Some(json!({ "pattern": "^[0-9]{4}$" })),
        "file" => Some(
            json!({ "pattern": "^[+a-z0-9_-]+[.]json([.]sha256|[.]sha512)?$", "maxLength": 255 }),
        ),
        _ => None,
    }
}

fn merge(target: &mut Value, rules: &Value) {
    if let (Some(target), Some(rules)) = (target.as_object_mut(), rules.as_object()) {
        for (key, value) in rules {
            target.insert(key.clone(), value.clone());
        }
    }
}

/// Adds the constraints to `doc`, the document as the annotations made it.
pub fn constrain(doc: &mut Value) {
    for (schema, property, rules) in body_rules() {
        let target = doc.pointer_mut(&format!(
            "/components/schemas/{schema}/properties/{property}"
        ));
        debug_assert!(
            target.is_some(),
            "{schema}.{property} is not in the document"
        );
        if let Some(target) = target {
            merge(target, &rules);
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for parameter in parameters {
                let rule = parameter
                    .get("name")
                    .and_then(Value::as_str)
                    .and_then(|name| parameter_rule(path, name));
                if let (Some(rule), Some(schema)) = (rule, parameter.get_mut("schema")) {
                    merge(schema, &rule);
                }
            }
        }
    }
}
