//! The JSON the server writes: each entity in the shape the specification gives it, with the
//! spellings of the chosen `Dialect`, references (`{id}`, with `displayName` when the request
//! asks for `expandReferenceNames`, and a person reference's `securityMarking`), and the
//! `_embedded` objects of `expand`.

use crate::Timestamps;
use crate::model::*;
use crate::store::Store;
use chrono::{DateTime, FixedOffset, NaiveDate, Offset, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// How to write one response's entities.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// Which spellings.
    pub dialect: Dialect,
    /// Whether references carry `displayName`.
    pub names: bool,
    /// Where references are looked up.
    pub store: &'a Store,
}

pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// A `meta` time as the configured servers write it.
pub(crate) fn stamp(t: DateTime<Utc>, style: Timestamps) -> String {
    match style {
        Timestamps::UtcMillis => time(t),
        Timestamps::LocalSeconds => {
            // Central European time as a fixed offset: the shape matters here, not the rules of
            // summer time.
            let cet = FixedOffset::east_opt(3600).unwrap_or_else(|| Utc.fix());
            t.with_timezone(&cet).to_rfc3339_opts(SecondsFormat::Secs, false)
        }
    }
}

/// Inserts `key` only when there is a value: optional fields are left out, not null.
fn opt<T: Into<Value>>(o: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        o.insert(key.into(), v.into());
    }
}

pub(crate) fn school_type(t: SchoolType, d: Dialect) -> &'static str {
    match (t, d) {
        (SchoolType::Fklass, _) => "FKLASS",
        (SchoolType::Gr, _) => "GR",
        (SchoolType::Fth, _) => "FTH",
        (SchoolType::Gy, _) => "GY",
        (SchoolType::Vux, Dialect::V2020) => "KOMVUX",
        (SchoolType::Vux, Dialect::V21) => "VUX",
    }
}

pub(crate) fn org_type(t: OrgType, d: Dialect) -> &'static str {
    match (t, d) {
        (OrgType::Huvudman, _) => "Huvudman",
        (OrgType::Forvaltning, Dialect::V2020) => "Övrigt",
        (OrgType::Forvaltning, Dialect::V21) => "Förvaltning",
        (OrgType::Skolenhet, _) => "Skolenhet",
    }
}

pub(crate) fn duty_role(r: DutyRole, d: Dialect) -> &'static str {
    match (r, d) {
        (DutyRole::Principal, _) => "Rektor",
        (DutyRole::Teacher, _) => "Lärare",
        (DutyRole::LeisureTeacher, Dialect::V21) => "Fritidspedagog",
        (DutyRole::TeachingAssistant, Dialect::V21) => "Lärarassistent",
        (DutyRole::SchoolNurse, Dialect::V21) => "Skolsköterska",
        (DutyRole::Counsellor, Dialect::V21) => "Kurator",
        (DutyRole::LeisureTeacher | DutyRole::TeachingAssistant, Dialect::V2020) => "Övrig pedagogisk personal",
        (DutyRole::SchoolNurse | DutyRole::Counsellor, Dialect::V2020) => "Annan personal",
    }
}

pub(crate) fn group_type(t: GroupType) -> &'static str {
    match t {
        GroupType::Class => "Klass",
        GroupType::Teaching => "Undervisning",
        GroupType::Mentor => "Mentor",
    }
}

pub(crate) fn security_marking(m: SecurityMarking) -> &'static str {
    match m {
        SecurityMarking::None => "Ingen",
        SecurityMarking::Confidential => "Sekretessmarkering",
        SecurityMarking::Protected => "Skyddad folkbokföring",
    }
}

fn sex(s: Sex) -> &'static str {
    match s {
        Sex::Female => "Kvinna",
        Sex::Male => "Man",
        Sex::Unknown => "Okänt",
    }
}

fn status(s: PersonStatus) -> &'static str {
    match s {
        PersonStatus::Active => "Aktiv",
        PersonStatus::Emigrated => "Utvandrad",
        PersonStatus::Deceased => "Avliden",
    }
}

fn email_type(t: EmailType) -> &'static str {
    match t {
        EmailType::Private => "Privat",
        EmailType::SchoolPupil => "Skola elev",
        EmailType::SchoolStaff => "Skola personal",
    }
}

fn address_type(t: AddressType, d: Dialect) -> &'static str {
    match (t, d) {
        (AddressType::Registered, _) => "Folkbokföring",
        (AddressType::SpecialPostal, Dialect::V2020) => "Särskildpostadress",
        (AddressType::SpecialPostal, Dialect::V21) => "Särskild postadress",
    }
}

fn relation(r: RelationType, d: Dialect) -> &'static str {
    match (r, d) {
        (RelationType::Guardian, _) => "Vårdnadshavare",
        (RelationType::OtherResponsible, _) => "Annan ansvarig",
        (RelationType::Appointed, Dialect::V2020) => "Annan behörig",
        (RelationType::Appointed, Dialect::V21) => "Utsedd behörig",
    }
}

fn placement_reason(d: Dialect) -> &'static str {
    match d {
        Dialect::V2020 => "Omsorg",
        Dialect::V21 => "Omsorgsbehov",
    }
}

impl Ctx<'_> {
    fn meta(&self, m: &Meta) -> Value {
        let style = self.store.timestamps;
        json!({ "created": stamp(m.created, style), "modified": stamp(m.modified, style) })
    }

    fn reference(&self, id: &str, name: Option<String>) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), id.into());
        if self.names {
            opt(&mut o, "displayName", name);
        }
        Value::Object(o)
    }

    pub fn org_ref(&self, id: &str) -> Value {
        self.reference(id, self.store.organisations.get(id).map(|o| o.display_name.clone()))
    }

    pub fn group_ref(&self, id: &str) -> Value {
        self.reference(id, self.store.groups.get(id).map(|g| g.display_name.clone()))
    }

    pub fn duty_ref(&self, id: &str) -> Value {
        let name = self.store.duties.get(id).and_then(|d| {
            let p = self.store.persons.get(&d.person)?;
            Some(format!("{} ({})", p.display_name(), duty_role(d.role, self.dialect)))
        });
        self.reference(id, name)
    }

    /// A person reference carries the person's `securityMarking`, as the specification says.
    pub fn person_ref(&self, id: &str) -> Value {
        let p = self.store.persons.get(id);
        let mut v = self.reference(id, p.map(Person::display_name));
        if let (Some(p), Value::Object(o)) = (p, &mut v) {
            o.insert("securityMarking".into(), security_marking(p.security_marking).into());
        }
        v
    }

    pub fn organisation(&self, org: &Organisation) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), org.id.clone().into());
        o.insert("meta".into(), self.meta(&org.meta));
        o.insert("displayName".into(), org.display_name.clone().into());
        o.insert("organisationType".into(), org_type(org.org_type, self.dialect).into());
        opt(&mut o, "organisationCode", org.organisation_code.clone());
        opt(&mut o, "schoolUnitCode", org.school_unit_code.clone());
        if !org.school_types.is_empty() {
            let types: Vec<Value> = org.school_types.iter().map(|t| school_type(*t, self.dialect).into()).collect();
            o.insert("schoolTypes".into(), types.into());
        }
        opt(&mut o, "municipalityCode", org.municipality_code.clone());
        opt(&mut o, "parentOrganisation", org.parent.as_deref().map(|p| self.org_ref(p)));
        opt(&mut o, "startDate", org.start_date.map(day));
        opt(&mut o, "endDate", org.end_date.map(day));
        Value::Object(o)
    }

    pub fn person(&self, p: &Person) -> Value {
        let d = self.dialect;
        let mut o = Map::new();
        o.insert("id".into(), p.id.clone().into());
        o.insert("meta".into(), self.meta(&p.meta));
        o.insert("givenName".into(), p.given_name.clone().into());
        opt(&mut o, "middleName", p.middle_name.clone());
        o.insert("familyName".into(), p.family_name.clone().into());
        opt(&mut o, "civicNo", p.civic_no.as_ref().map(|c| json!({ "value": c, "nationality": "SE" })));
        opt(&mut o, "birthDate", p.birth_date.map(day));
        o.insert("sex".into(), sex(p.sex).into());
        o.insert("securityMarking".into(), security_marking(p.security_marking).into());
        o.insert("personStatus".into(), status(p.status).into());
        if !p.eppns.is_empty() {
            o.insert("eduPersonPrincipalNames".into(), p.eppns.clone().into());
        }
        if !p.external_identifiers.is_empty() {
            let ids: Vec<Value> = p
                .external_identifiers
                .iter()
                .map(|e| json!({ "value": e.value, "context": e.context, "globallyUnique": e.globally_unique }))
                .collect();
            o.insert("externalIdentifiers".into(), ids.into());
        }
        if !p.emails.is_empty() {
            let emails: Vec<Value> = p
                .emails
                .iter()
                .map(|e| match (e.email_type, d) {
                    // 2020 left `type` optional and servers left it out for private addresses.
                    (EmailType::Private, Dialect::V2020) => json!({ "value": e.value }),
                    (t, _) => json!({ "value": e.value, "type": email_type(t) }),
                })
                .collect();
            o.insert("emails".into(), emails.into());
        }
        if !p.addresses.is_empty() {
            let a: Vec<Value> = p
                .addresses
                .iter()
                .map(|a| {
                    json!({ "type": address_type(a.address_type, d), "streetAddress": a.street_address,
                            "postalCode": a.postal_code, "locality": a.locality, "country": "Sverige" })
                })
                .collect();
            o.insert("addresses".into(), a.into());
        }
        if !p.enrolments.is_empty() {
            let e: Vec<Value> = p.enrolments.iter().map(|e| self.enrolment(e)).collect();
            o.insert("enrolments".into(), e.into());
        }
        if !p.responsibles.is_empty() {
            let r: Vec<Value> = p
                .responsibles
                .iter()
                .map(|r| json!({ "person": self.person_ref(&r.person), "relationType": relation(r.relation, d) }))
                .collect();
            o.insert("responsibles".into(), r.into());
        }
        Value::Object(o)
    }

    fn enrolment(&self, e: &Enrolment) -> Value {
        let mut o = Map::new();
        o.insert("enroledAt".into(), self.org_ref(&e.enroled_at));
        o.insert("schoolType".into(), school_type(e.school_type, self.dialect).into());
        opt(&mut o, "schoolYear", e.school_year);
        o.insert("startDate".into(), day(e.start_date).into());
        opt(&mut o, "endDate", e.end_date.map(day));
        opt(&mut o, "educationCode", e.education_code.clone());
        Value::Object(o)
    }

    pub fn duty(&self, duty: &Duty) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), duty.id.clone().into());
        o.insert("meta".into(), self.meta(&duty.meta));
        o.insert("person".into(), self.person_ref(&duty.person));
        o.insert("dutyAt".into(), self.org_ref(&duty.duty_at));
        o.insert("dutyRole".into(), duty_role(duty.role, self.dialect).into());
        opt(&mut o, "signature", duty.signature.clone());
        opt(&mut o, "dutyPercent", duty.duty_percent);
        o.insert("startDate".into(), day(duty.start_date).into());
        opt(&mut o, "endDate", duty.end_date.map(day));
        if !duty.assignment_roles.is_empty() {
            let a: Vec<Value> = duty
                .assignment_roles
                .iter()
                .map(|a| {
                    let mut r = Map::new();
                    r.insert("group".into(), self.group_ref(&a.group));
                    r.insert("assignmentRoleType".into(), a.role_type.clone().into());
                    opt(&mut r, "startDate", a.start_date.map(day));
                    opt(&mut r, "endDate", a.end_date.map(day));
                    Value::Object(r)
                })
                .collect();
            o.insert("assignmentRole".into(), a.into());
        }
        Value::Object(o)
    }

    /// A group without its memberships (`GroupFragment`, as a person's `groupMemberships` embed it).
    pub fn group_fragment(&self, g: &Group) -> Map<String, Value> {
        let mut o = Map::new();
        o.insert("id".into(), g.id.clone().into());
        o.insert("meta".into(), self.meta(&g.meta));
        o.insert("displayName".into(), g.display_name.clone().into());
        o.insert("groupType".into(), group_type(g.group_type).into());
        opt(&mut o, "schoolType", g.school_type.map(|t| school_type(t, self.dialect)));
        o.insert("organisation".into(), self.org_ref(&g.organisation));
        o.insert("startDate".into(), day(g.start_date).into());
        opt(&mut o, "endDate", g.end_date.map(day));
        o
    }

    pub fn group(&self, g: &Group) -> Value {
        let mut o = self.group_fragment(g);
        let m: Vec<Value> = g
            .memberships
            .iter()
            .map(|m| {
                let mut r = Map::new();
                r.insert("person".into(), self.person_ref(&m.person));
                opt(&mut r, "startDate", m.start_date.map(day));
                opt(&mut r, "endDate", m.end_date.map(day));
                Value::Object(r)
            })
            .collect();
        o.insert("groupMemberships".into(), m.into());
        Value::Object(o)
    }

    pub fn activity(&self, a: &Activity) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), a.id.clone().into());
        o.insert("meta".into(), self.meta(&a.meta));
        o.insert("displayName".into(), a.display_name.clone().into());
        o.insert("activityType".into(), "Undervisning".into());
        o.insert("calendarEventsRequired".into(), false.into());
        o.insert("organisation".into(), self.org_ref(&a.organisation));
        let groups: Vec<Value> = a.groups.iter().map(|g| self.group_ref(g)).collect();
        o.insert("groups".into(), groups.into());
        let teachers: Vec<Value> = a
            .teachers
            .iter()
            .map(|t| {
                let mut r = Map::new();
                r.insert("duty".into(), self.duty_ref(&t.duty));
                opt(&mut r, "startDate", t.start_date.map(day));
                opt(&mut r, "endDate", t.end_date.map(day));
                Value::Object(r)
            })
            .collect();
        o.insert("teachers".into(), teachers.into());
        o.insert("startDate".into(), day(a.start_date).into());
        opt(&mut o, "endDate", a.end_date.map(day));
        Value::Object(o)
    }

    pub fn placement(&self, p: &Placement) -> Value {
        let mut o = Map::new();
        o.insert("id".into(), p.id.clone().into());
        o.insert("meta".into(), self.meta(&p.meta));
        o.insert("child".into(), self.person_ref(&p.child));
        o.insert("placedAt".into(), self.org_ref(&p.placed_at));
        if !p.owners.is_empty() {
            let owners: Vec<Value> = p.owners.iter().map(|x| self.person_ref(x)).collect();
            o.insert("owners".into(), owners.into());
        }
        o.insert("schoolType".into(), school_type(p.school_type, self.dialect).into());
        o.insert("reason".into(), placement_reason(self.dialect).into());
        o.insert("startDate".into(), day(p.start_date).into());
        opt(&mut o, "endDate", p.end_date.map(day));
        Value::Object(o)
    }
}
