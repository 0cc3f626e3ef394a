//! PII redactor for captured traffic.
//!
//! The capture pipeline passes every piece of captured text through a
//! [`Redactor`] before it is written to the training store, so that e-mail
//! addresses, phone numbers, payment cards, IBANs, US social security numbers,
//! IP and MAC addresses and credentials never reach training data.
//!
//! Two rules hold for everything in this module:
//!
//! * It must never log, return or otherwise expose an original value. The only
//!   things that leave [`Redactor::redact`] are the rewritten text and counts
//!   per kind; errors name rules, never matched text; the `Debug` output of the
//!   configuration and of the redactor hides the hash key.
//! * It must never run on the request hot path. Redaction costs a scan of the
//!   whole text and sometimes an allocation, so it belongs in the background
//!   capture writer, where a slow message delays a write rather than a user.
//!
//! Detection is built for throughput on chat text, which is mostly prose:
//! credentials are found by one regex whose alternatives all begin with a
//! literal (so the regex engine skips prose with a literal prefilter), e-mail
//! addresses are found from each `@` (and `%40`), MAC and IPv6 addresses from
//! each `:` and `-` (Cisco's dotted MACs from a `.` with a second one five
//! bytes on), and everything numeric, bare MACs included, by a hand-written
//! scanner that only wakes up on ASCII digits. Every candidate is validated (Luhn for cards, mod-97 for
//! IBANs, the SSA's invalid ranges for SSNs, octet ranges for IPv4, the IPv6
//! grammar) before it is redacted, because false positives destroy exactly the
//! numbers (versions, prices, dates, ids) that make chat data useful.
//!
//! The detectors live one family to a file: `secrets` (the credential
//! patterns), `email`, `network` (MAC and IPv6 addresses) and `numbers`
//! (phones, cards, IBANs, SSNs and IPv4 addresses, with the cue words that
//! tell them apart); `scan` holds what they share. This file owns the
//! configuration, the custom rules, and how findings are merged and written.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use regex::Regex;
use ring::hmac;
use serde::{Deserialize, Serialize};

mod email;
mod network;
mod numbers;
mod scan;
mod secrets;

use email::scan_emails;
use network::scan_colons_and_dashes;
use numbers::scan_numbers;
use scan::may_hold_builtin_entity;
use secrets::Secrets;

/// The kind of a detected entity. Its `Display` form is the placeholder name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntityKind {
    Email,
    Phone,
    CreditCard,
    Iban,
    Ssn,
    IpAddress,
    MacAddress,
    Secret,
    /// A match of an operator-defined rule, carrying the rule's name.
    Custom(Arc<str>),
}

impl EntityKind {
    /// All built-in kinds, in the order used for counts.
    pub const BUILTIN: [EntityKind; 8] = [
        EntityKind::Email,
        EntityKind::Phone,
        EntityKind::CreditCard,
        EntityKind::Iban,
        EntityKind::Ssn,
        EntityKind::IpAddress,
        EntityKind::MacAddress,
        EntityKind::Secret,
    ];

    /// The placeholder name, e.g. `"CREDIT_CARD"`, or the rule name for a custom rule.
    pub fn as_str(&self) -> &str {
        match self {
            EntityKind::Email => "EMAIL",
            EntityKind::Phone => "PHONE",
            EntityKind::CreditCard => "CREDIT_CARD",
            EntityKind::Iban => "IBAN",
            EntityKind::Ssn => "SSN",
            EntityKind::IpAddress => "IP_ADDRESS",
            EntityKind::MacAddress => "MAC_ADDRESS",
            EntityKind::Secret => "SECRET",
            EntityKind::Custom(name) => name,
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to write in place of a detected entity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `<EMAIL>`.
    #[default]
    Replace,
    /// Every character but the last four becomes `*`, e.g. `************1111`.
    /// Values of eight characters or fewer are masked entirely, so that the
    /// kept tail never reveals half of the value or more.
    Mask,
    /// `<EMAIL:0123456789ab>`: the first 12 hex digits of
    /// HMAC-SHA256(hash_key, value), so equal values stay linkable across
    /// records without being recoverable by anyone who lacks the key.
    Hash,
}

/// Per-kind actions for the built-in kinds. Every kind defaults to [`Action::Replace`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindActions {
    pub email: Action,
    pub phone: Action,
    pub credit_card: Action,
    pub iban: Action,
    pub ssn: Action,
    pub ip_address: Action,
    pub mac_address: Action,
    pub secret: Action,
}

impl KindActions {
    /// The same action for every built-in kind.
    pub fn all(action: Action) -> KindActions {
        KindActions {
            email: action,
            phone: action,
            credit_card: action,
            iban: action,
            ssn: action,
            ip_address: action,
            mac_address: action,
            secret: action,
        }
    }

    /// The action for a built-in kind; `None` for a custom kind, whose action
    /// lives in its [`CustomRule`].
    pub fn get(&self, kind: &EntityKind) -> Option<Action> {
        Some(match kind {
            EntityKind::Email => self.email,
            EntityKind::Phone => self.phone,
            EntityKind::CreditCard => self.credit_card,
            EntityKind::Iban => self.iban,
            EntityKind::Ssn => self.ssn,
            EntityKind::IpAddress => self.ip_address,
            EntityKind::MacAddress => self.mac_address,
            EntityKind::Secret => self.secret,
            EntityKind::Custom(_) => return None,
        })
    }

    fn as_array(&self) -> [Action; BUILTIN_KINDS] {
        [
            self.email,
            self.phone,
            self.credit_card,
            self.iban,
            self.ssn,
            self.ip_address,
            self.mac_address,
            self.secret,
        ]
    }
}

/// An operator-defined pattern, e.g. internal employee ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// Placeholder name, e.g. `EMPLOYEE_ID` gives `<EMPLOYEE_ID>`.
    pub name: String,
    /// A pattern in the syntax of the `regex` crate.
    pub pattern: String,
    #[serde(default)]
    pub action: Action,
}

/// Configuration for [`Redactor::new`].
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactorConfig {
    pub actions: KindActions,
    pub custom: Vec<CustomRule>,
    /// Key for [`Action::Hash`]. It must be non-empty when any kind hashes,
    /// because an unkeyed hash of a phone number is reversed by enumeration.
    pub hash_key: Vec<u8>,
}

// The key is deliberately left out, so that logging a configuration never
// leaks it.
impl fmt::Debug for RedactorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedactorConfig")
            .field("actions", &self.actions)
            .field("custom", &self.custom)
            .field("hash_key", &format_args!("<{} bytes>", self.hash_key.len()))
            .finish()
    }
}

/// Why a [`Redactor`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("custom rule {name:?} has an invalid pattern: {source}")]
    InvalidPattern {
        name: String,
        #[source]
        source: regex::Error,
    },
    #[error("custom rule {name:?} has an invalid name: use letters, digits and '_' only")]
    InvalidRuleName { name: String },
    #[error("hash action needs a non-empty hash key")]
    MissingHashKey,
}

/// The result of [`Redactor::redact`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redacted<'a> {
    /// The redacted text; borrowed from the input when nothing was found.
    pub text: Cow<'a, str>,
    /// How many entities of each kind were replaced, in a fixed kind order,
    /// with kinds that were not found left out (so it is empty, and did not
    /// allocate, when nothing was found).
    pub counts: Vec<(EntityKind, u32)>,
}

impl Redacted<'_> {
    /// Whether anything was redacted.
    pub fn changed(&self) -> bool {
        matches!(self.text, Cow::Owned(_))
    }

    /// The number of entities replaced, over all kinds.
    pub fn total(&self) -> u32 {
        self.counts.iter().map(|(_, n)| n).sum()
    }

    /// The number of entities of one kind replaced.
    pub fn count(&self, kind: &EntityKind) -> u32 {
        self.counts
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, n)| *n)
    }
}

/// A compiled redactor: build it once and share it (it is `Send + Sync`).
pub struct Redactor {
    secrets: Secrets,
    custom: Vec<CompiledRule>,
    actions: [Action; BUILTIN_KINDS],
    hmac: Option<hmac::Key>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("actions", &self.actions)
            .field(
                "custom",
                &self.custom.iter().map(|r| &*r.name).collect::<Vec<_>>(),
            )
            .field("hash_key", &self.hmac.as_ref().map(|_| "<set>"))
            .finish()
    }
}

struct CompiledRule {
    name: Arc<str>,
    re: Regex,
    action: Action,
}

// Internal kind ids: built-ins in `EntityKind::BUILTIN` order, then custom
// rules from CUSTOM_BASE on.
const BUILTIN_KINDS: usize = 8;
const K_EMAIL: u32 = 0;
const K_PHONE: u32 = 1;
const K_CARD: u32 = 2;
const K_IBAN: u32 = 3;
const K_SSN: u32 = 4;
const K_IP: u32 = 5;
const K_MAC: u32 = 6;
const K_SECRET: u32 = 7;
const CUSTOM_BASE: u32 = 8;

/// Lower rank wins when findings overlap. Credentials come first because a
/// partly redacted key is a leaked key; custom rules come next because an
/// operator wrote them on purpose; then the kinds whose validation is
/// strongest (checksums) before the weaker ones. E-mail outranks phone because
/// an address can contain a digit run that looks like a phone number, never
/// the other way round. A MAC address outranks a phone number because its
/// shapes (six pairs, three dotted quads of hex) are exact while Cisco's
/// all-digit `0050.7966.6800` also passes the looser phone rules.
fn rank(kind: u32) -> u8 {
    match kind {
        K_SECRET => 0,
        K_CARD => 2,
        K_IBAN => 3,
        K_SSN => 4,
        K_EMAIL => 5,
        K_MAC => 6,
        K_PHONE => 7,
        K_IP => 8,
        _ => 1,
    }
}

/// A span of the text that a detector found, with its internal kind id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Finding {
    start: usize,
    end: usize,
    kind: u32,
}

impl Redactor {
    /// Compiles the built-in detectors and the custom rules.
    pub fn new(cfg: &RedactorConfig) -> Result<Redactor, RedactError> {
        let secrets = Secrets::new();

        let mut custom = Vec::with_capacity(cfg.custom.len());
        for rule in &cfg.custom {
            let valid_name = !rule.name.is_empty()
                && rule
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_name {
                return Err(RedactError::InvalidRuleName {
                    name: rule.name.clone(),
                });
            }
            let re = Regex::new(&rule.pattern).map_err(|source| RedactError::InvalidPattern {
                name: rule.name.clone(),
                source,
            })?;
            custom.push(CompiledRule {
                name: Arc::from(rule.name.as_str()),
                re,
                action: rule.action,
            });
        }

        let actions = cfg.actions.as_array();
        let hashes =
            actions.contains(&Action::Hash) || custom.iter().any(|r| r.action == Action::Hash);
        let hmac = if hashes {
            if cfg.hash_key.is_empty() {
                return Err(RedactError::MissingHashKey);
            }
            Some(hmac::Key::new(hmac::HMAC_SHA256, &cfg.hash_key))
        } else {
            None
        };

        Ok(Redactor {
            secrets,
            custom,
            actions,
            hmac,
        })
    }

    /// Redacts every detected entity. Returns the input borrowed, without
    /// allocating, when nothing is found.
    pub fn redact<'a>(&self, text: &'a str) -> Redacted<'a> {
        self.redact_with(text, true)
    }

    /// Whether a secret pattern matches anywhere in `text`. The patterns have
    /// no anchors, and their word boundaries see a quote as they see the edge
    /// of a text, so a secret inside any string of a JSON document without
    /// escapes also matches in the document: a document where nothing
    /// matches needs no secret search string by string.
    pub fn may_hold_secrets(&self, text: &str) -> bool {
        self.secrets.is_match(text)
    }

    /// [`Redactor::redact`], skipping the secret patterns when `secrets` is
    /// false (the caller has ruled them out, see [`Redactor::may_hold_secrets`]).
    pub fn redact_with<'a>(&self, text: &'a str, secrets: bool) -> Redacted<'a> {
        let mut found = Vec::new();
        if secrets {
            self.secrets.find(text, &mut found);
        }
        for (i, rule) in self.custom.iter().enumerate() {
            for m in rule.re.find_iter(text) {
                // An empty match would redact nothing and loop forever in a
                // naive scanner; the regex crate already steps past it.
                if !m.is_empty() {
                    found.push(Finding {
                        start: m.start(),
                        end: m.end(),
                        kind: CUSTOM_BASE + i as u32,
                    });
                }
            }
        }
        let bytes = text.as_bytes();
        if may_hold_builtin_entity(bytes) {
            scan_emails(bytes, &mut found);
            scan_colons_and_dashes(bytes, &mut found);
            scan_numbers(bytes, &mut found);
        }
        if found.is_empty() {
            return Redacted {
                text: Cow::Borrowed(text),
                counts: Vec::new(),
            };
        }
        self.rewrite(text, found)
    }

    /// Merges overlapping findings and writes the output. Overlapping findings
    /// become one span covering all of them, labelled by the best finding
    /// (lowest rank, then longest), so that no fragment of a losing match is
    /// left in clear text beside the winner's placeholder.
    fn rewrite<'a>(&self, text: &'a str, mut found: Vec<Finding>) -> Redacted<'a> {
        found.sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut out = String::with_capacity(text.len() + 16);
        let mut builtin_counts = [0u32; BUILTIN_KINDS];
        let mut custom_counts = vec![0u32; self.custom.len()];
        let mut copied = 0;
        let mut i = 0;
        while i < found.len() {
            let first = found[i];
            let mut end = first.end;
            let mut best = first;
            i += 1;
            while i < found.len() && found[i].start < end {
                let f = found[i];
                end = end.max(f.end);
                let better = (rank(f.kind), std::cmp::Reverse(f.end - f.start))
                    < (rank(best.kind), std::cmp::Reverse(best.end - best.start));
                if better {
                    best = f;
                }
                i += 1;
            }
            out.push_str(&text[copied..first.start]);
            self.write_placeholder(&mut out, best.kind, &text[first.start..end]);
            copied = end;
            match best.kind {
                k if k < CUSTOM_BASE => builtin_counts[k as usize] += 1,
                k => custom_counts[(k - CUSTOM_BASE) as usize] += 1,
            }
        }
        out.push_str(&text[copied..]);

        let mut counts = Vec::new();
        for (kind, n) in EntityKind::BUILTIN.iter().zip(builtin_counts) {
            if n > 0 {
                counts.push((kind.clone(), n));
            }
        }
        for (rule, n) in self.custom.iter().zip(custom_counts) {
            if n > 0 {
                counts.push((EntityKind::Custom(rule.name.clone()), n));
            }
        }
        Redacted {
            text: Cow::Owned(out),
            counts,
        }
    }

    fn write_placeholder(&self, out: &mut String, kind: u32, value: &str) {
        let (name, action) = if kind < CUSTOM_BASE {
            (
                EntityKind::BUILTIN[kind as usize].as_str(),
                self.actions[kind as usize],
            )
        } else {
            let rule = &self.custom[(kind - CUSTOM_BASE) as usize];
            (&*rule.name, rule.action)
        };
        match action {
            Action::Replace => {
                out.push('<');
                out.push_str(name);
                out.push('>');
            }
            Action::Mask => {
                let n = value.chars().count();
                let keep = if n > 8 { 4 } else { 0 };
                out.extend(std::iter::repeat_n('*', n - keep));
                out.extend(value.chars().skip(n - keep));
            }
            Action::Hash => {
                // `new` refuses a hashing configuration without a key.
                let key = self.hmac.as_ref().expect("hash action has a key");
                let tag = hmac::sign(key, value.as_bytes());
                let digest = tag.as_ref();
                out.push('<');
                out.push_str(name);
                out.push(':');
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for b in &digest[..6] {
                    out.push(HEX[(b >> 4) as usize] as char);
                    out.push(HEX[(b & 15) as usize] as char);
                }
                out.push('>');
            }
        }
    }
}

/// The labelled PII corpus (`tests/data/pii_corpus.jsonl`), for unit tests.
#[cfg(test)]
pub(crate) const TEST_CORPUS: &str = include_str!("../../../tests/data/pii_corpus.jsonl");
/// The held-out corpus (`tests/data/pii_heldout.jsonl`), written apart from the detector.
#[cfg(test)]
pub(crate) const HELDOUT_CORPUS: &str = include_str!("../../../tests/data/pii_heldout.jsonl");

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn red(text: &str) -> String {
        let r = Redactor::new(&RedactorConfig::default()).unwrap();
        r.redact(text).text.into_owned()
    }

    /// The scanners are skipped for text without `@`, `:`, `-` or a digit:
    /// every non-secret entity of the labelled corpus holds one, and the
    /// scanners, run directly, find nothing in corpus text stripped of them.
    #[test]
    fn the_scan_trigger_bytes_cover_every_built_in_entity() {
        let mut seen = 0;
        for line in TEST_CORPUS.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for e in v["entities"].as_array().unwrap() {
                if e["type"] == "SECRET" {
                    continue;
                }
                let value = e["value"].as_str().unwrap();
                assert!(may_hold_builtin_entity(value.as_bytes()), "{value}");
                seen += 1;
            }
            let text = v["text"].as_str().unwrap();
            let without: String = text
                .chars()
                .filter(|c| !(c.is_ascii_digit() || matches!(c, '@' | ':' | '-')))
                .collect();
            let mut found = Vec::new();
            scan_emails(without.as_bytes(), &mut found);
            scan_colons_and_dashes(without.as_bytes(), &mut found);
            scan_numbers(without.as_bytes(), &mut found);
            assert!(found.is_empty(), "{without}");
        }
        assert!(seen > 100, "the corpus was read");
    }

    #[test]
    fn replace_action() {
        assert_eq!(red("mail alice@example.com now"), "mail <EMAIL> now");
        assert_eq!(red("card 4111 1111 1111 1111."), "card <CREDIT_CARD>.");
    }

    #[test]
    fn mask_action_keeps_the_last_four() {
        let cfg = RedactorConfig {
            actions: KindActions::all(Action::Mask),
            ..Default::default()
        };
        let r = Redactor::new(&cfg).unwrap();
        assert_eq!(
            r.redact("card 4111111111111111 ok").text,
            "card ************1111 ok"
        );
        // Eight characters or fewer are hidden entirely.
        assert_eq!(r.redact("host ::1 up").text, "host *** up");
    }

    #[test]
    fn hash_action_is_keyed_and_stable() {
        let cfg = RedactorConfig {
            actions: KindActions {
                email: Action::Hash,
                ..Default::default()
            },
            hash_key: b"k1".to_vec(),
            ..Default::default()
        };
        let r = Redactor::new(&cfg).unwrap();
        // HMAC-SHA256("k1", "alice@example.com"), its first 6 bytes, as
        // Python's hmac module computes it.
        let want = "e97a3c597641";
        let out = r.redact("to alice@example.com, cc alice@example.com");
        assert_eq!(out.text, format!("to <EMAIL:{want}>, cc <EMAIL:{want}>"));
        assert_eq!(out.count(&EntityKind::Email), 2);

        let other = Redactor::new(&RedactorConfig {
            hash_key: b"k2".to_vec(),
            ..cfg.clone()
        })
        .unwrap();
        assert_ne!(
            other.redact("to alice@example.com").text,
            r.redact("to alice@example.com").text
        );
    }

    #[test]
    fn hash_without_key_is_refused() {
        let cfg = RedactorConfig {
            actions: KindActions::all(Action::Hash),
            ..Default::default()
        };
        let err = Redactor::new(&cfg).unwrap_err();
        assert_eq!(err.to_string(), "hash action needs a non-empty hash key");
    }

    #[test]
    fn custom_rules_apply_and_bad_patterns_name_the_rule() {
        let cfg = RedactorConfig {
            custom: vec![CustomRule {
                name: "EMPLOYEE_ID".into(),
                pattern: r"\bEMP-\d{6}\b".into(),
                action: Action::Replace,
            }],
            ..Default::default()
        };
        let r = Redactor::new(&cfg).unwrap();
        let out = r.redact("ask EMP-123456 about it");
        assert_eq!(out.text, "ask <EMPLOYEE_ID> about it");
        assert_eq!(out.count(&EntityKind::Custom("EMPLOYEE_ID".into())), 1);
        assert_eq!(
            EntityKind::Custom("EMPLOYEE_ID".into()).to_string(),
            "EMPLOYEE_ID"
        );

        let bad = RedactorConfig {
            custom: vec![CustomRule {
                name: "broken".into(),
                pattern: "(".into(),
                action: Action::Replace,
            }],
            ..Default::default()
        };
        let err = Redactor::new(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("custom rule \"broken\" has an invalid pattern"),
            "{err}"
        );

        let unnamed = RedactorConfig {
            custom: vec![CustomRule {
                name: "a>b".into(),
                pattern: "x".into(),
                action: Action::Replace,
            }],
            ..Default::default()
        };
        assert!(matches!(
            Redactor::new(&unnamed),
            Err(RedactError::InvalidRuleName { .. })
        ));
    }

    #[test]
    fn clean_text_is_borrowed() {
        let r = Redactor::new(&RedactorConfig::default()).unwrap();
        let out = r.redact("Version 1.2.3 shipped on 2024-05-01 for $12.99 (order 1234567).");
        assert!(matches!(out.text, Cow::Borrowed(_)));
        assert!(out.counts.is_empty() && !out.changed());
    }

    #[test]
    fn detects_each_kind() {
        assert_eq!(red("call +44 20 7946 0958 today"), "call <PHONE> today");
        assert_eq!(red("(415) 555-0123"), "<PHONE>");
        assert_eq!(red("IBAN DE89 3704 0044 0532 0130 00."), "IBAN <IBAN>.");
        assert_eq!(red("ssn 123-45-6789"), "ssn <SSN>");
        assert_eq!(red("from 203.0.113.7:443"), "from <IP_ADDRESS>:443");
        assert_eq!(red("via [2001:db8::1]"), "via [<IP_ADDRESS>]");
        assert_eq!(red("nic 00:1A:2B:3C:4D:5E up"), "nic <MAC_ADDRESS> up");
        assert_eq!(red("key sk-proj-abc123DEF456ghi789JKL0"), "key <SECRET>");
        assert_eq!(
            red("Authorization: Bearer abcdef0123456789abcdef"),
            "Authorization: Bearer <SECRET>"
        );
        assert_eq!(
            red("db postgres://app:s3cret@db.example.com/x"),
            "db postgres://<SECRET>@db.example.com/x"
        );
    }

    #[test]
    fn leaves_hard_negatives() {
        for s in [
            "room 555-0100",
            "order 415-555-0123",
            "2024-05-01T10:30:00Z",
            "2024-05-01 10:30:00",
            "v10.0.19045",
            "npm i @types/node lodash@4.17.21",
            "@dataclass",
            "4111 1111 1111 1112",
            "666-12-3456",
            "use std::io::Read;",
            "a[1::2]",
            "$1,234,567.89",
            "12:30:45",
        ] {
            assert_eq!(red(s), s);
        }
    }

    /// Random strings over the bytes the scanners care about, including
    /// multi-byte characters next to every trigger: no input may panic,
    /// and every action must cut the text at character boundaries.
    #[test]
    fn random_input_never_panics() {
        const PIECES: &[&str] = &[
            "0",
            "1",
            "4",
            "5",
            "9",
            "00",
            "123",
            "4111",
            " ",
            "-",
            ".",
            "(",
            ")",
            "+",
            ":",
            "::",
            "@",
            "#",
            "/",
            ",",
            "a",
            "F",
            "DE",
            "de",
            "x",
            "_",
            "é",
            "電",
            "€",
            "\\",
            "\\n",
            "\n",
            "sk-",
            "eyJ",
            "://",
            "Bearer ",
            "call ",
            "ssn ",
            "order ",
            "e.com",
            "-----BEGIN ",
        ];
        let configs = [
            RedactorConfig::default(),
            RedactorConfig {
                actions: KindActions::all(Action::Mask),
                ..Default::default()
            },
            RedactorConfig {
                actions: KindActions::all(Action::Hash),
                hash_key: b"k".to_vec(),
                ..Default::default()
            },
        ];
        let redactors: Vec<Redactor> = configs.iter().map(|c| Redactor::new(c).unwrap()).collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..next(40) {
                text.push_str(PIECES[next(PIECES.len())]);
            }
            for r in &redactors {
                let out = r.redact(&text);
                assert_eq!(out.changed(), out.total() > 0, "{text:?}");
            }
        }
    }

    #[test]
    fn redactor_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Redactor>();
    }

    #[test]
    fn debug_hides_the_key() {
        let cfg = RedactorConfig {
            hash_key: b"topsecret".to_vec(),
            ..Default::default()
        };
        assert!(!format!("{cfg:?}").contains("topsecret"));
        assert!(!format!("{cfg:?}").contains("116"));
    }
}
