//! Wall-clock time as the store keeps it: milliseconds since the Unix epoch,
//! and the text forms operators write and read it in (the `since=` filter,
//! times shown by the CLI).
//!
//! Calendar arithmetic and RFC 3339 parsing and printing are `jiff`'s; this
//! module only decides which forms are accepted. It never reads a time zone
//! database: every time is UTC or carries its own offset.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::civil::{Date, Time};
use jiff::tz::Offset;
use jiff::Timestamp;

/// Milliseconds since the Unix epoch; 0 if the clock is before it.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Returns unix milliseconds for `since`, or `None` when it cannot be read.
/// Accepted: `2026-11-25T10:00:00Z` (with fraction or offset), `2026-11-25`,
/// `1795600000` (unix seconds), and ages `90s`, `30m`, `24h`, `7d`.
pub fn parse_since(text: &str, now: SystemTime) -> Option<i64> {
    let text = text.trim();
    let now_ms = now.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64;
    // An age is one integer and one unit letter. jiff's "friendly" durations
    // would also take `1h30m`, `2 days` or `5m ago`, which the filter has
    // never promised, so this form stays a plain split.
    if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = text[..text.len() - 1].parse::<i64>() {
            let secs = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => 86_400,
            };
            return now_ms.checked_sub(n.checked_mul(secs * 1000)?);
        }
    }
    if let Ok(secs) = text.parse::<i64>() {
        return secs.checked_mul(1000);
    }
    // A bare date is that day's midnight in UTC. The date parser goes first
    // and wants exactly a date, so a time without an offset is refused
    // rather than read as its date.
    if let Ok(date) = Date::strptime("%Y-%m-%d", text) {
        let ts = Offset::UTC
            .to_timestamp(date.to_datetime(Time::midnight()))
            .ok()?;
        return Some(millis(ts));
    }
    text.parse::<Timestamp>().ok().map(millis)
}

/// Whole milliseconds, rounded down like the rest of the store's times (so
/// `…59.9995Z` is still in the second it names, also before 1970).
fn millis(ts: Timestamp) -> i64 {
    ts.as_nanosecond().div_euclid(1_000_000) as i64
}

/// `2026-11-25T10:00:00Z` for unix milliseconds (UTC, whole seconds).
pub fn format_time(ms: i64) -> String {
    match Timestamp::from_second(ms.div_euclid(1000)) {
        Ok(ts) => ts.to_string(),
        // Beyond jiff's range (years -9999 to 9999): no stored time gets here.
        Err(_) => format!("{ms} ms"),
    }
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

    #[test]
    fn reads_the_rfc_3339_variants_and_ages() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = Some(1_795_600_800_000);
        // RFC 3339 allows a lowercase `t` and `z`, and a space for the `T`.
        assert_eq!(parse_since("2026-11-25t10:00:00z", now), at);
        assert_eq!(parse_since("2026-11-25 10:00:00Z", now), at);
        assert_eq!(parse_since("2026-11-25T05:30:00-04:30", now), at);
        assert_eq!(parse_since("  2026-11-25T10:00:00Z\n", now), at);
        // A fraction keeps its milliseconds and drops the rest, downwards.
        assert_eq!(
            parse_since("2026-11-25T10:00:00.123456Z", now),
            Some(1_795_600_800_123)
        );
        assert_eq!(parse_since("1969-12-31T23:59:59.9999Z", now), Some(-1));
        assert_eq!(parse_since("1969-12-31", now), Some(-86_400_000));
        assert_eq!(parse_since("-86400", now), Some(-86_400_000));
        assert_eq!(parse_since("90s", now), Some(1_000_000_000 - 90_000));
        assert_eq!(parse_since("30m", now), Some(1_000_000_000 - 1_800_000));
        assert_eq!(parse_since("24h", now), Some(1_000_000_000 - 86_400_000));
        for bad in [
            "",
            "7w",
            "d",
            "1h30m",
            "2026-11-25Z",
            "2026-02-30",
            "2026-11-25T24:00:00Z",
            "2026-11-25T10:00:00.1234567891Z",
            "99999999999999999d",
        ] {
            assert_eq!(parse_since(bad, now), None, "{bad}");
        }
        // jiff reads RFC 3339's ISO 8601 relatives too (RFC 9557): an offset
        // in hours, minutes without seconds, a bracketed zone name after the
        // offset. Each names one instant, so there is no reason to refuse it.
        for also in [
            "2026-11-25T12:00:00+02",
            "2026-11-25T10:00Z",
            "2026-11-25T10:00:00Z[Europe/Paris]",
        ] {
            assert_eq!(parse_since(also, now), at, "{also}");
        }
        // A bare number is unix seconds, not an age.
        assert_eq!(parse_since("7", now), Some(7_000));
        assert_eq!(format_time(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_time(1_795_600_800_999), "2026-11-25T10:00:00Z");
    }
}
