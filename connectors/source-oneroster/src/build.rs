//! From a bundle's tables to person records: which tables a bundle has, one person from a user
//! and their ties and enrollments, and the full read of a bulk bundle.

use crate::bundle::Bundle;
use crate::lookup::{Classes, Clock, Known, Orgs, each, read_classes, read_orgs};
use crate::manifest::{Manifest, Mode, Version};
use crate::rows::{self, EnrollmentRow, RoleClass, UserRow};
use crate::table::Table;
use crate::{CivicNoFrom, OneRosterConfig};
use chrono::NaiveDate;
use connector_api::civic::{CivicNo, mask_if_civic, mask_raw};
use connector_api::{
    Affiliation, AffiliationKind, FetchContext, GroupMembership, Role, RowError, SourceBatch, SourceError,
    SourceRecord, TieDetails,
};
use std::collections::{BTreeMap, BTreeSet};

/// The tables of a bundle that the manifest lists (`None`: absent).
#[derive(Debug)]
pub struct Tables {
    pub orgs: Option<Table>,
    pub users: Option<Table>,
    pub classes: Option<Table>,
    pub enrollments: Option<Table>,
    pub roles: Option<Table>,
    /// Where a user's ties to orgs come from.
    pub ties: TieSource,
}

/// Where a user's ties (role at an org) are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieSource {
    /// `role` and `orgSourcedIds` of `users.csv` (1.1; 1.2 without `roles.csv`).
    UserRows,
    /// `roles.csv` (1.2).
    RolesFile,
    /// Neither (a 1.2 delta without roles): the stored ties stand.
    Unchanged,
}

impl Tables {
    /// Parses the files the manifest lists, checking that a bulk bundle has every file enid
    /// needs and that a delta bundle's person files are deltas.
    pub fn read(bundle: &Bundle, manifest: &Manifest, config: &OneRosterConfig) -> Result<Tables, SourceError> {
        let delta = manifest.is_delta();
        let manifest_name = manifest.file.clone();
        for (file, mode) in &manifest.modes {
            let needed = *file != "roles";
            if !delta && needed && *mode == Mode::Absent {
                return Err(SourceError::Malformed {
                    location: manifest_name.clone(),
                    reason: format!(
                        "file.{file} is absent in a bulk bundle, but enid needs {file}.csv to read every person; \
                         export it in bulk too"
                    ),
                    source: None,
                });
            }
            if delta && *mode == Mode::Bulk && matches!(*file, "users" | "enrollments" | "roles") {
                return Err(SourceError::Malformed {
                    location: manifest_name.clone(),
                    reason: format!(
                        "file.{file} is bulk in a delta bundle; enid reads persons, roles and enrollments either all \
                         in bulk or all as deltas (orgs and classes may be bulk). Export the bundle one way"
                    ),
                    source: None,
                });
            }
        }
        let file = |name: &str, required: &[&str]| -> Result<Option<Table>, SourceError> {
            if manifest.mode(name) == Mode::Absent {
                return Ok(None);
            }
            let file = format!("{name}.csv");
            let shown = bundle.display(&file);
            let bytes = bundle.files.get(&file).ok_or_else(|| SourceError::Malformed {
                location: manifest_name.clone(),
                reason: format!("file.{name} is {}, but the bundle has no {file}; fix the export", manifest.mode(name)),
                source: None,
            })?;
            Table::parse(&shown, bytes, required).map(Some)
        };
        let roles = file("roles", &rows::ROLES_COLUMNS)?;
        let ties = match (manifest.version, &roles) {
            (Version::V1_1, _) => TieSource::UserRows,
            (Version::V1_2, Some(_)) => TieSource::RolesFile,
            (Version::V1_2, None) if !delta => TieSource::UserRows,
            (Version::V1_2, None) => TieSource::Unchanged,
        };
        let mut user_columns: Vec<&str> = rows::USERS_COLUMNS.to_vec();
        if ties == TieSource::UserRows {
            user_columns.extend(rows::USERS_TIE_COLUMNS);
        }
        match &config.civic_no {
            Some(CivicNoFrom::Identifier {}) => user_columns.push("identifier"),
            Some(CivicNoFrom::UserIds { .. }) => user_columns.push("userIds"),
            None => {}
        }
        if config.eppn_from_username {
            user_columns.push("username");
        }
        let users = file("users", &user_columns)?;
        // A 1.2 delta without roles.csv whose users.csv still carries the 1.1 columns: the
        // ties come from there, as they did in a bulk bundle without roles.csv.
        let ties = match (&users, ties) {
            (Some(u), TieSource::Unchanged) if rows::USERS_TIE_COLUMNS.iter().all(|c| u.has(c)) => TieSource::UserRows,
            (_, t) => t,
        };
        Ok(Tables {
            orgs: file("orgs", &rows::ORGS_COLUMNS)?,
            users,
            classes: file("classes", &rows::CLASSES_COLUMNS)?,
            enrollments: file("enrollments", &rows::ENROLLMENTS_COLUMNS)?,
            roles,
            ties,
        })
    }
}

/// A user's role at an org, and the id a later delta finds it by.
#[derive(Debug, Clone)]
pub struct Tie {
    /// `org:<org>` (from `users.csv`) or `role:<role> org:<org>` (a row of `roles.csv`): the
    /// org's id is kept so that a delta can look the org up without `orgs.csv`.
    pub source_id: String,
    pub role: String,
    pub org_id: String,
    pub begin: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

/// The org's id in a tie's source id.
pub fn tie_org(source_id: &str) -> Option<&str> {
    source_id.rsplit_once(" org:").map(|(_, o)| o).or_else(|| source_id.strip_prefix("org:"))
}

/// The role row's id in a tie's source id (`None` for a tie from `users.csv`).
pub fn tie_role(source_id: &str) -> Option<&str> {
    source_id.strip_prefix("role:").and_then(|s| s.rsplit_once(" org:")).map(|(r, _)| r)
}

/// The ties a `users.csv` row gives: its one role at each of its orgs.
pub fn user_ties(u: &UserRow) -> Vec<Tie> {
    u.org_ids
        .iter()
        .map(|o| Tie { source_id: format!("org:{o}"), role: u.role.clone(), org_id: o.clone(), begin: None, end: None })
        .collect()
}

/// The tie a `roles.csv` row gives.
pub fn role_tie(r: &rows::RoleRow) -> Tie {
    Tie {
        source_id: format!("role:{} org:{}", r.id, r.org_id),
        role: r.role.clone(),
        org_id: r.org_id.clone(),
        begin: r.begin,
        end: r.end,
    }
}

/// Why a user is not a person record, by the reason counted in `skipped`.
pub const SKIP_DELETED: &str = "status tobedeleted";
pub const SKIP_DISABLED: &str = "enabledUser false";
pub const SKIP_NO_SCHOOL: &str = "no affiliation to a school";
/// Rows (not persons) of a delta older than the last read's watermark: read then, or a delta
/// older than the last one read (its changes are not applied; a bulk bundle puts them right).
pub const SKIP_OLDER: &str = "rows older than the last read, not applied (an older delta needs a bulk bundle)";

/// What the ties of a user give: affiliations, or why there are none.
pub enum TieOutcome {
    Affiliations(Vec<Affiliation>),
    /// Only guardian, parent or relative roles: the first such role.
    Family(&'static str),
    /// A tie that cannot be read: the message.
    Bad(String),
}

/// The affiliations of `ties` at schools. `year` is the pupil's grade when the user has one.
pub fn affiliations(ties: &[Tie], orgs: &Orgs, year: Option<&str>) -> TieOutcome {
    let mut out = Vec::new();
    let mut family = None;
    for t in ties {
        let role = match rows::classify_role(&t.role) {
            Ok(RoleClass::Person(role)) => role,
            Ok(RoleClass::Family(f)) => {
                family.get_or_insert(f);
                continue;
            }
            Err(e) if t.role.is_empty() => return TieOutcome::Bad(format!("{e} (role is empty)")),
            Err(e) => return TieOutcome::Bad(e),
        };
        let org = match orgs.get(&t.org_id) {
            Some(Known::Ok(o)) if o.school => o,
            Some(Known::Ok(_) | Known::Deleted) => continue,
            Some(Known::Bad(e)) => return TieOutcome::Bad(format!("its org is unusable ({e})")),
            None => {
                return TieOutcome::Bad(format!(
                    "org {:?} is not in orgs.csv (nor known from the last read)",
                    mask_if_civic(&t.org_id)
                ));
            }
        };
        let kind = if role == Role::Student { AffiliationKind::Enrolment } else { AffiliationKind::Duty };
        out.push(Affiliation {
            school_unit: Some(org.code.as_str().into()),
            kind,
            role,
            start_date: t.begin,
            end_date: t.end,
            details: TieDetails {
                school_unit_name: Some(org.name.clone()),
                duty_role: (role == Role::Staff).then(|| t.role.clone()),
                school_type: None,
                year: if role == Role::Student { year.map(str::to_string) } else { None },
                source_id: Some(t.source_id.clone()),
            }
            .boxed(),
        });
    }
    match (out.is_empty(), family) {
        (true, Some(f)) => TieOutcome::Family(f),
        _ => TieOutcome::Affiliations(out),
    }
}

/// The membership an enrollment gives (`Ok(None)`: none, for a guardian's enrollment or a
/// deleted class).
pub fn membership(e: &EnrollmentRow, classes: &Classes) -> Result<Option<GroupMembership>, String> {
    if !e.role.is_empty() && matches!(rows::classify_role(&e.role)?, RoleClass::Family(_)) {
        return Ok(None);
    }
    match classes.get(&e.class_id) {
        Some(Known::Ok(c)) => Ok(Some(GroupMembership {
            school_unit: c.school_unit.as_deref().map(Into::into),
            name: c.name.as_str().into(),
            kind: c.kind,
            start_date: e.begin,
            end_date: e.end,
            source_id: Some(e.class_id.clone()),
        })),
        Some(Known::Deleted) => Ok(None),
        Some(Known::Bad(m)) => Err(format!("its class is unusable ({m})")),
        None => Err(format!(
            "classSourcedId {:?} is not in classes.csv (nor known from the last read)",
            mask_if_civic(&e.class_id)
        )),
    }
}

/// A pupil's year (årskurs): the user's grade when there is exactly one.
pub fn year(u: &UserRow) -> Option<&str> {
    match u.grades.as_slice() {
        [g] => Some(g.as_str()),
        _ => None,
    }
}

/// The record of a user without ties or groups: names, civic number, addresses, external ids.
pub fn base(config: &OneRosterConfig, u: &UserRow, location: String, today: NaiveDate) -> Result<SourceRecord, String> {
    let civic_raw = match &config.civic_no {
        None => "",
        Some(CivicNoFrom::Identifier {}) => u.identifier.as_str(),
        Some(CivicNoFrom::UserIds { id_type }) => {
            u.user_ids.iter().find(|(k, _)| k.eq_ignore_ascii_case(id_type)).map(|(_, v)| v.as_str()).unwrap_or("")
        }
    };
    let civic_no = if civic_raw.is_empty() {
        None
    } else {
        let from = if matches!(config.civic_no, Some(CivicNoFrom::Identifier {})) { "identifier" } else { "userIds" };
        Some(CivicNo::parse(civic_raw, today).map_err(|e| format!("{from} {} {e}", mask_raw(civic_raw)))?)
    };
    let mut external_ids = Vec::new();
    if !matches!(config.civic_no, Some(CivicNoFrom::Identifier {})) && !u.identifier.is_empty() {
        external_ids.push(u.identifier.clone());
    }
    if !u.user_master_identifier.is_empty() && !external_ids.contains(&u.user_master_identifier) {
        external_ids.push(u.user_master_identifier.clone());
    }
    let eppn = config.eppn_from_username.then(|| u.username.to_lowercase()).filter(|v| !v.is_empty());
    Ok(SourceRecord {
        person_id: u.id.as_str().into(),
        given_name: u.given_name.as_str().into(),
        family_name: u.family_name.as_str().into(),
        civic_no,
        affiliations: Default::default(),
        groups: Default::default(),
        extras: connector_api::Extras::new(
            Some(u.email.as_str()).filter(|e| !e.is_empty()).map(Into::into),
            eppn.map(Into::into),
            external_ids.into(),
        ),
        protection: None,
        deceased: false,
        location: location.into(),
    })
}

/// Sorts and deduplicates a record's ties and groups, as the record model asks.
pub fn tidy(r: &mut SourceRecord) {
    r.affiliations.sort();
    r.affiliations.dedup();
    r.groups.sort();
    r.groups.dedup();
}

/// The fields of enid's record model this bundle delivers, for the engine's check that none
/// vanishes between runs.
fn columns(config: &OneRosterConfig, tables: &Tables) -> BTreeSet<String> {
    let mut out: BTreeSet<String> =
        ["person_id", "given_name", "family_name", "role", "school_unit", "groups"].map(str::to_string).into();
    let users = tables.users.as_ref();
    if users.is_some_and(|u| u.has("email")) {
        out.insert("email".into());
    }
    if users.is_some_and(|u| u.has("identifier") || u.has("userMasterIdentifier")) {
        out.insert("external_ids".into());
    }
    if config.eppn_from_username {
        out.insert("eppn".into());
    }
    if config.civic_no.is_some() {
        out.insert("civic_no".into());
    }
    if tables.ties == TieSource::RolesFile {
        out.extend(["start_date".to_string(), "end_date".to_string()]);
    }
    out
}

/// The full read of a bulk bundle.
pub fn full(
    config: &OneRosterConfig,
    manifest: &Manifest,
    tables: &Tables,
    cx: FetchContext<'_>,
) -> Result<SourceBatch, SourceError> {
    let (Some(users_t), Some(orgs_t), Some(classes_t), Some(enrollments_t)) =
        (&tables.users, &tables.orgs, &tables.classes, &tables.enrollments)
    else {
        // `Tables::read` refuses a bulk bundle without these.
        return Err(SourceError::Malformed {
            location: manifest.file.clone(),
            reason: "a bulk bundle lacks a file enid needs".into(),
            source: None,
        });
    };
    let mut clock = Clock::default();
    let mut orgs = Orgs::new();
    read_orgs(config, orgs_t, &mut clock, &mut orgs);
    let mut classes = Classes::new();
    read_classes(config, classes_t, &mut clock, &orgs, &mut classes);
    let mut batch = SourceBatch { columns: columns(config, tables), ..SourceBatch::default() };
    // The first fault of each user's role or enrollment rows rejects the user.
    let mut faults: BTreeMap<String, RowError> = BTreeMap::new();
    let mut fault = |batch: &mut SourceBatch, user: Option<String>, location: String, message: String| match user {
        Some(u) => {
            faults.entry(u.clone()).or_insert(RowError {
                location,
                message,
                person_id: Some(u),
                civic_no: None,
                school_unit: None,
            });
        }
        None => batch.rejected.push(RowError { location, message, person_id: None, civic_no: None, school_unit: None }),
    };
    let mut ties: BTreeMap<String, Vec<Tie>> = BTreeMap::new();
    if let Some(roles_t) = tables.roles.as_ref().filter(|_| tables.ties == TieSource::RolesFile) {
        for p in each(roles_t, &mut clock, rows::role) {
            match p.value {
                Ok(r) if r.deleted => {}
                Ok(r) => ties.entry(r.user_id.clone()).or_default().push(role_tie(&r)),
                Err(e) => fault(&mut batch, p.user, p.location, e),
            }
        }
    }
    let mut groups: BTreeMap<String, Vec<GroupMembership>> = BTreeMap::new();
    for p in each(enrollments_t, &mut clock, rows::enrollment) {
        let e = match p.value {
            Ok(e) if e.deleted => continue,
            Ok(e) => e,
            Err(e) => {
                fault(&mut batch, p.user, p.location, e);
                continue;
            }
        };
        match membership(&e, &classes) {
            Ok(Some(m)) => groups.entry(e.user_id.clone()).or_default().push(m),
            Ok(None) => {}
            Err(m) => fault(&mut batch, Some(e.user_id.clone()), p.location, m),
        }
    }
    let users = each(users_t, &mut clock, rows::user);
    let mut lines_of: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for p in &users {
        if let Some(id) = p.value.as_ref().ok().map(|u| u.id.as_str()).or(p.user.as_deref()) {
            lines_of.entry(id).or_default().push(p.line);
        }
    }
    for p in &users {
        let reject = |message: String| RowError {
            location: p.location.clone(),
            message,
            person_id: p.value.as_ref().ok().map(|u| u.id.clone()).or_else(|| p.user.clone()),
            civic_no: None,
            // OneRoster names a user's schools by sourcedId in orgs: the state's school for
            // the person is shown instead.
            school_unit: None,
        };
        let u = match &p.value {
            Ok(u) => u,
            Err(e) => {
                // One rejection per person: a fault of their role or enrollment rows adds none.
                if let Some(u) = &p.user {
                    faults.remove(u);
                }
                batch.rejected.push(reject(e.clone()));
                continue;
            }
        };
        if let Some(lines) = lines_of.get(u.id.as_str()).filter(|l| l.len() > 1) {
            let others: Vec<String> = lines.iter().filter(|l| **l != p.line).map(u64::to_string).collect();
            batch.rejected.push(reject(format!(
                "sourcedId {:?} is also on line {}; every row with it is left out (the person is kept as at the \
                 last run). Fix the export so each user is on one row",
                mask_if_civic(&u.id),
                others.join(", ")
            )));
            continue;
        }
        let user_ties = match tables.ties {
            TieSource::RolesFile => ties.remove(&u.id).unwrap_or_default(),
            _ => user_ties(u),
        };
        let fault = faults.remove(&u.id);
        match person(
            config,
            u,
            p.location.clone(),
            &user_ties,
            groups.remove(&u.id).unwrap_or_default(),
            &orgs,
            cx.today,
        ) {
            // A bad role or enrollment row of a person rejects the person (kept as last
            // stored); one of a user who is skipped anyway changes nothing.
            Ok(Ok(_)) if fault.is_some() => batch.rejected.extend(fault),
            Ok(Ok(r)) => batch.records.push(Box::new(r)),
            Ok(Err(reason)) => *batch.skipped.entry(reason.to_string()).or_default() += 1,
            Err(message) => batch.rejected.push(reject(message)),
        }
    }
    // Bad role and enrollment rows of users who are not in users.csv are still bad rows.
    batch.rejected.extend(faults.into_values());
    sort_rejected(&mut batch.rejected);
    batch.watermark = Some(clock.watermark(cx.since));
    Ok(batch)
}

/// Rejected rows by file, then line (not by the text of `file:line`, where 10 sorts before 9).
pub fn sort_rejected(rejected: &mut [RowError]) {
    rejected.sort_by_key(|e| {
        let (file, line) = e.location.rsplit_once(':').unwrap_or((e.location.as_str(), ""));
        (file.to_string(), line.parse::<u64>().unwrap_or(0), e.person_id.clone())
    });
}

/// One user as a person record (`Ok(Err(reason))`: skipped).
pub fn person(
    config: &OneRosterConfig,
    u: &UserRow,
    location: String,
    ties: &[Tie],
    groups: Vec<GroupMembership>,
    orgs: &Orgs,
    today: NaiveDate,
) -> Result<Result<SourceRecord, &'static str>, String> {
    if u.deleted {
        return Ok(Err(SKIP_DELETED));
    }
    let affiliations = match affiliations(ties, orgs, year(u)) {
        TieOutcome::Bad(e) => return Err(e),
        TieOutcome::Family(f) => return Ok(Err(f)),
        TieOutcome::Affiliations(a) => a,
    };
    if !u.enabled && !config.include_disabled_users {
        return Ok(Err(SKIP_DISABLED));
    }
    if affiliations.is_empty() {
        return Ok(Err(SKIP_NO_SCHOOL));
    }
    let mut r = base(config, u, location, today)?;
    r.affiliations = connector_api::source::shared(affiliations);
    r.groups = connector_api::source::shared(groups);
    tidy(&mut r);
    Ok(Ok(r))
}
