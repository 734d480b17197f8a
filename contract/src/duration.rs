//! Durations as operators write them, on the CLI (`--retention 7d`,
//! `--since 90m`) and in the agent's options (`stuck=10s`): a number with a
//! unit, `d`, `h`, `m`, `s` or `ms`, or several in a row such as `1h30m`. One
//! parser, so a value that works on one side works on the other, and one
//! formatter for the defaults `--help` and the server's banner show.

use std::time::Duration;

/// The units, largest first, in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a duration such as `7d`, `500ms` or `1h30m`; spaces around it are
/// ignored, zero is allowed (callers that need more say so), and a total past
/// `u64::MAX` milliseconds is taken as that (half a billion years: "never").
/// The error names the value and what is accepted.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {text:?}: use a number with a unit, e.g. 7d, 12h, 30m, 45s, 500ms or 1h30m"
        )
    };
    let mut total_ms: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms = UNITS
            .iter()
            .find(|(unit, _)| *unit == &rest[..unit_len])
            .map(|&(_, ms)| ms)
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
        total_ms = total_ms.saturating_add(n.saturating_mul(unit_ms));
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration in the largest unit that divides it: `7d`, `90m`,
/// `500ms`; what [`parse`] reads back as the same duration (to the
/// millisecond).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    UNITS
        .iter()
        .find(|&&(_, unit)| ms > 0 && ms.is_multiple_of(unit))
        .map_or_else(
            || format!("{ms}ms"),
            |(name, unit)| format!("{}{name}", ms / unit),
        )
}

#[cfg(test)]
mod tests {
    use super::{format, parse};
    use std::time::Duration;

    #[test]
    fn every_unit_and_combinations_of_them_parse() {
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(30 * 60)));
        assert_eq!(parse("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("1m30s250ms"), Ok(Duration::from_millis(90_250)));
        assert_eq!(parse(" 5s "), Ok(Duration::from_secs(5)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn a_total_too_large_to_count_means_never() {
        let never = Duration::from_millis(u64::MAX);
        assert_eq!(parse("999999999999999d"), Ok(never));
        assert_eq!(parse("18446744073709551615ms1ms"), Ok(never));
    }

    #[test]
    fn errors_name_the_value_and_the_syntax() {
        for bad in [
            "",
            " ",
            "7",
            "d",
            "7w",
            "-1d",
            "1.5h",
            "5 s",
            "1h 30m",
            "5S",
            "ms",
            "99999999999999999999s",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(err.contains("e.g. 7d, 12h, 30m, 45s, 500ms"), "{err}");
        }
    }

    #[test]
    fn formatting_uses_the_largest_unit_that_divides_and_parses_back() {
        for (text, shown) in [
            ("7d", "7d"),
            ("1h30m", "90m"),
            ("1500ms", "1500ms"),
            ("120s", "2m"),
            ("0s", "0ms"),
        ] {
            let d = parse(text).unwrap();
            assert_eq!(format(d), shown);
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
