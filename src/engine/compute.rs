//! The dry run: reads sources, state and targets, runs the pure core, and returns what it found
//! ([`Computed`]): the plan, and what an apply needs besides it. Writes nothing.

use super::fetch::Fetched;
use super::incremental::Narrowed;
use super::records::*;
use super::run::{Phase, RunHook};
use super::{Engine, EngineError, Overrides};
use crate::core::desired::*;
use crate::core::identity::{self, RejectedRows, Resolution};
use crate::core::model::Usernames;
use crate::core::model::{AccountStatus, Identity, IdentityId, Sourced};
use crate::core::names::RunNames;
use crate::core::naming::{NameRequest, RenamePolicy};
use crate::core::plan::{self, Action, DesiredAccounts, NewIdentity, Plan};
use crate::store::StateStore;
use chrono::{DateTime, Utc};
use connector_api::{Lookup, ObservedAccount, ObservedGroup, RowError, Target, TargetError};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

/// A target read running in a task of its own.
type ObserveTask = tokio::task::JoinHandle<Result<(Vec<ObservedAccount>, Vec<ObservedGroup>), TargetError>>;

/// Everything a dry run found, ready to show or to apply.
#[derive(Debug)]
pub struct Computed {
    /// An incremental run ([`super::incremental`]): the plan covers the persons whose records
    /// changed, and the apply leaves the held records as they are.
    pub incremental: bool,
    pub plan: Plan,
    pub resolution: Resolution,
    /// Identity id → username, for every identity of the run (an apply lets them go before it
    /// sends).
    pub usernames: RunNames,
    /// Rows rejected by the sources, per source.
    pub rejected: BTreeMap<String, Vec<RowError>>,
    /// The same rows as a run's counts keep them for the front ends ([`rejected_views`]).
    pub rejected_rows: Vec<super::RejectedRow>,
    /// Persons held on a target because their accounts could not be computed (a template failed):
    /// no operation for them there, and the run exits non-zero.
    pub failures: Vec<Failure>,
    /// Records to write to the state database (new or changed), by their place in
    /// `resolution`; their rows are made as they are written (`records::record_row`; an apply
    /// moves them out into its chunks of new identities).
    pub records_to_store: Vec<super::records::RecordAt>,
    /// Identities whose primary school unit to record (new or changed).
    pub primary_rows: super::records::PrimaryRows,
    /// Stored records (source, person_id) whose persons the sources no longer give.
    pub gone_rows: Vec<(String, String)>,
    /// Records read in no identity (held in a conflict, waiting, of a kept identity): what the
    /// state keeps beside the linked records for the next incremental read.
    pub held_rows: Vec<crate::store::HeldRow>,
    /// Persons each source has but does not provision, by why (guardians, no current tie).
    pub skipped: BTreeMap<String, BTreeMap<String, usize>>,
    /// What each source's read leaves for the next one, and whether it read in full: recorded
    /// at the end of an apply, never by a plan.
    pub reads: BTreeMap<String, (crate::store::SourceRead, bool)>,
    /// Whether `reads` and `held_rows` must be recorded although nothing else changed.
    pub reads_changed: bool,
    /// Records read, per source.
    pub counts: BTreeMap<String, usize>,
    /// The fields each source delivered (recorded at apply for the dropped-column guard).
    pub columns: BTreeMap<String, BTreeSet<String>>,
    /// The accounts each target holds now (an apply lets them go before it sends).
    pub observed: BTreeMap<String, Vec<ObservedAccount>>,
    /// Identities with protected personal data now or as stored (also kept and absent ones).
    pub protected: HashSet<IdentityId>,
    /// Accounts claimed by hand outside the scope that are in it now: the apply forgets that
    /// they were outside.
    pub outside_done: Vec<(String, IdentityId)>,
}

/// Renames done now, renames held for approval, and who approved those done by approval.
type Renames = (Vec<plan::RenameInfo>, Vec<plan::RenameInfo>, BTreeMap<IdentityId, String>);

/// The rejected rows as a run records them: each with the school unit the state has for its
/// person (by the row's source key), a protected person's with its location only.
fn rejected_views(
    rejected: &BTreeMap<String, Vec<RowError>>,
    snapshot: &crate::core::model::Snapshot,
) -> Vec<super::RejectedRow> {
    let mut out = Vec::new();
    for (source, rows) in rejected {
        for row in rows {
            let stored = row.person_id.as_deref().and_then(|p| snapshot.source_records(source)?.get(p));
            let protected = stored.is_some_and(|r| r.protected);
            out.push(super::RejectedRow {
                source: source.clone(),
                location: row.location.clone(),
                message: if protected {
                    "a row of a person with protected personal data; IT reads why with `enid check`".into()
                } else {
                    row.message.clone()
                },
                // The row's own school unit (a new pupil's too), else the one stored for its
                // person; a protected person's row none.
                school: if protected {
                    None
                } else {
                    row.school_unit
                        .clone()
                        .or_else(|| stored.and_then(|r| r.school_unit.as_deref().map(str::to_string)))
                },
            });
        }
    }
    out
}

/// Conflicts as they may be shown: one that involves a person with protected personal data (as
/// a candidate identity) shows no source keys or file locations.
pub fn redact_conflicts(conflicts: &mut [crate::core::identity::Conflict], protected: &HashSet<IdentityId>) {
    for c in conflicts.iter_mut().filter(|c| c.candidates.iter().any(|i| protected.contains(i))) {
        c.records = vec!["(protected)".into()];
        c.held = vec!["(protected)".into()];
    }
}

impl Computed {
    /// Whether an apply would change nothing: no operation, no record, primary school, gone
    /// mark or read to record.
    pub fn nothing_to_do(&self) -> bool {
        self.plan.is_empty()
            && self.records_to_store.is_empty()
            && self.primary_rows.is_empty()
            && self.gone_rows.is_empty()
            && !self.reads_changed
    }

    /// The plan as it may be shown or saved: persons with protected personal data by enid id
    /// only (no username, school, values, source keys or file locations).
    pub fn shown_plan(&self) -> std::borrow::Cow<'_, Plan> {
        let protected: HashSet<&str> = self.protected.iter().map(IdentityId::as_str).collect();
        if protected.is_empty() && !self.plan.operations.heads().any(|o| o.protected) && self.plan.claims.is_empty() {
            return std::borrow::Cow::Borrowed(&self.plan);
        }
        let mut p = self.plan.clone();
        redact_conflicts(&mut p.conflicts, &self.protected);
        for k in &mut p.kept {
            if protected.contains(k.identity.as_str()) {
                k.username = k.identity.to_string();
                k.reason = "protected person: see `enid explain` by enid id".into();
            }
        }
        p.operations = self.plan.operations.iter().map(|o| o.redacted().into_owned()).collect();
        for n in &mut p.new_identities {
            if protected.contains(n.id.as_str()) {
                n.username = n.id.as_str().into();
                n.records = connector_api::source::smallvec!["(protected)".into()];
            }
        }
        // A protected person's claim shows neither the account's key nor its username.
        for c in &mut p.claims {
            if protected.contains(c.identity.as_str()) {
                c.key = c.identity.to_string();
                c.other_username = c.other_username.as_ref().map(|_| c.identity.to_string());
            }
        }
        for b in &mut p.blocked {
            if protected.contains(b.identity.as_str()) {
                b.username = b.identity.to_string();
                b.reason = "protected person: see `enid explain` by enid id".into();
            }
        }
        for r in p.renames.iter_mut().chain(p.held_renames.iter_mut()) {
            if protected.contains(r.identity.as_str()) {
                r.old = r.identity.to_string();
                r.new = r.identity.to_string();
            }
        }
        std::borrow::Cow::Owned(p)
    }
}

/// A person held on one target because their account could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// What failed: `target "directory"`, `[naming]`.
    pub component: String,
    pub identity: IdentityId,
    /// What failed, naming the attribute template; never a civic number.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: identity {} is held (no operation): {}", self.component, self.identity, self.message)
    }
}

impl Engine {
    pub(super) fn spawn_observe(&self) -> Vec<(String, ObserveTask)> {
        self.targets
            .iter()
            .map(|(id, t)| {
                let t = Arc::clone(t);
                let target_id = id.clone();
                let task = async move {
                    let began = std::time::Instant::now();
                    let mut attrs = t.managed.clone();
                    attrs.extend(t.policy.exclude.attribute_names());
                    // The correlation attribute is read, never written.
                    attrs.extend(
                        t.policy.correlate.attribute.iter().map(|a| a.split('.').next().unwrap_or(a).to_string()),
                    );
                    let accounts = t.conn.observe(&attrs).await?;
                    let groups = if t.groups.is_some() { t.conn.observe_groups().await? } else { Vec::new() };
                    tracing::debug!(
                        target_id,
                        accounts = accounts.len(),
                        elapsed_ms = began.elapsed().as_millis() as u64,
                        "read the target"
                    );
                    Ok((accounts, groups))
                };
                (id.clone(), tokio::spawn(task))
            })
            .collect()
    }

    /// The dry run: reads sources and targets, and plans. Writes nothing.
    pub async fn compute(&self, now: DateTime<Utc>, overrides: &Overrides) -> Result<Computed, EngineError> {
        self.compute_with(now, overrides, None).await
    }

    /// [`Engine::compute`], telling `hook` each [`Phase`] as it begins.
    pub async fn compute_with(
        &self,
        now: DateTime<Utc>,
        overrides: &Overrides,
        hook: Option<&dyn RunHook>,
    ) -> Result<Computed, EngineError> {
        match self.compute_run(now, overrides, false, hook).await? {
            Narrowed::Yes(c) => Ok(c),
            Narrowed::Full(why) => unreachable!("a full run never falls back ({why})"),
        }
    }

    /// An incremental dry run ([`super::incremental`]): plans the persons whose records changed,
    /// or says why this must be a full run.
    pub async fn compute_changes(
        &self,
        now: DateTime<Utc>,
        overrides: &Overrides,
        hook: Option<&dyn RunHook>,
    ) -> Result<Narrowed<Computed>, EngineError> {
        self.compute_run(now, overrides, true, hook).await
    }

    async fn compute_run(
        &self,
        now: DateTime<Utc>,
        overrides: &Overrides,
        narrow: bool,
        hook: Option<&dyn RunHook>,
    ) -> Result<Narrowed<Computed>, EngineError> {
        let phase = |p: Phase| {
            if let Some(h) = hook {
                h.phase(p);
            }
        };
        phase(Phase::ReadingSources);
        let today = now.date_naive();
        let started = std::time::Instant::now();
        let lap =
            |what: &'static str| tracing::debug!(what, elapsed_ms = started.elapsed().as_millis() as u64, "compute");
        if !narrow {
            self.resume_targets().await?;
        }
        let observing = if narrow { Vec::new() } else { self.spawn_observe() };
        let abort_all = || observing.iter().for_each(|(_, h)| h.abort());
        let (fetched, snapshot) = if narrow {
            match self.narrow_state(self.fetch_changes(now, overrides).await?, today).await? {
                Narrowed::Yes((f, s)) => (Ok(f), Ok(s)),
                Narrowed::Full(why) => return Ok(Narrowed::Full(why)),
            }
        } else {
            // The ownership rows are read once the stored records are let go (below).
            tokio::join!(self.fetch_all(now, overrides), self.read_state_with(false))
        };
        let (
            Fetched { records, rejected, counts, columns, skipped, reads, mut reads_changed, partial: _ },
            (mut snapshot, decisions, state_groups),
        ) = match (fetched, snapshot) {
            (Ok(f), Ok(s)) => (f, s),
            (Err(e), _) | (_, Err(e)) => {
                abort_all();
                return Err(e);
            }
        };
        lap("read sources and state");
        phase(Phase::ReadingTargets { records: counts.values().sum() });
        // A rejected row is not a leaver: the persons linked to rejected rows are kept as stored.
        let rejected_rows = RejectedRows::from_rows(&rejected);
        let mut resolution = identity::resolve(
            records,
            &snapshot,
            &decisions,
            &self.config.identity.match_on,
            &rejected_rows,
            &self.id_key,
        );
        let unprotect = keep_protection(&mut resolution, &snapshot);
        let rejected_views = rejected_views(&rejected, &snapshot);
        // The recorded primary schools are in the identities now (`Identity::primary`), and only
        // the resolution reads them: at a million identities the map is some 90 MB, let go before
        // the planning.
        snapshot.release_primaries();
        lap("resolved identities");
        if narrow && let Narrowed::Full(why) = self.narrow_resolution(&resolution) {
            return Ok(Narrowed::Full(why));
        }
        let authority = self.config.identity.authority.model();
        // Which stored records and primary schools the apply would rewrite (independent of the
        // names and the targets) are found on a thread of their own beside the names: at a
        // million identities each is a few seconds of lookups, and this part of a run had one
        // core while the other waited.
        let (stored, (mut usernames, requests, renaming, last_schools)) = std::thread::scope(|scope| {
            let side = scope.spawn(|| {
                (stored_changes(&resolution, &snapshot, &counts), changed_primaries(&resolution, &authority, today))
            });
            let (mut usernames, mut requests) = known_names(&resolution, &snapshot);
            // Kept persons keep their names too (for `explain`); nothing is planned for them.
            for k in &resolution.kept {
                if let Some(Some(u)) = snapshot.identities.get(&k.identity_id) {
                    usernames.insert(k.identity_id.clone(), u.clone());
                }
            }
            if self.config.naming.protected_names_from_template {
                requests.iter_mut().for_each(|r| r.pseudonymous = false);
            }
            // Persons whose name no longer fits their username, when the policy renames: they
            // get their desired accounts later, with the new name.
            let renaming = self.rename_candidates(&resolution, &usernames);
            let last_schools = last_schools(&snapshot, &resolution);
            let stored = side.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (stored, (usernames, requests, renaming, last_schools))
        });
        for id in renaming.keys() {
            usernames.remove(id);
        }
        let lifecycle = self.lifecycle;
        let rules = Rules { authority: &authority, lifecycle: &lifecycle };
        let mut failures = Vec::new();
        let ((mut records_to_store, gone_rows), mut primary_rows) = stored;
        // Records held in a conflict or of a kept identity are kept beside the linked ones: an
        // incremental read gives a record only when it changes, so without them a held person
        // would vanish from the conflict queue at the next read.
        let mut held_rows = held_rows(&resolution);
        let kept_shown = kept_persons(&resolution, &snapshot);
        let protected = self::protected_ids(&resolution, &snapshot);
        // Nothing past this point reads the stored records: they are let go before the planning,
        // which is a run's peak of memory.
        snapshot.release_records();
        lap("records to store");
        if !narrow {
            // The ownership rows, read now rather than with the rest of the state: a million of
            // them (some 150 MB) were held through the resolution, a full run's peak, and the
            // targets' reads, which the planning waits for, take longer than this one. (Read
            // beside the resolution at 100,000, the planning started no sooner: the run is
            // bound by its CPU and slapd's there, not by the order of its reads.)
            match self.store.owned_accounts(snapshot.identities.clone()).await {
                Ok(accounts) => snapshot.accounts = accounts,
                Err(e) => {
                    abort_all();
                    return Err(e.into());
                }
            }
            lap("read ownership rows");
        }

        let mut observed = BTreeMap::new();
        let mut observed_groups: BTreeMap<String, Vec<ObservedGroup>> = BTreeMap::new();
        if narrow {
            match self.narrow_observe(&resolution, &snapshot).await? {
                Narrowed::Yes(found) => observed = found,
                Narrowed::Full(why) => return Ok(Narrowed::Full(why)),
            }
        }
        let mut failure = None;
        for (id, handle) in observing {
            match handle.await {
                Ok(Ok((accounts, groups))) => {
                    observed.insert(id.clone(), accounts);
                    observed_groups.insert(id, groups);
                }
                Ok(Err(error)) => {
                    failure.get_or_insert(EngineError::Target { id, error });
                }
                Err(e) => {
                    let error = TargetError::unavailable("read the target").with_source(e);
                    failure.get_or_insert(EngineError::Target { id, error });
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        lap("read targets");
        phase(Phase::Planning { accounts: observed.values().map(Vec::len).sum() });
        // The guards that judge a whole target are the full run's: an incremental run saw every
        // owned account of its persons where the state says (`narrow_observe`).
        let moved = if narrow {
            BTreeMap::new()
        } else {
            self.guard_renamed_target(&observed, &snapshot)?;
            self.guard_lost_state(&observed, &snapshot, &resolution).await?;
            let missing_owned = self.missing_owned(&snapshot, &observed);
            if !overrides.missing {
                self.target_guard(&missing_owned, &state_groups, &observed_groups)?;
            }
            // Owned accounts moved out of scope by hand: never created a second time.
            self.moved_out_of_scope(&missing_owned).await?
        };
        // Accounts an operator claimed outside the scope (`adopt --entry`): moved into place.
        let outside: HashSet<(String, IdentityId)> = self.store.outside_claims().await?.into_iter().collect();

        let refused = self.store.claim_refusals().await?;
        let correlation = self.correlation_inputs(&resolution, &refused);
        let rename_requests: Vec<NameRequest> = renaming.values().map(|(req, _)| req.clone()).collect();
        if narrow
            && (!requests.is_empty() || !rename_requests.is_empty())
            && !self.store.reserved_usernames().await?.is_empty()
        {
            // A name `enid adopt` reserved that an account in scope still holds is a question
            // about that account in a full run, and a name to step around in a narrow one.
            return Ok(Narrowed::Full("a new username to give while `enid adopt` reserved names".into()));
        }
        let (mut new_names, naming_failed, waiting) =
            self.name_new(&requests, &rename_requests, &observed, &snapshot, &correlation, &refused, now).await?;
        lap("named the new persons");
        // A first run's million requests (their names as strings) are not held through the planning.
        drop((requests, rename_requests));
        failures.extend(naming_failed);
        let (renames, held_renames, rename_approvers) = self.decide_renames(&renaming, &mut new_names).await?;
        if narrow && (!failures.is_empty() || !waiting.by_identity.is_empty()) {
            return Ok(Narrowed::Full("a person is held: a failure, or a decision waited for".into()));
        }
        // An incremental run with no identity to plan (a tick that found nothing) weighs nothing.
        let planned_any = resolution.all().next().is_some();
        let owned_totals = if narrow && planned_any { self.store.owned_counts().await? } else { BTreeMap::new() };
        // Thresholds weigh what the incremental runs since the last full run did too.
        let earlier = if planned_any { self.applied_since_full().await? } else { BTreeMap::new() };
        // New identities an apply decided and had not all stored when it ended (killed): their
        // creates and claims were weighed then, like the creates pending rows retry.
        let unstored = if planned_any { self.store.meta(crate::engine::UNSTORED_NEW).await? } else { None };
        let decided: HashSet<&str> = unstored.as_deref().unwrap_or("").split_ascii_whitespace().collect();
        let excluded_persons = excluded_persons(&resolution, &self.config.identity.exclude);
        let protected_ids: HashSet<&str> =
            resolution.present.iter().filter(|i| i.is_protected()).map(|i| i.id.as_str()).collect();
        let kept_ids: HashSet<&str> = resolution.kept.iter().map(|k| k.identity_id.as_str()).collect();
        // Each target's desired accounts are rendered as its diff reaches them, never all at once.
        let inputs = DesiredInputs {
            resolution: &resolution,
            names: (&usernames, &new_names),
            rules,
            last_known: &last_schools,
            today,
        };
        let mut target_plans = BTreeMap::new();
        let mut held = Vec::new();
        for (id, handle) in &self.targets {
            let owned: Vec<_> = snapshot.accounts.iter().filter(|a| a.target == id).collect();
            let all_obs = observed.get(id).map(Vec::as_slice).unwrap_or(&[]);
            // Excluded accounts are out of the plan, and so are the persons they belong to.
            let kept: Vec<ObservedAccount>;
            let exclude = &handle.policy.exclude;
            let mut skip: HashSet<&str> = HashSet::new();
            let obs = if exclude.is_empty() && !all_obs.iter().any(|a| a.excluded) {
                all_obs
            } else {
                let (out, keep): (Vec<&ObservedAccount>, Vec<&ObservedAccount>) =
                    all_obs.iter().partition(|a| exclude.matches(a));
                let owner = handle.caps.owner_attribute.as_str();
                skip = out
                    .iter()
                    .flat_map(|a| {
                        let by_row = owned.iter().filter(move |o| {
                            o.anchor().is_some() && o.anchor() == a.anchor()
                                || o.key().is_some_and(|k| handle.caps.key(k) == handle.caps.key(a.key()))
                        });
                        let by_attr = a.attrs.texts(owner);
                        by_row.map(|o| o.identity_id.as_str()).chain(by_attr).collect::<Vec<_>>()
                    })
                    .collect();
                kept = keep.into_iter().cloned().collect();
                &kept
            };
            let facts = plan::TargetFacts {
                caps: &handle.caps,
                today,
                correlate: correlation.get(id),
                enable_disabled_outside: handle.policy.enable_disabled_outside,
            };
            let moved_here = moved.get(id).filter(|m| !m.is_empty());
            let excluded = |i: &str| skip.contains(i) || excluded_persons.contains(i);
            // Owned accounts moved out of scope are handled here, beside the plan.
            let outside_scope = |i: &str| excluded(i) || moved_here.is_some_and(|m| m.contains_key(i));
            let mut moved_away = Vec::new();
            let mut moved_in = Vec::new();
            let moved_desired = match moved_here {
                Some(m) => DesiredStream::new(&inputs, handle.rules(), &excluded, &mut Vec::new())
                    .select(&|i| m.contains_key(i)),
                None => Vec::new(),
            };
            for d in moved_desired {
                let Some(key) = moved_here.and_then(|m| m.get(d.id())) else { continue };
                // Recorded where it is now, outside the scope: an operator claimed it there
                // (`adopt --entry`). A target that places accounts moves it into its place;
                // the next run finds it in scope and brings it in line.
                let claimed_there = outside.contains(&(id.clone(), d.id().clone()))
                    && owned.iter().any(|o| {
                        &o.identity_id == d.id() && o.key().is_some_and(|k| handle.caps.key(k) == handle.caps.key(key))
                    });
                if claimed_there
                    && d.active
                    && let Some(placement) = &d.spec.placement
                {
                    moved_in.push(plan::PlannedOp {
                        action: Action::Move,
                        target: id.as_str().into(),
                        identity: d.id().clone(),
                        username: d.username().into(),
                        school: d.school(),
                        reason: format!("claimed by an operator outside {}: moved into its place", handle.conn.scope())
                            .into(),
                        op: connector_api::TargetOp::Move { key: key.clone(), placement: placement.to_string() },
                        extra: crate::core::plan::Extra::default(),
                        protected: d.protected,
                        needs_approval: d.needs_approval,
                        disabled_outside: false,
                        renames_entry: false,
                        fingerprint: Default::default(),
                    });
                    continue;
                }
                let reason = if claimed_there {
                    format!(
                        "claimed by an operator at {key}, outside {}, and this target does not place accounts: \
                         move it into the scope by hand, or widen base_dn or filter",
                        handle.conn.scope()
                    )
                } else {
                    format!(
                        "the account enid owns was moved out of {} to {key}; it is left alone and never created \
                         again: move it back, or widen base_dn or filter",
                        handle.conn.scope()
                    )
                };
                moved_away.push(plan::Blocked {
                    target: id.clone(),
                    identity: d.id().clone(),
                    username: if d.protected { d.id().to_string() } else { d.username().to_string() },
                    reason,
                });
            }
            let mut failed = Vec::new();
            // The desired accounts are rendered on a thread of their own while the planner
            // compares them (at a million, a third of the planning is the rendering, and the
            // planning had one core); in plan order, failures reported in order, as before.
            let mut tp = std::thread::scope(|scope| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<plan::Desired>>(8);
                let (inputs, outside_scope, failed) = (&inputs, &outside_scope, &mut failed);
                let span = tracing::Span::current();
                let renderer = scope.spawn(move || {
                    let _in_run = span.enter();
                    let mut want = DesiredStream::new(inputs, handle.rules(), outside_scope, failed);
                    loop {
                        let batch: Vec<plan::Desired> = want.by_ref().take(RENDER_BATCH).collect();
                        if batch.is_empty() || tx.send(batch).is_err() {
                            break;
                        }
                    }
                });
                let select = |admit: &dyn Fn(&str) -> bool| {
                    DesiredStream::new(inputs, handle.rules(), outside_scope, &mut Vec::new()).select(admit)
                };
                let want = Rendered { from: rx, batch: Vec::new().into_iter(), select: &select };
                let tp = plan::plan_target(id, want, obs, &owned, &handle.managed, &facts);
                renderer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                tp
            });
            failures.extend(failed.into_iter().map(|(identity, why)| Failure {
                component: format!("target \"{id}\""),
                identity,
                message: held_message(id, &why),
            }));
            if narrow && !planned_any {
                target_plans.insert(id.clone(), tp);
                continue;
            }
            if narrow {
                // Thresholds weigh against the accounts the target holds, not the few read.
                let total = owned_totals.get(id).copied().unwrap_or(0);
                if total == 0 {
                    // A target enid owns nothing on yet (a first run, a new target): whether its
                    // creates are weighed depends on the accounts in its whole scope.
                    return Ok(Narrowed::Full(format!("enid owns no account on target \"{id}\" yet")));
                }
                tp.in_scope = tp.in_scope.max(total);
                held.extend(weigh(id, &tp, &owned, &decided, Some(total), earlier.get(id), &handle.policy.thresholds));
                target_plans.insert(id.clone(), tp);
                continue;
            }
            tp.blocked.extend(moved_away);
            tp.summary.r#move += moved_in.len();
            tp.operations.extend(moved_in);
            // New persons held back for a decision about an account made before enid: on the
            // target that holds it with the reason, on every other target as waiting for it.
            for (identity, (holder, why)) in &waiting.by_identity {
                let username = new_names_shown(identity, &resolution);
                tp.blocked.push(plan::Blocked {
                    target: id.clone(),
                    identity: identity.clone(),
                    username,
                    reason: if holder == id {
                        why.clone()
                    } else {
                        format!("waits for the decision on target \"{holder}\": one username serves every target")
                    },
                });
            }
            if let Some(namer) = &handle.groups {
                tp.kept_members = kept_members(&kept_ids, &owned, all_obs, &handle.caps, &snapshot);
                let allowed: Vec<(IdentityId, Option<String>)>;
                let members = if handle.policy.protected.groups || protected_ids.is_empty() {
                    &tp.members
                } else {
                    allowed = tp.members.iter().filter(|(i, _)| !protected_ids.contains(i.as_str())).cloned().collect();
                    &allowed
                };
                match namer.desired(&resolution, &authority, members, today) {
                    Ok(desired_groups) => {
                        let owned_groups: Vec<_> = state_groups.iter().filter(|g| &g.target == id).collect();
                        let obs_groups = observed_groups.get(id).map(Vec::as_slice).unwrap_or(&[]);
                        plan::plan_groups(id, &desired_groups, obs_groups, &owned_groups, &handle.caps, &mut tp);
                    }
                    // Fail closed: without every name, no group of this target is changed.
                    Err(e) => tp.blocked.push(plan::Blocked {
                        target: id.clone(),
                        identity: IdentityId::default(),
                        username: "(groups)".into(),
                        reason: format!("{e}; no group on this target is changed until the template is fixed"),
                    }),
                }
            }
            // Groups whose names the domain holds elsewhere are blocked, not sent (`domain.rs`).
            self.block_held_group_names(id, all_obs, &protected_ids, &mut tp).await?;
            held.extend(weigh(id, &tp, &owned, &decided, None, earlier.get(id), &handle.policy.thresholds));
            let owned_groups: Vec<_> = state_groups.iter().filter(|g| &g.target == id && !g.pending).collect();
            // The members the owned groups hold now, as the target shows them. The owned
            // groups' anchors and folded keys are looked up, not compared pairwise: thousands of
            // groups on both sides would fold millions of keys on every plan.
            let anchors: HashSet<&str> = owned_groups.iter().filter_map(|g| g.anchor.as_deref()).collect();
            let keys: HashSet<String> =
                owned_groups.iter().filter_map(|g| g.key.as_deref()).map(|k| handle.caps.key(k)).collect();
            let owned_members: usize = observed_groups
                .get(id)
                .into_iter()
                .flatten()
                .filter(|o| {
                    o.anchor.as_deref().is_some_and(|a| anchors.contains(a)) || keys.contains(&handle.caps.key(&o.key))
                })
                .map(|o| o.members.len())
                .sum();
            held.extend(plan::check_group_thresholds(
                id,
                &tp.groups,
                owned_groups.len(),
                owned_members,
                &handle.policy.thresholds,
            ));
            target_plans.insert(id.clone(), tp);
        }
        lap("planned targets");
        // Appended whole (merged and built node by node), not inserted one by one: a first run's
        // million names would leave the map's nodes half full.
        usernames.append(&mut new_names);
        if narrow && !failures.is_empty() {
            return Ok(Narrowed::Full("a person is held: their account cannot be computed".into()));
        }
        // A new person whose name could not be made (a reported failure), or who waits for a
        // decision about an account made before enid, is not recorded yet: their records wait.
        if !failures.is_empty() || !waiting.by_identity.is_empty() {
            // Held instead, so the next incremental read still has them.
            records_to_store.retain(|at| {
                let id = &resolution.present[at.identity].id;
                let keep = snapshot.identities.contains_key(id) || usernames.contains_key(id);
                if !keep {
                    held_rows.push(held_row(&super::records::record_row(&resolution, at)));
                }
                keep
            });
            primary_rows.retain(&resolution, |id| snapshot.identities.contains_key(id) || usernames.contains_key(id));
        }
        held_rows.sort_by(|a, b| (&a.source, &a.person_id).cmp(&(&b.source, &b.person_id)));
        let held_keys = held_rows.iter().map(|h| (h.source.clone(), h.person_id.clone(), h.content_hash.clone()));
        // An incremental run holds nothing new (it gave up otherwise) and leaves the held records
        // as they are.
        if !narrow {
            let held_before = self.store.held_keys().await?;
            reads_changed |= !held_keys.eq(held_before.into_iter().filter(|(source, ..)| counts.contains_key(source)));
        }
        let new_identities = resolution
            .present
            .iter()
            .filter(|i| i.is_new)
            // An identity whose name could not be made (a reported failure) waits for the next run.
            .filter_map(|i| {
                Some(NewIdentity {
                    id: i.id.clone(),
                    username: usernames.get(&i.id)?.clone(),
                    records: i.records.iter().map(|r| connector_api::value::Str::from(r.label())).collect(),
                })
            })
            .collect();
        lap("listed the new identities");
        let civic_changes = resolution.civic_changes.iter().map(describe_change).collect();
        let mut plan = plan::assemble(
            now,
            new_identities,
            target_plans,
            resolution.conflicts.clone(),
            civic_changes,
            (renames, held_renames),
        );
        plan.kept = kept_shown;
        plan.held = held;
        // Who approved a held rename is said where it is carried out (the approval itself is
        // used up by the apply): in the operation's reason, and so in the sync log.
        for op in plan.operations.rest_mut().iter_mut().filter(|o| o.action == plan::Action::Rename) {
            if let Some(by) = rename_approvers.get(&op.identity) {
                op.reason = format!("{}; approved by {by}", op.reason).into();
            }
        }
        if narrow {
            match self.narrow_check(&plan, &correlation).await? {
                Narrowed::Yes(()) => {}
                Narrowed::Full(why) => return Ok(Narrowed::Full(why)),
            }
        }
        lap("assembled the plan");
        self.fingerprint_plan(&mut plan);
        lap("fingerprinted the operations");
        if !unprotect.is_empty() {
            // Releasing protection is part of what an approval of this plan approves.
            let mut h = Sha256::new();
            h.update(plan.plan_id.as_bytes());
            for id in &unprotect {
                h.update(id.as_bytes());
            }
            plan.plan_id = format!("{:x}", h.finalize())[..plan.plan_id.len()].to_string();
            plan.unprotect = unprotect;
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            operations = plan.operations.len(),
            "planned"
        );
        failures.sort_by(|a, b| (&a.component, &a.identity).cmp(&(&b.component, &b.identity)));
        let outside_done: Vec<(String, IdentityId)> = outside
            .into_iter()
            .filter(|(t, i)| {
                let anchor =
                    snapshot.accounts.iter().find(|a| a.target == t && &a.identity_id == i).and_then(|a| a.anchor());
                anchor.is_some_and(|a| observed.get(t).is_some_and(|obs| obs.iter().any(|o| o.anchor() == Some(a))))
            })
            .collect();
        Ok(Narrowed::Yes(Computed {
            incremental: narrow,
            plan,
            resolution,
            usernames,
            rejected,
            rejected_rows: rejected_views,
            failures,
            records_to_store,
            primary_rows,
            gone_rows,
            held_rows,
            skipped,
            reads,
            reads_changed,
            counts,
            columns,
            observed,
            protected,
            outside_done,
        }))
    }

    /// Identities whose name changed so that their username no longer fits, when the policy is
    /// not `keep`, and persons who became protected and still have a username made from their
    /// name, whatever the policy: id → (name request, current username).
    fn rename_candidates(
        &self,
        resolution: &Resolution,
        usernames: &RunNames,
    ) -> BTreeMap<IdentityId, (NameRequest, String)> {
        let mut out = BTreeMap::new();
        let pseudonyms = !self.config.naming.protected_names_from_template;
        let policy = self.config.naming.on_name_change;
        for ident in &resolution.present {
            // Under `keep` only a protected person's name is looked at: no request is made for
            // the rest (a million names copied and dropped in every run).
            if policy == RenamePolicy::Keep && !ident.is_protected() {
                continue;
            }
            let (Some(old), Some(req)) = (usernames.get(&ident.id), name_request(ident)) else { continue };
            if req.pseudonymous {
                // A protected person's name never shapes their username; one who became protected
                // gets a pseudonymous one (held with their other changes for approval).
                if pseudonyms && !self.namer.still_fits(old, &req) {
                    out.insert(ident.id.clone(), (req, old.to_string()));
                }
                continue;
            }
            if policy == RenamePolicy::Keep {
                continue;
            }
            if !self.namer.still_fits(old, &req) {
                out.insert(ident.id.clone(), (req, old.to_string()));
            }
        }
        out
    }

    /// Splits rename candidates into renames done now and renames held for approval, with who
    /// approved those done now by approval. A held person keeps the old name in `names`.
    async fn decide_renames(
        &self,
        renaming: &BTreeMap<IdentityId, (NameRequest, String)>,
        names: &mut Usernames,
    ) -> Result<Renames, EngineError> {
        let (mut done, mut held, mut approvers) = (Vec::new(), Vec::new(), BTreeMap::new());
        if renaming.is_empty() {
            return Ok((done, held, approvers));
        }
        let approved = match self.config.naming.on_name_change {
            RenamePolicy::Hold => self.store.rename_approvals().await?,
            _ => BTreeMap::new(),
        };
        for (id, (_, old)) in renaming {
            let Some(new) = names.get(id).cloned() else {
                // The new name could not be made (reported): the person keeps the old one.
                names.insert(id.clone(), old.as_str().into());
                continue;
            };
            let info = plan::RenameInfo { identity: id.clone(), old: old.clone(), new: new.to_string() };
            // A person who became protected is renamed whatever the policy: their changes wait
            // for `--accept-protected` anyway.
            let protection = renaming.get(id).is_some_and(|(req, _)| req.pseudonymous);
            let by = approved.get(id.as_str()).filter(|(n, _)| *n == new).map(|(_, by)| by.clone());
            let go = protection || self.config.naming.on_name_change == RenamePolicy::Rename || by.is_some();
            if go {
                if let Some(by) = by.filter(|_| !protection) {
                    approvers.insert(id.clone(), by);
                }
                done.push(info);
            } else {
                names.insert(id.clone(), old.as_str().into());
                held.push(info);
            }
        }
        Ok((done, held, approvers))
    }

    /// Names for identities that have none yet (`requests`) and for renames (`renaming`),
    /// avoiding every name ever allocated and the reserved names. A new person whose name an
    /// account enid does not own holds in a target's scope is not given another one beside it:
    /// the attribute rule may give them that account's name, the username rule may claim it,
    /// and otherwise they wait for an operator's decision (`Waiting`). A rename avoids every
    /// name on a target. Names held outside a scope (AD) are avoided by all.
    #[allow(clippy::too_many_arguments)]
    async fn name_new(
        &self,
        requests: &[NameRequest],
        renaming: &[NameRequest],
        observed: &BTreeMap<String, Vec<ObservedAccount>>,
        snapshot: &crate::core::model::Snapshot,
        inputs: &BTreeMap<String, plan::CorrelationInput>,
        refused: &[crate::store::ClaimRefusal],
        now: DateTime<Utc>,
    ) -> Result<(Usernames, Vec<Failure>, super::correlation::Waiting), EngineError> {
        if requests.is_empty() && renaming.is_empty() {
            return Ok((BTreeMap::new(), Vec::new(), Default::default()));
        }
        let quarantine = self.config.naming.quarantine_days;
        // Sorted and searched, not a hash set: a million names in their vector alone, where a
        // set of them took a table of two million slots beside it.
        let mut allocated: Vec<String> = self.store.allocated_usernames(now, quarantine).await?;
        allocated.sort_unstable();
        let allocated = |u: &str| allocated.binary_search_by(|x| x.as_str().cmp(u)).is_ok();
        let reserved: HashSet<String> = self.store.reserved_usernames().await?.into_iter().collect();
        // The names taken are asked of the sets they are in, not copied into one: a run with a
        // few new persons among a million built five sets of a million names (some 400 MB at
        // the run's peak). What is collected here is small: the names reserved that an account
        // in scope holds, the configured ones, the excluded accounts' and the preset ones.
        let observed_names = || {
            observed.values().flat_map(|accounts| accounts.iter().filter_map(|a| a.username()).map(str::to_lowercase))
        };
        // Names `enid adopt` reserved because a target held them: while an account in scope still
        // holds one, it is a question about that account (claim it, or decide it is someone
        // else's), not a name to step around.
        let reserved_in_scope: HashSet<String> = if reserved.is_empty() {
            HashSet::new()
        } else {
            observed_names().filter(|u| reserved.contains(u)).collect()
        };
        let mut extra: HashSet<String> = self.config.naming.reserved.iter().map(|r| r.to_lowercase()).collect();
        // An account enid never touches (excluded by the policy or the connector's settings) is
        // a manual exception, not a question: its name is stepped around, like one held outside
        // the scope.
        for (tid, accounts) in observed {
            let Some(t) = self.targets.get(tid) else { continue };
            extra.extend(
                accounts
                    .iter()
                    .filter(|a| t.policy.exclude.matches(a))
                    .filter_map(|a| a.username())
                    .map(str::to_lowercase),
            );
        }
        let owned_name = |u: &str| allocated(u) && !reserved.contains(u);
        let presets = self.preset_names(requests, inputs, observed, snapshot, &owned_name);
        extra.extend(presets.values().map(|u| u.as_str().to_lowercase()));
        let mut taken_elsewhere: HashSet<String> = HashSet::new();
        let taken = |u: &str, elsewhere: &HashSet<String>| {
            allocated(u) && !reserved_in_scope.contains(u) || extra.contains(u) || elsewhere.contains(u)
        };
        // Every name on a target, for renames only (built when there are any).
        let on_targets: HashSet<String> = if renaming.is_empty() { HashSet::new() } else { observed_names().collect() };
        let rest: Vec<NameRequest> = requests.iter().filter(|r| !presets.contains_key(&r.id)).cloned().collect();
        // A person an operator decided an account is not theirs avoids that account's name.
        let avoid: BTreeMap<&str, Vec<String>> = refused.iter().fold(BTreeMap::new(), |mut m, r| {
            let name = observed.get(&r.target).and_then(|obs| {
                let t = self.targets.get(&r.target)?;
                let same = |o: &&ObservedAccount| {
                    t.caps.key(o.key()) == t.caps.key(&r.key) || r.anchor.is_some() && o.anchor() == r.anchor.as_deref()
                };
                obs.iter().find(same)?.username()
            });
            m.entry(r.identity.as_str()).or_insert_with(Vec::new).extend(name.map(|n| n.to_lowercase()));
            m
        });
        let allocate = |elsewhere: &HashSet<String>| {
            let (plain, special): (Vec<NameRequest>, Vec<NameRequest>) =
                rest.iter().cloned().partition(|r| !avoid.contains_key(r.id.as_str()));
            let (mut names, mut failed) = self.namer.allocate(&plain, &|u| taken(u, elsewhere));
            if special.is_empty() && renaming.is_empty() {
                return (names, failed);
            }
            // The names given so far in this allocation (a first run's million are not collected
            // for nothing).
            let mut given: HashSet<String> = names.values().map(|n| n.to_string()).collect();
            for r in special {
                let mine: HashSet<&str> = avoid.get(r.id.as_str()).into_iter().flatten().map(String::as_str).collect();
                let is_taken = |u: &str| taken(u, elsewhere) || given.contains(u) || mine.contains(u);
                let (n, f) = self.namer.allocate(std::slice::from_ref(&r), &is_taken);
                given.extend(n.values().map(|n| n.to_string()));
                names.extend(n);
                failed.extend(f);
            }
            // Renames step around every name on a target and every new one.
            let is_taken = |u: &str| taken(u, elsewhere) || given.contains(u) || on_targets.contains(u);
            let (renamed, f) = self.namer.allocate(renaming, &is_taken);
            names.extend(renamed);
            failed.extend(f);
            (names, failed)
        };
        let (mut names, mut failed) = allocate(&taken_elsewhere);
        names.extend(presets.clone());
        // A server that refuses a username held anywhere in it (AD) is asked about the new names
        // first: one held outside the scope is taken too, and the names are given again.
        let mut settled = false;
        for _round in 0..20 {
            let mut more = Vec::new();
            for (id, t) in self.targets.iter().filter(|(_, t)| t.caps.usernames_unique_server_wide) {
                let wanted: Vec<String> =
                    names.iter().filter(|(i, _)| !presets.contains_key(*i)).map(|(_, n)| n.to_string()).collect();
                let found = t
                    .conn
                    .find_outside_scope(Lookup::Username, &wanted)
                    .await
                    .map_err(|error| EngineError::Target { id: id.clone(), error })?;
                // A name an account in the scope holds is a question for that account (claimed, or
                // the person waits), never one to step around: only names held elsewhere count.
                let in_scope: HashSet<String> = observed
                    .get(id)
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.username())
                    .map(str::to_lowercase)
                    .collect();
                more.extend(found.into_iter().map(|(_, name)| name.to_lowercase()).filter(|n| !in_scope.contains(n)));
            }
            more.retain(|n| !taken(n, &taken_elsewhere));
            if more.is_empty() {
                settled = true;
                break;
            }
            tracing::info!(count = more.len(), "usernames held outside the scope are taken; giving names again");
            taken_elsewhere.extend(more);
            (names, failed) = allocate(&taken_elsewhere);
            names.extend(presets.clone());
        }
        if !settled {
            // Names still found taken after every round: none is given unchecked.
            return Err(EngineError::TargetConfig {
                id: "[naming]".into(),
                message: "new usernames are still held elsewhere in the domain after 20 lookups; look for a \
                          container of old accounts outside base_dn holding many of them"
                    .into(),
            });
        }
        let asked: HashSet<&str> = requests.iter().map(|r| r.id.as_str()).collect();
        let new_names: Usernames =
            names.iter().filter(|(i, _)| asked.contains(i.as_str())).map(|(i, n)| (i.clone(), n.clone())).collect();
        let waiting = self.waiting_for_decision(&new_names, requests, inputs, observed, snapshot);
        names.retain(|id, _| !waiting.by_identity.contains_key(id));
        let mut failed: Vec<Failure> = failed
            .into_iter()
            .map(|(identity, why)| Failure {
                component: "[naming]".into(),
                identity,
                message: format!("{why}; fix [naming] username"),
            })
            .collect();
        // One name serves every target: a name one of them refuses is no name (the person waits,
        // reported, rather than getting an account on some targets only).
        names.retain(|identity, name| {
            let refused = self.targets.iter().find_map(|(id, t)| Some((id, t.caps.username_problem(name)?)));
            match refused {
                Some((target, why)) => {
                    failed.push(Failure {
                        component: "[naming]".into(),
                        identity: identity.clone(),
                        message: format!("the username target \"{target}\" would get is {why}; fix [naming] username"),
                    });
                    false
                }
                None => true,
            }
        });
        Ok((names, failed, waiting))
    }
}

/// The thresholds one target's plan goes over. Thresholds weigh against the accounts that exist.
/// Creates that retry an earlier, already applied plan (a pending ownership row, or a new
/// identity an interrupted apply decided and had not stored yet: `decided`) are not new
/// decisions: they do not count, so an interrupted first run finishes without review; nor do
/// that identity's claims. An account enid created (active or disabled) that is gone from the
/// target is created afresh: that counts.
fn weigh(
    id: &str,
    tp: &plan::TargetPlan,
    rows: &[&crate::core::model::OwnedAccount],
    decided: &HashSet<&str>,
    total: Option<usize>,
    earlier: Option<&plan::Summary>,
    thresholds: &crate::core::policy::Thresholds,
) -> Vec<plan::ThresholdHit> {
    let owned = total.unwrap_or_else(|| rows.iter().filter(|a| a.status != AccountStatus::Pending).count());
    let fresh = if tp.summary.create == 0 {
        0
    } else {
        let retries: HashSet<&str> =
            rows.iter().filter(|a| a.status == AccountStatus::Pending).map(|a| a.identity_id.as_str()).collect();
        tp.operations
            .heads()
            .filter(|o| {
                o.action == Action::Create
                    && !retries.contains(o.identity.as_str())
                    && !decided.contains(o.identity.as_str())
            })
            .count()
    };
    let claims_decided = if decided.is_empty() {
        0
    } else {
        tp.operations
            .rest()
            .iter()
            .filter(|o| o.action == Action::Claim && decided.contains(o.identity.as_str()))
            .count()
    };
    // Enables a start date scheduled are not returns of leavers: they do not count.
    // Nor are enables of accounts disabled outside enid: an apply leaves them out unless an
    // operator names enables after reading the plan.
    let scheduled = tp
        .operations
        .rest()
        .iter()
        .filter(|o| o.action == Action::Enable && (o.reason == plan::START_REASON || o.disabled_outside))
        .count();
    let mut weighed = plan::Summary {
        create: fresh,
        claim: tp.summary.claim - claims_decided,
        enable: tp.summary.enable - scheduled,
        ..tp.summary
    };
    // What the incremental runs since the last full one did counts too.
    let e = earlier.copied().unwrap_or_default();
    weighed.create += e.create;
    weighed.claim += e.claim;
    weighed.rename += e.rename;
    weighed.r#move += e.r#move;
    weighed.update += e.update;
    weighed.enable += e.enable;
    weighed.disable += e.disable;
    weighed.delete += e.delete;
    let mut hits = plan::check_thresholds(id, &weighed, owned, tp.in_scope, thresholds);
    for h in &mut hits {
        h.earlier = match h.action {
            Action::Create => e.create,
            Action::Claim => e.claim,
            Action::Rename => e.rename,
            Action::Move => e.r#move,
            Action::Update => e.update,
            Action::Enable => e.enable,
            Action::Disable => e.disable,
            Action::Delete => e.delete,
            _ => 0,
        };
    }
    hits
}

/// How a new person held back is listed: by `source/person_id` (masked when it has a civic
/// number's shape), since they have no username yet; a protected person by enid id.
fn new_names_shown(identity: &str, resolution: &Resolution) -> String {
    resolution
        .present
        .iter()
        .find(|i| i.id == identity)
        .filter(|i| !i.is_protected())
        .and_then(|i| i.records.first())
        .map(Sourced::label)
        .unwrap_or_else(|| identity.to_string())
}

/// Looks up the identities that match `needle` in a computed run (for persons not yet stored).
pub fn find_in_run(computed: &Computed, needle: &str) -> Vec<IdentityId> {
    let mut out = Vec::new();
    for ident in computed.resolution.all() {
        // A source key, or an external identifier (the number a school admin knows).
        let by_record = ident
            .records
            .iter()
            .any(|r| r.record.person_id == needle || r.record.external_ids().iter().any(|e| e == needle));
        let by_name = computed.usernames.get(&ident.id).is_some_and(|u| u == needle);
        if ident.id == needle || by_record || by_name {
            out.push(ident.id.clone());
        }
    }
    out
}

/// The identity of a run by id.
pub fn identity_in_run<'a>(computed: &'a Computed, id: &str) -> Option<&'a Identity> {
    computed.resolution.all().find(|i| i.id == id)
}

/// How many desired accounts the rendering thread hands the planner at a time.
const RENDER_BATCH: usize = 512;

/// A target's desired accounts as a thread renders them ([`DesiredStream`] on the other end of
/// `from`), for the planner: in the stream's order. `select` renders beside it, as the stream's
/// own `select` does.
struct Rendered<'a> {
    from: std::sync::mpsc::Receiver<Vec<plan::Desired>>,
    batch: std::vec::IntoIter<plan::Desired>,
    select: &'a Select<'a>,
}

/// A target's desired accounts of the identities a test admits ([`DesiredAccounts::select`]).
type Select<'a> = dyn Fn(&dyn Fn(&str) -> bool) -> Vec<plan::Desired> + 'a;

impl Iterator for Rendered<'_> {
    type Item = plan::Desired;

    fn next(&mut self) -> Option<plan::Desired> {
        loop {
            if let Some(d) = self.batch.next() {
                return Some(d);
            }
            // The renderer is done (its sender dropped) or died: then its panic is raised at its
            // join, before the plan of this short stream is returned, so it is never used.
            self.batch = self.from.recv().ok()?.into_iter();
        }
    }
}

impl DesiredAccounts for Rendered<'_> {
    fn select(&self, admit: &dyn Fn(&str) -> bool) -> Vec<plan::Desired> {
        (self.select)(admit)
    }
}
