//! Positions in a slice found by a key of the element there ([`PosIndex`]): the planner's
//! indexes of a target's accounts. The elements stay where they are and the index holds eight
//! bytes an entry (a position and its key's hash), where a `HashMap<&str, usize>` holds 24 and
//! more: a million observed accounts, just past a power of two, take 2^21 buckets per index, and
//! the planner builds several at once.

use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash};

/// Positions by key. A lookup is given the key and a test of whether the element at a position
/// has that key (`same`): the index keeps no keys, only their hashes.
#[derive(Debug, Default)]
pub struct PosIndex {
    /// (position, the key's hash as [`hash32`] gives it).
    table: HashTable<(u32, u32)>,
}

/// A key's hash, 32 bits of it: the table spreads it again ([`spread`]) for its buckets and
/// control bytes; equal hashes are told apart by the caller's `same`.
fn hash32<K: Hash + ?Sized>(key: &K) -> u32 {
    let h = rustc_hash::FxBuildHasher.hash_one(key);
    (h ^ (h >> 32)) as u32
}

/// A 32-bit hash made 64 bits, its high bits mixed from all of it (the table's control bytes
/// are the top seven bits).
fn spread(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl PosIndex {
    pub fn with_capacity(capacity: usize) -> PosIndex {
        PosIndex { table: HashTable::with_capacity(capacity) }
    }

    /// Indexes `pos` under `key`; a position indexed before under an equal key gives way, as a
    /// map's insert replaces (`same` tells whether the element at a position has `key`).
    /// Positions are 32 bits: a slice of 2^32 accounts (hundreds of gigabytes) is past any
    /// target, and a position beyond is refused (`false`) rather than indexed wrong.
    pub fn insert<K: Hash + ?Sized>(&mut self, key: &K, pos: usize, same: impl Fn(usize) -> bool) -> bool {
        let h = hash32(key);
        let Ok(pos) = u32::try_from(pos) else { return false };
        match self.table.entry(spread(h), |&(p, ph)| ph == h && same(p as usize), |&(_, ph)| spread(ph)) {
            hashbrown::hash_table::Entry::Occupied(mut e) => e.get_mut().0 = pos,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert((pos, h));
            }
        }
        true
    }

    /// The position indexed under `key`, if any.
    pub fn get<K: Hash + ?Sized>(&self, key: &K, same: impl Fn(usize) -> bool) -> Option<usize> {
        let h = hash32(key);
        self.table.find(spread(h), |&(p, ph)| ph == h && same(p as usize)).map(|&(p, _)| p as usize)
    }

    /// How many distinct keys are indexed.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// A slice with a [`PosIndex`] of one key of each element (`key`; `None`: not indexed): the
/// index, and the test of an element's key a lookup needs, in one place.
pub struct Keyed<'a, T, F> {
    items: &'a [T],
    key: F,
    index: PosIndex,
}

impl<'a, T, K: std::ops::Deref<Target = str>, F: Fn(&'a T) -> Option<K>> Keyed<'a, T, F> {
    /// Indexes every element of `items` by `key`; of elements with equal keys, the last.
    pub fn new(items: &'a [T], key: F) -> Self {
        let mut index = PosIndex::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(k) = key(item) {
                index.insert(&*k, i, |p| key(&items[p]).is_some_and(|other| *other == *k));
            }
        }
        Keyed { items, key, index }
    }

    /// The position of the element whose key is `k`.
    pub fn get(&self, k: &str) -> Option<usize> {
        self.index.get(k, |p| (self.key)(&self.items[p]).is_some_and(|other| &*other == k))
    }
}

impl<T, F> std::fmt::Debug for Keyed<'_, T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyed").field("elements", &self.items.len()).field("keys", &self.index.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_key_and_a_later_equal_key_replaces() {
        let keys = ["a", "b", "a", "c"];
        let mut index = PosIndex::with_capacity(2);
        for (i, k) in keys.iter().enumerate() {
            index.insert(*k, i, |p| keys[p] == *k);
        }
        let get = |k: &str| index.get(k, |p| keys[p] == k);
        assert_eq!((get("a"), get("b"), get("c"), get("d")), (Some(2), Some(1), Some(3), None));
        assert_eq!(index.len(), 3, "distinct keys");
    }

    #[test]
    fn keys_of_one_hash_are_told_apart_by_the_element() {
        // 300,000 keys: some pairs share their 32-bit hash (some ten expected); each is still
        // found at its own position.
        let keys: Vec<String> = (0..300_000).map(|i| format!("k{i}")).collect();
        let mut index = PosIndex::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            index.insert(k.as_str(), i, |p| keys[p] == *k);
        }
        let mut hashes: Vec<u32> = keys.iter().map(|k| hash32(k.as_str())).collect();
        hashes.sort_unstable();
        assert!(hashes.windows(2).any(|w| w[0] == w[1]), "the test needs keys of one hash");
        assert_eq!(index.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(index.get(k.as_str(), |p| keys[p] == *k), Some(i));
        }
        assert_eq!(index.get("k300000", |p| keys[p] == "k300000"), None);
    }

    #[test]
    fn a_keyed_slice_finds_the_last_element_of_each_key_and_skips_those_without() {
        let items = [Some("a"), None, Some("b"), Some("a")];
        let keyed = Keyed::new(&items, |k: &Option<&str>| *k);
        assert_eq!((keyed.get("a"), keyed.get("b"), keyed.get("")), (Some(3), Some(2), None));
    }
}
