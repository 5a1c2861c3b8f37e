//! Canonical JSON as securesystemslib encodes it (OLPC canonical JSON).
//!
//! Object keys sorted by code point, no whitespace, strings written raw (UTF-8) with only
//! `"` and `\` escaped, integers only. Floats are rejected rather than rounded: a number
//! that two implementations could print differently has no canonical form. Key ids are
//! the sha256 of this encoding, so it must match securesystemslib byte for byte.
//!
//! Note: like securesystemslib, control characters are written raw, so the output is not
//! always parseable as standard JSON; it is meant for hashing and signing.

use serde_json::Value;

/// A value that has no canonical JSON form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanonicalJsonError {
    /// Canonical JSON has integers only.
    #[error("canonical JSON has no floats, found {0}")]
    Float(String),
}

/// The canonical encoding of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, CanonicalJsonError> {
    let mut out = Vec::with_capacity(128);
    write(value, &mut out)?;
    Ok(out)
}

/// The canonical encoding of `value` as a string.
pub fn to_string(value: &Value) -> Result<String, CanonicalJsonError> {
    let bytes = to_vec(value)?;
    // Only whole UTF-8 strings and ASCII are written, so this never fails.
    Ok(String::from_utf8(bytes).unwrap_or_default())
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalJsonError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(CanonicalJsonError::Float(n.to_string()));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Byte order of UTF-8 equals code point order, which is Python's `sorted`.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Reference outputs from securesystemslib 1.6.0 `formats.encode_canonical`.
    #[test]
    fn matches_securesystemslib_vectors() {
        let cases = [
            (json!(""), r#""""#),
            (json!([1, 2, 3]), "[1,2,3]"),
            (json!([]), "[]"),
            (json!({}), "{}"),
            (json!({"A": [99]}), r#"{"A":[99]}"#),
            (json!({"x": 3, "y": 2}), r#"{"x":3,"y":2}"#),
            (
                json!({"b": null, "a": true, "c": false}),
                r#"{"a":true,"b":null,"c":false}"#,
            ),
            (
                json!({"q": "say \"hi\" \\ back"}),
                r#"{"q":"say \"hi\" \\ back"}"#,
            ),
            (json!("tab\tnew\nline"), "\"tab\tnew\nline\""),
            (json!("é☃𝄞"), "\"é☃𝄞\""),
            (
                json!({"é": 1, "z": 2, "Z": 3, "𝄞": 4, "aa": 5, "a": 6}),
                "{\"Z\":3,\"a\":6,\"aa\":5,\"z\":2,\"é\":1,\"𝄞\":4}",
            ),
            (json!(-42), "-42"),
            (json!(18446744073709551615u64), "18446744073709551615"),
            (
                json!({"n": {"m": [{"k": "v"}, [], {}]}}),
                r#"{"n":{"m":[{"k":"v"},[],{}]}}"#,
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(to_string(&value).expect("encodes"), expected, "{value}");
        }
    }

    #[test]
    fn rejects_floats() {
        assert_eq!(
            to_vec(&json!({"a": 1.5})),
            Err(CanonicalJsonError::Float("1.5".into()))
        );
        assert!(to_vec(&json!([1.0])).is_err());
    }
}
