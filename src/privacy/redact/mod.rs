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

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;
use std::sync::Arc;

use regex::Regex;
use ring::hmac;
use serde::{Deserialize, Serialize};

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
    secrets: Regex,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Finding {
    start: usize,
    end: usize,
    kind: u32,
}

/// Extra validation for a credential pattern whose shape alone is too loose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SecretCheck {
    None,
    /// Real keys are random, so they contain a digit; slugs such as
    /// `sk-this-is-a-long-name` do not.
    HasDigitAndLetter,
    /// `password: forgotten` is prose, `password: hunter2` is a password.
    HasDigit,
}

/// Credential patterns. Each has exactly one capture group, the part that is
/// redacted (so `Bearer ` and `aws_secret_access_key=` stay readable), and
/// each begins with a literal, so that the combined regex gets a literal
/// prefilter and skips prose at memchr-like speed. `(?-u:\b)` is used instead
/// of a Unicode word boundary, which would push the regex engine off its fast
/// DFA on non-ASCII text.
const SECRET_PATTERNS: &[(&str, SecretCheck)] = &[
    // PEM private keys (and PGP's armoured private key blocks), whole block;
    // a block pasted without its END line is cut after its last base64 line.
    (
        r"(-----BEGIN [A-Z ]{0,20}PRIVATE KEY(?: BLOCK)?-----(?:(?s:.)*?-----END [A-Z ]{0,20}PRIVATE KEY(?: BLOCK)?-----|(?:(?:\s|\\[nr])*[A-Za-z0-9+/=]{16,})*))",
        SecretCheck::None,
    ),
    (
        r"(?-u:\b)(?:Bearer|bearer|BEARER)\s+([A-Za-z0-9._~+/-]{16,}=*)",
        SecretCheck::None,
    ),
    (
        r#"(?:Authorization|authorization|AUTHORIZATION)["']?\s*[:=]\s*["']?(?:Basic|basic|Token|token)\s+([A-Za-z0-9._~+/-]{8,}=*)"#,
        SecretCheck::None,
    ),
    // Credentials in a URL: scheme://user:password@host.
    (r#"://([^\s:/@"'<>]+:[^\s/@"'<>]+)@"#, SecretCheck::None),
    (
        r"(?-u:\b)((?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})(?-u:\b)",
        SecretCheck::None,
    ),
    (
        r#"(?:aws_secret_access_key|AWS_SECRET_ACCESS_KEY|SecretAccessKey|secret_access_key|aws_secret_key|AWS_SECRET_KEY)["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})"#,
        SecretCheck::None,
    ),
    (
        r"(?-u:\b)((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,})",
        SecretCheck::None,
    ),
    (r"(?-u:\b)(github_pat_[A-Za-z0-9_]{22,})", SecretCheck::None),
    (r"(?-u:\b)(glpat-[A-Za-z0-9_-]{20,})", SecretCheck::None),
    (r"(?-u:\b)(xox[abprs]-[A-Za-z0-9-]{10,})", SecretCheck::None),
    (
        r"hooks\.slack\.com/services/(T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,})",
        SecretCheck::None,
    ),
    (r"(?-u:\b)(AIza[0-9A-Za-z_-]{35})", SecretCheck::None),
    (
        r"(?-u:\b)((?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,})",
        SecretCheck::None,
    ),
    (
        r"(?-u:\b)(sk-[A-Za-z0-9_-]{20,})",
        SecretCheck::HasDigitAndLetter,
    ),
    (r"(?-u:\b)(hf_[A-Za-z0-9]{30,})", SecretCheck::None),
    (r"(?-u:\b)(npm_[A-Za-z0-9]{36})", SecretCheck::None),
    // JSON Web Tokens: three base64url segments, the header starting `{"`.
    (
        r"(?-u:\b)(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)",
        SecretCheck::None,
    ),
    (
        r#"(?:password|passwd|Password|PASSWORD|pwd|PWD|passphrase|Passphrase|PASSPHRASE)["']?\s*[:=]\s*["']?([^\s"',;&]{6,})"#,
        SecretCheck::HasDigit,
    ),
    (
        r#"(?:api_key|apikey|api-key|API_KEY|APIKEY|x-api-key|X-API-Key|X-Api-Key|client_secret|CLIENT_SECRET|secret_key|SECRET_KEY|access_token|ACCESS_TOKEN|auth_token|AUTH_TOKEN)["']?\s*[:=]\s*["']?([A-Za-z0-9_\-./+=]{16,})"#,
        SecretCheck::HasDigitAndLetter,
    ),
    // Any key that names a secret or a token (`JWT_SECRET`, `jwt_secret`,
    // `SHOPIFY_ACCESS_TOKEN`, `X-Auth-Token`), and session cookies. A bare
    // lower-case `token` is only taken in the shapes of a key (`?token=`,
    // `"token":`, `token: `), because every completion's usage object holds
    // `prompt_tokens` and `total_tokens`, and each literal hit costs the
    // prefilter a check.
    (
        r#"(?:secret|Secret|SECRET|Token|TOKEN|refresh_token|id_token)["']?\s*[:=]\s*["']?([A-Za-z0-9_\-./+=]{16,})"#,
        SecretCheck::HasDigitAndLetter,
    ),
    (
        r#"(?:[?&]token=|"token" ?: ?"|'token' ?: ?'|token: |token = ["']?)([A-Za-z0-9_\-./+=]{16,})"#,
        SecretCheck::HasDigitAndLetter,
    ),
    (
        r"(?:sessionid|session_id|SESSIONID|PHPSESSID|JSESSIONID)=([A-Za-z0-9%._~+/-]{16,})",
        SecretCheck::HasDigitAndLetter,
    ),
    // Basic credentials on a command line: `curl -u user:password`, and the
    // password glued to mysql's `-p`.
    (
        r#"(?:-u |--user |--user=)["']?([^\s:"'/@]+:[^\s"']+)"#,
        SecretCheck::HasDigitAndLetter,
    ),
    (
        r#"(?:mysql|mysqldump|mysqladmin) [^\n]*? -p([^\s"']{4,})"#,
        SecretCheck::HasDigit,
    ),
    (
        r#"--password[ =]["']?([^\s"'-][^\s"']{3,})"#,
        SecretCheck::HasDigit,
    ),
    (
        r#"redis-cli [^\n]*?-a ["']?([^\s"']{4,})"#,
        SecretCheck::HasDigit,
    ),
    // Azure storage and service bus connection strings, and .npmrc's `_auth`.
    (
        r"(?:AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{20,}={0,2})",
        SecretCheck::None,
    ),
    (
        r#"_auth\s*=\s*["']?([A-Za-z0-9+/]{16,}={0,2})"#,
        SecretCheck::HasDigitAndLetter,
    ),
    (
        r"discord(?:app)?\.com/api/webhooks/[0-9]{5,}/([A-Za-z0-9_-]{30,})",
        SecretCheck::None,
    ),
    (r"(?-u:\b)(dop_v1_[a-f0-9]{64})", SecretCheck::None),
    (
        r"(?-u:\b)(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})",
        SecretCheck::None,
    ),
    (
        r"(?-u:\b)(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})",
        SecretCheck::None,
    ),
];

impl Redactor {
    /// Compiles the built-in detectors and the custom rules.
    pub fn new(cfg: &RedactorConfig) -> Result<Redactor, RedactError> {
        let combined = SECRET_PATTERNS
            .iter()
            .map(|(p, _)| format!("(?:{p})"))
            .collect::<Vec<_>>()
            .join("|");
        // The built-in pattern is a constant covered by the unit tests, so a
        // failure here is a bug in this file rather than bad configuration.
        let secrets = Regex::new(&combined).expect("built-in secret patterns compile");

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
            self.find_secrets(text, &mut found);
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

    fn find_secrets(&self, text: &str, out: &mut Vec<Finding>) {
        // `captures_iter` would allocate on every call; a plain search does
        // not, and capture positions are only resolved for actual matches,
        // which are rare.
        let mut locs = None;
        let mut pos = 0;
        while let Some(m) = self.secrets.find_at(text, pos) {
            pos = m.end();
            let locs = locs.get_or_insert_with(|| self.secrets.capture_locations());
            if self
                .secrets
                .captures_read_at(locs, text, m.start())
                .is_none()
            {
                continue;
            }
            // Exactly one group participates: the one of the alternative that matched.
            let Some((idx, (start, end))) =
                (1..locs.len()).find_map(|i| locs.get(i).map(|g| (i - 1, g)))
            else {
                continue;
            };
            let value = &text.as_bytes()[start..end];
            let ok = match SECRET_PATTERNS[idx].1 {
                SecretCheck::None => true,
                SecretCheck::HasDigit => value.iter().any(u8::is_ascii_digit),
                SecretCheck::HasDigitAndLetter => {
                    value.iter().any(u8::is_ascii_digit)
                        && value.iter().any(u8::is_ascii_alphabetic)
                }
            };
            if ok {
                out.push(Finding {
                    start,
                    end,
                    kind: K_SECRET,
                });
            } else {
                // A key name whose value fails the check (`HF_TOKEN=` before
                // a letters-only `hf_…` token) must not hide a pattern that
                // matches the value itself, so search again from the value.
                let mut next = start.max(m.start() + 1);
                while !text.is_char_boundary(next) {
                    next += 1;
                }
                pos = next;
            }
        }
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

// ---------------------------------------------------------------------------
// Byte classes and context helpers.

/// Whether one of the scanners below could find anything in `b`. Each starts
/// only from a byte of its own: e-mail addresses from `@`, MAC and IPv6
/// addresses from `:` or `-`, and every numeric kind (phones, cards, IBANs,
/// SSNs, IPv4) from an ASCII digit. Text with none of them, as most short
/// strings of a JSON body are (roles, models, finish reasons, words), skips
/// all three scans in one pass.
fn may_hold_builtin_entity(b: &[u8]) -> bool {
    b.iter()
        .any(|&c| c.is_ascii_digit() || matches!(c, b'@' | b':' | b'-'))
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Whether `b[pos]` starts a token: the previous byte is not part of a word.
/// Captured text is often JSON with its escapes still in place, so the `n` of
/// a `\n` does not count as a word byte.
fn boundary_before(b: &[u8], pos: usize) -> bool {
    if pos == 0 {
        return true;
    }
    let p = b[pos - 1];
    !is_word(p) || is_json_escape(b, pos - 1)
}

/// Whether `b[i]` is the letter of a JSON escape such as `\n` or `\t`.
fn is_json_escape(b: &[u8], i: usize) -> bool {
    matches!(b[i], b'n' | b't' | b'r' | b'b' | b'f')
        && i >= 1
        && b[i - 1] == b'\\'
        && (i < 2 || b[i - 2] != b'\\')
}

// ---------------------------------------------------------------------------
// E-mail addresses.

/// Whether two bytes are an accented Latin letter in UTF-8 (U+00C0 to
/// U+017F: `ü`, `ß`, `é`, `ł`), which internationalised addresses may hold.
/// Scripts written without spaces (CJK) are left out, so that the words
/// before an address there do not become part of it.
fn latin_letter(lead: u8, cont: u8) -> bool {
    let code = (u32::from(lead & 0x1F) << 6) | u32::from(cont & 0x3F);
    matches!(lead, 0xC3..=0xC5)
        && (0x80..=0xBF).contains(&cont)
        && code >= 0xC0
        && code != 0xD7
        && code != 0xF7
}

fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-' | b'\'')
}

/// Finds addresses around each `@`. Requiring a local part and a dotted domain
/// with an alphabetic TLD is what keeps `@types/node`, `@dataclass`,
/// `lodash@4.17.21` and `image@sha256:…` out.
fn scan_emails(b: &[u8], out: &mut Vec<Finding>) {
    let mut resume = 0;
    for at in memchr::memchr_iter(b'@', b) {
        if at < resume {
            continue;
        }
        if let Some((s, e)) = email_around(b, at, 1) {
            out.push(Finding {
                start: s,
                end: e,
                kind: K_EMAIL,
            });
            resume = e;
        }
    }
    // Query strings and form bodies carry the `@` percent-encoded.
    if memchr::memchr(b'%', b).is_none() {
        return;
    }
    resume = 0;
    for at in memchr::memmem::find_iter(b, b"%40") {
        if at < resume {
            continue;
        }
        if let Some((s, e)) = email_around(b, at, 3) {
            out.push(Finding {
                start: s,
                end: e,
                kind: K_EMAIL,
            });
            resume = e;
        }
    }
}

/// The address around the `@` (or its `%40` encoding, `at_len` bytes long)
/// at `at`, as a byte span.
fn email_around(b: &[u8], at: usize, at_len: usize) -> Option<(usize, usize)> {
    if at == 0 {
        return None;
    }
    let mut s = at;
    loop {
        if s > 0 && is_local_byte(b[s - 1]) {
            s -= 1;
        } else if s > 1 && latin_letter(b[s - 2], b[s - 1]) {
            s -= 2;
        } else {
            break;
        }
    }
    if s > 0 && is_json_escape(b, s) {
        s += 1;
    }
    // `\u003calice@…`: a JSON unicode escape glued to the local part.
    if s > 0
        && b[s - 1] == b'\\'
        && b[s] == b'u'
        && at - s > 5
        && b[s + 1..s + 5].iter().all(|&c| is_hex(c))
    {
        s += 5;
    }
    while s < at && matches!(b[s], b'.' | b'-' | b'+' | b'\'') {
        s += 1;
    }
    if s == at || b[at - 1] == b'.' {
        return None;
    }
    // `git@github.com:org/repo` is an SSH remote, not a person.
    if &b[s..at] == b"git" {
        return None;
    }
    // In `scheme://user:password@host` the credentials are a secret and
    // the host is not personal, so the password must not be read as the
    // local part of an address (which would swallow the host).
    if url_userinfo(b, at) {
        return None;
    }
    let d = at + at_len;
    let mut e = d;
    while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'.' || b[e] == b'-') {
        e += 1;
    }
    while e > d && matches!(b[e - 1], b'.' | b'-') {
        e -= 1;
    }
    if e < b.len() && (is_word(b[e]) || b[e] == b'@') {
        return None;
    }
    if !valid_domain(&b[d..e]) {
        return None;
    }
    Some((s, e))
}

/// Whether the `@` at `at` ends the `user:password` of a URL, i.e. the text
/// before it up to `://` has no separator but contains a `:`.
fn url_userinfo(b: &[u8], at: usize) -> bool {
    let mut u = at;
    while u > 0
        && !matches!(b[u - 1], b'/' | b'@' | b'"' | b'\'' | b'<' | b'>')
        && !b[u - 1].is_ascii_whitespace()
    {
        u -= 1;
    }
    b[..u].ends_with(b"://") && b[u..at].contains(&b':')
}

fn valid_domain(d: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in d.split(|&c| c == b'.') {
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
}

// ---------------------------------------------------------------------------
// MAC and IPv6 addresses.

/// Visits every `:`, `-` and `.`; MAC addresses are tried at all three (the
/// dot for Cisco's `2c20.ceae.ec41`), IPv6 at `:`.
fn scan_colons_and_dashes(b: &[u8], out: &mut Vec<Finding>) {
    let mut pos = 0;
    while let Some(off) = memchr::memchr3(b':', b'-', b'.', &b[pos..]) {
        let p = pos + off;
        if b[p] == b'.' {
            // Most dots end a sentence or split a number; one with no second
            // dot five bytes on costs a single comparison.
            let second_dot = b.get(p + 5) == Some(&b'.');
            if let Some(end) = second_dot
                .then(|| p.checked_sub(4).and_then(|s| cisco_mac_at(b, s)))
                .flatten()
            {
                out.push(Finding {
                    start: p - 4,
                    end,
                    kind: K_MAC,
                });
                pos = end;
            } else {
                pos = p + 1;
            }
            continue;
        }
        if p >= 6 && b[p] == b':' && &b[p - 6..p - 2] == b"MAC=" {
            if let Some(end) = netfilter_macs(b, p - 2, out) {
                pos = end;
                continue;
            }
        }
        if p >= 2 {
            if let Some(end) = mac_at(b, p - 2) {
                out.push(Finding {
                    start: p - 2,
                    end,
                    kind: K_MAC,
                });
                pos = end;
                continue;
            }
        }
        if b[p] == b':' {
            if let Some((s, e)) = ipv6_around(b, p) {
                out.push(Finding {
                    start: s,
                    end: e,
                    kind: K_IP,
                });
                pos = e.max(p + 1);
                continue;
            }
        }
        pos = p + 1;
    }
}

/// Six pairs of hex digits joined by one consistent separator, `:` or `-`.
fn mac_at(b: &[u8], s: usize) -> Option<usize> {
    let e = s + 17;
    if e > b.len() {
        return None;
    }
    let sep = b[s + 2];
    if sep != b':' && sep != b'-' {
        return None;
    }
    for k in 0..6 {
        let g = s + 3 * k;
        if !is_hex(b[g]) || !is_hex(b[g + 1]) || (k < 5 && b[g + 2] != sep) {
            return None;
        }
    }
    if !boundary_before(b, s) || (s > 0 && b[s - 1] == sep) {
        return None;
    }
    if e < b.len() && (is_word(b[e]) || (b[e] == sep && b.get(e + 1).is_some_and(|&c| is_hex(c)))) {
        return None;
    }
    Some(e)
}

/// Three dotted groups of four hex digits, as Cisco prints MAC addresses
/// (`show arp`, `show mac address-table`). A digit is required, as it is by
/// the scan trigger, and the groups must not continue a longer dotted name.
fn cisco_mac_at(b: &[u8], s: usize) -> Option<usize> {
    let e = s + 14;
    let m = b.get(s..e)?;
    let shape = m.iter().enumerate().all(|(k, &c)| {
        if k == 4 || k == 9 {
            c == b'.'
        } else {
            is_hex(c)
        }
    });
    if !shape || !m.iter().any(u8::is_ascii_digit) {
        return None;
    }
    if !boundary_before(b, s) || (s > 0 && b[s - 1] == b'.') {
        return None;
    }
    if e < b.len()
        && (is_word(b[e])
            || (b[e] == b'.' && b.get(e + 1).is_some_and(|c| c.is_ascii_alphanumeric())))
    {
        return None;
    }
    Some(e)
}

/// Netfilter logs (`MAC=` in iptables and UFW lines) print the destination
/// and source MAC addresses and the EtherType as one run of fourteen
/// colon-separated pairs, which [`mac_at`] refuses as too long. Pushes the
/// two addresses and returns the end of the run.
fn netfilter_macs(b: &[u8], s: usize, out: &mut Vec<Finding>) -> Option<usize> {
    let e = s + 14 * 3 - 1;
    let m = b.get(s..e)?;
    let shape = m
        .iter()
        .enumerate()
        .all(|(k, &c)| if k % 3 == 2 { c == b':' } else { is_hex(c) });
    if !shape || (e < b.len() && (is_word(b[e]) || b[e] == b':')) {
        return None;
    }
    for k in 0..2 {
        out.push(Finding {
            start: s + 18 * k,
            end: s + 18 * k + 17,
            kind: K_MAC,
        });
    }
    Some(e)
}

/// Twelve bare hex digits at `ws` (a word start) followed by a word end,
/// right after a word that says they are a MAC address (`MAC`, `hwaddr`,
/// `bssid`, ...). Without such a word they are as likely a container id or
/// the tail of a UUID. Returns the end.
fn bare_mac_at(b: &[u8], ws: usize) -> Option<usize> {
    let e = ws + 12;
    let m = b.get(ws..e)?;
    if !m.iter().all(|&c| is_hex(c)) || (e < b.len() && is_word(b[e])) {
        return None;
    }
    let from = ws.saturating_sub(24);
    let mut buf = [0u8; 24];
    let w = &mut buf[..ws - from];
    w.copy_from_slice(&b[from..ws]);
    w.make_ascii_lowercase();
    let letter_at = |i: usize| w.get(i).is_some_and(u8::is_ascii_alphabetic);
    for cue in [&b"mac"[..], b"hwaddr", b"lladdr", b"chaddr", b"bssid"] {
        for i in memchr::memmem::find_iter(w, cue) {
            let after = i + cue.len();
            let starts = i == 0 || !letter_at(i - 1);
            let ends = !letter_at(after) || w[after..].starts_with(b"addr");
            if starts && ends {
                return Some(e);
            }
        }
    }
    None
}

/// Expands around a `:` to the longest run of hex digits, colons and (for an
/// embedded IPv4 tail) dots, then lets the standard library's parser decide.
/// Extra checks keep code out: `std::io` fails the word boundary, `abc::def`
/// has no digit, and `x[1::2]` has too few and too short groups.
fn ipv6_around(b: &[u8], p: usize) -> Option<(usize, usize)> {
    let mut s = p;
    while s > 0 && (is_hex(b[s - 1]) || b[s - 1] == b':') {
        s -= 1;
    }
    let mut e = p + 1;
    while e < b.len() && (is_hex(b[e]) || b[e] == b':' || b[e] == b'.') {
        e += 1;
    }
    while e > p + 1 && b[e - 1] == b'.' {
        e -= 1;
    }
    if !boundary_before(b, s) || (e < b.len() && is_word(b[e])) {
        return None;
    }
    let mut cand = &b[s..e];
    if cand.len() < 3 || cand.len() > 45 {
        return None;
    }
    if cand.iter().filter(|&&c| c == b':').count() < 2 {
        return None;
    }
    // A single trailing colon is punctuation ("at fe80::1:"), a double one
    // is part of the address ("2001:db8::").
    if cand.ends_with(b":") && !cand.ends_with(b"::") {
        cand = &cand[..cand.len() - 1];
        e -= 1;
    }
    let text = std::str::from_utf8(cand).ok()?;
    if Ipv6Addr::from_str(text).is_err() {
        // netstat writes a port after an IPv6 address with one more colon
        // (`::1:51544`); a last group of five digits can only be that port.
        let colon = cand.iter().rposition(|&c| c == b':')?;
        let tail = &cand[colon + 1..];
        if tail.len() != 5 || !tail.iter().all(u8::is_ascii_digit) || colon < 2 {
            return None;
        }
        cand = &cand[..colon];
        e = s + colon;
        Ipv6Addr::from_str(std::str::from_utf8(cand).ok()?).ok()?;
    }
    if !cand.iter().any(u8::is_ascii_digit) {
        return None;
    }
    if cand != b"::1" {
        let groups = cand.split(|&c| c == b':').filter(|g| !g.is_empty());
        let (n, longest) = groups.fold((0, 0), |(n, l), g| (n + 1, l.max(g.len())));
        if n < 3 && !(n == 2 && longest >= 3) {
            return None;
        }
    }
    Some((s, e))
}

// ---------------------------------------------------------------------------
// Numbers: cards, IBANs, SSNs, phones, IPv4.

/// How a group of digits is joined to the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sep {
    /// The first group of a run.
    Start,
    Space,
    Dash,
    Dot,
    /// ` - ` with spaces around the dash.
    SpacedDash,
    /// Nothing between a parenthesised group and its neighbour, as in `(0)30`.
    Adjacent,
}

#[derive(Clone, Copy, Debug)]
struct Group {
    /// Byte span, including parentheses.
    start: usize,
    end: usize,
    /// Number of digits.
    len: usize,
    paren: bool,
    sep: Sep,
}

impl Group {
    fn digits<'b>(&self, b: &'b [u8]) -> &'b [u8] {
        if self.paren {
            &b[self.start + 1..self.end - 1]
        } else {
            &b[self.start..self.end]
        }
    }
}

const MAX_GROUPS: usize = 12;

/// A run of digit groups joined by single separators: the raw material for
/// every numeric entity.
struct Run {
    /// Start of the run, including a leading `+`.
    start: usize,
    plus: bool,
    groups: [Group; MAX_GROUPS],
    n: usize,
}

impl Run {
    fn end(&self) -> usize {
        self.groups[self.n - 1].end
    }
}

/// Scans for digits. Runs that start inside a word (`v10.0.19045`, `a1b2`,
/// UUIDs, SHAs, `INV-2024-001`) are skipped whole, except for an IBAN, which
/// starts with its two-letter country code.
fn scan_numbers(b: &[u8], out: &mut Vec<Finding>) {
    let mut run = Run {
        start: 0,
        plus: false,
        groups: [EMPTY_GROUP; MAX_GROUPS],
        n: 0,
    };
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        if i > 0 && is_word(b[i - 1]) && !is_json_escape(b, i - 1) {
            let letters = |c: fn(&u8) -> bool| i >= 2 && c(&b[i - 1]) && c(&b[i - 2]);
            if (letters(u8::is_ascii_uppercase) || letters(u8::is_ascii_lowercase))
                && boundary_before(b, i - 2)
            {
                if let Some(end) = iban_at(b, i - 2) {
                    out.push(Finding {
                        start: i - 2,
                        end,
                        kind: K_IBAN,
                    });
                    i = end;
                    continue;
                }
            }
            // `%2B` is a `+` percent-encoded in a query string.
            if i >= 3
                && b[i - 3] == b'%'
                && b[i - 2] == b'2'
                && b[i - 1].eq_ignore_ascii_case(&b'b')
                && parse_run(b, i, &mut run)
            {
                run.plus = true;
                run.start = i - 3;
                let end = run.end();
                classify_run(b, &run, out);
                i = end;
                continue;
            }
            // The word may be a MAC address written as twelve bare hex digits.
            let mut ws = i - 1;
            while ws > 0 && i - ws <= 12 && is_word(b[ws - 1]) && !is_json_escape(b, ws - 1) {
                ws -= 1;
            }
            if i - ws < 12 {
                if let Some(end) = bare_mac_at(b, ws) {
                    out.push(Finding {
                        start: ws,
                        end,
                        kind: K_MAC,
                    });
                    i = end;
                    continue;
                }
            }
            while i < b.len() && is_word(b[i]) {
                i += 1;
            }
            continue;
        }
        // An identifier joined by '-' or '.' to a word ("ORD-2024-0001",
        // "build.12345") is not a number of its own.
        if i >= 2 && matches!(b[i - 1], b'-' | b'.') && is_word(b[i - 2]) {
            while i < b.len() && (is_word(b[i]) || b[i] == b'-' || b[i] == b'.') {
                i += 1;
            }
            continue;
        }
        // Fast path: most numbers in prose ("3 kids", "in 2024") are one short
        // group that nothing can follow, and no entity is that short.
        let mut e = i;
        while e < b.len() && b[e].is_ascii_digit() {
            e += 1;
        }
        let lone = e - i < 7
            && !matches!(b.get(e), Some(b' ' | b'-' | b'.' | b'(' | b')'))
            && !(i > 0 && matches!(b[i - 1], b'+' | b'('));
        if lone {
            i = e;
            continue;
        }
        let mut start = i;
        if i > 0 && b[i - 1] == b'(' {
            start = i - 1;
        }
        if start > 0 && b[start - 1] == b'+' && (start < 2 || !is_word(b[start - 2])) {
            start -= 1;
        }
        let parsed = parse_run(b, start, &mut run) || (start != i && parse_run(b, i, &mut run));
        if !parsed {
            i += 1;
            continue;
        }
        let end = run.end();
        classify_run(b, &run, out);
        i = end.max(i + 1);
    }
}

const EMPTY_GROUP: Group = Group {
    start: 0,
    end: 0,
    len: 0,
    paren: false,
    sep: Sep::Start,
};

/// Parses a run starting at `pos` (a `+`, a `(` or a digit) into `run`,
/// which the caller reuses so that no run is copied around. Returns false
/// when no group starts at `pos`.
fn parse_run(b: &[u8], pos: usize, run: &mut Run) -> bool {
    let mut p = pos;
    let plus = b[p] == b'+';
    if plus {
        p += 1;
    }
    // `(+34) 912 345 678`: the country code in parentheses.
    let open = plus && pos > 0 && b[pos - 1] == b'(';
    run.start = if open { pos - 1 } else { pos };
    run.plus = plus;
    run.n = 0;
    let mut sep = Sep::Start;
    loop {
        let Some(g) = parse_group(b, p, sep) else {
            return run.n > 0;
        };
        run.groups[run.n] = g;
        run.n += 1;
        if run.n == MAX_GROUPS {
            break;
        }
        // Look for a separator followed by another group.
        let mut q = g.end;
        if open && run.n == 1 && b.get(q) == Some(&b')') {
            q += 1;
        }
        let at = |k: usize| b.get(q + k).copied().unwrap_or(0);
        let starts_group = |k: usize| {
            let c = at(k);
            c.is_ascii_digit() || (c == b'(' && at(k + 1).is_ascii_digit())
        };
        let (next_sep, skip) = match at(0) {
            b' ' if at(1) == b'-' && at(2) == b' ' && starts_group(3) => (Sep::SpacedDash, 3),
            b' ' if starts_group(1) => (Sep::Space, 1),
            b'-' if starts_group(1) => (Sep::Dash, 1),
            b'.' if at(1).is_ascii_digit() => (Sep::Dot, 1),
            c if c.is_ascii_digit() && g.paren => (Sep::Adjacent, 0),
            b'(' if at(1).is_ascii_digit() => (Sep::Adjacent, 0),
            _ => break,
        };
        match parse_group(b, q + skip, next_sep) {
            Some(_) => {
                sep = next_sep;
                p = q + skip;
            }
            None => break,
        }
    }
    true
}

fn parse_group(b: &[u8], p: usize, sep: Sep) -> Option<Group> {
    let paren = b.get(p) == Some(&b'(');
    let ds = if paren { p + 1 } else { p };
    let mut e = ds;
    while e < b.len() && b[e].is_ascii_digit() {
        e += 1;
    }
    let len = e - ds;
    if len == 0 {
        return None;
    }
    if paren {
        if len > 5 || b.get(e) != Some(&b')') {
            return None;
        }
        e += 1;
    }
    Some(Group {
        start: p,
        end: e,
        len,
        paren,
        sep,
    })
}

/// Classifies a run, and if the whole run is not an entity, tries to split it
/// at spaces into an entity plus short leftovers (a card followed by its
/// expiry month, two phone numbers in a row, a date before a phone number).
/// A split is only accepted when every leftover piece has at most four digits
/// or is a date, and only the first piece may
/// use the weaker phone rules, so that the middle of a long grouped number
/// never becomes a phone number. Uniform runs (every group the same length and
/// every separator the same, like a Luhn-failing `0000 1111 2222 3333`) are
/// never split.
fn classify_run(b: &[u8], run: &Run, out: &mut Vec<Finding>) {
    if let Some(f) = classify(b, run, 0, run.n, true) {
        out.push(f);
        return;
    }
    let gs = &run.groups[..run.n];
    let uniform = gs.iter().all(|g| g.len == gs[0].len)
        && gs[1..]
            .iter()
            .all(|g| g.sep == gs.get(1).map_or(Sep::Start, |g| g.sep));
    if uniform {
        return;
    }
    // Chunk boundaries: group indexes that follow a space.
    let mut cuts = [0usize; MAX_GROUPS + 1];
    let mut nc = 0;
    for (k, g) in gs.iter().enumerate() {
        if k == 0 || matches!(g.sep, Sep::Space | Sep::SpacedDash) {
            cuts[nc] = k;
            nc += 1;
        }
    }
    if nc < 2 {
        return;
    }
    cuts[nc] = run.n;
    let before = out.len();
    let mut c = 0;
    while c < nc {
        let mut hit = false;
        for d in (c + 1..=nc).rev() {
            if c == 0 && d == nc {
                continue;
            }
            if let Some(f) = classify(b, run, cuts[c], cuts[d], c == 0) {
                out.push(f);
                c = d;
                hit = true;
                break;
            }
        }
        if !hit {
            let chunk = &gs[cuts[c]..cuts[c + 1]];
            let digits: usize = chunk.iter().map(|g| g.len).sum();
            let date = chunk.len() == 3 && has_date(b, chunk);
            if digits > 4 && !date {
                out.truncate(before);
                return;
            }
            c += 1;
        }
    }
}

/// Classifies groups `lo..hi` of a run. `full` allows the phone rules that
/// rely on the text before the run (trunk prefix, nearby keyword).
fn classify(b: &[u8], run: &Run, lo: usize, hi: usize, full: bool) -> Option<Finding> {
    let gs = &run.groups[lo..hi];
    let plus = run.plus && lo == 0;
    let start = if lo == 0 { run.start } else { gs[0].start };
    let end = gs[gs.len() - 1].end;
    let n = gs.len();
    let ndig: usize = gs.iter().map(|g| g.len).sum();
    let any_paren = gs.iter().any(|g| g.paren);
    let found = |kind| Some(Finding { start, end, kind });

    // Addresses are written after `//` and `@` (`http://10.0.0.1`,
    // `ssh admin@10.0.0.1`), where no other numeric entity is.
    let ip_shape = !plus && !any_paren && n == 4 && gs[1..].iter().all(|g| g.sep == Sep::Dot);
    let ssn_shape = !plus
        && !any_paren
        && n == 3
        && gs[0].len == 3
        && gs[1].len == 2
        && gs[2].len == 4
        && gs[1].sep == gs[2].sep
        && matches!(gs[1].sep, Sep::Dash | Sep::Space);
    let left = if ip_shape && start > 0 && b[start - 1] == b'@' {
        // Whatever ends the user part (a password may end in a digit).
        true
    } else if ip_shape && start > 0 && b[start - 1] == b'/' {
        (start < 2 || !b[start - 2].is_ascii_digit()) && !product_token_before(b, start - 1)
    } else if ip_shape && b[..start].ends_with(b"ipv4:") {
        // Samba and others write `ipv4:10.0.0.1:445`.
        true
    } else if ssn_shape && start > 0 && b[start - 1] == b'#' {
        // `SSN#123-45-6789`: here the `#` belongs to the keyword.
        ssn_context(b, start - 1)
    } else {
        left_ok(b, start)
    };
    if !left {
        return None;
    }
    let next = b.get(end).copied().unwrap_or(b' ');
    let next2 = b.get(end + 1).copied().unwrap_or(b' ');
    if is_word(next) || matches!(next, b'@' | b'%') {
        return None;
    }
    // `-x` / `.x` continue an identifier or a file name; `,5` continues a
    // number with thousands separators. (`,alice` is just the next CSV field.)
    if (matches!(next, b'-' | b'.') && next2.is_ascii_alphanumeric())
        || (next == b',' && next2.is_ascii_digit())
    {
        return None;
    }
    let port_or_time = next == b':' && next2.is_ascii_digit();
    let slash = next == b'/';

    // IPv4: four dotted octets. A port or a CIDR suffix may follow.
    if ip_shape {
        let ok = gs.iter().all(|g| {
            let d = g.digits(b);
            let v = d.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'));
            d.len() <= 3 && v <= 255 && (d.len() == 1 || d[0] != b'0' || d.len() == 3)
        });
        if ok && !version_context(b, start) {
            return found(K_IP);
        }
        // Four groups of four digits may still be a card typed with dots.
        if !gs.iter().all(|g| g.len == 4) {
            return None;
        }
    }
    if port_or_time || slash {
        return None;
    }

    let mut digits = [0u8; 64];
    let mut nd = 0;
    for g in gs {
        for &c in g.digits(b) {
            if nd == digits.len() {
                return None;
            }
            digits[nd] = c - b'0';
            nd += 1;
        }
    }
    let digits = &digits[..nd];

    // Payment cards: a known issuer prefix, a known grouping and the Luhn check.
    if !plus
        && !any_paren
        && (13..=19).contains(&ndig)
        && card_shape(gs)
        && card_prefix(digits)
        && luhn(digits)
        && (ndig != 13 || n > 1 || card_context(b, start))
    {
        return found(K_CARD);
    }

    // SSNs: AAA-GG-SSSS (or spaced), or nine bare digits right after an SSN
    // keyword. The shape alone is enough unless a non-SSN keyword such as
    // `order` is closer. A number with the SSN shape but an invalid range is
    // not anything else either.
    if ssn_shape {
        let vetoed = !ssn_context(b, start) && phone_context(b, start).1;
        return if ssn_valid(digits) && !vetoed {
            found(K_SSN)
        } else {
            None
        };
    }
    if !plus && n == 1 && ndig == 9 && !any_paren && ssn_valid(digits) && ssn_context(b, start) {
        return found(K_SSN);
    }

    if is_phone(b, gs, plus, start, ndig, digits, full) {
        return found(K_PHONE);
    }
    None
}

/// Rejects runs glued to something that makes them a different kind of
/// number: a currency symbol, `#`, a path, thousands separators, a time.
fn left_ok(b: &[u8], start: usize) -> bool {
    if start == 0 {
        return true;
    }
    let p = b[start - 1];
    let pp = if start >= 2 { b[start - 2] } else { b' ' };
    if is_word(p) && !is_json_escape(b, start - 1) {
        return false;
    }
    if matches!(
        p,
        b'$' | b'#' | b'/' | b'\\' | b'@' | b'%' | b'^' | b'~' | b'*'
    ) {
        return false;
    }
    if matches!(p, b'-' | b'.') && is_word(pp) {
        return false;
    }
    if matches!(p, b',' | b':' | b'.') && pp.is_ascii_digit() {
        return false;
    }
    // Currency symbols outside ASCII: € (E2 82 AC), ₹ (E2 82 B9), £ (C2 A3), ¥ (C2 A5).
    let before = &b[..start];
    !(before.ends_with("€".as_bytes())
        || before.ends_with("₹".as_bytes())
        || before.ends_with("£".as_bytes())
        || before.ends_with("¥".as_bytes()))
}

fn card_shape(gs: &[Group]) -> bool {
    if gs.len() == 1 {
        return true;
    }
    let sep = gs[1].sep;
    if !matches!(sep, Sep::Space | Sep::Dash | Sep::Dot) || gs[1..].iter().any(|g| g.sep != sep) {
        return false;
    }
    let mut lens = [0usize; MAX_GROUPS];
    for (l, g) in lens.iter_mut().zip(gs) {
        *l = g.len;
    }
    // Dots only in the common four-by-four grouping (`4111.1111.1111.1111`),
    // where no version or address has that shape.
    if sep == Sep::Dot {
        return lens[..gs.len()] == [4, 4, 4, 4];
    }
    matches!(
        &lens[..gs.len()],
        [4, 4, 4, 4] | [4, 6, 5] | [4, 6, 4] | [4, 4, 5] | [4, 4, 4, 1..=3] | [4, 4, 4, 4, 1..=3]
    )
}

/// Issuer prefixes of the major networks (Visa, Mastercard, Amex, Discover,
/// Diners, JCB, UnionPay, Mir). Requiring one cuts the false positives of a
/// bare Luhn check, which one random number in ten passes.
fn card_prefix(d: &[u8]) -> bool {
    let num = |k: usize| d[..k].iter().fold(0u32, |a, &c| a * 10 + u32::from(c));
    let len = d.len();
    match d[0] {
        // Thirteen-digit Visa numbers are rare, while EAN-13 barcodes
        // starting with 4 are everywhere: `classify` accepts them only when
        // grouped or named as a card.
        4 => matches!(len, 13 | 16 | 19),
        5 => (51..=55).contains(&num(2)) && len == 16,
        2 => {
            ((2221..=2720).contains(&num(4)) && len == 16)
                || ((2200..=2204).contains(&num(4)) && len >= 16)
        }
        3 => {
            let two = num(2);
            (matches!(two, 34 | 37) && len == 15)
                || ((300..=305).contains(&num(3)) || matches!(two, 36 | 38 | 39)) && len >= 14
                || (3528..=3589).contains(&num(4)) && len >= 16
        }
        6 => {
            (num(4) == 6011 || num(2) == 65 || (644..=649).contains(&num(3)) || num(2) == 62)
                && len >= 16
        }
        _ => false,
    }
}

/// Whether the `/` at `slash` ends a product name that starts a token, as
/// in a user agent's `Chrome/120.0.0.0`, whose reduced form has four parts
/// that all fit in an octet. A path segment (`/hosts/10.0.0.5`) starts after
/// another `/`, and a product name starts with a capital.
fn product_token_before(b: &[u8], slash: usize) -> bool {
    let mut s = slash;
    while s > 0 && slash - s < 32 && (b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'-') {
        s -= 1;
    }
    s < slash
        && b[s].is_ascii_uppercase()
        && (s == 0 || matches!(b[s - 1], b' ' | b'(' | b'"' | b'\t' | b';'))
}

/// The Luhn mod-10 check used by payment cards.
fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &c) in d.iter().rev().enumerate() {
        let mut v = u32::from(c);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// SSA rules: the area is never 000, 666 or 900-999, the group never 00 and
/// the serial never 0000.
fn ssn_valid(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial = d[5..].iter().fold(0u32, |a, &c| a * 10 + u32::from(c));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// Phone rules. Phone numbers share their digits with dates, order numbers,
/// prices and ids, so a run only counts as a phone number when something
/// besides its digit count says so (7 to 15 digits, the E.164 limits, in every
/// case):
///
/// 1. It starts with `+` and a country code: 8+ digits, and either separators
///    or 10+ digits (bare `+14155550123`).
/// 2. It has the North American shape `(415) 555-0123`, `415-555-0123`,
///    `415.555.0123`, optionally after `1-`, with area code and exchange not
///    starting with 0 or 1 (which rules out most ids like `123-456-7890`).
/// 3. It starts with a national trunk `0` (or the CIS trunk `8` before a
///    parenthesised area code) or a parenthesised area code and
///    has 2-5 groups and 9-12 digits: `020 7946 0958`, `06 12 34 56 78`,
///    `03-1234-5678`, `(11) 91234-5678`. Six or more pairs of digits are a
///    list (lottery numbers), not a French number.
/// 4. A phone keyword (`call`, `phone`, `tel`, `mobile`, `whatsapp`, `tél`,
///    `電話`, …) is the nearest cue word in the 40 bytes before it: then bare
///    runs like `4155550123` and short local numbers like `555-0100` count
///    too, unless code sits between keyword and number (`call f(3) with
///    n = 4155550123`) or a unit follows (`1234567 ms`).
///
/// Rules 2-4 are vetoed when the nearest cue is a non-phone keyword (`order`,
/// `invoice`, `ticket`, `room`, `id`, a bare `#`, …), so `room 555-0100` and
/// `order 415-555-0123` stay while `call me about order 12, 415-555-0123`
/// does not. Dates (`2024-05-01`, `01.05.2024 10`), runs followed by a time,
/// runs glued to a currency sign, thousands-grouped amounts and runs of years
/// are never phone numbers. Rule 1 has no keyword veto: a `+` and a country
/// code are strong enough on their own.
///
/// Known gaps: the old German slash style (`030/1234567`), vanity numbers
/// (`1-800-FLOWERS`) and numbers spelled out in words are not detected.
#[allow(clippy::too_many_arguments)]
fn is_phone(
    b: &[u8],
    gs: &[Group],
    plus: bool,
    start: usize,
    ndig: usize,
    digits: &[u8],
    full: bool,
) -> bool {
    if !(7..=15).contains(&ndig) || has_date(b, gs) {
        return false;
    }
    if plus {
        return digits[0] != 0 && ndig >= 8 && (gs.len() > 1 || ndig >= 10);
    }
    let (positive, negative) = phone_context(b, start);
    if negative {
        return false;
    }
    // Groups of one digit are counters or list items, except a leading
    // North American `1` and a `(0)` trunk marker.
    // Russian and other CIS numbers put a trunk `8` before a parenthesised
    // area code: `8 (495) 123-45-67`.
    let trunk_eight = gs.len() > 2 && gs[0].len == 1 && digits[0] == 8 && gs[1].paren;
    let short_ok = gs
        .iter()
        .enumerate()
        .all(|(k, g)| g.len >= 2 || g.paren || (k == 0 && (digits[0] == 1 || trunk_eight)));
    if !short_ok {
        return false;
    }
    if nanp(b, gs) {
        return true;
    }
    if !full {
        return false;
    }
    // Six or more pairs of digits are a list (lottery numbers), not the
    // five pairs of a French number.
    let pair_list = gs.len() > 5 && gs.iter().all(|g| g.len == 2);
    let trunk = (2..=5).contains(&gs.len())
        && (9..=12).contains(&ndig)
        && (digits[0] == 0 || gs[0].paren || trunk_eight)
        && gs[0].len <= 5
        && !pair_list;
    if trunk {
        return true;
    }
    positive.is_some_and(|k| keyword_applies(&b[k..start]))
        && !all_years(b, gs)
        && !thousands(gs)
        && !pair_list
        && !unit_follows(b, gs[gs.len() - 1].end)
}

const UNITS: &[&str] = &[
    "ms",
    "s",
    "sec",
    "secs",
    "second",
    "seconds",
    "min",
    "mins",
    "minute",
    "minutes",
    "h",
    "hours",
    "days",
    "b",
    "bytes",
    "kb",
    "mb",
    "gb",
    "tb",
    "kib",
    "mib",
    "gib",
    "tokens",
    "characters",
    "chars",
    "words",
    "lines",
    "rows",
    "records",
    "users",
    "requests",
    "calls",
    "times",
    "items",
    "km",
    "m",
    "cm",
    "mm",
    "kg",
    "g",
    "lb",
    "lbs",
    "px",
    "pt",
    "hz",
    "khz",
    "mhz",
    "ghz",
    "views",
    "downloads",
    "points",
    "steps",
    "frames",
    "iterations",
    "x",
];

/// Whether a unit word follows `end` ("1234567 ms"): then the number is a
/// quantity, whatever keyword came before it.
fn unit_follows(b: &[u8], end: usize) -> bool {
    let mut p = end;
    if b.get(p) == Some(&b' ') {
        p += 1;
    }
    let mut e = p;
    while e < b.len() && b[e].is_ascii_alphabetic() && e - p < 12 {
        e += 1;
    }
    if e == p || (e < b.len() && b[e].is_ascii_alphabetic()) {
        return false;
    }
    let mut word = [0u8; 12];
    let w = &mut word[..e - p];
    w.copy_from_slice(&b[p..e]);
    w.make_ascii_lowercase();
    UNITS.iter().any(|u| u.as_bytes() == &*w)
}

/// Between a phone keyword and the number there may be prose ("call me
/// back on") or a key-value separator (`"phone": `), but not code: in
/// `call f(3) with n = 4155550123` the number belongs to `n`, not to the call.
fn keyword_applies(gap: &[u8]) -> bool {
    let code = gap.iter().any(|&c| matches!(c, b'=' | b';' | b'{' | b'}'));
    !code
        || gap
            .iter()
            .all(|&c| c.is_ascii_whitespace() || matches!(c, b'"' | b'\'' | b':' | b'='))
}

fn nanp(b: &[u8], gs: &[Group]) -> bool {
    let g = if gs.len() == 4 && gs[0].len == 1 && !gs[0].paren {
        &gs[1..]
    } else {
        gs
    };
    if g.len() != 3 || g[0].len != 3 || g[1].len != 3 || g[2].len != 4 || g[1].paren || g[2].paren {
        return false;
    }
    let area = g[0].digits(b)[0];
    let exchange = g[1].digits(b)[0];
    if !(b'2'..=b'9').contains(&area) || !(b'2'..=b'9').contains(&exchange) {
        return false;
    }
    match (g[1].sep, g[2].sep) {
        (Sep::Space | Sep::Adjacent, Sep::Dash | Sep::Space) if g[0].paren => true,
        (a, c) if !g[0].paren => {
            a == c && matches!(a, Sep::Dash | Sep::Dot | Sep::Space)
                || (a == Sep::Space && c == Sep::Dash)
        }
        _ => false,
    }
}

/// A date inside the run: YYYY-MM-DD / YYYY.MM.DD, or DD.MM.YYYY /
/// MM-DD-YYYY, with one separator used twice.
fn has_date(b: &[u8], gs: &[Group]) -> bool {
    let val = |g: &Group| {
        g.digits(b)
            .iter()
            .fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'))
    };
    gs.windows(3).any(|w| {
        let sep_ok = w[1].sep == w[2].sep && matches!(w[1].sep, Sep::Dash | Sep::Dot);
        if !sep_ok || w.iter().any(|g| g.paren) {
            return false;
        }
        let (a, m, c) = (val(&w[0]), val(&w[1]), val(&w[2]));
        let ymd = w[0].len == 4
            && (1900..=2099).contains(&a)
            && w[1].len <= 2
            && (1..=12).contains(&m)
            && w[2].len <= 2
            && (1..=31).contains(&c);
        let dmy = w[0].len <= 2
            && (1..=31).contains(&a)
            && w[1].len <= 2
            && (1..=31).contains(&m)
            && w[2].len == 4
            && (1900..=2099).contains(&c);
        ymd || dmy
    })
}

fn all_years(b: &[u8], gs: &[Group]) -> bool {
    gs.len() > 1
        && gs.iter().all(|g| {
            let d = g.digits(b);
            d.len() == 4 && (d.starts_with(b"19") || d.starts_with(b"20"))
        })
}

/// `1 234 567`: one to three digits, then groups of exactly three.
fn thousands(gs: &[Group]) -> bool {
    gs.len() > 1
        && gs[0].len <= 3
        && gs[1..]
            .iter()
            .all(|g| g.len == 3 && matches!(g.sep, Sep::Space | Sep::Dot))
}

// Keyword cues, as bit flags: a word can be a cue for more than one rule.
const CUE_PHONE: u8 = 1;
const CUE_NOT_PHONE: u8 = 2;
const CUE_SSN: u8 = 4;
const CUE_VERSION: u8 = 8;
const CUE_CARD: u8 = 16;

/// The cues of one lower-cased word; `prev` is the word before it, for the
/// two-word cue "my number".
fn cue_flags(word: &[u8], prev: &[u8]) -> u8 {
    match word {
        b"phone" | b"telephone" | b"tel" | b"call" | b"calling" | b"called" | b"mobile"
        | b"cell" | b"cellphone" | b"fax" | b"whatsapp" | b"sms" | b"text" | b"texting"
        | b"contact" | b"reach" | b"dial" | b"ring" | b"hotline" | b"helpline" | b"landline"
        | b"portable" | b"telefon" | b"telefono" | b"celular" | b"telefone" | b"handy"
        | b"anrufen" | b"appel" | b"movil" | b"mobil" | b"phones" => CUE_PHONE,
        b"number" if matches!(prev, b"my" | b"your" | b"his" | b"her" | b"our" | b"their") => {
            CUE_PHONE
        }
        b"order" | b"invoice" | b"inv" | b"ticket" | b"tracking" | b"track" | b"ref"
        | b"reference" | b"case" | b"account" | b"acct" | b"id" | b"sku" | b"serial" | b"isbn"
        | b"room" | b"zip" | b"postcode" | b"po" | b"pid" | b"port" | b"uid" | b"gid"
        | b"transaction" | b"txn" | b"confirmation" | b"booking" | b"reservation" | b"policy"
        | b"claim" | b"item" | b"part" | b"model" | b"pin" | b"otp" | b"code" | b"batch"
        | b"lot" | b"iban" | b"bic" | b"swift" | b"routing" | b"ein" | b"vat" | b"timestamp"
        | b"epoch" => CUE_NOT_PHONE,
        b"version" | b"ver" | b"build" => CUE_NOT_PHONE | CUE_VERSION,
        // Words that also come right before addresses in network text
        // (`rule 10.0.0.5`, `table 10.0.0.0`, `step`) are left out.
        b"v" | b"release" | b"firmware" | b"section" | b"chapter" | b"figure" | b"fig"
        | b"paragraph" | b"clause" | b"article" | b"oid" => CUE_VERSION,
        b"ssn" | b"social" | b"ss" => CUE_SSN,
        b"card" | b"pan" | b"cc" | b"visa" | b"karte" | b"kartennummer" | b"carte" | b"tarjeta" => {
            CUE_CARD
        }
        _ if !word.is_ascii() => non_ascii_cue(word),
        _ => 0,
    }
}

/// Cues outside ASCII. CJK text has no spaces, so those keywords are looked
/// for inside the word rather than as the whole word.
fn non_ascii_cue(word: &[u8]) -> u8 {
    const EXACT: &[(&str, u8)] = &[
        ("tél", CUE_PHONE),
        ("téléphone", CUE_PHONE),
        ("teléfono", CUE_PHONE),
        ("móvil", CUE_PHONE),
        ("§", CUE_VERSION),
    ];
    const INSIDE: &[&str] = &["電話", "携帯"];
    for (k, flags) in EXACT {
        if word == k.as_bytes() {
            return *flags;
        }
    }
    if INSIDE
        .iter()
        .any(|k| memchr::memmem::find(word, k.as_bytes()).is_some())
    {
        return CUE_PHONE;
    }
    0
}

/// Finds the cue word nearest before `start` (within `window` bytes) whose
/// flags intersect `mask`. Returns its flags and the offset in `b` where it
/// ends. Words are runs of ASCII letters and non-ASCII bytes; a `#` is a
/// non-phone cue of its own (`#4155550123` is an id). A non-phone cue labels
/// the number right after it, so once another number stands between it and
/// `start` it no longer counts: in `order 12, call 415-555-0123` the `12` is
/// the order.
fn nearest_cue(b: &[u8], start: usize, window: usize, mask: u8) -> Option<(u8, usize)> {
    let from = start.saturating_sub(window);
    let mut buf = [0u8; 48];
    let w = &mut buf[..start - from];
    w.copy_from_slice(&b[from..start]);
    w.make_ascii_lowercase();
    let is_letter = |c: u8| c.is_ascii_alphabetic() || c >= 0x80;
    let mut e = w.len();
    let mut crossed_number = false;
    while e > 0 {
        let c = w[e - 1];
        let mask = if crossed_number {
            mask & !CUE_NOT_PHONE
        } else {
            mask
        };
        if c.is_ascii_digit() {
            crossed_number = true;
        }
        if c == b'#' {
            // "phone #" and "cell #" mean "number": the `#` takes the cue of
            // a phone word right before it. Otherwise it marks an id.
            let mut p = e - 1;
            while p > 0 && w[p - 1] == b' ' {
                p -= 1;
            }
            let mut q = p;
            while q > 0 && is_letter(w[q - 1]) {
                q -= 1;
            }
            let phone_word = q < p && cue_flags(&w[q..p], b"") & CUE_PHONE != 0;
            if phone_word && mask & CUE_PHONE != 0 {
                return Some((CUE_PHONE, from + e));
            }
            if !phone_word && mask & CUE_NOT_PHONE != 0 {
                return Some((CUE_NOT_PHONE, from + e));
            }
            e -= 1;
            continue;
        }
        if !is_letter(c) {
            e -= 1;
            continue;
        }
        let mut s = e;
        while s > 0 && is_letter(w[s - 1]) {
            s -= 1;
        }
        // A word cut by the window edge is not a word ("hotel" seen as "tel").
        if s == 0 && from > 0 && is_letter(b[from - 1]) {
            return None;
        }
        let word = &w[s..e];
        let mut p = s;
        while p > 0 && !is_letter(w[p - 1]) {
            p -= 1;
        }
        let mut q = p;
        while q > 0 && is_letter(w[q - 1]) {
            q -= 1;
        }
        let flags = cue_flags(word, &w[q..p]) & mask;
        if flags != 0 {
            return Some((flags, from + e));
        }
        e = s;
    }
    None
}

/// Looks at the 40 bytes before `start` for phone keywords and non-phone
/// keywords; whichever is closer to the number decides. Returns where the
/// winning phone keyword ends (as an offset into `b`), and whether a
/// non-phone keyword won.
fn phone_context(b: &[u8], start: usize) -> (Option<usize>, bool) {
    match nearest_cue(b, start, 40, CUE_PHONE | CUE_NOT_PHONE) {
        Some((flags, _)) if flags & CUE_NOT_PHONE != 0 => (None, true),
        Some((_, end)) => (Some(end), false),
        None => (None, false),
    }
}

fn card_context(b: &[u8], start: usize) -> bool {
    nearest_cue(b, start, 32, CUE_CARD).is_some()
}

fn ssn_context(b: &[u8], start: usize) -> bool {
    nearest_cue(b, start, 32, CUE_SSN).is_some()
}

/// Whether the word right before `start` (across spaces, `:` or `=` only)
/// makes a dotted quad a version: `version 2.4.1.0`, `Section 2.3.1.4`. A cue
/// further back does not count, because an address read as a version is
/// stored in clear, which is worse than a version read as an address: in
/// `GET /v2/me from 172.20.147.207` the `v` belongs to the URL. A `v` glued
/// to the number (`v1.2.3.4`) never gets here, the run starts inside a word.
fn version_context(b: &[u8], start: usize) -> bool {
    let mut e = start;
    while e > 0 && start - e < 3 && matches!(b[e - 1], b' ' | b'\t' | b':' | b'=') {
        e -= 1;
    }
    let is_letter = |c: u8| c.is_ascii_alphabetic() || c >= 0x80;
    let mut s = e;
    while s > 0 && e - s < 16 && is_letter(b[s - 1]) {
        s -= 1;
    }
    if s == e || (s > 0 && is_letter(b[s - 1])) {
        return false;
    }
    let mut word = [0u8; 16];
    let word = &mut word[..e - s];
    word.copy_from_slice(&b[s..e]);
    word.make_ascii_lowercase();
    cue_flags(word, b"") & CUE_VERSION != 0
}

/// IBAN lengths by country, from the IBAN registry.
// Kept as a dense table: one arm per line would add seventy lines of noise.
#[rustfmt::skip]
fn iban_length(cc: &[u8]) -> Option<usize> {
    Some(match cc {
        b"AD" => 24, b"AE" => 23, b"AL" => 28, b"AT" => 20, b"AZ" => 28, b"BA" => 20,
        b"BE" => 16, b"BG" => 22, b"BH" => 22, b"BR" => 29, b"CH" => 21, b"CR" => 22,
        b"CY" => 28, b"CZ" => 24, b"DE" => 22, b"DK" => 18, b"DO" => 28, b"EE" => 20,
        b"EG" => 29, b"ES" => 24, b"FI" => 18, b"FO" => 18, b"FR" => 27, b"GB" => 22,
        b"GE" => 22, b"GI" => 23, b"GL" => 18, b"GR" => 27, b"GT" => 28, b"HR" => 21,
        b"HU" => 28, b"IE" => 22, b"IL" => 23, b"IS" => 26, b"IT" => 27, b"JO" => 30,
        b"KW" => 30, b"KZ" => 20, b"LB" => 28, b"LI" => 21, b"LT" => 20, b"LU" => 20,
        b"LV" => 21, b"MC" => 27, b"MD" => 24, b"ME" => 22, b"MK" => 19, b"MR" => 27,
        b"MT" => 31, b"MU" => 30, b"NL" => 18, b"NO" => 15, b"PK" => 24, b"PL" => 28,
        b"PS" => 29, b"PT" => 25, b"QA" => 29, b"RO" => 24, b"RS" => 22, b"SA" => 24,
        b"SE" => 24, b"SI" => 19, b"SK" => 24, b"SM" => 27, b"TN" => 24, b"TR" => 26,
        b"UA" => 29, b"VG" => 24, b"XK" => 20,
        _ => return None,
    })
}

/// An IBAN starting at `s`: the country's exact length in letters and
/// digits, optionally in groups of four split by spaces or dashes, passing
/// mod-97.
/// Letters may be in either case, since people type IBANs in lower case too;
/// the exact length and the checksum keep words out.
fn iban_at(b: &[u8], s: usize) -> Option<usize> {
    let cc = [b[s].to_ascii_uppercase(), b[s + 1].to_ascii_uppercase()];
    let want = iban_length(&cc)?;
    if !b.get(s + 3)?.is_ascii_digit() {
        return None;
    }
    let mut buf = [0u8; 34];
    let mut n = 0;
    let mut p = s;
    // Groups of four are split by spaces, or by dashes in some forms, but
    // one IBAN never mixes the two.
    let mut sep = 0u8;
    while n < want {
        let c = *b.get(p)?;
        if c.is_ascii_alphanumeric() {
            buf[n] = c.to_ascii_uppercase();
            n += 1;
            p += 1;
        } else if matches!(c, b' ' | b'-')
            && (sep == 0 || sep == c)
            && n % 4 == 0
            && b.get(p + 1).is_some_and(u8::is_ascii_alphanumeric)
        {
            sep = c;
            p += 1;
        } else {
            return None;
        }
    }
    if p < b.len() && is_word(b[p]) {
        return None;
    }
    iban_checksum_ok(&buf[..n]).then_some(p)
}

/// ISO 13616 check: move the first four characters to the end, read letters
/// as 10-35, and the number must be 1 modulo 97.
fn iban_checksum_ok(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let mut rem = 0u32;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(c - b'A') + 10) % 97,
            _ => return false,
        };
    }
    rem == 1
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

    fn red(text: &str) -> String {
        let r = Redactor::new(&RedactorConfig::default()).unwrap();
        r.redact(text).text.into_owned()
    }

    fn digits(s: &str) -> Vec<u8> {
        s.bytes()
            .filter(u8::is_ascii_digit)
            .map(|c| c - b'0')
            .collect()
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
    fn luhn_accepts_valid_and_rejects_changed_numbers() {
        assert!(luhn(&digits("4111111111111111")));
        assert!(luhn(&digits("5500000000000004")));
        assert!(luhn(&digits("378282246310005")));
        assert!(luhn(&digits("6011111111111117")));
        assert!(!luhn(&digits("4111111111111112")));
        assert!(!luhn(&digits("378282246310006")));
    }

    #[test]
    fn card_prefixes_follow_the_networks() {
        assert!(card_prefix(&digits("4111111111111111")));
        assert!(card_prefix(&digits("2221000000000009")));
        assert!(card_prefix(&digits("378282246310005")));
        assert!(!card_prefix(&digits("378282246310005000")));
        assert!(!card_prefix(&digits("9400111111111111")));
        assert!(!card_prefix(&digits("1234567812345670")));
    }

    #[test]
    fn mod97_accepts_valid_ibans_only() {
        assert!(iban_checksum_ok(b"DE89370400440532013000"));
        assert!(iban_checksum_ok(b"GB82WEST12345698765432"));
        assert!(iban_checksum_ok(b"FR1420041010050500013M02606"));
        assert!(iban_checksum_ok(b"NL91ABNA0417164300"));
        assert!(!iban_checksum_ok(b"DE89370400440532013001"));
        assert!(!iban_checksum_ok(b"GB82WEST12345698765433"));
        assert!(!iban_checksum_ok(b"DE8"));
    }

    #[test]
    fn ssn_ranges_follow_the_ssa_rules() {
        assert!(ssn_valid(&digits("123-45-6789")));
        assert!(ssn_valid(&digits("665-01-0001")));
        assert!(ssn_valid(&digits("899-99-9999")));
        assert!(!ssn_valid(&digits("000-12-3456")));
        assert!(!ssn_valid(&digits("666-12-3456")));
        assert!(!ssn_valid(&digits("900-12-3456")));
        assert!(!ssn_valid(&digits("999-12-3456")));
        assert!(!ssn_valid(&digits("123-00-4567")));
        assert!(!ssn_valid(&digits("123-45-0000")));
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
    fn secret_patterns_each_have_one_group() {
        for (p, _) in SECRET_PATTERNS {
            let re = Regex::new(p).unwrap();
            assert_eq!(re.captures_len(), 2, "{p}");
        }
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
    fn phone_keyword_reaches_past_prose_but_not_code() {
        assert_eq!(red("Phone (mobile): 4155550136"), "Phone (mobile): <PHONE>");
        assert_eq!(
            red("Call the function 3 times with n = 4155550123 as the seed."),
            "Call the function 3 times with n = 4155550123 as the seed."
        );
        assert_eq!(red("The call took 1234567 ms"), "The call took 1234567 ms");
    }

    #[test]
    fn hash_sign_after_a_phone_word_means_number() {
        assert_eq!(red("my cell # is 415 555 0132"), "my cell # is <PHONE>");
        assert_eq!(red("Phone #: 4155550132"), "Phone #: <PHONE>");
        assert_eq!(red("call about #4155550132"), "call about #4155550132");
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

    /// A `v` somewhere before an address (a `/v2/` in a URL, the word
    /// `build` in a file name) does not make it a version number: only a
    /// version word right before the number does, or a `v` glued to it.
    #[test]
    fn an_address_after_a_versioned_url_path_is_still_an_address() {
        assert_eq!(
            red("curl https://api.acme.dev/v2/me returns 403 from 172.20.147.207"),
            "curl https://api.acme.dev/v2/me returns 403 from <IP_ADDRESS>"
        );
        assert_eq!(
            red("GET /api/v1/users 401 client=10.0.0.7"),
            "GET /api/v1/users 401 client=<IP_ADDRESS>"
        );
        assert_eq!(
            red("scp build.tar.gz ubuntu@203.0.113.9:/tmp/"),
            "scp build.tar.gz ubuntu@<IP_ADDRESS>:/tmp/"
        );
        assert_eq!(
            red("release notes for v3 say to allow 198.51.100.4"),
            "release notes for v3 say to allow <IP_ADDRESS>"
        );
        for s in [
            "I'm running version 2.4.1.0 and it crashes",
            "Firmware 1.0.0.5 fixes it.",
            "Section 2.3.1.4 explains why",
            "installed v1.2.3.4 yesterday",
            "Version: 10.0.0.1",
        ] {
            assert_eq!(red(s), s);
        }
    }

    /// Cisco writes MAC addresses as three dotted groups of four hex digits,
    /// and device tools print them as twelve bare hex digits after a word
    /// that says what they are.
    #[test]
    fn mac_addresses_in_every_common_notation() {
        assert_eq!(
            red("Internet  10.1.1.1   12   2c20.ceae.ec41  ARPA   Vlan10"),
            "Internet  <IP_ADDRESS>   12   <MAC_ADDRESS>  ARPA   Vlan10"
        );
        assert_eq!(
            red("address is 0050.7966.6800 (bia 0050.7966.6800)"),
            "address is <MAC_ADDRESS> (bia <MAC_ADDRESS>)"
        );
        assert_eq!(red("nic 00-1a-2b-3c-4d-5e up"), "nic <MAC_ADDRESS> up");
        assert_eq!(
            red("client MAC E878D6CE3BEB roams"),
            "client MAC <MAC_ADDRESS> roams"
        );
        assert_eq!(red("mac=1248ba335599 vlan=30"), "mac=<MAC_ADDRESS> vlan=30");
        assert_eq!(
            red("Your device's MAC is 90D8AB9AA090."),
            "Your device's MAC is <MAC_ADDRESS>."
        );
        for s in [
            "container 3f4e5d6c7b8a is up",
            "uuid 550e8400-e29b-41d4-a716-446655440000",
            "macOS build 22f3a1b9c0de",
            "see 1.2.3 and 2024.05.06",
            "file app.3f9a.c2b1.js",
            "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48",
        ] {
            assert_eq!(red(s), s);
        }
    }

    /// Addresses where logs and URLs put them: after the password of a
    /// URL, after Samba's `ipv4:`, and before a port in netstat's IPv6
    /// column. A dotted quad glued to a browser's product name is its version.
    #[test]
    fn addresses_after_userinfo_prefixes_and_before_ports() {
        assert_eq!(
            red("postgres://app:Monkey-ysO66@192.168.143.71:5432/orders"),
            "postgres://<SECRET>@<IP_ADDRESS>:5432/orders"
        );
        assert_eq!(
            red("smbd: 10.1.2.3 (ipv4:172.20.172.125:29402) connect"),
            "smbd: <IP_ADDRESS> (ipv4:<IP_ADDRESS>:29402) connect"
        );
        assert_eq!(
            red("tcp6  0  0 2001:db8::7:443  ::1:51544  ESTABLISHED"),
            "tcp6  0  0 <IP_ADDRESS>  <IP_ADDRESS>:51544  ESTABLISHED"
        );
        assert_eq!(
            red("GET /hosts/10.0.0.5 HTTP/1.1"),
            "GET /hosts/<IP_ADDRESS> HTTP/1.1"
        );
        let ua =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(red(ua), ua);
    }

    /// Query strings carry addresses percent-encoded, `%40` for the `@`.
    #[test]
    fn percent_encoded_emails_in_query_strings() {
        assert_eq!(
            red("GET /reset?email=kenji-haddad%40example.fr HTTP/1.1"),
            "GET /reset?email=<EMAIL> HTTP/1.1"
        );
        assert_eq!(
            red("login_hint=ana+test%40acme-widgets.example&next=%2F"),
            "login_hint=<EMAIL>&next=%2F"
        );
        for s in ["width=100%40px", "discount 5%40 items", "a%40b"] {
            assert_eq!(red(s), s);
        }
    }

    /// Cards typed with dots, and thirteen-digit Visa numbers when they are
    /// grouped or named as a card (bare, they are as likely EAN-13 barcodes).
    #[test]
    fn cards_with_dots_and_thirteen_digit_visa() {
        assert_eq!(
            red("I typed 4111.1111.1111.1111 in"),
            "I typed <CREDIT_CARD> in"
        );
        assert_eq!(
            red("Kartennummer: 4145 8641 42756"),
            "Kartennummer: <CREDIT_CARD>"
        );
        assert_eq!(red("card: 4751-1239-59573"), "card: <CREDIT_CARD>");
        assert_eq!(
            red(r#"{"pan": "4384901973820", "exp": "08/27"}"#),
            r#"{"pan": "<CREDIT_CARD>", "exp": "08/27"}"#
        );
        assert_eq!(
            red("EAN 4006381333931 barcode"),
            "EAN 4006381333931 barcode"
        );
    }

    /// Credentials as configuration files, shells and headers write them.
    #[test]
    fn credentials_in_config_dumps_and_command_lines() {
        for (text, want) in [
            ("DB_PASSWORD=Winter-UCm93", "DB_PASSWORD=<SECRET>"),
            ("PGPASSWORD=MonkeyXTk3 psql -h db", "PGPASSWORD=<SECRET> psql -h db"),
            ("  jwt_secret: 323eae191b743da46d008b6287d5004e", "  jwt_secret: <SECRET>"),
            ("SHOPIFY_ACCESS_TOKEN=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", "SHOPIFY_ACCESS_TOKEN=<SECRET>"),
            ("TWILIO_API_KEY=SK0e37ca7f7176fef8486ec99aa7de7ffb", "TWILIO_API_KEY=<SECRET>"),
            ("curl -u admin:Pa55.Tkq5222 https://ci.example.com", "curl -u <SECRET> https://ci.example.com"),
            ("mysql -h db -u root -pPa55.SCv4 shop", "mysql -h db -u root -p<SECRET> shop"),
            ("Cookie: _ga=GA1.2.1234567890.1714989802; sessionid=4904d35fe25ec78a7aaf1526b7c1817d", "Cookie: _ga=GA1.2.1234567890.1714989802; sessionid=<SECRET>"),
            ("https://discord.com/api/webhooks/123456789012345678/0iX0R7M_nnoTNjUVurMg3P8m9FYe6ibbzCpOFP5c63IU", "https://discord.com/api/webhooks/123456789012345678/<SECRET>"),
            ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBGYx0aABCAC7\n-----END PGP PRIVATE KEY BLOCK-----", "<SECRET>"),
            // A key name whose own pattern fails its check must not hide
            // the token's pattern.
            ("export HF_TOKEN=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", "export HF_TOKEN=<SECRET>"),
            ("key dop_v1_3e76878465063340360ae17a57993be4b07366dd206d3bf7932df2a58568d4bb", "key <SECRET>"),
        ] {
            assert_eq!(red(text), want, "{text}");
        }
        for s in [
            "password: ${DB_PASSWORD}",
            "token_type=Bearer max_tokens=4096",
            "docker run -u 1000:1000 app",
            "next_page_token: null",
        ] {
            assert_eq!(red(s), s);
        }
    }

    /// Russian and other CIS numbers are written with the trunk `8` before
    /// a parenthesised area code.
    #[test]
    fn trunk_eight_before_an_area_code() {
        assert_eq!(
            red("You can text 8 (495) 123-45-67 when it arrives."),
            "You can text <PHONE> when it arrives."
        );
        assert_eq!(red("Звоните: 8 (812) 555-12-34"), "Звоните: <PHONE>");
        assert_eq!(red("step 8 (of 12) done"), "step 8 (of 12) done");
    }

    /// Credential shapes from the held-out corpus's second round.
    #[test]
    fn credentials_in_connection_strings_and_client_flags() {
        for (text, want) in [
            ("passphrase: correct-horse-battery-staple-42", "passphrase: <SECRET>"),
            (
                "AccountName=acme;AccountKey=s4DPvJa7NZ6E3W8FvLvlxlPtxzwuFT2TeZqH==;EndpointSuffix=core.windows.net",
                "AccountName=acme;AccountKey=<SECRET>;EndpointSuffix=core.windows.net",
            ),
            ("_auth=AAy+LQZl0p0UZiPGxdF2una4Q5af2JJjsTDfKuxa=", "_auth=<SECRET>"),
            ("pg_dump --username app --password S3cret1x shop", "pg_dump --username app --password <SECRET> shop"),
            ("redis-cli -h cache -a S3cretPass1 ping", "redis-cli -h cache -a <SECRET> ping"),
        ] {
            assert_eq!(red(text), want, "{text}");
        }
        for s in ["--password-file /run/secrets/db", "redis-cli -a"] {
            assert_eq!(red(s), s);
        }
    }

    /// A `+` percent-encoded in a query string, and IBANs grouped by dashes.
    #[test]
    fn percent_encoded_plus_and_dashed_ibans() {
        assert_eq!(
            red("GET /callback?phone=%2B14155550132&lang=en"),
            "GET /callback?phone=<PHONE>&lang=en"
        );
        assert_eq!(
            red("IBAN DE89-3704-0044-0532-0130-00 please"),
            "IBAN <IBAN> please"
        );
        assert_eq!(red("color=%2B123&x=1"), "color=%2B123&x=1");
    }

    /// Spanish and Latin American forms put the country code in parentheses.
    #[test]
    fn country_code_in_parentheses() {
        assert_eq!(red("Llámame al (+34) 912 345 678"), "Llámame al <PHONE>");
        assert_eq!(red("tel (+52) 55 1234 5678."), "tel <PHONE>.");
        assert_eq!(red("f(+12) 345 678"), "f(+12) 345 678");
    }

    /// Lower-case `token` keys are matched in the shapes keys take, not
    /// inside the usage fields of every completion.
    #[test]
    fn lower_case_token_keys() {
        for (text, want) in [
            (
                r#"{"token": "abcd1234efgh5678ijkl"}"#,
                r#"{"token": "<SECRET>"}"#,
            ),
            (
                "GET /export?token=abcd1234efgh5678ijkl&x=1",
                "GET /export?token=<SECRET>&x=1",
            ),
            ("  token: abcd1234efgh5678ijkl", "  token: <SECRET>"),
            (
                r#"{"refresh_token":"abcd1234efgh5678ijkl"}"#,
                r#"{"refresh_token":"<SECRET>"}"#,
            ),
        ] {
            assert_eq!(red(text), want, "{text}");
        }
        let usage = r#"{"usage": {"prompt_tokens": 1234567890123, "total_tokens": 1234567890124}}"#;
        assert!(!Redactor::new(&RedactorConfig::default())
            .unwrap()
            .may_hold_secrets(usage));
    }

    /// Local parts may hold accented Latin letters (RFC 6531 addresses).
    #[test]
    fn accented_local_parts() {
        assert_eq!(red("Kontakt: jürgen.weiß@example.de"), "Kontakt: <EMAIL>");
        assert_eq!(red("écrire à zoé@example.fr"), "écrire à <EMAIL>");
        assert_eq!(
            red("私のメールはbob@example.comです"),
            "私のメールは<EMAIL>です"
        );
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
