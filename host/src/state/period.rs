//! Budget periods (UTC calendar days and months) and their labels.

/// Counters outlive their period by this much, so a report or a late
/// settle right after midnight still finds them.
const GRACE_SECS: u64 = 2 * 86_400;

/// The periods containing one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Periods {
    /// `day:YYYY-MM-DD`.
    pub day: String,
    /// `YYYY-MM` (the label `0.1.0` plugins already know).
    pub month: String,
    /// Unix seconds at which the day's counters may be dropped.
    pub day_expires: u64,
    /// Unix seconds at which the month's counters may be dropped.
    pub month_expires: u64,
}

impl Periods {
    pub fn at(unix_ms: u64) -> Self {
        let days = (unix_ms / 86_400_000) as i64;
        let (y, m, d) = civil_from_days(days);
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let next_month = days_from_civil(ny, nm, 1);
        Self {
            day: format!("day:{y:04}-{m:02}-{d:02}"),
            month: format!("{y:04}-{m:02}"),
            day_expires: (days as u64 + 1) * 86_400 + GRACE_SECS,
            month_expires: next_month as u64 * 86_400 + GRACE_SECS,
        }
    }
}

/// `YYYY-MM-DD` of a unix time in ms (UTC).
pub fn date_label(unix_ms: u64) -> String {
    let (y, m, d) = civil_from_days((unix_ms / 86_400_000) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Unix ms at 00:00 UTC of `YYYY-MM-DD`, or of the first day of `YYYY-MM`.
pub fn parse_date(s: &str) -> Option<u64> {
    let mut parts = s.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = match parts.next() {
        Some(d) => d.parse().ok()?,
        None => 1,
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject days past the month's end (2026-02-30).
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    Some(days as u64 * 86_400_000)
}

/// A report bound given as `YYYY-MM-DD`, `YYYY-MM`, `now`, a relative
/// `Nd` / `Nh` / `Nm` (that long before `now_ms`) or unix ms. As an `end`
/// bound a date or month includes itself (its end is the next day or
/// month's start), so `--since 2026-11-01 --until 2026-11-30` is all of
/// November.
pub fn parse_bound(s: &str, end: bool, now_ms: u64) -> Option<u64> {
    let s = s.trim();
    if s == "now" {
        return Some(now_ms + u64::from(end));
    }
    if let Some((n, unit)) = s.strip_suffix(['d', 'h', 'm']).and_then(|n| {
        n.parse::<u64>()
            .ok()
            .map(|n| (n, s.as_bytes()[s.len() - 1]))
    }) {
        let ms = match unit {
            b'd' => 86_400_000,
            b'h' => 3_600_000,
            _ => 60_000,
        };
        return Some(now_ms.saturating_sub(n.saturating_mul(ms)));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let start = parse_date(s)?;
    if !end {
        return Some(start);
    }
    let is_month = s.matches('-').count() == 1;
    let days = (start / 86_400_000) as i64;
    let next = if is_month {
        let (y, m, _) = civil_from_days(days);
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        days_from_civil(ny, nm, 1)
    } else {
        days + 1
    };
    Some(next as u64 * 86_400_000)
}

/// Civil date of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Day count since 1970-01-01 of a civil date (the inverse of the above).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [0, 11_016, 20_783, 20_784, -1, 47_482] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(20_784), (2026, 11, 27));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn periods_of_an_instant() {
        // 2026-12-31 23:59:59 UTC.
        let ms = (days_from_civil(2026, 12, 31) as u64 * 86_400 + 86_399) * 1000;
        let p = Periods::at(ms);
        assert_eq!(p.day, "day:2026-12-31");
        assert_eq!(p.month, "2026-12");
        let jan1 = days_from_civil(2027, 1, 1) as u64 * 86_400;
        assert_eq!(p.day_expires, jan1 + GRACE_SECS);
        assert_eq!(p.month_expires, jan1 + GRACE_SECS);
        assert_eq!(Periods::at(ms + 1000).month, "2027-01");
    }

    #[test]
    fn report_bounds() {
        let now = parse_date("2026-11-27").unwrap() + 3_600_000;
        let nov = parse_date("2026-11").unwrap();
        assert_eq!(parse_bound("2026-11", false, now), Some(nov));
        assert_eq!(parse_bound("2026-11", true, now), parse_date("2026-12-01"));
        assert_eq!(
            parse_bound("2026-11-30", true, now),
            parse_date("2026-12-01")
        );
        assert_eq!(parse_bound("2026-12", true, now), parse_date("2027-01-01"));
        assert_eq!(parse_bound("now", true, now), Some(now + 1));
        assert_eq!(parse_bound("7d", false, now), Some(now - 7 * 86_400_000));
        assert_eq!(parse_bound("90m", false, now), Some(now - 90 * 60_000));
        assert_eq!(
            parse_bound("1764201600000", false, now),
            Some(1_764_201_600_000)
        );
        assert_eq!(parse_bound("0", false, now), Some(0));
        assert_eq!(parse_bound("last week", false, now), None);
    }

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(parse_date("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_date("2026-11"), parse_date("2026-11-01"));
        assert_eq!(date_label(parse_date("2024-02-29").unwrap()), "2024-02-29");
        for bad in ["2026-02-30", "2026-13-01", "yesterday", "2026-1x-01", ""] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
