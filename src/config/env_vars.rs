//! Which `FLYWHEEL_*` environment variables are config overrides, which are
//! typos of one, and which belong to someone else.
//!
//! The process environment is shared: Kubernetes, for one, gives every pod of
//! a namespace variables named after each Service in it (`FLYWHEEL_PORT`,
//! `FLYWHEEL_SERVICE_HOST`, `FLYWHEEL_PORT_8080_TCP_ADDR`, ... for a Service
//! named `flywheel`). So a name that matches no key stops the start only when
//! it is close to a real one, which is what a typo looks like; anything else
//! is reported for a warning and otherwise left alone. The known keys come
//! from the raw serde structs themselves, so a key added there is overridable
//! without a second list to keep.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::{self, Visitor};
use serde::Deserialize;

use super::validate::invalid;
use super::{
    ConfigError, RawAdmin, RawAuth, RawCapture, RawDatasets, RawPrivacy, RawRetention, RawServer,
    RawUpstream,
};

/// Environment variables that start with `FLYWHEEL_` but are not config
/// overrides: secrets and CLI conveniences read by name elsewhere.
pub const RESERVED_ENV: &[&str] = &[
    "FLYWHEEL_URL",
    "FLYWHEEL_ADMIN_TOKEN",
    "FLYWHEEL_USER_HASH_SECRET",
    "FLYWHEEL_LOG",
    "FLYWHEEL_LOG_FORMAT",
    "FLYWHEEL_CONFIG",
    "FLYWHEEL_RAW_KEY",
    "FLYWHEEL_STORE_KEY",
    "FLYWHEEL_API_KEY",
];

/// Maps `FLYWHEEL_<SECTION>_<KEY>=value` onto `[section] key = value`. Section
/// names contain no underscore, so the first one splits section from key. Values
/// are read as TOML when they parse (numbers, booleans), else as strings. A
/// name close to a real one is refused as a typo; other `FLYWHEEL_*` names
/// (Kubernetes service links, for one) are returned for a warning.
pub(super) fn apply_env(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, ConfigError> {
    let secrets = secret_env_names(table, env);
    let ignored = env_names_ignored(env, &secrets)?;
    for (name, value) in env {
        let EnvName::Override { section, key } = classify(name) else {
            continue;
        };
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key, parsed);
            }
            _ => return Err(invalid(&section, "must be a table")),
        }
    }
    Ok(ignored)
}

pub(super) fn lookup_secret(env: &BTreeMap<String, String>, var: &str) -> Option<String> {
    env.get(var).filter(|v| !v.is_empty()).cloned()
}

/// The sections an override can name, each with its keys.
fn sections() -> [(&'static str, &'static [&'static str]); 8] {
    [
        ("server", fields::<RawServer>()),
        ("upstream", fields::<RawUpstream>()),
        ("capture", fields::<RawCapture>()),
        ("admin", fields::<RawAdmin>()),
        ("auth", fields::<RawAuth>()),
        ("privacy", fields::<RawPrivacy>()),
        ("retention", fields::<RawRetention>()),
        ("datasets", fields::<RawDatasets>()),
    ]
}

/// The section names, for messages.
pub(super) fn section_names() -> Vec<&'static str> {
    sections().iter().map(|(s, _)| *s).collect()
}

/// What one environment variable is to the config.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum EnvName {
    /// Not ours: the name does not start with `FLYWHEEL_` in any case.
    Foreign,
    /// A secret or CLI variable read by name elsewhere.
    Reserved,
    /// `[section] key` overridden.
    Override { section: String, key: String },
    /// Close to a real name: the start stops and suggests this one.
    Typo { suggestion: String },
    /// Starts with `FLYWHEEL_` but is nowhere near a key: warned about, then
    /// left alone.
    Ignored,
}

/// Largest edit distance, over the part after `FLYWHEEL_`, that still reads
/// as a typo. Every full key is at least ten characters long
/// (`admin_token_env`, `datasets_dir`), so two edits stay well inside one
/// word's slip and do not reach another key or a Service's name.
const MAX_TYPO_DISTANCE: usize = 2;

pub(super) fn classify(name: &str) -> EnvName {
    let upper = name.to_ascii_uppercase();
    let Some(rest_upper) = upper.strip_prefix("FLYWHEEL_") else {
        return EnvName::Foreign;
    };
    if name.starts_with("FLYWHEEL_") {
        if RESERVED_ENV.contains(&name) {
            return EnvName::Reserved;
        }
        let rest = rest_upper.to_ascii_lowercase();
        if let Some((section, key)) = rest.split_once('_') {
            let known = sections()
                .iter()
                .any(|(s, keys)| *s == section && keys.contains(&key));
            if known {
                return EnvName::Override {
                    section: section.to_string(),
                    key: key.to_string(),
                };
            }
        }
    }
    // Checked before typos so that no Service name, whatever it is close
    // to, can stop the start.
    if is_service_link(rest_upper) {
        return EnvName::Ignored;
    }
    match nearest(rest_upper) {
        Some(suggestion) => EnvName::Typo { suggestion },
        None => EnvName::Ignored,
    }
}

/// The closest real name to `rest` (upper case, after `FLYWHEEL_`), if one
/// is close enough to call `rest` a typo of it: within
/// [`MAX_TYPO_DISTANCE`] edits, or in a real section with a key that is a
/// whole-word prefix or extension of a real key (`SERVER_MAX_BODY` for
/// `SERVER_MAX_BODY_BYTES`).
fn nearest(rest: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    let mut consider = |candidate: String| {
        let d = distance(rest, &candidate);
        if d <= MAX_TYPO_DISTANCE && best.as_ref().is_none_or(|(bd, _)| d < *bd) {
            best = Some((d, candidate));
        }
    };
    for (section, keys) in sections() {
        for key in keys {
            consider(format!("{section}_{key}").to_ascii_uppercase());
        }
    }
    for reserved in RESERVED_ENV {
        if let Some(r) = reserved.strip_prefix("FLYWHEEL_") {
            consider(r.to_string());
        }
    }
    if let Some((_, found)) = best {
        return Some(format!("FLYWHEEL_{found}"));
    }
    let (section, key) = rest.split_once('_')?;
    let section = section.to_ascii_lowercase();
    let key = key.to_ascii_lowercase();
    let (_, keys) = sections().into_iter().find(|(s, _)| *s == section)?;
    keys.iter()
        .find(|k| {
            k.strip_prefix(key.as_str())
                .is_some_and(|t| t.starts_with('_'))
                || key.strip_prefix(**k).is_some_and(|t| t.starts_with('_'))
        })
        .map(|k| format!("FLYWHEEL_{section}_{k}").to_ascii_uppercase())
}

/// Whether `rest` (upper case, after `FLYWHEEL_`) has the shape of a
/// Kubernetes service link for a Service named `flywheel` or
/// `flywheel-<anything>`: `<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT[_<NAME>]`,
/// `<SVC>_PORT`, `<SVC>_PORT_<N>_<PROTO>[_ADDR|_PORT|_PROTO]`, where `<SVC>`
/// is what follows `FLYWHEEL_` in the Service's name (possibly nothing).
fn is_service_link(rest: &str) -> bool {
    let t: Vec<&str> = rest.split('_').collect();
    let n = t.len();
    if t[n - 1] == "PORT" {
        // `<SVC>_PORT`, `<SVC>_SERVICE_PORT` and `..._<PROTO>_PORT` alike.
        return true;
    }
    if n >= 2 && t[n - 2..] == ["SERVICE", "HOST"] {
        return true;
    }
    // `<SVC>_SERVICE_PORT_<NAME>`: the port's name may hold underscores
    // (Kubernetes turns its dashes into underscores).
    if t.windows(2).any(|w| w == ["SERVICE", "PORT"]) {
        return true;
    }
    // `<SVC>_PORT_<N>_<PROTO>` with an optional `_ADDR`, `_PORT` or `_PROTO`.
    let proto = |s: &str| matches!(s, "TCP" | "UDP" | "SCTP");
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let tail = match t.last() {
        Some(&("ADDR" | "PROTO")) => &t[..n - 1],
        _ => &t[..],
    };
    let m = tail.len();
    m >= 3 && tail[m - 3] == "PORT" && number(tail[m - 2]) && proto(tail[m - 1])
}

/// Edit distance (insertions, deletions, substitutions and swaps of two
/// neighbours, each counting one) between two ASCII strings.
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    // Three rows suffice: the swap looks two rows back.
    let mut before = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The names of `FLYWHEEL_*` variables that are neither overrides nor
/// reserved nor typos, for the warning; a typo is an error. Names in
/// `secrets` are variables the config itself names (`*_env` keys, such as
/// `FLYWHEEL_USER_HASH_SECRET_K0` for a previous hash key): they are read by
/// name, so they are neither typos nor worth a warning.
pub(crate) fn env_names_ignored(
    env: &BTreeMap<String, String>,
    secrets: &BTreeSet<String>,
) -> Result<Vec<String>, ConfigError> {
    let mut ignored = Vec::new();
    for name in env.keys().filter(|n| !secrets.contains(*n)) {
        match classify(name) {
            EnvName::Typo { suggestion } => {
                return Err(invalid(
                    name,
                    format!("`{name}` is not a config override; did you mean {suggestion}?"),
                ))
            }
            EnvName::Ignored => ignored.push(name.clone()),
            EnvName::Foreign | EnvName::Reserved | EnvName::Override { .. } => {}
        }
    }
    Ok(ignored)
}

/// The variable names the config refers to by its `*_env` keys, in the file
/// (`table`, at any depth: routes and previous hash keys have them too) or
/// set by an override.
pub(super) fn secret_env_names(
    table: &toml::Table,
    env: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    fn walk(v: &toml::Value, key: &str, out: &mut BTreeSet<String>) {
        match v {
            toml::Value::String(s) if key.ends_with("_env") => {
                out.insert(s.clone());
            }
            toml::Value::Table(t) => {
                for (k, v) in t {
                    walk(v, k, out);
                }
            }
            toml::Value::Array(items) => {
                for v in items {
                    walk(v, key, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for (k, v) in table {
        walk(v, k, &mut out);
    }
    for (name, value) in env {
        if let EnvName::Override { key, .. } = classify(name) {
            if key.ends_with("_env") {
                out.insert(value.clone());
            }
        }
    }
    out
}

/// The field names a derived `Deserialize` struct accepts, read from what
/// its derive passes to `deserialize_struct`.
fn fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut out: &'static [&'static str] = &[];
    // The probe always answers with an error once it has the names, so the
    // result is of no interest.
    let _ = T::deserialize(FieldProbe(&mut out));
    out
}

struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct's field names are read"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field names read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_has_its_keys() {
        for (section, keys) in sections() {
            assert!(!keys.is_empty(), "{section}");
        }
        let server = sections()[0].1;
        assert!(server.contains(&"listen") && server.contains(&"max_body_bytes"));
    }

    #[test]
    fn distance_counts_edits_and_swaps() {
        assert_eq!(distance("LISTEN", "LISTEN"), 0);
        assert_eq!(distance("LISTN", "LISTEN"), 1);
        assert_eq!(distance("UPSTRAEM", "UPSTREAM"), 1);
        assert_eq!(distance("", "AB"), 2);
        assert_eq!(distance("PORT", "URL"), 3);
    }
}
