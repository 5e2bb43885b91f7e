//! The approval rules of an apply, in one place for every front end (the CLI now, the daemon
//! and the HTTP API later): a saved plan is applied only while the inputs still give exactly
//! it; a plan over a threshold is held unless accepted; changes to persons with protected
//! personal data wait unless accepted; a partial selection (`--only`, `--school`) keeps a
//! person's operations together with the rename they depend on. A plan that holds something is
//! saved, so the command that accepts it works as given.
//!
//! Only confirmation (a question on a terminal) stays with the front end.

use super::{Computed, Engine, EngineError};
use crate::core::plan::{Action, Plan, PlannedOp};
use crate::store::StateStore;
use chrono::{DateTime, Utc};
use connector_api::civic::mask_if_civic;
use std::collections::BTreeSet;

/// What an operator asked to apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyRequest {
    /// Apply exactly this saved plan; `None`: the plan computed now.
    pub plan_id: Option<String>,
    /// Apply a plan that goes over a threshold.
    pub accept_threshold: bool,
    /// Apply the changes to persons with protected personal data too.
    pub accept_protected: bool,
    /// Only operations of these actions (empty: all).
    pub only: Vec<Action>,
    /// Only operations of this school unit.
    pub school: Option<String>,
}

/// What [`Engine::approve`] left in the plan, for the front end to say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approved {
    /// The number of operations before a partial selection, when one was made.
    pub selected_from: Option<usize>,
    /// Changes to persons with protected personal data left for `--accept-protected`.
    pub waiting_protected: usize,
    /// The plan was saved because it holds something.
    pub saved: bool,
}

/// Why an apply does not go ahead. Each says what the operator does next.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The saved plan does not exist: save one first.
    #[error("no saved plan {id}; make one with `enid plan --save`")]
    NoSavedPlan { id: String },
    /// The inputs changed since the plan was saved: review the new one.
    #[error(
        "plan {id} no longer matches the inputs, which now give plan {now}: {difference}; review it with `enid plan`"
    )]
    Mismatch { id: String, now: String, difference: String },
    /// A threshold holds the plan: review, then accept it by id.
    #[error(
        "plan {id} is held, nothing was applied: {hits}. The plan is saved: review it with `enid plan`, then apply \
         exactly it with `enid apply --plan {id} --accept-threshold`"
    )]
    Held { id: String, hits: String },
}

/// The actions a `--only` word selects: an action's name, or `groups` for every group action.
pub fn actions_named(word: &str) -> Option<&'static [Action]> {
    Some(match word.trim() {
        "create" => &[Action::Create],
        "rename" => &[Action::Rename],
        "update" => &[Action::Update],
        "enable" => &[Action::Enable],
        "disable" => &[Action::Disable],
        "delete" => &[Action::Delete],
        "groups" => &[Action::CreateGroup, Action::AddMembers, Action::RemoveMembers, Action::DeleteGroup],
        _ => return None,
    })
}

impl Engine {
    /// Errors unless `id` is a saved plan that the current inputs give exactly.
    pub async fn check_saved(&self, computed: &Computed, id: &str) -> Result<(), EngineError> {
        let saved = self
            .store
            .load_plan(id)
            .await?
            .ok_or_else(|| ApprovalError::NoSavedPlan { id: mask_if_civic(id).into() })?;
        if computed.plan.plan_id != id {
            return Err(ApprovalError::Mismatch {
                id: mask_if_civic(id).into(),
                now: computed.plan.plan_id.clone(),
                difference: plan_difference(&saved, &computed.shown_plan()),
            }
            .into());
        }
        Ok(())
    }

    /// Decides what of `computed` an apply carries out under `request`, and trims the plan to
    /// it. Errors when nothing may be applied. Saves a plan that holds something.
    pub async fn approve(
        &self,
        computed: &mut Computed,
        request: &ApplyRequest,
        now: DateTime<Utc>,
    ) -> Result<Approved, EngineError> {
        if let Some(id) = &request.plan_id {
            self.check_saved(computed, id).await?;
        }
        let mut approved = Approved::default();
        let waiting = waiting_protected(&computed.plan);
        let holds =
            !computed.plan.held.is_empty() && !request.accept_threshold || waiting > 0 && !request.accept_protected;
        if holds && request.plan_id.is_none() {
            let body = serde_json::to_string(&computed.shown_plan()).map_err(|e| {
                EngineError::Store(crate::store::StoreError {
                    path: self.store.path().to_string(),
                    message: format!("saving the plan: {e}"),
                })
            })?;
            self.store.save_plan(&computed.plan.plan_id, &body, now).await?;
            approved.saved = true;
        }
        if !request.only.is_empty() || request.school.is_some() {
            approved.selected_from = Some(computed.plan.operations.len());
            select(&mut computed.plan, &request.only, request.school.as_deref());
            // Only the thresholds of what is applied still hold it.
            let ops = &computed.plan.operations;
            computed.plan.held.retain(|h| ops.iter().any(|o| o.target == h.target && o.action == h.action));
        }
        if !computed.plan.held.is_empty() && !request.accept_threshold {
            let hits = computed.plan.held.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("; ");
            return Err(ApprovalError::Held { id: computed.plan.plan_id.clone(), hits }.into());
        }
        let waiting = waiting_protected(&computed.plan);
        if waiting > 0 && !request.accept_protected {
            // Their renames wait too: the state keeps the old username until the target has
            // the new one.
            let held: BTreeSet<String> =
                computed.plan.operations.iter().filter(|o| o.needs_approval).map(|o| o.identity.clone()).collect();
            computed.plan.operations.retain(|o| !o.needs_approval);
            computed.plan.renames.retain(|r| !held.contains(&r.identity));
            computed.plan.unprotect.clear();
            approved.waiting_protected = waiting;
        }
        Ok(approved)
    }
}

/// Changes waiting for `--accept-protected`: operations on protected persons and releases of
/// protection.
fn waiting_protected(plan: &Plan) -> usize {
    plan.operations.iter().filter(|o| o.needs_approval).count() + plan.unprotect.len()
}

/// Keeps only the operations of the given actions and school. A rename left out keeps the old
/// username in the state, and the person's other operations on that target, which address the
/// renamed account, wait with it.
fn select(plan: &mut Plan, actions: &[Action], school: Option<&str>) {
    let keep = |o: &PlannedOp| {
        (actions.is_empty() || actions.contains(&o.action))
            && school.is_none_or(|s| o.school.split(',').any(|x| x == s))
    };
    let left_out: BTreeSet<(String, String)> = plan
        .operations
        .iter()
        .filter(|o| o.action == Action::Rename && !keep(o))
        .map(|o| (o.target.clone(), o.identity.clone()))
        .collect();
    plan.operations.retain(|o| keep(o) && !left_out.contains(&(o.target.clone(), o.identity.clone())));
    plan.renames.retain(|r| !left_out.iter().any(|(_, i)| i == &r.identity));
}

/// A short account of how a saved plan (as shown) differs from the current one (as shown).
fn plan_difference(saved_json: &str, current: &Plan) -> String {
    let Ok(saved) = serde_json::from_str::<serde_json::Value>(saved_json) else {
        return "the saved plan cannot be read".into();
    };
    let key = |o: &serde_json::Value| {
        format!(
            "{} {} {}",
            o["action"].as_str().unwrap_or(""),
            o["target"].as_str().unwrap_or(""),
            o["username"].as_str().unwrap_or("")
        )
    };
    let old: BTreeSet<String> = saved["operations"].as_array().map(|a| a.iter().map(key).collect()).unwrap_or_default();
    let cur: BTreeSet<String> =
        current.operations.iter().map(|o| format!("{} {} {}", o.action.as_str(), o.target, o.username)).collect();
    let added: Vec<&String> = cur.difference(&old).collect();
    let gone: Vec<&String> = old.difference(&cur).collect();
    let sample = |v: &[&String]| v.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    if added.is_empty() && gone.is_empty() {
        "the same operations, but with different details (attribute values or new identities)".into()
    } else {
        format!(
            "{} operations are new ({}) and {} are no longer needed ({})",
            added.len(),
            sample(&added),
            gone.len(),
            sample(&gone)
        )
    }
}
