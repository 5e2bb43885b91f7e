//! `[sources.<id>]`: the connector's own settings, tagged by `type`, and the source's policy
//! (`[sources.<id>.policy]`: the input guards), which enid parses the same way for every source
//! type.
//!
//! Config files from before the policy block keep working: the guard keys of a CSV source
//! (`max_rejected_percent`, `max_shrink_percent`, `shrink_min_records`) are read from the CSV
//! table, with a warning naming the new spelling; one key in both places is an error.

use super::SourceConfig;
use serde::Deserialize;

/// One source: what reads it, and when its input is too broken to plan from.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// The connector's own settings.
    pub connector: SourceConfig,
    /// The input guards.
    pub policy: SourcePolicy,
    /// Old spellings this entry used (warned about at every start).
    pub deprecated: Vec<String>,
}

/// `[sources.<id>.policy]`: the input guards, which stop a run before planning when the input
/// looks broken, for every source type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePolicy {
    /// The run stops when more than this share of rows (records) is rejected (percent, default 2).
    #[serde(default = "default_max_rejected_percent")]
    pub max_rejected_percent: f64,
    /// The run stops when the source has this much fewer valid records than at the last
    /// applied run (percent, default 10; `--accept-shrink` after checking).
    #[serde(default = "default_max_shrink_percent")]
    pub max_shrink_percent: f64,
    /// A drop of at most this many records never stops the run, whatever the share (default 10),
    /// so a small school losing a few pupils is not a broken export.
    #[serde(default = "default_shrink_min_records")]
    pub shrink_min_records: usize,
}

impl Default for SourcePolicy {
    fn default() -> Self {
        SourcePolicy {
            max_rejected_percent: default_max_rejected_percent(),
            max_shrink_percent: default_max_shrink_percent(),
            shrink_min_records: default_shrink_min_records(),
        }
    }
}

fn default_max_rejected_percent() -> f64 {
    2.0
}
fn default_max_shrink_percent() -> f64 {
    10.0
}
fn default_shrink_min_records() -> usize {
    10
}

impl SourcePolicy {
    /// Checks the shares are percentages.
    pub fn validate(&self) -> Result<(), String> {
        for (key, value) in
            [("max_rejected_percent", self.max_rejected_percent), ("max_shrink_percent", self.max_shrink_percent)]
        {
            if !(0.0..=100.0).contains(&value) {
                return Err(format!("{key} = {value} must be between 0 and 100"));
            }
        }
        Ok(())
    }
}

/// The guard keys a CSV source's table held before the policy block.
const LEGACY_GUARD_KEYS: [&str; 3] = ["max_rejected_percent", "max_shrink_percent", "shrink_min_records"];

impl<'de> Deserialize<'de> for SourceEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let (policy, deprecated) = split_policy(&mut table).map_err(D::Error::custom)?;
        let connector: SourceConfig =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        let policy: SourcePolicy =
            toml::Value::Table(policy).try_into().map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        Ok(SourceEntry { connector, policy, deprecated })
    }
}

/// Takes the policy out of a source's table: the `policy` table, plus a CSV source's guard keys
/// written the old way. Returns the policy and the old spellings found.
fn split_policy(table: &mut toml::Table) -> Result<(toml::Table, Vec<String>), String> {
    let mut policy = match table.remove("policy") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(_) => return Err("policy must be a table ([sources.<id>.policy])".into()),
    };
    let mut deprecated = Vec::new();
    // Only the CSV table ever held them: in any other source's table they are unknown keys.
    if table.get("type").and_then(toml::Value::as_str) == Some("csv") {
        for key in LEGACY_GUARD_KEYS {
            let Some(value) = table.remove(key) else { continue };
            if policy.contains_key(key) {
                return Err(format!(
                    "{key} is given twice: once in the source's table (the old way) and once in its policy; keep \
                     the policy's"
                ));
            }
            policy.insert(key.to_string(), value);
            deprecated.push(key.to_string());
        }
    }
    Ok((policy, deprecated))
}
