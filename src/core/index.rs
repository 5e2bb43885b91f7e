//! Positions in a slice found by a key of the element there ([`PosIndex`]): the planner's
//! indexes of a target's accounts. The elements stay where they are and the index holds eight
//! bytes a slot (a position and its key's hash), where a `HashMap<&str, usize>` holds 24 and
//! more, and as many slots as its keys take at three quarters full: the planner builds five at
//! once over a million accounts.

use std::hash::{BuildHasher, Hash};

/// Positions by key. A lookup is given the key and a test of whether the element at a position
/// has that key (`same`): the index keeps no keys, only their hashes.
///
/// Open addressing with linear probing over slots of eight bytes (a position and its key's
/// hash), as many as the keys it is made for take at three quarters full, not the next power of
/// two: a million keys take 1.33 million slots (10.7 MB) where a hash table of a power of two
/// buckets took 2^21 with their control bytes (18.9 MB), and the planner holds five at once at
/// the run's peak of memory. A slot's place comes from the hash by multiplying, not masking.
#[derive(Debug, Default)]
pub struct PosIndex {
    /// `(position + 1) << 32 | hash`, 0 for an empty slot.
    slots: Box<[u64]>,
    len: usize,
}

/// A key's hash, 32 bits of it: spread again ([`spread`]) for its slot; equal hashes are told
/// apart by the caller's `same`.
fn hash32<K: Hash + ?Sized>(key: &K) -> u32 {
    let h = rustc_hash::FxBuildHasher.hash_one(key);
    (h ^ (h >> 32)) as u32
}

/// A 32-bit hash made 64 bits, its high bits mixed from all of it (they pick the slot).
fn spread(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl PosIndex {
    pub fn with_capacity(capacity: usize) -> PosIndex {
        PosIndex { slots: vec![0; slots_for(capacity)].into_boxed_slice(), len: 0 }
    }

    /// The first slot to look in for hash `h`.
    fn home(&self, h: u32) -> usize {
        ((u128::from(spread(h)) * self.slots.len() as u128) >> 64) as usize
    }

    /// Indexes `pos` under `key`; a position indexed before under an equal key gives way, as a
    /// map's insert replaces (`same` tells whether the element at a position has `key`).
    /// Positions are 32 bits: a slice of 2^32 accounts (hundreds of gigabytes) is past any
    /// target, and a position beyond is refused (`false`) rather than indexed wrong.
    pub fn insert<K: Hash + ?Sized>(&mut self, key: &K, pos: usize, same: impl Fn(usize) -> bool) -> bool {
        let h = hash32(key);
        let Some(stored) = u32::try_from(pos).ok().and_then(|p| p.checked_add(1)) else { return false };
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let slot = u64::from(stored) << 32 | u64::from(h);
        let mut i = self.home(h);
        loop {
            let s = self.slots[i];
            if s == 0 {
                self.slots[i] = slot;
                self.len += 1;
                return true;
            }
            if s as u32 == h && same((s >> 32) as usize - 1) {
                self.slots[i] = slot;
                return true;
            }
            i = if i + 1 == self.slots.len() { 0 } else { i + 1 };
        }
    }

    /// Twice the slots, each entry placed again.
    fn grow(&mut self) {
        let twice = (self.slots.len() * 2).max(8);
        let old = std::mem::replace(&mut self.slots, vec![0; twice].into_boxed_slice());
        for s in old.iter().copied().filter(|s| *s != 0) {
            let mut i = self.home(s as u32);
            while self.slots[i] != 0 {
                i = if i + 1 == self.slots.len() { 0 } else { i + 1 };
            }
            self.slots[i] = s;
        }
    }

    /// The position indexed under `key`, if any.
    pub fn get<K: Hash + ?Sized>(&self, key: &K, same: impl Fn(usize) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let h = hash32(key);
        let mut i = self.home(h);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s as u32 == h && same((s >> 32) as usize - 1) {
                return Some((s >> 32) as usize - 1);
            }
            i = if i + 1 == self.slots.len() { 0 } else { i + 1 };
        }
    }

    /// How many distinct keys are indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Slots for `keys` keys at three quarters full (and at least one empty, so a probe ends).
fn slots_for(keys: usize) -> usize {
    (keys + keys / 3 + 1).max(8)
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

    /// Grown from nothing and from a small start, past many doublings: every key still found,
    /// none found that was not indexed, each replaced in place.
    #[test]
    fn grows_and_finds_every_key() {
        let keys: Vec<String> = (0..5_000).map(|i| format!("key-{i}")).collect();
        for mut index in [PosIndex::default(), PosIndex::with_capacity(1)] {
            for (i, k) in keys.iter().enumerate() {
                assert!(index.insert(k.as_str(), i, |p| keys[p] == *k));
            }
            assert_eq!(index.len(), keys.len());
            assert!(index.slots.len() * 3 >= index.len() * 4, "at most three quarters full");
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(index.get(k.as_str(), |p| keys[p] == *k), Some(i));
                assert_eq!(index.get(&format!("{k}x"), |p| keys[p] == format!("{k}x")), None);
            }
            // An equal key again: the later position, no new entry.
            assert!(index.insert("key-7", 4_999, |p| p == 7 || p == 4_999));
            assert_eq!((index.get("key-7", |p| p == 4_999), index.len()), (Some(4_999), keys.len()));
        }
        assert_eq!(PosIndex::default().get("a", |_| true), None, "an empty index finds nothing");
        assert!(!PosIndex::default().insert("a", u32::MAX as usize, |_| true), "a position past 32 bits is refused");
    }

    /// Sized for its keys, not the next power of two: a million keys in 1.33 million slots.
    #[test]
    fn a_million_keys_take_a_third_more_slots_not_twice() {
        assert_eq!(slots_for(1_000_000), 1_333_334);
        assert!(slots_for(1_000_000) < 1 << 21);
    }

    #[test]
    fn a_keyed_slice_finds_the_last_element_of_each_key_and_skips_those_without() {
        let items = [Some("a"), None, Some("b"), Some("a")];
        let keyed = Keyed::new(&items, |k: &Option<&str>| *k);
        assert_eq!((keyed.get("a"), keyed.get("b"), keyed.get("")), (Some(3), Some(2), None));
    }
}
