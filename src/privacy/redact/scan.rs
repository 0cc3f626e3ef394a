//! What the scanners share: the bytes that can start a built-in entity, so
//! that text without any of them skips every scan, and the byte classes and
//! token boundaries that each scanner tests.

/// Whether one of the scanners could find anything in `b`. Each starts
/// only from a byte of its own: e-mail addresses from `@`, MAC and IPv6
/// addresses from `:` or `-`, and every numeric kind (phones, cards, IBANs,
/// SSNs, IPv4) from an ASCII digit. Text with none of them, as most short
/// strings of a JSON body are (roles, models, finish reasons, words), skips
/// all three scans in one pass.
pub(super) fn may_hold_builtin_entity(b: &[u8]) -> bool {
    b.iter()
        .any(|&c| c.is_ascii_digit() || matches!(c, b'@' | b':' | b'-'))
}

pub(super) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

pub(super) fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Whether `b[pos]` starts a token: the previous byte is not part of a word.
/// Captured text is often JSON with its escapes still in place, so the `n` of
/// a `\n` does not count as a word byte.
pub(super) fn boundary_before(b: &[u8], pos: usize) -> bool {
    if pos == 0 {
        return true;
    }
    let p = b[pos - 1];
    !is_word(p) || is_json_escape(b, pos - 1)
}

/// Whether `b[i]` is the letter of a JSON escape such as `\n` or `\t`.
pub(super) fn is_json_escape(b: &[u8], i: usize) -> bool {
    matches!(b[i], b'n' | b't' | b'r' | b'b' | b'f')
        && i >= 1
        && b[i - 1] == b'\\'
        && (i < 2 || b[i - 2] != b'\\')
}
