//! A minimal JSON writer: values built in memory, written with RFC 8259 string escaping.

use std::fmt::Write;

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer (written exactly; JSON readers with 53-bit numbers may round large ids).
    Int(i128),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in the order given.
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    /// An integer value.
    pub fn int(n: impl Into<i128>) -> Json {
        Json::Int(n.into())
    }

    /// `null` for `None`, else the value `f` makes.
    pub fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Json) -> Json {
        v.map_or(Json::Null, f)
    }

    /// The value as compact JSON text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Str(s) => escape(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    escape(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// Writes `s` as a JSON string: quotes, backslashes and control characters escaped, and
/// so are C1 controls, DEL and the characters a terminal must not get raw (bidi and other
/// format characters, U+2028/U+2029: see `text::is_unsafe`), so `--json` output is as safe
/// to print as the text.
pub fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if crate::text::is_unsafe(c) => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let v = Json::Obj(vec![("a\"b", Json::str("x\\y\n\u{1}\u{e9}"))]);
        assert_eq!(v.render(), r#"{"a\"b":"x\\y\n\u0001é"}"#);
    }

    #[test]
    fn c1_controls_and_format_characters_are_escaped() {
        let v = Json::str("a\u{80}\u{9b}\u{9f}\u{a0}b\u{202e}\u{2066}\u{200f}\u{2028}\u{e0041}");
        // U+00A0 (no-break space) is not a control: it stays as it is.
        assert_eq!(
            v.render(),
            "\"a\\u0080\\u009b\\u009f\u{a0}b\\u202e\\u2066\\u200f\\u2028\\udb40\\udc41\""
        );
    }

    #[test]
    fn values_nest() {
        let v = Json::Arr(vec![
            Json::Null,
            Json::Bool(true),
            Json::int(-3),
            Json::Obj(vec![]),
        ]);
        assert_eq!(v.render(), "[null,true,-3,{}]");
    }
}
