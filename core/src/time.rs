//! Time helpers on millisecond timestamps (UTC): RFC 3339 formatting and parsing,
//! civil-date conversion, and day / ISO-week bucketing for reports.
//!
//! Everything works on `i64` milliseconds since the Unix epoch, as the wire carries
//! them, with no clock and no time-zone database: the calendar arithmetic is Howard
//! Hinnant's `days_from_civil` / `civil_from_days` (proleptic Gregorian calendar,
//! public domain, <https://howardhinnant.github.io/date_algorithms.html>), which is a
//! few lines and saves linking `chrono` or `time` into the edge's wasm.
//!
//! No function here panics, whatever the input: arithmetic saturates, and
//! formatting clamps to the years RFC 3339 can write (0000–9999).
//!
//! ```
//! use closeloop_core::time::{format_rfc3339, parse_rfc3339, week_start, Granularity};
//! let t = parse_rfc3339("2026-11-26T15:04:05.250+01:00").unwrap();
//! assert_eq!(format_rfc3339(t), "2026-11-26T14:04:05.250Z");
//! // Thursday 26 Nov 2026 belongs to the ISO week that starts on Monday 23 Nov.
//! assert_eq!(format_rfc3339(week_start(t)), "2026-11-23T00:00:00.000Z");
//! assert_eq!(Granularity::Week.label(t), "2026-W48");
//! ```

use std::fmt;

/// Milliseconds in one second.
pub const MS_PER_SECOND: i64 = 1_000;
/// Milliseconds in one minute.
pub const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
/// Milliseconds in one hour.
pub const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
/// Milliseconds in one (UTC, leap-second-free) day.
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
/// Milliseconds in one week.
pub const MS_PER_WEEK: i64 = 7 * MS_PER_DAY;
/// `0000-01-01T00:00:00.000Z`, the earliest instant [`format_rfc3339`] can write.
pub const MIN_RFC3339_MS: i64 = -62_167_219_200_000;
/// `9999-12-31T23:59:59.999Z`, the latest instant [`format_rfc3339`] can write.
pub const MAX_RFC3339_MS: i64 = 253_402_300_799_999;

/// Why a date or time string could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeError {
    message: String,
}

impl TimeError {
    fn new(input: &str, why: &str) -> Self {
        // Never echo an unbounded input back.
        let shown: String = input.chars().take(40).collect();
        TimeError {
            message: format!("`{shown}` is not a valid time: {why}"),
        }
    }
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TimeError {}

/// Days since 1970-01-01 of the proleptic Gregorian date `year-month-day`
/// (`month` 1–12, `day` 1–31; out-of-range months and days are not checked here,
/// see [`parse_date`] for a checked reader).
///
/// ```
/// use closeloop_core::time::days_from_civil;
/// assert_eq!(days_from_civil(1970, 1, 1), 0);
/// assert_eq!(days_from_civil(2000, 3, 1), 11_017);
/// assert_eq!(days_from_civil(1969, 12, 31), -1);
/// ```
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let m = i64::from(month);
    let d = i64::from(day);
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `(year, month, day)` of a day count since
/// 1970-01-01 (the inverse of [`days_from_civil`]).
///
/// ```
/// use closeloop_core::time::civil_from_days;
/// assert_eq!(civil_from_days(0), (1970, 1, 1));
/// assert_eq!(civil_from_days(19_782), (2024, 2, 29));
/// ```
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d and m are in small ranges by construction.
    (y, m as u32, d as u32)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Whole days since 1970-01-01 of the UTC day that contains `ms` (floor division,
/// so instants before 1970 fall on negative days).
pub fn day_number(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY)
}

/// The ISO weekday of `ms` in UTC: 1 = Monday … 7 = Sunday.
///
/// ```
/// use closeloop_core::time::weekday;
/// assert_eq!(weekday(0), 4); // 1970-01-01 was a Thursday
/// ```
pub fn weekday(ms: i64) -> u32 {
    // Day 0 (1970-01-01) was a Thursday (ISO 4).
    ((day_number(ms) + 3).rem_euclid(7) + 1) as u32
}

/// Midnight UTC at the start of the day that contains `ms`.
pub fn day_start(ms: i64) -> i64 {
    day_number(ms).saturating_mul(MS_PER_DAY)
}

/// Midnight UTC at the start of the ISO week (Monday) that contains `ms`.
pub fn week_start(ms: i64) -> i64 {
    let day = day_number(ms);
    let monday = day - i64::from(weekday(ms)) + 1;
    monday.saturating_mul(MS_PER_DAY)
}

/// The ISO 8601 week of `ms` (UTC) as `(iso_year, week)`, week 1–53. The ISO year
/// differs from the calendar year around New Year: week 1 is the week with the
/// year's first Thursday.
///
/// ```
/// use closeloop_core::time::{iso_week, parse_date};
/// assert_eq!(iso_week(parse_date("2021-01-03").unwrap()), (2020, 53));
/// assert_eq!(iso_week(parse_date("2024-12-30").unwrap()), (2025, 1));
/// ```
pub fn iso_week(ms: i64) -> (i64, u32) {
    let day = day_number(ms);
    // The Thursday of this ISO week decides the ISO year.
    let thursday = day - i64::from(weekday(ms)) + 4;
    let (year, _, _) = civil_from_days(thursday);
    let jan1 = days_from_civil(year, 1, 1);
    let week = (thursday - jan1).div_euclid(7) + 1;
    (year, week as u32)
}

/// The size of a report bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// One UTC day, from midnight to midnight.
    Day,
    /// One ISO week, from Monday 00:00 UTC to the next Monday.
    Week,
}

impl Granularity {
    /// The wire name (`"day"` or `"week"`), as in the `interval` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Week => "week",
        }
    }

    /// Reads a wire name (`"day"` or `"week"`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Granularity::Day),
            "week" => Some(Granularity::Week),
            _ => None,
        }
    }

    /// The start of the bucket that contains `ms`.
    pub fn bucket_start(self, ms: i64) -> i64 {
        match self {
            Granularity::Day => day_start(ms),
            Granularity::Week => week_start(ms),
        }
    }

    /// The length of one bucket in milliseconds.
    pub fn len_ms(self) -> i64 {
        match self {
            Granularity::Day => MS_PER_DAY,
            Granularity::Week => MS_PER_WEEK,
        }
    }

    /// The start of every bucket that overlaps the half-open range `[from, to)`, in
    /// order (empty when `to <= from`). At most `limit` starts are returned, so a
    /// silly range cannot make a huge list.
    pub fn bucket_starts(self, from: i64, to: i64, limit: usize) -> Vec<i64> {
        let mut out = Vec::new();
        if to <= from {
            return out;
        }
        let mut start = self.bucket_start(from);
        while start < to && out.len() < limit {
            out.push(start);
            match start.checked_add(self.len_ms()) {
                Some(next) => start = next,
                None => break,
            }
        }
        out
    }

    /// A human label for the bucket that contains `ms`: `2026-11-24` for a day,
    /// `2026-W48` (ISO year and week) for a week.
    pub fn label(self, ms: i64) -> String {
        match self {
            Granularity::Day => format_date(ms),
            Granularity::Week => {
                let (year, week) = iso_week(ms);
                format!("{year:04}-W{week:02}")
            }
        }
    }
}

/// The UTC date of `ms` as `YYYY-MM-DD` (clamped to years 0000–9999 like
/// [`format_rfc3339`]).
pub fn format_date(ms: i64) -> String {
    let ms = ms.clamp(MIN_RFC3339_MS, MAX_RFC3339_MS);
    let (y, m, d) = civil_from_days(day_number(ms));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `ms` as an RFC 3339 UTC timestamp with milliseconds, e.g.
/// `2026-11-24T09:28:19.000Z` — the form every API response uses.
///
/// RFC 3339 has four-digit years only, so instants outside 0000–9999 are clamped to
/// [`MIN_RFC3339_MS`] / [`MAX_RFC3339_MS`] (no real event is there; the validator
/// refuses such times long before).
pub fn format_rfc3339(ms: i64) -> String {
    let ms = ms.clamp(MIN_RFC3339_MS, MAX_RFC3339_MS);
    let (y, mo, d) = civil_from_days(day_number(ms));
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let h = in_day / MS_PER_HOUR;
    let mi = in_day % MS_PER_HOUR / MS_PER_MINUTE;
    let s = in_day % MS_PER_MINUTE / MS_PER_SECOND;
    let milli = in_day % MS_PER_SECOND;
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// A cursor over the bytes of a time string.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<i64> {
        let mut v: i64 = 0;
        for _ in 0..n {
            let b = *self.bytes.get(self.pos)?;
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(b - b'0');
            self.pos += 1;
        }
        Some(v)
    }

    fn expect(&mut self, want: &[u8]) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        if want.contains(&b) {
            self.pos += 1;
            Some(b)
        } else {
            None
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

fn read_date(c: &mut Cursor<'_>) -> Result<i64, &'static str> {
    let y = c.digits(4).ok_or("expected a four-digit year")?;
    c.expect(b"-").ok_or("expected `-` after the year")?;
    let m = c.digits(2).ok_or("expected a two-digit month")? as u32;
    c.expect(b"-").ok_or("expected `-` after the month")?;
    let d = c.digits(2).ok_or("expected a two-digit day")? as u32;
    if !(1..=12).contains(&m) {
        return Err("month out of range");
    }
    if d < 1 || d > days_in_month(y, m) {
        return Err("day out of range");
    }
    Ok(days_from_civil(y, m, d))
}

/// Reads a calendar date `YYYY-MM-DD` as midnight UTC of that day (ms).
///
/// ```
/// use closeloop_core::time::parse_date;
/// assert_eq!(parse_date("1970-01-02"), Ok(86_400_000));
/// assert!(parse_date("2026-02-29").is_err());
/// ```
pub fn parse_date(s: &str) -> Result<i64, TimeError> {
    let mut c = Cursor {
        bytes: s.as_bytes(),
        pos: 0,
    };
    let days = read_date(&mut c).map_err(|why| TimeError::new(s, why))?;
    if !c.done() {
        return Err(TimeError::new(s, "unexpected text after the date"));
    }
    Ok(days * MS_PER_DAY)
}

/// Reads an RFC 3339 timestamp (`2026-11-24T09:28:19Z`,
/// `2026-11-24T10:28:19.123456+01:00`, ...) as ms since the epoch.
///
/// Accepted: `T`, `t` or a space between date and time (RFC 3339 §5.6 allows the
/// space); any number of fraction digits (truncated to milliseconds); `Z`, `z` or a
/// `±HH:MM` offset. A leap second (`:60`) is read as `:59.999`, since Unix time has
/// no leap seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, TimeError> {
    let err = |why: &str| TimeError::new(s, why);
    let mut c = Cursor {
        bytes: s.as_bytes(),
        pos: 0,
    };
    let days = read_date(&mut c).map_err(err)?;
    c.expect(b"Tt ")
        .ok_or_else(|| err("expected `T` between date and time"))?;
    let h = c
        .digits(2)
        .ok_or_else(|| err("expected a two-digit hour"))?;
    c.expect(b":")
        .ok_or_else(|| err("expected `:` after the hour"))?;
    let mi = c
        .digits(2)
        .ok_or_else(|| err("expected two-digit minutes"))?;
    c.expect(b":")
        .ok_or_else(|| err("expected `:` after the minutes"))?;
    let mut sec = c
        .digits(2)
        .ok_or_else(|| err("expected two-digit seconds"))?;
    if h > 23 || mi > 59 || sec > 60 {
        return Err(err("hour, minute or second out of range"));
    }
    let mut milli: i64 = 0;
    if c.peek() == Some(b'.') {
        c.pos += 1;
        let mut n = 0;
        while let Some(b) = c.peek().filter(u8::is_ascii_digit) {
            if n < 3 {
                milli = milli * 10 + i64::from(b - b'0');
            }
            n += 1;
            c.pos += 1;
        }
        if n == 0 {
            return Err(err("expected digits after `.`"));
        }
        for _ in n..3 {
            milli *= 10;
        }
    }
    if sec == 60 {
        sec = 59;
        milli = 999;
    }
    let offset_ms = match c.expect(b"Zz+-") {
        Some(b'Z' | b'z') => 0,
        Some(sign) => {
            let oh = c
                .digits(2)
                .ok_or_else(|| err("expected a two-digit offset hour"))?;
            c.expect(b":")
                .ok_or_else(|| err("expected `:` in the offset"))?;
            let om = c
                .digits(2)
                .ok_or_else(|| err("expected two-digit offset minutes"))?;
            if oh > 23 || om > 59 {
                return Err(err("offset out of range"));
            }
            let off = oh * MS_PER_HOUR + om * MS_PER_MINUTE;
            if sign == b'-' {
                -off
            } else {
                off
            }
        }
        None => return Err(err("expected `Z` or an offset such as `+01:00`")),
    };
    if !c.done() {
        return Err(err("unexpected text after the time"));
    }
    // Years are four digits, so none of this can overflow an i64.
    Ok(
        days * MS_PER_DAY + h * MS_PER_HOUR + mi * MS_PER_MINUTE + sec * MS_PER_SECOND + milli
            - offset_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hinnant_round_trip_over_many_days() {
        // Every day from 1600-01-01 to 2400-12-31 maps back to itself, and the dates
        // advance by exactly one day each step.
        let start = days_from_civil(1600, 1, 1);
        let end = days_from_civil(2400, 12, 31);
        let mut prev = civil_from_days(start - 1);
        for day in start..=end {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert!((y, m, d) > prev);
            prev = (y, m, d);
        }
    }

    // Hand-worked instant: 2024-01-01 is day 19723 (1704067200 s / 86400); Feb 29 is
    // 31 + 28 days later, day 19782; 19782 × 86400000 = 1709164800000, plus
    // 12 h 34 min 56.789 s = 45296789 ms → 1709210096789.
    const LEAP_DAY_MS: i64 = 1_709_210_096_789;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(LEAP_DAY_MS), "2024-02-29T12:34:56.789Z");
        assert_eq!(format_date(LEAP_DAY_MS), "2024-02-29");
        assert_eq!(format_rfc3339(MAX_RFC3339_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(MIN_RFC3339_MS), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_offsets_fractions_and_separators() {
        for s in [
            "2024-02-29T12:34:56.789Z",
            "2024-02-29t12:34:56.789z",
            "2024-02-29 12:34:56.789Z",
            "2024-02-29T13:34:56.789+01:00",
            // 12:34:56 − 5:30 = 07:04:56
            "2024-02-29T07:04:56.789-05:30",
            // digits past the millisecond are cut, not rounded
            "2024-02-29T12:34:56.7899999Z",
        ] {
            assert_eq!(parse_rfc3339(s), Ok(LEAP_DAY_MS), "{s}");
        }
        assert_eq!(parse_rfc3339("2024-02-29T12:34:56Z"), Ok(LEAP_DAY_MS - 789));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:34:56.7Z"),
            Ok(LEAP_DAY_MS - 89)
        );
        // A leap second reads as the last millisecond of its minute.
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z").map(format_rfc3339),
            Ok("2016-12-31T23:59:59.999Z".to_string())
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Ok(-1));
    }

    #[test]
    fn refuses_bad_times() {
        for s in [
            "",
            "2024-02-29",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-10T00:00:00Z",
            "2024-02-29T24:00:00Z",
            "2024-02-29T12:60:00Z",
            "2024-02-29T12:34:56",
            "2024-02-29T12:34:56.Z",
            "2024-02-29T12:34:56Z trailing",
            "2024-02-29T12:34:56+0100",
            "24-02-29T12:34:56Z",
            "２０２４-02-29T12:34:56Z",
        ] {
            let e = parse_rfc3339(s).expect_err(s);
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(parse_date("2024-02-29"), Ok(LEAP_DAY_MS - 45_296_789));
        assert!(parse_date("2024-02-29T00:00:00Z").is_err());
        assert!(parse_date("1900-02-29").is_err()); // 1900 is not a leap year
        assert!(parse_date("2000-02-29").is_ok()); // 2000 is
    }

    #[test]
    fn weeks_start_on_monday_utc() {
        // 2026-11-24 is a Tuesday; its ISO week began Monday 2026-11-23.
        let tue = parse_rfc3339("2026-11-24T09:28:19Z").unwrap_or_default();
        assert_eq!(weekday(tue), 2);
        assert_eq!(format_rfc3339(day_start(tue)), "2026-11-24T00:00:00.000Z");
        assert_eq!(format_rfc3339(week_start(tue)), "2026-11-23T00:00:00.000Z");
        let sun_end = parse_rfc3339("2026-11-29T23:59:59.999Z").unwrap_or_default();
        assert_eq!(weekday(sun_end), 7);
        assert_eq!(
            format_rfc3339(week_start(sun_end)),
            "2026-11-23T00:00:00.000Z"
        );
        let mon = sun_end + 1;
        assert_eq!(week_start(mon), mon);
        // 1970-01-01 was a Thursday, so the epoch's week began Monday 1969-12-29.
        assert_eq!(format_rfc3339(week_start(0)), "1969-12-29T00:00:00.000Z");
        // 2026-01-01 is a Thursday, so week 1 began Mon 2025-12-29; 2026-11-23 is 3 +
        // 326 = 329 days = 47 weeks later: week 48.
        assert_eq!(iso_week(tue), (2026, 48));
        assert_eq!(
            iso_week(parse_date("2025-12-29").unwrap_or_default()),
            (2026, 1)
        );
        assert_eq!(
            iso_week(parse_date("2020-12-31").unwrap_or_default()),
            (2020, 53)
        );
    }

    #[test]
    fn bucket_lists() {
        let d = |s: &str| parse_rfc3339(s).unwrap_or_default();
        let days = Granularity::Day.bucket_starts(
            d("2026-11-24T09:00:00Z"),
            d("2026-11-26T00:00:00Z"),
            100,
        );
        let labels: Vec<String> = days.iter().map(|&t| Granularity::Day.label(t)).collect();
        assert_eq!(labels, ["2026-11-24", "2026-11-25"]);
        let weeks = Granularity::Week.bucket_starts(
            d("2026-11-24T00:00:00Z"),
            d("2026-12-08T00:00:00Z"),
            100,
        );
        let starts: Vec<String> = weeks.iter().map(|&t| format_date(t)).collect();
        assert_eq!(starts, ["2026-11-23", "2026-11-30", "2026-12-07"]);
        assert_eq!(Granularity::Week.label(weeks[2]), "2026-W50");
        assert_eq!(
            Granularity::Day.bucket_starts(0, 10 * MS_PER_DAY, 3).len(),
            3
        );
        assert!(Granularity::Day.bucket_starts(5, 5, 10).is_empty());
        assert_eq!(Granularity::parse("week"), Some(Granularity::Week));
        assert_eq!(Granularity::parse("month"), None);
    }

    #[test]
    fn extreme_inputs_never_panic() {
        for ms in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
            let _ = format_rfc3339(ms);
            let _ = format_date(ms);
            let _ = day_start(ms);
            let _ = week_start(ms);
            let _ = iso_week(ms);
            let _ = Granularity::Week.label(ms);
            let _ = Granularity::Day.bucket_starts(ms, ms.saturating_add(3 * MS_PER_DAY), 10);
        }
        assert_eq!(format_rfc3339(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
    }
}
