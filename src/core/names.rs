//! [`RunNames`]: the usernames of a run's identities, over the state's without copying them.

use crate::core::model::{IdMap, IdentityId, Usernames};
use connector_api::value::Str;
use std::sync::Arc;

/// The names of a run's identities: the names the state holds, shared with the snapshot and
/// marked for the identities of this run (a present or kept person: never a leaver's, which
/// `explain` must not show), and the names given or changed in the run over them.
///
/// Not a copy of the state's names: at a million identities a map of them was some 42 MB held
/// through the planning beside the snapshot's. Made by [`RunNames::over`] (nothing marked) or
/// from pairs (`collect`, nothing stored).
#[derive(Debug, Clone, Default)]
pub struct RunNames {
    stored: Arc<IdMap<Option<Str>>>,
    /// By the stored name's position: whether it is one of this run's.
    marked: Vec<bool>,
    /// Names given or changed in this run; never for an id that is marked.
    given: Usernames,
}

impl RunNames {
    /// Over the state's names, none of them the run's yet.
    pub fn over(stored: Arc<IdMap<Option<Str>>>) -> RunNames {
        RunNames { marked: vec![false; stored.len()], stored, given: Usernames::new() }
    }

    /// The name of an identity of the run.
    pub fn get(&self, id: &str) -> Option<&Str> {
        self.given.get(id).or_else(|| match self.stored.get_full(id)? {
            (at, _, Some(name)) if self.marked[at] => Some(name),
            _ => None,
        })
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// No identity of the run has a name (and none of the state's is held).
    pub fn is_empty(&self) -> bool {
        self.given.is_empty() && self.stored.is_empty()
    }

    /// Gives an identity of the run its name: the stored one is marked, any other held over it.
    pub fn insert(&mut self, id: IdentityId, name: Str) {
        match self.stored.get_full(id.as_str()) {
            Some((at, _, Some(stored))) if *stored == name => {
                self.marked[at] = true;
                self.given.remove(id.as_str());
            }
            found => {
                if let Some((at, ..)) = found {
                    self.marked[at] = false;
                }
                self.given.insert(id, name);
            }
        }
    }

    /// The identity's name is not the run's (a stored name marked, or one given).
    pub fn remove(&mut self, id: &str) {
        if let Some(at) = self.stored.get_index_of(id) {
            self.marked[at] = false;
        }
        self.given.remove(id);
    }

    /// Takes the names of `more` in, over any the run has for the same identities.
    pub fn append(&mut self, more: &mut Usernames) {
        if !self.stored.is_empty() {
            for id in more.keys() {
                if let Some(at) = self.stored.get_index_of(id.as_str()) {
                    self.marked[at] = false;
                }
            }
        }
        self.given.append(more);
    }
}

impl FromIterator<(IdentityId, Str)> for RunNames {
    fn from_iter<I: IntoIterator<Item = (IdentityId, Str)>>(pairs: I) -> RunNames {
        RunNames { given: pairs.into_iter().collect(), ..RunNames::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's names read as a map of them would: a stored name is the run's once given (the
    /// same name marked, another held over it), and a leaver's stored name is never read.
    #[test]
    fn a_runs_names_read_as_a_map_of_them() {
        use proptest::prelude::*;
        #[derive(Debug, Clone)]
        enum Op {
            Insert(u8, u8),
            Remove(u8),
            Append(Vec<(u8, u8)>),
        }
        let op = prop_oneof![
            (0..8u8, 0..3u8).prop_map(|(i, n)| Op::Insert(i, n)),
            (0..8u8).prop_map(Op::Remove),
            proptest::collection::vec((0..8u8, 0..3u8), 0..4).prop_map(Op::Append),
        ];
        let stored = proptest::collection::btree_map(0..6u8, proptest::option::of(0..3u8), 0..6);
        let (id, name) = (|i: u8| IdentityId::from(format!("id-{i}")), |n: u8| Str::from(format!("n{n}")));
        proptest!(|(stored in stored, ops in proptest::collection::vec(op, 0..12))| {
            let map: IdMap<Option<Str>> = stored.iter().map(|(i, n)| (id(*i), n.map(name))).collect();
            let mut names = RunNames::over(Arc::new(map));
            let mut model = Usernames::new();
            for op in ops {
                match op {
                    Op::Insert(i, n) => {
                        names.insert(id(i), name(n));
                        model.insert(id(i), name(n));
                    }
                    Op::Remove(i) => {
                        names.remove(&id(i));
                        model.remove(&id(i));
                    }
                    Op::Append(pairs) => {
                        let mut more: Usernames = pairs.iter().map(|(i, n)| (id(*i), name(*n))).collect();
                        names.append(&mut more);
                        model.extend(pairs.iter().map(|(i, n)| (id(*i), name(*n))));
                    }
                }
                for i in 0..9 {
                    prop_assert_eq!(names.get(&id(i)), model.get(&id(i)), "id-{}", i);
                }
            }
        });
    }
}
