//! New identities stored in chunks ahead of the operations that need them: the first create goes
//! out once the first chunk (1,000 identities; each chunk after twice the one before, up to
//! 64,000) is stored, not after a million identities, their records and their pending accounts.
//!
//! What may not change: an operation of a new identity is sent only after its identity, its
//! username, its records, its primary school, its claimed and adopted accounts and its pending
//! accounts are stored. A run that dies at any point leaves every account on a target with its
//! identity in the state, and the persons whose chunk was not stored are new again next run, as
//! when the whole commit failed before. A chunk that cannot be stored stops every send not yet
//! made (like a target that stops), and the run fails with the store's error.
//!
//! The chunks follow the order the apply sends in (the targets in turn, each one's account
//! operations in plan order), so the sends of the first target wait only for the chunk ahead.

use crate::core::identity::Resolution;
use crate::core::index::PosIndex;
use crate::core::model::{IdentityId, Sourced};
use crate::core::plan::{Action, Adoption, Plan};
use crate::engine::Computed;
use crate::engine::records::{RecordAt, index};
use rustc_hash::{FxHashMap, FxHashSet};

/// New identities in the first chunk, and operations per segment of sends.
pub(super) const CHUNK: usize = 1000;

/// The largest chunk: each chunk is twice the one before up to this, so the first write waits
/// for 1,000 identities and a million are stored in some 25 transactions' worth, not 1,000 (at a
/// million, many small transactions checkpoint the log over and over, and the storing fell
/// behind the sends).
const MAX_CHUNK: usize = 64_000;

/// Where each new identity and what it brings is stored: in a chunk of its own, or (not new)
/// before anything is sent.
///
/// Which chunk a new identity is in is found through its place in `plan.new_identities` (an
/// index of eight bytes an identity beside a chunk number of four): a map from each id to its
/// chunk took some 50 MB at a million, held through the sends.
#[derive(Debug, Default)]
pub(super) struct Staged {
    /// The new identities' places in `plan.new_identities`, by id.
    new_at: PosIndex,
    /// By place in `plan.new_identities`: the chunk the identity is stored in.
    chunk_of: Vec<u32>,
    pub chunks: Vec<Chunk>,
    /// What the identities the state holds bring (no identities of its own): stored before
    /// anything is sent.
    pub known: Chunk,
}

/// One chunk's share (or the known identities' share: [`Staged::known`]), as indices into the
/// plan and the computed run (`u32`: a plan holds fewer
/// than four billion of anything, and a million identities' indices take half the room).
#[derive(Debug, Default)]
pub(super) struct Chunk {
    /// Into `plan.new_identities`.
    pub identities: Vec<u32>,
    /// Into `computed.records_to_store`.
    pub records: Vec<u32>,
    /// Into `computed.primary_rows`.
    pub primaries: Vec<u32>,
    /// Into `plan.operations`: the creates, whose accounts are recorded pending.
    pub creates: Vec<u32>,
    /// Into the apply's claims.
    pub claims: Vec<u32>,
    /// Into `plan.adoptions`.
    pub adoptions: Vec<u32>,
}

/// A chunk's records moved out of the run ([`Staged::take_records`]): each with its identity's
/// id and its fingerprint, in the order the chunk writes them.
pub(super) type ChunkRecords = Vec<(IdentityId, Sourced, u64)>;

impl Staged {
    /// Deals the plan's new identities into chunks in the order the apply sends: `targets` in
    /// turn, each one's account operations in plan order; then those with no operation. What
    /// the identities the state holds bring goes to [`Staged::known`].
    pub fn new<'a>(
        computed: &Computed,
        targets: impl Iterator<Item = &'a String>,
        claims: &[Adoption],
        account_op: impl Fn(Action) -> bool,
    ) -> Staged {
        let plan: &Plan = &computed.plan;
        let mut staged = Staged { new_at: PosIndex::with_capacity(plan.new_identities.len()), ..Staged::default() };
        for (i, n) in plan.new_identities.iter().enumerate() {
            staged.new_at.insert(n.id.as_str(), i, |p| plan.new_identities[p].id == n.id);
        }
        let mut order: Vec<usize> = Vec::with_capacity(plan.new_identities.len());
        let mut seen: FxHashSet<usize> = FxHashSet::default();
        seen.reserve(plan.new_identities.len());
        for target in targets {
            for op in plan.operations.heads().filter(|o| o.target == target && account_op(o.action)) {
                if let Some(i) = staged.position(plan, op.identity)
                    && seen.insert(i)
                {
                    order.push(i);
                }
            }
        }
        order.extend((0..plan.new_identities.len()).filter(|i| !seen.contains(i)));
        drop(seen);
        staged.chunk_of = vec![0; plan.new_identities.len()];
        let mut parts = Vec::new();
        let (mut rest, mut size) = (&order[..], CHUNK);
        while !rest.is_empty() {
            let (part, after) = rest.split_at(size.min(rest.len()));
            parts.push(part);
            rest = after;
            size = (size * 2).min(MAX_CHUNK);
        }
        for (n, part) in parts.into_iter().enumerate() {
            for &i in part {
                staged.chunk_of[i] = index(n);
            }
            staged.chunks.push(Chunk { identities: part.iter().map(|&i| index(i)).collect(), ..Chunk::default() });
        }
        for (i, at) in computed.records_to_store.iter().enumerate() {
            staged.part(plan, &computed.resolution.present[at.identity].id).records.push(index(i));
        }
        for i in 0..computed.primary_rows.len() {
            staged.part(plan, computed.primary_rows.id(&computed.resolution, i)).primaries.push(index(i));
        }
        for (i, op) in plan.operations.heads().enumerate().filter(|(_, o)| o.action == Action::Create) {
            staged.part(plan, op.identity).creates.push(index(i));
        }
        for (i, a) in claims.iter().enumerate() {
            staged.part(plan, &a.identity).claims.push(index(i));
        }
        for (i, a) in plan.adoptions.iter().enumerate() {
            staged.part(plan, &a.identity).adoptions.push(index(i));
        }
        // Each chunk is written in the order of the keys the state indexes its rows by: the
        // identities (and their primary schools) by id, the records by source and person, the
        // pending accounts by target and identity. In plan order (by username) the random ids
        // put each row on another page of each index; at a million identities the chunks took
        // 5-13 s each, most of it reading and writing those pages. Which chunk a row is in does
        // not change.
        let records = &computed.records_to_store;
        let record_key = |i: &u32| {
            let at = &records[*i as usize];
            let s = &computed.resolution.present[at.identity].records[at.record];
            (s.source.as_str(), s.record.person_id.as_str())
        };
        // Each key is looked up once per row, not once per comparison: a record's key is four
        // pointers away, and a million records sorted by comparing them took seconds.
        for c in &mut staged.chunks {
            c.identities.sort_by_cached_key(|&i| plan.new_identities[i as usize].id.as_str());
            c.records.sort_by_cached_key(record_key);
            c.primaries.sort_by_cached_key(|&i| computed.primary_rows.id(&computed.resolution, i as usize).as_str());
            c.creates
                .sort_by_cached_key(|&i| plan.operations.head(i as usize).map(|o| (o.target, o.identity.as_str())));
        }
        staged
    }

    /// Moves the records each chunk stores out of the run's identities (`resolution`, the one
    /// `records` index into), into a list per chunk in the order the chunk writes them: the
    /// apply lets each chunk's go once it is stored, where the identities held every record
    /// (some 400 bytes each) until the end of a run that creates a million. The identities of
    /// the chunks are left without records: nothing after the planning reads them. The
    /// records the state's identities bring ([`Staged::known`]) stay where they are; where
    /// they are (their `RecordAt`s, in the order the known part writes them) is returned beside
    /// the chunks' records, and `records` (the run's list, a million at a first run) is let go.
    ///
    /// Each index names a record of its identity once (as [`crate::engine::records`] made
    /// them); one that does not is a bug, and nothing is stored or sent (`Err`, with the
    /// identity's id).
    pub fn take_records(
        &mut self,
        resolution: &mut Resolution,
        records: Vec<RecordAt>,
    ) -> Result<(Vec<ChunkRecords>, Vec<RecordAt>), String> {
        let known = std::mem::take(&mut self.known.records).into_iter().map(|i| records[i as usize]).collect();
        let mut out = Vec::with_capacity(self.chunks.len());
        for c in &mut self.chunks {
            // Each identity is in one chunk: all its records to store are in this one.
            let mut held: FxHashMap<usize, Vec<Option<Sourced>>> = FxHashMap::default();
            for &i in &c.records {
                let at = &records[i as usize];
                held.entry(at.identity).or_insert_with(|| {
                    std::mem::take(&mut resolution.present[at.identity].records).into_iter().map(Some).collect()
                });
            }
            let mut taken = ChunkRecords::with_capacity(c.records.len());
            for i in std::mem::take(&mut c.records) {
                let at = &records[i as usize];
                let id = &resolution.present[at.identity].id;
                match held.get_mut(&at.identity).and_then(|r| r.get_mut(at.record)?.take()) {
                    Some(record) => taken.push((id.clone(), record, at.hash)),
                    None => return Err(format!("record {} of identity {id} is not there to store", at.record)),
                }
            }
            out.push(taken);
        }
        Ok((out, known))
    }

    /// The ids of the new identities whose creates or claims this apply carries out, separated
    /// by spaces (what [`crate::engine::UNSTORED_NEW`] keeps). Not every new identity of the
    /// plan: a partial apply (`--only`, an approval of some operations) stores them all, but
    /// decided only the operations it carries out; the others are weighed again.
    pub fn decided(&self, plan: &Plan) -> String {
        let mut out = String::new();
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        for op in plan.operations.heads().filter(|o| matches!(o.action, Action::Create | Action::Claim)) {
            if self.is_new(plan, op.identity) && seen.insert(op.identity.as_str()) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(op.identity);
            }
        }
        out
    }

    /// The share of the chunk `id` is stored in, or of the identities the state holds.
    fn part(&mut self, plan: &Plan, id: &str) -> &mut Chunk {
        match self.chunk(plan, id) {
            Some(c) => &mut self.chunks[c],
            None => &mut self.known,
        }
    }

    /// A new identity's place in `plan.new_identities` (the plan the chunks were dealt from).
    fn position(&self, plan: &Plan, id: &str) -> Option<usize> {
        self.new_at.get(id, |p| plan.new_identities.get(p).is_some_and(|n| n.id == id))
    }

    /// The chunk a new identity is stored in; `None` for one the state holds already.
    pub fn chunk(&self, plan: &Plan, id: &str) -> Option<usize> {
        self.position(plan, id).and_then(|p| Some(*self.chunk_of.get(p)? as usize))
    }

    /// Whether an identity is new (stored in a chunk, not before the sends).
    pub fn is_new(&self, plan: &Plan, id: &str) -> bool {
        self.chunk(plan, id).is_some()
    }
}

/// How far the chunks are stored: what the sends wait on.
#[derive(Debug, Clone, Default)]
pub(super) struct Stored {
    /// Chunks stored, in order.
    pub chunks: usize,
    /// Why storing stopped: no further chunk is stored, and nothing more is sent.
    pub failed: Option<String>,
}

/// What a send waits on before an operation of a new identity goes out.
pub(super) struct Gate<'a> {
    pub staged: &'a Staged,
    /// The plan the chunks were dealt from.
    pub plan: &'a Plan,
    pub stored: tokio::sync::watch::Receiver<Stored>,
}

impl Gate<'_> {
    /// Waits until the identities among `ids` are stored; the reason nothing more is sent when
    /// storing failed first.
    pub async fn ready<'i>(&self, ids: impl Iterator<Item = &'i IdentityId>) -> Result<(), String> {
        let Some(last) = ids.filter_map(|id| self.staged.chunk(self.plan, id)).max() else {
            return self.failure().map_or(Ok(()), Err);
        };
        let mut stored = self.stored.clone();
        let ended = || "not sent: storing the new identities ended early".to_string();
        match stored.wait_for(|s| s.chunks > last || s.failed.is_some()).await {
            Ok(s) if s.chunks > last => Ok(()),
            Ok(s) => Err(s.failed.clone().unwrap_or_else(ended)),
            Err(_) => Err(ended()),
        }
    }

    /// Why nothing more is sent, once storing a chunk failed.
    pub fn failure(&self) -> Option<String> {
        self.stored.borrow().failed.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::records::present_for_test as present;

    /// The rows of a record as the state keeps it, to compare.
    fn row(r: &crate::store::RecordRow) -> String {
        format!("{} {} {} {} {}", r.source, r.person_id, r.identity_id, r.content_hash, r.data)
    }

    /// Each chunk's records leave the run's identities for the chunk, in the chunk's order, and
    /// make the rows they made in place (an identity with records of two sources too); the
    /// state's identities keep theirs; an index that names no record is refused, not skipped.
    #[test]
    fn each_chunks_records_move_out_of_the_run_and_make_the_same_rows() {
        let mut resolution = Resolution {
            present: vec![
                present("id-a", &[("sis", "1")]),
                present("id-b", &[("hr", "7"), ("sis", "2")]),
                present("id-k", &[("sis", "3")]),
            ],
            ..Default::default()
        };
        let at = |identity, record, hash| RecordAt { identity, record, hash };
        let records = [at(0, 0, 10), at(1, 0, 11), at(1, 1, 12), at(2, 0, 13)];
        let made: Vec<String> =
            records.iter().map(|a| row(&crate::engine::records::record_row(&resolution, a))).collect();
        let chunk = |records: Vec<u32>| Chunk { records, ..Chunk::default() };
        let mut staged = Staged {
            // id-b's records in the order the chunk writes them: sis before hr is not the
            // identity's order.
            chunks: vec![chunk(vec![2, 1]), chunk(vec![0])],
            known: chunk(vec![3]),
            ..Staged::default()
        };
        let (taken, known) = staged.take_records(&mut resolution, records.to_vec()).unwrap();
        let rows = |c: &ChunkRecords| -> Vec<String> {
            c.iter().map(|(id, s, hash)| row(&crate::engine::records::record_row_of(id, s, *hash))).collect()
        };
        assert_eq!(taken.len(), 2);
        assert_eq!(rows(&taken[0]), [made[2].clone(), made[1].clone()]);
        assert_eq!(rows(&taken[1]), [made[0].clone()]);
        assert!(staged.chunks.iter().all(|c| c.records.is_empty()), "the chunks keep no indices");
        assert!(resolution.present[0].records.is_empty() && resolution.present[1].records.is_empty());
        assert_eq!(resolution.present[2].records.len(), 1, "a known identity keeps its record");
        assert_eq!(known, [records[3]], "where the known identity's record is");
        assert_eq!(row(&crate::engine::records::record_row(&resolution, &known[0])), made[3]);

        // The same record twice, or one that is not there: refused with the identity's id.
        for bad in [vec![0, 0], vec![4]] {
            let mut resolution = Resolution { present: vec![present("id-a", &[("sis", "1")])], ..Default::default() };
            let records = [at(0, 0, 10), at(0, 0, 10), at(0, 0, 10), at(0, 0, 10), at(0, 5, 10)];
            let mut staged = Staged { chunks: vec![chunk(bad)], ..Staged::default() };
            let e = staged.take_records(&mut resolution, records.to_vec()).unwrap_err();
            assert!(e.contains("id-a"), "{e}");
        }
    }
}
