//! Account planning: the diff from the desired accounts of one target to what it holds,
//! matched by ownership (anchor first), never touching what enid does not own. Pure.

use super::*;
use crate::core::index::{Keyed, PosIndex};
use connector_api::Name;
use connector_api::packed::TextsOf;
use std::sync::Arc;

/// What the planner needs to know of a target besides its accounts: its declared facts (how it
/// compares keys and names, the owner attribute, whether a rename or an enable changes a key,
/// how groups name members) and the date.
#[derive(Debug, Clone, Copy)]
pub struct TargetFacts<'a> {
    pub caps: &'a Capabilities,
    /// Today, for grace periods.
    pub today: chrono::NaiveDate,
    /// The target's correlation rules and values (accounts made before enid); `None`: none.
    pub correlate: Option<&'a CorrelationInput>,
    /// Enable accounts of active persons that someone else disabled without asking
    /// (`[policy] enable_disabled_outside`).
    pub enable_disabled_outside: bool,
}

/// The desired accounts of one target as [`plan_target`] takes them: in plan order, each
/// rendered when the diff reaches it, so that a million persons' accounts are never all held at
/// once (ARCHITECTURE.md, "Where memory goes"). A `Vec<Desired>` is one too.
pub trait DesiredAccounts: Iterator<Item = Desired> {
    /// The desired accounts of the identities `admit` lets through, in plan order, rendered
    /// beside the iteration (which they neither advance nor report on): the few the planner
    /// must see before the diff reaches them (correlation candidates).
    fn select(&self, admit: &dyn Fn(&str) -> bool) -> Vec<Desired>;
}

impl DesiredAccounts for std::vec::IntoIter<Desired> {
    fn select(&self, admit: &dyn Fn(&str) -> bool) -> Vec<Desired> {
        self.as_slice().iter().filter(|d| admit(&d.spec.id)).cloned().collect()
    }
}

/// Plans one target.
///
/// `managed` names the attributes the mapping controls: only these are compared, and one the
/// mapping no longer yields is removed. The target's owner attribute (`facts.caps`) carries the
/// enid id on an account (LDAP `employeeNumber`, SCIM `externalId`).
///
/// Operations address accounts by the key they were observed at; when an earlier operation of
/// the same run changes the key (a rename, a move), the engine readdresses the later ones with
/// the key the target reported. Nothing here predicts a key.
///
/// How an identity's account is found: by the anchor its ownership row recorded, and only by
/// it. A row without an anchor (a pending create, a create in bulk whose anchor was not read,
/// or a target without anchors) falls back to the recorded key, and only to an entry that
/// carries the identity's id in `owner_attr`, then to the entry that carries the id wherever it
/// is in scope (renamed by hand). Anything else is
/// someone else's: an entry at the recorded key that is not the account, an entry with the
/// identity's username, and an entry carrying an enid id that no ownership row records are all
/// reported under `blocked` and never touched, and no account is created next to them.
pub fn plan_target(
    target: &str,
    desired: impl IntoIterator<Item = Desired, IntoIter: DesiredAccounts>,
    observed: &[ObservedAccount],
    owned: &[&OwnedAccount],
    managed: &[String],
    facts: &TargetFacts<'_>,
) -> TargetPlan {
    let (today, caps) = (facts.today, facts.caps);
    let desired = desired.into_iter();
    let owner_attr = caps.owner_attribute.as_str();
    // Indexes of positions (`PosIndex`): at a million accounts, a `HashMap` of each would be
    // some 50 MB, and the planning is a run's peak of memory.
    let by_anchor = by_anchor(observed);
    // Most accounts are found by anchor; the key index is built only if something needs it.
    let by_key: std::cell::OnceCell<HashMap<String, usize>> = std::cell::OnceCell::new();
    let by_key = || by_key.get_or_init(|| observed.iter().enumerate().map(|(i, o)| (caps.key(o.key()), i)).collect());
    // The indexes by username and by owner value serve persons no account was found for (a
    // create, a claim): built when the first of them needs one, not for a run that has none.
    let by_username = std::cell::OnceCell::new();
    let find_username = |u: &str| {
        by_username
            .get_or_init(|| Keyed::new(observed, |o| Some(fold_username(caps, o.username()?))))
            .get(&fold_username(caps, u))
    };
    // Entries that carry a value of enid's id form in the owner attribute, by that value.
    let has_owner_value = |p: usize, v: &str| owner_values(&observed[p], owner_attr).any(|x| x == v);
    let owner_index = || {
        let mut index = PosIndex::with_capacity(observed.len());
        for (i, v) in observed.iter().enumerate().flat_map(|(i, o)| owner_values(o, owner_attr).map(move |v| (i, v))) {
            index.insert(v, i, |p| has_owner_value(p, v));
        }
        index
    };
    let by_owner_value = std::cell::OnceCell::new();
    let find_owner_value = |v: &str| by_owner_value.get_or_init(owner_index).get(v, |p| has_owner_value(p, v));
    let owned_by_identity = Keyed::new(owned, |o| Some(o.identity_id.as_str()));
    let find_owned = |id: &str| owned_by_identity.get(id).map(|p| owned[p]);
    let mut claimed = vec![false; observed.len()];
    let mut places = Places::default();
    let mut tp = TargetPlan { in_scope: observed.len(), ..Default::default() };
    let carries_id = |o: &ObservedAccount, id: &str| o.attrs.texts(owner_attr).any(|x| x == id);
    // A member value known now (the account's key or username as observed, when no operation
    // of this plan changes it), or `None`: the target gives it at apply, once the account's
    // create, rename or move is done, and a member whose operation fails is left out.
    let member = |o: Option<&ObservedAccount>, renamed: bool, moved: bool| -> Option<String> {
        let o = o?;
        match caps.groups? {
            MemberForm::Username if renamed => None,
            MemberForm::Username => o.username().as_ref().map(|s| s.to_string()),
            MemberForm::Key if (renamed && !caps.rename_keeps_key && !caps.members_follow_moves) || moved => None,
            MemberForm::Key => Some(o.key().to_owned()),
        }
    };
    let grouped = caps.groups.is_some();
    // The names a create's attributes are packed with, shared by all of them: a first run keeps
    // a million creates until they are sent (an attribute outside these keeps its creates as
    // rendered).
    let create_names: Arc<[Name]> = {
        let mut names: Vec<&str> = managed.iter().map(String::as_str).chain([owner_attr]).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(Name::from).collect()
    };

    let push =
        |tp: &mut TargetPlan, d: &Desired, action: Action, reason: String, op: TargetOp, before: Option<Attrs>| {
            tp.summary.count(action);
            tp.operations.push(PlannedOp {
                action,
                target: target.into(),
                identity: d.id.clone(),
                username: d.spec.username.clone(),
                school: d.school(),
                reason: reason.into(),
                op,
                extra: Extra::new(Vec::new(), Vec::new(), before),
                protected: d.protected,
                needs_approval: d.needs_approval,
                disabled_outside: false,
                renames_entry: false,
                fingerprint: Str::default(),
            });
        };
    let block = |tp: &mut TargetPlan, d: &Desired, reason: String| {
        tp.blocked.push(Blocked {
            target: target.into(),
            identity: d.id.clone(),
            username: d.spec.username.to_string(),
            reason,
        });
    };
    // Accounts made before enid that a person's correlation values or username point at.
    let proof = OwnedMarks::new(owned, observed, &by_anchor, caps);
    let selected: Vec<Desired>;
    let matches = match facts.correlate.filter(|c| !c.is_empty()) {
        None => Matches::default(),
        Some(input) => {
            let eligible: Vec<usize> = (0..observed.len())
                .filter(|&i| !proof.owns(&observed[i]) && owner_values(&observed[i], owner_attr).next().is_none())
                .collect();
            // Persons whose account no entry carries and no row but a pending create records.
            let unfound = |id: &str| {
                find_owner_value(id).is_none() && find_owned(id).is_none_or(|o| o.status == AccountStatus::Pending)
            };
            selected = desired.select(&unfound);
            let candidates: Vec<Candidate<'_>> = selected
                .iter()
                .filter(|d| (d.active || d.provision_disabled) && d.held.is_none())
                .map(|d| Candidate {
                    id: &d.spec.id,
                    username: Some(&d.spec.username),
                    display_name: &d.spec.display_name,
                    given_name: &d.spec.given_name,
                    family_name: &d.spec.family_name,
                    protected: d.protected,
                })
                .collect();
            correlate(input, &candidates, observed, &eligible, caps)
        }
    };
    // Accounts the rules give someone: another person's namesake block never takes them away.
    let matched_accounts: std::collections::HashSet<usize> = matches.matched.values().map(|(i, _)| *i).collect();
    let mut claim_taken = vec![false; observed.len()];
    for mut d in desired {
        let owned = find_owned(&d.spec.id);
        // Find the account this identity owns, or the one its pending create made.
        let mut found = None;
        if let Some(o) = owned {
            match o.anchor() {
                Some(a) => found = by_anchor.get(a),
                None => {
                    // Rows from before keys were the target's alone may hold the key a create
                    // was sent to: the entry there counts only if it carries the identity's id.
                    let at_key = o.key().and_then(|k| by_key().get(&caps.key(k)).copied());
                    found = at_key.filter(|&i| carries_id(&observed[i], &d.spec.id));
                    // A pending create, or a create whose anchor was never read (an apply's
                    // creates in bulk read theirs afterwards: `Target::read_anchors`): the entry
                    // that carries the identity's id, wherever it is now (renamed by hand).
                    if found.is_none() {
                        found = find_owner_value(&d.spec.id);
                    }
                }
            }
            if let Some(i) = found.filter(|_| o.status == AccountStatus::Pending || o.anchor().is_none()) {
                tp.adoptions.push(Adoption {
                    target: target.into(),
                    identity: d.id.clone(),
                    key: observed[i].key().to_owned(),
                    anchor: observed[i].anchor().map(str::to_owned),
                    disabled: observed[i].disabled,
                    by_username: false,
                    status_only: false,
                });
            }
            if found.is_none()
                && let Some(&i) = o.key().and_then(|k| by_key().get(&caps.key(k)))
                && !claimed[i]
                && !carries_id(&observed[i], &d.spec.id)
            {
                // Something else stands where enid's account was (deleted and re-added by hand).
                claimed[i] = true; // never touch it, and never count it as ours
                block(
                    &mut tp,
                    &d,
                    format!(
                        "{} stands where enid's account is recorded, but it is another entry, not created by \
                         enid; it is left alone",
                        observed[i].key()
                    ),
                );
                continue;
            }
        }

        // Written by another system now (synchronised from on-premises AD): never by enid.
        if let Some(i) = found
            && let Some(why) = &observed[i].foreign()
        {
            claimed[i] = true;
            let why = format!("{} {why}: enid no longer writes it and leaves it as it is", observed[i].key());
            block(&mut tp, &d, why);
            continue;
        }
        if let Some(why) = d.held.take() {
            // Fail closed: an error never becomes empty attributes that the diff would remove.
            if let Some(i) = found {
                claimed[i] = true;
                let o = &observed[i];
                if grouped && !o.disabled && !d.provision_disabled {
                    tp.members.push((d.id.clone(), member(Some(o), false, false)));
                }
            }
            block(&mut tp, &d, why);
            continue;
        }

        // An account made before enid that the correlation rules give this person: claimed (the
        // owner marker written), and managed from the next run on. Under another username it is
        // claimed only together with the rename that gives it the person's.
        if found.is_none()
            && let Some(&(i, _)) = matches.matched.get(&*d.spec.id)
            && !d.active
        {
            // A future starter's old account: claiming it would disable it until the start date
            // (a working account someone may use), and creating one beside it is a duplicate.
            claimed[i] = true;
            let why = format!(
                "{} was made before enid and matches this person, who has not started yet ({}): it is claimed \
                 when they start, and no account is made beside it",
                observed[i].key(),
                d.inactive_reason.as_deref().unwrap_or("starts later")
            );
            block(&mut tp, &d, why);
            continue;
        }
        if found.is_none()
            && let Some(&(i, rule)) = matches.matched.get(&*d.spec.id)
            && !claim_taken[i]
        {
            let obs = &observed[i];
            let other = obs.username().filter(|u| fold_username(caps, u) != fold_username(caps, &d.spec.username));
            // A rename into a username another account holds would fail on every apply.
            if other.is_some()
                && let Some(j) = find_username(&d.spec.username)
                && j != i
            {
                claimed[j] = true;
                block(&mut tp, &d, namesake_reason(target, &observed[j], owner_attr));
                continue;
            }
            claimed[i] = true;
            claim_taken[i] = true;
            let how = match rule {
                Rule::Attribute => "its correlation attribute holds this person's value".to_string(),
                Rule::Username => "it holds this person's username and names".to_string(),
            };
            let reason = match other {
                Some(u) => format!("made before enid, {how}; claimed with the rename {u} → {}", d.spec.username),
                None => format!("made before enid, {how}; claimed, and managed by enid from the next run"),
            };
            let marker = AttrChange { attr: owner_attr.to_string(), values: Value::text(&*d.spec.id) };
            let op = TargetOp::Update { key: obs.key().to_owned(), changes: vec![marker] };
            push(&mut tp, &d, Action::Claim, reason, op, None);
            if let Some(u) = other {
                let op = TargetOp::Rename { key: obs.key().to_owned(), username: d.spec.username.to_string() };
                let reason = format!("claimed under another username: {u} → {}", d.spec.username);
                push(&mut tp, &d, Action::Rename, reason, op, None);
            }
            tp.claims.push(Claim {
                target: target.into(),
                identity: d.id.clone(),
                key: obs.key().to_owned(),
                anchor: obs.anchor().map(str::to_owned),
                rule,
                other_username: other.map(str::to_string),
                disabled: obs.disabled,
            });
            continue;
        }
        if found.is_none()
            && let Some(why) = matches.ambiguous.get(&*d.spec.id)
        {
            block(&mut tp, &d, why.clone());
            continue;
        }

        match found {
            Some(i) => {
                claimed[i] = true;
                let obs = &observed[i];
                if !d.active && !d.provision_disabled {
                    // A disabled account is deleted once its grace period has passed.
                    let due = owned.and_then(|o| Some((o.disabled_at?, d.grace_days?))).and_then(|(at, days)| {
                        let on = at.checked_add_days(chrono::Days::new(u64::from(days)))?;
                        (on <= today).then_some((at, on))
                    });
                    if let (true, Some((at, on))) = (obs.disabled, due) {
                        let reason = format!(
                            "{}; disabled on {at}, and the grace period ended on {on}",
                            d.inactive_reason.as_deref().unwrap_or("no longer active")
                        );
                        push(&mut tp, &d, Action::Delete, reason, TargetOp::Delete { key: obs.key().to_owned() }, None);
                    } else if obs.disabled {
                        tp.summary.unchanged += 1;
                        // Disabled on the target while the state still says active: the
                        // disable is recorded (from today), or the grace period never starts.
                        if let Some(o) = owned.filter(|o| o.status == AccountStatus::Active && o.anchor().is_some()) {
                            tp.adoptions.push(Adoption {
                                target: target.into(),
                                identity: d.id.clone(),
                                key: obs.key().to_owned(),
                                anchor: obs.anchor().map(str::to_owned).or_else(|| o.anchor().map(str::to_owned)),
                                disabled: true,
                                by_username: false,
                                status_only: true,
                            });
                        }
                    } else {
                        let reason = d.inactive_reason.clone().unwrap_or_else(|| "no longer active".into());
                        push(
                            &mut tp,
                            &d,
                            Action::Disable,
                            reason,
                            TargetOp::Disable { key: obs.key().to_owned() },
                            None,
                        );
                    }
                    continue;
                }
                let mut changed = false;
                // A username that changed (rename policy): the rename runs first, and the engine
                // sends what follows to the key the target reports for the renamed account.
                let key = obs.key().to_owned();
                let mut renamed = false;
                if let Some(old) =
                    obs.username().filter(|u| obs.username_outdated || !u.eq_ignore_ascii_case(&d.spec.username))
                {
                    let reason = if old.eq_ignore_ascii_case(&d.spec.username) {
                        format!("the target holds {old} in a form its settings no longer give: written again")
                    } else {
                        format!("the name changed: {old} → {}", d.spec.username)
                    };
                    let op = TargetOp::Rename { key: obs.key().to_owned(), username: d.spec.username.to_string() };
                    push(&mut tp, &d, Action::Rename, reason, op, None);
                    renamed = true;
                    changed = true;
                }
                // A mover between placements (school units' OUs) is moved, keeping the account.
                let mut moved_now = false;
                if let (Some(want), Some(have)) = (d.spec.placement.as_deref(), obs.placement())
                    && caps.key(want) != caps.key(have)
                {
                    let reason = format!("moves from {have} to {want}");
                    let op = TargetOp::Move { key: obs.key().to_owned(), placement: want.to_string() };
                    push(&mut tp, &d, Action::Move, reason, op, None);
                    // Its member value changes: given at apply (a target whose groups follow
                    // moves rewrites it in the groups it stays in; see `groups`).
                    moved_now = true;
                    changed = true;
                }
                if d.provision_disabled && !obs.disabled {
                    // Before the start date: kept current, but disabled and in no group.
                    let reason = d.inactive_reason.clone().unwrap_or_else(|| "starts later".into());
                    push(&mut tp, &d, Action::Disable, reason, TargetOp::Disable { key: key.clone() }, None);
                    changed = true;
                }
                let enable = obs.disabled && d.active;
                // Enabled on the target while the state says disabled (an enable whose record
                // was lost): recorded as active, or a later lockout by IT would be taken for
                // enid's own disable and undone.
                if let Some(o) = owned.filter(|o| o.status == AccountStatus::Disabled && o.anchor().is_some())
                    && !obs.disabled
                    && d.active
                    && !d.provision_disabled
                {
                    tp.adoptions.push(Adoption {
                        target: target.into(),
                        identity: d.id.clone(),
                        key: obs.key().to_owned(),
                        anchor: obs.anchor().map(str::to_owned).or_else(|| o.anchor().map(str::to_owned)),
                        disabled: false,
                        by_username: false,
                        status_only: true,
                    });
                }
                // Disabled, but not by enid (a lockout by IT): enabled only when an operator says.
                let outside = enable
                    && !facts.enable_disabled_outside
                    && owned.is_some_and(|o| o.status == AccountStatus::Active);
                if enable {
                    let reason = if outside {
                        "disabled outside enid: left disabled until an operator approves the enable \
                         (`enid apply --only enable`)"
                            .into()
                    } else if d.scheduled_start {
                        START_REASON.into()
                    } else {
                        "active again".into()
                    };
                    push(&mut tp, &d, Action::Enable, reason, TargetOp::Enable { key: key.clone() }, None);
                    if outside && let Some(op) = tp.operations.rest_mut().last_mut() {
                        op.disabled_outside = true;
                    }
                    changed = true;
                }
                let (changes, before) = diff(&d.spec.attrs.as_attrs(), &obs.attrs, managed, &mut places);
                // An update that renames the entry (AD's display name) changes its key too.
                let renames_entry =
                    caps.renamed_by_attribute.is_some_and(|a| changes.iter().any(|c| c.attr.eq_ignore_ascii_case(a)));
                if grouped && !d.provision_disabled {
                    // Groups change after the account operations: an account whose key changes
                    // in this plan (renamed, or enabled by a move) is named by the key the target
                    // reports for it then.
                    let moved =
                        moved_now || renames_entry || enable && caps.disable == connector_api::DisableKind::Move;
                    let value = member(Some(obs), renamed, moved);
                    if value.is_none()
                        && let Some(old) = member(Some(obs), false, false)
                    {
                        tp.moving.push((d.id.clone(), old));
                    }
                    tp.members.push((d.id.clone(), value));
                }
                // Updates run before the enable (see `Action`), on the key after the rename.
                if !changes.is_empty() {
                    let names: Vec<&str> = changes.iter().map(|c| c.attr.as_str()).collect();
                    let reason = format!("{} changed in the source", names.join(", "));
                    push(
                        &mut tp,
                        &d,
                        Action::Update,
                        reason,
                        TargetOp::Update { key: key.clone(), changes },
                        Some(before),
                    );
                    if let Some(op) = tp.operations.rest_mut().last_mut() {
                        op.renames_entry = renames_entry;
                    }
                    changed = true;
                }
                if !changed {
                    tp.summary.unchanged += 1;
                }
            }
            None => {
                // Never a second account: an entry carrying this identity's id that no ownership
                // row proves to be enid's is reported, and nothing is created next to it.
                if let Some(i) = find_owner_value(&d.spec.id) {
                    claimed[i] = true;
                    block(&mut tp, &d, unrecorded_owner_value(&observed[i], &d.spec.id));
                    continue;
                }
                if !d.active && !d.provision_disabled {
                    continue; // inactive and no account: nothing to do
                }
                if let Some(i) = find_username(&d.spec.username) {
                    // Never a namesake beside it: the account may be this person's, made before enid.
                    // (One the rules give another person stays theirs to claim.)
                    claimed[i] |= !matched_accounts.contains(&i);
                    block(&mut tp, &d, namesake_reason(target, &observed[i], owner_attr));
                    continue;
                }
                let reason = if d.active {
                    if grouped {
                        tp.members.push((d.id.clone(), None));
                    }
                    match owned {
                        // A create that was sent but never arrived (or failed) left a pending row.
                        Some(o) if o.status == AccountStatus::Pending => {
                            "not created yet (an earlier create failed or was interrupted)".to_string()
                        }
                        Some(_) => "the account enid created is missing on the target; creating it again".to_string(),
                        None => "new person".to_string(),
                    }
                } else {
                    let why = d.inactive_reason.as_deref().unwrap_or("starts later");
                    format!("{why}: created ahead, disabled until then")
                };
                // The spec moves into the operation (a first run creates every account).
                tp.summary.count(Action::Create);
                let (protected, needs_approval, school) = (d.protected, d.needs_approval, d.school());
                let mut account = d.spec;
                account.enabled = d.active;
                account.attrs = account.attrs.packed(&create_names);
                tp.operations.push(PlannedOp {
                    action: Action::Create,
                    target: target.into(),
                    // The identity's shared id, not a string of its own made from the spec's.
                    identity: d.id,
                    username: account.username.clone(),
                    school,
                    reason: reason.into(),
                    op: TargetOp::Create { account },
                    extra: Extra::default(),
                    protected,
                    needs_approval,
                    disabled_outside: false,
                    renames_entry: false,
                    fingerprint: Str::default(),
                });
            }
        }
    }
    // Entries carrying an enid id that no identity of this run claimed and no ownership row
    // records: enid's once perhaps (a state database restored from an old backup, or lost), but
    // nothing proves it now.
    for (i, o) in observed.iter().enumerate() {
        if claimed[i] || proof.owns(o) {
            continue;
        }
        if let Some(id) = owner_values(o, owner_attr).next() {
            claimed[i] = true;
            tp.blocked.push(Blocked {
                target: target.into(),
                identity: id.into(),
                username: o.username().unwrap_or(o.key()).to_string(),
                reason: unrecorded_owner_value(o, id),
            });
        }
    }
    tp.unmanaged = claimed.iter().enumerate().filter(|(i, c)| !**c && !proof.owns(&observed[*i])).count();
    tp.operations.sort();
    tp.adoptions.sort_by(|a, b| a.key.cmp(&b.key));
    tp.blocked.sort_by(|a, b| (&a.username, &a.identity).cmp(&(&b.username, &b.identity)));
    tp
}

/// How many of the accounts enid owns and has seen (active or disabled; pending creates are
/// still a question) are not among the observed ones, by anchor or key, and of how many. Pure.
pub fn missing_accounts(owned: &[&OwnedAccount], observed: &[ObservedAccount], caps: &Capabilities) -> (usize, usize) {
    let (missing, of) = missing_owned(owned, observed, caps);
    (missing.len(), of)
}

/// The accounts enid owns and has seen that are not among the observed ones (by anchor or
/// key), and of how many: what the target guard counts and what is looked for out of scope.
/// Pure.
pub fn missing_owned<'a>(
    owned: &[&'a OwnedAccount],
    observed: &[ObservedAccount],
    caps: &Capabilities,
) -> (Vec<&'a OwnedAccount>, usize) {
    let anchors = by_anchor(observed);
    let keys: std::cell::OnceCell<HashMap<String, ()>> = std::cell::OnceCell::new();
    let mut of = 0;
    let mut missing = Vec::new();
    for o in owned.iter().copied().filter(|o| o.status != AccountStatus::Pending) {
        of += 1;
        let by_anchor = o.anchor().is_some_and(|a| anchors.get(a).is_some());
        let by_key = || {
            o.key().is_some_and(|k| {
                keys.get_or_init(|| observed.iter().map(|o| (caps.key(o.key()), ())).collect())
                    .contains_key(&caps.key(k))
            })
        };
        if !by_anchor && !by_key() {
            missing.push(o);
        }
    }
    (missing, of)
}

/// The values of enid's id form in an account's owner attribute (other values, such as HR
/// numbers, prove nothing).
pub fn owner_values<'a>(o: &'a ObservedAccount, owner_attr: &str) -> impl Iterator<Item = &'a str> {
    o.attrs.texts(owner_attr).filter(|v| is_enid_id(v))
}

/// Observed accounts that carry an enid id in the owner attribute but that no ownership row
/// records (by anchor, or by key for a row without one). Pure.
pub fn unrecorded_enid_entries<'a>(
    owned: &[&OwnedAccount],
    observed: &'a [ObservedAccount],
    caps: &Capabilities,
) -> Vec<&'a ObservedAccount> {
    let anchors = by_anchor(observed);
    let proof = OwnedMarks::new(owned, observed, &anchors, caps);
    observed.iter().filter(|o| owner_values(o, &caps.owner_attribute).next().is_some() && !proof.owns(o)).collect()
}

/// The indexes of the observed accounts that no ownership row records (by anchor, or by key for
/// a row without one). Pure.
pub fn not_owned(owned: &[&OwnedAccount], observed: &[ObservedAccount], caps: &Capabilities) -> Vec<usize> {
    let anchors = by_anchor(observed);
    let proof = OwnedMarks::new(owned, observed, &anchors, caps);
    (0..observed.len()).filter(|&i| !proof.owns(&observed[i])).collect()
}

/// Why an entry carrying an enid id that no ownership row records is left alone, and what to do.
pub(super) fn unrecorded_owner_value(o: &ObservedAccount, id: &str) -> String {
    format!(
        "{} carries enid id {id} but the state database does not record it as enid's: restore the state \
         database from a backup, or run `enid adopt` (when adopt could not match it, claim it with `enid adopt \
         --entry KEY --person SOURCE/PERSON_ID` once you know whose it is)",
        o.key()
    )
}

/// Observed accounts by anchor.
type ByAnchor<'a> = Keyed<'a, ObservedAccount, fn(&ObservedAccount) -> Option<&str>>;

/// The observed accounts' index by anchor (the planner's, and the ownership test's).
fn by_anchor(observed: &[ObservedAccount]) -> ByAnchor<'_> {
    Keyed::new(observed, |o| o.anchor())
}

/// Which observed accounts the ownership rows record: an account is owned when a row recorded
/// its anchor, or, for a row without one, its key. Held as marks on the accounts found through
/// their index by anchor (a bit per account, where an index of the rows took 8 bytes a slot,
/// 10.7 MB at a million, at the planning's peak): an account is owned when the account its
/// anchor finds (the same, or one with the same anchor) is marked.
struct OwnedMarks<'a> {
    marks: Vec<bool>,
    by_anchor: &'a ByAnchor<'a>,
    keys: HashMap<String, ()>,
    caps: &'a Capabilities,
}

impl<'a> OwnedMarks<'a> {
    fn new(
        owned: &[&OwnedAccount],
        observed: &[ObservedAccount],
        by_anchor: &'a ByAnchor<'a>,
        caps: &'a Capabilities,
    ) -> Self {
        let mut marks = vec![false; observed.len()];
        for a in owned.iter().filter_map(|o| o.anchor()) {
            if let Some(i) = by_anchor.get(a) {
                marks[i] = true;
            }
        }
        let keys =
            owned.iter().filter(|o| o.anchor().is_none()).filter_map(|o| Some((caps.key(o.key()?), ()))).collect();
        OwnedMarks { marks, by_anchor, keys, caps }
    }

    fn owns(&self, o: &ObservedAccount) -> bool {
        o.anchor().and_then(|a| self.by_anchor.get(a)).is_some_and(|i| self.marks[i])
            || (!self.keys.is_empty() && self.keys.contains_key(&self.caps.key(o.key())))
    }
}

/// Why a person is blocked beside an account enid does not own that holds their username, with
/// the ways out.
pub fn namesake_reason(target: &str, o: &ObservedAccount, owner_attr: &str) -> String {
    if let Some(why) = &o.foreign() {
        return format!(
            "{} holds this person's username and {why}: enid never writes or claims it and makes no account beside \
             it (a person whose account comes from there reaches this target that way)",
            o.key()
        );
    }
    let marked = o.attrs.get(owner_attr).is_some_and(|v| !v.is_empty());
    let what = if marked {
        format!("and holds this person's username (its {owner_attr} holds a value that is not this person's enid id)")
    } else {
        "and holds this person's username".to_string()
    };
    format!(
        "{} exists but was not created by enid {what}: if it is theirs, made before enid, claim it with a correlation \
         rule ([targets.{target}.policy.correlate]) or `enid adopt --entry KEY --person SOURCE/PERSON_ID`; if it is \
         not, record that with `enid adopt --entry KEY --person SOURCE/PERSON_ID --not-theirs` and the person gets \
         another username",
        o.key()
    )
}

/// A username as the target compares it.
fn fold_username<'a>(caps: &Capabilities, s: &'a str) -> std::borrow::Cow<'a, str> {
    if caps.case_insensitive_names { lowercase(s) } else { std::borrow::Cow::Borrowed(s) }
}

/// Lowercases without allocating when there is nothing to change (usernames usually).
pub(super) fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        std::borrow::Cow::Owned(s.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// The attributes of `desired` whose values differ from `observed`, and their old values.
/// Values compare as [`Value::satisfied_by`] says: texts as sets (LDAP does not keep value
/// order), complex values on the sub-attributes enid sets. An attribute the mapping manages but
/// `desired` lacks is removed.
pub(super) fn diff(
    desired: &Attrs,
    observed: &PackedAttrs,
    managed: &[String],
    places: &mut Places,
) -> (Vec<AttrChange>, Attrs) {
    let mut changes = Vec::new();
    let mut before = Attrs::new();
    // The observed strings by their place among the read's names, read in one pass (a packed
    // account of a read with few names; otherwise each attribute is looked up by name).
    let mut held: [Option<TextsOf<'_>>; Places::MOST] = [const { None }; Places::MOST];
    let by_place = observed.names().is_some_and(|names| places.learn(names, managed));
    if by_place {
        for (place, texts) in observed.by_place() {
            if let Some(slot) = held.get_mut(place) {
                *slot = Some(texts);
            }
        }
    }
    for (i, attr) in managed.iter().enumerate() {
        let want = desired.get(attr).unwrap_or(&connector_api::ABSENT);
        // The common case, read without making a value: packed strings (texts only) equal to
        // the desired text's, in the same order (an attribute not held reads as no strings).
        if let Value::Text(wanted) = want {
            let same = if by_place {
                let have = places.of_managed[i].and_then(|p| held[p].clone());
                wanted.iter().map(|s| s.as_str()).eq(have.into_iter().flatten())
            } else {
                observed.is_packed() && wanted.iter().map(|s| s.as_str()).eq(observed.texts(attr))
            };
            if same {
                continue;
            }
        }
        let have = observed.get(attr);
        let have = have.as_deref().unwrap_or(&connector_api::ABSENT);
        if !want.satisfied_by(have) {
            changes.push(AttrChange { attr: attr.clone(), values: want.clone() });
            before.insert(attr.clone(), have.clone());
        }
    }
    (changes, before)
}

/// Where each managed attribute sits among the names a target read shares with its accounts
/// ([`PackedAttrs::names`]), found once per list of names rather than by name for every
/// attribute of every account.
#[derive(Default)]
pub(super) struct Places {
    names: Option<Arc<[Name]>>,
    of_managed: Vec<Option<usize>>,
}

impl Places {
    /// The most names read by place (a read asks for a dozen or so).
    const MOST: usize = 32;

    /// Learns the places of `managed` among `names` unless known; false when there are too
    /// many names to read by place.
    fn learn(&mut self, names: &Arc<[Name]>, managed: &[String]) -> bool {
        if names.len() > Self::MOST {
            return false;
        }
        if !self.names.as_ref().is_some_and(|known| Arc::ptr_eq(known, names)) || self.of_managed.len() != managed.len()
        {
            // Exactly as `PackedAttrs::texts` finds a name.
            self.of_managed = managed.iter().map(|m| names.iter().position(|n| n.as_str() == m)).collect();
            self.names = Some(Arc::clone(names));
        }
        true
    }
}
