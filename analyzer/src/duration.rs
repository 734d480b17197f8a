//! Durations as operators write them on a command line: `7d`, `12h`, `30m`,
//! `45s`, `500ms`, or combinations such as `1h30m`.

use std::time::Duration;

/// Parses a duration; the error names the value and what is accepted.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration {text:?}: use a number with a unit, e.g. 7d, 12h, 30m, 45s, 500ms or 1h30m")
    };
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += Duration::from_millis(n.checked_mul(unit_ms).ok_or_else(bad)?);
    }
    Ok(total)
}

/// Writes a duration in the largest unit that divides it: `7d`, `90m`, `500ms`.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    let units = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    units
        .iter()
        .find(|(unit, _)| ms > 0 && ms.is_multiple_of(*unit))
        .map_or_else(
            || format!("{ms}ms"),
            |(unit, name)| format!("{}{name}", ms / unit),
        )
}

#[cfg(test)]
mod tests {
    use super::{format, parse};
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(format(parse("7d").unwrap()), "7d");
        assert_eq!(format(parse("1h30m").unwrap()), "90m");
        assert_eq!(format(parse("1500ms").unwrap()), "1500ms");
        for bad in ["", "7", "d", "7w", "-1d", "1.5h"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }
}
