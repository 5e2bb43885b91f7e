//! Reading the sources and the state, and the input guards: a dropped column, zero records,
//! too many rejected rows, or a shrink versus the last applied run stops the run before
//! planning.

use super::{Engine, EngineError, Overrides};
use crate::core::identity::{self, Decision, RejectedRows, Resolution};
use crate::core::model::{Snapshot, Sourced};
use crate::core::plan::OwnedGroup;
use crate::store::StateStore;
use chrono::{DateTime, NaiveDate, Utc};
use connector_api::{FetchContext, RowError};
use std::collections::{BTreeMap, BTreeSet};

/// What reading the sources gave, after the input guards.
pub(super) struct Fetched {
    pub records: Vec<Sourced>,
    pub rejected: BTreeMap<String, Vec<RowError>>,
    pub counts: BTreeMap<String, usize>,
    pub columns: BTreeMap<String, BTreeSet<String>>,
}

impl Engine {
    /// Reads every source and runs the input guards (dropped columns, zero records, too many
    /// rejected rows, a shrink): a source that fails one stops the run before planning.
    pub(super) async fn fetch_all(&self, today: NaiveDate, overrides: &Overrides) -> Result<Fetched, EngineError> {
        let cx = FetchContext { today };
        let (results, last, last_columns) = tokio::join!(
            futures::future::join_all(self.sources.iter().map(|s| s.conn.fetch(cx))),
            self.store.source_counts(),
            self.store.source_columns()
        );
        let (last, last_columns) = (last?, last_columns?);
        let mut records = Vec::new();
        let mut rejected = BTreeMap::new();
        let mut counts = BTreeMap::new();
        let mut columns = BTreeMap::new();
        for (handle, result) in self.sources.iter().zip(results) {
            let (id, max_pct) = (&handle.id, &handle.policy.max_rejected_percent);
            let mut batch = result.map_err(|error| EngineError::Source { id: id.clone(), error })?;
            // Whatever the source checked itself: a civic number in a name, group, school or
            // address rejects the row before any guard counts it (one detector for every source).
            batch.reject_civic_in_free_text();
            if let Some(before) = last_columns.get(id).filter(|_| !overrides.schema_change) {
                let missing: Vec<&str> = before.difference(&batch.columns).map(String::as_str).collect();
                if !missing.is_empty() {
                    return Err(EngineError::Guard {
                        id: id.clone(),
                        reason: format!(
                            "the column{} {} {} in the export at the last applied run and {} missing now; a dropped \
                             column is a broken export, not a change of every person. Fix the export, or run again \
                             with --accept-schema-change after review",
                            if missing.len() == 1 { "" } else { "s" },
                            missing.join(", "),
                            if missing.len() == 1 { "was" } else { "were" },
                            if missing.len() == 1 { "is" } else { "are" },
                        ),
                    });
                }
            }
            let seen = batch.rows_seen();
            if batch.records.is_empty() {
                return Err(EngineError::Guard {
                    id: id.clone(),
                    reason: format!(
                        "yielded zero valid records ({} rows rejected); an empty source never means that everyone left",
                        batch.rejected.len()
                    ),
                });
            }
            let pct = 100.0 * batch.rejected.len() as f64 / seen as f64;
            if pct > *max_pct {
                let first: Vec<String> = batch.rejected.iter().take(5).map(|e| e.to_string()).collect();
                return Err(EngineError::Guard {
                    id: id.clone(),
                    reason: format!(
                        "{} of {seen} rows rejected ({pct:.1}%, more than max_rejected_percent = {max_pct}); first: {}",
                        batch.rejected.len(),
                        first.join("; ")
                    ),
                });
            }
            if let Some(&before) = last.get(id).filter(|_| !overrides.shrink) {
                let now = batch.records.len();
                let drop = 100.0 * before.saturating_sub(now) as f64 / before.max(1) as f64;
                if drop > handle.policy.max_shrink_percent && before - now > handle.policy.shrink_min_records {
                    return Err(EngineError::Guard {
                        id: id.clone(),
                        reason: format!(
                            "{now} valid records, {drop:.1}% fewer than the {before} of the last applied run (more than \
                             max_shrink_percent = {}, and more than {} records); a truncated or partial export never \
                             means that people left. If they did, run again with --accept-shrink",
                            handle.policy.max_shrink_percent, handle.policy.shrink_min_records
                        ),
                    });
                }
            }
            counts.insert(id.clone(), batch.records.len());
            columns.insert(id.clone(), batch.columns);
            records.extend(batch.records.into_iter().map(|record| Sourced { source: id.clone(), record }));
            rejected.insert(id.clone(), batch.rejected);
        }
        Ok(Fetched { records, rejected, counts, columns })
    }

    /// Starts reading every target in tasks of their own, so the reads run while the sources
    /// and the state are read and the identities resolved.
    pub(super) async fn read_state(
        &self,
    ) -> Result<(Snapshot, BTreeMap<String, Decision>, Vec<OwnedGroup>), EngineError> {
        let (snapshot, decisions, groups) =
            tokio::try_join!(self.store.snapshot(), self.store.decisions(), self.store.groups())?;
        Ok((snapshot, decisions, groups))
    }

    /// Reads the sources and the state and resolves identities, without the targets: enough to
    /// list the conflict queue.
    pub async fn resolve_only(&self, now: DateTime<Utc>) -> Result<Resolution, EngineError> {
        let overrides = Overrides::default();
        let (fetched, state) = tokio::join!(self.fetch_all(now.date_naive(), &overrides), self.read_state());
        let Fetched { records, rejected, .. } = fetched?;
        let (snapshot, decisions, _) = state?;
        let rejected = RejectedRows::from_rows(&rejected);
        Ok(identity::resolve(records, &snapshot, &decisions, &self.config.identity.match_on, &rejected, &self.id_key))
    }
}
