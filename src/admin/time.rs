//! Reading the `since=` filter: an RFC 3339 time, a date, unix seconds, or an age.

use std::time::{SystemTime, UNIX_EPOCH};

/// Returns unix milliseconds for `since`, or `None` when it cannot be read.
/// Accepted: `2026-11-25T10:00:00Z` (with fraction or offset), `2026-11-25`,
/// `1795600000` (unix seconds), and ages `90s`, `30m`, `24h`, `7d`.
pub fn parse_since(text: &str, now: SystemTime) -> Option<i64> {
    let text = text.trim();
    let now_ms = now.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64;
    if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = text[..text.len() - 1].parse::<i64>() {
            let secs = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => 86_400,
            };
            return Some(now_ms - n.checked_mul(secs * 1000)?);
        }
    }
    if let Ok(secs) = text.parse::<i64>() {
        return secs.checked_mul(1000);
    }
    parse_rfc3339(text)
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    if b.len() == 10 {
        return Some(days * 86_400_000);
    }
    if b.len() < 19 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = text.get(start..i.min(start + 3))?;
        if frac.is_empty() {
            return None;
        }
        millis = frac.parse::<i64>().ok()? * 10_i64.pow(3 - frac.len() as u32);
    }
    let offset_secs = match text.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60)
        }
        _ => return None,
    };
    Some((days * 86_400 + h * 3600 + mi * 60 + s - offset_secs) * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-25T10:00:00Z` for unix milliseconds (UTC, whole seconds).
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Inverse of days_from_civil (same algorithm, run backwards).
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reads_every_form() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_since("1970-01-01T00:00:00Z", now), Some(0));
        assert_eq!(
            parse_since("2026-11-25T10:00:00Z", now),
            Some(1_795_600_800_000)
        );
        assert_eq!(
            parse_since("2026-11-25T12:00:00.5+02:00", now),
            Some(1_795_600_800_500)
        );
        assert_eq!(parse_since("2026-11-25", now), Some(1_795_564_800_000));
        assert_eq!(parse_since("1795564800", now), Some(1_795_564_800_000));
        assert_eq!(parse_since("1h", now), Some(1_000_000_000 - 3_600_000));
        assert_eq!(parse_since("7d", now), Some(1_000_000_000 - 7 * 86_400_000));
        for ms in [0, 1_795_600_800_000, 951_782_400_000, -86_400_000] {
            assert_eq!(parse_since(&format_time(ms), now), Some(ms), "{ms}");
        }
        assert_eq!(format_time(1_795_600_800_000), "2026-11-25T10:00:00Z");
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-11-25T10:00",
            "2026-11-25T10:00:00",
            "h",
        ] {
            assert_eq!(parse_since(bad, now), None, "{bad}");
        }
    }
}
