//! Query parameters: which each endpoint takes (as the specification lists them), their values
//! parsed and checked, and the rule that a follow-up page carries `pageToken` and `limit` only.
//! Anything else is a client error the server answers with 400 and records as a violation.

use crate::model::{Dialect, Kind};
use chrono::{DateTime, NaiveDate, Utc};

/// What a listing request asked for (the filters of its first page; follow-ups reuse them).
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub created_before: Option<DateTime<Utc>>,
    pub created_after: Option<DateTime<Utc>>,
    pub modified_before: Option<DateTime<Utc>>,
    pub modified_after: Option<DateTime<Utc>>,
    pub start_on_or_before: Option<NaiveDate>,
    pub start_on_or_after: Option<NaiveDate>,
    pub end_on_or_before: Option<NaiveDate>,
    pub end_on_or_after: Option<NaiveDate>,
    pub expand: Vec<String>,
    pub names: bool,
    // /persons
    pub name_contains: Vec<String>,
    pub civic_no: Option<String>,
    pub eppn: Option<String>,
    pub identifier_value: Option<String>,
    pub identifier_context: Option<String>,
    pub rel_type: Option<String>,
    pub rel_org: Option<String>,
    pub rel_start_on_or_before: Option<NaiveDate>,
    pub rel_start_on_or_after: Option<NaiveDate>,
    pub rel_end_on_or_before: Option<NaiveDate>,
    pub rel_end_on_or_after: Option<NaiveDate>,
    // /organisations
    pub parent: Vec<String>,
    pub school_unit_code: Vec<String>,
    pub organisation_code: Vec<String>,
    pub municipality_code: Option<String>,
    pub org_type: Vec<String>,
    pub school_types: Vec<String>,
    // /duties, /groups, /placements, /activities
    pub organisation: Vec<String>,
    pub duty_role: Option<String>,
    pub person: Option<String>,
    pub group_type: Vec<String>,
    pub group: Option<String>,
    pub child: Option<String>,
    pub owner: Option<String>,
    pub member: Option<String>,
    pub teacher: Option<String>,
    // /deletedEntities
    pub after: Option<DateTime<Utc>>,
    pub entities: Vec<String>,
}

/// Why a request's query was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueryError {
    /// A parameter the endpoint does not take.
    Unknown(String),
    /// `pageToken` together with something other than `limit`.
    FilterWithPageToken(Vec<String>),
    /// A value that does not parse or is not in the enumeration.
    Invalid { param: String, value: String, why: String },
    /// A parameter the specification has that this server does not implement (`sortkey`).
    Unsupported(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Unknown(p) => write!(f, "unknown query parameter {p:?}"),
            QueryError::FilterWithPageToken(ps) => {
                write!(f, "pageToken cannot be combined with other parameters than limit; got {ps:?}")
            }
            QueryError::Invalid { param, value, why } => write!(f, "invalid value {value:?} for {param}: {why}"),
            QueryError::Unsupported(p) => write!(f, "{p} is not implemented by this test server"),
        }
    }
}

/// A listing endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    Entities(Kind),
    Deleted,
}

const META: &[&str] = &["meta.created.before", "meta.created.after", "meta.modified.before", "meta.modified.after"];
const DATES: &[&str] = &["startDate.onOrBefore", "startDate.onOrAfter", "endDate.onOrBefore", "endDate.onOrAfter"];
const PAGING: &[&str] = &["limit", "pageToken", "expandReferenceNames", "sortkey"];

fn allowed(l: Listing) -> (Vec<&'static str>, &'static [&'static str]) {
    let (own, expand): (&[&str], &[&str]) = match l {
        Listing::Entities(Kind::Organisation) => {
            (&["parent", "schoolUnitCode", "organisationCode", "municipalityCode", "type", "schoolTypes"], &[])
        }
        Listing::Entities(Kind::Person) => (
            &[
                "nameContains",
                "civicNo",
                "eduPersonPrincipalName",
                "identifier.value",
                "identifier.context",
                "relationship.entity.type",
                "relationship.organisation",
                "relationship.startDate.onOrBefore",
                "relationship.startDate.onOrAfter",
                "relationship.endDate.onOrBefore",
                "relationship.endDate.onOrAfter",
                "expand",
            ],
            &["duties", "responsibleFor", "placements", "ownedPlacements", "groupMemberships"],
        ),
        Listing::Entities(Kind::Duty) => (&["organisation", "dutyRole", "person", "expand"], &["person"]),
        Listing::Entities(Kind::Group) => {
            (&["groupType", "schoolTypes", "organisation", "expand"], &["assignmentRoles"])
        }
        Listing::Entities(Kind::Placement) => {
            (&["organisation", "group", "child", "owner", "expand"], &["child", "owners"])
        }
        Listing::Entities(Kind::Activity) => {
            (&["member", "teacher", "organisation", "group", "expand"], &["groups", "teachers", "syllabus"])
        }
        Listing::Deleted => return (vec!["after", "entities", "limit", "pageToken"], &[]),
    };
    let mut all: Vec<&str> = own.to_vec();
    all.extend_from_slice(META);
    all.extend_from_slice(PAGING);
    if l != Listing::Entities(Kind::Person) {
        all.extend_from_slice(DATES);
    }
    (all, expand)
}

const SCHOOL_TYPES_2020: &[&str] = &[
    "FS", "FKLASS", "FTH", "OPPFTH", "GR", "GRS", "SP", "SAM", "GY", "GYS", "KOMVUX", "SARVUX", "SFI", "KU", "YH",
    "FHS", "STF", "KKU", "HS", "ABU", "AU",
];
const SCHOOL_TYPES_21: &[&str] = &[
    "FS", "FKLASS", "FTH", "OPPFTH", "GR", "GRS", "TR", "SP", "SAM", "GY", "GYS", "VUX", "VUXSFI", "VUXGR", "VUXGY",
    "VUXSARGR", "VUXSARTR", "VUXSARGY", "SFI", "SARVUX", "SARVUXGR", "SARVUXGY", "KU", "YH", "FHS", "STF", "KKU", "HS",
    "ABU", "AU",
];
const ORG_TYPES_2020: &[&str] = &["Huvudman", "Stadsdel", "Rektorsområde", "Skola", "Skolenhet", "Övrigt"];
const ORG_TYPES_21: &[&str] = &[
    "Huvudman",
    "Förvaltning",
    "Bolag",
    "Varumärke",
    "Verksamhetsområde",
    "Rektorsområde",
    "Skola",
    "Skolenhet",
    "Övrigt",
];
const DUTY_ROLES_2020: &[&str] =
    &["Rektor", "Lärare", "Förskollärare", "Övrig pedagogisk personal", "Förskolechef", "Annan personal"];
const DUTY_ROLES_21: &[&str] = &[
    "Rektor",
    "Lärare",
    "Förskollärare",
    "Barnskötare",
    "Bibliotekarie",
    "Lärarassistent",
    "Fritidspedagog",
    "Annan personal",
    "Studie- och yrkesvägledare",
    "Förstelärare",
    "Kurator",
    "Skolsköterska",
    "Skolläkare",
    "Skolpsykolog",
    "Speciallärare/specialpedagog",
    "Skoladministratör",
    "Övrig arbetsledning",
    "Övrig pedagogisk personal",
    "Förskolechef",
];
const GROUP_TYPES: &[&str] =
    &["Undervisning", "Klass", "Mentor", "Provgrupp", "Schema", "Avdelning", "Personalgrupp", "Övrigt"];
const REL_TYPES_2020: &[&str] = &[
    "enrolment",
    "duty",
    "placement.child",
    "placement.owner",
    "responsibleFor.enrolment",
    "responsibleFor.placement",
];
const REL_TYPES_21: &[&str] = &[
    "enrolment",
    "duty",
    "groupMembership",
    "placement.child",
    "placement.owner",
    "responsibleFor.enrolment",
    "responsibleFor.placement",
];
/// The object types `/deletedEntities?entities=` takes (EndPointsEnum).
pub(crate) const OBJECT_TYPES: &[&str] = &[
    "Absence",
    "AttendanceEvent",
    "Attendance",
    "Grade",
    "CalendarEvent",
    "AttendanceSchedule",
    "Resource",
    "Room",
    "Activity",
    "Duty",
    "Placement",
    "StudyPlan",
    "Programme",
    "Syllabus",
    "SchoolUnitOffering",
    "Group",
    "Person",
    "Organisation",
];

/// The decoded `name=value` pairs of a query string, in order.
pub(crate) fn pairs(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn invalid(param: &str, value: &str, why: &str) -> QueryError {
    QueryError::Invalid { param: param.into(), value: value.into(), why: why.into() }
}

fn time(k: &str, v: &str) -> Result<DateTime<Utc>, QueryError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| invalid(k, v, "not an RFC 3339 date-time"))
}

fn date(k: &str, v: &str) -> Result<NaiveDate, QueryError> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| invalid(k, v, "not a date (YYYY-MM-DD)"))
}

fn uuid(k: &str, v: &str) -> Result<String, QueryError> {
    let ok = v.len() == 36
        && v.char_indices().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() });
    if ok { Ok(v.to_ascii_lowercase()) } else { Err(invalid(k, v, "not a UUID")) }
}

fn one_of(k: &str, v: &str, allowed: &[&str]) -> Result<String, QueryError> {
    if allowed.contains(&v) { Ok(v.to_string()) } else { Err(invalid(k, v, "not a value of the enumeration")) }
}

/// The `limit` of a request (a follow-up may change it).
pub(crate) fn limit(pairs: &[(String, String)]) -> Result<Option<usize>, QueryError> {
    match pairs.iter().rev().find(|(k, _)| k == "limit") {
        None => Ok(None),
        Some((k, v)) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(invalid(k, v, "an integer of at least 1")),
        },
    }
}

/// The page token of a follow-up, after checking that nothing but `limit` came with it.
pub(crate) fn page_token(pairs: &[(String, String)]) -> Result<Option<String>, QueryError> {
    let Some((_, token)) = pairs.iter().find(|(k, _)| k == "pageToken") else { return Ok(None) };
    let others: Vec<String> =
        pairs.iter().filter(|(k, _)| k != "pageToken" && k != "limit").map(|(k, _)| k.clone()).collect();
    if !others.is_empty() {
        return Err(QueryError::FilterWithPageToken(others));
    }
    Ok(Some(token.clone()))
}

/// Parses a first page's query for listing `l`.
pub(crate) fn parse(l: Listing, pairs: &[(String, String)], dialect: Dialect) -> Result<ListQuery, QueryError> {
    let (allowed, expands) = allowed(l);
    let mut q = ListQuery::default();
    let v21 = dialect == Dialect::V21;
    for (k, v) in pairs {
        let k = k.as_str();
        if !allowed.contains(&k) {
            return Err(QueryError::Unknown(k.to_string()));
        }
        match k {
            "limit" | "pageToken" => {}
            "sortkey" => return Err(QueryError::Unsupported("sortkey".into())),
            "expandReferenceNames" => {
                q.names = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid(k, v, "true or false")),
                }
            }
            "expand" => q.expand.push(one_of(k, v, expands)?),
            "meta.created.before" => q.created_before = Some(time(k, v)?),
            "meta.created.after" => q.created_after = Some(time(k, v)?),
            "meta.modified.before" => q.modified_before = Some(time(k, v)?),
            "meta.modified.after" => q.modified_after = Some(time(k, v)?),
            "startDate.onOrBefore" => q.start_on_or_before = Some(date(k, v)?),
            "startDate.onOrAfter" => q.start_on_or_after = Some(date(k, v)?),
            "endDate.onOrBefore" => q.end_on_or_before = Some(date(k, v)?),
            "endDate.onOrAfter" => q.end_on_or_after = Some(date(k, v)?),
            "nameContains" => q.name_contains.push(v.to_lowercase()),
            "civicNo" => q.civic_no = Some(v.clone()),
            "eduPersonPrincipalName" => q.eppn = Some(v.clone()),
            "identifier.value" => q.identifier_value = Some(v.clone()),
            "identifier.context" => q.identifier_context = Some(v.clone()),
            "relationship.entity.type" => {
                q.rel_type = Some(one_of(k, v, if v21 { REL_TYPES_21 } else { REL_TYPES_2020 })?)
            }
            "relationship.organisation" => q.rel_org = Some(uuid(k, v)?),
            "relationship.startDate.onOrBefore" => q.rel_start_on_or_before = Some(date(k, v)?),
            "relationship.startDate.onOrAfter" => q.rel_start_on_or_after = Some(date(k, v)?),
            "relationship.endDate.onOrBefore" => q.rel_end_on_or_before = Some(date(k, v)?),
            "relationship.endDate.onOrAfter" => q.rel_end_on_or_after = Some(date(k, v)?),
            "parent" => q.parent.push(uuid(k, v)?),
            "schoolUnitCode" => q.school_unit_code.push(v.clone()),
            "organisationCode" => q.organisation_code.push(v.clone()),
            "municipalityCode" => q.municipality_code = Some(v.clone()),
            "type" => q.org_type.push(one_of(k, v, if v21 { ORG_TYPES_21 } else { ORG_TYPES_2020 })?),
            "schoolTypes" => q.school_types.push(one_of(k, v, if v21 { SCHOOL_TYPES_21 } else { SCHOOL_TYPES_2020 })?),
            "organisation" => q.organisation.push(uuid(k, v)?),
            "dutyRole" => q.duty_role = Some(one_of(k, v, if v21 { DUTY_ROLES_21 } else { DUTY_ROLES_2020 })?),
            "person" => q.person = Some(uuid(k, v)?),
            "groupType" => q.group_type.push(one_of(k, v, GROUP_TYPES)?),
            "group" => q.group = Some(uuid(k, v)?),
            "child" => q.child = Some(uuid(k, v)?),
            "owner" => q.owner = Some(uuid(k, v)?),
            "member" => q.member = Some(uuid(k, v)?),
            "teacher" => q.teacher = Some(uuid(k, v)?),
            "after" => q.after = Some(time(k, v)?),
            "entities" => q.entities.push(one_of(k, v, OBJECT_TYPES)?),
            // Every allowed name is matched above; an unmatched one is this table's mistake.
            other => return Err(QueryError::Unknown(other.to_string())),
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_ups_carry_only_the_token_and_a_limit() {
        let p = pairs("pageToken=abc&limit=5");
        assert_eq!(page_token(&p), Ok(Some("abc".into())));
        let p = pairs("pageToken=abc&meta.modified.after=2026-01-01T00:00:00Z");
        assert!(matches!(page_token(&p), Err(QueryError::FilterWithPageToken(_))));
        let p = pairs("limit=0");
        assert!(limit(&p).is_err());
    }

    #[test]
    fn parameters_and_values_are_checked_per_endpoint_and_dialect() {
        let persons = Listing::Entities(Kind::Person);
        assert!(parse(persons, &pairs("expand=duties&expand=groupMemberships&limit=3"), Dialect::V21).is_ok());
        assert_eq!(parse(persons, &pairs("bogus=1"), Dialect::V21).unwrap_err(), QueryError::Unknown("bogus".into()));
        assert!(parse(persons, &pairs("groupType=Klass"), Dialect::V21).is_err());
        assert!(parse(persons, &pairs("relationship.entity.type=groupMembership"), Dialect::V21).is_ok());
        assert!(parse(persons, &pairs("relationship.entity.type=groupMembership"), Dialect::V2020).is_err());
        let orgs = Listing::Entities(Kind::Organisation);
        assert!(parse(orgs, &pairs("type=F%C3%B6rvaltning"), Dialect::V21).is_ok());
        assert!(parse(orgs, &pairs("type=F%C3%B6rvaltning"), Dialect::V2020).is_err());
        assert!(parse(orgs, &pairs("meta.modified.after=yesterday"), Dialect::V21).is_err());
    }
}
