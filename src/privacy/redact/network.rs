//! MAC and IPv6 addresses: the scan of every `:`, `-` and `.`, and the bare
//! twelve hex digits that the number scan hands over when a word such as
//! `MAC` or `bssid` names them. IPv4 addresses are runs of digits, so they
//! are classified in `numbers`, beside the versions they resemble.

use std::net::Ipv6Addr;
use std::str::FromStr;

use super::scan::{boundary_before, is_hex, is_word};
use super::{Finding, K_IP, K_MAC};

/// Visits every `:`, `-` and `.`; MAC addresses are tried at all three (the
/// dot for Cisco's `2c20.ceae.ec41`), IPv6 at `:`.
pub(super) fn scan_colons_and_dashes(b: &[u8], out: &mut Vec<Finding>) {
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
pub(super) fn bare_mac_at(b: &[u8], ws: usize) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use crate::privacy::redact::tests::red;

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
}
