//! Helpers shared by the integration tests that check the JSON vectors of
//! `tests/vectors/` — the same files the Python suite checks (`tests/unit/`).
//!
//! `mod common;` in each test crate; `common::vectors!("dtls.json")` embeds and parses a
//! file at compile time (the tests then run from any directory).

// each test crate uses a subset of the helpers
#![allow(dead_code, unused_macros, unused_imports)]

use serde_json::Value;

/// `tests/vectors/<file>`, embedded at compile time and parsed.
macro_rules! vectors {
    ($file:literal) => {
        $crate::common::parse(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/vectors/",
                $file
            )),
            $file,
        )
    };
}
pub(crate) use vectors;

/// Parse the text of vector file `name`.
pub fn parse(text: &str, name: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"))
}

/// Lower-case hex digits (no separators) to bytes.
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd-length hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Bytes to lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `v[key]`, which must exist.
pub fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("vector {v} has no {key:?}"))
}

/// `v[key]` as a string.
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key)
        .as_str()
        .unwrap_or_else(|| panic!("{key:?} of {v} is not a string"))
}

/// `v[key]` as hex-encoded bytes.
pub fn bytes_of(v: &Value, key: &str) -> Vec<u8> {
    unhex(str_of(v, key))
}

/// `v[key]` as a non-negative number.
pub fn usize_of(v: &Value, key: &str) -> usize {
    let n = field(v, key)
        .as_u64()
        .unwrap_or_else(|| panic!("{key:?} of {v} is not a number"));
    usize::try_from(n).expect("fits usize")
}

/// `v[key]` as a byte-sized number.
pub fn u8_of(v: &Value, key: &str) -> u8 {
    u8::try_from(usize_of(v, key)).expect("fits u8")
}

/// `v[key]` as a list.
pub fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    field(v, key)
        .as_array()
        .unwrap_or_else(|| panic!("{key:?} is not a list"))
}
