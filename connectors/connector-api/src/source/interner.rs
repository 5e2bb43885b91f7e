//! What many records hold alike, held once: a record's ties and memberships as shared values
//! ([`Shared`]), made once per equal value by an [`Interner`].

use super::{Affiliation, GroupMembership, SourceRecord};
use smallvec::SmallVec;
use std::sync::Arc;

/// A record's ties or memberships: shared values (`Arc`), the first held in place. Most records
/// have one tie and one class: a vector of one pointer was an allocation each, two per record.
/// It compares, hashes and serialises as the vector it replaced (a sequence), so stored JSON
/// and content fingerprints are unchanged.
pub type Shared<T> = SmallVec<[Arc<T>; 1]>;

/// `values`, each shared (`Arc`), with no room to spare. Collecting a vector's
/// `into_iter().map(Arc::new)` into a vector instead keeps the vector's own allocation, sized
/// for the values (a membership is some 90 bytes, its pointer 8), for as long as the record
/// lives.
pub fn shared<T>(values: Vec<T>) -> Shared<T> {
    let mut out = Shared::with_capacity(values.len());
    out.extend(values.into_iter().map(Arc::new));
    out
}

/// Ties and group memberships made once and shared by every record that holds an equal one
/// (a school's pupils read from one file hold one tie to it and one membership of each class).
/// A source keeps one for a read and passes each tie and membership it builds through it: at a
/// million records the ties and memberships were some 150 MB, one allocation each, and become a
/// pointer each. Sharing changes nothing a record says: an `Arc` compares, orders, hashes and
/// serialises as its value.
#[derive(Debug, Default)]
pub struct Interner {
    ties: rustc_hash::FxHashSet<Arc<Affiliation>>,
    groups: rustc_hash::FxHashSet<Arc<GroupMembership>>,
}

impl Interner {
    /// The tie equal to `tie` that this interner gave before, or `tie` shared from now on.
    pub fn tie(&mut self, tie: Affiliation) -> Arc<Affiliation> {
        Self::intern(&mut self.ties, tie)
    }

    /// The membership equal to `group` that this interner gave before, or `group`.
    pub fn group(&mut self, group: GroupMembership) -> Arc<GroupMembership> {
        Self::intern(&mut self.groups, group)
    }

    /// Every tie and membership of `record` shared with the equal ones given before; one that
    /// is shared already (a source that interns gave it, or the record was cloned) is left as
    /// it is, which saves the lookups and changes nothing but where an equal value lives.
    /// No room is kept past the record's ties and memberships (a source that pushed them one
    /// by one may have left some).
    pub fn record(&mut self, record: &mut SourceRecord) {
        for tie in record.affiliations.iter_mut().filter(|t| Arc::strong_count(t) == 1) {
            *tie = Self::share(&mut self.ties, tie);
        }
        for group in record.groups.iter_mut().filter(|g| Arc::strong_count(g) == 1) {
            *group = Self::share(&mut self.groups, group);
        }
        record.affiliations.shrink_to_fit();
        record.groups.shrink_to_fit();
    }

    /// `value` as the `Arc` given before, looked up without allocating one first.
    fn intern<T: Eq + std::hash::Hash>(set: &mut rustc_hash::FxHashSet<Arc<T>>, value: T) -> Arc<T> {
        match set.get(&value) {
            Some(known) => known.clone(),
            None => Self::share(set, &Arc::new(value)),
        }
    }

    fn share<T: Eq + std::hash::Hash>(set: &mut rustc_hash::FxHashSet<Arc<T>>, value: &Arc<T>) -> Arc<T> {
        if let Some(known) = set.get(value) {
            return known.clone();
        }
        set.insert(value.clone());
        value.clone()
    }
}
