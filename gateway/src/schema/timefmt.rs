//! Parsing and printing of the date, time, timestamp and decimal forms that
//! the collection API accepts.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use crate::schema::types::DECIMAL_SCALE;

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in microseconds
/// since the epoch: the timestamps every engine and client prints.
pub const MIN_MICROS: i64 = -62_135_596_800_000_000;
pub const MAX_MICROS: i64 = 253_402_300_799_999_999;

/// Whether a timestamp lies between the years 1 and 9999.
pub fn representable(micros: i64) -> bool {
    (MIN_MICROS..=MAX_MICROS).contains(&micros)
}

/// `YYYY-MM-DD` as days since 1970-01-01.
pub fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(days_of(date))
}

fn days_of(date: NaiveDate) -> i32 {
    use chrono::Datelike;
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// Whether a string could be a date-time at all; keeps the parsers below
/// off the common case of ordinary strings.
fn looks_like_date_time(b: &[u8]) -> bool {
    b.len() >= 12 && b.len() <= 40 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// An ISO 8601 date-time (with `T` or a space, with or without a zone; no
/// zone means UTC) or `yyyy-M-d H:m[:s[.SSS]]`, as microseconds since the
/// epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    if !looks_like_date_time(s.as_bytes()) {
        return None;
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_micros());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, format) {
            return Some(dt.timestamp_micros());
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, format) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    None
}

/// A timestamp given as a date or a date-time.
pub fn parse_date_or_timestamp(s: &str) -> Option<i64> {
    parse_timestamp(s).or_else(|| parse_date(s).map(|d| i64::from(d) * 86_400_000_000))
}

/// `HH:MM[:SS[.fff]]` as microseconds since midnight.
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 4 || b.len() > 18 || !b[0].is_ascii_digit() {
        return None;
    }
    let t = NaiveTime::parse_from_str(s, "%H:%M:%S%.f").or_else(|_| NaiveTime::parse_from_str(s, "%H:%M")).ok()?;
    Some(i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000))
}

pub fn format_date(days: i32) -> String {
    NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_DAYS_FROM_CE)
        .map_or_else(|| days.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

pub fn format_time(micros: i64) -> String {
    let secs = u32::try_from(micros.div_euclid(1_000_000)).unwrap_or(0);
    let nanos = u32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0);
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
        .map_or_else(|| micros.to_string(), |t| t.format("%H:%M:%S%.f").to_string())
}

pub fn format_timestamp(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map_or_else(|| micros.to_string(), |t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// A decimal number (`-12.5`, `3`, `1e-3`) as an integer scaled by
/// 10^[`DECIMAL_SCALE`]; `None` when it has more fractional digits than
/// that or more than 38 digits in all.
pub fn parse_decimal(s: &str) -> Option<i128> {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (negative, digits) = match mantissa.as_bytes().first()? {
        b'-' => (true, &mantissa[1..]),
        b'+' => (false, &mantissa[1..]),
        _ => (false, mantissa),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    // Value = 0.<digits> scaled: digits * 10^(exponent - frac_len + scale)
    let all_digits = format!("{int_part}{frac_trimmed}");
    let all_digits = all_digits.trim_start_matches('0');
    let shift = exponent - i32::try_from(frac_trimmed.len()).ok()? + i32::try_from(DECIMAL_SCALE).ok()?;
    if all_digits.is_empty() {
        return Some(0);
    }
    if shift < 0 || all_digits.len() + usize::try_from(shift).ok()? > 38 {
        return None;
    }
    let mut value: i128 = all_digits.parse().ok()?;
    for _ in 0..shift {
        value = value.checked_mul(10)?;
    }
    Some(if negative { -value } else { value })
}

pub fn format_decimal(unscaled: i128) -> String {
    let scale = 10i128.pow(DECIMAL_SCALE);
    let sign = if unscaled < 0 { "-" } else { "" };
    let abs = unscaled.unsigned_abs();
    let int = abs / scale.unsigned_abs();
    let frac = abs % scale.unsigned_abs();
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let frac = format!("{frac:09}");
    format!("{sign}{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_representable_range_is_years_1_to_9999() {
        assert_eq!(parse_timestamp("0001-01-01T00:00:00Z"), Some(MIN_MICROS));
        assert_eq!(parse_timestamp("9999-12-31T23:59:59.999999Z"), Some(MAX_MICROS));
        assert!(representable(0) && !representable(MAX_MICROS + 1) && !representable(MIN_MICROS - 1));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_date("2024-1-2"), None);
        assert_eq!(format_date(1), "1970-01-02");
    }

    #[test]
    fn timestamps_in_every_accepted_form() {
        let t = 1_704_164_645_000_000; // 2024-01-02T03:04:05Z
        assert_eq!(parse_timestamp("2024-01-02T03:04:05Z"), Some(t));
        assert_eq!(parse_timestamp("2024-01-02T05:04:05+02:00"), Some(t));
        assert_eq!(parse_timestamp("2024-01-02T03:04:05"), Some(t));
        assert_eq!(parse_timestamp("2024-01-02 03:04:05"), Some(t));
        assert_eq!(parse_timestamp("2024-1-2 3:4:5"), Some(t));
        assert_eq!(parse_timestamp("2024-1-2 3:4"), Some(t - 5_000_000));
        assert_eq!(parse_timestamp("2024-01-02T03:04:05.250Z"), Some(t + 250_000));
        assert_eq!(parse_timestamp("2024-1-2 3:4:5.250"), Some(t + 250_000));
        assert_eq!(parse_timestamp("2024-01-02"), None);
        assert_eq!(parse_timestamp("hello world, how are you"), None);
        assert_eq!(parse_date_or_timestamp("1970-01-02"), Some(86_400_000_000));
        assert_eq!(format_timestamp(t + 250_000), "2024-01-02T03:04:05.250000Z");
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("01:02:03.5"), Some(3_723_500_000));
        assert_eq!(parse_time("01:02"), Some(3_720_000_000));
        assert_eq!(parse_time("25:00"), None);
        assert_eq!(format_time(3_723_500_000), "01:02:03.500");
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("12.5"), Some(12_500_000_000));
        assert_eq!(parse_decimal("-0.000000001"), Some(-1));
        assert_eq!(parse_decimal("1e-3"), Some(1_000_000));
        assert_eq!(parse_decimal("1.5E2"), Some(150_000_000_000));
        assert_eq!(parse_decimal("0.0000000001"), None, "more digits than the scale");
        assert_eq!(parse_decimal("abc"), None);
        assert_eq!(parse_decimal("."), None);
        assert_eq!(format_decimal(-12_500_000_000), "-12.5");
        assert_eq!(format_decimal(3_000_000_000), "3");
    }
}
