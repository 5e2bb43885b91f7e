//! The entities the server holds, in the server's own types: what SS 12000 calls an
//! Organisation, Person (with its enrolments), Duty, Group (with its memberships), Activity and
//! Placement. Values whose spelling differs between SS 12000:2020 (v2.0) and v2.1 are enums
//! here; `Dialect` decides how they are written (see `render`).

use chrono::{DateTime, NaiveDate, Utc};

/// Which edition of the specification the server speaks: the values whose spelling changed
/// between them (school types, duty roles, organisation types, address types, relation types,
/// placement reasons, whether an email's `type` is always present) follow this switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// SS 12000:2020 as the v2.0 OpenAPI file writes it.
    V2020,
    /// v2.1, as the 2024 generated clients know it.
    #[default]
    V21,
}

/// When an entity was created and last changed, by the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Meta {
    /// When the entity first appeared.
    pub created: DateTime<Utc>,
    /// The last change of a value that belongs to the entity itself.
    pub modified: DateTime<Utc>,
}

impl Meta {
    /// Created and modified at the same instant.
    pub fn at(t: DateTime<Utc>) -> Meta {
        Meta { created: t, modified: t }
    }
}

/// School types (skolformer) the generator uses. `Vux` is `KOMVUX` in 2020 and `VUX` in 2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchoolType {
    /// Förskoleklass.
    Fklass,
    /// Grundskola.
    Gr,
    /// Fritidshem.
    Fth,
    /// Gymnasieskola.
    Gy,
    /// Kommunal vuxenutbildning.
    Vux,
}

/// Organisation types: `Forvaltning` exists in 2.1 only and is written `Övrigt` in 2020.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrgType {
    /// The responsible authority (the municipality).
    Huvudman,
    /// The education department.
    Forvaltning,
    /// A school unit: where pupils are enrolled and staff serve.
    Skolenhet,
}

/// An organisation element.
#[derive(Debug, Clone, PartialEq)]
pub struct Organisation {
    /// The persistent id (a UUID).
    pub id: String,
    /// Created and modified.
    pub meta: Meta,
    /// The name.
    pub display_name: String,
    /// What kind of element it is.
    pub org_type: OrgType,
    /// A local code.
    pub organisation_code: Option<String>,
    /// The national school-unit code (skolenhetskod), for school units.
    pub school_unit_code: Option<String>,
    /// The school types a school unit runs.
    pub school_types: Vec<SchoolType>,
    /// The municipality code.
    pub municipality_code: Option<String>,
    /// The parent element's id.
    pub parent: Option<String>,
    /// First day, inclusive.
    pub start_date: Option<NaiveDate>,
    /// Last day, inclusive.
    pub end_date: Option<NaiveDate>,
}

/// Sex as the population register states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Kvinna.
    Female,
    /// Man.
    Male,
    /// Okänt.
    Unknown,
}

/// Protection of personal data (from the population register).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityMarking {
    /// Ingen.
    None,
    /// Sekretessmarkering.
    Confidential,
    /// Skyddad folkbokföring.
    Protected,
}

/// Whether the person is alive and in the country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PersonStatus {
    /// Aktiv.
    Active,
    /// Utvandrad.
    Emigrated,
    /// Avliden.
    Deceased,
}

/// Email types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailType {
    /// Privat.
    Private,
    /// Skola elev.
    SchoolPupil,
    /// Skola personal.
    SchoolStaff,
}

/// An email address. In the 2020 dialect a private address is written without `type` (it was
/// optional there; 2.1 requires it).
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// The address.
    pub value: String,
    /// Its type.
    pub email_type: EmailType,
}

/// An identifier from another system.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalIdentifier {
    /// The value.
    pub value: String,
    /// A URI naming the system (agreed between the parties).
    pub context: String,
    /// Whether the value is unique beyond its context's school.
    pub globally_unique: bool,
}

/// Address types: `SpecialPostal` is `Särskildpostadress` in 2020 and `Särskild postadress` in 2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressType {
    /// Folkbokföring.
    Registered,
    /// Särskild postadress.
    SpecialPostal,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    /// Its type.
    pub address_type: AddressType,
    /// Street and number.
    pub street_address: String,
    /// Postal code.
    pub postal_code: String,
    /// Town.
    pub locality: String,
}

/// How a responsible adult relates to a pupil: `Appointed` is `Annan behörig` in 2020 and
/// `Utsedd behörig` in 2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelationType {
    /// Vårdnadshavare.
    Guardian,
    /// Annan ansvarig.
    OtherResponsible,
    /// Annan/Utsedd behörig.
    Appointed,
}

/// A responsible adult of a person.
#[derive(Debug, Clone, PartialEq)]
pub struct Responsible {
    /// The adult's person id.
    pub person: String,
    /// How they relate.
    pub relation: RelationType,
}

/// A pupil's enrolment at a school unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrolment {
    /// The school unit's id.
    pub enroled_at: String,
    /// The school type.
    pub school_type: SchoolType,
    /// The school year (årskurs), 0 for förskoleklass.
    pub school_year: Option<u8>,
    /// First day, inclusive.
    pub start_date: NaiveDate,
    /// Last day, inclusive; none while it lasts.
    pub end_date: Option<NaiveDate>,
    /// The study path code (gymnasium).
    pub education_code: Option<String>,
}

/// A person: pupil, staff member or guardian (the roles come from enrolments, duties and
/// responsibilities, not from a field).
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// The persistent id (a UUID).
    pub id: String,
    /// Created and modified.
    pub meta: Meta,
    /// Given name(s).
    pub given_name: String,
    /// Middle name.
    pub middle_name: Option<String>,
    /// Family name.
    pub family_name: String,
    /// 12 characters, no separator; none for a person without one.
    pub civic_no: Option<String>,
    /// Birth date.
    pub birth_date: Option<NaiveDate>,
    /// Sex.
    pub sex: Sex,
    /// Protection of personal data.
    pub security_marking: SecurityMarking,
    /// Alive, emigrated or deceased.
    pub status: PersonStatus,
    /// eduPersonPrincipalNames.
    pub eppns: Vec<String>,
    /// Identifiers from other systems.
    pub external_identifiers: Vec<ExternalIdentifier>,
    /// Email addresses.
    pub emails: Vec<Email>,
    /// Postal addresses (none for a protected person).
    pub addresses: Vec<Address>,
    /// Enrolments, current and past.
    pub enrolments: Vec<Enrolment>,
    /// Responsible adults.
    pub responsibles: Vec<Responsible>,
}

impl Person {
    /// "Given Family", the display name references carry.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
    }
}

/// Duty roles the generator uses. In 2020 the roles added in 2.1 are written as the nearest
/// 2020 value (`Fritidspedagog` and `Lärarassistent` → `Övrig pedagogisk personal`,
/// `Skolsköterska` and `Kurator` → `Annan personal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DutyRole {
    /// Rektor.
    Principal,
    /// Lärare.
    Teacher,
    /// Fritidspedagog.
    LeisureTeacher,
    /// Lärarassistent.
    TeachingAssistant,
    /// Skolsköterska.
    SchoolNurse,
    /// Kurator.
    Counsellor,
}

/// A duty's role towards a group (mentor).
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentRole {
    /// The group's id.
    pub group: String,
    /// Always `Mentor` in the generated data.
    pub role_type: String,
    /// First day, inclusive.
    pub start_date: Option<NaiveDate>,
    /// Last day, inclusive.
    pub end_date: Option<NaiveDate>,
}

/// A staff member's duty (tjänstgöring) at an organisation element.
#[derive(Debug, Clone, PartialEq)]
pub struct Duty {
    /// The persistent id.
    pub id: String,
    /// Created and modified.
    pub meta: Meta,
    /// The person's id.
    pub person: String,
    /// The school unit's id.
    pub duty_at: String,
    /// The role.
    pub role: DutyRole,
    /// Initials.
    pub signature: Option<String>,
    /// Share of full time.
    pub duty_percent: Option<u32>,
    /// First day, inclusive.
    pub start_date: NaiveDate,
    /// Last day, inclusive.
    pub end_date: Option<NaiveDate>,
    /// Roles towards groups.
    pub assignment_roles: Vec<AssignmentRole>,
}

/// Group types the generator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// Klass.
    Class,
    /// Undervisning.
    Teaching,
    /// Mentor.
    Mentor,
}

/// A person's membership of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// The person's id.
    pub person: String,
    /// First day, inclusive.
    pub start_date: Option<NaiveDate>,
    /// Last day, inclusive.
    pub end_date: Option<NaiveDate>,
}

/// A group with its memberships.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The persistent id.
    pub id: String,
    /// Created and modified (memberships count as the group's own values).
    pub meta: Meta,
    /// The name.
    pub display_name: String,
    /// The type.
    pub group_type: GroupType,
    /// The school type.
    pub school_type: Option<SchoolType>,
    /// The school unit's id.
    pub organisation: String,
    /// First day, inclusive.
    pub start_date: NaiveDate,
    /// Last day, inclusive.
    pub end_date: Option<NaiveDate>,
    /// Members.
    pub memberships: Vec<Membership>,
}

/// A teacher of an activity.
#[derive(Debug, Clone, PartialEq)]
pub struct Teacher {
    /// The teacher's duty id.
    pub duty: String,
    /// First day, inclusive.
    pub start_date: Option<NaiveDate>,
    /// Last day, inclusive.
    pub end_date: Option<NaiveDate>,
}

/// An activity: links teaching groups with their teachers' duties.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// The persistent id.
    pub id: String,
    /// Created and modified.
    pub meta: Meta,
    /// The name.
    pub display_name: String,
    /// The school unit's id.
    pub organisation: String,
    /// The groups taught (at least one).
    pub groups: Vec<String>,
    /// The teachers.
    pub teachers: Vec<Teacher>,
    /// First day, inclusive.
    pub start_date: NaiveDate,
    /// Last day, inclusive.
    pub end_date: Option<NaiveDate>,
}

/// A child's placement at a fritidshem.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The persistent id.
    pub id: String,
    /// Created and modified.
    pub meta: Meta,
    /// The child's person id.
    pub child: String,
    /// The unit's id.
    pub placed_at: String,
    /// The owners' (guardians') person ids.
    pub owners: Vec<String>,
    /// Always fritidshem in the generated data.
    pub school_type: SchoolType,
    /// First day, inclusive.
    pub start_date: NaiveDate,
    /// Last day, inclusive.
    pub end_date: Option<NaiveDate>,
}

/// Everything a server serves. Order within each list is the listing order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// Organisation elements.
    pub organisations: Vec<Organisation>,
    /// Persons.
    pub persons: Vec<Person>,
    /// Duties.
    pub duties: Vec<Duty>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Activities.
    pub activities: Vec<Activity>,
    /// Placements.
    pub placements: Vec<Placement>,
}

/// The entity types the server lists, with the names the API uses for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `/organisations`.
    Organisation,
    /// `/persons`.
    Person,
    /// `/duties`.
    Duty,
    /// `/groups`.
    Group,
    /// `/activities`.
    Activity,
    /// `/placements`.
    Placement,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 6] =
        [Kind::Organisation, Kind::Person, Kind::Duty, Kind::Group, Kind::Activity, Kind::Placement];

    /// The object type name (`entities=` of `/deletedEntities`).
    pub fn object_type(self) -> &'static str {
        match self {
            Kind::Organisation => "Organisation",
            Kind::Person => "Person",
            Kind::Duty => "Duty",
            Kind::Group => "Group",
            Kind::Activity => "Activity",
            Kind::Placement => "Placement",
        }
    }

    /// The key in `/deletedEntities`' `data` (the spec spells activities `activitites`).
    pub fn deleted_key(self) -> &'static str {
        match self {
            Kind::Organisation => "organisations",
            Kind::Person => "persons",
            Kind::Duty => "duties",
            Kind::Group => "groups",
            Kind::Activity => "activitites",
            Kind::Placement => "placements",
        }
    }
}
