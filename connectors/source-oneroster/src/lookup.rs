//! What a bundle says of orgs and classes, as lookups a person is built against, and the
//! clock of `dateLastModified` that every row passes through (rows older than the last read are
//! skipped; the latest time seen becomes the watermark).

use crate::rows::{self, ClassRow, OrgRow};
use crate::table::{Row, Table};
use crate::{GroupName, OneRosterConfig, OrgCode};
use chrono::{DateTime, Utc};
use connector_api::GroupType;
use connector_api::civic::mask_if_civic;
use std::collections::BTreeMap;

/// What a lookup knows of an org or a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known<T> {
    Ok(T),
    /// The row is bad: the message names its location and fault. Persons tied to it are
    /// rejected (kept as last stored).
    Bad(String),
    /// Marked `tobedeleted`: ties to it are gone.
    Deleted,
}

/// An org as enid sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgInfo {
    /// The school unit code.
    pub code: String,
    pub name: String,
    /// Whether the org is a school (`type = school`): only schools are school units.
    pub school: bool,
}

/// A class as a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassInfo {
    pub name: String,
    pub kind: GroupType,
    /// The code of the class's school.
    pub school_unit: Option<String>,
}

pub type Orgs = BTreeMap<String, Known<OrgInfo>>;
pub type Classes = BTreeMap<String, Known<ClassInfo>>;

/// The latest `dateLastModified` seen, and the watermark of the last read: rows older than it
/// were read then, and are skipped (an old delta read again after a newer bulk would undo it).
#[derive(Debug, Default)]
pub struct Clock {
    pub since: Option<DateTime<Utc>>,
    pub latest: Option<(DateTime<Utc>, String)>,
    /// The rows skipped as older than the last read. Counted so that the plan says so: an
    /// older delta read after a newer one changes nothing, and that must not pass unseen.
    pub older: usize,
}

impl Clock {
    /// Notes the row's time; `Ok(false)` for a row older than the last read.
    pub fn fresh(&mut self, row: &Row<'_>) -> Result<bool, String> {
        let Some((t, text)) = rows::modified(row)? else { return Ok(true) };
        if self.latest.as_ref().is_none_or(|(l, _)| t > *l) {
            self.latest = Some((t, text));
        }
        let fresh = self.since.is_none_or(|s| t >= s);
        if !fresh {
            self.older += 1;
        }
        Ok(fresh)
    }

    /// The watermark for the next read: the latest time seen, or the last read's watermark
    /// when that is later (a bulk bundle without dates after a delta with dates must not let
    /// that delta be read again). With neither, the epoch: a delta may follow.
    pub fn watermark(&self, since: Option<&str>) -> String {
        let since = since.and_then(|s| Some((rows::parse_instant(s)?, s)));
        match (&self.latest, since) {
            (Some((t, _)), Some((s, text))) if s > *t => text.to_string(),
            (Some((_, text)), _) => text.clone(),
            (None, Some((_, text))) => text.to_string(),
            (None, None) => "1970-01-01T00:00:00Z".to_string(),
        }
    }
}

/// One parsed row with where it was.
#[derive(Debug)]
pub struct Parsed<T> {
    pub location: String,
    pub line: u64,
    pub value: Result<T, String>,
    /// The user the row belongs to, when readable (for a bad row).
    pub user: Option<String>,
}

/// Parses every row of `table` not older than the last read.
pub fn each<T>(table: &Table, clock: &mut Clock, parse: fn(&Row<'_>) -> Result<T, String>) -> Vec<Parsed<T>> {
    let mut out = Vec::new();
    for row in table.rows() {
        let value = match clock.fresh(&row) {
            Ok(false) => continue,
            Ok(true) => parse(&row),
            Err(e) => Err(e),
        };
        let user = value.is_err().then(|| rows::user_of(table, &row)).flatten();
        out.push(Parsed { location: row.location(), line: row.line, value, user });
    }
    out
}

/// The org's school unit code.
pub fn org_info(config: &OneRosterConfig, o: &OrgRow) -> OrgInfo {
    let code = match config.school_unit_code {
        OrgCode::Identifier if !o.identifier.is_empty() => o.identifier.clone(),
        _ => o.id.clone(),
    };
    OrgInfo { code, name: o.name.clone(), school: o.kind.eq_ignore_ascii_case("school") }
}

/// Adds the rows of `orgs.csv` to `orgs` (a later row replaces an earlier entry; two rows of
/// one org in one file make it bad).
pub fn read_orgs(config: &OneRosterConfig, table: &Table, clock: &mut Clock, orgs: &mut Orgs) {
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for p in each(table, clock, rows::org) {
        match p.value {
            Ok(o) => {
                if let Some(first) = seen.insert(o.id.clone(), p.line) {
                    let msg = format!("{}: sourcedId {:?} is also on line {first}", p.location, mask_if_civic(&o.id));
                    orgs.insert(o.id, Known::Bad(msg));
                    continue;
                }
                let known = if o.deleted { Known::Deleted } else { Known::Ok(org_info(config, &o)) };
                orgs.insert(o.id.clone(), known);
            }
            // A bad row whose key can be read makes that org bad; one without a key cannot be
            // tied to anyone, and a user pointing at it finds no org (and is rejected).
            Err(e) => {
                if let Some(id) = table.rows().find(|r| r.line == p.line).and_then(|r| r.sourced_id()) {
                    orgs.insert(id.to_string(), Known::Bad(format!("{}: {e}", p.location)));
                }
            }
        }
    }
}

/// Adds the rows of `classes.csv` to `classes`, their schools looked up in `orgs`.
pub fn read_classes(config: &OneRosterConfig, table: &Table, clock: &mut Clock, orgs: &Orgs, classes: &mut Classes) {
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for p in each(table, clock, rows::class) {
        match p.value {
            Ok(c) => {
                if let Some(first) = seen.insert(c.id.clone(), p.line) {
                    let msg = format!("{}: sourcedId {:?} is also on line {first}", p.location, mask_if_civic(&c.id));
                    classes.insert(c.id, Known::Bad(msg));
                    continue;
                }
                let known = class_info(config, &c, orgs).map_err(|e| format!("{}: {e}", p.location));
                classes.insert(c.id.clone(), known.unwrap_or_else(Known::Bad));
            }
            Err(e) => {
                if let Some(id) = table.rows().find(|r| r.line == p.line).and_then(|r| r.sourced_id()) {
                    classes.insert(id.to_string(), Known::Bad(format!("{}: {e}", p.location)));
                }
            }
        }
    }
}

fn class_info(config: &OneRosterConfig, c: &ClassRow, orgs: &Orgs) -> Result<Known<ClassInfo>, String> {
    if c.deleted {
        return Ok(Known::Deleted);
    }
    let (first, second) = match config.group_name {
        GroupName::Title => (&c.title, &c.class_code),
        GroupName::ClassCode => (&c.class_code, &c.title),
    };
    let name = if first.is_empty() { second } else { first };
    if name.is_empty() {
        return Err("both title and classCode are empty; a group needs a name".into());
    }
    let school_unit = match orgs.get(&c.school_id) {
        Some(Known::Ok(o)) => Some(o.code.clone()),
        Some(Known::Deleted) => None,
        Some(Known::Bad(e)) => return Err(format!("its school is unusable ({e})")),
        None => {
            return Err(format!(
                "schoolSourcedId {:?} is not in orgs.csv (nor known from the last read)",
                mask_if_civic(&c.school_id)
            ));
        }
    };
    Ok(Known::Ok(ClassInfo { name: name.clone(), kind: c.kind, school_unit }))
}
