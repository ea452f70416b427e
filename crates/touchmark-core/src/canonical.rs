//! RFC 8785 JSON Canonicalization Scheme (JCS): one byte sequence per JSON value, for hashing and signing.
//!
//! The canonical form is what log events and test records are hashed over, so two parties that hold the
//! same [`serde_json::Value`] always compute the same digest, whatever key order or whitespace the JSON
//! text they parsed had. See <https://www.rfc-editor.org/rfc/rfc8785>.
//!
//! Numbers follow RFC 8785 §3.2.2.3, which is ECMAScript's `Number.prototype.toString`:
//! - Integers (JSON numbers that `serde_json` holds as `i64`/`u64`) are accepted only when
//!   |n| ≤ 2^53, the I-JSON safe range (RFC 7493 §2.2). Beyond it a JCS verifier (which parses every
//!   number as an IEEE 754 double) would see a different value than we hashed, so such integers are
//!   refused with [`CanonicalError::UnsupportedNumber`] rather than silently rounded.
//! - Finite floating-point numbers are serialized with the ECMAScript algorithm: the shortest decimal
//!   digits that round-trip (Rust's shortest float formatting), placed in plain or exponent notation by
//!   the ECMAScript rules. The RFC 8785 Appendix B vectors are among the tests below.
//!   Serialization is exact for the double held in the `Value`; whether that double is the one the
//!   JSON text meant is up to the parser (`serde_json` rounds correctly only with its
//!   `float_roundtrip` feature).
//! - NaN and infinities cannot occur in a `serde_json::Value`; should one appear anyway (for example with
//!   unusual `serde_json` features), it is refused.

use std::cmp::Ordering;
use std::fmt::Write as _;

/// Deepest nesting of arrays and objects accepted.
///
/// `serde_json`'s parser already stops at 128 levels; values built in code are bounded too, so that
/// serialization (which recurses) cannot exhaust the stack.
pub const MAX_DEPTH: usize = 256;

/// 2^53: the largest magnitude up to which every integer is exactly representable as an IEEE 754 double.
const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// Why a value has no canonical form.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// A number that cannot be serialized exactly: an integer outside ±2^53, or a non-finite number.
    /// The field holds the number as `serde_json` prints it.
    #[error("unsupported number {0}: integers must lie within ±2^53 and numbers must be finite")]
    UnsupportedNumber(String),
    /// Arrays and objects are nested deeper than [`MAX_DEPTH`].
    #[error("value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Serializes `value` in RFC 8785 canonical form.
///
/// Object members are sorted by the UTF-16 code units of their names (RFC 8785 §3.2.3), no whitespace is
/// emitted, strings are escaped minimally (§3.2.2.2) and numbers are formatted as ECMAScript does
/// (§3.2.2.3).
///
/// # Errors
///
/// [`CanonicalError::UnsupportedNumber`] for an integer outside ±2^53 or a non-finite number, and
/// [`CanonicalError::TooDeep`] for nesting deeper than [`MAX_DEPTH`].
pub fn to_canonical_vec(value: &serde_json::Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = String::new();
    write_value(&mut out, value, 0)?;
    Ok(out.into_bytes())
}

fn write_value(
    out: &mut String,
    value: &serde_json::Value,
    depth: usize,
) -> Result<(), CanonicalError> {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(CanonicalError::TooDeep);
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            if depth >= MAX_DEPTH {
                return Err(CanonicalError::TooDeep);
            }
            // RFC 8785 §3.2.3: sort by UTF-16 code units, not by UTF-8 bytes or code points. The two
            // orders differ once characters above U+FFFF (surrogate pairs, 0xD800..) meet characters in
            // U+E000..U+FFFF.
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| utf16_cmp(a.0, b.0));
            out.push('{');
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                write_value(out, member, depth + 1)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Compares two strings by their UTF-16 code units.
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// RFC 8785 §3.2.2.2: escape `"`, `\` and the C0 controls; everything else is literal UTF-8.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0C}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &serde_json::Number) -> Result<(), CanonicalError> {
    let unsupported = || CanonicalError::UnsupportedNumber(n.to_string());
    if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return Err(unsupported());
        }
        let _ = write!(out, "{u}");
        return Ok(());
    }
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(unsupported());
        }
        let _ = write!(out, "{i}");
        return Ok(());
    }
    match n.as_f64() {
        Some(f) if f.is_finite() => {
            write_es_number(out, f);
            Ok(())
        }
        _ => Err(unsupported()),
    }
}

/// Formats a finite double as ECMAScript's `Number.prototype.toString` does (ECMA-262
/// `Number::toString`, referenced by RFC 8785 §3.2.2.3).
///
/// The caller guarantees `f` is finite.
fn write_es_number(out: &mut String, f: f64) {
    if f == 0.0 {
        // Both +0 and -0 print as "0".
        out.push('0');
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    let (digits, exponent) = shortest_digits(f.abs());
    // ECMA-262 names: the value is 0.digits × 10^n, with k digits.
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let n = exponent + 1;
    if k <= n && n <= 21 {
        // Integer with trailing zeros, e.g. 295147905179352830000.
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        // Decimal point inside the digits, e.g. 333333333.3333332.
        let (int, frac) = digits.split_at(n as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        // Small magnitude with leading zeros, e.g. 0.000001.
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        // Exponent notation, e.g. 1e+21, 9.999999999999997e-7.
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = n - 1;
        let _ = write!(
            out,
            "e{}{}",
            if e < 0 { '-' } else { '+' },
            e.unsigned_abs()
        );
    }
}

/// The shortest digit string `s` (no trailing zeros) and decimal exponent `e` with
/// `f = s[0].s[1..] × 10^e`, as ECMA-262 `Number::toString` chooses them: as few digits as round-trip,
/// then the closest to `f`, then, on a tie, the even one.
///
/// Rust's `{:e}` without a precision prints the shortest round-trip digits and the closest of them, but
/// breaks exact ties upwards (RFC 8785 Appendix B: `1424953923781206.25` must print as `...206.2`);
/// ties are detected from the exact decimal expansion and resolved to even. The caller guarantees `f`
/// is finite and positive.
fn shortest_digits(f: f64) -> (String, i32) {
    let (digits, exponent) = split_sci(&format!("{f:e}"));
    let k = digits.len();
    // A tie needs the exact value to have exactly k + 1 significant digits, the last being 5. Check
    // the correctly rounded (k + 1)-digit form first, so the exact expansion (up to 767 digits) is
    // only computed when a tie is possible.
    let (rounded, _) = split_sci(&format!("{f:.k$e}"));
    if !rounded.ends_with('5') {
        return (digits, exponent);
    }
    let (exact, exact_exponent) = split_sci(&format!("{f:.800e}"));
    let is_tie = exact_exponent == exponent
        && exact.as_bytes().get(k) == Some(&b'5')
        && exact.len() == k + 1;
    if !is_tie
        || digits
            .bytes()
            .last()
            .is_some_and(|d| (d - b'0').is_multiple_of(2))
    {
        return (digits, exponent);
    }
    // Rust picked the odd neighbour; the other one is the truncation or the truncation + 1.
    let truncated = &exact[..k];
    let other = if truncated == digits {
        let mut bytes = digits.clone().into_bytes();
        match bytes.last_mut() {
            // An odd digit other than 9 increments without a carry.
            Some(last) if *last < b'9' => *last += 1,
            _ => return (digits, exponent),
        }
        String::from_utf8(bytes).unwrap_or_default()
    } else {
        truncated.to_owned()
    };
    // Keep the even neighbour only if it has the same length and still round-trips.
    let (head, tail) = other.split_at(1.min(other.len()));
    let round_trips = format!("{head}.{tail}e{exponent}").parse::<f64>() == Ok(f);
    if other.len() == k && !other.ends_with('0') && round_trips {
        (other, exponent)
    } else {
        (digits, exponent)
    }
}

/// Splits Rust's `{:e}` output (`"1.2345e-7"`) into its significant digits without trailing zeros
/// (`"12345"`) and its exponent (`-7`).
fn split_sci(sci: &str) -> (String, i32) {
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (digits, exponent)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::{Value, json};

    use super::*;

    fn canon(v: &Value) -> String {
        String::from_utf8(to_canonical_vec(v).unwrap()).unwrap()
    }

    fn canon_text(text: &str) -> String {
        canon(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn rfc8785_sorting_example() {
        // RFC 8785 §3.2.3.
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
            \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
            \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(canon_text(input), expected);
    }

    #[test]
    fn utf16_order_differs_from_utf8_order() {
        // U+FB33 is one code unit 0xFB33; U+1F600 is the pair 0xD83D 0xDE00, so it sorts first in
        // UTF-16 even though its UTF-8 bytes (F0 ..) sort after U+FB33's (EF ..).
        assert!("\u{fb33}".as_bytes() < "\u{1f600}".as_bytes());
        let v = json!({"\u{fb33}": 1, "\u{1f600}": 2});
        assert_eq!(canon(&v), "{\"\u{1f600}\":2,\"\u{fb33}\":1}");
    }

    #[test]
    fn rfc8785_string_example() {
        // RFC 8785 §3.2.2.2 (Appendix-style example of string escaping).
        let input = r#"{"string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/"}"#;
        assert_eq!(
            canon_text(input),
            "{\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    #[test]
    fn rfc8785_full_example() {
        // RFC 8785 §3.2.2 example. serde_json's default float parser is not always correctly rounded
        // (it reads 333333333.33333329 one ulp off unless its `float_roundtrip` feature is on), so
        // that number is parsed with Rust's correctly rounded parser and patched in.
        let mut v: Value = serde_json::from_str(FULL_EXAMPLE).unwrap();
        let exact: f64 = "333333333.33333329".parse().unwrap();
        v["numbers"][0] = Value::from(exact);
        assert_eq!(
            canon(&v),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\
             \"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    const FULL_EXAMPLE: &str = r#"{
            "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;

    #[test]
    fn control_characters() {
        let s: String = (0u8..0x20)
            .map(char::from)
            .chain(['\u{7f}', '/', 'é'])
            .collect();
        let expected = "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\
            \\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\
            \\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\u{7f}/é\"";
        assert_eq!(canon(&Value::String(s)), expected);
    }

    #[test]
    fn nested_objects_and_arrays() {
        let input = r#" { "b" : [ 1 , { "z" : null , "a" : [ ] } , "x" ] , "a" : { } , "c" : { "y": true, "x": false } } "#;
        assert_eq!(
            canon_text(input),
            r#"{"a":{},"b":[1,{"a":[],"z":null},"x"],"c":{"x":false,"y":true}}"#
        );
    }

    #[test]
    fn integers_within_safe_range() {
        assert_eq!(canon(&json!(0)), "0");
        assert_eq!(canon(&json!(-17)), "-17");
        assert_eq!(canon(&json!(9_007_199_254_740_992_u64)), "9007199254740992");
        assert_eq!(
            canon(&json!(-9_007_199_254_740_992_i64)),
            "-9007199254740992"
        );
    }

    #[test]
    fn integers_outside_safe_range_are_refused() {
        for v in [
            json!(9_007_199_254_740_993_u64),
            json!(-9_007_199_254_740_993_i64),
            json!(u64::MAX),
            json!(i64::MIN),
        ] {
            assert!(
                matches!(
                    to_canonical_vec(&v),
                    Err(CanonicalError::UnsupportedNumber(_))
                ),
                "{v}"
            );
        }
        // Inside a structure too.
        let v = json!({"a": [1, u64::MAX]});
        assert_eq!(
            to_canonical_vec(&v),
            Err(CanonicalError::UnsupportedNumber(u64::MAX.to_string()))
        );
    }

    #[test]
    fn rfc8785_appendix_b_number_vectors() {
        let vectors: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for &(bits, expected) in vectors {
            let f = f64::from_bits(bits);
            let v = Value::Number(serde_json::Number::from_f64(f).unwrap());
            assert_eq!(canon(&v), expected, "{bits:016x}");
        }
    }

    #[test]
    fn more_float_formatting() {
        for (f, expected) in [
            (1.5, "1.5"),
            (-0.5, "-0.5"),
            (100.0, "100"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.25e-6, "0.00000125"),
            (1e-7, "1e-7"),
            (21.7, "21.7"),
        ] {
            let v = Value::Number(serde_json::Number::from_f64(f).unwrap());
            assert_eq!(canon(&v), expected, "{f}");
        }
    }

    #[test]
    fn floats_round_trip_through_canonical_text() {
        // Whatever digits are chosen, parsing them back must give the same double.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let f = f64::from_bits(state);
            let Some(n) = serde_json::Number::from_f64(f) else {
                continue;
            };
            let text = canon(&Value::Number(n));
            let back: f64 = text.parse().unwrap();
            assert_eq!(
                back.to_bits(),
                if f == 0.0 { 0 } else { f.to_bits() },
                "{text}"
            );
        }
    }

    #[test]
    fn depth_is_bounded() {
        let mut v = json!(1);
        for _ in 0..MAX_DEPTH {
            v = json!([v]);
        }
        assert!(to_canonical_vec(&v).is_ok());
        let v = json!({ "a": v });
        assert_eq!(to_canonical_vec(&v), Err(CanonicalError::TooDeep));
    }

    #[test]
    fn scalars() {
        assert_eq!(canon(&json!(null)), "null");
        assert_eq!(canon(&json!(true)), "true");
        assert_eq!(canon(&json!("")), "\"\"");
        assert_eq!(canon(&json!([])), "[]");
        assert_eq!(canon(&json!({})), "{}");
    }
}
