//! What every identity should have on each target (`DesiredStream`: from the records, the
//! lifecycle and the protected policy, in enid's vocabulary), who is kept as at the last run and
//! with which group members, who is protected (sticky), and which names exist. Pure.

use crate::core::identity::Resolution;
use crate::core::mapping::Mapping;
use crate::core::model::Usernames;
use crate::core::model::{Authority, Identity, IdentityId, Lifecycle, Snapshot};
use crate::core::names::RunNames;
use crate::core::naming::NameRequest;
use crate::core::plan::{self, Desired};
use chrono::NaiveDate;
use connector_api::{AccountSpec, Attrs, Capabilities, MemberForm, ObservedAccount, PackedAttrs, Role};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The member values of kept persons' accounts on one target (account keys, or usernames for
/// targets that name members by username), folded as the target compares them: their group
/// memberships stay as they are. Pure.
pub fn kept_members(
    kept: &HashSet<&str>,
    owned: &[&crate::core::model::OwnedAccount],
    observed: &[ObservedAccount],
    caps: &Capabilities,
    snapshot: &Snapshot,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if kept.is_empty() {
        return out;
    }
    let mine: Vec<&&crate::core::model::OwnedAccount> =
        owned.iter().filter(|o| kept.contains(o.identity_id.as_str())).collect();
    if mine.is_empty() {
        return out;
    }
    // Indexes, so that many kept persons against a large target stay linear.
    let by_anchor: HashMap<&str, &ObservedAccount> = observed.iter().filter_map(|a| Some((a.anchor()?, a))).collect();
    let by_key: HashMap<String, &ObservedAccount> = observed.iter().map(|a| (caps.key(a.key()), a)).collect();
    let fold = |m: &str| plan::fold_member(caps, m);
    for o in mine {
        let found =
            o.anchor().and_then(|x| by_anchor.get(x).copied()).or_else(|| by_key.get(&caps.key(o.key()?)).copied());
        if caps.groups == Some(MemberForm::Username) {
            let stored = snapshot.identities.get(&o.identity_id).and_then(Option::as_deref);
            out.extend(found.and_then(|a| a.username()).into_iter().chain(stored).map(fold));
        } else {
            out.extend(found.map(|a| a.key()).into_iter().chain(o.key()).map(fold));
        }
    }
    out
}

/// The persons a plan keeps as at the last run, as the plan shows them: by username, or by enid
/// id when a stored record marks protected personal data; sorted by what is shown. Pure.
pub fn kept_persons(resolution: &Resolution, snapshot: &Snapshot) -> Vec<plan::KeptPerson> {
    if resolution.kept.is_empty() {
        return Vec::new();
    }
    let kept: HashSet<&str> = resolution.kept.iter().map(|k| k.identity_id.as_str()).collect();
    let protected: HashSet<&str> = snapshot
        .all_records()
        .filter(|r| r.protected && kept.contains(r.identity_id.as_str()))
        .map(|r| r.identity_id.as_str())
        .collect();
    let mut out: Vec<plan::KeptPerson> = resolution
        .kept
        .iter()
        .map(|k| plan::KeptPerson {
            identity: k.identity_id.clone(),
            username: match snapshot.identities.get(&k.identity_id).and_then(Option::as_ref) {
                Some(u) if !protected.contains(k.identity_id.as_str()) => u.to_string(),
                _ => k.identity_id.to_string(),
            },
            reason: k.reasons.join("; "),
        })
        .collect();
    out.sort_by(|a, b| (&a.username, &a.identity).cmp(&(&b.username, &b.identity)));
    out
}

/// Identities on the `[identity] exclude` list, by enid id or `source/person_id`.
pub fn excluded_persons<'a>(resolution: &'a Resolution, list: &'a [String]) -> HashSet<&'a str> {
    let mut out = HashSet::new();
    if list.is_empty() {
        return out;
    }
    for ident in resolution.all() {
        let listed = list.iter().any(|e| {
            e == &ident.id || ident.records.iter().any(|r| e.split_once('/') == Some((&r.source, &r.record.person_id)))
        });
        if listed {
            out.insert(ident.id.as_str());
        }
    }
    out
}

/// What naming needs of a person: the names of the first (most authoritative) record, and
/// whether the name must not shape the username (protected personal data).
pub fn name_request(ident: &Identity) -> Option<NameRequest> {
    let first = &ident.records.first()?.record;
    Some(NameRequest {
        id: ident.id.clone(),
        given_name: first.given_name.to_string(),
        family_name: first.family_name.to_string(),
        pseudonymous: ident.is_protected(),
    })
}

/// The names identities already have (the state's, marked: [`RunNames`]), and name requests
/// for those that have none. Pure.
pub fn known_names(resolution: &Resolution, snapshot: &Snapshot) -> (RunNames, Vec<NameRequest>) {
    let mut names = RunNames::over(snapshot.identities.clone());
    let mut requests = Vec::new();
    for ident in resolution.all() {
        match snapshot.identities.get(&ident.id).and_then(Option::as_ref) {
            Some(u) => names.insert(ident.id.clone(), u.clone()),
            None => requests.extend(name_request(ident)),
        }
    }
    (names, requests)
}

/// One target's desired accounts, rendered as the planner reaches them: the identities named
/// before this run first, then those named in it, each in resolution order (the order the
/// planner always took them in). Only the account being compared is alive, not one per person
/// (about 1 KB each at the scale of issue 19).
///
/// Iterating renders every identity that has a name once; one whose account cannot be computed,
/// or who is held (a template failed), is reported in `failed` (id, why), and a held person is
/// still given to the planner, which leaves their account alone. The identities `left_out`
/// admits are rendered and reported like every other, and not given: excluded, or handled
/// beside the plan (moved out of scope). Pure.
pub struct DesiredStream<'a> {
    inputs: &'a DesiredInputs<'a>,
    target: TargetRules<'a>,
    left_out: &'a dyn Fn(&str) -> bool,
    failed: &'a mut Vec<(IdentityId, String)>,
    /// Where the iteration is in [`DesiredInputs::named`].
    at: Box<dyn Iterator<Item = (&'a Identity, &'a str)> + 'a>,
}

/// What the desired accounts of every target are computed from.
#[derive(Debug, Clone, Copy)]
pub struct DesiredInputs<'a> {
    pub resolution: &'a Resolution,
    /// The names given before this run, then those given in it: the planner takes the
    /// identities of the first before those of the second.
    pub names: (&'a RunNames, &'a Usernames),
    pub rules: Rules<'a>,
    /// See [`last_schools`].
    pub last_known: &'a HashMap<IdentityId, (String, bool, bool)>,
    pub today: NaiveDate,
}

impl<'a> DesiredInputs<'a> {
    /// The identities that have a name, with it, in plan order.
    fn named(&self) -> impl Iterator<Item = (&'a Identity, &'a str)> + 'a {
        let (resolution, (known, given)) = (self.resolution, self.names);
        let known = resolution.all().filter_map(move |i| known.get(&i.id).map(|u| (i, u.as_str())));
        known.chain(resolution.all().filter_map(move |i| given.get(&i.id).map(|u| (i, u.as_str()))))
    }
}

impl<'a> DesiredStream<'a> {
    pub fn new(
        inputs: &'a DesiredInputs<'a>,
        target: TargetRules<'a>,
        left_out: &'a dyn Fn(&str) -> bool,
        failed: &'a mut Vec<(IdentityId, String)>,
    ) -> Self {
        Self { inputs, target, left_out, failed, at: Box::new(inputs.named()) }
    }

    fn render(&self, ident: &Identity, username: &str) -> Result<Desired, String> {
        let i = self.inputs;
        desired_for(ident, &i.rules, username, i.last_known, &self.target, i.today)
    }
}

impl std::fmt::Debug for DesiredStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesiredStream").field("failed", &self.failed.len()).finish_non_exhaustive()
    }
}

impl Iterator for DesiredStream<'_> {
    type Item = Desired;

    fn next(&mut self) -> Option<Desired> {
        loop {
            let (ident, username) = self.at.next()?;
            match self.render(ident, username) {
                Ok(d) => {
                    if let Some(why) = &d.held {
                        tracing::error!(identity = %ident.id, reason = %why, "person held: their account cannot be computed");
                        self.failed.push((ident.id.clone(), why.clone()));
                    }
                    if !(self.left_out)(&ident.id) {
                        return Some(d);
                    }
                }
                Err(e) => self.failed.push((ident.id.clone(), e)),
            }
        }
    }
}

impl plan::DesiredAccounts for DesiredStream<'_> {
    fn select(&self, admit: &dyn Fn(&str) -> bool) -> Vec<Desired> {
        self.inputs
            .named()
            .filter(|(i, _)| admit(&i.id) && !(self.left_out)(&i.id))
            .filter_map(|(i, u)| self.render(i, u).ok())
            .collect()
    }
}

/// Absent identity → the schools its stored records last named (comma-separated, so a leaver's
/// log rows still name a school), whether any of them was staff (for the grace period), and
/// whether any marked protected personal data.
pub fn last_schools(snapshot: &Snapshot, resolution: &Resolution) -> HashMap<IdentityId, (String, bool, bool)> {
    let absent: HashSet<&str> = resolution.absent.iter().map(|i| i.id.as_str()).collect();
    let mut sets: HashMap<&IdentityId, (std::collections::BTreeSet<&str>, bool, bool)> = HashMap::new();
    if absent.is_empty() {
        return HashMap::new();
    }
    for rec in snapshot.all_records().filter(|r| absent.contains(r.identity_id.as_str())) {
        let e = sets.entry(&rec.identity_id).or_default();
        e.0.extend(rec.school_unit.as_deref());
        e.1 |= rec.staff;
        e.2 |= rec.protected;
    }
    sets.into_iter()
        .map(|(id, (s, staff, protected))| {
            (id.clone(), (s.into_iter().collect::<Vec<_>>().join(","), staff, protected))
        })
        .collect()
}

pub fn desired_for(
    ident: &Identity,
    rules: &Rules<'_>,
    username: &str,
    last_known: &HashMap<IdentityId, (String, bool, bool)>,
    target: &TargetRules<'_>,
    today: NaiveDate,
) -> Result<Desired, String> {
    let mapping = target.mapping;
    let Some(person) = ident.person(username, rules.authority, today) else {
        // Nothing stored about the person (an account `enid adopt` claimed for an identity
        // without records): the longer grace period is the safe side.
        let (school, staff, protected) =
            last_known.get(&ident.id).cloned().unwrap_or_else(|| (String::new(), true, false));
        let schools = if protected || school.is_empty() {
            Default::default()
        } else {
            school.split(',').map(Into::into).collect()
        };
        return Ok(Desired {
            id: ident.id.clone(),
            spec: AccountSpec {
                id: ident.id.shared(),
                username: username.into(),
                given_name: Default::default(),
                family_name: Default::default(),
                display_name: Default::default(),
                roles: [if staff { Role::Staff } else { Role::Student }].into_iter().collect(),
                schools,
                enabled: false,
                protected,
                attrs: PackedAttrs::default(),
                placement: None,
                initial_password: None,
            },
            active: false,
            inactive_reason: Some("no longer in any source".into()),
            provision_disabled: false,
            grace_days: rules.lifecycle.grace_days(staff),
            protected,
            needs_approval: protected && target.hold_changes,
            held: None,
            scheduled_start: false,
        });
    };
    // A protected person's accounts never carry the real name: templates see the username in
    // place of every name.
    let person = if person.protected { person.pseudonymised() } else { person };
    let staff = person.roles.contains(&"staff");
    let mut active = person.is_active(today);
    // Pupils past their end date keep working accounts until the configured day of their year.
    if !active
        && !staff
        && !person.deceased
        && let Some(end) = person.end_date.filter(|e| *e < today)
    {
        active =
            rules.lifecycle.kept_until(end).is_some_and(|k| today <= k) && person.start_date.is_none_or(|s| s <= today);
    }
    let starts = person.start_date.filter(|s| *s > today);
    let provision_disabled = starts.is_some_and(|s| {
        s.checked_sub_days(chrono::Days::new(u64::from(rules.lifecycle.create_days_before_start)))
            .is_some_and(|from| from <= today)
    });
    let inactive_reason = if active {
        None
    } else if person.deceased {
        // Disabled at once, whatever the dates say; deletion follows the usual grace period,
        // so a marking made by mistake loses nothing.
        Some("a source marks the person as deceased".into())
    } else if let Some(s) = starts {
        Some(format!("starts on {s}"))
    } else {
        person.end_date.filter(|e| *e < today).map(|e| match rules.lifecycle.kept_until(e).filter(|_| !staff) {
            Some(k) => format!("end date {e} has passed, and the summer keep ended on {k}"),
            None => format!("end date {e} has passed"),
        })
    };
    // Fail closed: a person whose attributes cannot be rendered is held, never planned on
    // empty attributes (the diff would remove every attribute the mapping manages).
    let (mut attrs, held) = match mapping.render(&person) {
        Ok(a) => (a, None),
        Err(e) => (Attrs::new(), Some(format!("attribute mapping failed: {e}; the account is left as it is"))),
    };
    if person.protected {
        // Only what logging in and recognising the account need.
        attrs.retain(|k, _| target.protected_attributes.iter().any(|a| a.eq_ignore_ascii_case(k)));
    }
    // Where the account lives: a protected person's in the neutral place, never by school.
    let mut held = held;
    let placement = match (person.protected, target.placement) {
        (true, Some(_)) => target.protected_placement.map(str::to_string),
        (false, Some(m)) => {
            match m.render(&person).map(|a| a.get("placement").and_then(|v| v.first()).map(str::to_string)) {
                Ok(Some(p)) => {
                    if let Some(why) = placement_problem(&p, target) {
                        let unit = person.school_unit.unwrap_or_default();
                        held.get_or_insert_with(|| {
                            format!("school unit {unit:?}: {p} {why}; the account is left as it is{PLACEMENT_FIX}")
                        });
                    }
                    Some(p)
                }
                Ok(None) => {
                    held.get_or_insert_with(|| "the placement template gives nothing for this person (no school unit?); the account is left as it is".into());
                    None
                }
                Err(e) => {
                    held.get_or_insert_with(|| format!("placement failed: {e}; the account is left as it is"));
                    None
                }
            }
        }
        (_, None) => None,
    };
    let roles = person.roles.iter().filter_map(|r| Role::parse(r)).collect();
    Ok(Desired {
        id: ident.id.clone(),
        spec: AccountSpec {
            id: ident.id.shared(),
            username: username.into(),
            given_name: person.given_name.into(),
            family_name: person.family_name.into(),
            display_name: crate::core::mapping::display_name(&person).into(),
            roles,
            schools: person.school_units.iter().map(|&s| s.into()).collect(),
            enabled: active,
            protected: person.protected,
            attrs: PackedAttrs::plain(attrs),
            placement: placement.map(String::into_boxed_str),
            initial_password: None,
        },
        active,
        inactive_reason,
        provision_disabled: !active && provision_disabled,
        grace_days: rules.lifecycle.grace_days(staff),
        protected: person.protected,
        needs_approval: person.protected && target.hold_changes,
        held,
        scheduled_start: active
            && person.start_date.is_some_and(|s| {
                s <= today
                    && s.checked_add_days(chrono::Days::new(u64::from(rules.lifecycle.create_days_before_start)))
                        .is_some_and(|until| today <= until)
            }),
    })
}

/// Why the target cannot hold a person who is not protected at `placement`, when it cannot: the
/// place of protected persons (which says nothing of a school) is theirs alone, and the target
/// may refuse the container's name (`Capabilities::placement_problem`).
fn placement_problem(placement: &str, target: &TargetRules<'_>) -> Option<String> {
    if target.protected_placement.is_some_and(|p| (target.fold_key)(p) == (target.fold_key)(placement)) {
        return Some("is where persons with protected personal data live".into());
    }
    target.placement_problem.and_then(|check| check(placement)).map(|why| format!("cannot be made: {why}"))
}

/// What a held person's placement asks to be fixed.
const PLACEMENT_FIX: &str = "; fix the school unit's name in the source, or the target's placement template";

/// The message of a person held on target `target` because `why`: what to fix is the target's
/// attribute templates, unless the reason is a placement, which says its own fix.
pub fn held_message(target: &str, why: &str) -> String {
    if why.ends_with(PLACEMENT_FIX) { why.to_string() } else { format!("{why}; fix [targets.{target}.attributes]") }
}

/// Identities with protected personal data: marked by a record now, or by a stored record.
pub fn protected_ids(resolution: &Resolution, snapshot: &Snapshot) -> HashSet<IdentityId> {
    let mut out: HashSet<IdentityId> =
        resolution.present.iter().filter(|i| i.is_protected()).map(|i| i.id.clone()).collect();
    out.extend(snapshot.all_records().filter(|r| r.protected).map(|r| r.identity_id.clone()));
    out
}

/// Protection is sticky: a person the state knows as protected stays protected when the sources
/// stop marking them, until an operator approves the release (`--accept-protected`). Marks their
/// records protected again and returns their ids, sorted.
pub fn keep_protection(resolution: &mut Resolution, snapshot: &Snapshot) -> Vec<IdentityId> {
    let stored: HashSet<&str> =
        snapshot.all_records().filter(|r| r.protected).map(|r| r.identity_id.as_str()).collect();
    if stored.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for ident in &mut resolution.present {
        if stored.contains(ident.id.as_str()) && !ident.is_protected() {
            for r in &mut ident.records {
                r.record.protection = Some(connector_api::Protection::Sekretessmarkering);
            }
            out.push(ident.id.clone());
        }
    }
    out.sort();
    out
}

/// Per-target inputs of the desired state.
#[derive(Debug, Clone, Copy)]
pub struct TargetRules<'a> {
    pub mapping: &'a Mapping,
    /// The only attributes a person with protected personal data gets.
    pub protected_attributes: &'a [String],
    /// Every change to a protected person waits for explicit approval.
    pub hold_changes: bool,
    /// Where accounts live (a one-attribute mapping, `placement`), for a target that places
    /// accounts.
    pub placement: Option<&'a Mapping>,
    /// Where a protected person's account lives instead.
    pub protected_placement: Option<&'a str>,
    /// Why the target cannot hold accounts at a placement, when it cannot (from its
    /// capabilities).
    pub placement_problem: Option<fn(&str) -> Option<String>>,
    /// Two placements (keys) that name the same place fold to one string.
    pub fold_key: fn(&str) -> String,
}

/// What decides a person's desired state besides their records.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub authority: &'a Authority,
    pub lifecycle: &'a Lifecycle,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_placement_the_target_cannot_hold_holds_the_person_with_its_own_fix() {
        let mapping = Mapping::new(&BTreeMap::new()).unwrap();
        let rules = TargetRules {
            mapping: &mapping,
            protected_attributes: &[],
            hold_changes: false,
            placement: None,
            protected_placement: Some("OU=Skyddade,DC=x"),
            placement_problem: Some(|p| p.starts_with("OU=Lång").then(|| "a name too long".to_string())),
            fold_key: |k| k.to_lowercase(),
        };
        assert_eq!(
            placement_problem("ou=skyddade,dc=x", &rules).as_deref(),
            Some("is where persons with protected personal data live"),
            "the protected persons' place, as the target compares places"
        );
        assert_eq!(placement_problem("OU=Lång,DC=x", &rules).as_deref(), Some("cannot be made: a name too long"));
        assert_eq!(placement_problem("OU=Norr,DC=x", &rules), None);
        let placed = format!("school unit \"Lång\": OU=Lång,DC=x cannot be made; left{PLACEMENT_FIX}");
        assert_eq!(held_message("ad", &placed), placed, "a placement names its own fix");
        assert_eq!(held_message("ad", "mail failed"), "mail failed; fix [targets.ad.attributes]");
    }

    fn person(id: &str, given: &str) -> Identity {
        Identity {
            id: id.into(),
            is_new: false,
            records: connector_api::source::smallvec![crate::core::model::Sourced {
                source: "sis".into(),
                record: Box::new(connector_api::SourceRecord {
                    person_id: id.into(),
                    given_name: given.into(),
                    family_name: "Berg".into(),
                    civic_no: None,
                    affiliations: vec![connector_api::Affiliation::new(Some("S1".into()), Role::Student).into()].into(),
                    groups: Default::default(),
                    location: Default::default(),
                    extras: connector_api::Extras::new(None, None, Box::default()),
                    protection: None,
                    deceased: false,
                }),
            }],
            primary: None,
        }
    }

    /// The stream gives what the planner always took, in its order (names given before the run
    /// first, then this run's), renders each identity once, reports every failure (also of a
    /// person left out), and `select` renders beside the iteration without reporting.
    #[test]
    fn desired_accounts_stream_in_plan_order_and_report_each_failure_once() {
        let mut templates = BTreeMap::new();
        let mail = "{% if given_name == \"Bad\" %}{{ nope }}{% else %}{{ username }}@x{% endif %}";
        templates.insert("mail".to_string(), crate::core::mapping::AttrTemplate::text(mail));
        let mapping = Mapping::new(&templates).unwrap();
        let target = TargetRules {
            mapping: &mapping,
            protected_attributes: &[],
            hold_changes: false,
            placement: None,
            protected_placement: None,
            placement_problem: None,
            fold_key: |k| k.to_lowercase(),
        };
        let resolution = Resolution {
            present: vec![person("a", "Anna"), person("b", "Bo"), person("c", "Bad"), person("d", "Dan")],
            absent: vec![Identity { id: "e".into(), is_new: false, records: Default::default(), primary: None }],
            ..Default::default()
        };
        let names =
            |pairs: &[(&str, &str)]| -> Usernames { pairs.iter().map(|(i, u)| ((*i).into(), (*u).into())).collect() };
        // d has no name (its naming failed): it has no account.
        let known = names(&[("a", "anna"), ("c", "bad"), ("e", "eve")]).into_iter().collect();
        let new = names(&[("b", "bo")]);
        let (authority, lifecycle) = (Authority::default(), Lifecycle::default());
        let inputs = DesiredInputs {
            resolution: &resolution,
            names: (&known, &new),
            rules: Rules { authority: &authority, lifecycle: &lifecycle },
            last_known: &HashMap::new(),
            today: "2026-12-05".parse().unwrap(),
        };
        let left_out = |i: &str| i == "a";
        let mut failed = Vec::new();
        let stream = DesiredStream::new(&inputs, target, &left_out, &mut failed);
        let ids = |ds: &[Desired]| ds.iter().map(|d| d.id().as_str()).collect::<Vec<_>>().join(" ");
        use crate::core::plan::DesiredAccounts;
        assert_eq!(ids(&stream.select(&|_| true)), "c e b", "select leaves out what the planner is not given");
        assert_eq!(ids(&stream.select(&|i| i == "b")), "b");
        let given: Vec<Desired> = stream.collect();
        assert_eq!(ids(&given), "c e b", "known names first, then new ones; a left out");
        assert_eq!(given[0].held.as_deref().map(|h| h.starts_with("attribute mapping failed")), Some(true));
        assert_eq!(given[1].spec.attrs.len(), 0, "a person no source has: only disabled");
        assert_eq!(given[2].spec.attrs.texts("mail").next(), Some("bo@x"));
        // The account's id is the identity's own string, for a person with records and one
        // without (a plan holds a million creates: no copy each).
        for (d, ident) in given.iter().zip([&resolution.present[2], &resolution.absent[0], &resolution.present[1]]) {
            assert!(std::sync::Arc::ptr_eq(&d.spec.id, &ident.id.shared()), "{} shares its id", d.id().as_str());
            assert_eq!(&*d.spec.id, ident.id.as_str());
        }
        assert_eq!(failed.len(), 1, "c once, though select rendered it twice: {failed:?}");
        assert_eq!(failed[0].0, "c");

        // A person left out is still reported when their account cannot be computed.
        let left_out = |i: &str| i == "c";
        let mut failed = Vec::new();
        let given: Vec<Desired> = DesiredStream::new(&inputs, target, &left_out, &mut failed).collect();
        assert_eq!(ids(&given), "a e b");
        assert_eq!(failed.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["c"]);
    }
}
