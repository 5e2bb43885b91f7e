//! The one place that reads the wall clock. Everything else takes `now` as an argument, so tests
//! and `--now` can move time.

use chrono::{DateTime, NaiveDate, Utc};

/// The current time, unless `--now` gave another.
pub fn now(overridden: Option<DateTime<Utc>>) -> DateTime<Utc> {
    overridden.unwrap_or_else(Utc::now)
}

/// Parses `--now`: a date (`2026-08-15`, taken as noon UTC) or an RFC 3339 time.
pub fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("--now {s:?}: use YYYY-MM-DD or an RFC 3339 time"))
}
