//! Everything numeric, found from an ASCII digit: phone numbers, payment
//! cards, IBANs, US social security numbers and IPv4 addresses.
//!
//! One scan parses digit groups joined by single separators into a run, and
//! one classifier decides what the run is, from the checks of each kind
//! (Luhn and issuer prefixes, mod-97, the SSA's ranges, octet ranges) and
//! from the cue words before it (`call`, `order`, `ssn`, `version`, ...):
//! the same digits can be a phone number, an order number or a date.

use super::network::bare_mac_at;
use super::scan::{boundary_before, is_json_escape, is_word};
use super::{Finding, K_CARD, K_IBAN, K_IP, K_MAC, K_PHONE, K_SSN};

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
pub(super) fn scan_numbers(b: &[u8], out: &mut Vec<Finding>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::redact::tests::red;

    fn digits(s: &str) -> Vec<u8> {
        s.bytes()
            .filter(u8::is_ascii_digit)
            .map(|c| c - b'0')
            .collect()
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
}
