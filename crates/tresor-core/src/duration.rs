//! The one duration syntax of tresor: config options (`timeout = "5s"`),
//! `TRESOR_LOCK_TIMEOUT`, `--max-age`, `tresor unlock --for`. Each caller
//! sets its own range; the syntax is the same everywhere.

use std::time::Duration;

/// Parses a duration: one or more terms of a number and a unit, `ms`, `s`,
/// `m`, `h` or `d` (`500ms`, `5s`, `1.5h`, `1h30m`, `7d`), or a bare
/// number of seconds (`30`, `0.25`). Spaces around the whole are ignored.
/// `None` for anything else, negative or not finite.
///
/// ```
/// use std::time::Duration;
/// use tresor_core::parse_duration;
///
/// assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
/// assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
/// assert_eq!(parse_duration("soon"), None);
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    // A bare number: seconds.
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return seconds(text.parse().ok()?);
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    seconds(total)
}

fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value >= 0.0)
        .then(|| Duration::try_from_secs_f64(value).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_sums_and_junk_is_refused() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 5 "), Some(secs(5)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(secs(120)));
        assert_eq!(parse_duration("1h30m"), Some(secs(5400)));
        assert_eq!(parse_duration("1.5h"), Some(secs(5400)));
        assert_eq!(parse_duration("2d"), Some(secs(172_800)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("0.25"), Some(Duration::from_millis(250)));
        for bad in [
            "", "s", "m", "5x", "-5m", "5 s", "1h 30m", "1e3", "..", "5sec", "inf", "NaN", "1.2.3s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
