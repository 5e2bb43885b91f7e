//! Carrying out a plan: ownership and identities recorded first, then the operations sent in
//! waves per action with bounded concurrency, logged in batches; a target that fails stops
//! receiving operations; group operations after the account operations of their target, without
//! the members whose accounts the target refused.

use super::{ApplyReport, Computed, Engine, EngineError, TargetHandle};
use crate::core::model::{AccountStatus, IdentityId};
use crate::core::plan::{self, Action, PlannedOp};
use crate::store::{GroupRow, OpRecord, OpResult, Ownership, StateStore, StoreError};
use chrono::{DateTime, Utc};
use connector_api::{OpOutcome, TargetError, TargetOp};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

impl Engine {
    /// Carries out a computed plan. Returns what was done; failures of single operations are in
    /// the report, failures that stop everything are errors.
    pub async fn apply(
        &self,
        computed: &Computed,
        command: &str,
        now: DateTime<Utc>,
    ) -> Result<ApplyReport, EngineError> {
        let run = self.store.begin_run(command, Some(&computed.plan.plan_id), now).await?;
        match self.apply_run(run, computed, now).await {
            Ok(report) => Ok(report),
            Err(e) => {
                // The run ends `failed` with the reason, never left `running`.
                let _ = self.store.finish_run(run, "failed", &e.to_string(), now).await;
                Err(e)
            }
        }
    }

    async fn apply_run(&self, run: i64, computed: &Computed, now: DateTime<Utc>) -> Result<ApplyReport, EngineError> {
        let plan = &computed.plan;
        let started = std::time::Instant::now();
        let new: Vec<(IdentityId, String)> =
            plan.new_identities.iter().map(|n| (n.id.clone(), n.username.clone())).collect();
        self.store.commit_identities(&new, &computed.record_rows, now).await?;
        self.store.commit_renames(&plan.renames, now).await?;
        self.store.record_civic_changes(run, &computed.resolution.civic_changes, now).await?;
        // Approved releases of protection (the CLI clears the list without `--accept-protected`).
        self.store.unprotect(&plan.unprotect).await?;
        self.store.adopt(&plan.adoptions, now).await?;
        let pending: Vec<(String, IdentityId, String)> = plan
            .operations
            .iter()
            .filter(|o| o.action == Action::Create)
            .filter_map(|o| {
                let t = self.targets.get(&o.target)?;
                // The key the create really uses: a disabled create may land elsewhere.
                let disabled = matches!(o.op, TargetOp::Create { disabled: true, .. });
                Some((o.target.clone(), o.identity.clone(), t.conn.key_for(&o.username, disabled)))
            })
            .collect();
        self.store.record_pending(&pending, now).await?;
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "recorded identities and pending accounts");

        let mut report = ApplyReport { run_id: run, ..Default::default() };
        let adopted: Vec<GroupRow> = plan
            .group_adoptions
            .iter()
            .map(|a| GroupRow {
                target: a.target.clone(),
                name: a.name.clone(),
                key: a.key.clone(),
                anchor: a.anchor.clone(),
                school: a.school.clone(),
                pending: false,
            })
            .collect();
        self.store.record_groups(&adopted, now).await?;
        for (id, handle) in &self.targets {
            let (account_ops, group_ops): (Vec<&PlannedOp>, Vec<&PlannedOp>) =
                plan.operations.iter().filter(|o| &o.target == id).partition(|o| !is_group_action(o.action));
            let skipped_before = report.skipped;
            let mut failed_members = HashSet::new();
            if !account_ops.is_empty() {
                failed_members = self.apply_target(run, id, handle, &account_ops, now, &mut report).await?.1;
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
                )
                .await?;
                continue;
            }
            // An account the target refused is left out of its groups, which change for
            // everyone else; the next run adds it once it exists.
            let trimmed: Vec<PlannedOp>;
            let mut group_ops = group_ops;
            if !failed_members.is_empty() {
                let (kept, empty): (Vec<PlannedOp>, Vec<PlannedOp>) = group_ops
                    .iter()
                    .map(|o| without_members(o, &failed_members))
                    .partition(|o| !matches!(&o.op, TargetOp::CreateGroup { members, .. } | TargetOp::AddMembers { members, .. } if members.is_empty()));
                let empty: Vec<&PlannedOp> = empty.iter().collect();
                self.skip_all(run, id, &empty, "not sent: its new members could not be created", now, &mut report)
                    .await?;
                trimmed = kept;
                group_ops = trimmed.iter().collect();
            }
            let pending: Vec<GroupRow> = group_ops
                .iter()
                .filter_map(|o| match &o.op {
                    TargetOp::CreateGroup { name, .. } => Some(GroupRow {
                        target: id.clone(),
                        name: name.clone(),
                        key: handle.conn.group_key_for(name)?,
                        anchor: None,
                        school: o.school.clone(),
                        pending: true,
                    }),
                    _ => None,
                })
                .collect();
            let schools: HashMap<&str, &str> =
                group_ops.iter().map(|o| (o.username.as_str(), o.school.as_str())).collect();
            self.store.record_groups(&pending, now).await?;
            let done = self.apply_target(run, id, handle, &group_ops, now, &mut report).await?.0;
            for (name, outcome) in done {
                match outcome {
                    OpOutcome::Created { key, anchor } => {
                        let school = schools.get(name.as_str()).map(|s| s.to_string()).unwrap_or_default();
                        let row = GroupRow { target: id.clone(), name, key, anchor, school, pending: false };
                        self.store.record_groups(&[row], now).await?
                    }
                    OpOutcome::Deleted => self.store.forget_group(id, &name).await?,
                    _ => {}
                }
            }
        }
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "sent operations");
        let (status, message) = if report.failed > 0 || report.skipped > 0 {
            ("failed", format!("{} ok, {} failed, {} skipped", report.ok, report.failed, report.skipped))
        } else {
            ("ok", format!("{} operations", report.ok))
        };
        self.store.record_source_counts(run, &computed.counts, now).await?;
        self.store.record_source_columns(run, &computed.columns, now).await?;
        self.store.finish_run(run, status, &message, now).await?;
        Ok(report)
    }

    /// Sends one target's operations. Returns the outcomes of group operations and the member
    /// values (account keys and usernames, normalised) that failed operations would have made.
    async fn apply_target(
        &self,
        run: i64,
        id: &str,
        handle: &TargetHandle,
        ops: &[&PlannedOp],
        now: DateTime<Utc>,
        report: &mut ApplyReport,
    ) -> Result<(Vec<(String, OpOutcome)>, HashSet<String>), EngineError> {
        const FLUSH_EVERY: usize = 1000;
        let mut group_outcomes = Vec::new();
        let mut failed_members = HashSet::new();
        let stopped = AtomicBool::new(false);
        let stop_reason = std::sync::Mutex::new(String::new());
        let mut batch = Vec::with_capacity(FLUSH_EVERY);
        let mut flushing: Option<tokio::task::JoinHandle<Result<(), StoreError>>> = None;
        // One wave per action, in plan order: an update is done before the enable that moves the
        // same entry, so no two operations on one account are ever in flight together.
        for wave in ops.chunk_by(|a, b| a.action == b.action) {
            let mut stream = futures::stream::iter(wave.iter().copied())
                .map(|op| {
                    let stopped = &stopped;
                    let stop_reason = &stop_reason;
                    async move {
                        if stopped.load(Ordering::SeqCst) {
                            let why = stop_reason.lock().map(|s| s.clone()).unwrap_or_default();
                            return (op, Err(None::<TargetError>), why);
                        }
                        let result = handle.conn.apply(&op.op).await;
                        if let Err(e) = &result
                            && e.stops_target()
                            && !stopped.swap(true, Ordering::SeqCst)
                            && let Ok(mut s) = stop_reason.lock()
                        {
                            let e = connector_api::one_line(e);
                            *s = format!("not sent: target stopped after an earlier failure ({e})");
                        }
                        (op, result.map_err(Some), String::new())
                    }
                })
                .buffer_unordered(handle.max_in_flight.max(1));
            while let Some((op, result, why)) = stream.next().await {
                let result = match result {
                    Ok(outcome) => {
                        report.ok += 1;
                        if is_group_action(op.action) {
                            group_outcomes.push((op.username.clone(), outcome.clone()));
                        }
                        OpResult::Ok(match outcome {
                            OpOutcome::Created { key, anchor } => {
                                let status = match op.op {
                                    TargetOp::Create { disabled: true, .. } => AccountStatus::Disabled,
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
                            OpOutcome::Renamed { key } => Ownership::Moved { key },
                            OpOutcome::Deleted => Ownership::Removed,
                        })
                    }
                    Err(Some(e)) => {
                        report.failed += 1;
                        failed_members.extend(member_values(handle, &op.op));
                        let msg = connector_api::one_line(&e);
                        tracing::warn!(target_id = id, identity = %op.identity, action = op.action.as_str(), error = %msg, "operation failed");
                        report.first_error.get_or_insert_with(|| format!("target \"{id}\": {msg}"));
                        OpResult::Failed(msg)
                    }
                    Err(None) => {
                        report.skipped += 1;
                        OpResult::Skipped(why)
                    }
                };
                batch.push(op_record(id, op, result));
                if batch.len() >= FLUSH_EVERY {
                    // Write this batch while the next operations are sent; one write at a time.
                    if let Some(prev) = flushing.take() {
                        join_flush(prev).await?;
                    }
                    let store = self.store.clone();
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(FLUSH_EVERY));
                    flushing = Some(tokio::spawn(async move { store.record_ops(run, &full, now).await }));
                }
            }
        }
        if let Some(prev) = flushing.take() {
            join_flush(prev).await?;
        }
        self.store.record_ops(run, &batch, now).await?;
        Ok((group_outcomes, failed_members))
    }

    /// Logs operations that were not sent.
    async fn skip_all(
        &self,
        run: i64,
        id: &str,
        ops: &[&PlannedOp],
        why: &str,
        now: DateTime<Utc>,
        report: &mut ApplyReport,
    ) -> Result<(), EngineError> {
        report.skipped += ops.len();
        let records: Vec<OpRecord> =
            ops.iter().map(|op| op_record(id, op, OpResult::Skipped(why.to_string()))).collect();
        Ok(self.store.record_ops(run, &records, now).await?)
    }
}

async fn join_flush(handle: tokio::task::JoinHandle<Result<(), StoreError>>) -> Result<(), EngineError> {
    match handle.await {
        Ok(result) => Ok(result?),
        Err(e) => {
            Err(EngineError::Store(StoreError { path: String::new(), message: format!("writing the log failed: {e}") }))
        }
    }
}

/// The group member values (normalised account keys and usernames) an account operation would
/// have made: those of a create, a rename and an enable.
pub(super) fn member_values(handle: &TargetHandle, op: &TargetOp) -> Vec<String> {
    let (key, name) = match op {
        TargetOp::Create { username, disabled, .. } => {
            (handle.conn.key_for(username, *disabled), Some(username.clone()))
        }
        TargetOp::Rename { key, username } => (handle.conn.renamed_key(key, username), Some(username.clone())),
        TargetOp::Enable { key } => (handle.conn.enabled_key(key), None),
        _ => return Vec::new(),
    };
    std::iter::once(key).chain(name).map(|v| plan::normalize_key(&v)).collect()
}

/// A group operation without the members in `failed`.
pub(super) fn without_members(op: &PlannedOp, failed: &HashSet<String>) -> PlannedOp {
    let keep = |members: &[String]| -> Vec<String> {
        members.iter().filter(|m| !failed.contains(&plan::normalize_key(m))).cloned().collect()
    };
    let mut out = op.clone();
    out.op = match &op.op {
        TargetOp::CreateGroup { name, members } => TargetOp::CreateGroup { name: name.clone(), members: keep(members) },
        TargetOp::AddMembers { key, members } => TargetOp::AddMembers { key: key.clone(), members: keep(members) },
        other => other.clone(),
    };
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
        username: op.username.clone(),
        school: op.school.clone(),
        action: op.action.as_str().to_string(),
        detail: op.reason.clone(),
        group: is_group_action(op.action),
        result,
    }
}
