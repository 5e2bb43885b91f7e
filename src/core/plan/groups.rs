//! Group planning: creates, value-level member changes and deletes of owned groups, with
//! names and member values compared as the target compares them. Pure.

use super::*;
use std::collections::HashSet;

/// Plans the groups of one target: creates, value-level member adds and removals, and deletes
/// of owned groups left without members. Groups enid does not own are never touched; one in the
/// way of a create is listed as blocked. Members in `tp.kept_members` (persons kept as at the
/// last run) are never removed, and a group that holds one is never deleted.
///
/// Group names compare as the target compares them (LDAP: without case and with runs of spaces
/// as one): `3a` and `3A` from the sources are one group, named as enid recorded it when it
/// owns it, else by the first of the names in sorted order. Member values compare as the
/// target compares keys (or usernames); a member whose value the target gives at apply (a new
/// or moved account) goes in the operation's `new_members`, and its old value, if any, leaves.
pub fn plan_groups(
    target: &str,
    desired: &BTreeMap<String, DesiredGroup>,
    observed: &[ObservedGroup],
    owned: &[&OwnedGroup],
    caps: &Capabilities,
    tp: &mut TargetPlan,
) {
    let fold_name = |n: &str| caps.group_name(n);
    let by_anchor: HashMap<&str, &ObservedGroup> =
        observed.iter().filter_map(|g| Some((g.anchor.as_deref()?, g))).collect();
    let by_key: HashMap<String, &ObservedGroup> = observed.iter().map(|g| (caps.key(&g.key), g)).collect();
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
                e.get_mut().1.to_mut().members.extend(want.members.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
    let push = |tp: &mut TargetPlan,
                action: Action,
                name: &str,
                school: &str,
                reason: String,
                op: TargetOp,
                new_members: Vec<IdentityId>,
                leaving: Vec<(IdentityId, String)>| {
        tp.operations.push(PlannedOp {
            action,
            target: target.into(),
            identity: IdentityId::default(),
            username: name.into(),
            school: school.into(),
            reason: reason.into(),
            op,
            extra: Extra::new(new_members, leaving, None),
            protected: false,
            needs_approval: false,
            disabled_outside: false,
            renames_entry: false,
            fingerprint: Str::default(),
        });
    };
    // A group enid created is known by its recorded anchor alone; only a row without one (a
    // pending create) falls back to its key, or, when the target had not given one yet, to its
    // name.
    let find_owned = |o: &OwnedGroup| -> Option<&ObservedGroup> {
        match (o.anchor.as_deref(), o.key.as_deref()) {
            (Some(a), _) => by_anchor.get(a).copied(),
            (None, Some(k)) => by_key.get(&caps.key(k)).copied(),
            (None, None) if o.pending => by_name.get(&fold_name(&o.name)).copied(),
            (None, None) => None,
        }
    };
    let fold_member = |m: &str| fold_member(caps, m);
    let moving: HashMap<String, IdentityId> = tp.moving.iter().map(|(i, v)| (fold_member(v), i.clone())).collect();
    for (lower, (name, want)) in &merged {
        let found = match owned_by_name.get(lower) {
            Some(o) => {
                let hit = find_owned(o);
                if let (None, Some(g)) = (hit, o.key.as_deref().and_then(|k| by_key.get(&caps.key(k)))) {
                    // Deleted and made again by hand at the same DN: someone else's.
                    tp.blocked.push(Blocked {
                        target: target.into(),
                        identity: IdentityId::default(),
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
                        identity: IdentityId::default(),
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
                let (members, new_members) = split_members(want);
                let reason = format!("new group with {} members", want.members.len());
                let op = TargetOp::CreateGroup { name: name.clone(), members };
                push(tp, Action::CreateGroup, name, &want.school, reason, op, new_members, Vec::new());
            }
            Some(g) if want.members.is_empty() && !holds_kept(g, &tp.kept_members, &fold_member) => {
                tp.groups.delete += 1;
                let reason = "no members left".to_string();
                let op = TargetOp::DeleteGroup { key: g.key.clone() };
                push(tp, Action::DeleteGroup, name, &want.school, reason, op, Vec::new(), Vec::new());
            }
            Some(g) => {
                let have: HashMap<String, &String> = g.members.iter().map(|m| (fold_member(m), m)).collect();
                let want_known: std::collections::BTreeSet<String> =
                    want.members.values().flatten().map(|m| fold_member(m)).collect();
                let (known, mut new_members) = split_members(want);
                // A member whose account moves in this plan and who stays in the group: where
                // the target rewrites member values itself (AD), nothing is sent for it.
                let staying: HashSet<&String> = if caps.members_follow_moves {
                    have.keys().filter(|n| moving.get(*n).is_some_and(|i| want.members.contains_key(i))).collect()
                } else {
                    HashSet::new()
                };
                new_members.retain(|i| !staying.iter().any(|n| moving.get(*n) == Some(i)));
                let add: Vec<String> = known.into_iter().filter(|m| !have.contains_key(&fold_member(m))).collect();
                let mut remove: Vec<String> = have
                    .iter()
                    .filter(|(n, _)| !want_known.contains(*n) && !tp.kept_members.contains(*n) && !staying.contains(n))
                    .map(|(_, m)| (*m).clone())
                    .collect();
                remove.sort();
                if add.is_empty() && new_members.is_empty() && remove.is_empty() {
                    tp.groups.unchanged += 1;
                }
                if !add.is_empty() || !new_members.is_empty() {
                    let n = add.len() + new_members.len();
                    tp.groups.members_added += n;
                    let reason = format!("{n} members to add");
                    let op = TargetOp::AddMembers { key: g.key.clone(), members: add };
                    push(tp, Action::AddMembers, name, &want.school, reason, op, new_members, Vec::new());
                }
                if !remove.is_empty() {
                    tp.groups.members_removed += remove.len();
                    let reason = format!("{} members to remove", remove.len());
                    let leaving: Vec<(IdentityId, String)> =
                        remove.iter().filter_map(|m| Some((moving.get(&fold_member(m))?.clone(), m.clone()))).collect();
                    let op = TargetOp::RemoveMembers { key: g.key.clone(), members: remove };
                    push(tp, Action::RemoveMembers, name, &want.school, reason, op, Vec::new(), leaving);
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
            if holds_kept(g, &tp.kept_members, &fold_member) {
                // A kept person is still in it: only the others leave.
                let mut remove: Vec<String> =
                    g.members.iter().filter(|m| !tp.kept_members.contains(&fold_member(m))).cloned().collect();
                remove.sort();
                if remove.is_empty() {
                    tp.groups.unchanged += 1;
                } else {
                    tp.groups.members_removed += remove.len();
                    let reason = format!("{} members to remove", remove.len());
                    let op = TargetOp::RemoveMembers { key: g.key.clone(), members: remove };
                    push(tp, Action::RemoveMembers, &o.name, &o.school, reason, op, Vec::new(), Vec::new());
                }
                continue;
            }
            tp.groups.delete += 1;
            let op = TargetOp::DeleteGroup { key: g.key.clone() };
            push(tp, Action::DeleteGroup, &o.name, &o.school, "no members left".into(), op, Vec::new(), Vec::new());
        }
    }
    tp.operations.sort();
}

/// Takes the creates of these groups out of the plan (group name → why), each listed under
/// `blocked` with its reason: a group whose name the target would refuse (held by another
/// entry) is not created and gets no members. Every other group change stays. Pure.
pub fn block_group_creates(target: &str, held: &BTreeMap<String, String>, caps: &Capabilities, tp: &mut TargetPlan) {
    if held.is_empty() {
        return;
    }
    let held: HashMap<String, &String> = held.iter().map(|(name, why)| (caps.group_name(name), why)).collect();
    let mut blocked = Vec::new();
    tp.operations.retain(|o| {
        let TargetOp::CreateGroup { name, members } = &o.op else { return true };
        let Some(why) = held.get(&caps.group_name(name)) else { return true };
        tp.groups.create = tp.groups.create.saturating_sub(1);
        tp.groups.members_added = tp.groups.members_added.saturating_sub(members.len() + o.new_members().len());
        blocked.push(Blocked {
            target: target.to_string(),
            identity: IdentityId::default(),
            username: name.clone(),
            reason: (*why).clone(),
        });
        false
    });
    tp.blocked.extend(blocked);
}

/// A member value as the target compares it: a key as keys compare, a username as names do.
pub fn fold_member(caps: &Capabilities, m: &str) -> String {
    match caps.groups {
        Some(MemberForm::Username) if caps.case_insensitive_names => m.to_lowercase(),
        Some(MemberForm::Username) => m.to_string(),
        _ => caps.key(m),
    }
}

/// The member values a desired group knows now, and the members whose values the target gives
/// at apply.
fn split_members(want: &DesiredGroup) -> (Vec<String>, Vec<IdentityId>) {
    let mut known = Vec::new();
    let mut later = Vec::new();
    for (id, v) in &want.members {
        match v {
            Some(v) => known.push(v.clone()),
            None => later.push(id.clone()),
        }
    }
    known.sort();
    (known, later)
}

/// Whether a group holds a member of a person kept as at the last run.
pub(super) fn holds_kept(
    g: &ObservedGroup,
    kept: &std::collections::BTreeSet<String>,
    fold: &dyn Fn(&str) -> String,
) -> bool {
    !kept.is_empty() && g.members.iter().any(|m| kept.contains(&fold(m)))
}

/// How many of the groups enid owns (created and seen) are not among the observed ones, by
/// anchor or key, and of how many. Pure.
pub fn missing_groups(owned: &[&OwnedGroup], observed: &[ObservedGroup], caps: &Capabilities) -> (usize, usize) {
    let anchors: HashMap<&str, ()> = observed.iter().filter_map(|g| Some((g.anchor.as_deref()?, ()))).collect();
    let keys: HashMap<String, ()> = observed.iter().map(|g| (caps.key(&g.key), ())).collect();
    let mine: Vec<&&OwnedGroup> = owned.iter().filter(|g| !g.pending).collect();
    let missing = mine
        .iter()
        .filter(|g| {
            !g.anchor.as_deref().is_some_and(|a| anchors.contains_key(a))
                && !g.key.as_deref().is_some_and(|k| keys.contains_key(&caps.key(k)))
        })
        .count();
    (missing, mine.len())
}
