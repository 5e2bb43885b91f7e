//! `[schedule]`: when `enid run` reconciles and what it does with a plan.

use chrono::{DateTime, Utc};
use connector_api::ConfigDuration;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// `[schedule]` (optional: without it `enid run` reconciles in full every hour and only plans).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// A full reconcile, every source read in full: an interval (`"1h"`) or a cron expression
    /// in the server's local time (`"0 2 * * *"`: at two every night). The first one runs right
    /// after start. Default `"1h"`.
    #[serde(default)]
    pub full: Every,
    /// How often a source that can read only its changes (SS 12000, OneRoster deltas) is read
    /// for them (`"30s"`); a change of a watched file (a CSV export) starts a run whatever
    /// this says. Default: none (full reconciles and file changes only).
    #[serde(default)]
    pub incremental: Option<ConfigDuration>,
    /// What a run does with its plan: `"plan_only"` (the default: save it and wait for an
    /// approval) or `"within_thresholds"` (apply it when nothing holds it).
    #[serde(default)]
    pub apply: ApplyMode,
    /// How long an approval of a held run's operations stays good (default `"24h"`).
    #[serde(default = "a_day")]
    pub approvals_expire_after: ConfigDuration,
    /// How long a watched file must be quiet before its change starts a run (default `"2s"`):
    /// an export written in several steps is read once, when it is done.
    #[serde(default = "two_seconds")]
    pub settle: ConfigDuration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            full: Every::default(),
            incremental: None,
            apply: ApplyMode::default(),
            approvals_expire_after: a_day(),
            settle: two_seconds(),
        }
    }
}

fn a_day() -> ConfigDuration {
    Duration::from_secs(24 * 3600).into()
}

fn two_seconds() -> ConfigDuration {
    Duration::from_secs(2).into()
}

/// What a daemon run does with its plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyMode {
    /// Save the plan and wait for an approval.
    #[default]
    PlanOnly,
    /// Apply when no threshold and no protected person holds the plan.
    WithinThresholds,
}

/// When a full reconcile is due: every interval, or at the times of a cron expression.
#[derive(Debug, Clone)]
pub enum Every {
    Interval(Duration),
    /// The expression as written, and parsed.
    Cron(String, Box<croner::Cron>),
}

impl Default for Every {
    fn default() -> Self {
        Every::Interval(Duration::from_secs(3600))
    }
}

impl Every {
    /// Parses an interval (`"1h"`) or a cron expression of five fields (`"0 2 * * *"`).
    pub fn parse(text: &str) -> Result<Every, String> {
        if let Ok(d) = ConfigDuration::parse(text) {
            if d.duration() < Duration::from_secs(10) {
                return Err(format!("{text:?}: a full reconcile at most every 10 seconds"));
            }
            return Ok(Every::Interval(d.duration()));
        }
        let cron: croner::Cron = text.parse().map_err(|e| {
            format!("{text:?} is neither an interval (\"1h\", \"30m\") nor a cron expression (\"0 2 * * *\"): {e}")
        })?;
        Ok(Every::Cron(text.to_string(), Box::new(cron)))
    }

    /// The first time after `t` a full reconcile is due (local time for a cron expression).
    pub fn next_after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Every::Interval(d) => t + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::hours(1)),
            Every::Cron(_, cron) => cron
                .find_next_occurrence(&t.with_timezone(&chrono::Local), false)
                .map(|n| n.with_timezone(&Utc))
                // An expression that never matches again (a date long past) is never due.
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

impl std::fmt::Display for Every {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Every::Interval(d) => write!(f, "every {}", ConfigDuration::from(*d)),
            Every::Cron(text, _) => write!(f, "at \"{text}\""),
        }
    }
}

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Every::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_full_reconcile_is_an_interval_or_a_cron_expression() {
        let t = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
        assert_eq!(Every::parse("30m").unwrap().next_after(t), t + chrono::Duration::minutes(30));
        let nightly = Every::parse("0 2 * * *").unwrap();
        let next = nightly.next_after(t).with_timezone(&chrono::Local);
        assert_eq!((next.format("%H:%M").to_string(), next > t), ("02:00".to_string(), true));
        assert!(Every::parse("2s").unwrap_err().contains("at most every 10 seconds"));
        let e = Every::parse("every night").unwrap_err();
        assert!(e.contains("neither an interval") && e.contains("cron"), "{e}");
        assert!(Every::parse("61 * * * *").is_err());
    }
}
