//! Carrying out a plan: what the state holds of known identities and their ownership recorded
//! first, new identities stored in chunks ahead of the operations that need them
//! ([`new_identities`]), the operations sent in waves per action with bounded concurrency,
//! logged in batches; a target that fails, or a chunk that cannot be stored, stops the sends;
//! group operations after the account operations of their target.
//!
//! Keys are the target's: an operation is sent to the key its account had when observed, or to
//! the key the target reported for it earlier in this run (a rename or a move changes it), and a
//! group member whose value the target gives (a new account's key) is added once its account's
//! operations are done, or left out when they failed.

mod new_identities;

use super::run::{Phase, Progress, RunHook};
use super::{ApplyReport, Computed, Engine, EngineError, TargetHandle};
use crate::core::model::{AccountStatus, IdentityId};
use crate::core::plan::{Action, Ops, PlannedOp};
use crate::store::{GroupRow, OpRecord, OpResult, Ownership, StateStore, StoreError};
use chrono::{DateTime, Utc};
use connector_api::{MemberForm, OpOutcome, Target, TargetError, TargetOp};
use futures::StreamExt;
use new_identities::{Gate, Staged, Stored};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

/// Creates made whole and sent at a time: some thousand at a time make the sends' pipeline
/// drain rarely, and hold some megabytes.
const CREATES_AT_ONCE: usize = 16 * new_identities::CHUNK;

/// Anchors read after deferred creates (`record_deferred_anchors`) recorded per transaction,
/// while the read goes on: some 5 MB of them.
const ANCHOR_CHUNK: usize = 25_000;

/// The creates cut into waves (each made whole as it is sent): the first of one chunk, so that
/// the first sends (and the first chunk's store, in the same task) do not wait while thousands
/// of creates are made whole, each after twice the one before, up to [`CREATES_AT_ONCE`].
fn create_waves(creates: &[usize]) -> impl Iterator<Item = &[usize]> {
    let (mut rest, mut size) = (creates, new_identities::CHUNK);
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (wave, tail) = rest.split_at(size.min(rest.len()));
        (rest, size) = (tail, (size * 2).min(CREATES_AT_ONCE));
        Some(wave)
    })
}

/// Operations whose results are logged (and ownership rows updated) in one transaction, at
/// least: fewer wait for the end of the wave.
const FLUSH_EVERY: usize = 1000;

/// At most: a batch this large is written even while the write before is still going.
const FLUSH_MOST: usize = 64_000;

/// How long results gather before they are written, at least (unless there are
/// [`FLUSH_MOST`] of them).
const FLUSH_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether an apply writes the `gathered` results it holds now, `since` the last write began,
/// while that write is still going (`writing`) or not.
///
/// The log and the ownership rows are keyed by random identity ids, so a transaction writes a
/// page of each index per result until it holds about as many results as the index has pages.
/// Written a thousand at a time (or as many as came back while the write before went on), an
/// apply of 100,000 creates into a directory wrote 1.15 GB to the state for a database of
/// 137 MB, and its CPU was the directory's: gathered for two seconds, 0.49 GB, and the sends a
/// tenth faster. A slow target still has its results written a thousand at a time, and what the
/// sync log shows lags a fast one by two seconds.
fn flush_due(gathered: usize, writing: bool, since: std::time::Duration) -> bool {
    gathered >= FLUSH_MOST || gathered >= FLUSH_EVERY && !writing && since >= FLUSH_PERIOD
}

/// One target's operations to send ([`Engine::apply_target`]): its creates by their places in
/// the plan, made whole as they are sent, then the others in plan order.
#[derive(Clone, Copy)]
struct Sends<'a> {
    all: &'a Ops,
    creates: &'a [usize],
    ops: &'a [&'a PlannedOp],
}

/// A part of one target's sends: creates (made whole for it), or the others of one action.
enum Wave<'a> {
    Creates(&'a [usize]),
    Planned(&'a [&'a PlannedOp]),
}

/// What an apply reports its progress to and asks whether to stop.
struct Watch<'a> {
    hook: Option<&'a dyn RunHook>,
    /// The plan's operations.
    total: usize,
    started: std::time::Instant,
}

impl Watch<'_> {
    fn progress(&self, report: &ApplyReport) -> Progress {
        Progress {
            total: self.total,
            ok: report.ok,
            failed: report.failed,
            not_sent: report.skipped,
            elapsed: self.started.elapsed(),
        }
    }
}

impl Engine {
    /// Carries out a computed plan. Returns what was done; failures of single operations are in
    /// the report, failures that stop everything are errors.
    pub async fn apply(
        &self,
        computed: &mut Computed,
        command: &str,
        now: DateTime<Utc>,
    ) -> Result<ApplyReport, EngineError> {
        self.apply_with(computed, command, now, None).await
    }

    /// [`Engine::apply`] with a hook called between operations ([`RunHook`]): progress, and a
    /// stop (SIGTERM) that leaves the rest unsent and the run `interrupted`.
    pub async fn apply_with(
        &self,
        computed: &mut Computed,
        command: &str,
        now: DateTime<Utc>,
        hook: Option<&dyn RunHook>,
    ) -> Result<ApplyReport, EngineError> {
        // Under a lease (a PostgreSQL state), every request to a target checks it first and
        // none outlasts it (`connector_api::fence`).
        let fence = self.fence.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        // A lease lost while the plan was computed: not even the run's row is written.
        if let Some(deadline) = &fence
            && connector_api::fence::scope(deadline.clone(), async { connector_api::fence::check() }).await.is_err()
        {
            return Err(crate::store::runlock::LockError::Lost { state: self.store.path().to_string() }.into());
        }
        let run = self.store.begin_run(command, Some(&computed.plan.plan_id), now).await?;
        let applied = match fence {
            Some(deadline) => connector_api::fence::scope(deadline, self.apply_run(run, computed, now, hook)).await,
            None => self.apply_run(run, computed, now, hook).await,
        };
        match applied {
            Ok(report) => Ok(report),
            Err(e) => {
                // The run ends `failed` with the reason, never left `running`.
                let _ = self.store.finish_run(run, "failed", &e.to_string(), now).await;
                Err(e)
            }
        }
    }

    async fn apply_run(
        &self,
        run: i64,
        computed: &mut Computed,
        now: DateTime<Utc>,
        hook: Option<&dyn RunHook>,
    ) -> Result<ApplyReport, EngineError> {
        let plan = &computed.plan;
        // A lease lost since (the run's row is all that was written): nothing more is.
        if connector_api::fence::check().is_err() {
            return Err(crate::store::runlock::LockError::Lost { state: self.store.path().to_string() }.into());
        }
        if let Some(h) = hook {
            h.phase(Phase::Applying { total: plan.operations.len() });
        }
        let started = std::time::Instant::now();
        self.expire_passwords(now).await?;
        // The key first passwords are kept with, before anything is sent: a lost one stops here.
        let hands_out =
            |t: &str| self.targets.get(t).is_some_and(|h| h.caps.initial_password.is_some_and(|p| p.handed_out));
        if plan.operations.heads().any(|o| o.action == Action::Create && hands_out(o.target)) {
            self.password_key().await?;
        }
        // Claimed accounts are enid's from now on, before the owner marker is written: if that
        // write fails or the run dies, the next run finds the account by its anchor and writes
        // the marker as the diff of an owned account. Recorded as active whatever they are: enid
        // did not disable a claimed account, so it is not enabled without an operator.
        let claims: Vec<crate::core::plan::Adoption> = plan
            .claims
            .iter()
            .filter(|c| {
                plan.operations
                    .rest()
                    .iter()
                    .any(|o| o.action == Action::Claim && o.target == c.target && o.identity == c.identity)
            })
            .map(|c| crate::core::plan::Adoption {
                target: c.target.clone(),
                identity: c.identity.clone(),
                key: c.key.clone(),
                anchor: c.anchor.clone(),
                disabled: false,
                by_username: true,
                status_only: false,
            })
            .collect();
        // New identities are stored in chunks while the sends that need them wait
        // (`new_identities`); everything else is stored before anything is sent.
        let mut staged = Staged::new(computed, self.targets.keys(), &claims, |a| !is_group_action(a));
        // Each chunk's records leave the run's identities, to be let go once the chunk is stored.
        let records = std::mem::take(&mut computed.records_to_store);
        let (chunk_records, known_records) = staged.take_records(&mut computed.resolution, records).map_err(|why| {
            StoreError {
                path: self.store.path().to_string(),
                message: format!("the new identities' records could not be staged ({why}); no identity or record was stored and nothing was sent: a bug, please report it"),
            }
        })?;
        // Nothing the apply does reads the targets' accounts as observed or the run's names (the
        // new identities carry theirs): both are let go before anything is sent, where they
        // were held through the sends (a million of each at the largest installations).
        drop(std::mem::take(&mut computed.observed));
        drop(std::mem::take(&mut computed.usernames));
        let computed: &Computed = computed;
        // Ownership before the create: by identity and target; the account carries the owner
        // marker, by which the next run finds it if this one dies before recording the result.
        let mut known_rows = known_records.iter().map(|at| super::records::record_row(&computed.resolution, at));
        self.store_part(computed, &staged.known, &mut known_rows, &claims, now).await?;
        self.store.mark_gone(&computed.gone_rows, now).await?;
        self.store.commit_renames(&plan.renames, now).await?;
        self.store.record_civic_changes(run, &computed.resolution.civic_changes, now).await?;
        // Approved releases of protection (the CLI clears the list without `--accept-protected`).
        self.store.unprotect(&plan.unprotect).await?;
        self.store.forget_outside_claims(&computed.outside_done).await?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            new_identity_chunks = staged.chunks.len(),
            "recorded what the sends need, but the new identities"
        );
        // The new identities decided, kept until every one is stored: an apply killed before
        // then leaves the next plan to weigh their creates as this plan's, not as new decisions.
        self.store.set_meta(super::UNSTORED_NEW, &staged.decided(plan)).await?;
        let (tell, stored) = tokio::sync::watch::channel(Stored::default());
        let gate = Gate { staged: &staged, plan, stored };
        let storing = self.store_new_identities(run, computed, &staged, chunk_records, &claims, tell, now);
        let sending = self.send_all(run, computed, &gate, now, hook);
        let (stored, sent) = futures::future::join(storing, sending).await;
        let report = sent?;
        // Nothing of a chunk that could not be stored was sent; the run fails with the reason,
        // and the watermarks stay where they were (not every record was stored).
        stored?;
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "sent operations");
        let (status, message) = if let Some(why) = &report.interrupted {
            ("interrupted", format!("{why}: {} ok, {} failed, {} not sent", report.ok, report.failed, report.skipped))
        } else if report.failed > 0 || report.skipped > 0 {
            ("failed", format!("{} ok, {} failed, {} skipped", report.ok, report.failed, report.skipped))
        } else {
            ("ok", format!("{} operations", report.ok))
        };
        if status == "ok" {
            self.keep_connector_states().await?;
        }
        self.store.record_source_counts(run, &computed.counts, now).await?;
        self.store.record_source_columns(run, &computed.columns, now).await?;
        // The watermarks advance with the records they describe, also after failed operations
        // (the records were stored at the start); a plan never moves them.
        self.store.record_source_reads(run, &computed.reads, now).await?;
        let counts = super::RunCounts {
            ok: report.ok,
            failed: report.failed,
            not_sent: report.skipped,
            ..super::RunCounts::of(computed)
        };
        if let Ok(json) = serde_json::to_string(&counts) {
            self.store.set_run_counts(run, &json).await?;
        }
        self.store.finish_run(run, status, &message, now).await?;
        Ok(report)
    }

    /// Stores the new identities chunk by chunk, each with its records, primary school, claimed
    /// and adopted accounts and pending accounts, and tells the sends how far it got.
    #[allow(clippy::too_many_arguments)]
    async fn store_new_identities(
        &self,
        run: i64,
        computed: &Computed,
        staged: &Staged,
        chunk_records: Vec<new_identities::ChunkRecords>,
        claims: &[crate::core::plan::Adoption],
        tell: tokio::sync::watch::Sender<Stored>,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        // Each chunk's records are let go as soon as it is stored.
        for (n, (chunk, records)) in staged.chunks.iter().zip(chunk_records).enumerate() {
            let began = std::time::Instant::now();
            let stored = async {
                // A node that can no longer confirm its lease stores nothing more either.
                connector_api::fence::check().map_err(|e| crate::store::StoreError {
                    path: self.store.path().to_string(),
                    message: e.to_string(),
                })?;
                let mut rows = records.iter().map(|(id, s, hash)| super::records::record_row_of(id, s, *hash));
                self.store_part(computed, chunk, &mut rows, claims, now).await
            };
            if let Err(e) = stored.await {
                let why = format!("not sent: storing the new identities failed ({e})");
                tell.send_modify(|s| s.failed = Some(why));
                return Err(e.into());
            }
            tell.send_modify(|s| s.chunks = n + 1);
            tracing::debug!(
                chunk = n,
                identities = chunk.identities.len(),
                elapsed_ms = began.elapsed().as_millis() as u64,
                "stored new identities"
            );
        }
        // The records held this run replace those held before once every record is stored: a
        // record held last time that joins a new identity now is in one table or the other
        // whenever the run ends.
        if !computed.incremental {
            let read: Vec<String> = computed.counts.keys().cloned().collect();
            self.store.hold_records(run, &read, &computed.held_rows, now).await?;
        }
        if !staged.chunks.is_empty() {
            self.store.set_meta(super::UNSTORED_NEW, "").await?;
        }
        Ok(())
    }

    /// Stores a part of the plan ([`new_identities::Chunk`]): its new identities with their
    /// usernames, records and primary schools in one transaction, then its adopted and claimed
    /// accounts and the pending rows of its creates.
    async fn store_part(
        &self,
        computed: &Computed,
        part: &new_identities::Chunk,
        records: &mut (dyn Iterator<Item = crate::store::RecordRow> + Send),
        claims: &[crate::core::plan::Adoption],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let plan = &computed.plan;
        let new: Vec<(IdentityId, String)> = part
            .identities
            .iter()
            .map(|&i| &plan.new_identities[i as usize])
            .map(|n| (n.id.clone(), n.username.to_string()))
            .collect();
        let primaries: Vec<_> =
            part.primaries.iter().map(|&i| computed.primary_rows.row(&computed.resolution, i as usize)).collect();
        self.store.commit_identities_from(&new, records, &primaries, now).await?;
        let adoptions: Vec<_> = part.adoptions.iter().map(|&i| plan.adoptions[i as usize].clone()).collect();
        self.store.adopt(&adoptions, now).await?;
        let claimed: Vec<_> = part.claims.iter().map(|&i| claims[i as usize].clone()).collect();
        self.store.adopt(&claimed, now).await?;
        let pending: Vec<(String, IdentityId)> = part
            .creates
            .iter()
            .filter_map(|&i| plan.operations.head(i as usize))
            .map(|o| (o.target.to_string(), o.identity.clone()))
            .collect();
        self.store.record_pending(&pending, now).await
    }

    /// Sends every target's operations in turn: its accounts' first, then its groups'.
    async fn send_all(
        &self,
        run: i64,
        computed: &Computed,
        gate: &Gate<'_>,
        now: DateTime<Utc>,
        hook: Option<&dyn RunHook>,
    ) -> Result<ApplyReport, EngineError> {
        let plan = &computed.plan;
        let mut report = ApplyReport { run_id: run, ..Default::default() };
        let watch = Watch { hook, total: plan.operations.len(), started: std::time::Instant::now() };
        let adopted: Vec<GroupRow> = plan
            .group_adoptions
            .iter()
            .map(|a| GroupRow {
                target: a.target.clone(),
                name: a.name.clone(),
                key: Some(a.key.clone()),
                anchor: a.anchor.clone(),
                school: a.school.clone(),
                pending: false,
            })
            .collect();
        self.store.record_groups(&adopted, now).await?;
        for (id, handle) in &self.targets {
            // The creates by their places in the plan, made whole a piece at a time as they are
            // sent (`apply_target`): a million of them whole were half a gigabyte.
            let creates: Vec<usize> = plan
                .operations
                .heads()
                .take(plan.operations.creates())
                .enumerate()
                .filter(|(_, o)| o.target == id)
                .map(|(i, _)| i)
                .collect();
            let (account_ops, group_ops): (Vec<&PlannedOp>, Vec<&PlannedOp>) =
                plan.operations.rest().iter().filter(|o| o.target == id).partition(|o| !is_group_action(o.action));
            let skipped_before = report.skipped;
            let mut after = AfterAccounts::before_groups(&group_ops);
            // Many creates into a scope of few accounts: the target may read their anchors
            // once afterwards instead of with each create (`Target::defer_anchors`).
            let in_scope = plan.in_scope.get(id).copied().unwrap_or(0);
            let deferred = handle.conn.defer_anchors(creates.len(), in_scope);
            if !account_ops.is_empty() || !creates.is_empty() {
                let ops = Sends { all: &plan.operations, creates: &creates, ops: &account_ops };
                // Deferred: the read of the anchors starts while the last results are written.
                let last =
                    self.apply_target(run, id, handle, ops, gate, &mut after, now, &mut report, &watch, deferred);
                let last = last.await;
                if deferred {
                    handle.conn.defer_anchors(0, 0);
                }
                let last = last?;
                if deferred {
                    // An apply asked to stop, a target that stopped, or a node whose lease
                    // lapsed does not read the whole scope first: the next run records the rest.
                    let stopped = report.interrupted.is_some()
                        || report.skipped > skipped_before
                        || connector_api::fence::check().is_err();
                    if stopped {
                        if let Some(last) = last {
                            join_flush(last).await?;
                        }
                        tracing::warn!(
                            target_id = id,
                            "the anchors of the accounts this run created were not read (the apply stopped): \
                             the next run records them"
                        );
                    } else {
                        self.record_deferred_anchors(id, handle, creates.len(), last).await?;
                    }
                }
            }
            if group_ops.is_empty() {
                continue;
            }
            if report.skipped > skipped_before {
                // The target stopped: the next run plans groups from what exists then.
                self.skip_all(
                    run,
                    id,
                    &group_ops,
                    "not sent: the target stopped earlier in this run",
                    now,
                    &mut report,
                    &watch,
                )
                .await?;
                continue;
            }
            // Members whose values the target gave in this run join; one whose account the target
            // refused is left out, and its groups change for everyone else (the next run adds it
            // once it exists).
            let form = handle.caps.groups.unwrap_or(MemberForm::Key);
            let follows = handle.caps.members_follow_moves;
            let (resolved, empty): (Vec<PlannedOp>, Vec<PlannedOp>) = group_ops
                .iter()
                .map(|o| with_new_members(o, &after, form, follows))
                .partition(|o| !matches!(&o.op, TargetOp::CreateGroup { members, .. } | TargetOp::AddMembers { members, .. } if members.is_empty()));
            let empty: Vec<&PlannedOp> = empty.iter().collect();
            let why = "not sent: its new members could not be created";
            self.skip_all(run, id, &empty, why, now, &mut report, &watch).await?;
            let group_ops: Vec<&PlannedOp> = resolved.iter().collect();
            let pending: Vec<GroupRow> = group_ops
                .iter()
                .filter_map(|o| match &o.op {
                    TargetOp::CreateGroup { name, .. } => Some(GroupRow {
                        target: id.clone(),
                        name: name.clone(),
                        key: None,
                        anchor: None,
                        school: o.school.to_string(),
                        pending: true,
                    }),
                    _ => None,
                })
                .collect();
            let schools: HashMap<&str, &str> =
                group_ops.iter().map(|o| (o.username.as_str(), o.school.as_str())).collect();
            self.store.record_groups(&pending, now).await?;
            let mut groups_after = AfterAccounts::default();
            let ops = Sends { all: &plan.operations, creates: &[], ops: &group_ops };
            self.apply_target(run, id, handle, ops, gate, &mut groups_after, now, &mut report, &watch, false).await?;
            for (name, outcome) in groups_after.group_outcomes {
                match outcome {
                    OpOutcome::Created { key, anchor } => {
                        let school = schools.get(name.as_str()).map(|s| s.to_string()).unwrap_or_default();
                        let row = GroupRow { target: id.clone(), name, key: Some(key), anchor, school, pending: false };
                        self.store.record_groups(&[row], now).await?
                    }
                    OpOutcome::Deleted => self.store.forget_group(id, &name).await?,
                    _ => {}
                }
            }
        }
        Ok(report)
    }

    /// Reads the anchors of the accounts a target created without them (`deferred`) and
    /// records them on their ownership rows as they come, once `last` (the write of the sends'
    /// last results, which makes their rows no longer pending) is done. A read that fails leaves
    /// the rest without an anchor: the next run finds each at its recorded key carrying its enid
    /// id, and records it then. A write that fails is the store's error.
    async fn record_deferred_anchors(
        &self,
        id: &str,
        handle: &TargetHandle,
        creates: usize,
        last: Option<Flush>,
    ) -> Result<(), EngineError> {
        let started = std::time::Instant::now();
        let (into, mut found) = tokio::sync::mpsc::channel(4);
        let reading = handle.conn.read_anchors(into);
        // Owns the receiving end: when the recording ends (a write failed), the read's next
        // hand-over fails and the read ends too, instead of waiting for room forever.
        let recording = async move {
            let mut last = last;
            let (mut read, mut recorded) = (0usize, 0u64);
            let mut chunk: Vec<connector_api::FoundAnchor> = Vec::new();
            let mut writing: Option<tokio::task::JoinHandle<Result<u64, StoreError>>> = None;
            loop {
                let batch = found.recv().await;
                let done = batch.is_none();
                if let Some(batch) = batch {
                    read += batch.len();
                    chunk.extend(batch);
                }
                if chunk.len() >= ANCHOR_CHUNK || done && !chunk.is_empty() {
                    // In the order of their rows (new identities' rows are written in id order),
                    // a chunk to a transaction: in the target's order, each thousand touched a
                    // page of the table per account, and wrote every page again at its commit.
                    chunk.sort_unstable_by(|a, b| a.owner.cmp(&b.owner));
                    if let Some(last) = last.take() {
                        join_flush(last).await?;
                    }
                    if let Some(before) = writing.take() {
                        recorded += join_flush(before).await?;
                    }
                    let (store, target, rows) = (self.store.clone(), id.to_string(), std::mem::take(&mut chunk));
                    writing = Some(tokio::spawn(async move { store.record_anchors(&target, &rows).await }));
                }
                if done {
                    break;
                }
            }
            if let Some(last) = last.take() {
                join_flush(last).await?;
            }
            if let Some(final_write) = writing.take() {
                recorded += join_flush(final_write).await?;
            }
            Ok::<_, EngineError>((read, recorded))
        };
        let (read, recorded) = futures::future::join(reading, recording).await;
        let (accounts, recorded) = recorded?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match read {
            Ok(()) => tracing::info!(
                target_id = id,
                creates,
                accounts,
                recorded,
                elapsed_ms,
                "read the anchors of the created accounts"
            ),
            Err(e) => tracing::warn!(
                target_id = id,
                creates,
                recorded,
                error = %connector_api::one_line(&e),
                "the anchors of the accounts this run created could not all be read: the next run records the rest"
            ),
        }
        Ok(())
    }

    /// Sends one target's operations, each to its account's key as it is now, and notes in
    /// `after` what the target reported: the keys and usernames accounts have now, and the
    /// outcomes of group operations. With `leave_last_write`, the write of the last results is
    /// handed back going (to be joined) instead of waited for.
    #[allow(clippy::too_many_arguments)]
    async fn apply_target(
        &self,
        run: i64,
        id: &str,
        handle: &TargetHandle,
        ops: Sends<'_>,
        gate: &Gate<'_>,
        after: &mut AfterAccounts,
        now: DateTime<Utc>,
        report: &mut ApplyReport,
        watch: &Watch<'_>,
        leave_last_write: bool,
    ) -> Result<Option<Flush>, EngineError> {
        // Results are logged (and ownership rows updated) in batches (`flush_due`). A result not
        // logged when the run dies is found again by the next run (the pending row, the owner
        // marker).
        let stopped = AtomicBool::new(false);
        let stop_reason = std::sync::Mutex::new(String::new());
        let mut batch = Vec::with_capacity(FLUSH_EVERY);
        let mut flushing: Option<Flush> = None;
        let mut last_flush = std::time::Instant::now();
        // One wave per action, in plan order: an update is done before the enable that moves the
        // same entry, so no two operations on one account are ever in flight together, and each
        // wave is sent to the keys the waves before it reported.
        let creates = create_waves(ops.creates).map(Wave::Creates);
        for wave in creates.chain(ops.ops.chunk_by(|a, b| a.action == b.action).map(Wave::Planned)) {
            let whole: Vec<PlannedOp>;
            let refs: Vec<&PlannedOp>;
            let wave: &[&PlannedOp] = match wave {
                Wave::Creates(at) => {
                    whole = at.iter().filter_map(|&i| ops.all.get(i)).map(Cow::into_owned).collect();
                    refs = whole.iter().collect();
                    &refs
                }
                Wave::Planned(wave) => wave,
            };
            let mut sends: Vec<(&PlannedOp, Outgoing<'_>)> = wave.iter().map(|op| (*op, after.addressed(op))).collect();
            // In batches when the target takes several operations in one request; in segments of
            // some thousand operations, each released once the new identities it names are
            // stored and its first passwords kept.
            let per_request = handle.caps.max_batch.max(1);
            let per_segment = (new_identities::CHUNK / per_request).max(1) * per_request;
            let mut keep: Vec<Vec<crate::store::SealedPassword>> = Vec::new();
            if wave[0].action == Action::Create
                && let Some(rules) = handle.caps.initial_password
            {
                // Kept before the creates are sent: an account never holds a password the
                // hand-out could not show. One whose create fails gets a new one next time.
                let key = if rules.handed_out { Some(self.password_key().await?) } else { None };
                for segment in sends.chunks_mut(per_segment) {
                    keep.push(
                        super::passwords::give_first_passwords(key, id, rules, segment)
                            .map_err(EngineError::Passwords)?,
                    );
                    // The new identities are stored beside this, in the same task: a chunk's
                    // transaction is not left waiting while a million passwords are sealed.
                    tokio::task::yield_now().await;
                }
            }
            // By index, not by slice: a closure that takes a borrowed chunk is not general over
            // its lifetime, which keeps the run's future from being `Send` (rustc #64552).
            // The requests' slices are cut as they are sent: a vector of them was a million
            // slices (16 MB) for a million creates sent one per request.
            let sends_ref = &sends;
            let requests = sends.len().div_ceil(per_request);
            let segments: Vec<&[(&PlannedOp, Outgoing<'_>)]> = sends.chunks(per_segment).collect();
            let per = per_segment / per_request;
            let (release, released) = tokio::sync::mpsc::channel::<(usize, Option<String>)>(2);
            let stopped_ref = &stopped;
            let keep = &keep;
            // Releases the segments in order: a segment waits for its new identities, then its
            // first passwords are kept. Once something stopped the sends, the rest go unsent.
            let releasing = async move {
                let mut halted: Option<String> = None;
                let mut error: Option<EngineError> = None;
                // How long segments waited for their new identities to be stored (an upper bound
                // on how long the sends stood still for the store: two segments are let out ahead).
                let mut waited = std::time::Duration::ZERO;
                for (s, segment) in segments.iter().enumerate() {
                    if halted.is_none() && !stopped_ref.load(Ordering::SeqCst) {
                        let asked = std::time::Instant::now();
                        let ready = gate.ready(segment.iter().map(|(op, _)| &op.identity)).await;
                        waited += asked.elapsed();
                        if let Err(why) = ready {
                            halted = Some(why);
                        } else if let Some(rows) = keep.get(s).filter(|r| !r.is_empty())
                            && let Err(e) = self.store.keep_passwords(rows, now).await
                        {
                            halted = Some(format!("not sent: keeping the first passwords failed ({e})"));
                            error = Some(e.into());
                        }
                    }
                    if release.send((s, halted.clone())).await.is_err() {
                        break;
                    }
                }
                tracing::debug!(
                    target_id = id,
                    action = wave[0].action.as_str(),
                    operations = wave.len(),
                    waited_for_store_ms = waited.as_millis() as u64,
                    "wave released"
                );
                error
            };
            let mut released = released;
            let released = futures::stream::poll_fn(move |cx| released.poll_recv(cx));
            let mut stream = released
                .flat_map(|(s, halted)| {
                    futures::stream::iter((s * per..((s + 1) * per).min(requests)).map(move |i| (i, halted.clone())))
                })
                .map(|(i, halted)| {
                    let stopped = &stopped;
                    let stop_reason = &stop_reason;
                    let chunk = &sends_ref[i * per_request..((i + 1) * per_request).min(sends_ref.len())];
                    async move {
                        if let Some(why) = halted {
                            return chunk.iter().map(|(op, _)| (*op, Err(None::<TargetError>), why.clone())).collect();
                        }
                        // A stop asked for (SIGTERM), a lease this node can no longer confirm, or
                        // new identities that could not be stored end the apply between two
                        // operations.
                        let fenced = connector_api::fence::check().err().map(|e| e.to_string());
                        let why = fenced
                            .map(|f| format!("not sent: {f}"))
                            .or_else(|| gate.failure())
                            .or_else(|| watch.hook.and_then(|h| h.stop()).map(|w| format!("not sent: {w}")));
                        if let Some(why) = why
                            && !stopped.swap(true, Ordering::SeqCst)
                            && let Ok(mut s) = stop_reason.lock()
                        {
                            *s = why;
                        }
                        if stopped.load(Ordering::SeqCst) {
                            let why = stop_reason.lock().map(|s| s.clone()).unwrap_or_default();
                            return chunk.iter().map(|(op, _)| (*op, Err(None::<TargetError>), why.clone())).collect();
                        }
                        let results = match chunk {
                            [(_, one)] => vec![handle.conn.apply(one).await],
                            _ => {
                                let ops: Vec<TargetOp> = chunk.iter().map(|(_, t)| TargetOp::clone(t)).collect();
                                handle.conn.apply_batch(&ops).await
                            }
                        };
                        if let Some(e) = results.iter().find_map(|r| r.as_ref().err().filter(|e| e.stops_target()))
                            && !stopped.swap(true, Ordering::SeqCst)
                            && let Ok(mut s) = stop_reason.lock()
                        {
                            let e = connector_api::one_line(e);
                            *s = format!("not sent: target stopped after an earlier failure ({e})");
                        }
                        chunk
                            .iter()
                            .zip(results)
                            .map(|((op, _), r)| (*op, r.map_err(Some), String::new()))
                            .collect::<Vec<_>>()
                    }
                })
                .buffer_unordered(handle.caps.max_in_flight.max(1))
                .flat_map(futures::stream::iter);
            let sending = {
                let batch = &mut batch;
                let flushing = &mut flushing;
                let last_flush = &mut last_flush;
                let report = &mut *report;
                let after = &mut *after;
                async move {
                    while let Some((op, result, why)) = stream.next().await {
                        let result = match result {
                            Ok(outcome) => {
                                report.ok += 1;
                                after.note(op, &outcome);
                                OpResult::Ok(match outcome {
                                    OpOutcome::Created { key, anchor } => {
                                        let status = match &op.op {
                                            TargetOp::Create { account } if !account.enabled => AccountStatus::Disabled,
                                            _ => AccountStatus::Active,
                                        };
                                        Ownership::Set { key, anchor, status }
                                    }
                                    OpOutcome::Updated => Ownership::Unchanged,
                                    OpOutcome::Disabled { key } => {
                                        Ownership::Set { key, anchor: None, status: AccountStatus::Disabled }
                                    }
                                    OpOutcome::Enabled { key } => {
                                        Ownership::Set { key, anchor: None, status: AccountStatus::Active }
                                    }
                                    OpOutcome::Renamed { key } | OpOutcome::Moved { key } => Ownership::Moved { key },
                                    OpOutcome::Deleted => Ownership::Removed,
                                })
                            }
                            Err(Some(e)) => {
                                report.failed += 1;
                                let msg = redact_error(op, connector_api::one_line(&e), after);
                                tracing::warn!(target_id = id, identity = %op.identity, action = op.action.as_str(), error = %msg, "operation failed");
                                // Named by enid id (a connector names the account by its own key).
                                let whose = if op.identity.is_empty() {
                                    format!("group {}", op.redacted().username)
                                } else {
                                    format!("identity {}", op.identity)
                                };
                                report.first_error.get_or_insert_with(|| format!("target \"{id}\", {whose}: {msg}"));
                                OpResult::Failed(msg)
                            }
                            Err(None) => {
                                report.skipped += 1;
                                OpResult::Skipped(why)
                            }
                        };
                        batch.push(op_record(id, op, result));
                        if let Some(h) = watch.hook {
                            h.progress(&watch.progress(report));
                            if report.interrupted.is_none() {
                                report.interrupted = h.stop();
                            }
                        }
                        let writing = flushing.as_ref().is_some_and(|f| !f.is_finished());
                        if flush_due(batch.len(), writing, last_flush.elapsed()) {
                            *last_flush = std::time::Instant::now();
                            // Write this batch while the next operations are sent; one write at a time.
                            if let Some(prev) = flushing.take() {
                                join_flush(prev).await?;
                            }
                            let store = self.store.clone();
                            let full = std::mem::replace(batch, Vec::with_capacity(FLUSH_EVERY));
                            *flushing = Some(tokio::spawn(async move { store.record_ops(run, &full, now).await }));
                        }
                    }
                    Ok::<(), EngineError>(())
                }
            };
            let (failed, sent) = futures::future::join(releasing, sending).await;
            sent?;
            if let Some(e) = failed {
                // What was sent is logged; the apply stops with the store's error.
                if let Some(prev) = flushing.take() {
                    join_flush(prev).await?;
                }
                self.store.record_ops(run, &batch, now).await?;
                return Err(e);
            }
        }
        if let Some(prev) = flushing.take() {
            join_flush(prev).await?;
        }
        if leave_last_write {
            let store = self.store.clone();
            return Ok(Some(tokio::spawn(async move { store.record_ops(run, &batch, now).await })));
        }
        self.store.record_ops(run, &batch, now).await?;
        Ok(None)
    }

    /// Logs operations that were not sent (and counts them in the progress, which reaches the
    /// plan's total however the apply went).
    #[allow(clippy::too_many_arguments)]
    async fn skip_all(
        &self,
        run: i64,
        id: &str,
        ops: &[&PlannedOp],
        why: &str,
        now: DateTime<Utc>,
        report: &mut ApplyReport,
        watch: &Watch<'_>,
    ) -> Result<(), EngineError> {
        report.skipped += ops.len();
        if let Some(h) = watch.hook.filter(|_| !ops.is_empty()) {
            h.progress(&watch.progress(report));
        }
        let records: Vec<OpRecord> =
            ops.iter().map(|op| op_record(id, op, OpResult::Skipped(why.to_string()))).collect();
        Ok(self.store.record_ops(run, &records, now).await?)
    }
}

/// A write of results going on ([`Engine::apply_target`]).
type Flush = tokio::task::JoinHandle<Result<(), StoreError>>;

async fn join_flush<T>(handle: tokio::task::JoinHandle<Result<T, StoreError>>) -> Result<T, EngineError> {
    match handle.await {
        Ok(result) => Ok(result?),
        Err(e) => Err(EngineError::Store(StoreError {
            path: String::new(),
            message: format!("writing the state failed: {e}"),
        })),
    }
}

/// An operation as it is sent: the plan's own, or a copy changed for this run (another key, a
/// first password). Two words: a wave of a million creates holds a pointer each, not a copy of
/// the operation's inline size (some 250 bytes) each.
pub(super) enum Outgoing<'a> {
    Planned(&'a TargetOp),
    Changed(Box<TargetOp>),
}

impl std::ops::Deref for Outgoing<'_> {
    type Target = TargetOp;
    fn deref(&self) -> &TargetOp {
        match self {
            Outgoing::Planned(op) => op,
            Outgoing::Changed(op) => op,
        }
    }
}

/// What the target reported during a run: the key and username each account has now, where an
/// operation of this run changed or made them, and the outcomes of group operations.
#[derive(Debug, Default)]
pub(super) struct AfterAccounts {
    keys: HashMap<IdentityId, String>,
    usernames: HashMap<IdentityId, String>,
    group_outcomes: Vec<(String, OpOutcome)>,
    /// The persons whose new accounts a group operation of this run adds or removes: of the
    /// creates, only theirs are noted. No other operation follows a create of the same account,
    /// so a first run's million keys and names were held to the end for nothing.
    members: HashSet<IdentityId>,
}

impl AfterAccounts {
    /// For the account operations of a target whose group operations are `group_ops`.
    fn before_groups(group_ops: &[&PlannedOp]) -> AfterAccounts {
        let members = group_ops
            .iter()
            .flat_map(|o| o.new_members().iter().chain(o.leaving().iter().map(|(i, _)| i)))
            .cloned()
            .collect();
        AfterAccounts { members, ..AfterAccounts::default() }
    }

    /// Notes what a successful operation reported.
    fn note(&mut self, op: &PlannedOp, outcome: &OpOutcome) {
        if is_group_action(op.action) {
            self.group_outcomes.push((op.username.to_string(), outcome.clone()));
            return;
        }
        if op.action == Action::Create && !self.members.contains(&op.identity) {
            return;
        }
        if let Some(key) = outcome.key() {
            self.keys.insert(op.identity.clone(), key.to_string());
        }
        match &op.op {
            TargetOp::Create { account } => {
                self.usernames.insert(op.identity.clone(), account.username.to_string());
            }
            TargetOp::Rename { username, .. } => {
                self.usernames.insert(op.identity.clone(), username.clone());
            }
            _ => {}
        }
    }

    /// The operation as it is sent: to the key its account has now.
    fn addressed<'a>(&self, op: &'a PlannedOp) -> Outgoing<'a> {
        match (op.op.key(), self.keys.get(&op.identity)) {
            (Some(old), Some(now)) if !is_group_action(op.action) && old != now => {
                Outgoing::Changed(Box::new(op.op.readdressed(now)))
            }
            _ => Outgoing::Planned(&op.op),
        }
    }

    /// The member value of an account made or changed in this run, if its operations succeeded.
    fn member(&self, identity: &str, form: MemberForm) -> Option<&String> {
        match form {
            MemberForm::Key => self.keys.get(identity),
            MemberForm::Username => self.usernames.get(identity),
        }
    }
}

/// A group operation with the values of its new members added: those whose accounts the target
/// made or changed in this run. A member whose operations failed is left out. Where the target
/// rewrites member values itself when an account moves (`follows`: AD), a member leaving the
/// group is removed by the value its account has now.
fn with_new_members(op: &PlannedOp, after: &AfterAccounts, form: MemberForm, follows: bool) -> PlannedOp {
    if follows
        && !op.leaving().is_empty()
        && let TargetOp::RemoveMembers { key, members } = &op.op
    {
        let now: HashMap<&str, &String> =
            op.leaving().iter().filter_map(|(i, old)| Some((old.as_str(), after.member(i, form)?))).collect();
        let members: Vec<String> =
            members.iter().map(|m| now.get(m.as_str()).map(|v| v.to_string()).unwrap_or_else(|| m.clone())).collect();
        let mut out = op.clone();
        out.op = TargetOp::RemoveMembers { key: key.clone(), members };
        return out;
    }
    if op.new_members().is_empty() {
        return op.clone();
    }
    let more: Vec<String> = op.new_members().iter().filter_map(|i| after.member(i, form).cloned()).collect();
    let mut out = op.clone();
    if let TargetOp::CreateGroup { members, .. } | TargetOp::AddMembers { members, .. } = &mut out.op {
        members.extend(more);
        members.sort();
        members.dedup();
    }
    out
}

/// A failure as the log and the report show it: for a protected person, without the keys the
/// account had (a DN may carry the real name and school from before the protection) or its
/// names; the enid id says whose it is.
fn redact_error(op: &PlannedOp, msg: String, after: &AfterAccounts) -> String {
    if !op.protected {
        return msg;
    }
    let mut hide: Vec<String> = op.op.key().into_iter().map(str::to_string).collect();
    hide.extend(after.keys.get(&op.identity).cloned());
    if let TargetOp::Create { account } = &op.op {
        hide.extend([
            account.display_name.to_string(),
            account.given_name.to_string(),
            account.family_name.to_string(),
        ]);
    }
    if let TargetOp::Move { placement, .. } = &op.op {
        hide.push(placement.clone());
    }
    hide.retain(|h| h.trim().len() > 1);
    hide.sort_by_key(|h| std::cmp::Reverse(h.len()));
    let mut out = msg;
    for h in &hide {
        out = replace_ignore_case(&out, h, "(protected)");
    }
    out
}

fn replace_ignore_case(text: &str, needle: &str, with: &str) -> String {
    let (lt, ln) = (text.to_lowercase(), needle.to_lowercase());
    if lt.len() != text.len() || ln.is_empty() {
        return text.replace(needle, with); // lowercasing changed byte lengths: exact only
    }
    let mut out = String::new();
    let mut rest = 0;
    for (i, _) in lt.match_indices(&ln) {
        if i < rest {
            continue;
        }
        out.push_str(&text[rest..i]);
        out.push_str(with);
        rest = i + ln.len();
    }
    out.push_str(&text[rest..]);
    out
}

pub(super) fn is_group_action(a: Action) -> bool {
    matches!(a, Action::CreateGroup | Action::AddMembers | Action::RemoveMembers | Action::DeleteGroup)
}

pub(super) fn op_record(target: &str, op: &PlannedOp, result: OpResult) -> OpRecord {
    // The log shows a protected person by enid id only.
    let op = &op.redacted();
    OpRecord {
        target: target.to_string(),
        identity_id: op.identity.clone(),
        username: op.username.to_string(),
        school: op.school.to_string(),
        action: op.action.as_str().to_string(),
        detail: op.reason.to_string(),
        group: is_group_action(op.action),
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_api::{AccountSpec, Role};

    /// Every create is in one wave, in plan order; the first wave is one chunk and the waves
    /// grow to the largest.
    #[test]
    fn create_waves_cover_the_creates_in_order_and_start_small() {
        let creates: Vec<usize> = (0..100_000).collect();
        let waves: Vec<&[usize]> = create_waves(&creates).collect();
        assert_eq!(waves.concat(), creates);
        let sizes: Vec<usize> = waves.iter().map(|w| w.len()).collect();
        assert_eq!(sizes[..6], [1000, 2000, 4000, 8000, 16_000, 16_000]);
        assert!(sizes.iter().all(|&n| n <= CREATES_AT_ONCE));
        assert_eq!(create_waves(&[]).count(), 0);
        assert_eq!(create_waves(&creates[..10]).collect::<Vec<_>>(), [&creates[..10]]);
    }

    #[test]
    fn results_are_written_in_batches_of_a_thousand_two_seconds_apart_or_at_the_most() {
        let (soon, later) = (std::time::Duration::from_millis(1999), FLUSH_PERIOD);
        assert!(!flush_due(FLUSH_EVERY - 1, false, later), "fewer than a thousand wait for the end");
        assert!(!flush_due(FLUSH_EVERY, false, soon), "a thousand wait for two seconds");
        assert!(flush_due(FLUSH_EVERY, false, later));
        assert!(!flush_due(FLUSH_MOST - 1, true, later), "one write at a time");
        assert!(flush_due(FLUSH_MOST, true, std::time::Duration::ZERO), "but never more than the most");
    }

    fn op(action: Action, identity: &str, op: TargetOp) -> PlannedOp {
        PlannedOp::for_test(action, "directory", identity, op)
    }

    fn create(identity: &str) -> PlannedOp {
        let account = AccountSpec {
            id: identity.into(),
            username: identity.into(),
            given_name: "Anna".into(),
            family_name: "Berg".into(),
            display_name: "Anna Berg".into(),
            roles: [Role::Student].into_iter().collect(),
            schools: connector_api::source::smallvec!["Norr".into()],
            enabled: true,
            protected: false,
            attrs: Default::default(),
            placement: None,
            initial_password: None,
        };
        op(Action::Create, identity, TargetOp::Create { account })
    }

    /// The keys and names an apply notes are those its later operations use: a new account a
    /// group operation adds, an account changed by a rename (a later update is sent to its new
    /// key). A create no group needs is not held (a first run's million).
    #[test]
    fn an_apply_holds_the_new_keys_its_group_operations_need_and_no_others() {
        let mut add = op(Action::AddMembers, "7A", TargetOp::AddMembers { key: "cn=7A".into(), members: Vec::new() });
        add.extra.get_mut().new_members = vec!["id-member".into()];
        let groups = [&add];
        let mut after = AfterAccounts::before_groups(&groups);
        let created = |key: &str| OpOutcome::Created { key: key.into(), anchor: None };
        after.note(&create("id-member"), &created("uid=member"));
        after.note(&create("id-alone"), &created("uid=alone"));
        let rename = op(Action::Rename, "id-old", TargetOp::Rename { key: "uid=old".into(), username: "new".into() });
        after.note(&rename, &OpOutcome::Renamed { key: "uid=new".into() });
        assert_eq!(after.member("id-member", MemberForm::Key).map(String::as_str), Some("uid=member"));
        assert_eq!(after.member("id-member", MemberForm::Username).map(String::as_str), Some("id-member"));
        assert_eq!(after.member("id-alone", MemberForm::Key), None, "a create no group needs is not held");
        assert_eq!(after.keys.len(), 2, "{:?}", after.keys);
        let update = op(Action::Update, "id-old", TargetOp::Update { key: "uid=old".into(), changes: Vec::new() });
        assert_eq!(after.addressed(&update).key(), Some("uid=new"), "sent to the key the rename reported");
        let with = with_new_members(&add, &after, MemberForm::Key, false);
        let TargetOp::AddMembers { members, .. } = &with.op else { panic!() };
        assert_eq!(members, &["uid=member".to_string()]);
    }
}
