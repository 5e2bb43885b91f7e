//! Identity resolution: which records are the same person. A pure function of this run's
//! records and the stored links.
//!
//! Rules, in order: a record already linked (same source and `person_id`) keeps its identity; a
//! record with a matchable civic number joins the identity that has that number (in the state
//! database or earlier in this run); anything else starts a new identity. Temporary (TF) numbers
//! never join records. New identity ids are derived from the first record's key, so a dry run
//! and the apply that follows it agree on them.

use crate::model::{Identity, IdentityId, Snapshot, Sourced};
use rustc_hash::FxHashMap as HashMap;

/// Namespace for identity ids derived from record keys.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6e1d_0000_5a3e_4c1b_9a7e_0c1d_e1d0_0001);

/// The result of resolution: every identity of the run, those with records first.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// Identities with at least one record now, sorted by id.
    pub present: Vec<Identity>,
    /// Identities in the state database that no source has now, sorted by id.
    pub absent: Vec<Identity>,
}

impl Resolution {
    pub fn all(&self) -> impl Iterator<Item = &Identity> {
        self.present.iter().chain(self.absent.iter())
    }
}

/// Resolves `records` (in source order) against `snapshot`. Takes the records by value: they
/// move into the identities.
pub fn resolve(records: Vec<Sourced>, snapshot: &Snapshot) -> Resolution {
    // Records are numbered in source order, so each identity can list its records in that order.
    let mut by_id: HashMap<IdentityId, (bool, Vec<(usize, Sourced)>)> =
        HashMap::with_capacity_and_hasher(records.len(), Default::default());
    let mut unlinked = Vec::new();
    for (i, r) in records.into_iter().enumerate() {
        match snapshot.record(&r.source, &r.record.person_id) {
            Some(stored) => {
                by_id.entry(stored.identity_id.clone()).or_insert_with(|| (false, Vec::new())).1.push((i, r))
            }
            None => unlinked.push((i, r)),
        }
    }

    if !unlinked.is_empty() {
        // Civic numbers of this run's linked records claim their identities first, then those
        // of stored records; only then do unlinked records look for an identity.
        let mut run_civic: HashMap<String, IdentityId> = HashMap::default();
        for (id, (_, recs)) in &by_id {
            for (_, r) in recs {
                if let Some(c) = r.record.civic_no.as_ref().filter(|c| c.is_matchable()) {
                    run_civic.entry(c.expose().to_string()).or_insert_with(|| id.clone());
                }
            }
        }
        let mut civic_owner: HashMap<&str, &IdentityId> = HashMap::default();
        for rec in snapshot.all_records() {
            if let Some(c) = &rec.civic_no {
                civic_owner.entry(c.as_str()).or_insert(&rec.identity_id);
            }
        }
        for (i, r) in unlinked {
            let civic = r.record.civic_no.as_ref().filter(|c| c.is_matchable()).map(|c| c.expose().to_string());
            let existing = civic
                .as_deref()
                .and_then(|c| run_civic.get(c).cloned().or_else(|| civic_owner.get(c).map(|id| (*id).clone())));
            let id = match existing {
                Some(id) => id,
                None => {
                    let id = new_id(&r.source, &r.record.person_id, snapshot);
                    if let Some(c) = civic {
                        run_civic.insert(c, id.clone());
                    }
                    id
                }
            };
            let is_new = !snapshot.identities.contains_key(&id);
            by_id.entry(id).or_insert_with(|| (is_new, Vec::new())).1.push((i, r));
        }
    }

    let mut absent: Vec<Identity> = snapshot
        .identities
        .keys()
        .filter(|id| !by_id.contains_key(*id))
        .map(|id| Identity { id: id.clone(), is_new: false, records: Vec::new() })
        .collect();
    absent.sort_by(|a, b| a.id.cmp(&b.id));
    let mut present: Vec<Identity> = by_id
        .into_iter()
        .map(|(id, (is_new, mut recs))| {
            recs.sort_by_key(|(i, _)| *i);
            Identity { id, is_new, records: recs.into_iter().map(|(_, r)| r).collect() }
        })
        .collect();
    present.sort_by(|a, b| a.id.cmp(&b.id));
    Resolution { present, absent }
}

/// A new identity id from the record key; a counter resolves the (theoretical) case where the
/// derived id is already taken.
fn new_id(source: &str, person_id: &str, snapshot: &Snapshot) -> IdentityId {
    let mut n = 0u32;
    loop {
        let name = if n == 0 { format!("{source}\0{person_id}") } else { format!("{source}\0{person_id}\0{n}") };
        let id = uuid::Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()).to_string();
        if !snapshot.identities.contains_key(&id) {
            return id;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StoredRecord;
    use chrono::NaiveDate;
    use connector_api::{CivicNo, Role, SourceRecord};

    fn rec(source: &str, id: &str, civic: Option<&str>) -> Sourced {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        Sourced {
            source: source.into(),
            record: SourceRecord {
                person_id: id.into(),
                given_name: "A".into(),
                family_name: "B".into(),
                civic_no: civic.map(|c| CivicNo::parse(c, today).unwrap()),
                role: Role::Student,
                school_unit: None,
                groups: vec![],
                start_date: None,
                end_date: None,
                location: String::new(),
            },
        }
    }

    #[test]
    fn same_civic_number_in_two_sources_is_one_identity() {
        let recs =
            vec![rec("hr", "7", Some("19821105-9954")), rec("sis", "1", Some("198211059954")), rec("sis", "2", None)];
        let r = resolve(recs, &Snapshot::default());
        assert_eq!(r.present.len(), 2);
        let merged = r.present.iter().find(|i| i.records.len() == 2).unwrap();
        assert_eq!(merged.records[0].source, "hr", "records keep source order");
        assert!(merged.is_new);
    }

    #[test]
    fn temporary_numbers_never_join() {
        let recs = vec![rec("sis", "1", Some("20130101TF01")), rec("hr", "1", Some("20130101TF01"))];
        assert_eq!(resolve(recs, &Snapshot::default()).present.len(), 2);
    }

    #[test]
    fn a_linked_record_keeps_its_identity_and_absent_ones_are_listed() {
        let mut snap = Snapshot::default();
        snap.identities.insert("id-1".into(), Some("a.b".into()));
        snap.identities.insert("id-2".into(), Some("c.d".into()));
        snap.insert_record(
            "sis".into(),
            "1".into(),
            StoredRecord { identity_id: "id-1".into(), civic_no: None, content_hash: String::new(), school_unit: None },
        );
        let r = resolve(vec![rec("sis", "1", None)], &snap);
        assert_eq!(r.present[0].id, "id-1");
        assert!(!r.present[0].is_new);
        assert_eq!(r.absent[0].id, "id-2");
    }

    #[test]
    fn ids_do_not_depend_on_record_order() {
        let a = vec![rec("sis", "1", None), rec("sis", "2", None)];
        let b = vec![rec("sis", "2", None), rec("sis", "1", None)];
        let ids = |r: Resolution| r.present.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(resolve(a, &Snapshot::default())), ids(resolve(b, &Snapshot::default())));
    }
}
