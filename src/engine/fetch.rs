//! Reading the sources and the state, and the input guards: a dropped column, zero records,
//! too many rejected rows, or a shrink versus the last applied run stops the run before
//! planning.

use super::{Engine, EngineError, Overrides};
use crate::core::identity::{self, Decision, RejectedRows, Resolution};
use crate::core::model::{Snapshot, Sourced};
use crate::core::plan::OwnedGroup;
use crate::store::SourceRead;
use crate::store::StateStore;
use chrono::{DateTime, NaiveDate, Utc};
use connector_api::{BoxFuture, FetchContext, PriorQuery, PriorRecords, RowError, SourceError, SourceRecord};
use std::collections::{BTreeMap, BTreeSet};

/// What reading the sources gave, after the input guards.
pub(super) struct Fetched {
    pub records: Vec<Sourced>,
    pub rejected: BTreeMap<String, Vec<RowError>>,
    pub counts: BTreeMap<String, usize>,
    pub columns: BTreeMap<String, BTreeSet<String>>,
    /// Persons each source has but does not provision, by why.
    pub skipped: BTreeMap<String, BTreeMap<String, usize>>,
    /// What each source's read leaves for the next one (recorded at the end of an apply), and
    /// whether it read in full.
    pub reads: BTreeMap<String, (SourceRead, bool)>,
    /// Whether an apply must record `reads` although nothing else changed: a watermark or scope
    /// moved, or an incremental source read in full.
    pub reads_changed: bool,
    /// The sources read incrementally whose stored records were not merged in (an incremental
    /// run's read, [`Engine::fetch_changes`]): `records` holds only their changed records, and
    /// this the persons they removed. Empty for a full view.
    pub partial: BTreeMap<String, Vec<String>>,
}

/// How one source is read this run: in full, or the changes since its watermark merged with
/// the records its last applied read left.
enum ReadPlan {
    Full,
    Changes { since: String },
}

/// A source's stored records as the state database gives them to an incremental read: looked
/// up by what the changes name, or read whole.
pub(super) struct StorePrior<'a> {
    pub store: &'a crate::store::Store,
    pub source: &'a str,
    pub today: NaiveDate,
}

impl std::fmt::Debug for StorePrior<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePrior").field("source", &self.source).finish()
    }
}

impl StorePrior<'_> {
    fn unavailable(&self, e: crate::store::StoreError) -> SourceError {
        SourceError::Unavailable {
            what: format!("the records stored from {}'s last read", self.source),
            reason: e.to_string(),
            source: None,
        }
    }

    /// Stored rows as records, with their civic numbers.
    fn records(&self, rows: Vec<crate::store::StoredSourceRecord>) -> Result<Vec<SourceRecord>, SourceError> {
        let broken = |person: &str, why: String| SourceError::Unavailable {
            what: format!("the stored record {}/{}", self.source, connector_api::civic::mask_if_civic(person)),
            reason: format!("{why}; run `enid apply --full` (a full read gives every record afresh)"),
            source: None,
        };
        rows.into_iter()
            .map(|stored| {
                let data = stored
                    .data
                    .as_deref()
                    .ok_or_else(|| broken(&stored.person_id, "it was stored before records were kept whole".into()))?;
                let mut record: SourceRecord = serde_json::from_str(data)
                    .map_err(|e| broken(&stored.person_id, format!("it cannot be read ({e})")))?;
                // A stored number that no longer reads is never taken for "no number" (an
                // identity is matched by it).
                record.civic_no = match stored.civic_no.as_deref().map(|c| connector_api::CivicNo::parse(c, self.today))
                {
                    None => None,
                    Some(Ok(c)) => Some(c),
                    Some(Err(_)) => return Err(broken(&stored.person_id, "its civic number no longer reads".into())),
                };
                Ok(record)
            })
            .collect()
    }
}

impl PriorRecords for StorePrior<'_> {
    fn all(&self) -> BoxFuture<'_, Result<Vec<SourceRecord>, SourceError>> {
        Box::pin(async move {
            let rows = self.store.stored_records(self.source).await.map_err(|e| self.unavailable(e))?;
            self.records(rows)
        })
    }

    fn find<'a>(&'a self, query: &'a PriorQuery) -> BoxFuture<'a, Result<Vec<SourceRecord>, SourceError>> {
        Box::pin(async move {
            let rows = self.store.stored_records_where(self.source, query).await.map_err(|e| self.unavailable(e))?;
            let mut records = self.records(rows)?;
            records.retain(|r| query.matches(r));
            Ok(records)
        })
    }

    fn school_units(&self) -> BoxFuture<'_, Result<connector_api::StoredUnits, SourceError>> {
        Box::pin(async move { self.store.stored_units(self.source).await.map_err(|e| self.unavailable(e)) })
    }
}

impl Engine {
    /// Reads every source and runs the input guards (dropped columns, zero records, too many
    /// rejected rows, a shrink, a changed scope): a source that fails one stops the run before
    /// planning. A source that can read incrementally does so when its last applied read left a
    /// watermark, its scope is unchanged, its `full_read_every` has not passed, and `--full` was
    /// not given; its changes are merged with the stored records before any guard judges them.
    pub(super) async fn fetch_all(&self, now: DateTime<Utc>, overrides: &Overrides) -> Result<Fetched, EngineError> {
        self.fetch_sources(now, overrides, false).await
    }

    /// As [`Engine::fetch_all`], for an incremental run: a source that reads incrementally
    /// gives only its changed records and the persons it removed ([`Fetched::partial`]); its
    /// input guards judge the stored records with the changes applied, counted in the state.
    pub(super) async fn fetch_changes(
        &self,
        now: DateTime<Utc>,
        overrides: &Overrides,
    ) -> Result<Fetched, EngineError> {
        self.fetch_sources(now, overrides, true).await
    }

    async fn fetch_sources(
        &self,
        now: DateTime<Utc>,
        overrides: &Overrides,
        partial: bool,
    ) -> Result<Fetched, EngineError> {
        let today = now.date_naive();
        let started = std::time::Instant::now();
        let (last, last_columns, last_reads) =
            tokio::try_join!(self.store.source_counts(), self.store.source_columns(), self.store.source_reads())?;
        let mut plans = Vec::new();
        for handle in &self.sources {
            plans.push(self.read_plan(handle, last_reads.get(&handle.id), now, overrides).await?);
        }
        let priors: Vec<StorePrior<'_>> =
            self.sources.iter().map(|s| StorePrior { store: &self.store, source: &s.id, today }).collect();
        let results =
            futures::future::join_all(self.sources.iter().zip(&plans).zip(&priors).map(|((s, plan), prior)| {
                let cx = match plan {
                    ReadPlan::Full => FetchContext::full(today),
                    ReadPlan::Changes { since } => FetchContext { today, since: Some(since), prior },
                };
                s.conn.fetch(cx)
            }))
            .await;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "read the sources");
        let mut out = Fetched {
            records: Vec::new(),
            rejected: BTreeMap::new(),
            counts: BTreeMap::new(),
            columns: BTreeMap::new(),
            skipped: BTreeMap::new(),
            reads: BTreeMap::new(),
            reads_changed: false,
            partial: BTreeMap::new(),
        };
        // The records' ties and memberships, each made once for the run (a source may have made
        // one per record): at a million records they were a quarter of the records' memory.
        let mut shared = connector_api::Interner::default();
        for (((handle, result), plan), prior) in self.sources.iter().zip(results).zip(plans).zip(&priors) {
            let (id, max_pct) = (&handle.id, &handle.policy.max_rejected_percent);
            let fetched = result.map_err(|error| EngineError::Source { id: id.clone(), error })?;
            let mut removed = None;
            let (mut batch, full) = match (fetched, plan) {
                (connector_api::Fetched::Full(batch), _) => (batch, true),
                (connector_api::Fetched::Changes(mut changes), ReadPlan::Changes { .. }) if partial => {
                    // Only the changes: what the merge would give is counted in the state.
                    removed = Some(std::mem::take(&mut changes.removed));
                    let columns = last_columns.get(id).cloned().unwrap_or_default();
                    (merge_changes(Vec::new(), changes, columns), false)
                }
                (connector_api::Fetched::Changes(changes), ReadPlan::Changes { .. }) => {
                    let columns = last_columns.get(id).cloned().unwrap_or_default();
                    let prior = prior.all().await.map_err(|error| EngineError::Source { id: id.clone(), error })?;
                    (merge_changes(prior, changes, columns), false)
                }
                (connector_api::Fetched::Changes(_), ReadPlan::Full) => {
                    return Err(EngineError::Source {
                        id: id.clone(),
                        error: connector_api::SourceError::Malformed {
                            location: id.clone(),
                            reason: "delivered changes (a delta) where every record was asked for, and the state \
                                     holds no complete earlier read of this source to merge them with; a delta is \
                                     never read as a full export. Give the source a full export first"
                                .into(),
                            source: None,
                        },
                    });
                }
            };
            // Whatever the source checked itself: a civic number in a name, group, school or
            // address rejects the row before any guard counts it (one detector for every source).
            batch.reject_unfit();
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
            // The number of valid records the read leaves: for changes not merged in, the stored
            // ones with the changes applied (as `merge_changes` does: the removed go, the changed
            // come, a rejected person is not among the records).
            let count = match &removed {
                None => batch.records.len(),
                Some(removed) => {
                    let changed: BTreeSet<&str> = batch.records.iter().map(|r| r.person_id.as_str()).collect();
                    let rejected: BTreeSet<&str> =
                        batch.rejected.iter().filter_map(|r| r.person_id.as_deref()).collect();
                    let keys: Vec<String> = changed
                        .iter()
                        .chain(&rejected)
                        .copied()
                        .chain(removed.iter().map(String::as_str))
                        .collect::<BTreeSet<&str>>()
                        .into_iter()
                        .map(String::from)
                        .collect();
                    let (stored, present) = self.store.stored_presence(id, &keys).await?;
                    let before = keys.iter().filter(|k| present.contains(*k)).count();
                    let after = keys
                        .iter()
                        .filter(|k| {
                            let k = k.as_str();
                            (changed.contains(k) || present.contains(k) && !removed.iter().any(|r| r == k))
                                && !rejected.contains(k)
                        })
                        .count();
                    stored - before + after
                }
            };
            let seen = count + batch.rejected.len();
            if count == 0 {
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
            let scope = handle.conn.scope();
            let scope_changed = last_reads.get(id).is_some_and(|r| r.scope != scope);
            if let Some(read) = last_reads.get(id).filter(|_| scope_changed && !overrides.scope_change) {
                self.guard_scope_change(id, &read.scope, &scope, &batch).await?;
            }
            // An accepted scope change explains the drop it causes: it needs no second flag.
            let shrink_accepted = overrides.shrink || (scope_changed && overrides.scope_change);
            if let Some(&before) = last.get(id).filter(|_| !shrink_accepted) {
                let now = count;
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
            out.counts.insert(id.clone(), count);
            if let Some(removed) = removed {
                out.partial.insert(id.clone(), removed);
            }
            out.columns.insert(id.clone(), batch.columns);
            out.skipped.insert(id.clone(), batch.skipped);
            let last = last_reads.get(id);
            out.reads_changed |= (full && handle.conn.incremental())
                || last.map(|r| (&r.watermark, &r.scope)) != Some((&batch.watermark, &scope))
                    && (last.is_some() || batch.watermark.is_some() || !scope.is_empty());
            out.reads.insert(id.clone(), (SourceRead { watermark: batch.watermark, full_read_at: None, scope }, full));
            out.records.extend(batch.records.into_iter().map(|mut record| {
                shared.record(&mut record);
                Sourced { source: id.as_str().into(), record }
            }));
            out.rejected.insert(id.clone(), batch.rejected);
        }
        Ok(out)
    }

    /// Whether `handle` reads in full or incrementally this run. A source with a record stored
    /// before records were kept whole (an upgraded state) reads in full.
    async fn read_plan(
        &self,
        handle: &super::SourceHandle,
        last: Option<&SourceRead>,
        now: DateTime<Utc>,
        overrides: &Overrides,
    ) -> Result<ReadPlan, EngineError> {
        let Some(last) = last.filter(|_| handle.conn.incremental() && !overrides.full_read) else {
            return Ok(ReadPlan::Full);
        };
        let Some(since) = last.watermark.clone() else { return Ok(ReadPlan::Full) };
        if last.scope != handle.conn.scope() {
            return Ok(ReadPlan::Full);
        }
        let due = match (handle.conn.full_read_every(), last.full_read_at) {
            (Some(every), Some(at)) => chrono::Duration::from_std(every).map_or(true, |every| at + every <= now),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if due || self.store.stored_unwhole(&handle.id).await? {
            return Ok(ReadPlan::Full);
        }
        Ok(ReadPlan::Changes { since })
    }

    /// A source that reads another scope than at the last apply (its `organisations` changed):
    /// persons it gave then and not now are out only because of the config, so the run stops
    /// before planning, however few they are.
    async fn guard_scope_change(
        &self,
        id: &str,
        before: &str,
        now: &str,
        batch: &connector_api::SourceBatch,
    ) -> Result<(), EngineError> {
        let present: std::collections::HashSet<&str> = batch
            .records
            .iter()
            .map(|r| r.person_id.as_str())
            .chain(batch.rejected.iter().filter_map(|e| e.person_id.as_deref()))
            .collect();
        let stored = self.store.stored_records(id).await?;
        let out = stored.iter().filter(|s| !present.contains(s.person_id.as_str())).count();
        if out == 0 {
            return Ok(());
        }
        Err(EngineError::Guard {
            id: id.to_string(),
            reason: format!(
                "reads another scope than at the last applied run ({} → {}), and {out} of the persons it gave then \
                 are not in it now; a changed scope is a config change, never departures. Change the config back, or \
                 run again with --accept-scope-change after review",
                if before.is_empty() { "all" } else { before },
                if now.is_empty() { "all" } else { now },
            ),
        })
    }

    /// Starts reading every target in tasks of their own, so the reads run while the sources
    /// and the state are read and the identities resolved.
    ///
    /// On a task of its own: the sources are read beside it, and a source that parses in the
    /// task that polls it (a CSV file of a million rows, some seconds) would otherwise hold the
    /// state's decoding back until it is done.
    pub(super) async fn read_state(
        &self,
    ) -> Result<(Snapshot, BTreeMap<String, Decision>, Vec<OwnedGroup>), EngineError> {
        self.read_state_with(true).await
    }

    /// [`Engine::read_state`], with the snapshot's ownership rows or without them (read later
    /// with [`crate::store::StateStore::owned_accounts`]).
    pub(super) async fn read_state_with(
        &self,
        accounts: bool,
    ) -> Result<(Snapshot, BTreeMap<String, Decision>, Vec<OwnedGroup>), EngineError> {
        let store = self.store.clone();
        let reading = tokio::spawn(async move {
            let snapshot =
                async { if accounts { store.snapshot().await } else { store.snapshot_without_accounts().await } };
            tokio::try_join!(snapshot, store.decisions(), store.groups())
        });
        match reading.await {
            Ok(read) => Ok(read?),
            // A panic in the read is the run's panic, as it was when the read ran in this task.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(EngineError::Store(crate::store::StoreError {
                path: self.store.path().to_string(),
                message: format!("reading the state stopped: {e}"),
            })),
        }
    }

    /// Reads the sources and the state and resolves identities, without the targets: enough to
    /// list the conflict queue.
    pub async fn resolve_only(&self, now: DateTime<Utc>) -> Result<Resolution, EngineError> {
        let overrides = Overrides::default();
        let (fetched, state) = tokio::join!(self.fetch_all(now, &overrides), self.read_state_with(false));
        let Fetched { records, rejected, .. } = fetched?;
        let (snapshot, decisions, _) = state?;
        let rejected = RejectedRows::from_rows(&rejected);
        Ok(identity::resolve(records, &snapshot, &decisions, &self.config.identity.match_on, &rejected, &self.id_key))
    }
}

/// The records a source's last applied read left, with an incremental read's changes applied:
/// a changed record replaces the stored one, a removed person goes, and a person whose changed
/// record was rejected is left out of the records (the rejected row keeps them as last stored,
/// as for any rejected row). Pure.
pub(super) fn merge_changes(
    prior: Vec<SourceRecord>,
    changes: connector_api::SourceChanges,
    columns: BTreeSet<String>,
) -> connector_api::SourceBatch {
    let mut by_id: BTreeMap<String, Box<SourceRecord>> =
        prior.into_iter().map(|r| (r.person_id.to_string(), Box::new(r))).collect();
    for pid in &changes.removed {
        by_id.remove(pid);
    }
    for r in changes.changed {
        by_id.insert(r.person_id.to_string(), Box::new(r));
    }
    for e in &changes.rejected {
        if let Some(pid) = &e.person_id {
            by_id.remove(pid);
        }
    }
    connector_api::SourceBatch {
        records: by_id.into_values().collect(),
        rejected: changes.rejected,
        columns,
        skipped: changes.skipped,
        watermark: changes.watermark,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_api::{Affiliation, Role, SourceChanges};

    fn rec(pid: &str, given: &str) -> SourceRecord {
        SourceRecord {
            person_id: pid.into(),
            given_name: given.into(),
            family_name: "B".into(),
            civic_no: None,
            affiliations: vec![Affiliation::new(Some("S".into()), Role::Student).into()].into(),
            groups: Default::default(),
            extras: connector_api::Extras::new(None, None, Box::default()),
            protection: None,
            deceased: false,
            location: format!("api:{pid}").into(),
        }
    }

    #[test]
    fn changes_merge_with_the_stored_records_and_a_rejected_change_keeps_the_person_out_of_the_records() {
        let prior = vec![rec("1", "Anna"), rec("2", "Bo"), rec("3", "Cy"), rec("4", "Dag")];
        let changes = SourceChanges {
            changed: vec![rec("2", "Bosse"), rec("5", "Eva")],
            removed: vec!["3".into(), "9".into()],
            rejected: vec![RowError {
                location: "api:4".into(),
                message: "bad".into(),
                person_id: Some("4".into()),
                civic_no: None,
                school_unit: None,
            }],
            skipped: BTreeMap::from([("guardian".to_string(), 2)]),
            watermark: Some("w2".into()),
        };
        let columns = BTreeSet::from(["email".to_string()]);
        let batch = merge_changes(prior, changes, columns.clone());
        let names: Vec<(&str, &str)> =
            batch.records.iter().map(|r| (r.person_id.as_str(), r.given_name.as_str())).collect();
        assert_eq!(names, [("1", "Anna"), ("2", "Bosse"), ("5", "Eva")]);
        assert_eq!(batch.rejected.len(), 1, "the rejected row keeps person 4 as last stored");
        assert_eq!(batch.columns, columns, "the columns of the last full read stand");
        assert_eq!(batch.watermark.as_deref(), Some("w2"));
        assert_eq!(batch.skipped["guardian"], 2);
    }
}
