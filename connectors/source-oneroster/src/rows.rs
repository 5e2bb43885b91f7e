//! The rows of each OneRoster file as typed values, and what a user's role means to enid.
//!
//! Every parser takes one [`Row`] and gives the value or a message for a bad row. A row marked
//! `tobedeleted` needs only its keys: exporters often leave its other fields empty.

use crate::table::{MAX_FIELD_CHARS, Row, Table};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use connector_api::civic::mask_if_civic;
use connector_api::{GroupType, Role};

/// The required columns of each file, by version. Columns enid does not use are not required,
/// so an export that leaves out `sms` or `courseSourcedId` is still read.
pub const ORGS_COLUMNS: [&str; 4] = ["sourcedId", "name", "type", "identifier"];
pub const USERS_COLUMNS: [&str; 4] = ["sourcedId", "enabledUser", "givenName", "familyName"];
pub const USERS_TIE_COLUMNS: [&str; 2] = ["orgSourcedIds", "role"];
pub const CLASSES_COLUMNS: [&str; 5] = ["sourcedId", "title", "classCode", "classType", "schoolSourcedId"];
pub const ENROLLMENTS_COLUMNS: [&str; 6] =
    ["sourcedId", "classSourcedId", "userSourcedId", "role", "beginDate", "endDate"];
pub const ROLES_COLUMNS: [&str; 7] =
    ["sourcedId", "userSourcedId", "roleType", "role", "beginDate", "endDate", "orgSourcedId"];

/// The columns of `users.csv` whose values enid reads, for the shape check.
const USER_VALUES: [&str; 12] = [
    "sourcedId",
    "status",
    "enabledUser",
    "givenName",
    "familyName",
    "email",
    "username",
    "identifier",
    "userMasterIdentifier",
    "grades",
    "role",
    "userIds",
];

/// What a OneRoster role means to enid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleClass {
    /// A pupil or a member of staff: provisioned.
    Person(Role),
    /// A guardian, parent or relative: not provisioned, counted under this name.
    Family(&'static str),
}

/// Classifies a OneRoster 1.1 or 1.2 role (`student`, `teacher`, `districtAdministrator`, ...).
pub fn classify_role(raw: &str) -> Result<RoleClass, String> {
    Ok(match raw.to_ascii_lowercase().as_str() {
        "student" => RoleClass::Person(Role::Student),
        "teacher"
        | "administrator"
        | "aide"
        | "proctor"
        | "counselor"
        | "principal"
        | "districtadministrator"
        | "siteadministrator"
        | "systemadministrator" => RoleClass::Person(Role::Staff),
        "guardian" => RoleClass::Family("guardian"),
        "parent" => RoleClass::Family("parent"),
        "relative" => RoleClass::Family("relative"),
        _ => {
            return Err(format!(
                "role {:?} is not a OneRoster role enid knows (student, teacher, administrator, aide, proctor, \
                 counselor, principal, districtAdministrator, siteAdministrator, systemAdministrator, guardian, \
                 parent, relative); fix the export",
                mask_if_civic(raw)
            ));
        }
    })
}

/// The row's `status`: whether it is marked `tobedeleted`.
fn deleted(row: &Row<'_>) -> Result<bool, String> {
    match row.get("status").to_ascii_lowercase().as_str() {
        "" | "active" => Ok(false),
        "tobedeleted" => Ok(true),
        other => Err(format!("status {:?} is neither active nor tobedeleted", mask_if_civic(other))),
    }
}

/// A `beginDate` or `endDate`: `YYYY-MM-DD`, or empty.
fn date(row: &Row<'_>, column: &str) -> Result<Option<NaiveDate>, String> {
    let v = row.get(column);
    if v.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| format!("{column} {:?} is not a date in the form YYYY-MM-DD", mask_if_civic(v)))
}

fn dates(row: &Row<'_>) -> Result<(Option<NaiveDate>, Option<NaiveDate>), String> {
    let (begin, end) = (date(row, "beginDate")?, date(row, "endDate")?);
    if let (Some(b), Some(e)) = (begin, end)
        && e < b
    {
        return Err(format!("endDate {e} is before beginDate {b}"));
    }
    Ok((begin, end))
}

/// Parses a `dateLastModified` (ISO 8601: with an offset, or without one read as UTC, or a
/// date alone) or our own watermark.
pub fn parse_instant(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

/// The row's `dateLastModified`, when it has one.
pub fn modified(row: &Row<'_>) -> Result<Option<(DateTime<Utc>, String)>, String> {
    let v = row.get("dateLastModified");
    if v.is_empty() {
        return Ok(None);
    }
    parse_instant(v)
        .map(|t| Some((t, v.to_string())))
        .ok_or_else(|| format!("dateLastModified {:?} is not an ISO 8601 time", mask_if_civic(v)))
}

/// A list column (`orgSourcedIds`, `grades`): comma-separated inside one quoted field.
fn list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// A row of `orgs.csv`.
#[derive(Debug, Clone)]
pub struct OrgRow {
    pub id: String,
    pub deleted: bool,
    pub name: String,
    /// `school`, `district`, ...; only schools are school units.
    pub kind: String,
    pub identifier: String,
}

pub fn org(row: &Row<'_>) -> Result<OrgRow, String> {
    row.check_shape(&["sourcedId", "status", "name", "type", "identifier"])?;
    let id = row.required("sourcedId")?.to_string();
    let deleted = deleted(row)?;
    if deleted {
        return Ok(OrgRow { id, deleted, name: String::new(), kind: String::new(), identifier: String::new() });
    }
    Ok(OrgRow {
        id,
        deleted,
        name: row.required("name")?.to_string(),
        kind: row.required("type")?.to_string(),
        identifier: row.get("identifier").to_string(),
    })
}

/// A row of `classes.csv`.
#[derive(Debug, Clone)]
pub struct ClassRow {
    pub id: String,
    pub deleted: bool,
    pub title: String,
    pub class_code: String,
    pub kind: GroupType,
    pub school_id: String,
}

pub fn class(row: &Row<'_>) -> Result<ClassRow, String> {
    row.check_shape(&["sourcedId", "status", "title", "classCode", "classType", "schoolSourcedId"])?;
    let id = row.required("sourcedId")?.to_string();
    let deleted = deleted(row)?;
    let kind = match row.get("classType").to_ascii_lowercase().as_str() {
        "homeroom" => GroupType::Class,
        "scheduled" => GroupType::Teaching,
        _ => GroupType::Other,
    };
    let school_id = if deleted { row.get("schoolSourcedId") } else { row.required("schoolSourcedId")? };
    Ok(ClassRow {
        id,
        deleted,
        title: row.get("title").to_string(),
        class_code: row.get("classCode").to_string(),
        kind,
        school_id: school_id.to_string(),
    })
}

/// A row of `users.csv`.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub deleted: bool,
    pub enabled: bool,
    pub given_name: String,
    pub family_name: String,
    pub email: String,
    pub username: String,
    pub identifier: String,
    pub user_master_identifier: String,
    /// `userIds`: `{type:id}` pairs.
    pub user_ids: Vec<(String, String)>,
    pub grades: Vec<String>,
    /// 1.1 (and a 1.2 export without `roles.csv`): the user's one role and its orgs.
    pub role: String,
    pub org_ids: Vec<String>,
}

pub fn user(row: &Row<'_>) -> Result<UserRow, String> {
    row.check_shape(&USER_VALUES)?;
    let id = row.required("sourcedId")?.to_string();
    let deleted = deleted(row)?;
    let mut u = UserRow {
        id,
        deleted,
        enabled: true,
        given_name: String::new(),
        family_name: String::new(),
        email: String::new(),
        username: String::new(),
        identifier: String::new(),
        user_master_identifier: String::new(),
        user_ids: Vec::new(),
        grades: Vec::new(),
        role: String::new(),
        org_ids: Vec::new(),
    };
    if deleted {
        return Ok(u);
    }
    u.enabled = match row.get("enabledUser").to_ascii_lowercase().as_str() {
        "true" | "1" | "" => true,
        "false" | "0" => false,
        other => return Err(format!("enabledUser {:?} is neither true nor false", mask_if_civic(other))),
    };
    u.given_name = row.required("givenName")?.to_string();
    u.family_name = row.required("familyName")?.to_string();
    u.email = row.get("email").to_lowercase();
    u.username = row.get("username").to_string();
    u.identifier = row.get("identifier").to_string();
    u.user_master_identifier = row.get("userMasterIdentifier").to_string();
    u.grades = list(row.get("grades"));
    u.role = row.get("role").to_string();
    u.org_ids = list(row.get("orgSourcedIds"));
    u.user_ids = user_ids(row.get("userIds"))?;
    Ok(u)
}

/// `userIds`: `{type:id},{type:id}`. The message never quotes the value: it may hold a civic
/// number.
fn user_ids(v: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = v.trim();
    while !rest.is_empty() {
        let bad = || "userIds is not a list of {type:identifier} pairs; fix the export".to_string();
        let inner = rest.strip_prefix('{').ok_or_else(bad)?;
        let end = inner.find('}').ok_or_else(bad)?;
        let (kind, id) = inner[..end].split_once(':').ok_or_else(bad)?;
        out.push((kind.trim().to_string(), id.trim().to_string()));
        rest = inner[end + 1..].trim_start().trim_start_matches(',').trim_start();
    }
    Ok(out)
}

/// A row of `roles.csv` (1.2): one role of a user at one org.
#[derive(Debug, Clone)]
pub struct RoleRow {
    pub id: String,
    pub deleted: bool,
    pub user_id: String,
    pub role: String,
    pub org_id: String,
    pub begin: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

pub fn role(row: &Row<'_>) -> Result<RoleRow, String> {
    row.check_shape(&["sourcedId", "status", "userSourcedId", "role", "orgSourcedId", "beginDate", "endDate"])?;
    let id = row.required("sourcedId")?.to_string();
    let deleted = deleted(row)?;
    if deleted {
        let user_id = row.get("userSourcedId").to_string();
        return Ok(RoleRow {
            id,
            deleted,
            user_id,
            role: String::new(),
            org_id: String::new(),
            begin: None,
            end: None,
        });
    }
    let (begin, end) = dates(row)?;
    Ok(RoleRow {
        id,
        deleted,
        user_id: row.required("userSourcedId")?.to_string(),
        role: row.required("role")?.to_string(),
        org_id: row.required("orgSourcedId")?.to_string(),
        begin,
        end,
    })
}

/// A row of `enrollments.csv`: a user in a class.
#[derive(Debug, Clone)]
pub struct EnrollmentRow {
    pub deleted: bool,
    pub user_id: String,
    pub class_id: String,
    pub role: String,
    pub begin: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

pub fn enrollment(row: &Row<'_>) -> Result<EnrollmentRow, String> {
    row.check_shape(&["sourcedId", "status", "classSourcedId", "userSourcedId", "role", "beginDate", "endDate"])?;
    row.required("sourcedId")?;
    let deleted = deleted(row)?;
    // A deleted enrollment is found by its user and class (the membership's source id), so
    // both are needed whatever the status.
    let user_id = row.required("userSourcedId")?.to_string();
    let class_id = row.required("classSourcedId")?.to_string();
    let (begin, end) = if deleted { (None, None) } else { dates(row)? };
    Ok(EnrollmentRow { deleted, user_id, class_id, role: row.get("role").to_string(), begin, end })
}

/// The user a bad row of `users.csv`, `roles.csv` or `enrollments.csv` belongs to, when it can
/// be read: so the engine keeps that person as last stored.
pub fn user_of(table: &Table, row: &Row<'_>) -> Option<String> {
    let column = if table.file.ends_with("users.csv") { "sourcedId" } else { "userSourcedId" };
    if row.shifted() && row.index_of(column) != Some(0) {
        return None; // after a shift, the column may hold another row's value
    }
    let v = row.get(column);
    let ok = !v.is_empty() && !v.chars().any(char::is_control) && v.chars().count() <= MAX_FIELD_CHARS;
    ok.then(|| v.to_string())
}
