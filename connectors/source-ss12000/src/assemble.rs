//! From SS 12000 entities to enid's records: pure, no IO, today is an argument.
//!
//! A person's record is built from the person (names, civic number, protection, e-mail, eppn,
//! external identifiers, status, enrolments) and from the entities that point at the person:
//! duties, placements, group memberships, and, through activities, the groups a teacher's duty
//! teaches. Only ties at a school unit in scope that have not ended count; a person left with
//! none is skipped and counted by why, never a rejected row. [`assemble_full`] does this for a
//! full read; [`merge`] applies an incremental read's changes to the records stored from the
//! last read.

use crate::wire::{self, Activity, Duty, Group, Organisation, Person, Placement, Ref};
use chrono::NaiveDate;
use connector_api::civic::{CivicNo, mask_if_civic, mask_raw};
use connector_api::{
    Affiliation, AffiliationKind, GroupMembership, GroupType, PriorQuery, Protection, Role, RowError, SourceRecord,
    TieDetails,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

/// Why a person is skipped: SS 12000 lists guardians and former pupils beside those enid
/// provisions.
pub const SKIP_NO_TIE: &str = "no enrolment, duty or placement (a guardian or other related person)";
/// Every tie is at a school unit outside `organisations`.
pub const SKIP_OUT_OF_SCOPE: &str = "no affiliation in the configured organisations";
/// Every tie in scope has ended.
pub const SKIP_ENDED: &str = "no current affiliation (every one has ended)";

/// Enumeration values the source did not know, each logged once (the value, never personal
/// data).
#[derive(Debug, Default)]
pub struct Warnings(Mutex<HashSet<(&'static str, String)>>);

impl Warnings {
    /// Logs an unknown value of `field` the first time it is seen, with what it is read as.
    pub fn unknown(&self, field: &'static str, value: &str, read_as: &str) {
        let first = self.0.lock().map(|mut seen| seen.insert((field, value.to_string()))).unwrap_or(true);
        if first {
            tracing::warn!(field, value, read_as, "SS 12000: a value enid does not know; read leniently");
        }
    }
}

/// The organisation elements: what a reference's id means, and which are in scope.
#[derive(Debug)]
pub struct Orgs {
    by_id: HashMap<String, OrgInfo>,
    /// `organisations` was given: only listed units are in scope.
    scoped: bool,
}

#[derive(Debug)]
struct OrgInfo {
    /// `schoolUnitCode`, or the id where there is none.
    code: String,
    name: Option<String>,
    in_scope: bool,
}

impl Orgs {
    /// The organisations the API listed and the configured scope (codes or ids; empty: all). A
    /// scope entry that matches no organisation is an error: a typo must not read as "this
    /// school has no one".
    pub fn new(orgs: &[Organisation], scope: &[String]) -> Result<Orgs, String> {
        let wanted: HashSet<&str> = scope.iter().map(|s| s.trim()).collect();
        let mut matched: HashSet<&str> = HashSet::new();
        let mut by_id = HashMap::with_capacity(orgs.len());
        for o in orgs {
            let code = o.school_unit_code.clone().filter(|c| !c.trim().is_empty()).unwrap_or_else(|| o.id.clone());
            let hit = [Some(o.id.as_str()), o.school_unit_code.as_deref().map(str::trim)]
                .into_iter()
                .flatten()
                .filter_map(|k| wanted.get(k).copied())
                .collect::<Vec<&str>>();
            let in_scope = scope.is_empty() || !hit.is_empty();
            matched.extend(hit);
            by_id.insert(o.id.clone(), OrgInfo { code, name: o.display_name.clone(), in_scope });
        }
        let mut unmatched: Vec<&&str> = wanted.iter().filter(|w| !matched.contains(**w)).collect();
        unmatched.sort();
        if !unmatched.is_empty() {
            return Err(format!(
                "organisations: {unmatched:?} match no organisation's schoolUnitCode or id in /organisations; \
                 fix the list (nothing is read while it names a school unit the server does not have)"
            ));
        }
        Ok(Orgs { by_id, scoped: !scope.is_empty() })
    }

    /// The name of the school unit with `code` as /organisations gives it now; `None` when it
    /// lists no unit with that code (the stored name is kept then).
    fn name_of_code(&self, code: &str) -> Option<&str> {
        self.by_id.values().find(|o| o.code == code).and_then(|o| o.name.as_deref())
    }

    /// A school unit code that a stored record holds and that no organisation listed now has:
    /// the unit's `schoolUnitCode` changed, or the unit left `/organisations`. An incremental
    /// read rebuilds only the persons that changed, so the others would keep the old code (and
    /// a school's persons would be split across two codes): the read is made a full one instead.
    /// A code that is an organisation's id (a unit without a code, or one /organisations did not
    /// list, in scope when every unit is) is known: the specification makes ids UUIDs.
    pub fn stale_code<'r>(&self, stored: impl IntoIterator<Item = &'r str>) -> Option<&'r str> {
        let codes: HashSet<&str> = self.by_id.values().map(|o| o.code.as_str()).collect();
        let an_id = |c: &str| c.len() == 36 && c.bytes().filter(|b| *b == b'-').count() == 4;
        stored.into_iter().find(|c| !codes.contains(c) && (self.scoped || !an_id(c)))
    }

    /// The school unit codes among `stored` (each with the names stored with it) whose unit is
    /// named otherwise now: every tie stored at one is renamed by an incremental read.
    pub fn renamed<'r>(&self, stored: &'r BTreeMap<String, BTreeSet<Option<String>>>) -> BTreeSet<&'r str> {
        stored
            .iter()
            .filter(|(code, names)| {
                self.name_of_code(code).is_some_and(|now| names.iter().any(|n| n.as_deref() != Some(now)))
            })
            .map(|(code, _)| code.as_str())
            .collect()
    }

    /// The school unit code and name of a reference, when it is in scope.
    fn unit(&self, r: &Ref) -> Option<(String, Option<String>)> {
        match self.by_id.get(&r.id) {
            Some(o) if o.in_scope => Some((o.code.clone(), o.name.clone().or_else(|| r.display_name.clone()))),
            Some(_) => None,
            // An element /organisations did not list: in scope only when every one is.
            None if !self.scoped => Some((r.id.clone(), r.display_name.clone())),
            None => None,
        }
    }
}

/// What every step needs besides the entities.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub orgs: &'a Orgs,
    pub today: NaiveDate,
    pub warnings: &'a Warnings,
}

/// A record being built, with what the skip reason needs to know.
#[derive(Debug, Clone)]
struct Draft {
    /// The record but its ties and memberships, which are gathered in `ties` and `groups` (a
    /// record's own lists are built whole: each value added to one is a new list) and put in
    /// place by [`Draft::finish`].
    rec: SourceRecord,
    ties: Vec<std::sync::Arc<Affiliation>>,
    groups: Vec<std::sync::Arc<GroupMembership>>,
    /// The person has a tie of any kind, anywhere, at any time.
    any_tie: bool,
    /// One of them is at a school unit in scope.
    in_scope: bool,
}

impl Draft {
    fn from_prior(rec: &SourceRecord) -> Draft {
        let mut rec = rec.clone();
        let ties = std::mem::take(&mut rec.affiliations).into_vec();
        let groups = std::mem::take(&mut rec.groups).into_vec();
        Draft { rec, ties, groups, any_tie: true, in_scope: true }
    }

    /// Adds a tie at `at`: counted, and kept when in scope and not ended.
    fn tie(&mut self, at: &Ref, mut aff: Affiliation, cx: Ctx<'_>) {
        self.any_tie = true;
        let Some((code, name)) = cx.orgs.unit(at) else { return };
        self.in_scope = true;
        if aff.end_date.is_some_and(|e| e < cx.today) {
            return;
        }
        aff.school_unit = Some(code.into());
        aff.details_mut().school_unit_name = name;
        self.ties.push(aff.into());
    }

    fn protect(&mut self, marking: Option<&str>, cx: Ctx<'_>) {
        if let Some(p) = protection(marking, cx) {
            self.rec.protection = self.rec.protection.max(Some(p));
        }
    }

    /// The record, or why the person is skipped.
    fn finish(self, today: NaiveDate) -> Result<SourceRecord, &'static str> {
        let Draft { mut rec, mut ties, mut groups, any_tie, in_scope } = self;
        ties.retain(|a| a.end_date.is_none_or(|e| e >= today));
        if ties.is_empty() {
            return Err(if !any_tie {
                SKIP_NO_TIE
            } else if !in_scope {
                SKIP_OUT_OF_SCOPE
            } else {
                SKIP_ENDED
            });
        }
        ties.sort();
        ties.dedup();
        groups.retain(|g| g.end_date.is_none_or(|e| e >= today));
        groups.sort();
        groups.dedup();
        (rec.affiliations, rec.groups) = (ties.into(), groups.into());
        Ok(rec)
    }
}

/// `securityMarking`: `Ingen` is none; a value enid does not know is the strongest protection
/// (fail closed: treating a protected person as unprotected cannot be undone).
fn protection(marking: Option<&str>, cx: Ctx<'_>) -> Option<Protection> {
    let m = marking?;
    match m {
        "Ingen" => None,
        "Sekretessmarkering" => Some(Protection::Sekretessmarkering),
        "Skyddad folkbokföring" => Some(Protection::SkyddadFolkbokforing),
        other => match Protection::parse(other) {
            Ok(p) => p,
            Err(_) => {
                cx.warnings.unknown("securityMarking", other, "Skyddad folkbokföring (protected)");
                Some(Protection::SkyddadFolkbokforing)
            }
        },
    }
}

fn group_type(value: &str, cx: Ctx<'_>) -> GroupType {
    match value {
        "Klass" => GroupType::Class,
        "Undervisning" => GroupType::Teaching,
        "Mentor" => GroupType::Mentor,
        "Provgrupp" | "Schema" | "Avdelning" | "Personalgrupp" | "Övrigt" => GroupType::Other,
        other => GroupType::parse(other).unwrap_or_else(|| {
            cx.warnings.unknown("groupType", other, "other");
            GroupType::Other
        }),
    }
}

/// The school e-mail address: a school one (`Skola elev`, `Skola personal`) first, then
/// `Arbete övrigt`, then one without a type (2020 makes the type optional); never `Privat`.
fn email(emails: &[wire::Email], cx: Ctx<'_>) -> Option<String> {
    let rank = |kind: Option<&str>| match kind {
        Some("Skola elev" | "Skola personal") => Some(0),
        Some("Arbete övrigt") => Some(1),
        None => Some(2),
        Some("Privat") => None,
        Some(other) => {
            cx.warnings.unknown("emails.type", other, "not a school address (left out)");
            None
        }
    };
    emails
        .iter()
        .filter(|e| !e.value.trim().is_empty())
        .filter_map(|e| Some((rank(e.kind.as_deref())?, e)))
        .min_by_key(|(r, _)| *r)
        .map(|(_, e)| e.value.trim().to_lowercase())
}

fn location(endpoint: &str, id: &str) -> String {
    format!("{endpoint}/{}", mask_if_civic(id))
}

fn reject(id: &str, message: String) -> RowError {
    RowError {
        location: location("persons", id),
        message,
        person_id: Some(id.to_string()),
        civic_no: None,
        school_unit: None,
    }
}

/// A person's own fields and enrolments; a person enid cannot use is a rejected row that names
/// the field.
fn person_draft(p: &Person, cx: Ctx<'_>) -> Result<Draft, Box<RowError>> {
    let name = |v: &Option<String>, field: &str| match v.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => Ok(n.to_string()),
        _ => Err(Box::new(reject(
            &p.id,
            format!("{field} is missing or empty; the person needs both names (fix it in the SIS)"),
        ))),
    };
    let given_name = name(&p.given_name, "givenName")?;
    let family_name = name(&p.family_name, "familyName")?;
    let civic_no = match &p.civic_no {
        Some(c) => {
            let (value, nationality) = c.parts();
            // A number of another country is no personnummer: it is not matched on.
            if nationality.eq_ignore_ascii_case("SE") && !value.trim().is_empty() {
                Some(CivicNo::parse(value, cx.today).map_err(|e| {
                    Box::new(reject(&p.id, format!("civicNo {} {e}; fix it in the SIS", mask_raw(value))))
                })?)
            } else {
                None
            }
        }
        None => None,
    };
    let deceased = match p.person_status.as_deref() {
        Some("Avliden") => true,
        None | Some("Aktiv" | "Utvandrad") => false,
        Some(other) => {
            cx.warnings.unknown("personStatus", other, "alive");
            false
        }
    };
    let mut external_ids: Vec<String> =
        p.external_identifiers.iter().map(|x| x.value.trim().to_string()).filter(|v| !v.is_empty()).collect();
    external_ids.sort();
    external_ids.dedup();
    let mut d = Draft {
        rec: SourceRecord {
            person_id: p.id.as_str().into(),
            given_name: given_name.into(),
            family_name: family_name.into(),
            civic_no,
            affiliations: Default::default(),
            groups: Default::default(),
            extras: connector_api::Extras::new(
                email(&p.emails, cx).map(Into::into),
                (p.edu_person_principal_names.iter().map(|e| e.trim()).find(|e| !e.is_empty()).map(str::to_lowercase))
                    .map(Into::into),
                external_ids.into(),
            ),
            protection: None,
            deceased,
            location: location("persons", &p.id).into(),
        },
        ties: Vec::new(),
        groups: Vec::new(),
        any_tie: false,
        in_scope: false,
    };
    d.protect(p.security_marking.as_deref(), cx);
    for e in p.enrolments.iter().filter(|e| e.cancelled != Some(true)) {
        let year = match &e.school_year {
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => None,
        };
        let aff = Affiliation {
            start_date: e.start_date,
            end_date: e.end_date,
            details: TieDetails {
                school_type: e.school_type.clone(),
                year,
                // An enrolment has no id of its own: the school unit's organisation id names
                // the tie, so a school unit whose code changes is still known as the recorded
                // primary (the prefix keeps it apart from the duty and placement ids `merge`
                // looks up).
                source_id: Some(format!("enrolment:{}", e.enroled_at.id)),
                ..TieDetails::default()
            }
            .boxed(),
            ..Affiliation::new(None, Role::Student)
        };
        d.tie(&e.enroled_at, aff, cx);
    }
    Ok(d)
}

fn duty_affiliation(duty: &Duty) -> Affiliation {
    Affiliation {
        start_date: duty.start_date,
        end_date: duty.end_date,
        details: TieDetails {
            duty_role: duty.duty_role.clone(),
            source_id: Some(duty.id.clone()),
            ..TieDetails::default()
        }
        .boxed(),
        ..Affiliation::new(None, Role::Staff)
    }
}

fn placement_affiliation(p: &Placement) -> Affiliation {
    Affiliation {
        kind: AffiliationKind::Placement,
        start_date: p.start_date,
        end_date: p.end_date,
        details: TieDetails {
            school_type: p.school_type.clone(),
            source_id: Some(p.id.clone()),
            ..TieDetails::default()
        }
        .boxed(),
        ..Affiliation::new(None, Role::Student)
    }
}

/// A group as a membership template (no dates), when its organisation is in scope.
fn group_template(g: &Group, cx: Ctx<'_>) -> Option<GroupMembership> {
    let (code, _) = cx.orgs.unit(&g.organisation)?;
    Some(GroupMembership {
        school_unit: Some(code.into()),
        name: g.display_name.trim().into(),
        kind: group_type(&g.group_type, cx),
        start_date: g.start_date,
        end_date: g.end_date,
        source_id: Some(g.id.clone()),
    })
}

fn dated(t: &GroupMembership, start: Option<NaiveDate>, end: Option<NaiveDate>) -> GroupMembership {
    GroupMembership { start_date: start.or(t.start_date), end_date: end.or(t.end_date), ..t.clone() }
}

/// The memberships teachers get from activities: each teacher's duty, through its person, joins
/// every group of the activity, for the teacher's dates (the activity's when none).
fn teacher_memberships<'a>(
    activities: &'a [Activity],
    templates: &'a HashMap<String, GroupMembership>,
    person_of_duty: &'a dyn Fn(&str) -> Option<String>,
) -> impl Iterator<Item = (String, GroupMembership)> + 'a {
    activities.iter().flat_map(move |a| {
        a.teachers.iter().flat_map(move |t| {
            let person = person_of_duty(&t.duty.id);
            a.groups.iter().filter_map(move |g| {
                let template = templates.get(&g.id)?;
                let m = dated(template, t.start_date.or(a.start_date), t.end_date.or(a.end_date));
                Some((person.clone()?, m))
            })
        })
    })
}

/// Everything a full read listed.
#[derive(Debug, Default)]
pub struct Full {
    pub persons: Vec<Person>,
    pub duties: Vec<Duty>,
    pub placements: Vec<Placement>,
    pub groups: Vec<Group>,
    pub activities: Vec<Activity>,
}

/// What assembling produced.
#[derive(Debug, Default)]
pub struct Assembled {
    /// Sorted by `person_id`.
    pub records: Vec<SourceRecord>,
    pub rejected: Vec<RowError>,
    pub skipped: BTreeMap<String, usize>,
}

/// The records of a full read.
pub fn assemble_full(full: &Full, cx: Ctx<'_>) -> Assembled {
    let mut out = Assembled::default();
    let mut drafts: HashMap<&str, Draft> = HashMap::with_capacity(full.persons.len());
    for p in &full.persons {
        match person_draft(p, cx) {
            Ok(d) => {
                drafts.insert(p.id.as_str(), d);
            }
            Err(e) => out.rejected.push(*e),
        }
    }
    let mut duty_person: HashMap<&str, &str> = HashMap::with_capacity(full.duties.len());
    for duty in &full.duties {
        let Some(person) = &duty.person else { continue };
        duty_person.insert(&duty.id, &person.id);
        if let Some(d) = drafts.get_mut(person.id.as_str()) {
            d.protect(person.security_marking.as_deref(), cx);
            d.tie(&duty.duty_at, duty_affiliation(duty), cx);
        }
    }
    for p in &full.placements {
        if let Some(d) = drafts.get_mut(p.child.id.as_str()) {
            d.protect(p.child.security_marking.as_deref(), cx);
            d.tie(&p.placed_at, placement_affiliation(p), cx);
        }
    }
    let mut templates: HashMap<String, GroupMembership> = HashMap::with_capacity(full.groups.len());
    for g in &full.groups {
        let Some(t) = group_template(g, cx) else { continue };
        for m in &g.group_memberships {
            if let Some(d) = drafts.get_mut(m.person.id.as_str()) {
                d.protect(m.person.security_marking.as_deref(), cx);
                d.groups.push(dated(&t, m.start_date, m.end_date).into());
            }
        }
        templates.insert(g.id.clone(), t);
    }
    let person_of_duty = |id: &str| duty_person.get(id).map(|p| p.to_string());
    for (person, m) in teacher_memberships(&full.activities, &templates, &person_of_duty) {
        if let Some(d) = drafts.get_mut(person.as_str()) {
            d.groups.push(m.into());
        }
    }
    for (_, d) in drafts {
        match d.finish(cx.today) {
            Ok(r) => out.records.push(r),
            Err(why) => *out.skipped.entry(why.to_string()).or_default() += 1,
        }
    }
    out.records.sort_by(|a, b| a.person_id.cmp(&b.person_id));
    out.rejected.sort_by(|a, b| a.location.cmp(&b.location));
    out
}

/// What an incremental read fetched: the entities changed since the watermark, the persons the
/// changes name that the stored records do not hold, the groups to rebuild whole (changed
/// ones, and those of changed activities) with every activity that teaches them, and what the
/// server deleted.
#[derive(Debug, Default)]
pub struct Changes {
    pub persons: Vec<Person>,
    pub duties: Vec<Duty>,
    pub placements: Vec<Placement>,
    pub groups: Vec<Group>,
    pub group_activities: Vec<Activity>,
    pub deleted: wire::Deleted,
}

/// What an incremental read makes of the stored records.
#[derive(Debug, Default)]
pub struct Merged {
    /// Records that are new or differ from the stored ones, sorted by `person_id`.
    pub changed: Vec<SourceRecord>,
    /// Persons deleted, or left with no current affiliation in scope, sorted.
    pub removed: Vec<String>,
    pub rejected: Vec<RowError>,
    pub skipped: BTreeMap<String, usize>,
}

/// What `merge` needs of the stored records for these changes: every person they name,
/// and every person holding a tie or group that changed or went, a duty a changed group's
/// activities name as a teacher's, or a tie at a school unit in `renamed`.
pub fn prior_query(ch: &Changes, renamed: &BTreeSet<&str>) -> PriorQuery {
    let mut q = PriorQuery::default();
    q.persons.extend(ch.persons.iter().map(|p| p.id.clone()));
    q.persons.extend(ch.duties.iter().filter_map(|d| d.person.as_ref().map(|p| p.id.clone())));
    q.persons.extend(ch.placements.iter().map(|p| p.child.id.clone()));
    q.persons.extend(ch.groups.iter().flat_map(|g| g.group_memberships.iter().map(|m| m.person.id.clone())));
    q.ties.extend(ch.duties.iter().map(|d| d.id.clone()));
    q.ties.extend(ch.placements.iter().map(|p| p.id.clone()));
    q.ties.extend(ch.deleted.duties.iter().chain(&ch.deleted.placements).cloned());
    q.ties.extend(ch.group_activities.iter().flat_map(|a| a.teachers.iter().map(|t| t.duty.id.clone())));
    q.groups.extend(ch.groups.iter().map(|g| g.id.clone()));
    q.groups.extend(ch.deleted.groups.iter().cloned());
    q.school_units.extend(renamed.iter().map(|c| c.to_string()));
    q
}

/// Applies an incremental read to the records stored from the last read (`prior`): a changed
/// person is rebuilt from the person and the ties and groups stored for them; a changed or
/// deleted duty or placement replaces or removes the affiliation with its id; a rebuilt
/// group's memberships replace those with its id. A person whose last current affiliation
/// went is removed (as in a full read, where such a person is absent), so the engine starts
/// the leaver's grace period. `prior` holds at least the stored records [`prior_query`] asks
/// for; more change nothing.
pub fn merge(prior: &[SourceRecord], ch: &Changes, cx: Ctx<'_>) -> Merged {
    let mut out = Merged::default();
    let stored: HashMap<&str, &SourceRecord> = prior.iter().map(|r| (r.person_id.as_str(), r)).collect();
    let mut tie_owner: HashMap<&str, &str> = HashMap::new();
    let mut group_holders: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in prior {
        for a in &r.affiliations {
            if let Some(id) = a.source_id() {
                tie_owner.insert(id, &r.person_id);
            }
        }
        for g in &r.groups {
            if let Some(id) = &g.source_id {
                group_holders.entry(id).or_default().push(&r.person_id);
            }
        }
    }
    let changed_ids: HashSet<&str> = ch.persons.iter().map(|p| p.id.as_str()).collect();
    let mut drafts: HashMap<String, Draft> = HashMap::new();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    // A person deleted and seen again since (the overlap) is not deleted.
    let deleted_persons: BTreeSet<&str> =
        ch.deleted.persons.iter().map(String::as_str).filter(|id| !changed_ids.contains(id)).collect();

    for p in &ch.persons {
        match person_draft(p, cx) {
            Ok(mut d) => {
                if let Some(old) = stored.get(p.id.as_str()) {
                    d.ties.extend(old.affiliations.iter().filter(|a| a.kind != AffiliationKind::Enrolment).cloned());
                    d.groups.extend(old.groups.iter().cloned());
                    d.any_tie |= !old.affiliations.is_empty();
                    d.in_scope |= !old.affiliations.is_empty();
                }
                drafts.insert(p.id.clone(), d);
                touched.insert(p.id.clone());
            }
            Err(e) => out.rejected.push(*e),
        }
    }
    let rejected: HashSet<String> = out.rejected.iter().filter_map(|e| e.person_id.clone()).collect();
    // The draft of a person: the rebuilt one, or the stored record; none for a person the
    // stored records do not hold (out of scope, or a guardian) and the read did not fetch.
    fn draft<'d>(
        drafts: &'d mut HashMap<String, Draft>,
        stored: &HashMap<&str, &SourceRecord>,
        rejected: &HashSet<String>,
        id: &str,
    ) -> Option<&'d mut Draft> {
        if rejected.contains(id) {
            return None;
        }
        if !drafts.contains_key(id) {
            drafts.insert(id.to_string(), Draft::from_prior(stored.get(id)?));
        }
        drafts.get_mut(id)
    }

    // Ties with an id: each changed or deleted one leaves its old holder first.
    let changed_ties = ch.duties.iter().map(|d| d.id.as_str()).chain(ch.placements.iter().map(|p| p.id.as_str()));
    let deleted_ties = ch.deleted.duties.iter().chain(&ch.deleted.placements).map(String::as_str);
    for id in changed_ties.chain(deleted_ties) {
        if let Some(owner) = tie_owner.get(id)
            && let Some(d) = draft(&mut drafts, &stored, &rejected, owner)
        {
            d.ties.retain(|a| a.source_id() != Some(id));
            touched.insert(owner.to_string());
        }
    }
    let deleted_duties: HashSet<&str> = ch.deleted.duties.iter().map(String::as_str).collect();
    let deleted_placements: HashSet<&str> = ch.deleted.placements.iter().map(String::as_str).collect();
    let mut duty_person: HashMap<&str, &str> = tie_owner.clone();
    for duty in ch.duties.iter().filter(|d| !deleted_duties.contains(d.id.as_str())) {
        let Some(person) = &duty.person else { continue };
        duty_person.insert(&duty.id, &person.id);
        if let Some(d) = draft(&mut drafts, &stored, &rejected, &person.id) {
            d.protect(person.security_marking.as_deref(), cx);
            d.tie(&duty.duty_at, duty_affiliation(duty), cx);
            touched.insert(person.id.clone());
        }
    }
    for p in ch.placements.iter().filter(|p| !deleted_placements.contains(p.id.as_str())) {
        if let Some(d) = draft(&mut drafts, &stored, &rejected, &p.child.id) {
            d.protect(p.child.security_marking.as_deref(), cx);
            d.tie(&p.placed_at, placement_affiliation(p), cx);
            touched.insert(p.child.id.clone());
        }
    }

    // Groups: a rebuilt or deleted group leaves every stored holder, then a rebuilt one gets
    // its members and teachers again.
    let deleted_groups: HashSet<&str> = ch.deleted.groups.iter().map(String::as_str).collect();
    let rebuilt: Vec<&Group> = ch.groups.iter().filter(|g| !deleted_groups.contains(g.id.as_str())).collect();
    for gid in ch.groups.iter().map(|g| g.id.as_str()).chain(deleted_groups.iter().copied()) {
        for holder in group_holders.get(gid).into_iter().flatten() {
            if let Some(d) = draft(&mut drafts, &stored, &rejected, holder) {
                d.groups.retain(|g| g.source_id.as_deref() != Some(gid));
                touched.insert(holder.to_string());
            }
        }
    }
    let mut templates: HashMap<String, GroupMembership> = HashMap::new();
    for g in rebuilt {
        let Some(t) = group_template(g, cx) else { continue };
        for m in &g.group_memberships {
            if let Some(d) = draft(&mut drafts, &stored, &rejected, &m.person.id) {
                d.protect(m.person.security_marking.as_deref(), cx);
                d.groups.push(dated(&t, m.start_date, m.end_date).into());
                touched.insert(m.person.id.clone());
            }
        }
        templates.insert(g.id.clone(), t);
    }
    let person_of_duty = |id: &str| duty_person.get(id).map(|p| p.to_string());
    let teachers: Vec<(String, GroupMembership)> =
        teacher_memberships(&ch.group_activities, &templates, &person_of_duty).collect();
    for (person, m) in teachers {
        if let Some(d) = draft(&mut drafts, &stored, &rejected, &person) {
            d.groups.push(m.into());
            touched.insert(person);
        }
    }

    // Organisations are read whole on every read: a school unit renamed since renames the ties
    // stored with it, though no person changed.
    let names: HashMap<&str, &str> = prior
        .iter()
        .flat_map(|r| r.affiliations.iter().filter_map(|a| a.school_unit.as_deref()))
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .filter_map(|code| Some((code, cx.orgs.name_of_code(code)?)))
        .collect();
    let renamed = |a: &Affiliation| {
        a.school_unit.as_deref().and_then(|c| names.get(c)).is_some_and(|n| a.school_unit_name() != Some(*n))
    };
    for r in prior.iter().filter(|r| r.affiliations.iter().any(|a| renamed(a))) {
        if draft(&mut drafts, &stored, &rejected, &r.person_id).is_some() {
            touched.insert(r.person_id.to_string());
        }
    }
    for d in drafts.values_mut() {
        for a in d.ties.iter_mut().filter(|a| renamed(a)) {
            let name = a.school_unit.as_deref().and_then(|c| names.get(c)).map(|n| n.to_string());
            std::sync::Arc::make_mut(a).details_mut().school_unit_name = name;
        }
    }

    for id in &deleted_persons {
        touched.remove(*id);
        out.removed.push(id.to_string());
    }
    for id in touched {
        let Some(d) = drafts.remove(&id) else { continue };
        let before = stored.get(id.as_str());
        match d.finish(cx.today) {
            Ok(r) if before.is_some_and(|b| **b == r) => {}
            Ok(r) => out.changed.push(r),
            Err(_) if before.is_some() => out.removed.push(id),
            Err(why) => *out.skipped.entry(why.to_string()).or_default() += 1,
        }
    }
    out.removed.sort();
    out.removed.dedup();
    out
}

#[cfg(test)]
mod tests;
