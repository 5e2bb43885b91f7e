//! What the state database keeps of each record: the rows an apply writes for records that are
//! new or changed since the last run. Pure.

use crate::core::identity::{self, CivicChange, Resolution};
use crate::core::model::{PrimaryTie, Snapshot};
use crate::store::{HeldRow, RecordRow};

/// A changed record of a present identity, by its place in the resolution: what an apply writes.
/// Its row ([`record_row`]: a dozen strings and the record as JSON, about a kilobyte) is made
/// when the apply writes it, a statement's worth at a time, never all held from the plan on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt {
    /// The identity's index in [`Resolution::present`].
    pub identity: usize,
    /// The record's index in the identity's records.
    pub record: usize,
    /// Its fingerprint as stored for the identity ([`fingerprint_u64`]).
    pub hash: u64,
}

/// The records of present identities the state does not hold as they are now (new, or changed
/// since they were stored), in resolution order. Pure.
pub(super) fn changed_records(resolution: &Resolution, snapshot: &Snapshot) -> Vec<RecordAt> {
    let mut out = Vec::new();
    for (i, ident) in resolution.present.iter().enumerate() {
        for (j, s) in ident.records.iter().enumerate() {
            let r = &s.record;
            let hash = fingerprint_u64(&ident.id, r.civic_no.as_ref().map(|c| c.expose()), r);
            if snapshot.record(&s.source, &r.person_id).is_some_and(|stored| stored.content_hash == Some(hash)) {
                continue;
            }
            out.push(RecordAt { identity: i, record: j, hash });
        }
    }
    out
}

/// The row the state stores for a changed record ([`changed_records`] of the same resolution).
///
/// The columns keep what the state needs without reading the whole record back (the school
/// units, a role, the dates, the correlation keys); `data` keeps the whole record (affiliations,
/// typed groups, external identifiers) as JSON, without its civic number, for an incremental
/// read's merge and for `enid explain`.
pub(super) fn record_row(resolution: &Resolution, at: &RecordAt) -> RecordRow {
    let ident = &resolution.present[at.identity];
    let s = &ident.records[at.record];
    let r = &s.record;
    let civic = r.civic_no.as_ref().map(|c| c.expose().to_string());
    RecordRow {
        source: s.source.clone(),
        person_id: r.person_id.to_string(),
        identity_id: ident.id.clone(),
        civic_no: civic,
        given_name: r.given_name.to_string(),
        family_name: r.family_name.to_string(),
        role: if r.roles().contains(&connector_api::Role::Staff) { "staff" } else { "student" }.to_string(),
        school_unit: r.school_unit_codes(),
        groups: r.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>().join("|"),
        start_date: r.start_date().map(|d| d.to_string()),
        end_date: r.end_date().map(|d| d.to_string()),
        email: r.email.as_ref().map(|s| s.to_string()),
        eppn: r.eppn.as_ref().map(|s| s.to_string()),
        protected: r.protection.is_some(),
        content_hash: format!("{:016x}", at.hash),
        // A record serialises without its civic number, which has its own column.
        data: r.to_json(),
        refs: crate::store::RecordRef::of(r),
    }
}

/// A short fingerprint of a record as stored for `owner` (an identity id; empty for a held
/// record), only to decide whether the stored copy is rewritten: a fast 64-bit hash is enough,
/// and a different hash after an upgrade rewrites each record once.
pub(super) fn fingerprint(owner: &str, civic: Option<&str>, r: &connector_api::SourceRecord) -> String {
    format!("{:016x}", fingerprint_u64(owner, civic, r))
}

/// [`fingerprint`] as a number, for comparing many records without a string each.
pub(super) fn fingerprint_u64(owner: &str, civic: Option<&str>, r: &connector_api::SourceRecord) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(owner.as_bytes());
    h.write_u8(0x1f);
    h.write(civic.unwrap_or("").as_bytes());
    h.write_u8(0x1f);
    r.content_hash(&mut h);
    h.finish()
}

/// The records of this run that are in no present identity ([`Resolution::held_records`]), as
/// the state keeps them for the next incremental read. Pure.
pub(super) fn held_rows(resolution: &Resolution) -> Vec<HeldRow> {
    resolution
        .held_records
        .iter()
        .map(|s| {
            let civic = s.record.civic_no.as_ref().map(|c| c.expose().to_string());
            HeldRow {
                source: s.source.clone(),
                person_id: s.record.person_id.to_string(),
                content_hash: fingerprint("", civic.as_deref(), &s.record),
                civic_no: civic,
                data: s.record.to_json(),
            }
        })
        .collect()
}

/// A record an apply does not store yet (its new person waits), held instead.
pub(super) fn held_row(r: &RecordRow) -> HeldRow {
    HeldRow {
        source: r.source.clone(),
        person_id: r.person_id.clone(),
        civic_no: r.civic_no.clone(),
        data: r.data.clone(),
        content_hash: r.content_hash.clone(),
    }
}

/// Present identities whose primary school unit on `today` is not the one recorded: what an
/// apply records, so the primary stays put until its affiliation ends. Pure.
pub(super) fn changed_primaries(
    resolution: &Resolution,
    authority: &crate::core::model::Authority,
    today: chrono::NaiveDate,
) -> Vec<(crate::core::model::IdentityId, Option<PrimaryTie>)> {
    resolution
        .present
        .iter()
        .filter_map(|ident| {
            let now = ident.primary_school_now(authority, today);
            (now != ident.primary).then(|| (ident.id.clone(), now))
        })
        .collect()
}

/// Stored records, not yet marked gone, of the sources read this run (`read`) whose persons
/// the sources no longer give: neither a record now nor kept (a rejected row keeps its person
/// as last stored). What an apply marks gone, so an incremental read merges with the rest. Pure.
pub(super) fn gone_records(
    snapshot: &Snapshot,
    resolution: &Resolution,
    read: &std::collections::BTreeMap<String, usize>,
) -> Vec<(String, String)> {
    let kept: rustc_hash::FxHashSet<&str> = resolution.kept.iter().map(|k| k.identity_id.as_str()).collect();
    let mut now: rustc_hash::FxHashSet<(&str, &str)> = rustc_hash::FxHashSet::default();
    now.reserve(resolution.present.len());
    for ident in &resolution.present {
        now.extend(ident.records.iter().map(|s| (s.source.as_str(), s.record.person_id.as_str())));
    }
    let mut out = Vec::new();
    for (source, records) in snapshot.records_by_source() {
        if !read.contains_key(source) {
            continue;
        }
        for (pid, stored) in records {
            if !stored.gone && !kept.contains(stored.identity_id.as_str()) && !now.contains(&(source.as_str(), &**pid))
            {
                out.push((source.clone(), pid.to_string()));
            }
        }
    }
    out.sort();
    out
}

/// A civic-number change as the plan shows it: the record and the kinds, never the numbers.
pub(super) fn describe_change(c: &CivicChange) -> String {
    let kind = |v: &Option<String>| v.as_deref().map(crate::store::describe_stored).unwrap_or_else(|| "none".into());
    format!("{}: {} → {}", identity::record_label(&c.source, &c.person_id), kind(&c.old), kind(&c.new))
}
