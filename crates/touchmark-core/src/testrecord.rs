//! Factory test records: parsing, validation and normalization of the test result a station sends with each unit.
//!
//! Two input shapes are accepted and mapped into one model, [`TestRecord`]:
//!
//! - **Touchmark's own JSON** (strict: unknown fields are an error):
//!   `{serial?, verdict, started_at, ended_at, fixture_version?, raw_log_sha256?, source_format?,
//!   steps: [{name, outcome, measurements: [{name, value, unit?, low?, high?, outcome}]}]}`.
//!   `source_format` (`"touchmark"` or `"openhtf"`) is written by [`TestRecord::to_json`] so the
//!   normalized form remembers the shape a record was first submitted in.
//! - **OpenHTF's JSON test record** (what openhtf's `JsonOutput` callback writes): recognised by its
//!   `phases` key. Only the fields that are mapped are checked (strictly); the many other fields real
//!   records carry (`code_info`, `log_records`, attachments, ...) are ignored.
//!
//! The serial of the unit tested ([`TestRecord::serial`]: Touchmark's `serial`, OpenHTF's `dut_id`)
//! is kept and normalized with the rest, so the record's hash covers it. Parsing accepts a record
//! that names none (records stored before it was required name none); provisioning refuses one
//! (`touchmark_core::policy::issue::check_test`), so a record cannot be replayed as another
//! unit's (issue 11, finding 5).
//!
//! Optional fields may be absent or `null`. Every error names the offending field by its path in the
//! input, for example `steps[2].measurements[0].value: expected a number, string or boolean, found null`.
//!
//! A record whose verdict is pass must not contradict itself (no failed step or measurement, every
//! limited numeric value within its limits); see [`TestRecordError::Inconsistent`]. A record with a
//! failing verdict is a valid record of a failure.

use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::canonical;
use crate::event::Sha256Hash;

/// Most steps (OpenHTF: phases) a record may hold.
pub const MAX_STEPS: usize = 500;
/// Most measurements one step may hold.
pub const MAX_MEASUREMENTS_PER_STEP: usize = 500;
/// Most measurements a whole record may hold.
pub const MAX_MEASUREMENTS: usize = 10_000;
/// Longest step, measurement or fixture-version name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest unit, in characters.
pub const MAX_UNIT_CHARS: usize = 32;
/// Longest text measurement value, in characters.
pub const MAX_TEXT_CHARS: usize = 1024;

/// Why a test record was refused. Every variant carries the path of the offending field in the input
/// (`$` for the record itself) and a human-readable reason; `Display` prints `path: reason`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestRecordError {
    /// A field is missing, unknown (Touchmark shape), of the wrong JSON type, or has a value that is
    /// not acceptable (unknown enum string, bad timestamp, empty or over-long name, control
    /// characters, bad hash).
    #[error("{path}: {reason}")]
    Malformed {
        /// Path of the field in the input, e.g. `steps[2].measurements[0].value`.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The record contradicts itself: it ends before it starts, a low limit exceeds its high limit, or
    /// its verdict is pass while a step or measurement failed or a value lies outside its limits.
    #[error("{path}: {reason}")]
    Inconsistent {
        /// Path of the offending field in the input.
        path: String,
        /// What contradicts what.
        reason: String,
    },
    /// The record has more steps or measurements than allowed ([`MAX_STEPS`],
    /// [`MAX_MEASUREMENTS_PER_STEP`], [`MAX_MEASUREMENTS`]).
    #[error("{path}: {reason}")]
    TooLarge {
        /// Path of the array or map that is too large.
        path: String,
        /// Which limit was exceeded.
        reason: String,
    },
}

impl TestRecordError {
    /// Path of the offending field in the input (`$` for the record itself).
    pub fn path(&self) -> &str {
        match self {
            Self::Malformed { path, .. }
            | Self::Inconsistent { path, .. }
            | Self::TooLarge { path, .. } => path,
        }
    }
}

/// The input shape a record was first submitted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordFormat {
    /// Touchmark's own JSON shape.
    Touchmark,
    /// OpenHTF's JSON test-record shape.
    OpenHtf,
}

impl RecordFormat {
    /// The name used in the normalized JSON (`source_format`): `"touchmark"` or `"openhtf"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Touchmark => "touchmark",
            Self::OpenHtf => "openhtf",
        }
    }
}

/// The overall result of a test run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The unit passed every test.
    Pass,
    /// The unit failed a test.
    Fail,
    /// The test itself went wrong (OpenHTF's `ERROR` and `TIMEOUT`); says nothing about the unit.
    Error,
    /// The test was stopped before it finished.
    Aborted,
}

impl Verdict {
    /// The name used in Touchmark's JSON: `"pass"`, `"fail"`, `"error"` or `"aborted"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Error => "error",
            Self::Aborted => "aborted",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one step or one measurement (measurements are only ever `Pass` or `Fail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Not run (steps only).
    Skip,
    /// The step itself went wrong (steps only).
    Error,
}

impl Outcome {
    /// The name used in Touchmark's JSON: `"pass"`, `"fail"`, `"skip"` or `"error"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Skip => "skip",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A measured value.
#[derive(Debug, Clone, PartialEq)]
pub enum MeasuredValue {
    /// A finite number.
    Number(f64),
    /// A text value (at most [`MAX_TEXT_CHARS`] characters, no control characters).
    Text(String),
    /// A boolean value.
    Bool(bool),
}

impl fmt::Display for MeasuredValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(s) => write!(f, "{s:?}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// One measurement taken during a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Name, unique within its step in OpenHTF records (not enforced for Touchmark records).
    pub name: String,
    /// The value measured.
    pub value: MeasuredValue,
    /// Unit, e.g. `"dBm"`.
    pub unit: Option<String>,
    /// Inclusive low limit (numeric values only).
    pub low: Option<f64>,
    /// Inclusive high limit (numeric values only).
    pub high: Option<f64>,
    /// `Pass` or `Fail`, as judged by the station.
    pub outcome: Outcome,
}

impl Measurement {
    /// Describes how a numeric value lies outside its limits, if it does.
    fn limit_violation(&self) -> Option<String> {
        let MeasuredValue::Number(v) = self.value else {
            return None;
        };
        let below = self.low.is_some_and(|low| v < low);
        let above = self.high.is_some_and(|high| v > high);
        if !below && !above {
            return None;
        }
        Some(match (self.low, self.high) {
            (Some(low), Some(high)) => format!("outside [{low}, {high}]"),
            (Some(low), None) => format!("below the low limit {low}"),
            (None, Some(high)) => format!("above the high limit {high}"),
            // Unreachable: `below` or `above` needs a limit.
            (None, None) => String::from("outside its limits"),
        })
    }
}

/// One step of a test (an OpenHTF phase).
#[derive(Debug, Clone, PartialEq)]
pub struct TestStep {
    /// Name of the step.
    pub name: String,
    /// Result of the step.
    pub outcome: Outcome,
    /// Measurements taken, in input order (OpenHTF: sorted by name).
    pub measurements: Vec<Measurement>,
}

/// A validated factory test record.
///
/// Timestamps are normalized to UTC when parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord {
    /// The shape the record was first submitted in.
    pub format: RecordFormat,
    /// The serial of the unit the record says it tested, as written (Touchmark's `serial`,
    /// OpenHTF's `dut_id`); `None` when it names none. Compared with the unit's serial at
    /// provisioning, never parsed here.
    pub serial: Option<String>,
    /// Overall result.
    pub verdict: Verdict,
    /// When the test started.
    pub started_at: OffsetDateTime,
    /// When the test ended; never before `started_at`.
    pub ended_at: OffsetDateTime,
    /// Version of the test fixture or test program (OpenHTF: `metadata.test_version`).
    pub fixture_version: Option<String>,
    /// SHA-256 of the station's raw test log, kept elsewhere.
    pub raw_log_sha256: Option<[u8; 32]>,
    /// The steps, in execution order.
    pub steps: Vec<TestStep>,
}

/// A test record in its normalized, canonical JSON text, with the SHA-256 of that text: the
/// bytes a store keeps and an auditor can hash again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedRecord {
    /// The canonical JSON text.
    pub text: String,
    /// SHA-256 of `text`.
    pub sha256: Sha256Hash,
}

impl TestRecord {
    /// Parses and validates a test record in either accepted shape: an object with a `phases` key is
    /// an OpenHTF record, anything else must be Touchmark's shape.
    ///
    /// # Errors
    ///
    /// [`TestRecordError::Malformed`] for wrong types, missing, unknown or unacceptable fields;
    /// [`TestRecordError::TooLarge`] when a count limit is exceeded;
    /// [`TestRecordError::Inconsistent`] when the record contradicts itself.
    pub fn parse(value: &Value) -> Result<Self, TestRecordError> {
        let root = expect_object(value, "")?;
        let (record, sources) = if root.contains_key("phases") {
            parse_openhtf(root)?
        } else {
            parse_touchmark(root)?
        };
        record.check_consistency(&sources)?;
        Ok(record)
    }

    /// Whether the unit passed (the verdict is pass).
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// A one-line description of why the test did not pass, naming the first failing step or
    /// measurement, e.g. `step 'rf_power': measurement 'tx_dbm' = 21.7 outside [10, 20]`.
    /// `None` when the verdict is pass.
    pub fn failure_summary(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        for step in &self.steps {
            for m in &step.measurements {
                if let Some(why) = m.limit_violation() {
                    return Some(format!(
                        "step '{}': measurement '{}' = {} {why}",
                        step.name, m.name, m.value
                    ));
                }
                if m.outcome == Outcome::Fail {
                    return Some(format!(
                        "step '{}': measurement '{}' = {} failed",
                        step.name, m.name, m.value
                    ));
                }
            }
            match step.outcome {
                Outcome::Fail => return Some(format!("step '{}' failed", step.name)),
                Outcome::Error => return Some(format!("step '{}' ended with an error", step.name)),
                Outcome::Pass | Outcome::Skip => {}
            }
        }
        Some(String::from(match self.verdict {
            Verdict::Fail => "test failed (no failing step recorded)",
            Verdict::Error => "test ended with an error",
            Verdict::Aborted => "test was aborted",
            // Handled above.
            Verdict::Pass => "test passed",
        }))
    }

    /// The normalized form, in Touchmark's own shape, as stored in the database.
    ///
    /// Timestamps are RFC 3339 in UTC, the raw-log hash is lowercase hex, absent optional fields are
    /// omitted, numbers stay JSON numbers, `serial` is the unit the record names (an OpenHTF
    /// record's `dut_id`), and `source_format` records [`TestRecord::format`]. For any
    /// record returned by [`TestRecord::parse`], `parse(&r.to_json()) == Ok(r)`.
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        root.insert("source_format".into(), self.format.as_str().into());
        if let Some(serial) = &self.serial {
            root.insert("serial".into(), serial.as_str().into());
        }
        root.insert("verdict".into(), self.verdict.as_str().into());
        root.insert(
            "started_at".into(),
            format_timestamp(self.started_at).into(),
        );
        root.insert("ended_at".into(), format_timestamp(self.ended_at).into());
        if let Some(v) = &self.fixture_version {
            root.insert("fixture_version".into(), v.as_str().into());
        }
        if let Some(h) = &self.raw_log_sha256 {
            root.insert("raw_log_sha256".into(), hex::encode(h).into());
        }
        let steps = self
            .steps
            .iter()
            .map(|step| {
                let measurements = step
                    .measurements
                    .iter()
                    .map(|m| {
                        let mut mm = Map::new();
                        mm.insert("name".into(), m.name.as_str().into());
                        let value = match &m.value {
                            // `From<f64>` yields `null` for a non-finite number, which `parse`
                            // refuses; parsed records only hold finite numbers.
                            MeasuredValue::Number(n) => Value::from(*n),
                            MeasuredValue::Text(s) => Value::from(s.as_str()),
                            MeasuredValue::Bool(b) => Value::from(*b),
                        };
                        mm.insert("value".into(), value);
                        if let Some(unit) = &m.unit {
                            mm.insert("unit".into(), unit.as_str().into());
                        }
                        if let Some(low) = m.low {
                            mm.insert("low".into(), low.into());
                        }
                        if let Some(high) = m.high {
                            mm.insert("high".into(), high.into());
                        }
                        mm.insert("outcome".into(), m.outcome.as_str().into());
                        Value::Object(mm)
                    })
                    .collect();
                let mut sm = Map::new();
                sm.insert("name".into(), step.name.as_str().into());
                sm.insert("outcome".into(), step.outcome.as_str().into());
                sm.insert("measurements".into(), Value::Array(measurements));
                Value::Object(sm)
            })
            .collect();
        root.insert("steps".into(), Value::Array(steps));
        Value::Object(root)
    }

    /// The normalized record as it is stored and hashed: the RFC 8785 canonical form
    /// ([`crate::canonical`]) of [`TestRecord::to_json`], and its SHA-256, computed once.
    ///
    /// The canonical form is used rather than `serde_json::to_vec` because `serde_json`'s output
    /// depends on crate features unified across the whole build (`preserve_order` changes key order)
    /// and on its own float formatting. RFC 8785 fixes both (sorted keys, ECMAScript number
    /// formatting), so anyone with a JCS implementation can recompute the digest from the stored
    /// text. The hash does not depend on the key order or whitespace of the submitted JSON.
    pub fn normalized(&self) -> NormalizedRecord {
        let json = self.to_json();
        let text = match canonical::to_canonical_vec(&json).map(String::from_utf8) {
            Ok(Ok(text)) => text,
            // Unreachable: `to_json` emits only strings, booleans, `null`, finite floats (which
            // canonicalization always accepts) and four levels of nesting, and canonical JSON is
            // UTF-8. Falling back keeps this function total without a panic.
            _ => json.to_string(),
        };
        NormalizedRecord {
            sha256: Sha256Hash(Sha256::digest(text.as_bytes()).into()),
            text,
        }
    }

    /// SHA-256 of the normalized record ([`TestRecord::normalized`]).
    pub fn sha256(&self) -> [u8; 32] {
        self.normalized().sha256.0
    }

    /// Checks that a record with verdict pass does not contradict itself.
    fn check_consistency(&self, sources: &Sources) -> Result<(), TestRecordError> {
        if self.verdict != Verdict::Pass {
            return Ok(());
        }
        for (step, src) in self.steps.iter().zip(&sources.steps) {
            if matches!(step.outcome, Outcome::Fail | Outcome::Error) {
                return Err(inconsistent(
                    &join(&src.path, "outcome"),
                    format!(
                        "verdict is pass but step '{}' has outcome {}",
                        step.name, step.outcome
                    ),
                ));
            }
            for (m, mpath) in step.measurements.iter().zip(&src.measurements) {
                if m.outcome == Outcome::Fail {
                    return Err(inconsistent(
                        &join(mpath, "outcome"),
                        format!(
                            "verdict is pass but measurement '{}' of step '{}' failed",
                            m.name, step.name
                        ),
                    ));
                }
                if let Some(why) = m.limit_violation() {
                    return Err(inconsistent(
                        &join(mpath, sources.value_key),
                        format!(
                            "verdict is pass but measurement '{}' of step '{}' = {} is {why}",
                            m.name, step.name, m.value
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------
// Where each parsed item came from, so that consistency errors name the input's own paths.

struct Sources {
    /// Name of the measured-value field in this shape.
    value_key: &'static str,
    steps: Vec<StepSource>,
}

struct StepSource {
    path: String,
    measurements: Vec<String>,
}

// ---------------------------------------------------------------------------------------------------
// Touchmark's shape.

const STEP_OUTCOMES: &[(&str, Outcome)] = &[
    ("pass", Outcome::Pass),
    ("fail", Outcome::Fail),
    ("skip", Outcome::Skip),
    ("error", Outcome::Error),
];

fn parse_touchmark(root: &Map<String, Value>) -> Result<(TestRecord, Sources), TestRecordError> {
    deny_unknown(
        root,
        "",
        &[
            "source_format",
            "serial",
            "verdict",
            "started_at",
            "ended_at",
            "fixture_version",
            "raw_log_sha256",
            "steps",
        ],
    )?;
    let format = match optional(root, "source_format") {
        None => RecordFormat::Touchmark,
        Some(v) => parse_enum(
            v,
            "source_format",
            &[
                ("touchmark", RecordFormat::Touchmark),
                ("openhtf", RecordFormat::OpenHtf),
            ],
        )?,
    };
    let verdict = parse_enum(
        required(root, "", "verdict")?,
        "verdict",
        &[
            ("pass", Verdict::Pass),
            ("fail", Verdict::Fail),
            ("error", Verdict::Error),
            ("aborted", Verdict::Aborted),
        ],
    )?;
    let serial = optional(root, "serial")
        .map(|v| parse_name(v, "serial"))
        .transpose()?;
    let started_at = parse_timestamp(required(root, "", "started_at")?, "started_at")?;
    let ended_at = parse_timestamp(required(root, "", "ended_at")?, "ended_at")?;
    if ended_at < started_at {
        return Err(inconsistent("ended_at", "is before started_at"));
    }
    let fixture_version = optional(root, "fixture_version")
        .map(|v| parse_name(v, "fixture_version"))
        .transpose()?;
    let raw_log_sha256 = optional(root, "raw_log_sha256")
        .map(|v| parse_sha256(v, "raw_log_sha256"))
        .transpose()?;

    let steps_value = expect_array(required(root, "", "steps")?, "steps")?;
    if steps_value.len() > MAX_STEPS {
        return Err(too_large(
            "steps",
            format!(
                "at most {MAX_STEPS} steps are allowed, found {}",
                steps_value.len()
            ),
        ));
    }
    let mut total = 0usize;
    let mut steps = Vec::with_capacity(steps_value.len());
    let mut sources = Sources {
        value_key: "value",
        steps: Vec::with_capacity(steps_value.len()),
    };
    for (i, step_value) in steps_value.iter().enumerate() {
        let spath = format!("steps[{i}]");
        let sm = expect_object(step_value, &spath)?;
        deny_unknown(sm, &spath, &["name", "outcome", "measurements"])?;
        let name = parse_name(required(sm, &spath, "name")?, &join(&spath, "name"))?;
        let outcome = parse_enum(
            required(sm, &spath, "outcome")?,
            &join(&spath, "outcome"),
            STEP_OUTCOMES,
        )?;
        let ms_path = join(&spath, "measurements");
        let ms_value = expect_array(required(sm, &spath, "measurements")?, &ms_path)?;
        check_counts(ms_value.len(), &mut total, &ms_path)?;
        let mut measurements = Vec::with_capacity(ms_value.len());
        let mut mpaths = Vec::with_capacity(ms_value.len());
        for (j, mv) in ms_value.iter().enumerate() {
            let mpath = format!("{ms_path}[{j}]");
            measurements.push(parse_touchmark_measurement(mv, &mpath)?);
            mpaths.push(mpath);
        }
        steps.push(TestStep {
            name,
            outcome,
            measurements,
        });
        sources.steps.push(StepSource {
            path: spath,
            measurements: mpaths,
        });
    }
    let record = TestRecord {
        format,
        serial,
        verdict,
        started_at,
        ended_at,
        fixture_version,
        raw_log_sha256,
        steps,
    };
    Ok((record, sources))
}

fn parse_touchmark_measurement(value: &Value, path: &str) -> Result<Measurement, TestRecordError> {
    let m = expect_object(value, path)?;
    deny_unknown(
        m,
        path,
        &["name", "value", "unit", "low", "high", "outcome"],
    )?;
    let name = parse_name(required(m, path, "name")?, &join(path, "name"))?;
    let value = parse_value(required(m, path, "value")?, &join(path, "value"))?;
    let unit = optional(m, "unit")
        .map(|v| parse_unit(v, &join(path, "unit")))
        .transpose()?;
    let mut limits = [None, None];
    for (slot, key) in limits.iter_mut().zip(["low", "high"]) {
        if let Some(v) = optional(m, key) {
            let lpath = join(path, key);
            if !matches!(value, MeasuredValue::Number(_)) {
                return Err(malformed(
                    &lpath,
                    "limits are only allowed on numeric values",
                ));
            }
            *slot = Some(parse_number(v, &lpath)?);
        }
    }
    let [low, high] = limits;
    check_limit_order(low, high, &join(path, "low"))?;
    let outcome = parse_enum(
        required(m, path, "outcome")?,
        &join(path, "outcome"),
        &[("pass", Outcome::Pass), ("fail", Outcome::Fail)],
    )?;
    Ok(Measurement {
        name,
        value,
        unit,
        low,
        high,
        outcome,
    })
}

// ---------------------------------------------------------------------------------------------------
// OpenHTF's shape.

fn parse_openhtf(root: &Map<String, Value>) -> Result<(TestRecord, Sources), TestRecordError> {
    // TIMEOUT says the test program ran out of time, not that the unit failed: an error.
    let verdict = parse_enum(
        required(root, "", "outcome")?,
        "outcome",
        &[
            ("PASS", Verdict::Pass),
            ("FAIL", Verdict::Fail),
            ("ERROR", Verdict::Error),
            ("TIMEOUT", Verdict::Error),
            ("ABORTED", Verdict::Aborted),
        ],
    )?;
    let started_at = parse_millis(
        required(root, "", "start_time_millis")?,
        "start_time_millis",
    )?;
    let ended_at = parse_millis(required(root, "", "end_time_millis")?, "end_time_millis")?;
    if ended_at < started_at {
        return Err(inconsistent(
            "end_time_millis",
            "is before start_time_millis",
        ));
    }
    // The DUT id the test was started with: OpenHTF writes `UNKNOWN_DUT` when none was given,
    // which then simply names no unit of ours.
    let serial = optional(root, "dut_id")
        .map(|v| parse_name(v, "dut_id"))
        .transpose()?;
    let fixture_version = match optional(root, "metadata") {
        None => None,
        Some(meta) => optional(expect_object(meta, "metadata")?, "test_version")
            .map(|v| parse_name(v, "metadata.test_version"))
            .transpose()?,
    };

    let phases = expect_array(required(root, "", "phases")?, "phases")?;
    if phases.len() > MAX_STEPS {
        return Err(too_large(
            "phases",
            format!(
                "at most {MAX_STEPS} phases are allowed, found {}",
                phases.len()
            ),
        ));
    }
    let mut total = 0usize;
    let mut steps = Vec::with_capacity(phases.len());
    let mut sources = Sources {
        value_key: "measured_value",
        steps: Vec::with_capacity(phases.len()),
    };
    for (i, phase) in phases.iter().enumerate() {
        let ppath = format!("phases[{i}]");
        let pm = expect_object(phase, &ppath)?;
        let name = parse_name(required(pm, &ppath, "name")?, &join(&ppath, "name"))?;
        let outcome = parse_enum(
            required(pm, &ppath, "outcome")?,
            &join(&ppath, "outcome"),
            &[
                ("PASS", Outcome::Pass),
                ("FAIL", Outcome::Fail),
                ("SKIP", Outcome::Skip),
                ("ERROR", Outcome::Error),
            ],
        )?;
        let ms_path = join(&ppath, "measurements");
        let mut entries: Vec<(&String, &Value)> = match optional(pm, "measurements") {
            None => Vec::new(),
            Some(v) => expect_object(v, &ms_path)?.iter().collect(),
        };
        check_counts(entries.len(), &mut total, &ms_path)?;
        // Sorted by name, so the model does not depend on the JSON map's order.
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut measurements = Vec::with_capacity(entries.len());
        let mut mpaths = Vec::with_capacity(entries.len());
        for (key, mv) in entries {
            let mpath = key_path(&ms_path, key);
            if let Some(m) = parse_openhtf_measurement(key, mv, &mpath)? {
                measurements.push(m);
                mpaths.push(mpath);
            }
        }
        steps.push(TestStep {
            name,
            outcome,
            measurements,
        });
        sources.steps.push(StepSource {
            path: ppath,
            measurements: mpaths,
        });
    }
    let record = TestRecord {
        format: RecordFormat::OpenHtf,
        serial,
        verdict,
        started_at,
        ended_at,
        fixture_version,
        raw_log_sha256: None,
        steps,
    };
    Ok((record, sources))
}

/// Maps one entry of an OpenHTF phase's `measurements` map; `None` for an `UNSET` measurement,
/// which holds no value.
fn parse_openhtf_measurement(
    key: &str,
    value: &Value,
    path: &str,
) -> Result<Option<Measurement>, TestRecordError> {
    let name = check_name(key, path)?;
    let m = expect_object(value, path)?;
    // PARTIALLY_SET only occurs for dimensioned measurements, which are refused below anyway.
    let outcome = parse_enum(
        required(m, path, "outcome")?,
        &join(path, "outcome"),
        &[
            ("PASS", Some(Outcome::Pass)),
            ("FAIL", Some(Outcome::Fail)),
            ("PARTIALLY_SET", Some(Outcome::Fail)),
            ("UNSET", None),
        ],
    )?;
    let Some(outcome) = outcome else {
        return Ok(None);
    };
    let value = parse_value(
        required(m, path, "measured_value")?,
        &join(path, "measured_value"),
    )?;
    let unit = match optional(m, "units") {
        None => None,
        Some(units) => parse_openhtf_units(units, &join(path, "units"))?,
    };
    let (low, high) = match optional(m, "validators") {
        None => (None, None),
        Some(v) => parse_validators(v, &join(path, "validators"))?,
    };
    // Range validators only make sense for numbers; on other values they are not limits we can check.
    let (low, high) = match value {
        MeasuredValue::Number(_) => (low, high),
        MeasuredValue::Text(_) | MeasuredValue::Bool(_) => (None, None),
    };
    check_limit_order(low, high, &join(path, "validators"))?;
    Ok(Some(Measurement {
        name,
        value,
        unit,
        low,
        high,
        outcome,
    }))
}

/// OpenHTF writes a unit descriptor `{name, code, suffix}`; prefer the short suffix ("dBm"), then the
/// name when it fits, then the UNECE code.
fn parse_openhtf_units(value: &Value, path: &str) -> Result<Option<String>, TestRecordError> {
    let units = expect_object(value, path)?;
    let pick = |key: &str| pick_unit(units, path, key);
    let suffix = pick("suffix")?;
    let name = pick("name")?.filter(|(s, _)| s.chars().count() <= MAX_UNIT_CHARS);
    let code = pick("code")?;
    match suffix.or(name).or(code) {
        None => Ok(None),
        Some((unit, kpath)) => Ok(Some(check_unit(unit, &kpath)?)),
    }
}

/// One non-empty string member of an OpenHTF unit descriptor, with its path.
fn pick_unit<'a>(
    units: &'a Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<(&'a str, String)>, TestRecordError> {
    let kpath = join(path, key);
    Ok(optional(units, key)
        .map(|v| expect_str(v, &kpath))
        .transpose()?
        .filter(|s| !s.is_empty())
        .map(|s| (s, kpath)))
}

/// Reads range limits from OpenHTF validator descriptions; other validators are ignored.
fn parse_validators(
    value: &Value,
    path: &str,
) -> Result<(Option<f64>, Option<f64>), TestRecordError> {
    let mut low: Option<f64> = None;
    let mut high: Option<f64> = None;
    for (i, v) in expect_array(value, path)?.iter().enumerate() {
        let text = expect_str(v, &format!("{path}[{i}]"))?;
        if let Some((l, h)) = parse_validator(text) {
            // Several range validators all apply: keep the tightest bounds.
            if let Some(l) = l {
                low = Some(low.map_or(l, |cur| cur.max(l)));
            }
            if let Some(h) = h {
                high = Some(high.map_or(h, |cur| cur.min(h)));
            }
        }
    }
    Ok((low, high))
}

/// Parses one validator description as written by OpenHTF's range validators (`str(InRange(...))`):
/// `a <= x <= b`, `a <= x`, `x <= b`, `x == a`, with optional `Marginal:m <=` parts, as well as
/// `x >= a` and strict `<`/`>` forms. Strict bounds are kept as (inclusive) limits: the station's own
/// outcome stays authoritative, the limits are for display and for the pass-verdict check.
/// Returns `None` for anything else.
fn parse_validator(text: &str) -> Option<(Option<f64>, Option<f64>)> {
    let mut tokens: Vec<&str> = Vec::new();
    for token in text.split_whitespace() {
        if token.starts_with("Marginal:") {
            continue;
        }
        // Dropping a marginal bound leaves two comparison operators in a row: keep one.
        if is_upper_op(token) && tokens.last().is_some_and(|t| is_upper_op(t)) {
            continue;
        }
        tokens.push(token);
    }
    let num = |s: &str| s.parse::<f64>().ok().filter(|f| f.is_finite());
    match tokens.as_slice() {
        [a, op1, "x", op2, b] if is_upper_op(op1) && is_upper_op(op2) => {
            Some((Some(num(a)?), Some(num(b)?)))
        }
        [a, op, "x"] if is_upper_op(op) => Some((Some(num(a)?), None)),
        ["x", op, b] if is_upper_op(op) => Some((None, Some(num(b)?))),
        ["x", ">=" | ">", a] => Some((Some(num(a)?), None)),
        [b, ">=" | ">", "x"] => Some((None, Some(num(b)?))),
        ["x", "==", a] => {
            let a = num(a)?;
            Some((Some(a), Some(a)))
        }
        _ => None,
    }
}

fn is_upper_op(token: &str) -> bool {
    token == "<=" || token == "<"
}

fn parse_millis(value: &Value, path: &str) -> Result<OffsetDateTime, TestRecordError> {
    let Some(ms) = value.as_u64() else {
        return Err(malformed(
            path,
            format!(
                "expected a non-negative integer (milliseconds since the Unix epoch), found {}",
                describe(value)
            ),
        ));
    };
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| malformed(path, "timestamp out of range"))?;
    check_year(t, path)
}

// ---------------------------------------------------------------------------------------------------
// Field helpers shared by both shapes.

fn malformed(path: &str, reason: impl Into<String>) -> TestRecordError {
    TestRecordError::Malformed {
        path: root_path(path),
        reason: reason.into(),
    }
}

fn inconsistent(path: &str, reason: impl Into<String>) -> TestRecordError {
    TestRecordError::Inconsistent {
        path: root_path(path),
        reason: reason.into(),
    }
}

fn too_large(path: &str, reason: impl Into<String>) -> TestRecordError {
    TestRecordError::TooLarge {
        path: root_path(path),
        reason: reason.into(),
    }
}

fn root_path(path: &str) -> String {
    if path.is_empty() {
        String::from("$")
    } else {
        path.to_owned()
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Path of a member whose name comes from the input: `parent.key` for plain identifiers, otherwise
/// `parent["key"]`, JSON-quoted and shortened so that error messages stay readable and printable.
fn key_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        join(parent, key)
    } else {
        format!("{parent}[{}]", quote(key))
    }
}

/// JSON-quotes a string from the input for an error message, shortened to 64 characters.
fn quote(s: &str) -> String {
    let mut short: String = s.chars().take(64).collect();
    if short.len() < s.len() {
        short.push('…');
    }
    Value::String(short).to_string()
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn required<'a>(
    map: &'a Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<&'a Value, TestRecordError> {
    map.get(key)
        .ok_or_else(|| malformed(&join(parent, key), "is required"))
}

/// An optional member: absent and `null` both mean "not given".
fn optional<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

fn deny_unknown(
    map: &Map<String, Value>,
    parent: &str,
    allowed: &[&str],
) -> Result<(), TestRecordError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(malformed(&key_path(parent, unknown), "unknown field")),
        None => Ok(()),
    }
}

fn expect_object<'a>(
    value: &'a Value,
    path: &str,
) -> Result<&'a Map<String, Value>, TestRecordError> {
    value.as_object().ok_or_else(|| {
        malformed(
            path,
            format!("expected an object, found {}", describe(value)),
        )
    })
}

fn expect_array<'a>(value: &'a Value, path: &str) -> Result<&'a Vec<Value>, TestRecordError> {
    value.as_array().ok_or_else(|| {
        malformed(
            path,
            format!("expected an array, found {}", describe(value)),
        )
    })
}

fn expect_str<'a>(value: &'a Value, path: &str) -> Result<&'a str, TestRecordError> {
    value.as_str().ok_or_else(|| {
        malformed(
            path,
            format!("expected a string, found {}", describe(value)),
        )
    })
}

fn parse_enum<T: Copy>(
    value: &Value,
    path: &str,
    table: &[(&str, T)],
) -> Result<T, TestRecordError> {
    let s = expect_str(value, path)?;
    if let Some((_, t)) = table.iter().find(|(name, _)| *name == s) {
        return Ok(*t);
    }
    let names: Vec<String> = table
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect();
    Err(malformed(
        path,
        format!("expected one of {}, found {}", names.join(", "), quote(s)),
    ))
}

fn parse_name(value: &Value, path: &str) -> Result<String, TestRecordError> {
    check_name(expect_str(value, path)?, path)
}

/// Names: non-empty, at most [`MAX_NAME_CHARS`] characters, no control characters.
fn check_name(s: &str, path: &str) -> Result<String, TestRecordError> {
    check_text(s, path, MAX_NAME_CHARS)?;
    if s.is_empty() {
        return Err(malformed(path, "must not be empty"));
    }
    Ok(s.to_owned())
}

fn parse_unit(value: &Value, path: &str) -> Result<String, TestRecordError> {
    check_unit(expect_str(value, path)?, path)
}

fn check_unit(s: &str, path: &str) -> Result<String, TestRecordError> {
    check_text(s, path, MAX_UNIT_CHARS)?;
    if s.is_empty() {
        return Err(malformed(path, "must not be empty"));
    }
    Ok(s.to_owned())
}

fn check_text(s: &str, path: &str, max_chars: usize) -> Result<(), TestRecordError> {
    if s.chars().count() > max_chars {
        return Err(malformed(
            path,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(malformed(path, "must not contain control characters"));
    }
    Ok(())
}

fn parse_value(value: &Value, path: &str) -> Result<MeasuredValue, TestRecordError> {
    match value {
        Value::Number(_) => Ok(MeasuredValue::Number(parse_number(value, path)?)),
        Value::String(s) => {
            check_text(s, path, MAX_TEXT_CHARS)?;
            Ok(MeasuredValue::Text(s.clone()))
        }
        Value::Bool(b) => Ok(MeasuredValue::Bool(*b)),
        Value::Null | Value::Array(_) | Value::Object(_) => Err(malformed(
            path,
            format!(
                "expected a number, string or boolean, found {}",
                describe(value)
            ),
        )),
    }
}

fn parse_number(value: &Value, path: &str) -> Result<f64, TestRecordError> {
    match value.as_f64() {
        Some(f) if f.is_finite() => Ok(f),
        Some(_) => Err(malformed(path, "must be a finite number")),
        None => Err(malformed(
            path,
            format!("expected a number, found {}", describe(value)),
        )),
    }
}

fn check_limit_order(
    low: Option<f64>,
    high: Option<f64>,
    path: &str,
) -> Result<(), TestRecordError> {
    match (low, high) {
        (Some(low), Some(high)) if low > high => Err(inconsistent(
            path,
            format!("low limit {low} is greater than high limit {high}"),
        )),
        _ => Ok(()),
    }
}

/// Counts a step's measurements against the per-step and per-record limits.
fn check_counts(in_step: usize, total: &mut usize, path: &str) -> Result<(), TestRecordError> {
    if in_step > MAX_MEASUREMENTS_PER_STEP {
        return Err(too_large(
            path,
            format!(
                "at most {MAX_MEASUREMENTS_PER_STEP} measurements per step are allowed, found {in_step}"
            ),
        ));
    }
    *total += in_step;
    if *total > MAX_MEASUREMENTS {
        return Err(too_large(
            path,
            format!("at most {MAX_MEASUREMENTS} measurements per record are allowed"),
        ));
    }
    Ok(())
}

fn parse_sha256(value: &Value, path: &str) -> Result<[u8; 32], TestRecordError> {
    let s = expect_str(value, path)?;
    let mut out = [0u8; 32];
    if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
        return Err(malformed(
            path,
            "expected exactly 64 hexadecimal characters",
        ));
    }
    Ok(out)
}

/// Parses an RFC 3339 timestamp and normalizes it to UTC.
fn parse_timestamp(value: &Value, path: &str) -> Result<OffsetDateTime, TestRecordError> {
    let s = expect_str(value, path)?;
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        malformed(
            path,
            format!("expected an RFC 3339 timestamp, found {}", quote(s)),
        )
    })?;
    // Through the Unix timestamp rather than `to_offset`, which panics when the shift leaves the
    // supported range (e.g. 0000-01-01T00:00:00+01:00).
    let utc = OffsetDateTime::from_unix_timestamp_nanos(t.unix_timestamp_nanos())
        .map_err(|_| malformed(path, "timestamp out of range"))?;
    check_year(utc, path)
}

/// Keeps timestamps within years 0000–9999 (in UTC), which RFC 3339 can express.
fn check_year(t: OffsetDateTime, path: &str) -> Result<OffsetDateTime, TestRecordError> {
    if (0..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err(malformed(
            path,
            "timestamp out of range (years 0000 to 9999 in UTC)",
        ))
    }
}

/// Formats a timestamp as RFC 3339 in UTC, with the fractional seconds only when non-zero.
///
/// Hand-written rather than `format(&Rfc3339)` so that it cannot fail: the fields of a
/// [`TestRecord`] are public, and an out-of-range year must not make [`TestRecord::to_json`] fallible.
fn format_timestamp(t: OffsetDateTime) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(t.unix_timestamp_nanos()).unwrap_or(t);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    if t.offset().is_utc() {
        s.push('Z');
    } else {
        // Only reachable when the UTC conversion above failed.
        let (h, m, _) = t.offset().as_hms();
        s.push_str(&format!(
            "{}{:02}:{:02}",
            if t.offset().is_negative() { '-' } else { '+' },
            h.unsigned_abs(),
            m.unsigned_abs()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    /// A change applied to a fixture, for tables of error cases.
    type Edit = Box<dyn Fn(&mut Value)>;
    /// Low and high limits.
    type Limits = (Option<f64>, Option<f64>);

    fn touchmark_record() -> Value {
        json!({
            "serial": "SN-000400",
            "verdict": "pass",
            "started_at": "2026-03-01T10:00:00+01:00",
            "ended_at": "2026-03-01T09:00:42.5Z",
            "fixture_version": "rf-fixture 2.3.1",
            "raw_log_sha256": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
            "steps": [
                {
                    "name": "rf_power",
                    "outcome": "pass",
                    "measurements": [
                        { "name": "tx_dbm", "value": 17.25, "unit": "dBm", "low": 10, "high": 20, "outcome": "pass" },
                        { "name": "antenna", "value": "internal", "outcome": "pass" }
                    ]
                },
                {
                    "name": "self_test",
                    "outcome": "pass",
                    "measurements": [ { "name": "ok", "value": true, "unit": null, "outcome": "pass" } ]
                },
                { "name": "optional_calibration", "outcome": "skip", "measurements": [] }
            ]
        })
    }

    fn err(value: &Value) -> String {
        TestRecord::parse(value).unwrap_err().to_string()
    }

    /// Applies `edit` to a fresh copy of the Touchmark fixture and returns the parse error.
    fn err_after(edit: impl FnOnce(&mut Value)) -> TestRecordError {
        let mut v = touchmark_record();
        edit(&mut v);
        TestRecord::parse(&v).unwrap_err()
    }

    #[test]
    fn parses_a_full_touchmark_record() {
        let r = TestRecord::parse(&touchmark_record()).unwrap();
        let expected = TestRecord {
            format: RecordFormat::Touchmark,
            serial: Some("SN-000400".into()),
            verdict: Verdict::Pass,
            started_at: datetime!(2026-03-01 09:00:00 UTC),
            ended_at: datetime!(2026-03-01 09:00:42.5 UTC),
            fixture_version: Some("rf-fixture 2.3.1".into()),
            raw_log_sha256: Some(
                hex::decode("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
                    .unwrap()
                    .try_into()
                    .unwrap(),
            ),
            steps: vec![
                TestStep {
                    name: "rf_power".into(),
                    outcome: Outcome::Pass,
                    measurements: vec![
                        Measurement {
                            name: "tx_dbm".into(),
                            value: MeasuredValue::Number(17.25),
                            unit: Some("dBm".into()),
                            low: Some(10.0),
                            high: Some(20.0),
                            outcome: Outcome::Pass,
                        },
                        Measurement {
                            name: "antenna".into(),
                            value: MeasuredValue::Text("internal".into()),
                            unit: None,
                            low: None,
                            high: None,
                            outcome: Outcome::Pass,
                        },
                    ],
                },
                TestStep {
                    name: "self_test".into(),
                    outcome: Outcome::Pass,
                    measurements: vec![Measurement {
                        name: "ok".into(),
                        value: MeasuredValue::Bool(true),
                        unit: None,
                        low: None,
                        high: None,
                        outcome: Outcome::Pass,
                    }],
                },
                TestStep {
                    name: "optional_calibration".into(),
                    outcome: Outcome::Skip,
                    measurements: vec![],
                },
            ],
        };
        assert_eq!(r, expected);
        // Normalized to UTC.
        assert!(r.started_at.offset().is_utc());
        assert!(r.passed());
        assert_eq!(r.failure_summary(), None);
        assert_eq!(r.verdict.as_str(), "pass");
    }

    /// Mimics what openhtf's `JsonOutput` callback writes, including fields Touchmark ignores.
    fn openhtf_record() -> Value {
        json!({
            "dut_id": "TM-000123",
            "station_id": "line1-rf-03",
            "start_time_millis": 1_772_355_600_000_u64,
            "end_time_millis": 1_772_355_642_500_u64,
            "outcome": "FAIL",
            "outcome_details": [{ "code": "tx_dbm", "description": "out of range" }],
            "metadata": { "test_name": "rf_suite", "test_version": "2.3.1", "config": {} },
            "code_info": { "name": "rf_suite", "docstring": null, "sourcecode": "" },
            "log_records": [{ "level": 20, "logger_name": "openhtf", "message": "hi", "timestamp_millis": 1 }],
            "marginal": false,
            "phases": [
                {
                    "name": "power_on",
                    "descriptor_id": 140_234,
                    "codeinfo": { "name": "power_on", "docstring": null, "sourcecode": "" },
                    "options": { "name": "power_on", "timeout_s": null },
                    "start_time_millis": 1_772_355_600_010_u64,
                    "end_time_millis": 1_772_355_600_500_u64,
                    "outcome": "PASS",
                    "result": { "phase_result": "CONTINUE" },
                    "attachments": {},
                    "measurements": {
                        "vbat": {
                            "name": "vbat", "outcome": "PASS", "measured_value": 3.31,
                            "units": { "name": "volt", "code": "VLT", "suffix": "V" },
                            "validators": ["3.2 <= x <= 3.4"], "docstring": "Battery voltage",
                            "dimensions": null, "marginal": false
                        },
                        "current": {
                            "name": "current", "outcome": "PASS", "measured_value": 0.12,
                            "units": { "name": "ampere", "code": "AMP", "suffix": "A" },
                            "validators": ["0.05 <= Marginal:0.06 <= x <= Marginal:0.2 <= 0.25"]
                        },
                        "fw_version": {
                            "name": "fw_version", "outcome": "PASS", "measured_value": "1.4.0",
                            "units": null, "validators": ["'x' matches /^1\\.4\\./"]
                        },
                        "not_taken": { "name": "not_taken", "outcome": "UNSET", "units": null, "validators": [] }
                    }
                },
                {
                    "name": "rf_power",
                    "start_time_millis": 1_772_355_600_500_u64,
                    "end_time_millis": 1_772_355_642_000_u64,
                    "outcome": "FAIL",
                    "result": { "phase_result": "FAIL_AND_CONTINUE" },
                    "attachments": { "spectrum.png": { "mimetype": "image/png", "sha1": "x" } },
                    "measurements": {
                        "tx_dbm": {
                            "name": "tx_dbm", "outcome": "FAIL", "measured_value": 21.7,
                            "units": { "name": "decibel referred to 1 milliwatt", "code": "2QN", "suffix": "dBm" },
                            "validators": ["10 <= x <= 20"]
                        },
                        "rssi": {
                            "name": "rssi", "outcome": "PASS", "measured_value": -42,
                            "units": { "name": "decibel", "code": "2N", "suffix": "" },
                            "validators": ["x >= -60"]
                        }
                    }
                },
                {
                    "name": "teardown",
                    "start_time_millis": 1_772_355_642_000_u64,
                    "end_time_millis": 1_772_355_642_400_u64,
                    "outcome": "SKIP",
                    "measurements": {}
                }
            ]
        })
    }

    #[test]
    fn maps_an_openhtf_record() {
        let r = TestRecord::parse(&openhtf_record()).unwrap();
        let m = |name: &str, value: MeasuredValue, unit: Option<&str>, low, high, outcome| {
            Measurement {
                name: name.into(),
                value,
                unit: unit.map(Into::into),
                low,
                high,
                outcome,
            }
        };
        let expected = TestRecord {
            format: RecordFormat::OpenHtf,
            serial: Some("TM-000123".into()),
            verdict: Verdict::Fail,
            started_at: datetime!(2026-03-01 09:00:00 UTC),
            ended_at: datetime!(2026-03-01 09:00:42.5 UTC),
            fixture_version: Some("2.3.1".into()),
            raw_log_sha256: None,
            steps: vec![
                TestStep {
                    name: "power_on".into(),
                    outcome: Outcome::Pass,
                    // Sorted by name; the UNSET measurement is left out.
                    measurements: vec![
                        m(
                            "current",
                            MeasuredValue::Number(0.12),
                            Some("A"),
                            Some(0.05),
                            Some(0.25),
                            Outcome::Pass,
                        ),
                        m(
                            "fw_version",
                            MeasuredValue::Text("1.4.0".into()),
                            None,
                            None,
                            None,
                            Outcome::Pass,
                        ),
                        m(
                            "vbat",
                            MeasuredValue::Number(3.31),
                            Some("V"),
                            Some(3.2),
                            Some(3.4),
                            Outcome::Pass,
                        ),
                    ],
                },
                TestStep {
                    name: "rf_power".into(),
                    outcome: Outcome::Fail,
                    measurements: vec![
                        // Empty suffix: falls back to the unit's name.
                        m(
                            "rssi",
                            MeasuredValue::Number(-42.0),
                            Some("decibel"),
                            Some(-60.0),
                            None,
                            Outcome::Pass,
                        ),
                        m(
                            "tx_dbm",
                            MeasuredValue::Number(21.7),
                            Some("dBm"),
                            Some(10.0),
                            Some(20.0),
                            Outcome::Fail,
                        ),
                    ],
                },
                TestStep {
                    name: "teardown".into(),
                    outcome: Outcome::Skip,
                    measurements: vec![],
                },
            ],
        };
        assert_eq!(r, expected);
        assert!(!r.passed());
        assert_eq!(
            r.failure_summary().as_deref(),
            Some("step 'rf_power': measurement 'tx_dbm' = 21.7 outside [10, 20]")
        );
        // The normalized form remembers the origin and round-trips.
        assert_eq!(r.to_json()["source_format"], "openhtf");
        assert_eq!(TestRecord::parse(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn openhtf_outcomes() {
        for (outcome, verdict) in [
            ("PASS", Verdict::Pass),
            ("FAIL", Verdict::Fail),
            ("ERROR", Verdict::Error),
            ("TIMEOUT", Verdict::Error),
            ("ABORTED", Verdict::Aborted),
        ] {
            let v = json!({ "outcome": outcome, "start_time_millis": 1, "end_time_millis": 2, "phases": [] });
            assert_eq!(TestRecord::parse(&v).unwrap().verdict, verdict, "{outcome}");
        }
        let v = json!({ "outcome": "pass", "start_time_millis": 1, "end_time_millis": 2, "phases": [] });
        assert_eq!(
            err(&v),
            r#"outcome: expected one of "PASS", "FAIL", "ERROR", "TIMEOUT", "ABORTED", found "pass""#
        );
    }

    #[test]
    fn openhtf_errors_name_the_field() {
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "phase outcome",
                Box::new(|v| v["phases"][1]["outcome"] = json!("REPEAT")),
                r#"phases[1].outcome: expected one of "PASS", "FAIL", "SKIP", "ERROR", found "REPEAT""#,
            ),
            (
                "dimensioned value",
                Box::new(|v| {
                    v["phases"][1]["measurements"]["tx_dbm"]["measured_value"] = json!([[1, 2.0]])
                }),
                "phases[1].measurements.tx_dbm.measured_value: expected a number, string or boolean, found an array",
            ),
            (
                "missing value",
                Box::new(|v| {
                    v["phases"][0]["measurements"]["vbat"]
                        .as_object_mut()
                        .unwrap()
                        .remove("measured_value");
                }),
                "phases[0].measurements.vbat.measured_value: is required",
            ),
            (
                "millis type",
                Box::new(|v| v["start_time_millis"] = json!(-5)),
                "start_time_millis: expected a non-negative integer (milliseconds since the Unix epoch), found a number",
            ),
            (
                "end before start",
                Box::new(|v| v["end_time_millis"] = json!(1_772_355_599_999_u64)),
                "end_time_millis: is before start_time_millis",
            ),
            (
                "dut_id type",
                Box::new(|v| v["dut_id"] = json!(123)),
                "dut_id: expected a string, found a number",
            ),
            (
                "test_version type",
                Box::new(|v| v["metadata"]["test_version"] = json!(7)),
                "metadata.test_version: expected a string, found a number",
            ),
            (
                "validators type",
                Box::new(|v| {
                    v["phases"][1]["measurements"]["rssi"]["validators"] = json!("x >= 1")
                }),
                "phases[1].measurements.rssi.validators: expected an array, found a string",
            ),
            (
                "units suffix type",
                Box::new(|v| v["phases"][1]["measurements"]["rssi"]["units"]["suffix"] = json!(1)),
                "phases[1].measurements.rssi.units.suffix: expected a string, found a number",
            ),
            (
                "odd measurement key",
                Box::new(|v| {
                    v["phases"][2]["measurements"] = json!({ "a b": { "outcome": "MAYBE" } })
                }),
                r#"phases[2].measurements["a b"].outcome: expected one of "PASS", "FAIL", "PARTIALLY_SET", "UNSET", found "MAYBE""#,
            ),
            (
                "empty measurement key",
                Box::new(|v| {
                    v["phases"][2]["measurements"] =
                        json!({ "": { "outcome": "PASS", "measured_value": 1 } })
                }),
                r#"phases[2].measurements[""]: must not be empty"#,
            ),
            (
                "phase not an object",
                Box::new(|v| v["phases"][2] = json!("teardown")),
                "phases[2]: expected an object, found a string",
            ),
        ];
        for (name, edit, expected) in cases {
            let mut v = openhtf_record();
            edit(&mut v);
            assert_eq!(err(&v), expected, "{name}");
        }
    }

    #[test]
    fn openhtf_pass_verdict_with_failed_measurement_is_inconsistent() {
        let mut v = openhtf_record();
        v["outcome"] = json!("PASS");
        v["phases"][1]["outcome"] = json!("PASS");
        assert_eq!(
            err(&v),
            "phases[1].measurements.tx_dbm.outcome: verdict is pass but measurement 'tx_dbm' of step 'rf_power' failed"
        );
        v["phases"][1]["measurements"]["tx_dbm"]["outcome"] = json!("PASS");
        assert_eq!(
            err(&v),
            "phases[1].measurements.tx_dbm.measured_value: verdict is pass but measurement 'tx_dbm' of step \
             'rf_power' = 21.7 is outside [10, 20]"
        );
    }

    #[test]
    fn validator_strings() {
        let cases: &[(&str, Option<Limits>)] = &[
            ("1.0 <= x <= 2.0", Some((Some(1.0), Some(2.0)))),
            ("1 < x < 2", Some((Some(1.0), Some(2.0)))),
            ("x >= 3", Some((Some(3.0), None))),
            ("x > 3", Some((Some(3.0), None))),
            ("x <= -1e-05", Some((None, Some(-1e-5)))),
            ("3 <= x", Some((Some(3.0), None))),
            ("4 >= x", Some((None, Some(4.0)))),
            ("x == 5", Some((Some(5.0), Some(5.0)))),
            (
                "0 <= Marginal:1 <= x <= Marginal:9 <= 10",
                Some((Some(0.0), Some(10.0))),
            ),
            ("Marginal:1 <= x", None),
            ("x <= inf", None),
            ("nan <= x", None),
            ("'x' is within 5% of 10. Marginal: None% of 10", None),
            ("'x' matches /abc/", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_validator(text), *expected, "{text}");
        }
    }

    #[test]
    fn validation_errors_name_the_field() {
        let long = "n".repeat(MAX_NAME_CHARS + 1);
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "root type",
                Box::new(|v| *v = json!([1])),
                "$: expected an object, found an array",
            ),
            (
                "missing verdict",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("verdict");
                }),
                "verdict: is required",
            ),
            (
                "null verdict",
                Box::new(|v| v["verdict"] = json!(null)),
                "verdict: expected a string, found null",
            ),
            (
                "bad verdict",
                Box::new(|v| v["verdict"] = json!("PASS")),
                r#"verdict: expected one of "pass", "fail", "error", "aborted", found "PASS""#,
            ),
            (
                "missing steps",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("steps");
                }),
                "steps: is required",
            ),
            (
                "steps type",
                Box::new(|v| v["steps"] = json!({})),
                "steps: expected an array, found an object",
            ),
            (
                "bad timestamp",
                Box::new(|v| v["started_at"] = json!("2026-03-01 10:00")),
                r#"started_at: expected an RFC 3339 timestamp, found "2026-03-01 10:00""#,
            ),
            (
                "timestamp type",
                Box::new(|v| v["ended_at"] = json!(1_772_355_600)),
                "ended_at: expected a string, found a number",
            ),
            (
                "impossible date",
                Box::new(|v| v["ended_at"] = json!("2026-02-30T00:00:00Z")),
                r#"ended_at: expected an RFC 3339 timestamp, found "2026-02-30T00:00:00Z""#,
            ),
            (
                "year out of range after UTC",
                Box::new(|v| v["started_at"] = json!("0000-01-01T00:00:00+01:00")),
                "started_at: timestamp out of range (years 0000 to 9999 in UTC)",
            ),
            (
                "ended before started",
                Box::new(|v| v["ended_at"] = json!("2026-03-01T08:59:59Z")),
                "ended_at: is before started_at",
            ),
            (
                "unknown top-level field",
                Box::new(|v| v["dut_id"] = json!("x")),
                "dut_id: unknown field",
            ),
            (
                "empty serial",
                Box::new(|v| v["serial"] = json!("")),
                "serial: must not be empty",
            ),
            (
                "serial type",
                Box::new(|v| v["serial"] = json!(400)),
                "serial: expected a string, found a number",
            ),
            (
                "unknown step field",
                Box::new(|v| v["steps"][1]["duration"] = json!(3)),
                "steps[1].duration: unknown field",
            ),
            (
                "unknown measurement field, odd name",
                Box::new(|v| v["steps"][0]["measurements"][1]["lower limit"] = json!(3)),
                r#"steps[0].measurements[1]["lower limit"]: unknown field"#,
            ),
            (
                "empty step name",
                Box::new(|v| v["steps"][2]["name"] = json!("")),
                "steps[2].name: must not be empty",
            ),
            (
                "long step name",
                Box::new(move |v| v["steps"][2]["name"] = json!(long.clone())),
                "steps[2].name: must be at most 128 characters",
            ),
            (
                "control char in measurement name",
                Box::new(|v| v["steps"][0]["measurements"][0]["name"] = json!("tx\u{1b}[31m")),
                "steps[0].measurements[0].name: must not contain control characters",
            ),
            (
                "missing measurement name",
                Box::new(|v| {
                    v["steps"][0]["measurements"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("name");
                }),
                "steps[0].measurements[0].name: is required",
            ),
            (
                "long unit",
                Box::new(|v| v["steps"][0]["measurements"][0]["unit"] = json!("u".repeat(33))),
                "steps[0].measurements[0].unit: must be at most 32 characters",
            ),
            (
                "empty unit",
                Box::new(|v| v["steps"][0]["measurements"][0]["unit"] = json!("")),
                "steps[0].measurements[0].unit: must not be empty",
            ),
            (
                "value type",
                Box::new(|v| v["steps"][0]["measurements"][1]["value"] = json!(null)),
                "steps[0].measurements[1].value: expected a number, string or boolean, found null",
            ),
            (
                "value object",
                Box::new(|v| v["steps"][0]["measurements"][1]["value"] = json!({"v": 1})),
                "steps[0].measurements[1].value: expected a number, string or boolean, found an object",
            ),
            (
                "low type",
                Box::new(|v| v["steps"][0]["measurements"][0]["low"] = json!("10")),
                "steps[0].measurements[0].low: expected a number, found a string",
            ),
            (
                "low above high",
                Box::new(|v| v["steps"][0]["measurements"][0]["low"] = json!(25)),
                "steps[0].measurements[0].low: low limit 25 is greater than high limit 20",
            ),
            (
                "limits on text",
                Box::new(|v| v["steps"][0]["measurements"][1]["high"] = json!(1)),
                "steps[0].measurements[1].high: limits are only allowed on numeric values",
            ),
            (
                "measurement outcome",
                Box::new(|v| v["steps"][0]["measurements"][1]["outcome"] = json!("skip")),
                r#"steps[0].measurements[1].outcome: expected one of "pass", "fail", found "skip""#,
            ),
            (
                "step outcome",
                Box::new(|v| v["steps"][0]["outcome"] = json!("passed")),
                r#"steps[0].outcome: expected one of "pass", "fail", "skip", "error", found "passed""#,
            ),
            (
                "short hash",
                Box::new(|v| v["raw_log_sha256"] = json!("abcd")),
                "raw_log_sha256: expected exactly 64 hexadecimal characters",
            ),
            (
                "non-hex hash",
                Box::new(|v| v["raw_log_sha256"] = json!("g".repeat(64))),
                "raw_log_sha256: expected exactly 64 hexadecimal characters",
            ),
            (
                "hash type",
                Box::new(|v| v["raw_log_sha256"] = json!(12)),
                "raw_log_sha256: expected a string, found a number",
            ),
            (
                "empty fixture version",
                Box::new(|v| v["fixture_version"] = json!("")),
                "fixture_version: must not be empty",
            ),
            (
                "measurements missing",
                Box::new(|v| {
                    v["steps"][2]
                        .as_object_mut()
                        .unwrap()
                        .remove("measurements");
                }),
                "steps[2].measurements: is required",
            ),
            (
                "text value with control characters",
                Box::new(|v| v["steps"][0]["measurements"][1]["value"] = json!("a\nb")),
                "steps[0].measurements[1].value: must not contain control characters",
            ),
            (
                "long text value",
                Box::new(|v| {
                    v["steps"][0]["measurements"][1]["value"] =
                        json!("x".repeat(MAX_TEXT_CHARS + 1))
                }),
                "steps[0].measurements[1].value: must be at most 1024 characters",
            ),
            (
                "source format",
                Box::new(|v| v["source_format"] = json!("junit")),
                r#"source_format: expected one of "touchmark", "openhtf", found "junit""#,
            ),
        ];
        for (name, edit, expected) in cases {
            let mut v = touchmark_record();
            edit(&mut v);
            assert_eq!(err(&v), expected, "{name}");
        }
    }

    #[test]
    fn error_variants_and_paths() {
        let e = err_after(|v| v["steps"][0]["measurements"][1]["value"] = json!([]));
        assert!(matches!(e, TestRecordError::Malformed { .. }));
        assert_eq!(e.path(), "steps[0].measurements[1].value");
        let e = err_after(|v| v["ended_at"] = json!("2000-01-01T00:00:00Z"));
        assert!(matches!(e, TestRecordError::Inconsistent { .. }));
        let e = err_after(|v| v["steps"] = json!(vec![json!({}); MAX_STEPS + 1]));
        assert!(matches!(e, TestRecordError::TooLarge { .. }));
        assert_eq!(
            e.to_string(),
            "steps: at most 500 steps are allowed, found 501"
        );
    }

    #[test]
    fn size_limits() {
        let measurement = json!({ "name": "m", "value": 1, "outcome": "pass" });
        let step = |n: usize| json!({ "name": "s", "outcome": "pass", "measurements": vec![measurement.clone(); n] });

        let e = err_after(|v| v["steps"] = json!([step(1), step(MAX_MEASUREMENTS_PER_STEP + 1)]));
        assert_eq!(
            e.to_string(),
            "steps[1].measurements: at most 500 measurements per step are allowed, found 501"
        );

        // 20 full steps are exactly the record limit; one more measurement is too many.
        let mut steps = vec![step(MAX_MEASUREMENTS_PER_STEP); 20];
        let mut v = touchmark_record();
        v["steps"] = json!(steps.clone());
        assert_eq!(TestRecord::parse(&v).unwrap().steps.len(), 20);
        steps.push(step(1));
        v["steps"] = json!(steps);
        assert_eq!(
            err(&v),
            "steps[20].measurements: at most 10000 measurements per record are allowed"
        );

        // Exactly the step limit is fine.
        let mut v = touchmark_record();
        v["steps"] = json!(vec![step(0); MAX_STEPS]);
        assert_eq!(TestRecord::parse(&v).unwrap().steps.len(), MAX_STEPS);
    }

    #[test]
    fn pass_verdict_must_be_consistent() {
        let e = err_after(|v| v["steps"][1]["outcome"] = json!("error"));
        assert_eq!(
            e.to_string(),
            "steps[1].outcome: verdict is pass but step 'self_test' has outcome error"
        );
        assert!(matches!(e, TestRecordError::Inconsistent { .. }));

        let e = err_after(|v| v["steps"][0]["measurements"][1]["outcome"] = json!("fail"));
        assert_eq!(
            e.to_string(),
            "steps[0].measurements[1].outcome: verdict is pass but measurement 'antenna' of step 'rf_power' failed"
        );

        let e = err_after(|v| v["steps"][0]["measurements"][0]["value"] = json!(21.7));
        assert_eq!(
            e.to_string(),
            "steps[0].measurements[0].value: verdict is pass but measurement 'tx_dbm' of step 'rf_power' = 21.7 \
             is outside [10, 20]"
        );

        let e = err_after(|v| {
            v["steps"][0]["measurements"][0]
                .as_object_mut()
                .unwrap()
                .remove("high");
            v["steps"][0]["measurements"][0]["value"] = json!(9.5);
        });
        assert_eq!(
            e.to_string(),
            "steps[0].measurements[0].value: verdict is pass but measurement 'tx_dbm' of step 'rf_power' = 9.5 \
             is below the low limit 10"
        );

        // Limits are inclusive.
        let mut v = touchmark_record();
        v["steps"][0]["measurements"][0]["value"] = json!(20);
        assert!(TestRecord::parse(&v).is_ok());
    }

    #[test]
    fn a_failing_verdict_is_a_valid_failure() {
        let mut v = touchmark_record();
        v["verdict"] = json!("fail");
        v["steps"][0]["outcome"] = json!("fail");
        v["steps"][0]["measurements"][0]["value"] = json!(21.7);
        v["steps"][0]["measurements"][0]["outcome"] = json!("fail");
        let r = TestRecord::parse(&v).unwrap();
        assert!(!r.passed());
        assert_eq!(
            r.failure_summary().as_deref(),
            Some("step 'rf_power': measurement 'tx_dbm' = 21.7 outside [10, 20]")
        );

        let mut v = touchmark_record();
        v["verdict"] = json!("fail");
        v["steps"][0]["measurements"][1]["outcome"] = json!("fail");
        assert_eq!(
            TestRecord::parse(&v).unwrap().failure_summary().as_deref(),
            Some("step 'rf_power': measurement 'antenna' = \"internal\" failed")
        );

        let mut v = touchmark_record();
        v["verdict"] = json!("error");
        v["steps"][1]["outcome"] = json!("error");
        assert_eq!(
            TestRecord::parse(&v).unwrap().failure_summary().as_deref(),
            Some("step 'self_test' ended with an error")
        );

        let mut v = touchmark_record();
        v["verdict"] = json!("aborted");
        assert_eq!(
            TestRecord::parse(&v).unwrap().failure_summary().as_deref(),
            Some("test was aborted")
        );
    }

    #[test]
    fn round_trip_through_normalized_json() {
        let r = TestRecord::parse(&touchmark_record()).unwrap();
        let normalized = r.to_json();
        assert_eq!(normalized["started_at"], "2026-03-01T09:00:00Z");
        assert_eq!(normalized["ended_at"], "2026-03-01T09:00:42.5Z");
        assert_eq!(
            normalized["raw_log_sha256"],
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(normalized["source_format"], "touchmark");
        assert!(
            normalized["steps"][1]["measurements"][0]
                .get("unit")
                .is_none()
        );
        assert_eq!(TestRecord::parse(&normalized).unwrap(), r);
        // Through JSON text too, as when the record is read back from the database.
        let text = serde_json::to_string(&normalized).unwrap();
        let reread = TestRecord::parse(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(reread, r);
        assert_eq!(reread.sha256(), r.sha256());

        let r = TestRecord::parse(&openhtf_record()).unwrap();
        assert_eq!(TestRecord::parse(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn sha256_is_stable_across_key_order_and_offsets() {
        let r = TestRecord::parse(&touchmark_record()).unwrap();
        // The same record written with reversed key order, other whitespace and other time offsets.
        let text = r#"{"steps":[{"measurements":[{"outcome":"pass","high":20.0,"low":10.0,"unit":"dBm",
            "value":17.25,"name":"tx_dbm"},{"outcome":"pass","value":"internal","name":"antenna"}],
            "outcome":"pass","name":"rf_power"},{"measurements":[{"outcome":"pass","value":true,"name":"ok"}],
            "outcome":"pass","name":"self_test"},{"measurements":[],"outcome":"skip","name":"optional_calibration"}],
            "raw_log_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "fixture_version":"rf-fixture 2.3.1","ended_at":"2026-03-01T04:00:42.500-05:00",
            "started_at":"2026-03-01T09:00:00Z","serial":"SN-000400","verdict":"pass"}"#;
        let other = TestRecord::parse(&serde_json::from_str(text).unwrap()).unwrap();
        assert_eq!(other, r);
        assert_eq!(other.sha256(), r.sha256());

        // The digest is SHA-256 over the RFC 8785 form of the normalized JSON.
        let canonical = canonical::to_canonical_vec(&r.to_json()).unwrap();
        assert_eq!(r.sha256(), <[u8; 32]>::from(Sha256::digest(&canonical)));
        let canonical = String::from_utf8(canonical).unwrap();
        assert!(canonical.starts_with(r#"{"ended_at":"2026-03-01T09:00:42.5Z","fixture_version""#));
        assert!(
            canonical.contains(r#""high":20,"low":10,"name":"tx_dbm""#),
            "{canonical}"
        );

        // Any change changes the digest, the unit it names included.
        let mut changed = r.clone();
        changed.steps[0].measurements[0].value = MeasuredValue::Number(17.26);
        assert_ne!(changed.sha256(), r.sha256());
        let mut other_unit = r.clone();
        other_unit.serial = Some("SN-000402".into());
        assert_ne!(other_unit.sha256(), r.sha256());
    }

    #[test]
    fn the_unit_a_record_names_is_kept() {
        // Touchmark's shape names it `serial`, OpenHTF's `dut_id`; both normalize to `serial`.
        let r = TestRecord::parse(&touchmark_record()).unwrap();
        assert_eq!(r.serial.as_deref(), Some("SN-000400"));
        assert_eq!(r.to_json()["serial"], "SN-000400");
        let r = TestRecord::parse(&openhtf_record()).unwrap();
        assert_eq!(r.serial.as_deref(), Some("TM-000123"));
        assert_eq!(r.to_json()["serial"], "TM-000123");
        assert_eq!(TestRecord::parse(&r.to_json()).unwrap(), r);

        // A record that names none still parses (records stored before the serial was required
        // name none); provisioning refuses it.
        let mut v = touchmark_record();
        v.as_object_mut().unwrap().remove("serial");
        let r = TestRecord::parse(&v).unwrap();
        assert_eq!(r.serial, None);
        assert!(r.to_json().get("serial").is_none());
        let mut v = openhtf_record();
        v["dut_id"] = json!(null);
        assert_eq!(TestRecord::parse(&v).unwrap().serial, None);
    }
}
