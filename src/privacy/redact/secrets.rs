//! Credentials: API keys and tokens, passwords in configuration files and on
//! command lines, credentials in URLs and connection strings, private key
//! blocks.
//!
//! Every pattern begins with a literal and all of them are joined into one
//! regex, so that the regex engine skips prose with a literal prefilter.

use regex::Regex;

use super::{Finding, K_SECRET};

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

/// The credential patterns, compiled into one regex.
pub(super) struct Secrets {
    re: Regex,
}

impl Secrets {
    pub(super) fn new() -> Secrets {
        let combined = SECRET_PATTERNS
            .iter()
            .map(|(p, _)| format!("(?:{p})"))
            .collect::<Vec<_>>()
            .join("|");
        // The built-in pattern is a constant covered by the unit tests, so a
        // failure here is a bug in this file rather than bad configuration.
        let re = Regex::new(&combined).expect("built-in secret patterns compile");
        Secrets { re }
    }

    /// Whether a pattern matches anywhere in `text`.
    pub(super) fn is_match(&self, text: &str) -> bool {
        self.re.is_match(text)
    }

    /// Pushes a finding for each credential in `text`.
    pub(super) fn find(&self, text: &str, out: &mut Vec<Finding>) {
        // `captures_iter` would allocate on every call; a plain search does
        // not, and capture positions are only resolved for actual matches,
        // which are rare.
        let mut locs = None;
        let mut pos = 0;
        while let Some(m) = self.re.find_at(text, pos) {
            pos = m.end();
            let locs = locs.get_or_insert_with(|| self.re.capture_locations());
            if self.re.captures_read_at(locs, text, m.start()).is_none() {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::redact::tests::red;
    use crate::privacy::redact::{Redactor, RedactorConfig};

    #[test]
    fn secret_patterns_each_have_one_group() {
        for (p, _) in SECRET_PATTERNS {
            let re = Regex::new(p).unwrap();
            assert_eq!(re.captures_len(), 2, "{p}");
        }
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
}
