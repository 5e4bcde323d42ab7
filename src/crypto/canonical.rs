//! RFC 8785 canonical JSON (JCS): the one byte form artifacts and audit rows are hashed in.

use serde::Serialize;

/// Serialize a value as RFC 8785 canonical JSON.
pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json_canonicalizer::to_vec(value)
}

pub fn to_string<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    serde_json_canonicalizer::to_string(value)
}

/// Write a JSON value as RFC 8785 canonical JSON onto the end of `out`: the
/// same bytes as [`to_vec`], written without the general serializer's buffering
/// (audit rows are written and checked a million at a time). Strings are
/// escaped as serde_json escapes them, which is what JCS asks; members are
/// sorted by the UTF-16 code units of their names; numbers go through the
/// general serializer, so they are formatted exactly as it formats them.
pub fn write_value(value: &serde_json::Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => serde_json_canonicalizer::to_writer(n, out)?,
        Value::String(s) => serde_json::to_writer(&mut *out, s)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// [`write_value`] into a string of its own: [`to_string`] of a JSON value,
/// faster.
pub fn value_to_string(value: &serde_json::Value) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    write_value(value, &mut out)?;
    // Only JSON text was written: ASCII punctuation and strings as serde_json
    // writes them, all UTF-8.
    String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn canon(text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap();
        to_string(&value).unwrap()
    }

    /// RFC 8785 §3.2.2: the sample with numbers, a string and literals.
    #[test]
    fn rfc8785_section_3_2_2_sample() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50,
                      2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(canon(input), expected);
    }

    /// The fast writer gives the general serializer's bytes, whatever the value.
    #[test]
    fn write_value_is_byte_for_byte_the_general_serializer() {
        let samples = [
            r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001, 1e21, 1e-7, 5.0, -0.0, 9007199254740993, 18446744073709551615, -42]}"#,
            r#"{"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\ud83d\ude00": 5, "\u0080": 6, "\u00f6": 7, "a": {"b": [], "a": {}}}"#,
            r#"["\u0000\u001f\u007f\"\\/\b\f\n\r\t", "é € 😀 \u2028", null, true, false, [[1], {"": ""}]]"#,
            r#""just a string""#,
            "12",
        ];
        for text in samples {
            let value: Value = serde_json::from_str(text).unwrap();
            let mut fast = Vec::new();
            write_value(&value, &mut fast).unwrap();
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                to_string(&value).unwrap(),
                "{text}"
            );
            assert_eq!(
                value_to_string(&value).unwrap(),
                to_string(&value).unwrap(),
                "{text}"
            );
        }
    }

    /// RFC 8785 §3.2.3: properties sorted by their UTF-16 code units.
    #[test]
    fn rfc8785_section_3_2_3_sorting() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let out = canon(input);
        let value: serde_json::Map<String, Value> = serde_json::from_str(&out).unwrap();
        let _ = value;
        let order: Vec<&str> = [
            "\r",
            "1",
            "\u{0080}",
            "\u{00f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ]
        .to_vec();
        let mut last = 0;
        for key in order {
            let needle = to_string(&key).unwrap();
            let at = out.find(&needle).unwrap();
            assert!(at >= last, "{key:?} out of order in {out}");
            last = at;
        }
    }

    /// RFC 8785 Appendix B: IEEE 754 doubles and their canonical text.
    #[test]
    fn rfc8785_appendix_b_numbers() {
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
        for (bits, expected) in vectors {
            let number = f64::from_bits(*bits);
            assert_eq!(to_string(&json!(number)).unwrap(), *expected, "{bits:016x}");
        }
    }

    #[test]
    fn nan_and_infinity_cannot_be_canonical() {
        for bits in [0x7fffffffffffffffu64, 0x7ff0000000000000] {
            // serde_json turns non-finite numbers into null in a Value; JCS must not
            // print them as numbers either way.
            let text = to_string(&f64::from_bits(bits));
            assert!(text.as_deref().map_or(true, |t| t == "null"), "{text:?}");
        }
    }

    #[test]
    fn same_document_in_any_key_order_gives_the_same_bytes() {
        let a = canon(r#"{"b":1,"a":{"y":[1,2],"x":"s"}}"#);
        let b = canon(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
        assert_eq!(a, b);
        assert_eq!(a, r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
    }
}
