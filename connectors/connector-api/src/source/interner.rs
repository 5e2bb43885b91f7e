//! A record's ties and memberships as shared values ([`Shared`]), made once per equal value by
//! an [`Interner`].

use super::{Affiliation, GroupMembership, SourceRecord};
use serde::{Deserialize, Serialize};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A record's ties or memberships: shared values (`Arc`), one held in place. Most records have
/// one tie and one class: a vector of one pointer was an allocation each, two per record.
///
/// Two words: the one value alone, or the values (none, or two and more) with no room to spare.
/// A run holds a million records with two of these each, and the eight bytes each saves over a
/// small vector (three words) bring a record into the allocator's 160-byte size. It reads as
/// a slice (sort it, change its values in place) and compares, hashes and serialises as the
/// vector it replaced (a sequence), so stored JSON and content fingerprints are unchanged.
/// Adding or taking values rebuilds the list: sources build a record's few values once.
#[derive(Clone)]
pub struct Shared<T>(Repr<T>);

#[derive(Clone)]
enum Repr<T> {
    One(Arc<T>),
    /// Never exactly one value (that is `One`); an empty box holds no allocation.
    Many(Box<[Arc<T>]>),
}

impl<T> Shared<T> {
    /// No values.
    pub fn new() -> Self {
        Shared(Repr::Many(Box::default()))
    }

    pub fn as_slice(&self) -> &[Arc<T>] {
        match &self.0 {
            Repr::One(one) => std::slice::from_ref(one),
            Repr::Many(many) => many,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [Arc<T>] {
        match &mut self.0 {
            Repr::One(one) => std::slice::from_mut(one),
            Repr::Many(many) => many,
        }
    }

    /// The values as a vector (no copy of a list of several).
    pub fn into_vec(self) -> Vec<Arc<T>> {
        match self.0 {
            Repr::One(one) => vec![one],
            Repr::Many(many) => many.into_vec(),
        }
    }

    /// Changes the values as a vector's, and holds the result with no room to spare.
    fn edit<R>(&mut self, change: impl FnOnce(&mut Vec<Arc<T>>) -> R) -> R {
        let mut values = std::mem::take(self).into_vec();
        let out = change(&mut values);
        *self = Shared::from(values);
        out
    }

    pub fn push(&mut self, value: Arc<T>) {
        self.edit(|v| v.push(value));
    }

    pub fn retain(&mut self, keep: impl FnMut(&Arc<T>) -> bool) {
        self.edit(|v| v.retain(keep));
    }

    pub fn retain_mut(&mut self, keep: impl FnMut(&mut Arc<T>) -> bool) {
        self.edit(|v| v.retain_mut(keep));
    }

    pub fn clear(&mut self) {
        *self = Shared::new();
    }

    /// Consecutive equal values as one (sort first for a set).
    pub fn dedup(&mut self)
    where
        T: PartialEq,
    {
        if self.len() > 1 {
            self.edit(|v| v.dedup());
        }
    }
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared::new()
    }
}

impl<T> From<Vec<Arc<T>>> for Shared<T> {
    fn from(mut values: Vec<Arc<T>>) -> Self {
        if values.len() == 1
            && let Some(one) = values.pop()
        {
            return Shared(Repr::One(one));
        }
        Shared(Repr::Many(values.into_boxed_slice()))
    }
}

impl<T> From<Arc<T>> for Shared<T> {
    fn from(one: Arc<T>) -> Self {
        Shared(Repr::One(one))
    }
}

impl<T> FromIterator<Arc<T>> for Shared<T> {
    fn from_iter<I: IntoIterator<Item = Arc<T>>>(values: I) -> Self {
        Shared::from(values.into_iter().collect::<Vec<_>>())
    }
}

impl<T> Extend<Arc<T>> for Shared<T> {
    fn extend<I: IntoIterator<Item = Arc<T>>>(&mut self, values: I) {
        let mut values = values.into_iter().peekable();
        if values.peek().is_some() {
            self.edit(|v| v.extend(values));
        }
    }
}

impl<T> Deref for Shared<T> {
    type Target = [Arc<T>];
    fn deref(&self) -> &[Arc<T>] {
        self.as_slice()
    }
}

impl<T> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut [Arc<T>] {
        self.as_mut_slice()
    }
}

impl<T> IntoIterator for Shared<T> {
    type Item = Arc<T>;
    type IntoIter = std::vec::IntoIter<Arc<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Shared<T> {
    type Item = &'a Arc<T>;
    type IntoIter = std::slice::Iter<'a, Arc<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<'a, T> IntoIterator for &'a mut Shared<T> {
    type Item = &'a mut Arc<T>;
    type IntoIter = std::slice::IterMut<'a, Arc<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_mut_slice().iter_mut()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T: PartialOrd> PartialOrd for Shared<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.as_slice().partial_cmp(other.as_slice())
    }
}

impl<T: Ord> Ord for Shared<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

/// As the slice (its length, then each value): what the vector it replaced hashed.
impl<T: std::hash::Hash> std::hash::Hash for Shared<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Arc<T>>::deserialize(d).map(Shared::from)
    }
}

/// `values`, each shared (`Arc`), with no room to spare.
pub fn shared<T>(values: Vec<T>) -> Shared<T> {
    // Not `collect`ed: a vector's `into_iter().map(Arc::new)` collects into the vector's own
    // allocation, sized for the values (a membership is some 90 bytes, its pointer 8).
    let mut out = Vec::with_capacity(values.len());
    out.extend(values.into_iter().map(Arc::new));
    Shared::from(out)
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
    pub fn record(&mut self, record: &mut SourceRecord) {
        for tie in record.affiliations.iter_mut().filter(|t| Arc::strong_count(t) == 1) {
            *tie = Self::share(&mut self.ties, tie);
        }
        for group in record.groups.iter_mut().filter(|g| Arc::strong_count(g) == 1) {
            *group = Self::share(&mut self.groups, group);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    fn values(s: &Shared<String>) -> Vec<&str> {
        s.iter().map(|v| v.as_str()).collect()
    }

    fn one_in_place(s: &Shared<String>) -> bool {
        matches!(s.0, Repr::One(_))
    }

    /// However values come and go, one value is held alone (no allocation for the list) and
    /// the list reads as the vector's would.
    #[test]
    fn values_added_and_taken_read_as_a_vectors_and_one_is_held_alone() {
        let mut s: Shared<String> = Shared::new();
        assert!(s.is_empty() && !one_in_place(&s));
        s.push(Arc::new("b".into()));
        assert!(one_in_place(&s), "one value pushed is held alone");
        s.extend(["a", "b", "c"].map(|v| Arc::new(v.to_string())));
        s.sort();
        s.dedup();
        assert_eq!(values(&s), ["a", "b", "c"]);
        s.retain(|v| v.as_str() != "a");
        s.retain_mut(|v| v.as_str() != "c");
        assert_eq!(values(&s), ["b"]);
        assert!(one_in_place(&s), "one value left is held alone");
        s.extend(std::iter::empty());
        assert!(one_in_place(&s));
        s.clear();
        assert!(s.is_empty());
        let collected: Shared<String> = ["x"].map(|v| Arc::new(v.to_string())).into_iter().collect();
        assert!(one_in_place(&collected));
        assert_eq!(shared(vec!["x".to_string(), "y".to_string()]).into_vec().len(), 2);
    }

    /// The stored JSON and the content fingerprints were made from a vector: a list of none,
    /// one and several compares, orders, hashes and serialises as that vector.
    #[test]
    fn a_list_compares_hashes_and_serialises_as_the_vector_it_replaced() {
        let hash = |v: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
            let mut h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
            v(&mut h);
            std::hash::Hasher::finish(&h)
        };
        let mut lists = Vec::new();
        for n in 0..4 {
            let vec: Vec<Arc<String>> = (0..n).map(|i| Arc::new(format!("v{i}"))).collect();
            let list = Shared::from(vec.clone());
            let json = serde_json::to_string(&list).unwrap();
            assert_eq!(json, serde_json::to_string(&vec).unwrap());
            assert_eq!(serde_json::from_str::<Shared<String>>(&json).unwrap(), list);
            assert_eq!(
                hash(&|h| std::hash::Hash::hash(&list, h)),
                hash(&|h| std::hash::Hash::hash(&vec, h)),
                "{n} values"
            );
            assert_eq!(format!("{list:?}"), format!("{vec:?}"));
            lists.push((vec, list));
        }
        for (a, b) in lists.iter().zip(lists.iter().skip(1)) {
            assert_eq!(a.0.cmp(&b.0), a.1.cmp(&b.1));
            assert_ne!(a.1, b.1);
        }
    }
}
