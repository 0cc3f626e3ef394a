//! E-mail addresses, found from each `@` and from its percent-encoded form
//! `%40`, local parts with accented Latin letters included.

use super::scan::{is_hex, is_json_escape, is_word};
use super::{Finding, K_EMAIL};

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
pub(super) fn scan_emails(b: &[u8], out: &mut Vec<Finding>) {
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

#[cfg(test)]
mod tests {
    use crate::privacy::redact::tests::red;

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
}
