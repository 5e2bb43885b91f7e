//! Group planning: creates, value-level member changes and deletes of owned groups, with
//! names compared as the directory compares them. Pure.

use super::*;

/// Plans the groups of one target: creates, value-level member adds and removals, and deletes
/// of owned groups left without members. Groups enid does not own are never touched; one in the
/// way of a create is listed as blocked. Members in `tp.kept_members` (persons kept as at the
/// last run) are never removed, and a group that holds one is never deleted.
///
/// Group names compare without case, as LDAP compares them: `3a` and `3A` from the sources are
/// one group, named as enid recorded it when it owns it, else by the first of the names in
/// sorted order.
pub fn plan_groups(
    target: &str,
    desired: &BTreeMap<String, DesiredGroup>,
    observed: &[ObservedGroup],
    owned: &[&OwnedGroup],
    tp: &mut TargetPlan,
) {
    let by_anchor: HashMap<&str, &ObservedGroup> =
        observed.iter().filter_map(|g| Some((g.anchor.as_deref()?, g))).collect();
    let by_key: HashMap<String, &ObservedGroup> = observed.iter().map(|g| (normalize_key(&g.key), g)).collect();
    let by_name: HashMap<String, &ObservedGroup> = observed.iter().map(|g| (fold_name(&g.name), g)).collect();
    let owned_by_name: HashMap<String, &OwnedGroup> = owned.iter().map(|g| (fold_name(&g.name), *g)).collect();
    // Folded name → (the name used, what the group should be).
    let mut merged: BTreeMap<String, (String, std::borrow::Cow<'_, DesiredGroup>)> = BTreeMap::new();
    for (name, want) in desired {
        match merged.entry(fold_name(name)) {
            std::collections::btree_map::Entry::Vacant(e) => {
                let canonical = owned_by_name.get(e.key()).map_or_else(|| name.clone(), |o| o.name.clone());
                e.insert((canonical, std::borrow::Cow::Borrowed(want)));
            }
            std::collections::btree_map::Entry::Occupied(mut e) => {
                e.get_mut().1.to_mut().members.extend(want.members.iter().cloned());
            }
        }
    }
    let push = |tp: &mut TargetPlan, action: Action, name: &str, school: &str, reason: String, op: TargetOp| {
        tp.operations.push(PlannedOp {
            action,
            target: target.to_string(),
            identity: String::new(),
            username: name.to_string(),
            school: school.to_string(),
            reason,
            op,
            before: None,
            protected: false,
            needs_approval: false,
        });
    };
    // A group enid created is known by its recorded anchor alone; only a row without one (a
    // pending create) falls back to the key.
    let find_owned = |o: &OwnedGroup| -> Option<&ObservedGroup> {
        match o.anchor.as_deref() {
            Some(a) => by_anchor.get(a).copied(),
            None => by_key.get(&normalize_key(&o.key)).copied(),
        }
    };
    for (lower, (name, want)) in &merged {
        let found = match owned_by_name.get(lower) {
            Some(o) => {
                let hit = find_owned(o);
                if let (None, Some(g)) = (hit, by_key.get(&normalize_key(&o.key))) {
                    // Deleted and made again by hand at the same DN: someone else's.
                    tp.blocked.push(Blocked {
                        target: target.into(),
                        identity: String::new(),
                        username: name.clone(),
                        reason: format!(
                            "group {} stands where enid's group is recorded, but it is another entry, not created \
                             by enid; it is left alone",
                            g.key
                        ),
                    });
                    continue;
                }
                if let (Some(g), true) = (hit, o.pending || o.anchor.is_none()) {
                    tp.group_adoptions.push(GroupAdoption {
                        target: target.into(),
                        name: name.clone(),
                        key: g.key.clone(),
                        anchor: g.anchor.clone(),
                        school: want.school.clone(),
                    });
                }
                hit
            }
            None => {
                if let Some(g) = by_name.get(lower) {
                    tp.blocked.push(Blocked {
                        target: target.into(),
                        identity: String::new(),
                        username: name.clone(),
                        reason: format!("group {} exists but was not created by enid", g.key),
                    });
                    continue;
                }
                None
            }
        };
        match found {
            None if want.members.is_empty() => {}
            None => {
                tp.groups.create += 1;
                tp.groups.members_added += want.members.len();
                let members: Vec<String> = want.members.iter().cloned().collect();
                let reason = format!("new group with {} members", members.len());
                push(
                    tp,
                    Action::CreateGroup,
                    name,
                    &want.school,
                    reason,
                    TargetOp::CreateGroup { name: name.clone(), members },
                );
            }
            Some(g) if want.members.is_empty() && !holds_kept(g, &tp.kept_members) => {
                tp.groups.delete += 1;
                let reason = "no members left".to_string();
                push(tp, Action::DeleteGroup, name, &want.school, reason, TargetOp::DeleteGroup { key: g.key.clone() });
            }
            Some(g) => {
                let have: HashMap<String, &String> = g.members.iter().map(|m| (normalize_key(m), m)).collect();
                let want_norm: std::collections::BTreeSet<String> =
                    want.members.iter().map(|m| normalize_key(m)).collect();
                let add: Vec<String> =
                    want.members.iter().filter(|m| !have.contains_key(&normalize_key(m))).cloned().collect();
                let mut remove: Vec<String> = have
                    .iter()
                    .filter(|(n, _)| !want_norm.contains(*n) && !tp.kept_members.contains(*n))
                    .map(|(_, m)| (*m).clone())
                    .collect();
                remove.sort();
                if add.is_empty() && remove.is_empty() {
                    tp.groups.unchanged += 1;
                }
                if !add.is_empty() {
                    tp.groups.members_added += add.len();
                    let reason = format!("{} members to add", add.len());
                    push(
                        tp,
                        Action::AddMembers,
                        name,
                        &want.school,
                        reason,
                        TargetOp::AddMembers { key: g.key.clone(), members: add },
                    );
                }
                if !remove.is_empty() {
                    tp.groups.members_removed += remove.len();
                    let reason = format!("{} members to remove", remove.len());
                    let op = TargetOp::RemoveMembers { key: g.key.clone(), members: remove };
                    push(tp, Action::RemoveMembers, name, &want.school, reason, op);
                }
            }
        }
    }
    // Owned groups no longer wanted at all: empty them by deleting (groupOfNames needs a member).
    for o in owned {
        if merged.contains_key(&fold_name(&o.name)) {
            continue;
        }
        if let Some(g) = find_owned(o) {
            if holds_kept(g, &tp.kept_members) {
                // A kept person is still in it: only the others leave.
                let mut remove: Vec<String> =
                    g.members.iter().filter(|m| !tp.kept_members.contains(&normalize_key(m))).cloned().collect();
                remove.sort();
                if remove.is_empty() {
                    tp.groups.unchanged += 1;
                } else {
                    tp.groups.members_removed += remove.len();
                    let reason = format!("{} members to remove", remove.len());
                    let op = TargetOp::RemoveMembers { key: g.key.clone(), members: remove };
                    push(tp, Action::RemoveMembers, &o.name, &o.school, reason, op);
                }
                continue;
            }
            tp.groups.delete += 1;
            let op = TargetOp::DeleteGroup { key: g.key.clone() };
            push(tp, Action::DeleteGroup, &o.name, &o.school, "no members left".into(), op);
        }
    }
    tp.operations.sort_by(|a, b| (a.action, &a.username).cmp(&(b.action, &b.username)));
}

/// Whether a group holds a member of a person kept as at the last run.
pub(super) fn holds_kept(g: &ObservedGroup, kept: &std::collections::BTreeSet<String>) -> bool {
    !kept.is_empty() && g.members.iter().any(|m| kept.contains(&normalize_key(m)))
}

/// How many of the groups enid owns (created and seen) are not among the observed ones, by
/// anchor or key, and of how many. Pure.
pub fn missing_groups(owned: &[&OwnedGroup], observed: &[ObservedGroup]) -> (usize, usize) {
    let anchors: HashMap<&str, ()> = observed.iter().filter_map(|g| Some((g.anchor.as_deref()?, ()))).collect();
    let keys: HashMap<String, ()> = observed.iter().map(|g| (normalize_key(&g.key), ())).collect();
    let mine: Vec<&&OwnedGroup> = owned.iter().filter(|g| !g.pending).collect();
    let missing = mine
        .iter()
        .filter(|g| {
            !g.anchor.as_deref().is_some_and(|a| anchors.contains_key(a)) && !keys.contains_key(&normalize_key(&g.key))
        })
        .count();
    (missing, mine.len())
}
