//! A delta bundle merged with the records stored from the last read into whole changed records.
//!
//! A delta holds only rows that changed (`status` `active` or `tobedeleted`), so a person is
//! rebuilt from their stored record ([`FetchContext::prior`]) and the rows that touch them: their
//! `users.csv` row replaces names and addresses (and, from `users.csv` ties, their schools), a
//! `roles.csv` row replaces or removes the affiliation with that role's id, an enrollment
//! replaces or removes the membership of its class (found by the class's `sourcedId`, the
//! membership's `source_id`), and a changed org or class updates every stored tie to it. What a
//! delta does not mention stays as stored. The orgs and classes a delta refers to without
//! listing them are known from the stored records: a tie's `source_id` carries its org's id.
//!
//! Rows older than the last read's watermark were read then and are skipped, so an old delta
//! read again after a newer bulk undoes nothing. A person enid did not store (a guardian, a
//! disabled user) is known only when their `users.csv` row is in the delta.

use crate::OneRosterConfig;
use crate::build::{
    self, SKIP_DELETED, SKIP_DISABLED, SKIP_NO_SCHOOL, SKIP_OLDER, Tables, TieOutcome, TieSource, tie_org, tie_role,
};
use crate::lookup::{self, ClassInfo, Classes, Clock, Known, OrgInfo, Orgs};
use crate::manifest::{Manifest, Mode};
use crate::rows;
use connector_api::civic::mask_if_civic;
use connector_api::{AffiliationKind, FetchContext, RowError, SourceChanges, SourceError, SourceRecord};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One person being rebuilt.
#[derive(Debug)]
struct Draft {
    rec: SourceRecord,
    /// Why the person is not provisioned any more, when the delta says so.
    skip: Option<&'static str>,
    /// A guardian, parent or relative role seen among the person's new ties.
    family: Option<&'static str>,
    /// The pupil's grade from a `users.csv` row of this delta.
    year: Option<Option<String>>,
    /// A tie of this delta to an org that neither the delta nor the stored records know
    /// (location, message): left out, unless it leaves the person with no school at all.
    unknown: Option<(String, String)>,
}

/// Splits off the ties to orgs that are known. An org no stored record is tied to and the delta
/// does not list may be a district (never stored, as no school unit comes from it) or a school
/// enid has not seen: the tie is left out, and the first such org is returned with a message.
fn known_ties(ties: Vec<build::Tie>, orgs: &Orgs, location: &str) -> (Vec<build::Tie>, Option<(String, String)>) {
    let (known, unknown): (Vec<_>, Vec<_>) = ties.into_iter().partition(|t| orgs.contains_key(&t.org_id));
    let first = unknown.first().map(|t| {
        let message = format!(
            "org {:?} is neither in this delta's orgs.csv nor known from the last read, and the user has no other \
             school; the person is kept as stored. Include orgs.csv in the delta (bulk is fine) or read a bulk bundle",
            mask_if_civic(&t.org_id)
        );
        (location.to_string(), message)
    });
    (known, first)
}

/// The changes a delta bundle makes to the stored records.
pub fn changes(
    config: &OneRosterConfig,
    manifest: &Manifest,
    tables: &Tables,
    cx: FetchContext<'_>,
) -> Result<SourceChanges, SourceError> {
    let first = |why: &str| SourceError::Malformed {
        location: manifest.file.clone(),
        reason: format!(
            "is a delta bundle (only what changed), but {why}; a bulk bundle must be read (and applied) first, or \
             a delta would be taken for every person"
        ),
        source: None,
    };
    let Some(since) = cx.since else { return Err(first("enid has no watermark of an earlier read")) };
    // `OneRosterSource::fetch` reads the stored records whole for a delta.
    let stored: &[SourceRecord] = cx.prior.loaded().unwrap_or_default();
    if stored.is_empty() {
        return Err(first("enid has stored no records from an earlier read"));
    }
    let since_t = rows::parse_instant(since).ok_or_else(|| {
        first(&format!("the stored watermark {:?} is not a time this connector wrote", mask_if_civic(since)))
    })?;
    let mut clock = Clock { since: Some(since_t), latest: None, older: 0 };
    let prior: BTreeMap<&str, &SourceRecord> = stored.iter().map(|r| (r.person_id.as_str(), r)).collect();

    // What the stored records know of orgs and classes, then what the delta says.
    let mut orgs = Orgs::new();
    let mut classes = Classes::new();
    for r in stored {
        for a in &r.affiliations {
            if let Some(org) = a.source_id().and_then(tie_org) {
                let code = a.school_unit.clone().unwrap_or_else(|| org.to_string().into());
                let name = a.school_unit_name().unwrap_or_default().to_string();
                orgs.insert(org.to_string(), Known::Ok(OrgInfo { code: code.to_string(), name, school: true }));
            }
        }
        for g in &r.groups {
            if let Some(id) = &g.source_id {
                let info = ClassInfo {
                    name: g.name.to_string(),
                    kind: g.kind,
                    school_unit: g.school_unit.as_ref().map(|s| s.to_string()),
                };
                classes.insert(id.clone(), Known::Ok(info));
            }
        }
    }
    let stored_orgs = orgs.clone();
    let stored_classes = classes.clone();
    if let Some(t) = &tables.orgs {
        let older = clock.older;
        lookup::read_orgs(config, t, &mut clock, &mut orgs);
        // A bulk orgs.csv in a delta repeats every org: its old rows are no news.
        if manifest.mode("orgs") == Mode::Bulk {
            clock.older = older;
        }
    }
    let changed_orgs: BTreeSet<String> =
        orgs.iter().filter(|(id, k)| stored_orgs.get(*id).is_some_and(|s| s != *k)).map(|(id, _)| id.clone()).collect();
    // A stored class at a school whose code changed moves with it.
    for id in &changed_orgs {
        if let (Some(Known::Ok(old)), new) = (stored_orgs.get(id), orgs.get(id)) {
            let new_code = match new {
                Some(Known::Ok(o)) if o.school => Some(o.code.clone()),
                _ => None,
            };
            for c in classes.values_mut() {
                if let Known::Ok(c) = c
                    && c.school_unit.as_deref() == Some(old.code.as_str())
                {
                    c.school_unit = new_code.clone();
                }
            }
        }
    }
    if let Some(t) = &tables.classes {
        let older = clock.older;
        lookup::read_classes(config, t, &mut clock, &orgs, &mut classes);
        if manifest.mode("classes") == Mode::Bulk {
            clock.older = older;
        }
    }
    let changed_classes: BTreeSet<String> = classes
        .iter()
        .filter(|(id, k)| stored_classes.get(*id).is_some_and(|s| s != *k))
        .map(|(id, _)| id.clone())
        .collect();

    let mut drafts: BTreeMap<String, Draft> = BTreeMap::new();
    let mut faults: BTreeMap<String, RowError> = BTreeMap::new();
    let mut rejected: Vec<RowError> = Vec::new();
    let mut removed: BTreeSet<String> = BTreeSet::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let fault = |faults: &mut BTreeMap<String, RowError>,
                 rejected: &mut Vec<RowError>,
                 user: Option<String>,
                 location: String,
                 message: String| match user {
        Some(u) => {
            faults.entry(u.clone()).or_insert(RowError {
                location,
                message,
                person_id: Some(u),
                civic_no: None,
                school_unit: None,
            });
        }
        None => rejected.push(RowError { location, message, person_id: None, civic_no: None, school_unit: None }),
    };
    let new_draft = |rec: SourceRecord| Draft { rec, skip: None, family: None, year: None, unknown: None };

    // Stored ties and memberships of orgs and classes the delta changed.
    for r in stored {
        let touches_org =
            r.affiliations.iter().any(|a| a.source_id().and_then(tie_org).is_some_and(|o| changed_orgs.contains(o)));
        let touches_class = r.groups.iter().any(|g| g.source_id.as_ref().is_some_and(|c| changed_classes.contains(c)));
        if !touches_org && !touches_class {
            continue;
        }
        let mut rec = r.clone();
        let mut bad = None;
        rec.affiliations.retain_mut(|a| {
            let Some(org) = a.source_id().and_then(tie_org) else { return true };
            if !changed_orgs.contains(org) {
                return true;
            }
            match orgs.get(org) {
                Some(Known::Ok(o)) if o.school => {
                    let a = Arc::make_mut(a);
                    a.school_unit = Some(o.code.as_str().into());
                    a.details_mut().school_unit_name = Some(o.name.clone());
                    true
                }
                Some(Known::Bad(e)) => {
                    bad.get_or_insert_with(|| format!("its org is unusable ({e})"));
                    true
                }
                _ => false,
            }
        });
        rec.groups.retain_mut(|g| {
            let Some(id) = g.source_id.as_deref().filter(|c| changed_classes.contains(*c)) else { return true };
            match classes.get(id) {
                Some(Known::Ok(c)) => {
                    let g = Arc::make_mut(g);
                    g.name = c.name.as_str().into();
                    g.kind = c.kind;
                    g.school_unit = c.school_unit.as_deref().map(Into::into);
                    true
                }
                Some(Known::Bad(e)) => {
                    bad.get_or_insert_with(|| format!("its class is unusable ({e})"));
                    true
                }
                Some(Known::Deleted) => false,
                None => true,
            }
        });
        if let Some(message) = bad {
            fault(&mut faults, &mut rejected, Some(r.person_id.to_string()), r.location.to_string(), message);
        }
        drafts.insert(r.person_id.to_string(), new_draft(rec));
    }

    // Changed users.
    if let Some(t) = &tables.users {
        let users = lookup::each(t, &mut clock, rows::user);
        let mut lines_of: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for p in &users {
            if let Ok(u) = &p.value {
                lines_of.entry(u.id.clone()).or_default().push(p.line);
            }
        }
        for p in users {
            let u = match p.value {
                Ok(u) => u,
                Err(e) => {
                    fault(&mut faults, &mut rejected, p.user, p.location, e);
                    continue;
                }
            };
            if let Some(lines) = lines_of.get(&u.id).filter(|l| l.len() > 1) {
                let others: Vec<String> = lines.iter().filter(|l| **l != p.line).map(u64::to_string).collect();
                let message = format!(
                    "sourcedId {:?} is also on line {}; the person is kept as at the last run. Fix the export so \
                     each user is on one row",
                    mask_if_civic(&u.id),
                    others.join(", ")
                );
                fault(&mut faults, &mut rejected, Some(u.id.clone()), p.location, message);
                continue;
            }
            if u.deleted {
                drafts.remove(&u.id);
                if prior.contains_key(u.id.as_str()) {
                    removed.insert(u.id.clone());
                }
                *skipped.entry(SKIP_DELETED.to_string()).or_default() += 1;
                continue;
            }
            let base = match build::base(config, &u, p.location.clone(), cx.today) {
                Ok(b) => b,
                Err(e) => {
                    fault(&mut faults, &mut rejected, Some(u.id.clone()), p.location, e);
                    continue;
                }
            };
            let draft = drafts.entry(u.id.clone()).or_insert_with(|| match prior.get(u.id.as_str()) {
                Some(r) => new_draft((*r).clone()),
                None => new_draft(base.clone()),
            });
            let SourceRecord { affiliations, groups, .. } = std::mem::replace(&mut draft.rec, base);
            draft.rec.affiliations = affiliations;
            draft.rec.groups = groups;
            draft.year = Some(build::year(&u).map(str::to_string));
            if tables.ties == TieSource::UserRows {
                let (ties, unknown) = known_ties(build::user_ties(&u), &orgs, &p.location);
                draft.unknown = unknown;
                match build::affiliations(&ties, &orgs, build::year(&u)) {
                    TieOutcome::Bad(e) => fault(&mut faults, &mut rejected, Some(u.id.clone()), p.location, e),
                    TieOutcome::Family(f) => draft.skip = Some(f),
                    TieOutcome::Affiliations(a) => draft.rec.affiliations = connector_api::source::shared(a),
                }
            } else {
                for a in &mut draft.rec.affiliations {
                    if a.kind == AffiliationKind::Enrolment {
                        Arc::make_mut(a).details_mut().year = build::year(&u).map(str::to_string);
                    }
                }
            }
            if !u.enabled && !config.include_disabled_users {
                draft.skip.get_or_insert(SKIP_DISABLED);
            }
        }
    }

    // The draft of a stored person, made on first touch; `None` for a person enid did not
    // store and whose user row is not in this delta.
    fn draft_of<'d>(
        drafts: &'d mut BTreeMap<String, Draft>,
        prior: &BTreeMap<&str, &SourceRecord>,
        id: &str,
    ) -> Option<&'d mut Draft> {
        if !drafts.contains_key(id) {
            let r = prior.get(id)?;
            drafts.insert(
                id.to_string(),
                Draft { rec: (*r).clone(), skip: None, family: None, year: None, unknown: None },
            );
        }
        drafts.get_mut(id)
    }

    // Changed roles (1.2).
    if let Some(t) = tables.roles.as_ref().filter(|_| tables.ties == TieSource::RolesFile) {
        for p in lookup::each(t, &mut clock, rows::role) {
            let r = match p.value {
                Ok(r) => r,
                Err(e) => {
                    fault(&mut faults, &mut rejected, p.user, p.location, e);
                    continue;
                }
            };
            // A deleted role row may name only itself: its person is the one holding the tie.
            let user = if r.user_id.is_empty() {
                stored
                    .iter()
                    .find(|rec| rec.affiliations.iter().any(|a| a.source_id().and_then(tie_role) == Some(&r.id)))
                    .map(|rec| rec.person_id.clone())
            } else {
                Some(r.user_id.as_str().into())
            };
            let Some(d) = user.as_deref().and_then(|u| draft_of(&mut drafts, &prior, u)) else { continue };
            // The pupil's grade: from their row in this delta, else as stored (taken before the
            // tie it may be stored on is replaced).
            let year = match &d.year {
                Some(y) => y.clone(),
                None => d
                    .rec
                    .affiliations
                    .iter()
                    .find(|a| a.kind == AffiliationKind::Enrolment)
                    .and_then(|a| a.year().map(str::to_string)),
            };
            d.rec.affiliations.retain(|a| a.source_id().and_then(tie_role) != Some(r.id.as_str()));
            if r.deleted {
                continue;
            }
            let (ties, unknown) = known_ties(vec![build::role_tie(&r)], &orgs, &p.location);
            if unknown.is_some() {
                d.unknown = unknown;
            }
            match build::affiliations(&ties, &orgs, year.as_deref()) {
                TieOutcome::Bad(e) => fault(&mut faults, &mut rejected, user.map(|s| s.to_string()), p.location, e),
                TieOutcome::Family(f) => {
                    d.family.get_or_insert(f);
                }
                TieOutcome::Affiliations(a) => d.rec.affiliations.extend(a.into_iter().map(Into::into)),
            }
        }
    }

    // Changed enrollments.
    if let Some(t) = &tables.enrollments {
        for p in lookup::each(t, &mut clock, rows::enrollment) {
            let e = match p.value {
                Ok(e) => e,
                Err(e) => {
                    fault(&mut faults, &mut rejected, p.user, p.location, e);
                    continue;
                }
            };
            if !e.role.is_empty() && matches!(rows::classify_role(&e.role), Ok(rows::RoleClass::Family(_))) {
                continue;
            }
            let Some(d) = draft_of(&mut drafts, &prior, &e.user_id) else { continue };
            let membership = if e.deleted { Ok(None) } else { build::membership(&e, &classes) };
            match membership {
                Ok(m) => {
                    d.rec.groups.retain(|g| g.source_id.as_deref() != Some(e.class_id.as_str()));
                    d.rec.groups.extend(m.map(Into::into));
                }
                Err(m) => fault(&mut faults, &mut rejected, Some(e.user_id.clone()), p.location, m),
            }
        }
    }

    let mut changed = Vec::new();
    for (id, mut d) in drafts {
        if let Some(f) = faults.remove(&id) {
            rejected.push(f);
            continue;
        }
        if d.skip.is_none()
            && d.rec.affiliations.is_empty()
            && let Some((location, message)) = d.unknown.take()
        {
            rejected.push(RowError { location, message, person_id: Some(id), civic_no: None, school_unit: None });
            continue;
        }
        let skip = d.skip.or_else(|| d.rec.affiliations.is_empty().then(|| d.family.unwrap_or(SKIP_NO_SCHOOL)));
        if let Some(reason) = skip {
            *skipped.entry(reason.to_string()).or_default() += 1;
            if prior.contains_key(id.as_str()) {
                removed.insert(id);
            }
            continue;
        }
        build::tidy(&mut d.rec);
        // A row sent again unchanged is no change: only where it was read differs.
        let same = prior
            .get(id.as_str())
            .is_some_and(|p| **p == SourceRecord { location: p.location.clone(), ..d.rec.clone() });
        if !same {
            changed.push(d.rec);
        }
    }
    // Faults of persons the delta did not otherwise rebuild. A person with a bad row is kept as
    // stored, even when another row of the delta would remove them: which row is right is not
    // for enid to guess.
    for id in faults.keys() {
        removed.remove(id);
    }
    rejected.extend(faults.into_values());
    build::sort_rejected(&mut rejected);
    if clock.older > 0 {
        skipped.insert(SKIP_OLDER.to_string(), clock.older);
    }
    Ok(SourceChanges {
        changed,
        removed: removed.into_iter().collect(),
        rejected,
        skipped,
        watermark: Some(clock.watermark(Some(since))),
    })
}
