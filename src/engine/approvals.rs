//! Approvals of held runs, as operations: an operator (or a school admin, where allowed)
//! approves a held or plan-only run's operations (all, by action, by school unit, or one by
//! one), and the guards a run may go past; the daemon's next run carries out the approved
//! operations that it still plans exactly so (same target, identity, action and values: the
//! operation's `fingerprint`) and holds anything new or changed. An approval is used once and
//! lapses after `[schedule] approvals_expire_after`. Who approved is recorded.

use super::queries::Viewer;
use super::{Engine, EngineError};
use crate::core::plan::{Action, Plan, PlannedOp};
use crate::store::{ApprovalRow, StateStore};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use std::collections::BTreeSet;

/// What of a held run to approve.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only operations of these actions (empty: all).
    pub only: Vec<Action>,
    /// Only operations of this school unit.
    pub school: Option<String>,
    /// Only these operations, by fingerprint (a prefix of eight or more characters will do).
    pub ops: Vec<String>,
    /// Operations on persons with protected personal data too.
    pub accept_protected: bool,
    /// Guards the next run may go past: `shrink`, `missing`, `schema_change`, `scope_change`.
    pub accept: Vec<String>,
}

/// The guards an approval may accept for the next run, by the CLI's names.
pub const GUARDS: [&str; 4] = ["shrink", "missing", "schema_change", "scope_change"];

/// What an approval recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalSummary {
    pub run_id: i64,
    /// Operations approved.
    pub approved: usize,
    /// Operations on protected persons left out (approve them with `accept_protected`).
    pub left_protected: usize,
    /// Enables of accounts disabled outside enid left out (approve them by name: `only`
    /// enable, or the operation itself).
    pub left_disabled_outside: usize,
    /// Guards the next run may go past.
    pub guards: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// Why an approval cannot be recorded: the operator fixes the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApproveRunError {
    #[error("no run {0}; `enid runs` lists them")]
    NoSuchRun(i64),
    #[error(
        "run {id} is {status}, not held, planned or applied: only a held or plan-only run's operations, and those an \
         applied run left waiting, are approved"
    )]
    NotHeld { id: i64, status: String },
    #[error("run {0} was carried out and left nothing waiting for approval")]
    NothingWaiting(i64),
    #[error(
        "run {0} was stopped by a guard before it planned anything: accept that guard for the next run \
         (--accept-shrink, --accept-missing, --accept-schema-change, --accept-scope-change), and nothing else"
    )]
    StoppedByGuard(i64),
    #[error("run {0}'s saved plan is gone (removed by retention?); approve a newer run")]
    PlanGone(i64),
    #[error("the selection approves nothing of run {id}: {why}")]
    Nothing { id: i64, why: String },
    #[error("unknown guard {0:?}: use shrink, missing, schema_change or scope_change")]
    UnknownGuard(String),
    #[error("a school admin may not approve here ([server] school_admins_approve is off)")]
    NotAllowed,
}

impl Engine {
    /// Sets every operation's fingerprint: a keyed hash of what it does, the same in every plan
    /// that does exactly this. The key is derived and set up once per plan (a first run has
    /// 100,000 creates).
    pub(super) fn fingerprint_plan(&self, plan: &mut Plan) {
        let key = self.id_key.derive_secret(b"enid operation fingerprint");
        // An HMAC takes a key of any length.
        let Ok(keyed) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key) else { return };
        // On every core: a first run's million creates are a million MACs over their JSON, and
        // the planning is otherwise one thread's work.
        let keyed = &keyed;
        let prints = plan.operations.map_parts(4096, |part| {
            let mut json = Vec::new();
            part.map(|op| fingerprint(keyed.clone(), &op, &mut json)).collect::<Vec<_>>()
        });
        plan.operations.set_fingerprints(prints.into_iter().flatten());
    }

    /// Approves operations of held or plan-only run `run_id` (and guards), for `valid_for`;
    /// `by` is who (a token's name, the local user). A school admin approves only operations of
    /// their school units. The daemon's next run carries them out.
    pub async fn approve_run(
        &self,
        run_id: i64,
        selection: &Selection,
        by: &str,
        viewer: &Viewer,
        now: DateTime<Utc>,
    ) -> Result<ApprovalSummary, EngineError> {
        let valid_for = self.config.schedule.approvals_expire_after.duration();
        let expires_at = now + chrono::Duration::from_std(valid_for).unwrap_or(chrono::Duration::days(1));
        for g in &selection.accept {
            if !GUARDS.contains(&g.as_str()) {
                // Echoed to whoever typed it: never a civic number pasted in the wrong field.
                return Err(ApproveRunError::UnknownGuard(connector_api::civic::mask_if_civic(g).into_owned()).into());
            }
        }
        if viewer.schools.is_some() && !selection.accept.is_empty() {
            // A guard protects the whole installation: not a school admin's to accept.
            return Err(ApproveRunError::NotAllowed.into());
        }
        let run = self.store.run_by_id(run_id).await?.ok_or(ApproveRunError::NoSuchRun(run_id))?;
        if !self.run_visible(&run, viewer).await? {
            // Another school's run is no run to a school admin: not its status, not that it is.
            return Err(ApproveRunError::NoSuchRun(run_id).into());
        }
        // An applied run carried out all but what waited for approval (changes to protected
        // persons, enables of accounts disabled outside enid): those may be approved.
        let applied = matches!(run.status.as_str(), "ok" | "failed" | "interrupted");
        // A run a guard stopped planned nothing: what is approved of it is the guard, for the
        // next run.
        let stopped = run.status == "stopped";
        if !applied && !stopped && !matches!(run.status.as_str(), "held" | "planned") {
            return Err(ApproveRunError::NotHeld { id: run_id, status: run.status }.into());
        }
        if stopped
            && (selection.accept.is_empty()
                || !selection.only.is_empty()
                || !selection.ops.is_empty()
                || selection.school.is_some())
        {
            return Err(ApproveRunError::StoppedByGuard(run_id).into());
        }
        let plan = if stopped {
            serde_json::Value::Null
        } else {
            let gone =
                if applied { ApproveRunError::NothingWaiting(run_id) } else { ApproveRunError::PlanGone(run_id) };
            let plan_id = run.plan_id.ok_or_else(|| gone.clone())?;
            let body = self.store.load_plan(&plan_id).await?.ok_or(gone)?;
            serde_json::from_str(&body).map_err(|_| ApproveRunError::PlanGone(run_id))?
        };
        let text = |o: &serde_json::Value, k: &str| o[k].as_str().unwrap_or_default().to_string();
        let flag = |o: &serde_json::Value, k: &str| o[k].as_bool().unwrap_or(false);
        let (mut rows, mut left_protected, mut left_disabled_outside) = (Vec::new(), 0, 0);
        let named: BTreeSet<&str> = selection.ops.iter().map(String::as_str).collect();
        for o in plan["operations"].as_array().into_iter().flatten() {
            let fingerprint = text(o, "fingerprint");
            let action = Action::saved_as_str(&text(o, "action")).to_string();
            let school = text(o, "school");
            let by_name = named.iter().any(|n| n.len() >= 8 && fingerprint.starts_with(n));
            let wanted = !fingerprint.is_empty()
                && (named.is_empty() || by_name)
                && (selection.only.is_empty() || selection.only.iter().any(|a| a.as_str() == action))
                && selection.school.as_deref().is_none_or(|s| school.split(',').any(|x| x == s))
                && viewer.schools.as_ref().is_none_or(|_| viewer.sees(&school));
            if !wanted || applied && !flag(o, "needs_approval") && !flag(o, "disabled_outside") {
                continue;
            }
            if flag(o, "needs_approval") && !selection.accept_protected {
                left_protected += 1;
                continue;
            }
            let enable_named = by_name || selection.only.contains(&Action::Enable);
            if flag(o, "disabled_outside") && !enable_named {
                left_disabled_outside += 1;
                continue;
            }
            rows.push(ApprovalRow {
                id: 0,
                run_id,
                fingerprint: Some(fingerprint),
                target: Some(text(o, "target")),
                identity: Some(text(o, "identity")).filter(|i| !i.is_empty()),
                action: Some(action),
                accept: None,
                approved_by: by.to_string(),
                approved_at: now,
                expires_at,
            });
        }
        let approved = rows.len();
        for g in &selection.accept {
            rows.push(ApprovalRow {
                id: 0,
                run_id,
                fingerprint: None,
                target: None,
                identity: None,
                action: None,
                accept: Some(g.clone()),
                approved_by: by.to_string(),
                approved_at: now,
                expires_at,
            });
        }
        if rows.is_empty() && applied && left_protected + left_disabled_outside == 0 {
            return Err(ApproveRunError::NothingWaiting(run_id).into());
        }
        if rows.is_empty() {
            let why = if left_protected + left_disabled_outside > 0 {
                format!(
                    "{left_protected} operations on protected persons (approve with --accept-protected) and \
                     {left_disabled_outside} enables of accounts disabled outside enid (approve with --only enable) \
                     were left out"
                )
            } else {
                "no operation matches".to_string()
            };
            return Err(ApproveRunError::Nothing { id: run_id, why }.into());
        }
        self.store.record_approvals(&rows).await?;
        tracing::info!(run = run_id, approved, by, "approved a run's operations");
        Ok(ApprovalSummary {
            run_id,
            approved,
            left_protected,
            left_disabled_outside,
            guards: selection.accept.clone(),
            expires_at,
        })
    }
}

/// `op`'s fingerprint under the keyed MAC `mac`: its target, identity, action, username and values.
/// The fingerprint of one operation; `json` is a buffer the caller keeps between calls (the
/// operation's JSON goes into the MAC in one piece, not token by token).
fn fingerprint(mut mac: Hmac<sha2::Sha256>, op: &PlannedOp, json: &mut Vec<u8>) -> connector_api::value::Str {
    for part in [op.target.as_str(), op.identity.as_str(), op.action.as_str(), op.username.as_str()] {
        mac.update(part.as_bytes());
        mac.update(&[0x1f]);
    }
    // Serialising a target operation cannot fail; the members a plan adds at apply count too.
    json.clear();
    let _ = serde_json::to_writer(&mut *json, &(&op.op, op.new_members()));
    mac.update(json);
    crate::core::id::hex(&mac.finalize().into_bytes()[..10])
}
