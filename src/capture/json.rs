//! Reading captured JSON bodies without building a `serde_json::Value` tree:
//! checking that a body is JSON, visiting its string values, and replacing
//! some of them in place.
//!
//! Every walk here goes through serde_json's own parser (`deserialize_any`,
//! and `deserialize_str` for object keys, as `Value` does), so a body counts
//! as JSON exactly when `serde_json::from_slice::<Value>` would accept it.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Accepts any JSON value and keeps nothing; calls `on_string` with every
/// string value (object keys excluded), in document order.
pub(crate) struct Strings<'f, F: FnMut(&str)> {
    pub on_string: &'f mut F,
}

impl<'de, F: FnMut(&str)> DeserializeSeed<'de> for Strings<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(&str)> Visitor<'de> for Strings<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        (self.on_string)(s);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Strings {
                on_string: &mut *self.on_string,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Key(|_: &str| ()))?.is_some() {
            map.next_value_seed(Strings {
                on_string: &mut *self.on_string,
            })?;
        }
        Ok(())
    }
}

/// Any JSON value, kept nowhere: the validating counterpart of `IgnoredAny`
/// (which skips strings and numbers without checking them as `Value` does).
pub(crate) struct Valid;

impl<'de> DeserializeSeed<'de> for Valid {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        Strings {
            on_string: &mut |_: &str| (),
        }
        .deserialize(d)
    }
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

/// Reads the JSON document `bytes` with a [`Picker`]; fails when it is not JSON.
pub(crate) fn pick<'de, P: Picker<'de>>(
    bytes: &'de [u8],
    p: P,
) -> Result<P::Out, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let out = Pick(p).deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

/// Whether `bytes` is one JSON document.
pub fn is_json(bytes: &[u8]) -> bool {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Valid.deserialize(&mut de).and_then(|()| de.end()).is_ok()
}

/// Calls `f` with every string value of the JSON document `bytes` (object
/// keys excluded), in document order. Fails when `bytes` is not JSON; `f`
/// may have seen some strings by then.
pub fn each_string(bytes: &[u8], mut f: impl FnMut(&str)) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Strings { on_string: &mut f }.deserialize(&mut de)?;
    de.end()
}

/// Rewrites string values of the JSON document `text`: `edits` holds, in
/// increasing order, the position of a string value in the order
/// [`each_string`] visits them and its new content. Everything else keeps its
/// bytes. `text` must be JSON (as checked by [`each_string`]).
pub fn replace_strings(text: &str, edits: &[(usize, String)]) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut edits = edits.iter().peekable();
    let mut copied = 0;
    let mut ordinal = 0;
    let mut i = 0;
    while i < b.len() && edits.peek().is_some() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        i += 1;
        let end = i;
        let is_key = b[end..]
            .iter()
            .find(|c| !c.is_ascii_whitespace())
            .is_some_and(|&c| c == b':');
        if is_key {
            continue;
        }
        if let Some((_, new)) = edits.next_if(|(at, _)| *at == ordinal) {
            out.push_str(&text[copied..start]);
            // A `str` always serializes.
            out.push_str(&serde_json::to_string(new.as_str()).unwrap_or_default());
            copied = end;
        }
        ordinal += 1;
    }
    out.push_str(&text[copied..]);
    out
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
    fn visits_string_values_in_order_and_replaces_them_in_place() {
        let text = r#"{"k": "a", "arr" : ["b\"q", {"inner":"c"}, 1], "key2" :"d\u00e9" }"#;
        let mut seen = Vec::new();
        each_string(text.as_bytes(), |s| seen.push(s.to_string())).unwrap();
        assert_eq!(seen, ["a", "b\"q", "c", "d\u{e9}"]);
        let out = replace_strings(text, &[(1, "B\n".into()), (3, "D".into())]);
        assert_eq!(
            out,
            r#"{"k": "a", "arr" : ["B\n", {"inner":"c"}, 1], "key2" :"D" }"#
        );
        assert_eq!(replace_strings(text, &[]), text);
        assert_eq!(replace_strings("\"x\"", &[(0, "y".into())]), "\"y\"");
    }
}
