//! What a front end shows of a plan for a person to read: its shape first (how many operations
//! of each action on each target and school unit), then the operations a selection picks, a
//! page at a time. `enid plan` renders it; the HTTP API and the web page page through the same
//! view. It reads only the shown plan ([`Computed::shown_plan`]), so persons with protected
//! personal data are there by enid id only, without their school unit: a selection by school or
//! username never finds them, a selection by enid id does.

use super::Computed;
use crate::core::plan::{Action, Plan, PlannedOp};
use serde::Serialize;
use std::collections::BTreeMap;

/// How many operations of each action a listing shows unless everything is asked for.
pub const LISTED_PER_ACTION: usize = 20;

/// Which operations to list: the selection words of `enid apply` and `enid approve` (`only`,
/// `school`), and a target and a person. Empty, it selects every operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanSelection {
    /// Only these actions (empty: all).
    pub only: Vec<Action>,
    /// Only operations of this school unit.
    pub school: Option<String>,
    /// Only operations on this target.
    pub target: Option<String>,
    /// Only this person's operations: an enid id, or a username (not a protected person's).
    pub person: Option<String>,
}

impl PlanSelection {
    /// Whether nothing narrows the listing.
    pub fn is_empty(&self) -> bool {
        self.only.is_empty() && self.school.is_none() && self.target.is_none() && self.person.is_none()
    }

    /// Whether `op`, an operation of the shown plan, is selected.
    pub fn matches(&self, op: &PlannedOp) -> bool {
        (self.only.is_empty() || self.only.contains(&op.action))
            && self.school.as_deref().is_none_or(|s| op.school.split(',').any(|x| x == s))
            && self.target.as_deref().is_none_or(|t| op.target == t)
            && self.person.as_deref().is_none_or(|p| {
                op.identity == p
                    // A protected person's shown username is their enid id: found by that only.
                    || (!op.protected && op.username.eq_ignore_ascii_case(p))
            })
    }
}

/// How many operations of one action a plan holds on one target at one school unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapeRow {
    pub target: String,
    /// The school unit (several joined by commas, as the operation gives them); empty for an
    /// operation without one (a group, a protected person).
    pub school: String,
    pub action: &'static str,
    pub count: usize,
}

/// The operations of one action that a selection picked, the first `listed` of them.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub action: &'static str,
    /// How many the selection picked.
    pub selected: usize,
    /// The first ones, in plan order.
    pub operations: Vec<PlannedOp>,
}

impl Listing {
    /// How many are left out of [`Listing::operations`].
    pub fn more(&self) -> usize {
        self.selected - self.operations.len()
    }
}

/// A plan as a person reads it: the shape of the whole plan and a capped listing of a selection.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub plan_id: String,
    /// Operations in the whole plan.
    pub total: usize,
    /// Operations the selection picked.
    pub selected: usize,
    /// The whole plan by target, school unit and action, sorted so.
    pub shape: Vec<ShapeRow>,
    /// The selected operations, by action in the order the plan's text lists them.
    pub listings: Vec<Listing>,
}

/// The order actions are listed in.
pub const ACTION_ORDER: [Action; 12] = [
    Action::Create,
    Action::Claim,
    Action::Rename,
    Action::Move,
    Action::Update,
    Action::Enable,
    Action::Disable,
    Action::Delete,
    Action::CreateGroup,
    Action::AddMembers,
    Action::RemoveMembers,
    Action::DeleteGroup,
];

impl Computed {
    /// The plan as a person reads it: its shape and the operations `selection` picks, at most
    /// `per_action` of each action (`None`: all of them).
    pub fn plan_view(&self, selection: &PlanSelection, per_action: Option<usize>) -> PlanView {
        view(&self.shown_plan(), selection, per_action)
    }
}

/// [`Computed::plan_view`] of a plan already shown (redacted).
pub fn view(plan: &Plan, selection: &PlanSelection, per_action: Option<usize>) -> PlanView {
    let mut shape: BTreeMap<(&str, &str, usize), usize> = BTreeMap::new();
    let rank = |a: Action| ACTION_ORDER.iter().position(|x| *x == a).unwrap_or(ACTION_ORDER.len());
    for op in &plan.operations {
        *shape.entry((op.target.as_str(), op.school.as_str(), rank(op.action))).or_default() += 1;
    }
    let shape = shape
        .into_iter()
        .map(|((target, school, rank), count)| ShapeRow {
            target: target.to_string(),
            school: school.to_string(),
            action: ACTION_ORDER.get(rank).map_or("other", |a| a.as_str()),
            count,
        })
        .collect();
    let mut listings = Vec::new();
    let mut selected = 0;
    for action in ACTION_ORDER {
        let mut listing = Listing { action: action.as_str(), selected: 0, operations: Vec::new() };
        for op in plan.operations.iter().filter(|o| o.action == action && selection.matches(o)) {
            listing.selected += 1;
            if per_action.is_none_or(|n| listing.operations.len() < n) {
                listing.operations.push(op.clone());
            }
        }
        if listing.selected > 0 {
            selected += listing.selected;
            listings.push(listing);
        }
    }
    PlanView { plan_id: plan.plan_id.clone(), total: plan.operations.len(), selected, shape, listings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_api::TargetOp;

    fn op(action: Action, target: &str, username: &str, school: &str, protected: bool) -> PlannedOp {
        PlannedOp {
            action,
            target: target.into(),
            identity: format!("id-{username}"),
            username: username.into(),
            school: school.into(),
            reason: String::new(),
            op: TargetOp::Disable { key: username.into() },
            new_members: Vec::new(),
            leaving: Vec::new(),
            before: None,
            protected,
            needs_approval: false,
            disabled_outside: false,
            renames_entry: false,
            fingerprint: String::new(),
        }
    }

    fn plan(ops: Vec<PlannedOp>) -> Plan {
        let mut p = crate::core::plan::assemble(
            chrono::Utc::now(),
            Vec::new(),
            Default::default(),
            Vec::new(),
            Vec::new(),
            (Vec::new(), Vec::new()),
        );
        p.operations = ops;
        p
    }

    #[test]
    fn the_shape_counts_every_operation_and_the_listing_stops_at_the_cap() {
        let mut ops: Vec<PlannedOp> = (0..45)
            .map(|i| op(Action::Create, "ldap", &format!("u{i}"), if i < 30 { "S1" } else { "S2" }, false))
            .collect();
        ops.push(op(Action::Disable, "ldap", "gone", "S2", false));
        ops.push(op(Action::Disable, "scim", "gone", "S2", false));
        let v = view(&plan(ops), &PlanSelection::default(), Some(LISTED_PER_ACTION));
        assert_eq!((v.total, v.selected), (47, 47));
        let shape: Vec<(&str, &str, &str, usize)> =
            v.shape.iter().map(|r| (r.target.as_str(), r.school.as_str(), r.action, r.count)).collect();
        assert_eq!(
            shape,
            [
                ("ldap", "S1", "create", 30),
                ("ldap", "S2", "create", 15),
                ("ldap", "S2", "disable", 1),
                ("scim", "S2", "disable", 1)
            ]
        );
        assert_eq!(v.listings.len(), 2);
        assert_eq!((v.listings[0].selected, v.listings[0].operations.len(), v.listings[0].more()), (45, 20, 25));
        assert_eq!(v.listings[0].operations[0].username, "u0", "in plan order");
        assert_eq!(view(&plan(v.listings[0].operations.clone()), &PlanSelection::default(), None).selected, 20);
    }

    #[test]
    fn a_selection_narrows_the_listing_not_the_shape() {
        let ops = vec![
            op(Action::Create, "ldap", "anna", "S1", false),
            op(Action::Create, "ldap", "bo", "S2,S3", false),
            op(Action::Disable, "scim", "anna", "S1", false),
            op(Action::Update, "ldap", "uuid-1", "", true),
        ];
        let p = plan(ops);
        let names = |s: &PlanSelection| -> Vec<(String, String)> {
            view(&p, s, None)
                .listings
                .iter()
                .flat_map(|l| l.operations.iter().map(|o| (o.action.as_str().to_string(), o.username.clone())))
                .collect()
        };
        let s3 = PlanSelection { school: Some("S3".into()), ..Default::default() };
        assert_eq!(names(&s3), [("create".to_string(), "bo".to_string())], "one of several school units");
        let anna = PlanSelection { person: Some("ANNA".into()), ..Default::default() };
        assert_eq!(names(&anna).len(), 2, "by username, any case, on every target");
        let scim = PlanSelection { target: Some("scim".into()), only: vec![Action::Disable], ..Default::default() };
        assert_eq!(names(&scim), [("disable".to_string(), "anna".to_string())]);
        // A protected person (shown with their enid id as username): by enid id only.
        let mut p = p;
        p.operations[3].identity = "uuid-1".into();
        let by_id = PlanSelection { person: Some("uuid-1".into()), ..Default::default() };
        assert_eq!(view(&p, &by_id, None).selected, 1, "the enid id finds them");
        p.operations[3].username = "kim.lind".into();
        let by_name = PlanSelection { person: Some("kim.lind".into()), ..Default::default() };
        assert_eq!(view(&p, &by_name, None).selected, 0, "a protected person's username is never matched");
        assert_eq!(view(&p, &anna, None).shape.len(), 4, "the shape is the whole plan's");
    }
}
