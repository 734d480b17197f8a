//! Time partitioning: which hour segment a timestamp belongs to, and the
//! segment's file name (`2026-11-22T01`, UTC), so operators can read the data
//! directory with `ls` and retention can drop whole hours.

pub const HOUR_MS: u64 = 3_600_000;

/// The hour number (hours since the Unix epoch) holding `t_ms`.
pub fn hour_of(t_ms: u64) -> u64 {
    t_ms / HOUR_MS
}

/// The UTC label of an hour, `YYYY-MM-DDTHH`.
pub fn label(hour: u64) -> String {
    let days = (hour / 24) as i64;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}", hour % 24)
}

/// The hour named by a label made by [`label`].
pub fn parse_label(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 13 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d, h) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(0..24).contains(&h) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    (days >= 0).then(|| days as u64 * 24 + h as u64)
}

// Howard Hinnant's civil calendar algorithms (public domain descriptions).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_utc_hours_and_parse_back() {
        // 2026-11-22T01:57:55Z
        let t = 1_795_312_675_000;
        assert_eq!(label(hour_of(t)), "2026-11-22T01");
        assert_eq!(label(0), "1970-01-01T00");
        assert_eq!(label(hour_of(951_782_400_000)), "2000-02-29T00");
        for hour in (0..600_000).step_by(37) {
            assert_eq!(parse_label(&label(hour)), Some(hour));
        }
        assert_eq!(parse_label("2026-13-01T00"), None);
        assert_eq!(parse_label("notasegment!!"), None);
    }
}
