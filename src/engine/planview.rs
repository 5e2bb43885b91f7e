//! What a front end shows of a plan for a person to read: its shape first (how many operations
//! of each action on each target and school unit), then the operations a selection picks, a
//! page at a time. `enid plan` renders it; the HTTP API and the web page page through the same
//! view. It reads only the shown plan ([`Computed::shown_plan`]), so persons with protected
//! personal data are there by enid id only, without their school unit: a selection by school or
//! username never finds them, a selection by enid id does.

use super::Computed;
use crate::core::plan::{Action, OpHead, Plan, PlannedOp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

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
    /// A selection from the words a URL or a form gives: `only` as comma-separated action
    /// words (`create`, …, `groups`), the others as given (empty: not narrowed). Errors with
    /// the word no action has, masked when it has a civic number's shape (the message goes
    /// back to whoever typed it, in a page or an API answer); refuses a civic number in any
    /// field.
    pub fn from_words(
        only: Option<&str>,
        school: Option<&str>,
        target: Option<&str>,
        person: Option<&str>,
    ) -> Result<PlanSelection, String> {
        // A civic number selects nothing (operations carry none) and is never echoed back in the
        // form or the message: one pasted in by mistake is refused. An enid id is none, whatever
        // its hex digits spell.
        for v in [only, school, target, person].into_iter().flatten().map(str::trim) {
            if !crate::core::model::is_enid_id(v) && connector_api::civic::contains_civic(v) {
                return Err("a civic number selects nothing in a plan: use action words, a school unit, a target's \
                            id, a username or an enid id"
                    .into());
            }
        }
        let given = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let words = only.unwrap_or_default().split(',').map(str::trim).filter(|w| !w.is_empty());
        let actions = super::actions_of_words(words).map_err(|e| format!("unknown action {e}"))?;
        Ok(PlanSelection { only: actions, school: given(school), target: given(target), person: given(person) })
    }

    /// Whether nothing narrows the listing.
    pub fn is_empty(&self) -> bool {
        self.only.is_empty() && self.school.is_none() && self.target.is_none() && self.person.is_none()
    }

    /// Whether `op`, an operation of the shown plan, is selected.
    pub fn matches<O: OpFacts>(&self, op: &O) -> bool {
        (self.only.is_empty() || self.only.iter().any(|a| a.as_str() == op.action()))
            && self.school.as_deref().is_none_or(|s| op.school().split(',').any(|x| x == s))
            && self.target.as_deref().is_none_or(|t| op.target() == t)
            && self.person.as_deref().is_none_or(|p| {
                op.identity() == p
                    // A protected person's shown username is their enid id: found by that only.
                    || (!op.protected() && op.username().eq_ignore_ascii_case(p))
            })
    }
}

/// An operation as a view reads it: a planned one ([`PlannedOp`]), or one of a saved plan as
/// the state keeps it (JSON), which the API and the web page page through.
pub trait ViewedOp: OpFacts + Clone + Serialize {
    fn reason(&self) -> &str;
    /// What approves this very operation (`enid approve --op`).
    fn fingerprint(&self) -> &str;
}

/// What a selection and a plan's shape read of an operation: a whole one ([`ViewedOp`]), or a
/// plan's read in place ([`OpHead`]).
pub trait OpFacts {
    fn action(&self) -> &str;
    fn target(&self) -> &str;
    /// School units, comma-separated; empty for none (a group, a protected person).
    fn school(&self) -> &str;
    fn identity(&self) -> &str;
    /// The login, or a protected person's enid id.
    fn username(&self) -> &str;
    fn protected(&self) -> bool;
}

impl<T: OpFacts> OpFacts for &T {
    fn action(&self) -> &str {
        (**self).action()
    }
    fn target(&self) -> &str {
        (**self).target()
    }
    fn school(&self) -> &str {
        (**self).school()
    }
    fn identity(&self) -> &str {
        (**self).identity()
    }
    fn username(&self) -> &str {
        (**self).username()
    }
    fn protected(&self) -> bool {
        (**self).protected()
    }
}

impl OpFacts for OpHead<'_> {
    fn action(&self) -> &str {
        self.action.as_str()
    }
    fn target(&self) -> &str {
        self.target
    }
    fn school(&self) -> &str {
        self.school
    }
    fn identity(&self) -> &str {
        self.identity
    }
    fn username(&self) -> &str {
        self.username
    }
    fn protected(&self) -> bool {
        self.protected
    }
}

impl OpFacts for PlannedOp {
    fn action(&self) -> &str {
        self.action.as_str()
    }
    fn target(&self) -> &str {
        &self.target
    }
    fn school(&self) -> &str {
        &self.school
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn username(&self) -> &str {
        &self.username
    }
    fn protected(&self) -> bool {
        self.protected
    }
}

impl ViewedOp for PlannedOp {
    fn reason(&self) -> &str {
        &self.reason
    }
    fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl OpFacts for serde_json::Value {
    /// As [`Action::as_str`] names it: a saved plan holds `create_group` where a plan's
    /// operation says `create group` (its group operations were listed under none).
    fn action(&self) -> &str {
        Action::saved_as_str(self["action"].as_str().unwrap_or_default())
    }
    fn target(&self) -> &str {
        self["target"].as_str().unwrap_or_default()
    }
    fn school(&self) -> &str {
        self["school"].as_str().unwrap_or_default()
    }
    fn identity(&self) -> &str {
        self["identity"].as_str().unwrap_or_default()
    }
    fn username(&self) -> &str {
        self["username"].as_str().unwrap_or_default()
    }
    fn protected(&self) -> bool {
        self["protected"].as_bool().unwrap_or(false)
    }
}

impl ViewedOp for serde_json::Value {
    fn reason(&self) -> &str {
        self["reason"].as_str().unwrap_or_default()
    }
    fn fingerprint(&self) -> &str {
        self["fingerprint"].as_str().unwrap_or_default()
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

/// The operations of one action that a selection picked: a page of them, from `offset`.
#[derive(Debug, Clone, Serialize)]
pub struct Listing<O = PlannedOp> {
    pub action: &'static str,
    /// How many the selection picked.
    pub selected: usize,
    /// How many of them come before [`Listing::operations`] (a later page's start).
    pub offset: usize,
    /// The page, in plan order.
    pub operations: Vec<O>,
}

impl<O> Listing<O> {
    /// How many come after [`Listing::operations`].
    pub fn more(&self) -> usize {
        self.selected.saturating_sub(self.offset.saturating_add(self.operations.len()))
    }
}

/// A plan as a person reads it: the shape of the whole plan and a capped listing of a selection.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView<O = PlannedOp> {
    pub plan_id: String,
    /// Operations in the whole plan.
    pub total: usize,
    /// Operations the selection picked.
    pub selected: usize,
    /// The whole plan by target, school unit and action, sorted so.
    pub shape: Vec<ShapeRow>,
    /// The selected operations, by action in the order the plan's text lists them.
    pub listings: Vec<Listing<O>>,
}

/// The order actions are listed in.
pub const ACTION_ORDER: [Action; 12] = Action::ALL;

impl super::Engine {
    /// A saved plan (`enid plan --save`, a service's held or planned run, `POST /plans`) as a
    /// person reads it, a page at a time: its shape, and of each action the operations
    /// `selection` picks from `offset` on, at most `per_action`. `None` for no such plan.
    pub async fn saved_plan_view(
        &self,
        plan_id: &str,
        selection: &PlanSelection,
        offset: usize,
        per_action: Option<usize>,
    ) -> Result<Option<PlanView<serde_json::Value>>, super::EngineError> {
        use crate::store::StateStore;
        let Some(body) = self.store.load_plan(plan_id).await? else { return Ok(None) };
        let mut plan: serde_json::Value = serde_json::from_str(&body).map_err(|e| crate::store::StoreError {
            path: self.store.path().to_string(),
            message: format!("saved plan {plan_id} does not read as JSON ({e}); the state database is damaged"),
        })?;
        let operations: Vec<serde_json::Value> = match plan["operations"].take() {
            serde_json::Value::Array(ops) => ops,
            _ => Vec::new(),
        };
        Ok(Some(view_page(plan_id, &operations, selection, offset, per_action)))
    }
}

impl Computed {
    /// The plan as a person reads it: its shape and the operations `selection` picks, at most
    /// `per_action` of each action (`None`: all of them).
    pub fn plan_view(&self, selection: &PlanSelection, per_action: Option<usize>) -> PlanView {
        view(&self.shown_plan(), selection, per_action)
    }
}

/// [`Computed::plan_view`] of a plan already shown (redacted).
pub fn view(plan: &Plan, selection: &PlanSelection, per_action: Option<usize>) -> PlanView {
    let ops = &plan.operations;
    let whole = |i: usize| ops.get(i).map(std::borrow::Cow::into_owned);
    view_of(&plan.plan_id, ops.len(), || ops.heads(), whole, selection, 0, per_action)
}

/// [`view`] a page further on: of each action, the selected operations from `offset` on, at
/// most `per_action` of them (the API's and the web page's paging).
pub fn view_page<O: ViewedOp>(
    plan_id: &str,
    operations: &[O],
    selection: &PlanSelection,
    offset: usize,
    per_action: Option<usize>,
) -> PlanView<O> {
    view_of(
        plan_id,
        operations.len(),
        || operations.iter(),
        |i| operations.get(i).cloned(),
        selection,
        offset,
        per_action,
    )
}

/// [`view_page`] of operations read as `operations` gives them (in plan order), each listed one made
/// whole by `whole` (by its place): a plan's million creates are read in place, and only those
/// listed are made whole.
fn view_of<F: OpFacts, I: Iterator<Item = F>, O>(
    plan_id: &str,
    total: usize,
    operations: impl Fn() -> I,
    whole: impl Fn(usize) -> Option<O>,
    selection: &PlanSelection,
    offset: usize,
    per_action: Option<usize>,
) -> PlanView<O> {
    // Each row under its target, school and rank in one text (`target\0school\0rank`, the rank
    // in two digits), which orders as the three do: a buffer is reused for each lookup, where a
    // key of two strings made for each of a million operations cost an allocation each.
    let mut shape: BTreeMap<String, ShapeRow> = BTreeMap::new();
    let mut key = String::new();
    // One pass over the operations for the shape and every action's listing (an operation of
    // an action outside the order is in the shape only): a pass per action read a million
    // creates a dozen times.
    let mut listings: Vec<Listing<O>> = ACTION_ORDER
        .iter()
        .map(|a| Listing { action: a.as_str(), selected: 0, offset, operations: Vec::new() })
        .collect();
    for (i, op) in operations().enumerate() {
        let rank = ACTION_ORDER.iter().position(|x| x.as_str() == op.action()).unwrap_or(ACTION_ORDER.len());
        key.clear();
        let _ = write!(key, "{}\0{}\0{rank:02}", op.target(), op.school());
        match shape.get_mut(key.as_str()) {
            Some(row) => row.count += 1,
            None => {
                let row = ShapeRow {
                    target: op.target().to_string(),
                    school: op.school().to_string(),
                    action: ACTION_ORDER.get(rank).map_or("other", |a| a.as_str()),
                    count: 1,
                };
                shape.insert(key.clone(), row);
            }
        }
        if let Some(listing) = listings.get_mut(rank)
            && selection.matches(&op)
        {
            listing.selected += 1;
            if listing.selected > offset && per_action.is_none_or(|n| listing.operations.len() < n) {
                listing.operations.extend(whole(i));
            }
        }
    }
    let shape = shape.into_values().collect();
    listings.retain(|l| l.selected > 0);
    let selected = listings.iter().map(|l| l.selected).sum();
    PlanView { plan_id: plan_id.to_string(), total, selected, shape, listings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_api::TargetOp;

    fn op(action: Action, target: &str, username: &str, school: &str, protected: bool) -> PlannedOp {
        PlannedOp {
            action,
            target: target.into(),
            identity: format!("id-{username}").into(),
            username: username.into(),
            school: school.into(),
            reason: Default::default(),
            op: TargetOp::Disable { key: username.into() },
            extra: crate::core::plan::Extra::default(),
            protected,
            needs_approval: false,
            disabled_outside: false,
            renames_entry: false,
            fingerprint: Default::default(),
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
        p.operations = ops.into();
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

    /// A saved plan (the API's and the web page's view of a held run) holds each action as
    /// serialised (`create_group`); its group operations are listed and selected under the
    /// names a plan's own view gives them (they were in the shape as "other" and in no listing).
    #[test]
    fn a_saved_plans_group_operations_are_listed_and_selected_like_the_plans_own() {
        let ops = vec![
            op(Action::Create, "ldap", "u1", "S1", false),
            op(Action::CreateGroup, "ldap", "7a", "S1", false),
            op(Action::AddMembers, "ldap", "7b", "S1", false),
            op(Action::RemoveMembers, "ldap", "7c", "S1", false),
            op(Action::DeleteGroup, "ldap", "7d", "S1", false),
        ];
        let saved: Vec<serde_json::Value> = ops.iter().map(|o| serde_json::to_value(o).unwrap()).collect();
        assert_eq!(saved[1]["action"], "create_group", "the test needs the serialised spelling");
        let own = view(&plan(ops.clone()), &PlanSelection::default(), None);
        let read = view_page("p", &saved, &PlanSelection::default(), 0, None);
        let listed = |l: &[Listing<_>]| l.iter().map(|l| (l.action, l.selected)).collect::<Vec<_>>();
        let own_listed: Vec<(&str, usize)> = own.listings.iter().map(|l| (l.action, l.selected)).collect();
        assert_eq!(listed(&read.listings), own_listed);
        assert_eq!(own_listed.len(), 5);
        let shape = |v: &[ShapeRow]| v.iter().map(|r| (r.action, r.count)).collect::<Vec<_>>();
        assert_eq!(shape(&read.shape), shape(&own.shape));
        let groups = PlanSelection { only: vec![Action::CreateGroup, Action::DeleteGroup], ..Default::default() };
        assert_eq!(view_page("p", &saved, &groups, 0, None).selected, 2);
        for a in Action::ALL {
            let json = serde_json::to_value(a).unwrap();
            assert_eq!(Action::of_saved(json.as_str().unwrap()), Some(a));
            assert_eq!(Action::of_saved(a.as_str()), Some(a));
        }
        assert_eq!((Action::of_saved("explode"), Action::saved_as_str("explode")), (None, "explode"));
    }

    #[test]
    fn a_page_further_on_starts_at_its_offset_and_the_last_page_has_nothing_more() {
        let ops: Vec<PlannedOp> = (0..45).map(|i| op(Action::Create, "ldap", &format!("u{i}"), "S1", false)).collect();
        let p = plan(ops.clone());
        let page = view_page(&p.plan_id, &ops, &PlanSelection::default(), 20, Some(20));
        let l = &page.listings[0];
        assert_eq!((l.offset, l.operations.len(), l.more()), (20, 20, 5));
        assert_eq!(l.operations[0].username, "u20");
        let last = view_page(&p.plan_id, &ops, &PlanSelection::default(), 40, Some(20));
        assert_eq!((last.listings[0].operations.len(), last.listings[0].more()), (5, 0));
        let past = view_page(&p.plan_id, &ops, &PlanSelection::default(), 100, Some(20));
        // A saved plan, as the state keeps it (JSON), pages the same way.
        let saved: Vec<serde_json::Value> = p.operations.iter().map(|o| serde_json::to_value(o).unwrap()).collect();
        let json = view_page(&p.plan_id, &saved, &PlanSelection::default(), 20, Some(20));
        let names: Vec<&str> = json.listings[0].operations.iter().map(OpFacts::username).collect();
        let typed: Vec<&str> = page.listings[0].operations.iter().map(|o| o.username.as_str()).collect();
        assert_eq!(names, typed);
        assert_eq!(json.shape, page.shape);
        assert_eq!((past.listings[0].selected, past.listings[0].operations.len(), past.listings[0].more()), (45, 0, 0));
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
                .flat_map(|l| l.operations.iter().map(|o| (o.action.as_str().to_string(), o.username.to_string())))
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
        p.operations.rest_mut()[1].identity = "uuid-1".into();
        let by_id = PlanSelection { person: Some("uuid-1".into()), ..Default::default() };
        assert_eq!(view(&p, &by_id, None).selected, 1, "the enid id finds them");
        p.operations.rest_mut()[1].username = "kim.lind".into();
        let by_name = PlanSelection { person: Some("kim.lind".into()), ..Default::default() };
        assert_eq!(view(&p, &by_name, None).selected, 0, "a protected person's username is never matched");
        assert_eq!(view(&p, &anna, None).shape.len(), 4, "the shape is the whole plan's");
    }
}
