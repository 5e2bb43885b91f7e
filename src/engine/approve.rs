//! The approval rules of an apply, in one place for every front end (the CLI now, the daemon
//! and the HTTP API later): a saved plan is applied only while the inputs still give exactly
//! it; a plan over a threshold is held unless accepted; changes to persons with protected
//! personal data wait unless accepted; a partial selection (`--only`, `--school`) keeps a
//! person's operations together with the rename they depend on. A plan that holds something is
//! saved, so the command that accepts it works as given.
//!
//! Only confirmation (a question on a terminal) stays with the front end.

use super::apply::is_group_action;
use super::{Computed, Engine, EngineError};
use crate::core::model::IdentityId;
use crate::core::plan::{Action, OpHead, Ops, Plan, PlannedOp};
use crate::store::StateStore;
use chrono::{DateTime, Utc};
use connector_api::TargetOp;
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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Approved {
    /// The number of operations before a partial selection, when one was made.
    pub selected_from: Option<usize>,
    /// Changes to persons with protected personal data left for `--accept-protected`.
    pub waiting_protected: usize,
    /// The plan was saved because it holds something.
    pub saved: bool,
    /// Thresholds that hold the plan (none accepted): nothing of it may be applied.
    pub held: Vec<crate::core::plan::ThresholdHit>,
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
/// The words [`actions_named`] knows, for a message about one it does not.
const ACTION_WORDS: &str = "create, claim, rename, move, update, enable, disable, delete or groups";

/// The actions `words` name ([`actions_named`]). An unknown word is the error, quoted and
/// masked when it has a civic number's shape (the message goes back to whoever typed it: a
/// terminal, a page, an API answer), followed by the words there are.
pub fn actions_of_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Vec<Action>, String> {
    let mut actions = Vec::new();
    for word in words {
        let named = actions_named(word)
            .ok_or_else(|| format!("{:?}: use {ACTION_WORDS}", connector_api::civic::mask_if_civic(word)))?;
        actions.extend_from_slice(named);
    }
    Ok(actions)
}

pub fn actions_named(word: &str) -> Option<&'static [Action]> {
    Some(match word.trim() {
        "create" => &[Action::Create],
        "claim" => &[Action::Claim],
        "rename" => &[Action::Rename],
        "move" => &[Action::Move],
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
    /// it. A plan held by a threshold comes back with [`Approved::held`] (nothing of it may be
    /// applied); errors when the request cannot be right (no such saved plan, the inputs moved).
    /// Saves a plan that holds something.
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
        // An account someone else disabled is enabled only when the operator names enables.
        if !request.only.contains(&Action::Enable) {
            computed.plan.operations.retain_heads(|o| !o.disabled_outside);
        }
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
            let all = computed.plan.operations.rest().to_vec();
            select(&mut computed.plan, &request.only, request.school.as_deref());
            follow_accounts(&all, &mut computed.plan.operations);
            // Only the thresholds of what is applied still hold it.
            let ops = &computed.plan.operations;
            computed.plan.held.retain(|h| ops.heads().any(|o| o.target == h.target && o.action == h.action));
        }
        if !computed.plan.held.is_empty() && !request.accept_threshold {
            approved.held = computed.plan.held.clone();
            return Ok(approved);
        }
        let waiting = waiting_protected(&computed.plan);
        if waiting > 0 && !request.accept_protected {
            // Their renames wait too: the state keeps the old username until the target has
            // the new one.
            let held: BTreeSet<IdentityId> =
                computed.plan.operations.heads().filter(|o| o.needs_approval).map(|o| o.identity.clone()).collect();
            let all = computed.plan.operations.rest().to_vec();
            computed.plan.operations.retain_heads(|o| !o.needs_approval);
            follow_accounts(&all, &mut computed.plan.operations);
            computed.plan.renames.retain(|r| !held.contains(&r.identity));
            computed.plan.unprotect.clear();
            approved.waiting_protected = waiting;
        }
        Ok(approved)
    }
}

/// Changes waiting for `--accept-protected`: operations on protected persons and releases of
/// protection.
pub(super) fn waiting_protected(plan: &Plan) -> usize {
    plan.operations.heads().filter(|o| o.needs_approval).count() + plan.unprotect.len()
}

/// Keeps only the operations of the given actions and school. A rename left out keeps the old
/// username in the state, and the person's other operations on that target, which address the
/// renamed account, wait with it.
fn select(plan: &mut Plan, actions: &[Action], school: Option<&str>) {
    select_by(plan, |o: &PlannedOp| {
        (actions.is_empty() || actions.contains(&o.action))
            && school.is_none_or(|s| o.school.split(',').any(|x| x == s))
    });
}

/// Keeps only the operations `keep` takes, and what they need (see [`select`]): the group
/// changes follow what is applied of the accounts.
pub(super) fn keep_only(plan: &mut Plan, keep: impl Fn(&PlannedOp) -> bool) {
    let all = plan.operations.rest().to_vec();
    select_by(plan, keep);
    follow_accounts(&all, &mut plan.operations);
}

fn select_by(plan: &mut Plan, keep: impl Fn(&PlannedOp) -> bool) {
    // A claim left out leaves the account someone else's: nothing else is done to it.
    let left_out: BTreeSet<(connector_api::value::Str, IdentityId)> = plan
        .operations
        .rest()
        .iter()
        .filter(|o| matches!(o.action, Action::Rename | Action::Claim) && !keep(o))
        .map(|o| (o.target.clone(), o.identity.clone()))
        .collect();
    plan.operations.retain(|o| keep(o) && !left_out.contains(&(o.target.clone(), o.identity.clone())));
    plan.renames.retain(|r| !left_out.iter().any(|(_, i)| i == &r.identity));
}

/// Keeps group memberships in step with what is applied of the accounts, when only part of a
/// plan goes ahead. A member whose rename or move waits keeps the value it has (its removal is
/// taken out of the group changes that go ahead, and it is not added under a value it does not
/// have yet); a member whose rename or move goes ahead while the group changes wait gets its
/// own member change with it (the old value out, the new one in), so no group is left holding a
/// value that no longer names the account. `all` is the plan's operations before the selection
/// but the creates (`Ops::rest`: no group operation is a create).
fn follow_accounts(all: &[PlannedOp], kept: &mut Ops) {
    // An update that renames the entry (AD's display name) changes the key as a rename does.
    let moves = |o: &OpHead<'_>| {
        matches!(o.action, Action::Create | Action::Rename | Action::Move | Action::Enable)
            || o.action == Action::Update && o.renames_entry
    };
    let applied: BTreeSet<(String, IdentityId)> =
        kept.heads().filter(|o| moves(o)).map(|o| (o.target.to_string(), o.identity.clone())).collect();
    let kept = kept.rest_mut();
    let is_applied = |target: &str, id: &str| applied.contains(&(target.to_string(), id.into()));
    // The group changes that go ahead: without the members whose accounts stay as they are.
    for op in kept.iter_mut().filter(|o| is_group_action(o.action)) {
        let target = op.target.clone();
        let extra = op.extra.get_mut();
        extra.new_members.retain(|i| is_applied(&target, i));
        let waiting: Vec<String> =
            extra.leaving.iter().filter(|(i, _)| !is_applied(&target, i)).map(|(_, v)| v.clone()).collect();
        extra.leaving.retain(|(i, _)| is_applied(&target, i));
        if let TargetOp::RemoveMembers { members, .. } = &mut op.op {
            members.retain(|m| !waiting.contains(m));
        }
    }
    kept.retain(|o| match &o.op {
        TargetOp::AddMembers { members, .. } => !members.is_empty() || !o.new_members().is_empty(),
        TargetOp::RemoveMembers { members, .. } => !members.is_empty(),
        _ => true,
    });
    // The group changes that wait: the parts that belong with an account change that goes ahead.
    let same = |a: &PlannedOp, b: &PlannedOp| a.action == b.action && a.target == b.target && a.op.key() == b.op.key();
    let mut extra = Vec::new();
    for op in all.iter().filter(|o| is_group_action(o.action) && !kept.iter().any(|k| same(k, o))) {
        match &op.op {
            TargetOp::AddMembers { key, .. } => {
                let ids: Vec<IdentityId> =
                    op.new_members().iter().filter(|i| is_applied(&op.target, i)).cloned().collect();
                if !ids.is_empty() {
                    let mut part = op.clone();
                    part.op = TargetOp::AddMembers { key: key.clone(), members: Vec::new() };
                    part.reason = format!("{} members whose accounts change now", ids.len()).into();
                    part.extra.get_mut().new_members = ids;
                    extra.push(part);
                }
            }
            TargetOp::RemoveMembers { key, .. } => {
                let leaving: Vec<(IdentityId, String)> =
                    op.leaving().iter().filter(|(i, _)| is_applied(&op.target, i)).cloned().collect();
                if !leaving.is_empty() {
                    let mut part = op.clone();
                    part.op = TargetOp::RemoveMembers {
                        key: key.clone(),
                        members: leaving.iter().map(|(_, v)| v.clone()).collect(),
                    };
                    part.reason = format!("{} old member values of accounts that change now", leaving.len()).into();
                    part.extra.get_mut().leaving = leaving;
                    extra.push(part);
                }
            }
            _ => {}
        }
    }
    kept.extend(extra);
    crate::core::plan::sort_operations(kept);
}

/// A short account of how a saved plan (as shown) differs from the current one (as shown).
fn plan_difference(saved_json: &str, current: &Plan) -> String {
    let Ok(saved) = serde_json::from_str::<serde_json::Value>(saved_json) else {
        return "the saved plan cannot be read".into();
    };
    let key = |o: &serde_json::Value| {
        format!(
            "{} {} {}",
            Action::saved_as_str(o["action"].as_str().unwrap_or("")),
            o["target"].as_str().unwrap_or(""),
            o["username"].as_str().unwrap_or("")
        )
    };
    let old: BTreeSet<String> = saved["operations"].as_array().map(|a| a.iter().map(key).collect()).unwrap_or_default();
    let cur: BTreeSet<String> =
        current.operations.heads().map(|o| format!("{} {} {}", o.action.as_str(), o.target, o.username)).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn op(action: Action, identity: &str, op: TargetOp) -> PlannedOp {
        PlannedOp::for_test(action, "ad", identity, op)
    }

    /// An AD display-name change renames the entry: the account's new member value is known
    /// only when the update is done. Approved with the group change that adds the account, the
    /// add keeps the account (named by the key the update reports); approved without it, the
    /// group change waits for the account.
    #[test]
    fn a_partial_approval_follows_an_update_that_renames_the_entry() {
        let mut update =
            op(Action::Update, "id-1", TargetOp::Update { key: "CN=Old,OU=S1".into(), changes: Vec::new() });
        update.renames_entry = true;
        let mut add = op(Action::AddMembers, "", TargetOp::AddMembers { key: "CN=7A".into(), members: Vec::new() });
        add.extra.get_mut().new_members = vec!["id-1".into()];
        let plan_of = |ops: Vec<PlannedOp>| {
            let mut p = crate::core::plan::assemble(
                chrono::Utc::now(),
                Vec::new(),
                Default::default(),
                Vec::new(),
                Vec::new(),
                (Vec::new(), Vec::new()),
            );
            p.operations = ops.into();
            p
        };
        let mut both = plan_of(vec![update.clone(), add.clone()]);
        keep_only(&mut both, |_| true);
        let kept = both.operations.iter().find(|o| o.action == Action::AddMembers).expect("the add goes ahead");
        assert_eq!(kept.new_members(), vec!["id-1".to_string()], "the renamed account is added by its new key");

        // The update goes ahead, the group change waits: the account's part of it comes along.
        let mut update_only = plan_of(vec![update.clone(), add.clone()]);
        keep_only(&mut update_only, |o| o.action == Action::Update);
        let part = update_only.operations.iter().find(|o| o.action == Action::AddMembers);
        assert_eq!(part.map(|o| o.new_members().to_vec()), Some(vec![IdentityId::from("id-1")]), "{update_only:?}");

        // The group change goes ahead, the update waits: the account is not added yet.
        let mut add_only = plan_of(vec![update, add]);
        keep_only(&mut add_only, |o| o.action == Action::AddMembers);
        assert!(add_only.operations.is_empty(), "{add_only:?}");
    }
}
