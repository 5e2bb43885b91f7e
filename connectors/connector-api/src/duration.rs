//! [`ConfigDuration`]: a length of time in a config file, written as a string with its unit
//! (`"30s"`, `"15m"`, `"1h"`, `"180d"`), as systemd and most services write them.
//!
//! New config keys that hold a duration use this type; the older integer keys with the unit in
//! their name (`timeout_secs`, `password_handout_days`) keep working as they are. Only the
//! units `ms`, `s`, `m`, `h` and `d` are taken, one or several (`"1h 30m"`): humantime, which does the
//! parsing, would also read `M` as months and `y` as years, lengths that are not fixed and a
//! one-letter slip away from minutes, so those are refused before it sees them.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// The forms a duration may take, for error messages.
const FORMS: &str = "a number with a unit: ms (milliseconds), s (seconds), m (minutes), h (hours) or d \
                     (days), like \"500ms\", \"30s\", \"15m\", \"1h\", \"180d\" or \"1h 30m\"";

/// A duration read from a string with a unit. Deserialises from a TOML string; a bare number
/// is an error that says which unit to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigDuration(Duration);

impl ConfigDuration {
    /// Parses `"30s"`, `"1h"`, `"180d"`, `"1h 30m"`. The error names the value and the forms
    /// taken.
    pub fn parse(text: &str) -> Result<ConfigDuration, String> {
        let bad = || format!("duration {text:?} is not {FORMS}");
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(bad());
        }
        // Each part is digits followed by one of the units, parts separated by spaces or not.
        let mut rest = trimmed;
        while !rest.is_empty() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return Err(bad());
            }
            rest = &rest[digits..];
            if let Some(after) = rest.strip_prefix("ms") {
                rest = after.trim_start();
                continue;
            }
            let Some(unit) = rest.chars().next().filter(|c| matches!(c, 's' | 'm' | 'h' | 'd')) else {
                return Err(bad());
            };
            rest = rest[unit.len_utf8()..].trim_start();
        }
        humantime::parse_duration(trimmed)
            .map(ConfigDuration)
            .map_err(|e| format!("duration {text:?} cannot be read ({e}); write {FORMS}"))
    }

    /// The length of time.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// Whole seconds.
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl From<Duration> for ConfigDuration {
    fn from(d: Duration) -> Self {
        ConfigDuration(d)
    }
}

impl fmt::Display for ConfigDuration {
    /// The shortest spelling `parse` reads back: `1h 30m`, `180d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        let millis = self.0.subsec_millis();
        if secs == 0 {
            return if millis == 0 { f.write_str("0s") } else { write!(f, "{millis}ms") };
        }
        let mut first = true;
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= size {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
                first = false;
            }
        }
        if millis > 0 {
            write!(f, " {millis}ms")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ConfigDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a string with {FORMS}")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ConfigDuration, E> {
                ConfigDuration::parse(v).map_err(E::custom)
            }

            // A bare number has no unit: which one was meant is a guess enid does not make.
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ConfigDuration, E> {
                Err(E::custom(format!("duration {v} has no unit; write it as a string with {FORMS}")))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ConfigDuration, E> {
                Err(E::custom(format!("duration {v} has no unit; write it as a string with {FORMS}")))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ConfigDuration, E> {
                Err(E::custom(format!("duration {v} has no unit; write it as a string with {FORMS}")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_a_unit_parse() {
        for (text, secs) in [
            ("30s", 30),
            ("15m", 900),
            ("1h", 3_600),
            ("180d", 180 * 86_400),
            ("1h 30m", 5_400),
            ("1h30m", 5_400),
            (" 2d ", 2 * 86_400),
            ("0s", 0),
        ] {
            let d = ConfigDuration::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(d.as_secs(), secs, "{text}");
            assert_eq!(ConfigDuration::parse(&d.to_string()), Ok(d), "{text} printed as {d}");
        }
        assert_eq!(ConfigDuration::parse("1h 30m").unwrap().to_string(), "1h 30m");
        assert_eq!(ConfigDuration::parse("180d").unwrap().to_string(), "180d");
        for (text, millis) in [("500ms", 500), ("1s 250ms", 1_250), ("1s250ms", 1_250)] {
            let d = ConfigDuration::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(d.duration(), Duration::from_millis(millis), "{text}");
            assert_eq!(ConfigDuration::parse(&d.to_string()), Ok(d), "{text} printed as {d}");
        }
        // `m` and `s` are never read as `ms`, nor `ms` as minutes.
        assert_eq!(ConfigDuration::parse("5m").unwrap().as_secs(), 300);
        assert!(ConfigDuration::parse("5 ms s").is_err());
    }

    /// A value without a unit, with a unit enid does not take (months and years are not fixed
    /// lengths, and `M` is a slip away from `m`), or with anything else in it fails, naming the
    /// value and the forms taken.
    #[test]
    fn bad_durations_fail_naming_the_value_and_the_forms() {
        for text in ["", "30", "s", "1M", "1y", "1w", "1 h", "-1s", "1.5h", "1h and 2m", "1hour", "ten minutes", "1h,"]
        {
            let e = ConfigDuration::parse(text).unwrap_err();
            assert!(e.starts_with(&format!("duration {text:?} is not a number with a unit")), "{text}: {e}");
            assert!(e.contains("\"30s\"") && e.contains("d (days)"), "{e}");
        }
        // Too long to hold: humantime's own reason is kept.
        let e = ConfigDuration::parse("99999999999999999999d").unwrap_err();
        assert!(e.contains("\"99999999999999999999d\"") && e.contains("too large") && e.contains("\"30s\""), "{e}");
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Table {
        every: ConfigDuration,
    }

    #[test]
    fn a_config_key_takes_a_string_with_a_unit_and_refuses_a_bare_number() {
        let t: Table = serde_json::from_str(r#"{"every": "6h"}"#).unwrap();
        assert_eq!(t.every.duration(), Duration::from_secs(6 * 3_600));
        let e = serde_json::from_str::<Table>(r#"{"every": 3600}"#).unwrap_err().to_string();
        assert!(e.contains("duration 3600 has no unit") && e.contains("\"1h\""), "{e}");
        let e = serde_json::from_str::<Table>(r#"{"every": "6 hours"}"#).unwrap_err().to_string();
        assert!(e.contains("duration \"6 hours\" is not"), "{e}");
    }
}
