//! Incremental reconciles: a run started by a small change plans only the identities whose
//! records changed and reads only their accounts, looked up on each target by owner value.
//!
//! The rule (ARCHITECTURE.md, "Incremental runs"): an incremental run reads every source as a
//! full run does (with the same input guards), compares each record with its stored digest, and
//! takes the identities of the changed, new and gone records, and the stored identities a new
//! record could match (civic number, e-mail, eppn), from the state. It resolves, names and plans
//! only those, weighs the thresholds against the owned totals, and reads their accounts by owner
//! value. Whenever it cannot prove that its narrow view gives the plan a full run would give
//! for these persons, it gives up before planning anything and the run is a full one:
//! [`Narrowed::Full`] says why. Among the reasons: many changes; a record that is held, rejected
//! without a key, or re-keyed by a new personnummer; a conflict; an account of theirs that is
//! not where the state says, an unconfirmed create, or an account with their id that the state
//! does not know; a create or rename whose username or correlation values a target already
//! holds, or a new name while `enid adopt` reserved names; a target enid owns nothing on yet; a
//! last full run that did not go through (held, stopped); a group membership that would change;
//! a target that cannot look accounts up. The
//! target-scope guard, the lost-state guard and the group cross-checks stay the full run's.

use super::fetch::Fetched;
use super::{Engine, EngineError};
use crate::core::identity::{Decision, Resolution};
use crate::core::model::{AccountStatus, IdentityId, Snapshot};
use crate::core::plan::{Action, OwnedGroup, Plan};
use crate::store::StateStore;
use connector_api::{Field, ObservedAccount, PriorRecords, Target, TargetError};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, HashMap, HashSet};

/// At most this many changed records are planned incrementally (and no more than one in
/// twenty of all records, above fifty): more is a full run's work.
pub const MAX_CHANGES: usize = 1000;

/// How many of the latest runs are searched for the last full one.
const LAST_RUNS: i64 = 50;

/// What an incremental run found, or why it is a full run.
#[derive(Debug)]
pub enum Narrowed<T> {
    /// The narrow view holds.
    Yes(T),
    /// This must be a full run, for the reason given (no person named).
    Full(String),
}

/// Shorthand: give up the incremental run with a reason.
macro_rules! full {
    ($($arg:tt)*) => {
        return Ok(Narrowed::Full(format!($($arg)*)))
    };
}

/// The state an incremental run plans with: the changed persons' part of it.
pub(super) type State = (Snapshot, BTreeMap<String, Decision>, Vec<OwnedGroup>);

impl Engine {
    /// The latest finished run that was not an incremental one (among the last [`LAST_RUNS`]).
    pub(super) async fn last_full_run(&self) -> Result<Option<crate::store::RunRow>, EngineError> {
        let runs = self.store.runs(LAST_RUNS).await?;
        Ok(runs.into_iter().rev().find(|r| {
            matches!(r.command.as_str(), "run" | "apply")
                && r.status != "running"
                && !r
                    .counts
                    .as_deref()
                    .is_some_and(|c| serde_json::from_str::<super::RunCounts>(c).is_ok_and(|c| c.incremental))
        }))
    }

    /// What the incremental runs since the last full one carried out, per target: an
    /// incremental run weighs its thresholds with these, so that a change that arrives over
    /// many ticks (a vendor deleting a school's pupils a page at a time) is held as one that
    /// arrives at once would be. The next full run starts the count again.
    pub(super) async fn applied_since_full(&self) -> Result<BTreeMap<String, crate::core::plan::Summary>, EngineError> {
        let Some(full) = self.last_full_run().await? else { return Ok(BTreeMap::new()) };
        let mut out: BTreeMap<String, crate::core::plan::Summary> = BTreeMap::new();
        for (target, action, n) in self.store.applied_since(full.id).await? {
            let mut account_actions = Action::ALL.into_iter().filter(|a| !super::apply::is_group_action(*a));
            if let Some(a) = account_actions.find(|a| a.as_str() == action) {
                let summary = out.entry(target).or_default();
                for _ in 0..n {
                    summary.count(a);
                }
            }
        }
        Ok(out)
    }

    /// The records that changed since the last applied run and the state of their identities;
    /// `fetched.records` keeps only their records.
    pub(super) async fn narrow_state(
        &self,
        mut fetched: Fetched,
        today: chrono::NaiveDate,
    ) -> Result<Narrowed<(Fetched, State)>, EngineError> {
        // Every source gave only its changes, and there are none (an `incremental = "1s"` tick
        // that found nothing): nothing to compare, plan or read from the state.
        if fetched.partial.len() == self.sources.len()
            && fetched.records.is_empty()
            && fetched.partial.values().all(Vec::is_empty)
            && fetched.rejected.values().all(Vec::is_empty)
        {
            return Ok(Narrowed::Yes((fetched, (Snapshot::default(), BTreeMap::new(), Vec::new()))));
        }
        let started = std::time::Instant::now();
        let lap = |what: &'static str| {
            tracing::debug!(what, elapsed_ms = started.elapsed().as_millis() as u64, "incremental");
        };
        // Every source read incrementally gave only its changes: the digests of those records
        // are all there is to compare. A source read whole is compared record by record.
        let digests = if fetched.partial.len() == self.sources.len() {
            let mut keys: Vec<(String, String)> =
                fetched.records.iter().map(|s| (s.source.to_string(), s.record.person_id.to_string())).collect();
            keys.extend(fetched.partial.iter().flat_map(|(s, removed)| removed.iter().map(|p| (s.clone(), p.clone()))));
            self.store.record_digests_of(&keys).await?
        } else {
            self.store.record_digests().await?
        };
        let held = self.store.held_keys().await?;
        lap("read the digests");
        // A stored hash that is not a number never equals a record's: that record counts as
        // changed.
        let hash = |h: &str| u64::from_str_radix(h, 16).ok();
        let by_key: FxHashMap<(&str, &str), (&crate::store::RecordDigest, Option<u64>)> =
            digests.iter().map(|d| ((d.source.as_str(), d.person_id.as_str()), (d, hash(&d.content_hash)))).collect();
        let held: FxHashMap<(&str, &str), Option<u64>> =
            held.iter().map(|(s, p, h)| ((s.as_str(), p.as_str()), hash(h))).collect();
        let rejected: HashSet<(&str, &str)> = fetched
            .rejected
            .iter()
            .flat_map(|(s, rows)| rows.iter().filter_map(move |r| Some((s.as_str(), r.person_id.as_deref()?))))
            .collect();
        let mut changed: HashSet<usize> = HashSet::default();
        let mut unlinked = Vec::new();
        for (i, s) in fetched.records.iter().enumerate() {
            let key = (s.source.as_str(), s.record.person_id.as_str());
            let civic = s.record.civic_no.as_ref().map(|c| c.expose());
            if let Some(h) = held.get(&key) {
                if Some(super::records::fingerprint_u64("", civic, &s.record)) == *h {
                    continue;
                }
                full!("a record held in the conflict queue or waiting for a decision changed");
            }
            match by_key.get(&key) {
                Some((d, h))
                    if !d.gone && Some(super::records::fingerprint_u64(&d.identity_id, civic, &s.record)) == *h => {}
                Some(_) => {
                    changed.insert(i);
                }
                None => {
                    changed.insert(i);
                    unlinked.push(i);
                }
            }
        }
        let present: FxHashSet<(&str, &str)> =
            fetched.records.iter().map(|s| (s.source.as_str(), s.record.person_id.as_str())).collect();
        let left = |k: &(&str, &str)| !present.contains(k) && !rejected.contains(k) && !held.contains_key(k);
        // Gone: a stored record a source read whole no longer has, or one a source read
        // incrementally removed.
        let mut gone: Vec<(String, String)> = digests
            .iter()
            .filter(|d| !d.gone && fetched.counts.contains_key(&d.source) && !fetched.partial.contains_key(&d.source))
            .map(|d| (d.source.as_str(), d.person_id.as_str()))
            .filter(left)
            .map(|(s, p)| (s.to_string(), p.to_string()))
            .collect();
        for (source, removed) in &fetched.partial {
            for p in removed {
                let key = (source.as_str(), p.as_str());
                if by_key.get(&key).is_some_and(|(d, _)| !d.gone) && left(&key) {
                    gone.push((source.clone(), p.clone()));
                }
            }
        }
        gone.sort();
        gone.dedup();
        let n = changed.len() + gone.len();
        let total: usize = fetched.counts.values().sum();
        lap("compared the records");
        // What changed, as one number: the same changes as those a full run weighed last and
        // left waiting (held, or planned for approval) are not weighed again at every tick.
        let signature = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            let mut keys: Vec<(&str, &str, u64)> = changed
                .iter()
                .map(|&i| {
                    let s = &fetched.records[i];
                    let civic = s.record.civic_no.as_ref().map(|c| c.expose());
                    (
                        s.source.as_str(),
                        s.record.person_id.as_str(),
                        super::records::fingerprint_u64("", civic, &s.record),
                    )
                })
                .collect();
            keys.sort_unstable();
            keys.hash(&mut h);
            gone.hash(&mut h);
            let mut rejected: Vec<&(&str, &str)> = rejected.iter().collect();
            rejected.sort_unstable();
            rejected.hash(&mut h);
            for r in fetched.rejected.values().flatten().filter(|r| r.person_id.is_none()) {
                (&r.location, &r.message).hash(&mut h);
            }
            h.finish()
        };
        *self.narrow_signature.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(signature);
        let keyless = fetched.rejected.values().flatten().any(|r| r.person_id.is_none());
        if n == 0 && rejected.is_empty() && !keyless && !fetched.reads_changed {
            // Nothing changed (a file saved as it was): nothing to plan.
            fetched.records.clear();
            return Ok(Narrowed::Yes((fetched, (Snapshot::default(), BTreeMap::new(), Vec::new()))));
        }
        if *self.settled_signature.lock().unwrap_or_else(std::sync::PoisonError::into_inner) == Some(signature) {
            tracing::debug!("incremental: the changes the last full run left waiting; nothing new");
            fetched.records.clear();
            fetched.partial.values_mut().for_each(Vec::clear);
            fetched.reads.clear();
            fetched.reads_changed = false;
            return Ok(Narrowed::Yes((fetched, (Snapshot::default(), BTreeMap::new(), Vec::new()))));
        }
        if keyless {
            full!("rows were rejected without a readable person_id");
        }
        // The last full run held for review or stopped by a guard: what it found is not the
        // changed persons' to carry out piecemeal (a new template, a target half gone).
        let full_run = self.last_full_run().await?;
        match full_run.as_ref().map(|r| r.status.as_str()) {
            None => full!("no full run among the last {LAST_RUNS}"),
            Some("held" | "stopped" | "interrupted" | "declined") => {
                full!("the last full run did not go through")
            }
            Some(_) => {}
        }

        if n > MAX_CHANGES || n > 50 && n * 20 > total {
            full!("{n} records changed or left");
        }
        if !unlinked.is_empty() && !held.is_empty() {
            // A new record may be the same person as one held in the conflict queue: the full
            // run resolves them together.
            full!("a new record while records are held in the conflict queue");
        }
        let groups = self.targets.values().any(|t| t.groups.is_some());
        if groups && !gone.is_empty() {
            full!("a record left, and a target has groups");
        }
        let match_on = &self.config.identity.match_on;
        let (mut civic, mut email, mut eppn) = (Vec::new(), Vec::new(), Vec::new());
        // Every changed record's keys, linked or not: the identities that hold them are planned
        // too, so that nothing the full run would weigh them against is missing.
        let unlinked: HashSet<usize> = unlinked.into_iter().collect();
        for &i in &changed {
            let r = &fetched.records[i].record;
            if let Some(c) = &r.civic_no {
                if unlinked.contains(&i)
                    && c.kind() == connector_api::civic::CivicKind::Personnummer
                    && crate::core::identity::key_is_number(&r.person_id, c.expose())
                {
                    full!("a record is keyed by a personnummer: it may be a re-keyed person");
                }
                civic.push(c.expose().to_string());
            }
            for m in match_on {
                match m {
                    crate::core::identity::MatchKey::Email => email.extend(r.email().iter().map(|e| e.to_string())),
                    crate::core::identity::MatchKey::Eppn => eppn.extend(r.eppn().iter().map(|e| e.to_string())),
                }
            }
        }
        let mut keys: Vec<(String, String)> = changed
            .iter()
            .map(|&i| (fetched.records[i].source.to_string(), fetched.records[i].record.person_id.to_string()))
            .collect();
        keys.extend(gone.iter().cloned());
        if groups {
            // A changed group, school tie, protection or death changes group memberships: the
            // full run's group plan decides those.
            let linked: Vec<(String, String)> = keys.iter().filter(|k| !gone.contains(k)).cloned().collect();
            let old: HashMap<(String, String), Option<String>> =
                self.store.records_data(&linked).await?.into_iter().map(|(s, p, d)| ((s, p), d)).collect();
            for &i in &changed {
                let s = &fetched.records[i];
                let Some(data) = old.get(&(s.source.to_string(), s.record.person_id.to_string())) else {
                    full!("a new person, and a target has groups");
                };
                let Some(before) =
                    data.as_deref().and_then(|d| serde_json::from_str::<connector_api::SourceRecord>(d).ok())
                else {
                    full!("a stored record is not kept whole");
                };
                let r = &s.record;
                if before.groups != r.groups
                    || before.affiliations != r.affiliations
                    || before.protection != r.protection
                    || before.deceased != r.deceased
                {
                    full!("a group membership or school tie changed, and a target has groups");
                }
            }
        }
        let (snapshot, decisions, groups) = tokio::try_join!(
            self.store.snapshot_of(&keys, &civic, &email, &eppn),
            self.store.decisions(),
            self.store.groups()
        )?;
        lap("read the changed persons' state");
        let records = std::mem::take(&mut fetched.records);
        fetched.records = records
            .into_iter()
            .enumerate()
            .filter(|(i, s)| changed.contains(i) || snapshot.record(&s.source, &s.record.person_id).is_some())
            .map(|(_, s)| s)
            .collect();
        // The planned identities' other records from sources that gave only their changes are
        // as stored: read from the state, as the full view would have them.
        let have: FxHashSet<(String, String)> =
            fetched.records.iter().map(|s| (s.source.to_string(), s.record.person_id.to_string())).collect();
        for source in fetched.partial.keys() {
            let Some(stored) = snapshot.source_records(source) else { continue };
            let persons: std::collections::BTreeSet<String> = stored
                .keys()
                .filter(|p| {
                    let key = (source.as_str(), &***p);
                    !have.contains(&(source.clone(), p.to_string()))
                        && !rejected.contains(&key)
                        && gone.binary_search(&(source.clone(), p.to_string())).is_err()
                })
                .map(|p| p.to_string())
                .collect();
            if persons.is_empty() {
                continue;
            }
            let query = connector_api::PriorQuery { persons, ..Default::default() };
            let prior = super::fetch::StorePrior { store: &self.store, source, today };
            let found = prior.find(&query).await.map_err(|error| EngineError::Source { id: source.clone(), error })?;
            fetched.records.extend(found.into_iter().map(|record| crate::core::model::Sourced {
                source: source.as_str().into(),
                record: Box::new(record),
            }));
        }
        tracing::debug!(
            changed = n,
            records = fetched.records.len(),
            identities = snapshot.identities.len(),
            "incremental"
        );
        Ok(Narrowed::Yes((fetched, (snapshot, decisions, groups))))
    }

    /// After resolving: whether the changed persons' resolution is one an incremental run may
    /// plan.
    pub(super) fn narrow_resolution(&self, resolution: &Resolution) -> Narrowed<()> {
        if !resolution.conflicts.is_empty() {
            return Narrowed::Full("a conflict".into());
        }
        if !resolution.held_records.is_empty() || !resolution.kept.is_empty() {
            return Narrowed::Full("a person is kept as stored or held".into());
        }
        Narrowed::Yes(())
    }

    /// The changed persons' accounts on every target, looked up by owner value, checked against
    /// the state's ownership rows.
    pub(super) async fn narrow_observe(
        &self,
        resolution: &Resolution,
        snapshot: &Snapshot,
    ) -> Result<Narrowed<BTreeMap<String, Vec<ObservedAccount>>>, EngineError> {
        let ids: Vec<String> = resolution.all().map(|i| i.id.to_string()).collect();
        let mut out = BTreeMap::new();
        let outside = self.store.outside_claims().await?;
        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        if outside.iter().any(|(_, i)| wanted.contains(i.as_str())) {
            full!("an account claimed outside the scope");
        }
        for (id, t) in &self.targets {
            let owned: Vec<_> = snapshot.accounts.iter().filter(|a| a.target == id).collect();
            if owned.iter().any(|a| a.status == AccountStatus::Pending) {
                full!("an unconfirmed create on target \"{id}\"");
            }
            let found = if ids.is_empty() {
                Vec::new()
            } else {
                let mut attrs = t.managed.clone();
                attrs.extend(t.policy.exclude.attribute_names());
                attrs.extend(t.policy.correlate.attribute.iter().map(|a| a.split('.').next().unwrap_or(a).to_string()));
                match t.conn.observe_where(Field::Owner, &ids, &attrs).await {
                    Ok(Some(found)) => found,
                    Ok(None) => full!("target \"{id}\" cannot look accounts up"),
                    Err(error) => return Err(EngineError::Target { id: id.clone(), error }),
                }
            };
            if found.iter().any(|a| a.excluded || t.policy.exclude.matches(a)) {
                full!("an account on target \"{id}\" is excluded");
            }
            let same = |o: &ObservedAccount, a: &crate::core::model::OwnedAccount| {
                o.anchor().is_some() && o.anchor() == a.anchor()
                    || a.key().is_some_and(|k| t.caps.key(k) == t.caps.key(o.key()))
            };
            for a in &owned {
                if found.iter().filter(|o| same(o, a)).count() != 1 {
                    full!("an account enid owns on target \"{id}\" is not where the state says");
                }
            }
            if found.iter().any(|o| !owned.iter().any(|a| same(o, a))) {
                full!(
                    "target \"{id}\" holds an account with a changed person's enid id that the state does not record"
                );
            }
            out.insert(id.clone(), found);
        }
        Ok(Narrowed::Yes(out))
    }

    /// After planning: every username a create or rename gives, and every correlation value of
    /// a person to create, is looked up on the target; anything found there is a full run's
    /// question (a claim, a person waiting, a name to step around). Operations on a target with
    /// groups other than updates change memberships: a full run's too.
    pub(super) async fn narrow_check(
        &self,
        plan: &Plan,
        correlation: &BTreeMap<String, crate::core::plan::CorrelationInput>,
    ) -> Result<Narrowed<()>, EngineError> {
        if !plan.claims.is_empty() || !plan.adoptions.is_empty() {
            full!("an account to claim");
        }
        for (id, t) in &self.targets {
            let ops: Vec<_> = plan.operations.heads().filter(|o| o.target == id).collect();
            if t.groups.is_some() && ops.iter().any(|o| o.action != Action::Update) {
                full!("target \"{id}\" has groups, and an account is created, renamed, moved, disabled or removed");
            }
            let mut names: Vec<String> =
                ops.iter().filter(|o| o.action == Action::Create).map(|o| o.username.to_string()).collect();
            names.extend(plan.renames.iter().map(|r| r.new.clone()));
            let lookup = |field, values: Vec<String>| async move {
                if values.is_empty() {
                    return Ok::<_, TargetError>(Some(Vec::new()));
                }
                t.conn.observe_where(field, &values, &[]).await
            };
            match lookup(Field::Username, names).await {
                Ok(Some(found)) if found.is_empty() => {}
                Ok(Some(_)) => full!("a new username is held on target \"{id}\""),
                Ok(None) => full!("target \"{id}\" cannot look accounts up"),
                Err(error) => return Err(EngineError::Target { id: id.clone(), error }),
            }
            let Some(input) = correlation.get(id) else { continue };
            let Some(attr) = &input.attribute else { continue };
            let creating: HashSet<&IdentityId> =
                ops.iter().filter(|o| o.action == Action::Create).map(|o| o.identity).collect();
            let values: Vec<String> = input
                .values
                .iter()
                .filter(|(i, _)| creating.contains(i))
                .flat_map(|(_, v)| v.iter().cloned())
                .collect();
            match lookup(Field::Attribute(attr), values).await {
                Ok(Some(found)) if found.is_empty() => {}
                Ok(Some(_)) => full!("an account on target \"{id}\" holds a new person's correlation value"),
                Ok(None) => full!("target \"{id}\" cannot look accounts up"),
                Err(error) => return Err(EngineError::Target { id: id.clone(), error }),
            }
        }
        Ok(Narrowed::Yes(()))
    }
}
