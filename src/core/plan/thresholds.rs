//! Thresholds: how much change one target's part of a plan may make before it is held for
//! review. Pure.

use super::*;

/// A threshold a plan goes over.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdHit {
    pub target: String,
    pub action: Action,
    /// Operations of this action in the plan.
    pub count: usize,
    /// Accounts enid owns on the target.
    pub owned: usize,
    /// The most allowed.
    pub limit: usize,
    /// The configured share and floor the limit came from.
    pub percent: f64,
    pub min: usize,
    /// Of `count`, the operations the incremental runs since the last full run carried out
    /// (weighed with this plan's, as if they had come at once).
    #[serde(skip_serializing_if = "is_zero")]
    pub earlier: usize,
}

impl std::fmt::Display for ThresholdHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let share = if self.owned > 0 { 100.0 * self.count as f64 / self.owned as f64 } else { 100.0 };
        let of = match self.action {
            Action::DeleteGroup => "owned groups",
            Action::RemoveMembers => "members of owned groups",
            Action::Claim => "accounts in scope",
            _ => "owned accounts",
        };
        let base = if self.action == Action::Claim { "in scope" } else { "of owned" };
        write!(
            f,
            "target \"{}\": {} {} of {} {of} ({share:.1}%), over the limit of {} ({}% {base}, at least {}) by {}",
            self.target,
            self.count,
            self.action.as_str(),
            self.owned,
            self.limit,
            self.percent,
            self.min,
            self.count - self.limit
        )?;
        if self.earlier > 0 {
            write!(f, " ({} of them carried out since the last full run)", self.earlier)?;
        }
        Ok(())
    }
}

/// The thresholds one target's part of a plan goes over. Pure.
///
/// `owned` is the number of accounts enid owns on the target (active or disabled); creates that
/// only retry a pending ownership row are expected to be left out of `summary` by the caller.
/// `in_scope` is how many accounts the target shows in its scope (`TargetPlan::in_scope`): the
/// first run (nothing owned) may create everyone only on a target that holds no accounts at
/// all. Claims weigh against `in_scope`: they are decisions about accounts enid does not own.
pub fn check_thresholds(
    target: &str,
    summary: &Summary,
    owned: usize,
    in_scope: usize,
    t: &crate::core::policy::Thresholds,
) -> Vec<ThresholdHit> {
    let mut hits = Vec::new();
    let mut check = |action: Action, count: usize, percent: f64, min: usize| {
        let limit = crate::core::policy::Thresholds::limit(percent, min, owned);
        if count > limit {
            hits.push(ThresholdHit { target: target.into(), action, count, owned, limit, percent, min, earlier: 0 });
        }
    };
    // In plan order. The first run against an empty state on an empty target creates everyone:
    // that is what it is for. A target that holds accounts (enid's ids, or accounts made before
    // enid that the plan would stand beside) is not new, whatever the state database says.
    if owned > 0 || in_scope > 0 {
        check(Action::Create, summary.create, t.create_percent, t.create_min);
    }
    let limit = crate::core::policy::Thresholds::limit(t.claim_percent, t.claim_min, in_scope);
    let mut claim_hit = None;
    if summary.claim > limit {
        claim_hit = Some(ThresholdHit {
            target: target.into(),
            action: Action::Claim,
            count: summary.claim,
            owned: in_scope,
            limit,
            percent: t.claim_percent,
            min: t.claim_min,
            earlier: 0,
        });
    }
    check(Action::Rename, summary.rename, t.rename_percent, t.rename_min);
    // A mover between placements is an update of where the account lives.
    check(Action::Update, summary.update + summary.r#move, t.update_percent, t.update_min);
    check(Action::Enable, summary.enable, t.enable_percent, t.enable_min);
    check(Action::Disable, summary.disable, t.disable_percent, t.disable_min);
    check(Action::Delete, summary.delete, t.delete_percent, t.delete_min);
    claim_hit.into_iter().chain(hits).collect()
}

/// The group thresholds one target's part of a plan goes over: deletes of owned groups, against
/// the groups enid owns there, and members removed from them, against the members they hold.
/// Pure.
pub fn check_group_thresholds(
    target: &str,
    groups: &GroupSummary,
    owned_groups: usize,
    owned_members: usize,
    t: &crate::core::policy::Thresholds,
) -> Vec<ThresholdHit> {
    let mut hits = Vec::new();
    for (action, count, owned, percent, min) in [
        (Action::DeleteGroup, groups.delete, owned_groups, t.group_delete_percent, t.group_delete_min),
        (Action::RemoveMembers, groups.members_removed, owned_members, t.member_remove_percent, t.member_remove_min),
    ] {
        let limit = crate::core::policy::Thresholds::limit(percent, min, owned);
        if count > limit {
            hits.push(ThresholdHit { target: target.into(), action, count, owned, limit, percent, min, earlier: 0 });
        }
    }
    hits
}
