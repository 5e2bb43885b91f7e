//! [`Attrs`]: an account's attributes, name → [`Value`], sorted by name.
//!
//! Every desired and every observed account holds one, so a million identities hold two million.
//! A `BTreeMap` spends a node of eleven slots (544 bytes for `String` → `Value`) on the eight or
//! ten attributes an account has; this is a vector of exactly the attributes held, kept sorted
//! (plans, snapshots and plan ids depend on the order), with the map operations the planner and
//! the connectors use. An account's attributes are few, so a binary search is as quick as a
//! tree's, and they are mostly built in name order (a mapping renders in its sorted order), so
//! an insert is mostly a push.

use crate::value::Value;
use serde::Serialize;
use std::sync::Arc;

/// An attribute's name. Shared: the accounts of a run name the same few attributes, so a name
/// made once (by the mapping, or by a connector from the names it asked for) is held once, not
/// once per account. Compares, orders, hashes, prints and serialises as the string it is.
/// One pointer wide (the string sits behind the shared count), so an attribute of an account is
/// 32 bytes with its value.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<Box<str>>);

impl Name {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Name {
    /// The names of `attrs`, each made once: for a read that gives every account these names.
    pub fn all(attrs: &[String]) -> Vec<Name> {
        attrs.iter().map(Name::from).collect()
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(Arc::new(s.into()))
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name(Arc::new(s.into()))
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Name {
        Name(Arc::new(s.as_str().into()))
    }
}

impl From<&Name> for Name {
    fn from(n: &Name) -> Name {
        n.clone()
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0.to_string()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        **self.0 == *other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        **self.0 == **other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        **self.0 == **other
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0[..])
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0[..], f)
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Attribute name → value, sorted by name, names unique. Compares, prints and serialises as the
/// map it is (a JSON object in name order).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attrs(Vec<(Name, Value)>);

impl Attrs {
    /// No attributes.
    pub fn new() -> Attrs {
        Attrs(Vec::new())
    }

    /// No attributes yet, with room for `n`.
    pub fn with_capacity(n: usize) -> Attrs {
        Attrs(Vec::with_capacity(n))
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// The value of `name`, if the attribute is held.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    /// The value of `name` to change in place, if the attribute is held.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        self.find(name).ok().map(|i| &mut self.0[i].1)
    }

    /// Whether the attribute is held.
    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name` to `value`, returning the value it replaces (as a map's insert does).
    pub fn insert(&mut self, name: impl Into<Name>, value: Value) -> Option<Value> {
        let name = name.into();
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (name, value));
                None
            }
        }
    }

    /// Removes the attribute, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.find(name).ok().map(|i| self.0.remove(i).1)
    }

    /// How many attributes are held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The attributes in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.0.iter())
    }

    /// The names, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Name> + ExactSizeIterator + Clone {
        self.0.iter().map(|(n, _)| n)
    }

    /// The values, in name order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator + Clone {
        self.0.iter().map(|(_, v)| v)
    }

    /// Keeps the attributes `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&Name, &mut Value) -> bool) {
        self.0.retain_mut(|(n, v)| keep(n, v));
    }

    /// These attributes without room kept for more: for an account held for a whole run.
    pub fn fitted(mut self) -> Attrs {
        self.0.shrink_to_fit();
        self
    }
}

/// The attributes of an [`Attrs`], in name order.
#[derive(Debug, Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, (Name, Value)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Name, &'a Value);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(n, v)| (n, v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(n, v)| (n, v))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Attrs {
    type Item = (&'a Name, &'a Value);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Attrs {
    type Item = (Name, Value);
    type IntoIter = std::vec::IntoIter<(Name, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<K: Into<Name>> FromIterator<(K, Value)> for Attrs {
    /// As a map collects: a name given twice keeps its last value.
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Attrs {
        let mut all: Vec<(Name, Value)> = iter.into_iter().map(|(k, v)| (k.into(), v)).collect();
        // Stable: of equal names, the last given is the last of its run.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(Name, Value)> = Vec::with_capacity(all.len());
        for (name, value) in all {
            match out.last_mut() {
                Some(last) if last.0 == name => last.1 = value,
                _ => out.push((name, value)),
            }
        }
        out.shrink_to_fit();
        Attrs(out)
    }
}

impl<K: Into<Name>> Extend<(K, Value)> for Attrs {
    fn extend<I: IntoIterator<Item = (K, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Into<Name>, const N: usize> From<[(K, Value); N]> for Attrs {
    fn from(pairs: [(K, Value); N]) -> Attrs {
        pairs.into_iter().collect()
    }
}

impl std::ops::Index<&str> for Attrs {
    type Output = Value;
    /// The value of a held attribute; panics when it is not held (as a map's index does).
    fn index(&self, name: &str) -> &Value {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no attribute {name:?}"),
        }
    }
}

impl std::fmt::Debug for Attrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Attrs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Random operations on an `Attrs` and a `BTreeMap` side by side: the same contents, order,
    /// answers and JSON every step.
    /// A name is the string it holds: compared, looked up, printed (padding too) and
    /// serialised as that string.
    #[test]
    fn a_name_behaves_as_its_string() {
        let n = Name::from("mail");
        assert_eq!(format!("{n}|{n:>6}|{n:<6}|{n:?}"), format!("{0}|{0:>6}|{0:<6}|{0:?}", "mail"));
        assert_eq!(serde_json::to_string(&n).unwrap(), r#""mail""#);
        let map: std::collections::BTreeMap<Name, u8> = [(Name::from("b"), 2), (n.clone(), 1)].into();
        assert_eq!(map.get("mail"), Some(&1), "looked up by &str");
        let (a, b) = (Name::from("a"), Name::from("b"));
        assert!(a < b, "ordered as strings");
        let owned = String::from("mail");
        assert!(n == "mail" && n == *"mail" && n == owned);
        let hashed: std::collections::HashMap<Name, u8> = [(n.clone(), 1)].into();
        assert_eq!(hashed.get("mail"), Some(&1), "hashed as its string");
        if cfg!(target_pointer_width = "64") {
            assert_eq!(std::mem::size_of::<(Name, Value)>(), 32, "an attribute is a pointer and a value");
        }
    }

    #[test]
    fn behaves_as_the_sorted_map_it_replaces() {
        let names = ["uid", "cn", "sn", "givenName", "mail", "displayName", "employeeType", "a", "Z", "cn;lang-sv"];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _round in 0..200 {
            let mut a = Attrs::new();
            let mut m: BTreeMap<String, Value> = BTreeMap::new();
            for step in 0..30 {
                let name = names[next(names.len())];
                match next(4) {
                    0 | 1 => {
                        let v = Value::text(format!("v{step}"));
                        assert_eq!(a.insert(name.to_string(), v.clone()), m.insert(name.to_string(), v));
                    }
                    2 => assert_eq!(a.remove(name), m.remove(name)),
                    _ => {
                        let keep = names[next(names.len())];
                        a.retain(|k, _| k != keep);
                        m.retain(|k, _| k != keep);
                    }
                }
                assert_eq!(a.len(), m.len());
                assert!(
                    a.iter().map(|(k, v)| (k.as_str(), v)).eq(m.iter().map(|(k, v)| (k.as_str(), v))),
                    "{a:?} / {m:?}"
                );
                assert_eq!(a.get(name), m.get(name));
                assert_eq!(a.contains_key(name), m.contains_key(name));
                assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&m).unwrap());
                assert_eq!(format!("{a:?}"), format!("{m:?}"));
            }
            let collected: Attrs = m.clone().into_iter().rev().collect();
            assert!(collected.iter().map(|(k, v)| (k.as_str(), v)).eq(m.iter().map(|(k, v)| (k.as_str(), v))));
        }
    }

    #[test]
    fn collecting_keeps_the_last_value_of_a_name_given_twice() {
        let a: Attrs = [("cn", Value::text("first")), ("sn", Value::text("x")), ("cn", Value::text("last"))].into();
        let m: BTreeMap<&str, Value> =
            [("cn", Value::text("first")), ("sn", Value::text("x")), ("cn", Value::text("last"))].into();
        assert!(a.iter().map(|(k, v)| (k.as_str(), v)).eq(m.iter().map(|(k, v)| (*k, v))));
        assert_eq!(a.get("cn"), Some(&Value::text("last")));
    }
}
