//! RFC 3339 timestamps from unix time, without a date library.

/// `2024-05-01T12:00:00.123Z` for unix milliseconds (UTC, millisecond precision).
pub(crate) fn rfc3339_millis(unix_ms: u64) -> String {
    let (date, secs) = split(unix_ms / 1000);
    format!("{date}T{secs}.{:03}Z", unix_ms % 1000)
}

/// `2024-05-01T12:00:00Z` for unix seconds: the form in-toto layouts require for `expires`.
pub(crate) fn rfc3339_seconds(unix_s: u64) -> String {
    let (date, secs) = split(unix_s);
    format!("{date}T{secs}Z")
}

/// Unix seconds for `YYYY-MM-DDTHH:MM:SSZ` (optionally with fractional seconds).
pub(crate) fn parse_rfc3339_seconds(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || !text.ends_with('Z')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

/// Unix milliseconds for `YYYY-MM-DDTHH:MM:SS[.fff...]Z`, as the statements' `startedOn`
/// and `finishedOn` are written (digits beyond milliseconds are dropped).
pub fn parse_rfc3339_millis(text: &str) -> Option<u64> {
    let seconds = parse_rfc3339_seconds(text)?;
    let fraction = text.get(19..text.len() - 1)?;
    let millis = match fraction.strip_prefix('.') {
        None if fraction.is_empty() => 0,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            let mut ms = 0u64;
            for i in 0..3 {
                ms = ms * 10 + digits.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
            }
            ms
        }
        _ => return None,
    };
    seconds.checked_mul(1000)?.checked_add(millis)
}

fn split(unix_s: u64) -> (String, String) {
    let days = (unix_s / 86_400) as i64;
    let rem = unix_s % 86_400;
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_709_210_096_789),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(rfc3339_seconds(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(
            parse_rfc3339_seconds("2024-02-29T12:34:56Z"),
            Some(1_709_210_096)
        );
        assert_eq!(parse_rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_seconds("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_seconds("soon"), None);
        assert_eq!(
            parse_rfc3339_millis("2024-02-29T12:34:56.789Z"),
            Some(1_709_210_096_789)
        );
        assert_eq!(
            parse_rfc3339_millis("2024-02-29T12:34:56.7Z"),
            Some(1_709_210_096_700)
        );
        assert_eq!(
            parse_rfc3339_millis("2024-02-29T12:34:56Z"),
            Some(1_709_210_096_000)
        );
        assert_eq!(parse_rfc3339_millis("2024-02-29T12:34:56.Z"), None);
        assert_eq!(parse_rfc3339_millis("2024-02-29T12:34:56.x1Z"), None);
        for t in [0u64, 1, 999, 1_709_210_096_789] {
            assert_eq!(parse_rfc3339_millis(&rfc3339_millis(t)), Some(t));
        }
        for t in [0u64, 86_399, 4_102_444_800, 1_234_567_890] {
            assert_eq!(parse_rfc3339_seconds(&rfc3339_seconds(t)), Some(t));
        }
    }
}
