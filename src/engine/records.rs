//! What the state database keeps of each record: the rows an apply writes for records that are
//! new or changed since the last run. Pure.

use crate::core::identity::{self, CivicChange, Resolution};
use crate::core::model::{IdentityId, PrimaryTie, RecordMap, Snapshot, Sourced};
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
    stored_changes(resolution, snapshot, &std::collections::BTreeMap::new()).0
}

/// What the state's records need after this run: the records of present identities it does not
/// hold as they are now ([`changed_records`]), and its records, not yet marked gone, of the
/// sources read this run (`read`) whose persons the sources no longer give: neither a record now
/// nor kept (a rejected row keeps its person as last stored). What an apply marks gone, so an
/// incremental read merges with the rest. One lookup of each record of the run serves both: at
/// a million records each lookup is a few cache misses, and there are a million. Pure.
pub(super) fn stored_changes(
    resolution: &Resolution,
    snapshot: &Snapshot,
    read: &std::collections::BTreeMap<String, usize>,
) -> (Vec<RecordAt>, Vec<(String, String)>) {
    // The stored records this run's persons hold, marked by their place in their source's map
    // (of the sources read): a set of (source, person) pairs would be some 70 MB at a million
    // records, at the point where a run holds the most.
    let mut stored: rustc_hash::FxHashMap<&str, (&RecordMap, Vec<bool>)> = snapshot
        .records_by_source()
        .map(|(source, records)| {
            let marks = if read.contains_key(source) { vec![false; records.len()] } else { Vec::new() };
            (source.as_str(), (records, marks))
        })
        .collect();
    let mut changed = Vec::new();
    for (i, ident) in resolution.present.iter().enumerate() {
        for (j, s) in ident.records.iter().enumerate() {
            let r = &s.record;
            let hash = fingerprint_u64(&ident.id, r.civic_no.as_ref().map(|c| c.expose()), r);
            let held = stored.get_mut(s.source.as_str()).and_then(|(records, marks)| {
                let (k, _, rec) = records.get_full(r.person_id.as_str())?;
                if let Some(mark) = marks.get_mut(k) {
                    *mark = true;
                }
                Some(rec)
            });
            if held.is_some_and(|rec| rec.content_hash.map(std::num::NonZeroU64::get) == Some(hash)) {
                continue;
            }
            changed.push(RecordAt { identity: i, record: j, hash });
        }
    }
    let kept: rustc_hash::FxHashSet<&str> = resolution.kept.iter().map(|k| k.identity_id.as_str()).collect();
    let mut gone = Vec::new();
    for (source, (records, marks)) in stored.into_iter().filter(|(source, _)| read.contains_key(*source)) {
        for ((pid, rec), _) in records.iter().zip(marks).filter(|(_, now)| !*now) {
            if !rec.gone && !kept.contains(rec.identity_id.as_str()) {
                gone.push((source.to_string(), pid.to_string()));
            }
        }
    }
    gone.sort();
    (changed, gone)
}

/// The row the state stores for a changed record ([`changed_records`] of the same resolution).
///
/// The columns keep what the state needs without reading the whole record back (the school
/// units, a role, the dates, the correlation keys); `data` keeps the whole record (affiliations,
/// typed groups, external identifiers) as JSON, without its civic number, for an incremental
/// read's merge and for `enid explain`.
pub(super) fn record_row(resolution: &Resolution, at: &RecordAt) -> RecordRow {
    let ident = &resolution.present[at.identity];
    record_row_of(&ident.id, &ident.records[at.record], at.hash)
}

/// [`record_row`] of a record moved out of its identity (`id`), with its fingerprint `hash`.
pub(super) fn record_row_of(id: &IdentityId, s: &Sourced, hash: u64) -> RecordRow {
    let r = &s.record;
    let civic = r.civic_no.as_ref().map(|c| c.expose().to_string());
    RecordRow {
        source: s.source.to_string(),
        person_id: r.person_id.to_string(),
        identity_id: id.clone(),
        civic_no: civic,
        given_name: r.given_name.to_string(),
        family_name: r.family_name.to_string(),
        role: if r.roles().contains(&connector_api::Role::Staff) { "staff" } else { "student" }.to_string(),
        school_unit: r.school_unit_codes(),
        groups: r.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>().join("|"),
        start_date: r.start_date().map(|d| d.to_string()),
        end_date: r.end_date().map(|d| d.to_string()),
        email: r.email().as_ref().map(|s| s.to_string()),
        eppn: r.eppn().as_ref().map(|s| s.to_string()),
        protected: r.protection.is_some(),
        content_hash: format!("{hash:016x}"),
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
                source: s.source.to_string(),
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

/// The primary school units an apply records (new or changed), each as an identity's place in
/// [`Resolution::present`] and the tie, which is held once for all who share it: a first run
/// records one for every identity, and as `(id, tie)` pairs a million were some 60 MB held
/// through the sends, where the ties of a CSV export are a few hundred school units.
#[derive(Debug, Clone, Default)]
pub struct PrimaryRows {
    /// (identity's place, tie's place in `ties`).
    rows: Vec<(u32, u32)>,
    ties: Vec<Option<PrimaryTie>>,
}

impl PrimaryRows {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The `i`th row's identity (`resolution` is the run's the rows were made from).
    pub fn id<'r>(&self, resolution: &'r Resolution, i: usize) -> &'r IdentityId {
        &resolution.present[self.rows[i].0 as usize].id
    }

    /// The `i`th row, as the state records it.
    pub fn row(&self, resolution: &Resolution, i: usize) -> (IdentityId, Option<PrimaryTie>) {
        (self.id(resolution, i).clone(), self.ties[self.rows[i].1 as usize].clone())
    }

    /// Every row, as the state records it.
    pub fn rows<'r>(
        &'r self,
        resolution: &'r Resolution,
    ) -> impl Iterator<Item = (IdentityId, Option<PrimaryTie>)> + 'r {
        (0..self.len()).map(|i| self.row(resolution, i))
    }

    /// Keeps the rows whose identity `keep` (given its id) keeps.
    pub fn retain(&mut self, resolution: &Resolution, mut keep: impl FnMut(&IdentityId) -> bool) {
        self.rows.retain(|&(at, _)| keep(&resolution.present[at as usize].id));
    }
}

/// Present identities whose primary school unit on `today` is not the one recorded: what an
/// apply records, so the primary stays put until its affiliation ends. Pure.
pub(super) fn changed_primaries(
    resolution: &Resolution,
    authority: &crate::core::model::Authority,
    today: chrono::NaiveDate,
) -> PrimaryRows {
    let mut out = PrimaryRows::default();
    // The ties seen, up to a few thousand: a source whose ties carry an id of their own (an
    // SS 12000 placement's) has one per person, held in the list without a map of them all.
    const SHARED: usize = 4096;
    let mut known: rustc_hash::FxHashMap<Option<PrimaryTie>, u32> = rustc_hash::FxHashMap::default();
    for (at, ident) in resolution.present.iter().enumerate() {
        let now = ident.primary_school_now(authority, today);
        if now == ident.primary {
            continue;
        }
        let tie = match known.get(&now) {
            Some(&tie) => tie,
            None => {
                let tie = index(out.ties.len());
                if known.len() < SHARED {
                    known.insert(now.clone(), tie);
                }
                out.ties.push(now);
                tie
            }
        };
        out.rows.push((index(at), tie));
    }
    out.rows.shrink_to_fit();
    out.ties.shrink_to_fit();
    out
}

/// A place in a run's list as [`PrimaryRows`] and the apply's chunks keep it: 32 bits, half the
/// room at a million. A run holds fewer than four billion of anything (that many identities
/// would be hundreds of gigabytes), so this cannot fail; a place past it is a bug, not a place
/// to use wrapped or clamped (another person's row).
#[allow(clippy::expect_used)]
pub(super) fn index(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than four billion items in a run")
}

/// A civic-number change as the plan shows it: the record and the kinds, never the numbers.
pub(super) fn describe_change(c: &CivicChange) -> String {
    let kind = |v: &Option<String>| v.as_deref().map(crate::store::describe_stored).unwrap_or_else(|| "none".into());
    format!("{}: {} → {}", identity::record_label(&c.source, &c.person_id), kind(&c.old), kind(&c.new))
}

/// An identity with a plain record (Kim Lind, no ties) per (source, person_id), for tests here
/// and of the apply.
#[cfg(test)]
pub(super) fn present_for_test(id: &str, records: &[(&str, &str)]) -> crate::core::model::Identity {
    crate::core::model::Identity {
        id: id.into(),
        is_new: false,
        records: records.iter().map(|(source, pid)| Sourced::plain(source, pid)).collect(),
        primary: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::Kept;
    use crate::core::model::{IdentityId, StoredRecord};

    /// Primary rows read back as the pairs they stand for: each identity whose primary school
    /// is not the recorded one, in resolution order, with its tie now (none when it has none);
    /// one whose tie stays has no row. A tie many share is held once, and past the ties a map
    /// keeps each still reads back as its own.
    #[test]
    fn primary_rows_read_back_as_each_identitys_tie() {
        use connector_api::{Affiliation, Role, TieDetails};
        let ident = |n: usize, school: Option<&str>, tie_id: Option<String>, recorded: Option<PrimaryTie>| {
            let mut i = present_for_test(&format!("id-{n}"), &[("sis", &n.to_string())]);
            if let Some(school) = school {
                let tie = Affiliation {
                    details: TieDetails { source_id: tie_id, ..Default::default() }.boxed(),
                    ..Affiliation::new(Some(school.into()), Role::Student)
                };
                i.records[0].record.affiliations = vec![tie].into_iter().map(Into::into).collect();
            }
            i.primary = recorded;
            i
        };
        let today = "2026-12-07".parse().unwrap();
        let authority = crate::core::model::Authority::default();
        let mut present = vec![
            ident(0, Some("A"), None, None),
            ident(1, Some("A"), None, Some(PrimaryTie::new("A", None))),
            ident(2, None, None, Some(PrimaryTie::new("B", None))),
            ident(3, Some("B"), Some("t-3".into()), Some(PrimaryTie::new("B", None))),
            ident(4, Some("A"), None, Some(PrimaryTie::new("B", None))),
        ];
        // Ties of their own (an id each), more than the map keeps.
        present.extend((5..5000).map(|n| ident(n, Some("C"), Some(format!("t-{n}")), None)));
        let resolution = Resolution { present, ..Default::default() };
        let rows = changed_primaries(&resolution, &authority, today);
        let got: Vec<(IdentityId, Option<PrimaryTie>)> = rows.rows(&resolution).collect();
        let want: Vec<(IdentityId, Option<PrimaryTie>)> = resolution
            .present
            .iter()
            .filter(|i| i.id != "id-1")
            .map(|i| (i.id.clone(), i.primary_school_now(&authority, today)))
            .collect();
        assert_eq!(got, want);
        assert_eq!(got[1], ("id-2".into(), None));
        assert_eq!(got[2].1, Some(PrimaryTie::new("B", Some("t-3"))));
        assert_eq!(rows.ties.len(), 3 + 4995, "A once, none, B/t-3, and one per tie of its own");
        let mut kept = rows.clone();
        kept.retain(&resolution, |id| id == "id-4" || id == "id-4999");
        let kept: Vec<_> = kept.rows(&resolution).collect();
        assert_eq!(kept, [want[3].clone(), want.last().unwrap().clone()]);
    }

    fn stored(identity: &str, gone: bool) -> StoredRecord {
        let mut stored = StoredRecord::new(IdentityId::from(identity));
        stored.gone = gone;
        stored
    }

    #[test]
    fn gone_records_are_the_stored_ones_of_read_sources_no_person_holds_and_the_rest_are_compared() {
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
            present: vec![present_for_test("a", &[("sis", "1")]), present_for_test("e", &[("lms", "9"), ("sis", "7")])],
            kept: vec![Kept { identity_id: "c".into(), reasons: Vec::new() }],
            ..Default::default()
        };
        let read: std::collections::BTreeMap<String, usize> =
            [("sis".to_string(), 2), ("lms".to_string(), 1)].into_iter().collect();
        let (changed, gone) = stored_changes(&resolution, &snapshot, &read);
        assert_eq!(gone, vec![("sis".to_string(), "2".to_string()), ("sis".to_string(), "5".to_string())]);
        // Every present record is new or changed here (no stored fingerprint), in resolution
        // order; one stored with its fingerprint is not.
        let at = |c: &[RecordAt]| c.iter().map(|r| (r.identity, r.record)).collect::<Vec<_>>();
        assert_eq!(at(&changed), vec![(0, 0), (1, 0), (1, 1)]);
        let hash = changed[0].hash;
        snapshot.record_mut("sis", "1").unwrap().content_hash = std::num::NonZeroU64::new(hash);
        let (changed, again) = stored_changes(&resolution, &snapshot, &read);
        assert_eq!((at(&changed), again), (vec![(1, 0), (1, 1)], gone));
    }
}
