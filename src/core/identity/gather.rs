//! The identities a resolution gathers this run's records into ([`Gathered`]).
//!
//! Each identity is made once, where its first record is met, and found by id through a
//! [`PosIndex`] (eight bytes an entry). A map from id to each identity's numbered records took
//! 72 bytes an entry in a table of 2^21 buckets at a million records, and the identities were
//! built from it at the end with both held at once: some 250 MB at the resolution's peak. A
//! record's number in source order is kept only where an identity has more than one, to put
//! them in that order at the end.

use crate::core::index::PosIndex;
use crate::core::model::{Identity, IdentityId, Records, Snapshot, Sourced};
use connector_api::source::SmallVec;
use rustc_hash::{FxHashMap, FxHashSet};

#[derive(Debug, Default)]
pub(super) struct Gathered {
    identities: Vec<Identity>,
    index: PosIndex,
    /// The source-order number of each identity's first record.
    first: Vec<usize>,
    /// The numbers of every record of an identity with more than one, by its position.
    orders: FxHashMap<usize, SmallVec<[usize; 2]>>,
    /// Positions of identities taken out ([`Gathered::remove`]).
    removed: FxHashSet<usize>,
}

impl Gathered {
    pub fn with_capacity(records: usize) -> Gathered {
        Gathered {
            identities: Vec::with_capacity(records),
            index: PosIndex::with_capacity(records),
            first: Vec::with_capacity(records),
            ..Gathered::default()
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id, |p| self.identities[p].id.as_str() == id).filter(|p| !self.removed.contains(p))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    /// The records of identity `id` so far, in the order they were added.
    pub fn records(&self, id: &str) -> Option<&[Sourced]> {
        self.position(id).map(|p| &self.identities[p].records[..])
    }

    /// The identities and their records so far.
    pub fn iter(&self) -> impl Iterator<Item = &Identity> {
        self.identities.iter().enumerate().filter(|(p, _)| !self.removed.contains(p)).map(|(_, i)| i)
    }

    /// Adds record `r`, number `i` in source order, to identity `id`; a new one is made with
    /// `is_new` and the primary school the state recorded for it.
    pub fn add(&mut self, id: IdentityId, is_new: bool, snapshot: &Snapshot, i: usize, r: Sourced) {
        if let Some(p) = self.position(&id) {
            // An identity's second record starts the list of numbers (the first's, then its
            // own); each after adds to it.
            self.orders.entry(p).or_insert_with(|| SmallVec::from_elem(self.first[p], 1)).push(i);
            self.identities[p].records.push(r);
            return;
        }
        let p = self.identities.len();
        let primary = snapshot.primary(&id).cloned();
        let mut records = Records::new();
        records.push(r);
        self.identities.push(Identity { id, is_new, records, primary });
        self.first.push(i);
        let identities = &self.identities;
        let key = identities[p].id.as_str();
        // A position past 2^32 identities is not indexed; none is near.
        self.index.insert(key, p, |q| identities[q].id.as_str() == key);
    }

    /// Takes identity `id` out, with its records.
    pub fn remove(&mut self, id: &str) -> Option<Records> {
        let p = self.position(id)?;
        self.removed.insert(p);
        Some(std::mem::take(&mut self.identities[p].records))
    }

    /// The identities, each with its records in source order, in the order they were met.
    pub fn into_identities(self) -> Vec<Identity> {
        let Gathered { mut identities, orders, removed, .. } = self;
        for (p, numbers) in orders {
            let records = std::mem::take(&mut identities[p].records);
            let mut numbered: Vec<(usize, Sourced)> = numbers.into_iter().zip(records).collect();
            numbered.sort_by_key(|(i, _)| *i);
            identities[p].records = numbered.into_iter().map(|(_, r)| r).collect();
        }
        if !removed.is_empty() {
            let mut p = 0;
            identities.retain(|_| {
                p += 1;
                !removed.contains(&(p - 1))
            });
        }
        // Room was made for one identity per record: where persons have records in several
        // sources (or many were taken out), the rest is let go.
        if identities.capacity() - identities.len() > identities.len() / 8 {
            identities.shrink_to_fit();
        }
        identities
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::PrimaryTie;

    fn rec(person_id: &str) -> Sourced {
        Sourced::plain("sis", person_id)
    }

    fn keys(records: &[Sourced]) -> Vec<&str> {
        records.iter().map(|r| r.record.person_id.as_str()).collect()
    }

    /// Records added out of source order (the unlinked ones come after the linked) end in
    /// source order; an identity taken out is gone from every view; each identity is made once,
    /// with what it was made with.
    #[test]
    fn records_end_in_source_order_and_a_removed_identity_is_gone() {
        let mut snapshot = Snapshot::default();
        snapshot.set_primary("a".into(), Some(PrimaryTie::new("S1", None)));
        // Grown from nothing: the index finds every one of many.
        let mut g = Gathered::default();
        for (id, i, key) in [("a", 5, "a5"), ("b", 1, "b1"), ("a", 0, "a0"), ("c", 2, "c2"), ("a", 3, "a3")] {
            g.add(id.into(), id == "c", &snapshot, i, rec(key));
        }
        for n in 0..5000 {
            g.add(format!("x{n}").into(), false, &snapshot, 10 + n, rec(&format!("x{n}")));
        }
        assert_eq!(g.records("a").map(keys), Some(vec!["a5", "a0", "a3"]), "as added, while gathering");
        assert!(g.contains("b") && g.contains("x4999") && !g.contains("d"));
        assert_eq!(g.remove("b").map(|r| keys(&r).join(",")), Some("b1".into()));
        assert!(!g.contains("b") && g.records("b").is_none() && g.remove("b").is_none());
        assert_eq!(g.iter().count(), 5002);
        let all = g.into_identities();
        assert_eq!(all.len(), 5002);
        assert_eq!(all[0].id, "a");
        assert_eq!(keys(&all[0].records), ["a0", "a3", "a5"], "in source order");
        assert_eq!(all[0].primary, Some(PrimaryTie::new("S1", None)));
        assert_eq!((all[1].id.as_str(), all[1].is_new, keys(&all[1].records)), ("c", true, vec!["c2"]));
        assert!(!all[1].records.spilled() && all[1].primary.is_none());
        assert!(all[2..].iter().enumerate().all(|(n, i)| i.id.as_str() == format!("x{n}") && i.records.len() == 1));

        // Room for a record each, far more than the identities: the rest is let go.
        let mut g = Gathered::with_capacity(100);
        for i in 0..10 {
            g.add("one".into(), false, &snapshot, i, rec(&format!("r{i}")));
        }
        let all = g.into_identities();
        assert_eq!((all.len(), all[0].records.len()), (1, 10));
        assert!(all.capacity() < 10, "{}", all.capacity());
    }
}
