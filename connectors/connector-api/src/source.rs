//! What a source connector gives the engine: person records, and the rows it had to reject.

use crate::civic::CivicNo;
use crate::error::BoxError;
use crate::value::Str;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
pub use smallvec::{SmallVec, smallvec};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;

mod interner;
pub use interner::{Interner, Shared, shared};

/// A person's role in the school organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Student,
    Staff,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Staff => "staff",
        }
    }

    /// Parses the values sources use. Swedish words are accepted too.
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "student" | "pupil" | "elev" => Some(Role::Student),
            "staff" | "teacher" | "employee" | "personal" | "lärare" | "larare" | "anställd" => Some(Role::Staff),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`Role`]s (an account's: a person may be a pupil and staff at once), one byte in
/// place of a vector: it iterates, compares and serialises as the sorted list of roles it
/// replaced (`["student", "staff"]`), so plan ids do not change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    const ALL: [Role; 2] = [Role::Student, Role::Staff];

    fn bit(role: Role) -> u8 {
        1 << role as u8
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & Self::bit(role) != 0
    }

    pub fn insert(&mut self, role: Role) {
        self.0 |= Self::bit(role);
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles in their order (pupil first).
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Self::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl FromIterator<Role> for Roles {
    fn from_iter<I: IntoIterator<Item = Role>>(roles: I) -> Roles {
        let mut set = Roles::default();
        for r in roles {
            set.insert(r);
        }
        set
    }
}

impl Serialize for Roles {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// What kind of tie an [`Affiliation`] is: it decides which tie is a person's primary one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AffiliationKind {
    /// A pupil enrolled in a school unit (SS 12000 `enrolments`, a CSV row of a pupil).
    Enrolment,
    /// A pupil placed in a preschool or an after-school centre (SS 12000 `placements`): never
    /// primary while the person has an enrolment or a duty.
    Placement,
    /// A staff member's duty at a school unit (SS 12000 `duties`, a CSV row of staff).
    Duty,
}

/// A person's tie to one school unit, with its dates. A pupil enrolled in a school and placed in
/// an after-school centre, a teacher with duties at three schools, a pupil who changes school on
/// a date: each is several affiliations of one record. (A *placement* of an account is where a
/// target keeps it; that is another thing.)
///
/// What only some sources give (a school's name, a duty role, a school type, a year, the tie's
/// own id) is in [`TieDetails`], boxed and `None` when there is none: a CSV row has none of it,
/// and a million CSV records then hold no room for five absent texts (112 bytes each). The tie
/// compares, orders, hashes and serialises as the flat record it always was (its details read
/// through [`Affiliation::school_unit_name`] and the like), so plans, stored JSON and content
/// fingerprints are the same as before the details were boxed.
#[derive(Clone)]
pub struct Affiliation {
    /// The school unit's code (`schoolUnitCode`; the organisation id where there is none).
    /// `None` when the source gives none (a CSV row with an empty `school_unit`).
    pub school_unit: Option<Str>,
    pub kind: AffiliationKind,
    /// Pupil or staff.
    pub role: Role,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// What only some sources give; `None` when the tie has none of it ([`TieDetails::boxed`]).
    /// Read through the accessors, which see an empty box and `None` alike.
    pub details: Option<Box<TieDetails>>,
}

/// The parts of an [`Affiliation`] that only some sources give.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TieDetails {
    /// The school unit's display name, when the source has one (CSV has none).
    pub school_unit_name: Option<String>,
    /// Staff: the duty role as the source names it (`Lärare`, `Rektor`).
    pub duty_role: Option<String>,
    /// The school type as the source codes it (SS 12000 `GR`, `GY`, `FTH`).
    pub school_type: Option<String>,
    /// The school year (årskurs) of a pupil, as the source writes it.
    pub year: Option<String>,
    /// The source's own id of the tie (an enrolment's or duty's id), which an incremental
    /// read uses to replace or remove it.
    pub source_id: Option<String>,
}

impl TieDetails {
    /// The details boxed, or `None` when they hold nothing (the form an [`Affiliation`] keeps).
    pub fn boxed(self) -> Option<Box<TieDetails>> {
        (self != TieDetails::default()).then(|| Box::new(self))
    }
}

/// An affiliation as every comparison sees it: its fields in the order they were declared
/// before the details were boxed (the order ties sort in).
type TieKey<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    AffiliationKind,
    Role,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<NaiveDate>,
    Option<NaiveDate>,
    Option<&'a str>,
);

impl Affiliation {
    fn key(&self) -> TieKey<'_> {
        (
            self.school_unit.as_deref(),
            self.school_unit_name(),
            self.kind,
            self.role,
            self.duty_role(),
            self.school_type(),
            self.year(),
            self.start_date,
            self.end_date,
            self.source_id(),
        )
    }

    fn detail(&self, f: impl Fn(&TieDetails) -> &Option<String>) -> Option<&str> {
        self.details.as_deref().and_then(|d| f(d).as_deref())
    }

    /// The school unit's display name, when the source has one (CSV has none).
    pub fn school_unit_name(&self) -> Option<&str> {
        self.detail(|d| &d.school_unit_name)
    }

    /// Staff: the duty role as the source names it (`Lärare`, `Rektor`).
    pub fn duty_role(&self) -> Option<&str> {
        self.detail(|d| &d.duty_role)
    }

    /// The school type as the source codes it (SS 12000 `GR`, `GY`, `FTH`).
    pub fn school_type(&self) -> Option<&str> {
        self.detail(|d| &d.school_type)
    }

    /// The school year (årskurs) of a pupil, as the source writes it.
    pub fn year(&self) -> Option<&str> {
        self.detail(|d| &d.year)
    }

    /// The source's own id of the tie (an enrolment's or duty's id).
    pub fn source_id(&self) -> Option<&str> {
        self.detail(|d| &d.source_id)
    }

    /// The details to change in place, boxed on first use. (An emptied box still reads as no
    /// details.)
    pub fn details_mut(&mut self) -> &mut TieDetails {
        self.details.get_or_insert_with(Default::default)
    }
}

impl PartialEq for Affiliation {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Affiliation {}

impl PartialOrd for Affiliation {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Affiliation {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl std::hash::Hash for Affiliation {
    /// As the flat struct's derived hash: each field in order, an absent text as `None`
    /// (records' content fingerprints stay what the state holds).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl fmt::Debug for Affiliation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Affiliation")
            .field("school_unit", &self.school_unit)
            .field("school_unit_name", &self.school_unit_name())
            .field("kind", &self.kind)
            .field("role", &self.role)
            .field("duty_role", &self.duty_role())
            .field("school_type", &self.school_type())
            .field("year", &self.year())
            .field("start_date", &self.start_date)
            .field("end_date", &self.end_date)
            .field("source_id", &self.source_id())
            .finish()
    }
}

/// An affiliation as JSON writes it (the stored records' form, unchanged).
#[derive(Serialize)]
struct TieOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    school_unit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    school_unit_name: Option<&'a str>,
    kind: AffiliationKind,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    duty_role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    school_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    year: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_id: Option<&'a str>,
}

impl Serialize for Affiliation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TieOut {
            school_unit: self.school_unit.as_deref(),
            school_unit_name: self.school_unit_name(),
            kind: self.kind,
            role: self.role,
            duty_role: self.duty_role(),
            school_type: self.school_type(),
            year: self.year(),
            start_date: self.start_date,
            end_date: self.end_date,
            source_id: self.source_id(),
        }
        .serialize(s)
    }
}

/// An affiliation as JSON gives it.
#[derive(Deserialize)]
struct TieIn {
    #[serde(default)]
    school_unit: Option<Str>,
    #[serde(default)]
    school_unit_name: Option<String>,
    kind: AffiliationKind,
    role: Role,
    #[serde(default)]
    duty_role: Option<String>,
    #[serde(default)]
    school_type: Option<String>,
    #[serde(default)]
    year: Option<String>,
    #[serde(default)]
    start_date: Option<NaiveDate>,
    #[serde(default)]
    end_date: Option<NaiveDate>,
    #[serde(default)]
    source_id: Option<String>,
}

impl<'de> Deserialize<'de> for Affiliation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Affiliation, D::Error> {
        let t = TieIn::deserialize(d)?;
        Ok(Affiliation {
            school_unit: t.school_unit,
            kind: t.kind,
            role: t.role,
            start_date: t.start_date,
            end_date: t.end_date,
            details: TieDetails {
                school_unit_name: t.school_unit_name,
                duty_role: t.duty_role,
                school_type: t.school_type,
                year: t.year,
                source_id: t.source_id,
            }
            .boxed(),
        })
    }
}

impl Affiliation {
    /// A tie with only a school unit and a role: what a CSV row gives.
    pub fn new(school_unit: Option<Str>, role: Role) -> Affiliation {
        let kind = match role {
            Role::Student => AffiliationKind::Enrolment,
            Role::Staff => AffiliationKind::Duty,
        };
        Affiliation { school_unit, kind, role, start_date: None, end_date: None, details: None }
    }

    /// Whether the tie holds on `day`.
    pub fn holds_on(&self, day: NaiveDate) -> bool {
        self.start_date.is_none_or(|s| s <= day) && self.end_date.is_none_or(|e| e >= day)
    }
}

/// What a group is for. SS 12000's `Klass` is `Class`, `Undervisning` `Teaching`, `Mentor`
/// `Mentor`; every other group type is `Other`. A CSV group is a class unless its row says
/// otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupType {
    Class,
    Teaching,
    Mentor,
    Other,
}

impl GroupType {
    pub const ALL: [GroupType; 4] = [GroupType::Class, GroupType::Teaching, GroupType::Mentor, GroupType::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Class => "class",
            GroupType::Teaching => "teaching",
            GroupType::Mentor => "mentor",
            GroupType::Other => "other",
        }
    }

    /// Parses enid's names and the SS 12000 group types (`Klass`, `Undervisning`, `Mentor`);
    /// `None` for anything else, which the caller decides about.
    pub fn parse(s: &str) -> Option<GroupType> {
        match s.trim().to_lowercase().as_str() {
            "class" | "klass" => Some(GroupType::Class),
            "teaching" | "undervisning" => Some(GroupType::Teaching),
            "mentor" => Some(GroupType::Mentor),
            "other" | "övrigt" | "ovrigt" => Some(GroupType::Other),
            _ => None,
        }
    }
}

impl fmt::Display for GroupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person's membership of one group (a class, a teaching group).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupMembership {
    /// The group's school unit code (the code of the row's school unit for CSV), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school_unit: Option<Str>,
    /// The group's name as the school writes it (`7A`).
    pub name: Str,
    #[serde(rename = "type")]
    pub kind: GroupType,
    /// The membership's dates, when the source gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    /// The source's own id of the group, which an incremental read uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

impl GroupMembership {
    /// A class membership with no dates: what a CSV row gives.
    pub fn class(school_unit: Option<Str>, name: impl Into<Str>) -> GroupMembership {
        GroupMembership {
            school_unit,
            name: name.into(),
            kind: GroupType::Class,
            start_date: None,
            end_date: None,
            source_id: None,
        }
    }

    /// Whether the membership holds on `day`.
    pub fn holds_on(&self, day: NaiveDate) -> bool {
        self.start_date.is_none_or(|s| s <= day) && self.end_date.is_none_or(|e| e >= day)
    }
}

/// One person as one source sees them.
///
/// Serialised (the state's copy of a record, a plan's and an API's views) as the flat record it
/// was before its rare fields were boxed ([`Extras`]): the same fields in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RecordIn")]
pub struct SourceRecord {
    /// The source's own key for the person; unique within the source.
    pub person_id: Str,
    pub given_name: Str,
    pub family_name: Str,
    /// A validated civic number, when the source has one (some pupils have none). Never
    /// serialised: the state database keeps it in its own column.
    pub civic_no: Option<CivicNo>,
    /// The person's ties to school units, at least one, sorted. Shared (`Arc`): the pupils of
    /// one school read from one file hold one tie between them ([`Interner`]); a tie compares,
    /// orders, hashes and serialises as the value it holds.
    pub affiliations: Shared<Affiliation>,
    /// Classes and teaching groups, sorted and deduplicated; shared as the ties are.
    pub groups: Shared<GroupMembership>,
    /// The e-mail address, eppn and other numbers, which most exports do not give (read with
    /// [`SourceRecord::email`], [`SourceRecord::eppn`], [`SourceRecord::external_ids`]).
    pub extras: Extras,
    /// Protected personal data (SS 12000 `securityMarking`), when the source marks the person.
    pub protection: Option<Protection>,
    /// The source says the person has died (SS 12000 `personStatus`): their accounts are
    /// disabled at once.
    pub deceased: bool,
    /// Where the record came from (`persons.csv:14`), for messages.
    pub location: Str,
}

/// What few exports give of a person: an e-mail address and an eduPersonPrincipalName
/// (lowercased; correlation keys if configured) and other numbers the person is known by (SS
/// 12000 `externalIdentifiers`, OneRoster `identifier`: what a school admin looks a person up
/// by; one shaped like a civic number is masked wherever it is shown).
///
/// Boxed together, and nothing at all for a record without any: a run holds a million boxed
/// records, and these took 64 of a record's 224 bytes in place (a record is 152 now, in the
/// allocator's 160-byte size). Made only by [`Extras::new`], which keeps none for all empty, so
/// equal records compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras(Option<Box<ExtrasIn>>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct ExtrasIn {
    email: Option<Str>,
    eppn: Option<Str>,
    external_ids: Box<[String]>,
}

impl Extras {
    /// The e-mail address, the eppn and the other numbers, each as given.
    pub fn new(email: Option<Str>, eppn: Option<Str>, external_ids: Box<[String]>) -> Extras {
        if email.is_none() && eppn.is_none() && external_ids.is_empty() {
            return Extras(None);
        }
        Extras(Some(Box::new(ExtrasIn { email, eppn, external_ids })))
    }

    pub fn email(&self) -> Option<&str> {
        self.0.as_ref()?.email.as_deref()
    }

    pub fn eppn(&self) -> Option<&str> {
        self.0.as_ref()?.eppn.as_deref()
    }

    pub fn external_ids(&self) -> &[String] {
        self.0.as_ref().map_or(&[], |x| &x.external_ids)
    }
}

/// A record as JSON gives it: flat, as [`SourceRecord`] serialises.
#[derive(Deserialize)]
struct RecordIn {
    person_id: Str,
    given_name: Str,
    family_name: Str,
    affiliations: Shared<Affiliation>,
    #[serde(default)]
    groups: Shared<GroupMembership>,
    #[serde(default)]
    email: Option<Str>,
    #[serde(default)]
    eppn: Option<Str>,
    #[serde(default)]
    external_ids: Box<[String]>,
    #[serde(default)]
    protection: Option<Protection>,
    #[serde(default)]
    deceased: bool,
    location: Str,
}

impl From<RecordIn> for SourceRecord {
    fn from(r: RecordIn) -> SourceRecord {
        SourceRecord {
            person_id: r.person_id,
            given_name: r.given_name,
            family_name: r.family_name,
            civic_no: None,
            affiliations: r.affiliations,
            groups: r.groups,
            extras: Extras::new(r.email, r.eppn, r.external_ids),
            protection: r.protection,
            deceased: r.deceased,
            location: r.location,
        }
    }
}

/// A record as it is written: flat, the fields in the order they were declared before the rare
/// ones were boxed (a stored record's JSON does not change).
#[derive(Serialize)]
struct RecordOut<'a> {
    person_id: &'a Str,
    given_name: &'a Str,
    family_name: &'a Str,
    affiliations: &'a Shared<Affiliation>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    groups: &'a Shared<GroupMembership>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eppn: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    external_ids: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    protection: &'a Option<Protection>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deceased: bool,
    location: &'a Str,
}

impl Serialize for SourceRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RecordOut {
            person_id: &self.person_id,
            given_name: &self.given_name,
            family_name: &self.family_name,
            affiliations: &self.affiliations,
            groups: &self.groups,
            email: self.email(),
            eppn: self.eppn(),
            external_ids: self.external_ids(),
            protection: &self.protection,
            deceased: self.deceased,
            location: &self.location,
        }
        .serialize(s)
    }
}

impl SourceRecord {
    /// The e-mail address, lowercased, when the source has one (a correlation key if configured).
    pub fn email(&self) -> Option<&str> {
        self.extras.email()
    }

    /// The eduPersonPrincipalName, lowercased, when the source has one (a correlation key if
    /// configured).
    pub fn eppn(&self) -> Option<&str> {
        self.extras.eppn()
    }

    /// Other numbers the person is known by; see [`Extras`].
    pub fn external_ids(&self) -> &[String] {
        self.extras.external_ids()
    }

    /// The school unit a rejected record is shown to (its first affiliation's); `None` for a
    /// record that marks protected personal data: IT alone sees it.
    pub fn shown_school(&self) -> Option<String> {
        if self.protection.is_some() {
            return None;
        }
        self.affiliations.iter().find_map(|a| a.school_unit.as_ref().map(|s| s.to_string()))
    }

    /// The record as JSON, without its civic number (what the state database keeps beside it).
    #[allow(clippy::expect_used)]
    pub fn to_json(&self) -> String {
        // Strings, dates, booleans and enums only, with string keys: serialising cannot fail.
        serde_json::to_string(self).expect("a record always serialises")
    }

    /// A hash of everything the record says of the person, but not where it was read
    /// (`location`: a row moving down the file is no change) and not the civic number (the
    /// caller hashes the form it stores). Fast and stable within one build; it decides only
    /// whether a stored copy is rewritten.
    pub fn content_hash(&self, hasher: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        (&self.person_id, &self.given_name, &self.family_name, &self.affiliations, &self.groups).hash(hasher);
        (self.email(), self.eppn(), self.external_ids(), &self.protection, self.deceased).hash(hasher);
    }

    /// The record's ties as values (they are held shared).
    pub fn ties(&self) -> impl Iterator<Item = &Affiliation> {
        self.affiliations.iter().map(|a| &**a)
    }

    /// The role of the record's first affiliation: a record with one tie has one role.
    pub fn first_role(&self) -> Role {
        self.affiliations.first().map(|a| a.role).unwrap_or(Role::Student)
    }

    /// The school unit codes of the record's affiliations, sorted and comma-separated (`None`
    /// without any): how the state database and `enid explain` show them.
    pub fn school_unit_codes(&self) -> Option<String> {
        let units: BTreeSet<&str> = self.affiliations.iter().filter_map(|a| a.school_unit.as_deref()).collect();
        (!units.is_empty()).then(|| units.into_iter().collect::<Vec<_>>().join(","))
    }

    /// Every role the record's affiliations name, sorted.
    pub fn roles(&self) -> BTreeSet<Role> {
        self.affiliations.iter().map(|a| a.role).collect()
    }

    /// The earliest start date of any affiliation (`None` when one has none: the person has
    /// always been there).
    pub fn start_date(&self) -> Option<NaiveDate> {
        let mut out: Option<NaiveDate> = None;
        for a in &self.affiliations {
            out = Some(match (out, a.start_date) {
                (_, None) => return None,
                (None, Some(s)) => s,
                (Some(o), Some(s)) => o.min(s),
            });
        }
        out
    }

    /// The latest end date of any affiliation (`None` when one has none: open-ended).
    pub fn end_date(&self) -> Option<NaiveDate> {
        let mut out: Option<NaiveDate> = None;
        for a in &self.affiliations {
            out = Some(match (out, a.end_date) {
                (_, None) => return None,
                (None, Some(e)) => e,
                (Some(o), Some(e)) => o.max(e),
            });
        }
        out
    }

    /// The first free-text field of the record — names, school units and their names, duty
    /// roles, groups, e-mail, eppn — that holds a civic number in any spelling
    /// ([`crate::civic::contains_civic`]), by field name. Such a value would become a username
    /// for life, a group name, or an attribute on every target. (External identifiers are
    /// masked where shown instead: a school may number pupils by their civic number.)
    pub fn civic_in_free_text(&self) -> Option<&'static str> {
        use crate::civic::contains_civic;
        let texts = [("given_name", self.given_name.as_str()), ("family_name", self.family_name.as_str())]
            .into_iter()
            .chain(self.affiliations.iter().flat_map(|a| {
                [
                    ("school_unit", a.school_unit.as_deref()),
                    ("school_unit_name", a.school_unit_name()),
                    ("duty_role", a.duty_role()),
                    ("school_type", a.school_type()),
                    ("year", a.year()),
                ]
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
            }))
            .chain(self.groups.iter().flat_map(|g| {
                [("groups", Some(g.name.as_str())), ("school_unit", g.school_unit.as_deref())]
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v?)))
            }))
            .chain(self.email().map(|e| ("email", e)))
            .chain(self.eppn().map(|e| ("eppn", e)));
        texts.into_iter().find(|(_, text)| contains_civic(text)).map(|(field, _)| field)
    }
}

/// The longest value a text field of a record may hold, in characters. Longer values are broken
/// exports (or attempts to break a target or the state's indexes), never names.
pub const MAX_FIELD_CHARS: usize = 256;

impl SourceRecord {
    /// Why a text field of the record cannot be stored or sent, by field name: a control
    /// character (a NUL, which PostgreSQL refuses to store; a line break in a name), or more than
    /// [`MAX_FIELD_CHARS`] characters. The value is never shown.
    pub fn unfit_text(&self) -> Option<String> {
        // Run over every record of every read: bytes first, characters only when needed.
        let unfit = |field: &str, text: &str| -> Option<String> {
            let b = text.as_bytes();
            let control =
                b.iter().any(|&c| c < 0x20 || c == 0x7f) || (b.contains(&0xC2) && text.chars().any(char::is_control));
            if control {
                return Some(format!("{field} holds a control character; fix the source"));
            }
            let n = if b.len() > MAX_FIELD_CHARS { text.chars().count() } else { 0 };
            (n > MAX_FIELD_CHARS).then(|| {
                format!("{field} is {n} characters long, more than the {MAX_FIELD_CHARS} allowed; fix the source")
            })
        };
        let opt = |field: &str, text: Option<&str>| text.and_then(|t| unfit(field, t));
        unfit("person_id", &self.person_id)
            .or_else(|| unfit("given_name", &self.given_name))
            .or_else(|| unfit("family_name", &self.family_name))
            .or_else(|| opt("email", self.email()))
            .or_else(|| opt("eppn", self.eppn()))
            .or_else(|| self.external_ids().iter().find_map(|e| unfit("external_ids", e)))
            .or_else(|| {
                self.affiliations.iter().find_map(|a| {
                    opt("school_unit", a.school_unit.as_deref())
                        .or_else(|| opt("school_unit_name", a.school_unit_name()))
                        .or_else(|| opt("duty_role", a.duty_role()))
                        .or_else(|| opt("school_type", a.school_type()))
                        .or_else(|| opt("year", a.year()))
                        .or_else(|| opt("affiliation source_id", a.source_id()))
                })
            })
            .or_else(|| {
                self.groups.iter().find_map(|g| {
                    unfit("groups", &g.name)
                        .or_else(|| opt("group school_unit", g.school_unit.as_deref()))
                        .or_else(|| opt("group source_id", g.source_id.as_deref()))
                })
            })
    }
}

/// Moves every record that cannot be stored or shown as it is to the rejected rows: a text field
/// with a control character or too long ([`SourceRecord::unfit_text`]), or a civic number in a
/// free-text field ([`SourceRecord::civic_in_free_text`]). Each keeps its key (unless the key is
/// what is wrong) and its civic number, so that its person is kept as last stored. The engine
/// runs this over every source's batch, and a source over its changes: the rules hold for
/// sources that do not check them themselves.
pub fn reject_unfit<R: std::borrow::BorrowMut<SourceRecord>>(records: &mut Vec<R>) -> Vec<RowError> {
    let mut rejected = Vec::new();
    records.retain_mut(|r| {
        let r: &mut SourceRecord = r.borrow_mut();
        let Some(message) = r.unfit_text().or_else(|| r.civic_in_free_text().map(civic_in_free_text_message)) else {
            return true;
        };
        let key_fit = !message.starts_with("person_id ");
        rejected.push(RowError {
            school_unit: r.shown_school(),
            location: std::mem::take(&mut r.location).into(),
            message,
            person_id: key_fit.then(|| std::mem::take(&mut r.person_id).into()),
            civic_no: r.civic_no.take(),
        });
        false
    });
    rejected
}

/// The message of a row rejected because `field` holds a civic number. It names the field only:
/// the value is never shown, not even masked (a birth date is personal data too).
pub fn civic_in_free_text_message(field: &str) -> String {
    format!(
        "{field} holds what looks like a civic number (digits of a personnummer, however separated); \
         a civic number must never become a name, group, school or address. Fix the export"
    )
}

/// Levels of protected personal data ("skyddade personuppgifter").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protection {
    Sekretessmarkering,
    SkyddadFolkbokforing,
}

impl Protection {
    /// Parses the values sources use; empty means no protection.
    pub fn parse(s: &str) -> Result<Option<Protection>, String> {
        match s.trim().to_lowercase().as_str() {
            "" | "ingen" | "none" => Ok(None),
            "sekretessmarkering" | "sekretess" => Ok(Some(Protection::Sekretessmarkering)),
            "skyddad folkbokföring" | "skyddad folkbokforing" | "skyddad" | "kvarskrivning" => {
                Ok(Some(Protection::SkyddadFolkbokforing))
            }
            _ => Err("is neither \"Sekretessmarkering\" nor \"Skyddad folkbokföring\"".into()),
        }
    }
}

/// A record the source had to reject, with where it was and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// `file:line` or an id.
    pub location: String,
    /// What is wrong and how to fix it. Never contains an unmasked civic number: a source key
    /// that looks like one is shown through [`crate::civic::mask_if_civic`].
    pub message: String,
    /// The row's source key (`person_id`) as written, when it could be read. The engine keeps
    /// the person linked to it exactly as last stored: a rejected row is not a leaver. Raw: mask
    /// it with [`crate::civic::mask_if_civic`] before showing it.
    pub person_id: Option<String>,
    /// The row's civic number, when it is valid (the row was rejected for something else). The
    /// person stored with it is kept too: a row typed with another person's key still names its
    /// person by number. Masked by `CivicNo`'s `Debug` and `Display`.
    pub civic_no: Option<CivicNo>,
    /// The school unit the row names, when it could be read and the row marks no protected
    /// personal data: that school's admins are shown the row to have it fixed (a new pupil's
    /// row too, whom the state does not know yet). `None`: IT alone sees it.
    pub school_unit: Option<String>,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Everything one full fetch produced.
#[derive(Debug, Clone, Default)]
pub struct SourceBatch {
    /// The valid records, boxed: a read of a million moves each into its identity by pointer,
    /// where a vector of the records themselves (some 230 bytes each) was copied once more into
    /// boxes and held beside them while it was.
    pub records: Vec<Box<SourceRecord>>,
    /// Rows that were left out, each with its reason.
    pub rejected: Vec<RowError>,
    /// Which of enid's fields (`person_id`, `email`, `protection`, ...) the source delivered, by
    /// field name (not the export's column name). The engine stops a run when a field present
    /// at the last applied run is missing: a dropped column is a broken export, not a change
    /// of every person.
    pub columns: BTreeSet<String>,
    /// Persons the source has but enid does not provision, counted by why (`"guardian"`, `"no
    /// current affiliation in scope"`): shown, never rejected rows.
    pub skipped: BTreeMap<String, usize>,
    /// Where a later incremental read starts ([`FetchContext::since`]): opaque to the engine,
    /// kept in the state database with the records of an applied run. `None` from a source that
    /// reads in full only.
    pub watermark: Option<String>,
}

/// What an incremental read produced: the records that changed since the watermark, whole, and
/// the persons the source removed. The engine merges them with the records stored from the last
/// read; the input guards then judge the merged set.
#[derive(Debug, Clone, Default)]
pub struct SourceChanges {
    /// Records that are new or changed, each complete (it replaces the stored one).
    pub changed: Vec<SourceRecord>,
    /// Source keys (`person_id`) of persons the source deleted or no longer provisions.
    pub removed: Vec<String>,
    /// Changed rows the source had to reject; their persons are kept as last stored.
    pub rejected: Vec<RowError>,
    /// Persons skipped among the changes, by why (as [`SourceBatch::skipped`]).
    pub skipped: BTreeMap<String, usize>,
    /// Where the next incremental read starts.
    pub watermark: Option<String>,
}

/// What [`Source::fetch`] read.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// Every record (a full read).
    Full(SourceBatch),
    /// The changes since [`FetchContext::since`] (an incremental read, a OneRoster delta).
    Changes(SourceChanges),
}

impl SourceBatch {
    /// Rows seen in total, valid or not.
    pub fn rows_seen(&self) -> usize {
        self.records.len() + self.rejected.len()
    }

    /// Moves every record that cannot be stored or shown as it is to the rejected rows
    /// ([`reject_unfit`]).
    pub fn reject_unfit(&mut self) {
        let rejected = reject_unfit(&mut self.records);
        self.rejected.extend(rejected);
    }
}

/// Why a source could not deliver. The variant says what the operator must do; `source` keeps
/// the lower-level error (I/O, the file format's parser) when there is one.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source could not be reached or read; try again later or fix access.
    #[error("cannot read {what}: {reason}")]
    Unavailable {
        what: String,
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The source was read but its shape is wrong (missing column, bad header): fix the export
    /// or the column map in the config.
    #[error("{location}: {reason}")]
    Malformed {
        location: String,
        reason: String,
        #[source]
        source: Option<BoxError>,
    },
}

/// The facts a source may need while fetching. Time is an argument, never read from the clock.
#[derive(Debug, Clone, Copy)]
pub struct FetchContext<'a> {
    /// Today's date, for civic numbers in the 10-digit form and for which ties are current.
    pub today: NaiveDate,
    /// The watermark of the last applied read ([`SourceBatch::watermark`]), when the engine
    /// allows an incremental read now; `None` asks for a full read.
    pub since: Option<&'a str>,
    /// The records stored from the last applied read, as that read left them (only when
    /// `since` is given): what an incremental read rebuilds a changed person from (a group's
    /// new members, a duty that ended), looked up by what the changes name. Connectors never
    /// open the state database themselves.
    pub prior: &'a dyn PriorRecords,
}

/// No stored records: what a full read is given.
static NO_PRIOR: Vec<SourceRecord> = Vec::new();

impl FetchContext<'_> {
    /// A context for a full read on `today`.
    pub fn full(today: NaiveDate) -> FetchContext<'static> {
        FetchContext { today, since: None, prior: &NO_PRIOR }
    }
}

/// A boxed future that can be sent between threads: what [`PriorRecords`] returns.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// School unit codes, each with unit names stored with it ([`PriorRecords::school_units`]).
pub type StoredUnits = BTreeMap<String, BTreeSet<Option<String>>>;

/// What an incremental read needs of the stored records: those of these persons, and of every
/// person whose stored record holds one of these ties ([`Affiliation::source_id`]) or groups
/// ([`GroupMembership::source_id`]), or a tie with a source id at one of these school units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriorQuery {
    pub persons: BTreeSet<String>,
    pub ties: BTreeSet<String>,
    pub groups: BTreeSet<String>,
    pub school_units: BTreeSet<String>,
}

impl PriorQuery {
    /// Whether the query asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.persons.is_empty() && self.ties.is_empty() && self.groups.is_empty() && self.school_units.is_empty()
    }

    /// Whether `record` answers the query.
    pub fn matches(&self, record: &SourceRecord) -> bool {
        self.persons.contains(record.person_id.as_str())
            || record.affiliations.iter().any(|a| {
                a.source_id().is_some_and(|id| {
                    self.ties.contains(id)
                        || a.school_unit.as_ref().is_some_and(|c| self.school_units.contains(c.as_str()))
                })
            })
            || record.groups.iter().any(|g| g.source_id.as_ref().is_some_and(|id| self.groups.contains(id)))
    }
}

/// The records a source's last applied read left, as the engine keeps them: whole (for a delta
/// that rebuilds from everything), or looked up by what a change names, so that an incremental
/// read of a few changes costs a few lookups, not a read of every stored record.
pub trait PriorRecords: Send + Sync + fmt::Debug {
    /// Every stored record.
    fn all(&self) -> BoxFuture<'_, Result<Vec<SourceRecord>, SourceError>>;
    /// The stored records that answer `query` ([`PriorQuery::matches`]), each once.
    fn find<'a>(&'a self, query: &'a PriorQuery) -> BoxFuture<'a, Result<Vec<SourceRecord>, SourceError>>;
    /// The school unit codes of the stored ties that have a source id, each with the unit
    /// names stored with it (`None`: a tie stored without a name).
    fn school_units(&self) -> BoxFuture<'_, Result<StoredUnits, SourceError>>;
    /// The records, when they are in memory already (tests, a delta read whole).
    fn loaded(&self) -> Option<&[SourceRecord]> {
        None
    }
}

/// Records in memory: every query answered by scanning them.
impl PriorRecords for Vec<SourceRecord> {
    fn all(&self) -> BoxFuture<'_, Result<Vec<SourceRecord>, SourceError>> {
        Box::pin(std::future::ready(Ok(self.clone())))
    }

    fn find<'a>(&'a self, query: &'a PriorQuery) -> BoxFuture<'a, Result<Vec<SourceRecord>, SourceError>> {
        Box::pin(std::future::ready(Ok(self.iter().filter(|r| query.matches(r)).cloned().collect())))
    }

    fn school_units(&self) -> BoxFuture<'_, Result<StoredUnits, SourceError>> {
        let mut units = StoredUnits::new();
        for a in self.iter().flat_map(|r| &r.affiliations).filter(|a| a.source_id().is_some()) {
            if let Some(code) = &a.school_unit {
                units.entry(code.to_string()).or_default().insert(a.school_unit_name().map(str::to_string));
            }
        }
        Box::pin(std::future::ready(Ok(units)))
    }

    fn loaded(&self) -> Option<&[SourceRecord]> {
        Some(self)
    }
}

/// A source of person records.
pub trait Source {
    /// Checks that the source can be read, without reading all of it.
    fn check(&self) -> impl Future<Output = Result<(), SourceError>> + Send;
    /// Reads the records: every one ([`Fetched::Full`]), or, when `cx.since` is given and the
    /// source can, the changes since then ([`Fetched::Changes`]). A fetch is all-or-nothing:
    /// partial data is an error.
    fn fetch(&self, cx: FetchContext<'_>) -> impl Future<Output = Result<Fetched, SourceError>> + Send;
    /// Whether the source can read changes since a watermark (or may deliver a delta), so the
    /// engine should hand it `since` and the stored records. Full reads only by default.
    fn incremental(&self) -> bool {
        false
    }
    /// How often an incremental source must read in full whatever its watermark (what changes
    /// cannot show, such as a membership a server changed without bumping its timestamp, is put
    /// right then); `None`: only when the engine asks.
    fn full_read_every(&self) -> Option<std::time::Duration> {
        None
    }
    /// What the source reads, in a stable form (SS 12000: its organisations): when it differs
    /// from the last applied run's, persons missing only because of it are a config change,
    /// never departures. Empty for a source whose scope is all it has.
    fn scope(&self) -> String {
        String::new()
    }
    /// The files (or directories) the source reads, which a daemon watches: a change there
    /// starts a run. Empty for a source read over the network (its schedule reads it).
    fn files(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A run holds a million records, each boxed: at 152 bytes a record takes the allocator's
    /// 160-byte size; at 168 (ties and memberships small vectors, three words each) it took
    /// 192, at 224 (the e-mail, eppn and other numbers in place) 224, at 232 (`external_ids` a
    /// vector) 256.
    #[test]
    fn a_record_fits_the_allocators_160_byte_size() {
        assert!(std::mem::size_of::<SourceRecord>() <= 160, "{}", std::mem::size_of::<SourceRecord>());
        assert_eq!(std::mem::size_of::<Shared<Affiliation>>(), 16, "a pointer and a length");
    }

    /// The rare fields boxed, a record reads and writes as the flat record it was: the state's
    /// stored JSON and what is made from it do not change.
    #[test]
    fn a_record_with_its_rare_fields_boxed_reads_and_writes_as_the_flat_record_it_was() {
        let mut r = record("p1", "Kim", &["7A"], Some("kim@skola.se"));
        r.extras = Extras::new(r.email().map(Into::into), Some("kim@idp".into()), vec!["x1".into()].into());
        r.protection = Some(Protection::Sekretessmarkering);
        r.deceased = true;
        let json = r.to_json();
        assert_eq!(
            json,
            r#"{"person_id":"p1","given_name":"Kim","family_name":"Berg","affiliations":[{"school_unit":"S1","kind":"enrolment","role":"student"}],"groups":[{"school_unit":"S1","name":"7A","type":"class"}],"email":"kim@skola.se","eppn":"kim@idp","external_ids":["x1"],"protection":"Sekretessmarkering","deceased":true,"location":"api:p1"}"#
        );
        assert_eq!(serde_json::from_str::<SourceRecord>(&json).unwrap(), r);
        // None of them: no keys, and nothing boxed; an explicit null reads as absent.
        let plain = record("p2", "Bo", &[], None);
        assert_eq!(plain.extras, Extras::default());
        let json = plain.to_json();
        assert!(!json.contains("email") && !json.contains("external_ids") && !json.contains("groups"), "{json}");
        assert_eq!(serde_json::from_str::<SourceRecord>(&json).unwrap(), plain);
        let with_null = json.replacen("{", r#"{"email":null,"eppn":null,"#, 1);
        assert_eq!(serde_json::from_str::<SourceRecord>(&with_null).unwrap(), plain);
        // Made with none of them, nothing is boxed: a record equals one that never had them.
        let mut emptied = record("p2", "Bo", &[], Some("bo@skola.se"));
        emptied.extras = Extras::new(None, None, Box::default());
        assert_eq!(emptied, plain);
    }

    /// A set of roles is the sorted list it replaced: as JSON (plan ids) and as it iterates.
    #[test]
    fn roles_serialise_as_the_sorted_list() {
        for roles in [vec![], vec![Role::Student], vec![Role::Staff], vec![Role::Staff, Role::Student, Role::Staff]] {
            let set: Roles = roles.iter().copied().collect();
            let list: BTreeSet<Role> = roles.iter().copied().collect();
            assert_eq!(serde_json::to_string(&set).unwrap(), serde_json::to_string(&list).unwrap());
            assert_eq!(set.iter().collect::<Vec<_>>(), list.iter().copied().collect::<Vec<_>>());
            assert_eq!(set.is_empty(), list.is_empty());
            assert!(Roles::ALL.iter().all(|r| set.contains(*r) == list.contains(r)));
        }
        assert_eq!(
            serde_json::to_string(&[Role::Student, Role::Staff].into_iter().collect::<Roles>()).unwrap(),
            r#"["student","staff"]"#
        );
    }

    fn record(person_id: &str, given_name: &str, groups: &[&str], email: Option<&str>) -> SourceRecord {
        SourceRecord {
            person_id: person_id.into(),
            given_name: given_name.into(),
            family_name: "Berg".into(),
            civic_no: None,
            affiliations: vec![Affiliation::new(Some("S1".into()), Role::Student).into()].into(),
            groups: groups.iter().map(|g| GroupMembership::class(Some("S1".into()), g.to_string()).into()).collect(),
            extras: Extras::new(email.map(Into::into), None, Box::default()),
            protection: None,
            deceased: false,
            location: format!("api:{person_id}").into(),
        }
    }

    #[test]
    fn a_tie_with_its_details_boxed_reads_writes_and_sorts_as_the_flat_record_it_was() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let full = Affiliation {
            start_date: Some(d("2026-08-15")),
            details: TieDetails {
                school_unit_name: Some("Norra".into()),
                duty_role: Some("Lärare".into()),
                school_type: Some("GR".into()),
                year: Some("7".into()),
                source_id: Some("duty-1".into()),
            }
            .boxed(),
            ..Affiliation::new(Some("S1".into()), Role::Staff)
        };
        // The stored records' JSON, field for field as the flat struct wrote it.
        let json = serde_json::to_string(&full).unwrap();
        assert_eq!(
            json,
            r#"{"school_unit":"S1","school_unit_name":"Norra","kind":"duty","role":"staff","duty_role":"Lärare","school_type":"GR","year":"7","start_date":"2026-08-15","source_id":"duty-1"}"#
        );
        assert_eq!(serde_json::from_str::<Affiliation>(&json).unwrap(), full);
        let plain = Affiliation::new(Some("S1".into()), Role::Student);
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"school_unit":"S1","kind":"enrolment","role":"student"}"#
        );
        let read: Affiliation =
            serde_json::from_str(r#"{"school_unit":"S1","kind":"enrolment","role":"student"}"#).unwrap();
        assert!(read.details.is_none(), "a tie without details holds no box");
        assert_eq!(read, plain);

        // An emptied box is no details: equal, the same hash, the same place in order.
        let mut emptied = plain.clone();
        emptied.details_mut().year = Some("7".into());
        assert_ne!(emptied, plain);
        emptied.details_mut().year = None;
        assert!(emptied.details.is_some());
        assert_eq!(emptied, plain);
        let hash =
            |a: &Affiliation| BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(a);
        assert_eq!(hash(&emptied), hash(&plain));
        assert_eq!(emptied.cmp(&plain), std::cmp::Ordering::Equal);

        // Ties sort in the flat struct's field order: the school's name before the kind, the
        // duty role before the dates.
        let named = |name: &str, kind: AffiliationKind| Affiliation {
            kind,
            details: TieDetails { school_unit_name: Some(name.into()), ..TieDetails::default() }.boxed(),
            ..Affiliation::new(Some("S1".into()), Role::Staff)
        };
        let mut ties = [named("B", AffiliationKind::Enrolment), named("A", AffiliationKind::Duty)];
        ties.sort();
        assert_eq!(ties[0].school_unit_name(), Some("A"));
        let duty = |role: &str, start: &str| Affiliation {
            start_date: Some(d(start)),
            details: TieDetails { duty_role: Some(role.into()), ..TieDetails::default() }.boxed(),
            ..Affiliation::new(Some("S1".into()), Role::Staff)
        };
        let mut ties = [duty("Rektor", "2020-01-01"), duty("Lärare", "2025-01-01")];
        ties.sort();
        assert_eq!(ties[0].duty_role(), Some("Lärare"));
    }

    #[test]
    fn a_boxed_tie_hashes_as_the_flat_struct_did_so_stored_fingerprints_stay_valid() {
        use std::hash::{BuildHasher, BuildHasherDefault, Hash};
        // The tie as it was declared before its details were boxed, with the derived hash.
        #[derive(Hash)]
        struct Flat {
            school_unit: Option<Str>,
            school_unit_name: Option<String>,
            kind: AffiliationKind,
            role: Role,
            duty_role: Option<String>,
            school_type: Option<String>,
            year: Option<String>,
            start_date: Option<NaiveDate>,
            end_date: Option<NaiveDate>,
            source_id: Option<String>,
        }
        let hash = |h: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
            let mut state = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
            h(&mut state);
            std::hash::Hasher::finish(&state)
        };
        let start = NaiveDate::from_ymd_opt(2026, 8, 15);
        let full = Affiliation {
            start_date: start,
            details: TieDetails {
                school_unit_name: Some("Norra".into()),
                duty_role: Some("Lärare".into()),
                school_type: None,
                year: Some("7".into()),
                source_id: Some("duty-1".into()),
            }
            .boxed(),
            ..Affiliation::new(Some("S1".into()), Role::Staff)
        };
        let flat = Flat {
            school_unit: Some("S1".into()),
            school_unit_name: Some("Norra".into()),
            kind: AffiliationKind::Duty,
            role: Role::Staff,
            duty_role: Some("Lärare".into()),
            school_type: None,
            year: Some("7".into()),
            start_date: start,
            end_date: None,
            source_id: Some("duty-1".into()),
        };
        assert_eq!(hash(&|s| full.hash(s)), hash(&|s| flat.hash(s)));
        let plain = Affiliation::new(None, Role::Student);
        let flat = Flat {
            school_unit: None,
            school_unit_name: None,
            kind: AffiliationKind::Enrolment,
            role: Role::Student,
            duty_role: None,
            school_type: None,
            year: None,
            start_date: None,
            end_date: None,
            source_id: None,
        };
        assert_eq!(hash(&|s| plain.hash(s)), hash(&|s| flat.hash(s)));
    }

    /// Equal ties and memberships become one allocation, in one record and across records,
    /// and a record says, hashes and serialises the same whether shared or not (stored
    /// fingerprints and JSON stay valid); one tie changed in place leaves the others alone.
    #[test]
    fn an_interner_shares_equal_ties_and_memberships_and_changes_nothing_a_record_says() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hash = |r: &SourceRecord| {
            let mut state = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
            r.content_hash(&mut state);
            std::hash::Hasher::finish(&state)
        };
        let records = || [record("1", "Anna", &["7A", "MA7"], None), record("2", "Bo", &["7A"], None)];
        let (alone, mut shared) = (records(), records());
        let mut interner = Interner::default();
        shared.iter_mut().for_each(|r| interner.record(r));
        for (a, s) in alone.iter().zip(&shared) {
            assert_eq!((a, hash(a), a.to_json()), (s, hash(s), s.to_json()));
        }
        assert!(!Arc::ptr_eq(&alone[0].affiliations[0], &alone[1].affiliations[0]), "the test needs unshared ties");
        assert!(Arc::ptr_eq(&shared[0].affiliations[0], &shared[1].affiliations[0]));
        assert!(Arc::ptr_eq(&shared[0].groups[0], &shared[1].groups[0]), "7A");
        assert!(!Arc::ptr_eq(&shared[0].groups[0], &shared[0].groups[1]), "7A and MA7 are two memberships");
        // The content hash is the one the vectors of values gave (what the state holds).
        let flat = |r: &SourceRecord| {
            let mut state = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
            let ties: Vec<Affiliation> = r.affiliations.iter().map(|a| (**a).clone()).collect();
            let groups: Vec<GroupMembership> = r.groups.iter().map(|g| (**g).clone()).collect();
            std::hash::Hash::hash(&(&r.person_id, &r.given_name, &r.family_name, &ties, &groups), &mut state);
            std::hash::Hash::hash(&(r.email(), r.eppn(), r.external_ids(), &r.protection, r.deceased), &mut state);
            std::hash::Hasher::finish(&state)
        };
        assert_eq!(hash(&shared[0]), flat(&shared[0]));
        let made = interner.group(GroupMembership::class(Some("S1".into()), "7A"));
        assert!(Arc::ptr_eq(&made, &shared[1].groups[0]), "a membership made later is the one given before");
        let mut changed = shared[1].clone();
        Arc::make_mut(&mut changed.affiliations[0]).school_unit = Some("S2".into());
        assert_eq!(shared[0].affiliations[0].school_unit.as_deref(), Some("S1"), "the others keep theirs");
        assert_eq!(changed.affiliations[0].school_unit.as_deref(), Some("S2"));
    }

    #[test]
    fn a_records_dates_span_its_affiliations_and_an_open_end_wins() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let mut r = record("1", "Anna", &[], None);
        let tie = |school: &str, start: &str, end: Option<&str>| Affiliation {
            start_date: Some(d(start)),
            end_date: end.map(d),
            ..Affiliation::new(Some(school.into()), Role::Student)
        };
        r.affiliations =
            vec![tie("A", "2020-08-15", Some("2026-12-31")).into(), tie("B", "2027-01-01", Some("2029-06-10")).into()]
                .into();
        assert_eq!((r.start_date(), r.end_date()), (Some(d("2020-08-15")), Some(d("2029-06-10"))));
        r.affiliations.push(tie("C", "2021-01-01", None).into());
        assert_eq!(r.end_date(), None, "an affiliation without an end keeps the person");
        r.affiliations.push(Affiliation::new(Some("D".into()), Role::Staff).into());
        assert_eq!(r.start_date(), None);
        assert_eq!(r.roles().into_iter().collect::<Vec<_>>(), [Role::Student, Role::Staff]);
    }

    #[test]
    fn a_civic_number_in_a_school_name_or_duty_role_rejects_the_record_but_an_external_id_does_not() {
        let mut r = record("1", "Anna", &[], None);
        r.extras = Extras::new(None, None, vec!["19870704-9996".into()].into());
        assert_eq!(r.civic_in_free_text(), None);
        Arc::make_mut(&mut r.affiliations[0]).details_mut().school_unit_name = Some("Skola 870704-9996".into());
        assert_eq!(r.civic_in_free_text(), Some("school_unit_name"));
        Arc::make_mut(&mut r.affiliations[0]).details_mut().school_unit_name = None;
        Arc::make_mut(&mut r.affiliations[0]).details_mut().duty_role = Some("198707049996".into());
        assert_eq!(r.civic_in_free_text(), Some("duty_role"));
    }

    #[test]
    fn the_serialised_record_never_holds_the_civic_number() {
        let mut r = record("1", "Anna", &["7A"], None);
        r.civic_no = Some(CivicNo::parse("19821105-9954", NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()).unwrap());
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("9954"), "{json}");
        let back: SourceRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, SourceRecord { civic_no: None, ..r });
    }

    #[test]
    fn records_with_a_civic_number_in_free_text_are_rejected_for_every_source() {
        let mut batch = SourceBatch {
            records: vec![
                record("1", "Anna", &["7A"], Some("anna.berg@skola.se")),
                record("2", "Bo 19870704 9996", &[], None),
                record("3", "Cy", &["7A", "870704\u{2013}9996"], None),
                record("4", "Dag", &[], Some("dag.870704.9996@skola.se")),
                // A civic number as the source key is allowed: keys are masked wherever shown.
                record("19821105-9954", "Ed", &[], None),
            ]
            .into_iter()
            .map(Box::new)
            .collect(),
            ..SourceBatch::default()
        };
        batch.reject_unfit();
        let kept: Vec<&str> = batch.records.iter().map(|r| r.person_id.as_str()).collect();
        assert_eq!(kept, ["1", "19821105-9954"]);
        let rejected: Vec<(String, Option<&str>)> =
            batch.rejected.iter().map(|e| (e.to_string(), e.person_id.as_deref())).collect();
        let want = |loc: &str, field: &str, key: &'static str| {
            (format!("{loc}: {}", civic_in_free_text_message(field)), Some(key))
        };
        assert_eq!(
            rejected,
            [want("api:2", "given_name", "2"), want("api:3", "groups", "3"), want("api:4", "email", "4")]
        );
        assert!(!format!("{rejected:?}").contains("9996"));
    }

    /// What no store can keep or no target should get: a NUL or another control character, a
    /// value longer than 256 characters, in any text field, from any source (SS 12000 checks
    /// neither itself). The person is kept as last stored; a key that is itself at fault is not
    /// kept as a key.
    #[test]
    fn records_with_control_characters_or_overlong_text_are_rejected_for_every_source() {
        let mut nul_name = record("1", "An\u{0}na", &[], None);
        nul_name.location = "persons/1".into();
        let mut long_mail = record("2", "Bo", &[], Some(&format!("{}@skola.se", "b".repeat(300))));
        long_mail.location = "persons/2".into();
        let mut tab_group = record("3", "Cy", &["7\tA"], None);
        tab_group.location = "persons/3".into();
        let mut long_key = record(&"k".repeat(3000), "Dag", &[], None);
        long_key.location = "persons/(long)".into();
        let mut nul_extid = record("5", "Ed", &[], None);
        nul_extid.extras = Extras::new(None, None, vec!["x\u{0}".into()].into());
        let exact = record(&"k".repeat(256), "Fia", &[], Some(&format!("{}@s.se", "f".repeat(251))));
        let mut records = vec![nul_name, long_mail, tab_group, long_key, nul_extid, exact];
        let rejected = reject_unfit(&mut records);
        assert_eq!(records.len(), 1, "256 characters are allowed");
        let seen: Vec<(&str, &str, Option<usize>)> = rejected
            .iter()
            .map(|e| (e.location.as_str(), e.message.as_str(), e.person_id.as_ref().map(String::len)))
            .collect();
        assert_eq!(
            seen,
            [
                ("persons/1", "given_name holds a control character; fix the source", Some(1)),
                ("persons/2", "email is 309 characters long, more than the 256 allowed; fix the source", Some(1)),
                ("persons/3", "groups holds a control character; fix the source", Some(1)),
                (
                    "persons/(long)",
                    "person_id is 3000 characters long, more than the 256 allowed; fix the source",
                    None
                ),
                ("api:5", "external_ids holds a control character; fix the source", Some(1)),
            ]
        );
    }
}
