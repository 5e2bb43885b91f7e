//! Account planning: the diff from the desired accounts of one target to what it holds,
//! matched by ownership (anchor first), never touching what enid does not own. Pure.

use super::*;

/// What the planner needs besides the accounts: how the target names accounts (pure functions
/// giving the keys operations will produce) and the date.
pub struct KeyRules<'a> {
    /// The key of a new account with this username.
    pub key_for: &'a dyn Fn(&str) -> String,
    /// The key of the account at `key` after a rename to `username`.
    pub renamed: &'a dyn Fn(&str, &str) -> String,
    /// The key of the account at `key` after an enable.
    pub enabled: &'a dyn Fn(&str) -> String,
    /// Today, for grace periods.
    pub today: chrono::NaiveDate,
}

impl std::fmt::Debug for KeyRules<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRules")
    }
}

/// Plans one target.
///
/// `managed` names the attributes the mapping controls: only these are compared, and one the
/// mapping no longer yields is removed. `owner_attr` is the attribute that carries the enid id on
/// an account (LDAP `employeeNumber`).
///
/// How an identity's account is found: by the anchor its ownership row recorded, and only by
/// it. A row without an anchor (a pending create, or a target without anchors) falls back to
/// the recorded key, and only to an entry that carries the identity's id in `owner_attr`; a
/// pending create also adopts the entry that carries the id wherever it is. Anything else is
/// someone else's: an entry at the recorded key that is not the account, an entry with the
/// identity's username, and an entry carrying an enid id that no ownership row records are all
/// reported under `blocked` and never touched, and no account is created next to them.
pub fn plan_target(
    target: &str,
    desired: Vec<Desired>,
    observed: &[ObservedAccount],
    owned: &[&OwnedAccount],
    managed: &[String],
    owner_attr: &str,
    keys: &KeyRules<'_>,
) -> TargetPlan {
    let today = keys.today;
    let by_anchor: HashMap<&str, usize> =
        observed.iter().enumerate().filter_map(|(i, o)| Some((o.anchor.as_deref()?, i))).collect();
    // Most accounts are found by anchor; the key index is built only if something needs it.
    let by_key: std::cell::OnceCell<HashMap<String, usize>> = std::cell::OnceCell::new();
    let by_key =
        || by_key.get_or_init(|| observed.iter().enumerate().map(|(i, o)| (normalize_key(&o.key), i)).collect());
    let by_username: HashMap<std::borrow::Cow<'_, str>, usize> =
        observed.iter().enumerate().filter_map(|(i, o)| Some((lowercase(o.username.as_deref()?), i))).collect();
    // Entries that carry a value of enid's id form in the owner attribute, by that value.
    let by_owner_value: HashMap<&str, usize> =
        observed.iter().enumerate().flat_map(|(i, o)| owner_values(o, owner_attr).map(move |v| (v, i))).collect();
    let owned_by_identity: HashMap<&str, &OwnedAccount> = owned.iter().map(|o| (o.identity_id.as_str(), *o)).collect();
    let mut claimed = vec![false; observed.len()];
    let mut tp = TargetPlan { enid_entries: by_owner_value.len(), ..Default::default() };
    let carries_id = |o: &ObservedAccount, id: &str| o.attrs.get(owner_attr).is_some_and(|v| v.iter().any(|x| x == id));

    let push =
        |tp: &mut TargetPlan, d: &Desired, action: Action, reason: String, op: TargetOp, before: Option<Attrs>| {
            tp.summary.count(action);
            tp.operations.push(PlannedOp {
                action,
                target: target.to_string(),
                identity: d.identity_id.clone(),
                username: d.username.clone(),
                school: d.school.clone(),
                reason,
                op,
                before,
                protected: d.protected,
                needs_approval: d.needs_approval,
            });
        };
    let block = |tp: &mut TargetPlan, d: &Desired, reason: String| {
        tp.blocked.push(Blocked {
            target: target.into(),
            identity: d.identity_id.clone(),
            username: d.username.clone(),
            reason,
        });
    };
    for mut d in desired {
        let owned = owned_by_identity.get(d.identity_id.as_str()).copied();
        // Find the account this identity owns, or the one its pending create made.
        let mut found = None;
        if let Some(o) = owned {
            match o.anchor.as_deref() {
                Some(a) => found = by_anchor.get(a).copied(),
                None => {
                    let at_key = by_key().get(&normalize_key(&o.key)).copied();
                    found = at_key.filter(|&i| carries_id(&observed[i], &d.identity_id));
                    if found.is_none() && o.status == AccountStatus::Pending {
                        found = by_owner_value.get(d.identity_id.as_str()).copied();
                    }
                }
            }
            if let Some(i) = found.filter(|_| o.status == AccountStatus::Pending || o.anchor.is_none()) {
                tp.adoptions.push(Adoption {
                    target: target.into(),
                    identity: d.identity_id.clone(),
                    key: observed[i].key.clone(),
                    anchor: observed[i].anchor.clone(),
                    disabled: observed[i].disabled,
                });
            }
            if found.is_none()
                && let Some(&i) = by_key().get(&normalize_key(&o.key))
                && !claimed[i]
                && !carries_id(&observed[i], &d.identity_id)
            {
                // Something else stands where enid's account was (deleted and re-added by hand).
                claimed[i] = true; // never touch it, and never count it as ours
                block(
                    &mut tp,
                    &d,
                    format!(
                        "{} stands where enid's account is recorded, but it is another entry, not created by \
                         enid; it is left alone",
                        observed[i].key
                    ),
                );
                continue;
            }
        }

        if let Some(why) = d.held.take() {
            // Fail closed: an error never becomes empty attributes that the diff would remove.
            if let Some(i) = found {
                claimed[i] = true;
                if !observed[i].disabled && !d.provision_disabled {
                    tp.member_keys.push((d.identity_id.clone(), observed[i].key.clone()));
                }
            }
            block(&mut tp, &d, why);
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
                        push(&mut tp, &d, Action::Delete, reason, TargetOp::Delete { key: obs.key.clone() }, None);
                    } else if obs.disabled {
                        tp.summary.unchanged += 1;
                    } else {
                        let reason = d.inactive_reason.clone().unwrap_or_else(|| "no longer active".into());
                        push(&mut tp, &d, Action::Disable, reason, TargetOp::Disable { key: obs.key.clone() }, None);
                    }
                    continue;
                }
                let mut changed = false;
                // A username that changed (rename policy): rename first, then work on the new key.
                let mut key = obs.key.clone();
                if let Some(old) = obs.username.as_deref().filter(|u| !u.eq_ignore_ascii_case(&d.username)) {
                    let reason = format!("the name changed: {old} → {}", d.username);
                    let op = TargetOp::Rename { key: obs.key.clone(), username: d.username.clone() };
                    push(&mut tp, &d, Action::Rename, reason, op, None);
                    key = (keys.renamed)(&obs.key, &d.username);
                    changed = true;
                }
                if d.provision_disabled && !obs.disabled {
                    // Before the start date: kept current, but disabled and in no group.
                    let reason = d.inactive_reason.clone().unwrap_or_else(|| "starts later".into());
                    push(&mut tp, &d, Action::Disable, reason, TargetOp::Disable { key: key.clone() }, None);
                    changed = true;
                }
                let enable = obs.disabled && d.active;
                if enable {
                    push(
                        &mut tp,
                        &d,
                        Action::Enable,
                        if d.scheduled_start { START_REASON.into() } else { "active again".into() },
                        TargetOp::Enable { key: key.clone() },
                        None,
                    );
                    changed = true;
                }
                if !d.provision_disabled {
                    // Groups change after the account operations: a member is named by the key
                    // the account has once it is renamed and enabled.
                    let member = if enable { (keys.enabled)(&key) } else { key.clone() };
                    tp.member_keys.push((d.identity_id.clone(), member));
                }
                // Updates run before the enable (see `Action`): on the key after the rename.
                let (changes, before) = diff(&d.attrs, &obs.attrs, managed);
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
                    changed = true;
                }
                if !changed {
                    tp.summary.unchanged += 1;
                }
            }
            None => {
                // Never a second account: an entry carrying this identity's id that no ownership
                // row proves to be enid's is reported, and nothing is created next to it.
                if let Some(&i) = by_owner_value.get(d.identity_id.as_str()) {
                    claimed[i] = true;
                    block(&mut tp, &d, unrecorded_owner_value(&observed[i], &d.identity_id));
                    continue;
                }
                if !d.active && !d.provision_disabled {
                    continue; // inactive and no account: nothing to do
                }
                if let Some(&i) = by_username.get(&lowercase(&d.username)) {
                    claimed[i] = true;
                    block(&mut tp, &d, format!("{} exists but was not created by enid", observed[i].key));
                    continue;
                }
                let attrs = std::mem::take(&mut d.attrs);
                let (reason, disabled) = if d.active {
                    let reason = match owned {
                        Some(_) => "the account enid created is missing on the target; creating it again".to_string(),
                        None => "new person".to_string(),
                    };
                    tp.member_keys.push((d.identity_id.clone(), (keys.key_for)(&d.username)));
                    (reason, false)
                } else {
                    let why = d.inactive_reason.as_deref().unwrap_or("starts later");
                    (format!("{why}: created ahead, disabled until then"), true)
                };
                let op = TargetOp::Create { username: d.username.clone(), attrs, disabled };
                push(&mut tp, &d, Action::Create, reason, op, None);
            }
        }
    }
    // Entries carrying an enid id that no identity of this run claimed and no ownership row
    // records: enid's once perhaps (a state database restored from an old backup, or lost), but
    // nothing proves it now.
    let proof = OwnedIndex::new(owned);
    for (i, o) in observed.iter().enumerate() {
        if claimed[i] || proof.owns(o) {
            continue;
        }
        if let Some(id) = owner_values(o, owner_attr).next() {
            claimed[i] = true;
            tp.blocked.push(Blocked {
                target: target.into(),
                identity: id.to_string(),
                username: o.username.clone().unwrap_or_else(|| o.key.clone()),
                reason: unrecorded_owner_value(o, id),
            });
        }
    }
    tp.unmanaged = claimed.iter().enumerate().filter(|(i, c)| !**c && !proof.owns(&observed[*i])).count();
    tp.operations.sort_by(|a, b| (a.action, &a.username).cmp(&(b.action, &b.username)));
    tp.adoptions.sort_by(|a, b| a.key.cmp(&b.key));
    tp.blocked.sort_by(|a, b| (&a.username, &a.identity).cmp(&(&b.username, &b.identity)));
    tp
}

/// How many of the accounts enid owns and has seen (active or disabled; pending creates are
/// still a question) are not among the observed ones, by anchor or key, and of how many. Pure.
pub fn missing_accounts(owned: &[&OwnedAccount], observed: &[ObservedAccount]) -> (usize, usize) {
    let (missing, of) = missing_owned(owned, observed);
    (missing.len(), of)
}

/// The accounts enid owns and has seen that are not among the observed ones (by anchor or
/// key), and of how many: what the target guard counts and what is looked for out of scope.
/// Pure.
pub fn missing_owned<'a>(owned: &[&'a OwnedAccount], observed: &[ObservedAccount]) -> (Vec<&'a OwnedAccount>, usize) {
    let anchors: HashMap<&str, ()> = observed.iter().filter_map(|o| Some((o.anchor.as_deref()?, ()))).collect();
    let keys: std::cell::OnceCell<HashMap<String, ()>> = std::cell::OnceCell::new();
    let mut of = 0;
    let mut missing = Vec::new();
    for o in owned.iter().copied().filter(|o| o.status != AccountStatus::Pending) {
        of += 1;
        let by_anchor = o.anchor.as_deref().is_some_and(|a| anchors.contains_key(a));
        if !by_anchor
            && !keys
                .get_or_init(|| observed.iter().map(|o| (normalize_key(&o.key), ())).collect())
                .contains_key(&normalize_key(&o.key))
        {
            missing.push(o);
        }
    }
    (missing, of)
}

/// The values of enid's id form in an account's owner attribute (other values, such as HR
/// numbers, prove nothing).
pub fn owner_values<'a>(o: &'a ObservedAccount, owner_attr: &str) -> impl Iterator<Item = &'a str> {
    o.attrs.get(owner_attr).into_iter().flatten().map(String::as_str).filter(|v| is_enid_id(v))
}

/// Observed accounts that carry an enid id in the owner attribute but that no ownership row
/// records (by anchor, or by key for a row without one). Pure.
pub fn unrecorded_enid_entries<'a>(
    owned: &[&OwnedAccount],
    observed: &'a [ObservedAccount],
    owner_attr: &str,
) -> Vec<&'a ObservedAccount> {
    let proof = OwnedIndex::new(owned);
    observed.iter().filter(|o| owner_values(o, owner_attr).next().is_some() && !proof.owns(o)).collect()
}

/// Why an entry carrying an enid id that no ownership row records is left alone, and what to do.
pub(super) fn unrecorded_owner_value(o: &ObservedAccount, id: &str) -> String {
    format!(
        "{} carries enid id {id} but the state database does not record it as enid's: restore the state \
         database from a backup, or run `enid adopt`",
        o.key
    )
}

/// The ownership rows as a lookup: an entry is owned when a row recorded its anchor, or, for a
/// row without one, its key.
pub(super) struct OwnedIndex<'a> {
    anchors: HashMap<&'a str, ()>,
    keys: HashMap<String, ()>,
}

impl<'a> OwnedIndex<'a> {
    fn new(owned: &[&'a OwnedAccount]) -> Self {
        let anchors = owned.iter().filter_map(|o| Some((o.anchor.as_deref()?, ()))).collect();
        let keys = owned.iter().filter(|o| o.anchor.is_none()).map(|o| (normalize_key(&o.key), ())).collect();
        OwnedIndex { anchors, keys }
    }

    fn owns(&self, o: &ObservedAccount) -> bool {
        o.anchor.as_deref().is_some_and(|a| self.anchors.contains_key(a))
            || (!self.keys.is_empty() && self.keys.contains_key(&normalize_key(&o.key)))
    }
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
/// Values compare as sets: LDAP does not keep value order.
/// An attribute the mapping manages but `desired` lacks is removed.
pub(super) fn diff(desired: &Attrs, observed: &Attrs, managed: &[String]) -> (Vec<AttrChange>, Attrs) {
    let mut changes = Vec::new();
    let mut before = Attrs::new();
    for attr in managed {
        let want: &[String] = desired.get(attr).map(Vec::as_slice).unwrap_or(&[]);
        let have = observed.get(attr).map(Vec::as_slice).unwrap_or(&[]);
        if !same_values(want, have) {
            changes.push(AttrChange { attr: attr.clone(), values: want.to_vec() });
            before.insert(attr.clone(), have.to_vec());
        }
    }
    (changes, before)
}

/// Whether two value lists hold the same values, in any order.
pub(super) fn same_values(a: &[String], b: &[String]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a == b {
        return true; // the common case: same values in the same order
    }
    let mut a: Vec<&String> = a.iter().collect();
    let mut b: Vec<&String> = b.iter().collect();
    a.sort();
    b.sort();
    a == b
}
