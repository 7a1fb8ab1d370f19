//! RFC 3339 timestamps, by hand: checking one (`date-time` in section 5.6
//! of the RFC) and writing the current time as one.
//!
//! Accepted: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`, with `T`
//! and `Z` in either case, a real calendar date (leap years included), hours
//! 00-23, minutes 00-59 and seconds 00-60 (60 for a leap second). Not
//! accepted: a space instead of `T`, a missing offset, a bare date.

/// Whether `s` is an RFC 3339 date-time.
pub fn is_valid(s: &str) -> bool {
    parse_ms(s).is_some()
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time (fraction
/// truncated to milliseconds; a leap second counts as the next second), or
/// `None` if `s` is not one.
pub fn parse_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    let separators = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':';
    if !separators
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }

    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }

    let offset_minutes = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (digits(b, i + 1, 2)?, digits(b, i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };

    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// `ms` (milliseconds since the Unix epoch) as an RFC 3339 UTC timestamp
/// with milliseconds, e.g. `2025-11-06T18:00:00.000Z`.
pub fn format_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (s, millis) = (in_day / 1_000, in_day % 1_000);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        s / 3_600,
        s / 60 % 60,
        s % 60
    )
}

/// The number written with `len` ASCII digits at `b[at..]`.
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    b.get(at..at + len)?.iter().try_fold(0, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc3339_date_times() {
        for (s, ms) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2025-11-06T18:00:00Z", 1_762_452_000_000),
            ("2025-11-06t18:00:00z", 1_762_452_000_000),
            ("2025-11-06T19:00:00+01:00", 1_762_452_000_000),
            ("2025-11-06T17:30:00-00:30", 1_762_452_000_000),
            ("2025-11-06T18:00:00.5Z", 1_762_452_000_500),
            ("2025-11-06T18:00:00.123456789Z", 1_762_452_000_123),
            ("2024-02-29T23:59:59Z", 1_709_251_199_000),
            ("2000-02-29T00:00:00Z", 951_782_400_000),
            ("1969-12-31T23:59:59.999Z", -1),
            ("2016-12-31T23:59:60Z", 1_483_228_800_000),
        ] {
            assert_eq!(parse_ms(s), Some(ms), "{s}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for s in [
            "",
            "yesterday",
            "2025-11-06",
            "2025-11-06T18:00:00",
            "2025-11-06 18:00:00Z",
            "2025-11-06T18:00Z",
            "2025-11-06T18:00:00.Z",
            "2025-11-06T18:00:00ZZ",
            "2025-11-06T18:00:00+0100",
            "2025-11-06T18:00:00+01",
            "2025-11-06T18:00:00+24:00",
            "2025-11-06T18:00:00+01:60",
            "2025-13-06T18:00:00Z",
            "2025-00-06T18:00:00Z",
            "2025-02-29T18:00:00Z",
            "1900-02-29T18:00:00Z",
            "2025-04-31T18:00:00Z",
            "2025-11-00T18:00:00Z",
            "2025-11-06T24:00:00Z",
            "2025-11-06T18:60:00Z",
            "2025-11-06T18:00:61Z",
            "2025/11/06T18:00:00Z",
            "+025-11-06T18:00:00Z",
            "2025-11-06T18:00:00 Z",
            "２025-11-06T18:00:00Z",
        ] {
            assert_eq!(parse_ms(s), None, "{s}");
        }
    }

    #[test]
    fn formats_utc_with_milliseconds_and_round_trips() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_ms(1_762_452_000_123), "2025-11-06T18:00:00.123Z");
        assert_eq!(format_ms(1_709_251_199_000), "2024-02-29T23:59:59.000Z");
        for ms in (-5_000_000_000_000i64..=5_000_000_000_000).step_by(7_777_777_777) {
            assert_eq!(parse_ms(&format_ms(ms)), Some(ms), "{ms}");
        }
    }
}
