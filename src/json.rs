//! Reading captured JSON bodies without building a `serde_json::Value` tree:
//! checking that a body is JSON, visiting its string values, and replacing
//! some of them in place.
//!
//! Capture (stream assembly, user ids) and privacy (redaction string by
//! string) both read bodies this way, so it sits below both of them and must
//! never import another module of this crate.
//!
//! Every walk here goes through serde_json's own parser (`deserialize_any`,
//! and `deserialize_str` for object keys, as `Value` does), so a body counts
//! as JSON exactly when `serde_json::from_slice::<Value>` would accept it.
//!
//! Walks read a `str`: the caller checks a body's UTF-8 once, as a whole,
//! where a walk over bytes would check each string on its own (a call per
//! string that costs more than the check itself for short ones). Bytes that
//! are not UTF-8 are never JSON, so nothing is lost.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Any JSON value, kept nowhere: the checking counterpart of `IgnoredAny`
/// (which skips strings and numbers without checking them as `Value` does).
pub(crate) struct Valid;

impl<'de> DeserializeSeed<'de> for Valid {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        Pick(Nothing).deserialize(d)
    }
}

struct Nothing;

impl Picker<'_> for Nothing {
    type Out = ();
}

/// An object key, read as `Value` reads keys; `F` sees it without a copy.
pub(crate) struct Key<F>(pub F);

impl<'de, R, F: FnOnce(&str) -> R> DeserializeSeed<'de> for Key<F> {
    type Value = R;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<R, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, R, F: FnOnce(&str) -> R> Visitor<'de> for Key<F> {
    type Value = R;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, s: &str) -> Result<R, E> {
        Ok((self.0)(s))
    }
}

/// What to do with the parts of one JSON value that matter to a reader; the
/// rest is checked and dropped. [`Pick`] runs it.
pub(crate) trait Picker<'de>: Sized {
    type Out: Default;

    fn string(self, _s: &str) -> Self::Out {
        Self::Out::default()
    }

    fn signed(self, _n: i64) -> Self::Out {
        Self::Out::default()
    }

    fn unsigned(self, _n: u64) -> Self::Out {
        Self::Out::default()
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        while map.next_key_seed(Key(|_: &str| ()))?.is_some() {
            map.next_value_seed(Valid)?;
        }
        Ok(Self::Out::default())
    }

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        while seq.next_element_seed(Valid)?.is_some() {}
        Ok(Self::Out::default())
    }
}

/// Reads one JSON value with a [`Picker`].
pub(crate) struct Pick<P>(pub P);

impl<'de, P: Picker<'de>> DeserializeSeed<'de> for Pick<P> {
    type Value = P::Out;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<P::Out, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, P: Picker<'de>> Visitor<'de> for Pick<P> {
    type Value = P::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<P::Out, E> {
        Ok(P::Out::default())
    }

    fn visit_i64<E>(self, n: i64) -> Result<P::Out, E> {
        Ok(self.0.signed(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<P::Out, E> {
        Ok(self.0.unsigned(n))
    }

    fn visit_f64<E>(self, _: f64) -> Result<P::Out, E> {
        Ok(P::Out::default())
    }

    fn visit_unit<E>(self) -> Result<P::Out, E> {
        Ok(P::Out::default())
    }

    fn visit_str<E>(self, s: &str) -> Result<P::Out, E> {
        Ok(self.0.string(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<P::Out, A::Error> {
        self.0.array(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<P::Out, A::Error> {
        self.0.object(map)
    }
}

/// Reads the JSON document `text` with a [`Picker`]; fails when it is not JSON.
pub(crate) fn pick<'de, P: Picker<'de>>(text: &'de str, p: P) -> Result<P::Out, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let out = Pick(p).deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

/// Whether `bytes` is one JSON document.
pub fn is_json(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(is_json_str)
}

/// Whether `text` is one JSON document.
pub fn is_json_str(text: &str) -> bool {
    let mut de = serde_json::Deserializer::from_str(text);
    Valid.deserialize(&mut de).and_then(|()| de.end()).is_ok()
}

/// The string values of the JSON document `text` (object keys excluded), in
/// document order, each with the byte range of its token (quotes included)
/// and its content. `text` must be JSON (checked with [`is_json`] or
/// `pick`); the scan relies on it and checks nothing. A string with escapes
/// is decoded by serde_json; `None` in its place would mean `text` was not JSON.
pub fn string_values(text: &str) -> impl Iterator<Item = (Range<usize>, Option<Cow<'_, str>>)> {
    let b = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || loop {
        // Outside strings, a quote can only open one.
        i += b.get(i..)?.iter().position(|&c| c == b'"')?;
        let start = i;
        let mut escaped = false;
        i += 1;
        while let Some(&c) = b.get(i) {
            match c {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        i += 1;
        let end = i.min(b.len());
        let is_key = b[end..]
            .iter()
            .find(|c| !c.is_ascii_whitespace())
            .is_some_and(|&c| c == b':');
        if is_key {
            continue;
        }
        let token = &text[start..end];
        let content = if escaped {
            serde_json::from_str::<String>(token).ok().map(Cow::Owned)
        } else {
            token.get(1..token.len() - 1).map(Cow::Borrowed)
        };
        return Some((start..end, content));
    })
}

/// The members of the top-level object of `text` whose names are in
/// `names`: for each, in document order, the index of its name and the byte
/// range of its value. Duplicated names are all listed. `text` should be
/// JSON; on anything else the scan stops where the shape breaks and returns
/// what it found before, never reading out of bounds.
pub fn top_level_members(text: &str, names: &[&str]) -> Vec<(usize, Range<usize>)> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return found;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'"') {
            return found;
        }
        let key_start = i;
        let Some((key_end, escaped)) = string_end(b, i) else {
            return found;
        };
        let raw = &text[key_start + 1..key_end - 1];
        let key: Cow<'_, str> = if escaped {
            match serde_json::from_str::<String>(&text[key_start..key_end]) {
                Ok(k) => Cow::Owned(k),
                Err(_) => return found,
            }
        } else {
            Cow::Borrowed(raw)
        };
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return found;
        }
        let start = skip_ws(b, i + 1);
        let Some(end) = value_end(b, start) else {
            return found;
        };
        if let Some(n) = names.iter().position(|n| *n == key) {
            found.push((n, start..end));
        }
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return found,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// The end (past the closing quote) of the string token opening at `i`, and
/// whether it holds escapes.
fn string_end(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        j += memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[j] == b'"' {
            return Some((j + 1, escaped));
        }
        escaped = true;
        j += 2;
    }
}

/// The end of the JSON value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i).map(|(end, _)| end),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let len = b[i..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(b.len() - i);
            (len > 0).then_some(i + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_value_accepts() {
        for text in [
            r#"{"a":[1,-2,3.5e3,true,null,"x\u00e9\"y"],"b":{}}"#,
            " \"just a string\" ",
            "[]",
            "12",
            r#"{"a":1,"a":2}"#,
            "1e400",
            r#""\ud800""#,
            r#"{"a":"\ud83d\ude00"}"#,
            "{\"a\":\"\u{e9}\"}",
            "[1,]",
            "{\"a\" 1}",
            "[1] x",
            "",
            "nul",
            "\"tab\there\"",
        ] {
            assert_eq!(
                is_json(text.as_bytes()),
                serde_json::from_str::<serde_json::Value>(text).is_ok(),
                "{text}"
            );
        }
        assert!(!is_json(b"[\"\xff\"]"));
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(!is_json(deep.as_bytes()));
    }

    #[test]
    fn finds_string_values_in_order() {
        let text = r#"{"k": "a", "arr" : ["b\"q", {"inner":"c"}, 1, ""], "key2" :"d\u00e9" }"#;
        let found: Vec<(String, String)> = string_values(text)
            .map(|(r, s)| (text[r].to_string(), s.unwrap().into_owned()))
            .collect();
        let expect = [
            (r#""a""#, "a"),
            (r#""b\"q""#, "b\"q"),
            (r#""c""#, "c"),
            (r#""""#, ""),
            (r#""d\u00e9""#, "d\u{e9}"),
        ];
        assert_eq!(found, expect.map(|(t, s)| (t.to_string(), s.to_string())));
        assert_eq!(string_values("[1, true]").count(), 0);
        assert_eq!(string_values("\"x\"").count(), 1);
    }

    #[test]
    fn finds_top_level_members_only() {
        let text = r#" {"model":"m","messages":[{"user":"nested"}],"us\u0065r" : "a\"b",
            "meta":{"user":"x"},"user":42,"safety_identifier":{"k":[1,"}"]} }"#;
        let found: Vec<(usize, &str)> = top_level_members(text, &["user", "safety_identifier"])
            .into_iter()
            .map(|(n, r)| (n, &text[r]))
            .collect();
        assert_eq!(
            found,
            [(0, r#""a\"b""#), (0, "42"), (1, r#"{"k":[1,"}"]}"#)]
        );
        assert!(top_level_members("[1]", &["user"]).is_empty());
        assert!(top_level_members(r#"{"user":"#, &["user"]).is_empty());
        assert!(top_level_members(r#"{"user":"x"#, &["user"]).is_empty());
    }
}
