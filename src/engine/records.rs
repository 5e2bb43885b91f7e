//! What the state database keeps of each record: the rows an apply writes for records that are
//! new or changed since the last run. Pure.

use crate::core::identity::{self, CivicChange, Resolution};
use crate::core::model::{PrimaryTie, RecordMap, Snapshot};
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
    // The stored records this run's persons hold, marked by their place in their source's map:
    // a set of (source, person) pairs would be some 70 MB at a million records, at the point
    // where a run holds the most.
    let mut seen: rustc_hash::FxHashMap<&str, (&RecordMap, Vec<bool>)> = snapshot
        .records_by_source()
        .filter(|(source, _)| read.contains_key(*source))
        .map(|(source, records)| (source.as_str(), (records, vec![false; records.len()])))
        .collect();
    for s in resolution.present.iter().flat_map(|ident| &ident.records) {
        if let Some((records, marks)) = seen.get_mut(s.source.as_str())
            && let Some(i) = records.get_index_of(s.record.person_id.as_str())
        {
            marks[i] = true;
        }
    }
    let mut out = Vec::new();
    for (source, (records, marks)) in seen {
        for ((pid, stored), _) in records.iter().zip(marks).filter(|(_, now)| !*now) {
            if !stored.gone && !kept.contains(stored.identity_id.as_str()) {
                out.push((source.to_string(), pid.to_string()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::Kept;
    use crate::core::model::{Identity, IdentityId, Sourced, StoredRecord};

    fn stored(identity: &str, gone: bool) -> StoredRecord {
        StoredRecord {
            identity_id: IdentityId::from(identity),
            civic_no: None,
            content_hash: None,
            school_unit: None,
            staff: false,
            protected: false,
            email: None,
            eppn: None,
            names: None,
            gone,
        }
    }

    fn present(id: &str, records: &[(&str, &str)]) -> Identity {
        Identity {
            id: id.into(),
            is_new: false,
            records: records
                .iter()
                .map(|(source, pid)| Sourced {
                    source: (*source).into(),
                    record: Box::new(connector_api::SourceRecord {
                        person_id: (*pid).into(),
                        given_name: "Kim".into(),
                        family_name: "Lind".into(),
                        civic_no: None,
                        affiliations: Vec::new(),
                        groups: Vec::new(),
                        location: Default::default(),
                        email: None,
                        eppn: None,
                        external_ids: Vec::new(),
                        protection: None,
                        deceased: false,
                    }),
                })
                .collect(),
            primary: None,
        }
    }

    #[test]
    fn gone_records_are_the_stored_ones_of_read_sources_no_person_holds() {
        let mut snapshot = Snapshot::default();
        for (source, pid, identity, gone) in [
            ("sis", "1", "a", false), // held by a present person
            ("sis", "2", "b", false), // left: gone
            ("sis", "3", "c", false), // of a kept identity
            ("sis", "4", "d", true),  // already marked gone
            ("sis", "5", "a", false), // a's second record, no longer given: gone
            ("hr", "1", "a", false),  // of a source not read this run
            ("lms", "9", "e", false), // present under another source's read
        ] {
            snapshot.insert_record_sized(source.into(), pid.into(), stored(identity, gone), 3);
        }
        snapshot.fit_records();
        let resolution = Resolution {
            present: vec![present("a", &[("sis", "1")]), present("e", &[("lms", "9"), ("sis", "7")])],
            kept: vec![Kept { identity_id: "c".into(), reasons: Vec::new() }],
            ..Default::default()
        };
        let read: std::collections::BTreeMap<String, usize> =
            [("sis".to_string(), 2), ("lms".to_string(), 1)].into_iter().collect();
        let gone = gone_records(&snapshot, &resolution, &read);
        assert_eq!(gone, vec![("sis".to_string(), "2".to_string()), ("sis".to_string(), "5".to_string())]);
    }
}
