//! Times and durations as operators type them: `30s`, `12h`, `90d`, or RFC 3339.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parse a duration such as `30s`, `15m`, `12h`, `90d` or `2w`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit; write it like `30s`, `12h` or `90d`"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "`{unit}` is not a unit; use s, m, h, d or w (as in `90d`)"
            ));
        }
    };
    let seconds = number
        .checked_mul(seconds_per_unit)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .ok_or_else(|| format!("`{text}` is more than a hundred years"))?;
    if seconds == 0 {
        return Err(format!("`{text}` is no time at all"));
    }
    Ok(Duration::from_secs(seconds))
}

/// Parse a point in time: a duration from `now` (`90d`) or an RFC 3339 time.
pub fn parse_when(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    if let Ok(at) = OffsetDateTime::parse(text.trim(), &Rfc3339) {
        return Ok(at);
    }
    match parse_duration(text) {
        Ok(duration) => Ok(now + duration),
        Err(_) => Err(format!(
            "`{text}` is neither a duration (`30s`, `12h`, `90d`) nor an RFC 3339 time (`2027-01-31T00:00:00Z`)"
        )),
    }
}

/// A `--expires`/`--valid-until` value as the command line takes it: a bad
/// one is a usage error, caught before anything runs.
pub fn check_when(text: &str) -> Result<String, String> {
    parse_when(text, now()).map(|_| text.to_string())
}

/// Parse an RFC 3339 time.
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// An RFC 3339 UTC time with whole seconds, the form every output uses.
pub fn rfc3339(at: OffsetDateTime) -> String {
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at);
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// An RFC 3339 UTC time with microseconds, for audit rows and records.
pub fn rfc3339_micros(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let micros = at.microsecond();
    let base = at.replace_nanosecond(0).unwrap_or(at);
    let text = base
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string());
    // "2026-01-02T03:04:05Z" -> "2026-01-02T03:04:05.000006Z"
    match text.strip_suffix('Z') {
        Some(stem) => format!("{stem}.{micros:06}Z"),
        None => text,
    }
}

/// The current time (UTC).
///
/// Debug builds, which the test suite runs, add `OBJECTOS_TEST_CLOCK_SKEW`
/// seconds (it may be negative), or the seconds written in the file
/// `OBJECTOS_TEST_CLOCK_FILE` names (read again on every call, so a test moves a
/// running server's clock), so that expiry tests move the clock instead of
/// sleeping. Release builds ignore both: their clock is the system's.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    #[cfg(debug_assertions)]
    {
        if let Some(later) =
            test_clock_skew().and_then(|s| now.checked_add(time::Duration::seconds(s)))
        {
            return later;
        }
    }
    now
}

#[cfg(debug_assertions)]
fn test_clock_skew() -> Option<i64> {
    static SKEW: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    static FILE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    // At most ten years either way.
    let seconds = |text: &str| {
        text.trim()
            .parse::<i64>()
            .ok()
            .map(|s| s.clamp(-315_576_000, 315_576_000))
    };
    if let Some(path) =
        FILE.get_or_init(|| std::env::var_os("OBJECTOS_TEST_CLOCK_FILE").map(Into::into))
    {
        return std::fs::read_to_string(path).ok().and_then(|t| seconds(&t));
    }
    *SKEW.get_or_init(|| {
        std::env::var("OBJECTOS_TEST_CLOCK_SKEW")
            .ok()
            .and_then(|v| seconds(&v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_documented_units() {
        assert_eq!(parse_duration("30s").unwrap().as_secs(), 30);
        assert_eq!(parse_duration("12h").unwrap().as_secs(), 43_200);
        assert_eq!(parse_duration("90d").unwrap().as_secs(), 90 * 86_400);
        assert_eq!(parse_duration("2w").unwrap().as_secs(), 14 * 86_400);
    }

    #[test]
    fn durations_refuse_nonsense() {
        for bad in ["", "d", "12", "12y", "-5d", "0s", "99999999999999d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn when_takes_rfc3339_or_a_duration() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        assert_eq!(
            parse_when("2030-01-01T00:00:00Z", now)
                .unwrap()
                .unix_timestamp(),
            1_893_456_000
        );
        assert_eq!(
            parse_when("1h", now).unwrap().unix_timestamp(),
            1_000_000 + 3600
        );
        assert!(parse_when("tomorrow", now).is_err());
    }

    #[test]
    fn rfc3339_output_is_utc_whole_seconds() {
        let at = OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap();
        assert_eq!(rfc3339(at), "2030-01-01T00:00:00Z");
        assert_eq!(rfc3339_micros(at), "2030-01-01T00:00:00.000000Z");
    }
}
