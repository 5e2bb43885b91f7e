//! Identity resolution: which records are the same person. A pure function of this run's
//! records, the stored links and the operators' conflict decisions.
//!
//! Rules, in order: a record already linked (same source and `person_id`) keeps its identity
//! when its civic number changes in an expected way (a TF number or samordningsnummer that
//! becomes a personnummer keeps the person's identity and accounts, and the change is reported),
//! but a personnummer that becomes a *different* personnummer is a reused key and is held
//! ([`ConflictKind::KeyReused`]); a record with a matchable civic
//! number joins the one identity that has that number (in the state database or earlier in this
//! run); then the configured rules ([`MatchKey`]: same e-mail, same eduPersonPrincipalName), which
//! must agree with the civic number; a new key that is its own personnummer joins the identity
//! whose key was the same person's samordningsnummer, when that key is gone, the date of birth
//! agrees and so does a name (reverse re-keying); anything else starts a new identity. A linked record
//! with no settled number to go by whose given and family name both changed is a reused key too.
//! Temporary (TF) numbers never join records. New
//! identity ids are derived from the first record's key, so a dry run and the apply that follows
//! it agree on them.
//!
//! Nothing is merged by guess. An unlinked record is **held** in a [`Conflict`] when another
//! record of the same source claims the same civic number, or when its number belongs to more than
//! one identity. A held record gets no identity and so no account until an operator decides
//! (`merge` or `separate`). A linked record is held only as a reused key, and then its identity
//! is *kept*: so a conflict never disables anyone.
//!
//! A rejected row is not a leaver: an identity linked to the key of a row a source rejected
//! ([`RejectedRows`]) is kept exactly as last stored ([`Kept`]): neither present nor absent, so
//! nothing is planned for it. Only a person absent from an intact export is absent.

mod gather;
mod unlinked;

use crate::core::model::{Identity, IdentityId, Snapshot, Sourced};
use gather::Gathered;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
pub use unlinked::key_is_number;
use unlinked::resolve_unlinked;

/// The per-installation secret new identity ids are derived with (`[identity] id_key_file`).
///
/// Ids are written to every account (LDAP `employeeNumber`), which most directory users can
/// read, and a source key is often the civic number itself. Derived with a public namespace, an
/// id would give the civic number away to anyone who tries every birth date; keyed with a secret
/// kept outside the state database, it gives nothing away, and stays deterministic, so a lost
/// state can be rebuilt by `enid adopt`.
#[derive(Clone, PartialEq, Eq)]
pub struct IdKey([u8; 32]);

impl IdKey {
    pub fn new(bytes: [u8; 32]) -> IdKey {
        IdKey(bytes)
    }

    /// The id for a record key: HMAC-SHA-256 of `name`, its first 16 bytes as a UUID (version 8,
    /// "custom").
    fn derive(&self, name: &[u8]) -> uuid::Uuid {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(name);
        let out = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&out[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// A 32-byte key for another purpose, derived from this one and `label` (HMAC-SHA-256), so
    /// the id key protects what needs a secret outside the state database (kept passwords).
    pub fn derive_secret(&self, label: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"enid derived key\0");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    /// A short fingerprint that tells keys apart without revealing them.
    pub fn fingerprint(&self) -> String {
        let d = self.derive(b"enid id key fingerprint");
        d.simple().to_string()[..16].to_string()
    }
}

impl std::fmt::Debug for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdKey(****)")
    }
}

/// Why records are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// Two or more records of one source claim the same civic number under different keys.
    SameSourceSameCivic,
    /// The record's civic number belongs to more than one identity.
    SeveralIdentities,
    /// A linked record's civic number changed from one personnummer to a different one (or to a
    /// samordningsnummer, or from one samordningsnummer to another): the source may have given
    /// the key to another person. The identity
    /// the key is linked to is kept as it is until decided: `merge` accepts the new number
    /// (the same person), `separate` gives the record an identity of its own.
    KeyReused,
}

/// Records held until an operator decides. Never contains a full civic number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// Stable while the same records are involved: a hash of their keys.
    pub id: String,
    pub kind: ConflictKind,
    /// The civic number involved, masked (`old → new` for [`ConflictKind::KeyReused`]).
    pub civic_no: String,
    /// Every record involved, as `source/person_id` with `file:line`, sorted.
    pub records: Vec<String>,
    /// The records held (no identity, no account), as `source/person_id`.
    pub held: Vec<String>,
    /// Identities the held records could belong to.
    pub candidates: Vec<IdentityId>,
}

/// An operator's decision on a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The records are one person: join the candidate identity (`into`, when there are several).
    Merge { into: Option<IdentityId> },
    /// The records are different persons: each held record gets an identity of its own.
    Separate,
}

/// A linked record whose civic number changed (TF or samordningsnummer → personnummer, or a
/// corrected number). The identity, its username and its accounts stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CivicChange {
    pub source: String,
    pub person_id: String,
    pub identity_id: IdentityId,
    /// Normalised values: only the state database may hold them.
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The result of resolution: every identity of the run, those with records first.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// Identities with at least one record now, sorted by id.
    pub present: Vec<Identity>,
    /// Identities in the state database that no source has now, sorted by id.
    pub absent: Vec<Identity>,
    /// Open conflicts, sorted by id. Their held records are in no identity.
    pub conflicts: Vec<Conflict>,
    /// Linked records whose civic number changed.
    pub civic_changes: Vec<CivicChange>,
    /// Identities kept exactly as last stored this run (a row of theirs was rejected, or their
    /// source key is in a [`ConflictKind::KeyReused`] conflict), sorted by id. They are in
    /// neither `present` nor `absent`: no update, no disable, no group change.
    pub kept: Vec<Kept>,
    /// The records of this run that are in no present identity: held in a conflict, or of a
    /// kept identity. The state remembers them beside the linked records, so that an
    /// incremental read, which gives a record only when it changes, still has them.
    pub held_records: Vec<Sourced>,
}

/// An identity kept as at the last run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub identity_id: IdentityId,
    /// Why, in plain words with the locations involved; source keys masked.
    pub reasons: Vec<String>,
}

/// The rows the sources rejected this run, as identity resolution needs them: a rejected row
/// is not a leaver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectedRows {
    /// (source, person_id) → the locations of the rejected rows with that key.
    pub keyed: BTreeMap<(String, String), Vec<String>>,
    /// Source → locations of rejected rows whose `person_id` could not be read. Any of that
    /// source's stored persons could be one of them, so none of those absent now is a leaver.
    pub unkeyed: BTreeMap<String, Vec<String>>,
    /// Normalised civic number → locations of rejected rows that carry it validly: the person
    /// stored with it is kept (a row typed with another person's key).
    pub civic: BTreeMap<String, Vec<String>>,
}

impl RejectedRows {
    /// Collects the rejected rows of every source.
    pub fn from_rows(rejected: &BTreeMap<String, Vec<connector_api::RowError>>) -> RejectedRows {
        let mut out = RejectedRows::default();
        for (source, rows) in rejected {
            for row in rows {
                if let Some(c) = &row.civic_no {
                    out.civic.entry(c.expose().to_string()).or_default().push(row.location.clone());
                }
                match &row.person_id {
                    Some(p) => out.keyed.entry((source.clone(), p.clone())).or_default().push(row.location.clone()),
                    None => out.unkeyed.entry(source.clone()).or_default().push(row.location.clone()),
                }
            }
        }
        out
    }
}

/// `source/person_id` with a key that looks like a civic number masked, for messages.
pub fn record_label(source: &str, person_id: &str) -> String {
    format!("{source}/{}", connector_api::civic::mask_if_civic(person_id))
}

impl Resolution {
    pub fn all(&self) -> impl Iterator<Item = &Identity> {
        self.present.iter().chain(self.absent.iter())
    }
}

/// Resolves `records` (in source order) against `snapshot` and the operators' `decisions`
/// (conflict id → decision). Takes the records by value: they move into the identities.
///
/// `rejected` are the rows the sources rejected: an identity linked to one of them is kept as
/// last stored (in `kept`, not `present` or `absent`), whatever its other records say.
pub fn resolve(
    records: Vec<Sourced>,
    snapshot: &Snapshot,
    decisions: &BTreeMap<String, Decision>,
    rules: &[MatchKey],
    rejected: &RejectedRows,
    key: &IdKey,
) -> Resolution {
    // Records are numbered in source order, so each identity can list its records in that order.
    let mut by_id = Gathered::with_capacity(records.len());
    let mut unlinked = Vec::new();
    let mut civic_changes = Vec::new();
    let mut conflicts = Vec::new();
    let mut held_records = Vec::new();
    let mut kept: BTreeMap<IdentityId, Vec<String>> = BTreeMap::new();
    for ((source, person_id), locations) in &rejected.keyed {
        if let Some(stored) = snapshot.record(source, person_id) {
            kept.entry(stored.identity_id.clone())
                .or_default()
                .push(format!("row rejected at {}", locations.join(", ")));
        }
    }
    if !rejected.civic.is_empty() {
        for rec in snapshot.all_records() {
            if let Some(locations) = rec.civic_no.as_deref().and_then(|c| rejected.civic.get(c))
                && !kept.contains_key(&rec.identity_id)
            {
                kept.entry(rec.identity_id.clone())
                    .or_default()
                    .push(format!("row rejected at {} carries their civic number", locations.join(", ")));
            }
        }
    }
    for (i, r) in records.into_iter().enumerate() {
        match snapshot.record(&r.source, &r.record.person_id) {
            Some(stored) => {
                let reused = key_reused(stored.civic_no.as_deref(), r.record.civic_no.as_ref())
                    .map(|(old, new)| format!("{old} → {new}"))
                    .or_else(|| names_reused(stored, &r.record));
                if let Some(evidence) = reused {
                    let label = record_label(&r.source, &r.record.person_id);
                    let recs = vec![(label.clone(), r.record.location.to_string())];
                    let candidates = BTreeSet::from([stored.identity_id.clone()]);
                    let cid = conflict_id(ConflictKind::KeyReused, &recs, &candidates, &evidence);
                    match decisions.get(&cid) {
                        // The same person with a corrected number: linked as before, and the
                        // change is recorded below.
                        Some(Decision::Merge { .. }) => {}
                        // Another person: the record resolves as if it had never been linked.
                        Some(Decision::Separate) => {
                            unlinked.push((i, r));
                            continue;
                        }
                        None => {
                            kept.entry(stored.identity_id.clone()).or_default().push(format!(
                                "{label} ({}) now has another civic number or another person's names; held in \
                                 conflict {cid}",
                                r.record.location
                            ));
                            conflicts.push(Conflict {
                                id: cid,
                                kind: ConflictKind::KeyReused,
                                civic_no: evidence,
                                records: recs.into_iter().map(|(k, loc)| format!("{k} ({loc})")).collect(),
                                held: vec![label],
                                candidates: candidates.into_iter().collect(),
                            });
                            held_records.push(r);
                            continue;
                        }
                    }
                }
                let now = r.record.civic_no.as_ref().map(|c| c.expose());
                if now != stored.civic_no.as_deref() {
                    civic_changes.push(CivicChange {
                        source: r.source.to_string(),
                        person_id: r.record.person_id.to_string(),
                        identity_id: stored.identity_id.clone(),
                        old: stored.civic_no.as_deref().map(str::to_string),
                        new: now.map(str::to_string),
                    });
                }
                by_id.add(stored.identity_id.clone(), false, snapshot, i, r)
            }
            None => unlinked.push((i, r)),
        }
    }

    if !unlinked.is_empty() {
        let rekeyed = resolve_unlinked(
            unlinked,
            snapshot,
            decisions,
            rules,
            key,
            &mut by_id,
            (&mut conflicts, &mut held_records),
        );
        // A record re-keyed by its new personnummer joined the identity of its old key: the
        // number's change is reported as for a key that stayed.
        for (source, person_id, identity_id, old, new) in rekeyed {
            if by_id
                .records(&identity_id)
                .is_some_and(|recs| recs.iter().any(|r| r.source == source && r.record.person_id == person_id))
            {
                civic_changes.push(CivicChange { source, person_id, identity_id, old: Some(old), new: Some(new) });
            }
        }
    }

    // A source with rejected rows whose key could not be read is not intact: none of its
    // stored persons that are missing now is known to have left.
    if !rejected.unkeyed.is_empty() {
        for (source, locations) in &rejected.unkeyed {
            let Some(stored) = snapshot.source_records(source) else { continue };
            for rec in stored.values().filter(|r| !by_id.contains(&r.identity_id)) {
                let why = format!("rows rejected without a readable person_id at {}", locations.join(", "));
                let reasons = kept.entry(rec.identity_id.clone()).or_default();
                if !reasons.contains(&why) {
                    reasons.push(why);
                }
            }
        }
    }
    // Kept identities are neither present nor absent: nothing is planned for them.
    for id in kept.keys() {
        if let Some(recs) = by_id.remove(id) {
            held_records.extend(recs);
        }
    }

    let mut absent: Vec<Identity> = snapshot
        .identities
        .keys()
        .filter(|id| !by_id.contains(id) && !kept.contains_key(*id))
        .map(|id| Identity { id: id.clone(), is_new: false, records: Default::default(), primary: None })
        .collect();
    absent.sort_by(|a, b| a.id.cmp(&b.id));
    let kept: Vec<Kept> = kept
        .into_iter()
        .filter(|(id, _)| snapshot.identities.contains_key(id))
        .map(|(identity_id, reasons)| Kept { identity_id, reasons })
        .collect();
    let mut present = by_id.into_identities();
    present.sort_by(|a, b| a.id.cmp(&b.id));
    conflicts.sort_by(|a: &Conflict, b| a.id.cmp(&b.id));
    civic_changes.sort_by(|a, b| (&a.source, &a.person_id).cmp(&(&b.source, &b.person_id)));
    // A kept identity's records are not rewritten, so neither is its civic-number history.
    let kept_ids: BTreeSet<&str> = kept.iter().map(|k: &Kept| k.identity_id.as_str()).collect();
    civic_changes.retain(|c| !kept_ids.contains(c.identity_id.as_str()));
    Resolution { present, absent, conflicts, civic_changes, kept, held_records }
}

/// Whether a linked record's civic number changed from a personnummer to a different
/// personnummer or samordningsnummer (or from one samordningsnummer to another): not a
/// correction the planner may take on its own, since sources reuse keys. A temporary number or
/// samordningsnummer becoming a personnummer and a number appearing where there was none are
/// expected and return `None`; a personnummer or samordningsnummer that disappears or becomes a
/// temporary number is held too. Returns the masked old and new numbers.
fn key_reused(stored: Option<&str>, now: Option<&connector_api::CivicNo>) -> Option<(String, String)> {
    use connector_api::civic::{CivicKind, kind_of_normalised};
    let old = stored?;
    let old_kind = kind_of_normalised(old)?;
    let settled = matches!(old_kind, CivicKind::Personnummer | CivicKind::Samordningsnummer);
    // A personnummer or samordningsnummer that disappears, or becomes a temporary number: the
    // key may now be a newly arrived child's, who has no number yet. Held, never handed over.
    let Some(new) = now else {
        return settled.then(|| (connector_api::civic::mask_raw(old), "none".to_string()));
    };
    if settled && new.kind() == CivicKind::Temporary {
        return Some((connector_api::civic::mask_raw(old), new.masked()));
    }
    let reused = old != new.expose()
        && matches!(
            (kind_of_normalised(old)?, new.kind()),
            (CivicKind::Personnummer, CivicKind::Personnummer | CivicKind::Samordningsnummer)
                | (CivicKind::Samordningsnummer, CivicKind::Samordningsnummer)
        );
    reused.then(|| (connector_api::civic::mask_raw(old), new.masked()))
}

/// Whether a linked record whose key has no settled civic number to go by (a temporary number,
/// or none, before or now) now carries another given *and* another family name: the key was
/// most likely given to another person, and handing them the first one's account is not for
/// enid to guess. A settled number that stays the same is the same person, whatever the names.
/// Returns the evidence for the conflict: the masked numbers and what changed, never a name.
fn names_reused(stored: &crate::core::model::StoredRecord, now: &connector_api::SourceRecord) -> Option<String> {
    use connector_api::civic::{CivicKind, kind_of_normalised, mask_raw};
    let before = stored.names?;
    let old = stored.civic_no.as_deref();
    let settled =
        |kind: Option<CivicKind>| matches!(kind, Some(CivicKind::Personnummer | CivicKind::Samordningsnummer));
    let new = now.civic_no.as_ref();
    if settled(old.and_then(kind_of_normalised)) && old == new.map(|c| c.expose()) {
        return None;
    }
    if !before.all_names_differ(&crate::core::model::NameFingerprint::of(&now.given_name, &now.family_name)) {
        return None;
    }
    let old = old.map_or_else(|| "none".to_string(), mask_raw);
    let new = new.map_or_else(|| "none".to_string(), |c| c.masked());
    Some(format!("{old} → {new}, another given and family name"))
}

/// A configured correlation rule, tried after the civic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKey {
    /// The same e-mail address (compared lowercased).
    Email,
    /// The same eduPersonPrincipalName (compared lowercased).
    Eppn,
}

impl MatchKey {
    fn of(self, r: &Sourced) -> Option<&str> {
        match self {
            MatchKey::Email => r.record.email(),
            MatchKey::Eppn => r.record.eppn(),
        }
    }

    fn of_stored(self, r: &crate::core::model::StoredRecord) -> Option<&str> {
        match self {
            MatchKey::Email => r.email(),
            MatchKey::Eppn => r.eppn(),
        }
    }
}

/// A record's civic number when it is one records are matched by (not a temporary number).
fn civic_of(r: &Sourced) -> Option<&str> {
    Some(r.record.civic_no.as_ref().filter(|c| c.is_matchable())?.expose())
}

/// A record's source and matchable civic number (empty when it has none).
fn source_civic(r: &Sourced) -> (&str, &str) {
    (r.source.as_str(), civic_of(r).unwrap_or_default())
}

/// Puts record `r` (number `i` in source order) into identity `id`, new unless the state has it.
fn add_to(by_id: &mut Gathered, snapshot: &Snapshot, id: IdentityId, i: usize, r: Sourced) {
    let is_new = !snapshot.identities.contains_key(&id);
    by_id.add(id, is_new, snapshot, i, r);
}

/// Records `r` as held in conflict `cid`, adding to the conflict when it is already open.
fn hold(
    conflicts: &mut Vec<Conflict>,
    cid: String,
    kind: ConflictKind,
    r: &Sourced,
    recs: Vec<(String, String)>,
    candidates: BTreeSet<IdentityId>,
    civic: &str,
) {
    let label = record_label(&r.source, &r.record.person_id);
    if let Some(open) = conflicts.iter_mut().find(|c| c.id == cid) {
        open.held.push(label);
        open.held.sort();
        return;
    }
    conflicts.push(Conflict {
        id: cid,
        kind,
        civic_no: if civic.is_empty() { "none".into() } else { format!("{}-****", &civic[..8.min(civic.len())]) },
        records: recs.into_iter().map(|(k, loc)| format!("{k} ({loc})")).collect(),
        held: vec![label],
        candidates: candidates.into_iter().collect(),
    });
}

/// A conflict's id: a hash of what it is about, so the same situation keeps its id across runs
/// and a decision stays attached to it.
///
/// `evidence` is what else tells this situation from a later one with the same keys (for a
/// reused key: the masked old and new numbers). It must never hold a full civic number: the id
/// is shown, and a short hash of a number with a known birth date is easily reversed.
fn conflict_id(
    kind: ConflictKind,
    recs: &[(String, String)],
    candidates: &BTreeSet<IdentityId>,
    evidence: &str,
) -> String {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write_u8(kind as u8);
    if !evidence.is_empty() {
        h.write(evidence.as_bytes());
        h.write_u8(0);
    }
    for (k, _) in recs {
        h.write(k.as_bytes());
        h.write_u8(0);
    }
    // Records of one source that share a number are the whole story; for a number several
    // identities hold, the identities are part of it.
    if matches!(kind, ConflictKind::SeveralIdentities | ConflictKind::KeyReused) {
        for c in candidates {
            h.write(c.as_bytes());
            h.write_u8(0);
        }
    }
    format!("c-{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// The id a record with this key gets when it starts a new identity (no counter): what `enid
/// adopt` compares the ids on the targets with.
pub fn derived_id(key: &IdKey, source: &str, person_id: &str) -> IdentityId {
    IdentityId::from(key.derive(format!("{source}\0{person_id}").as_bytes()).to_string())
}

/// A new identity id from the record key, keyed with the installation's secret. An identity
/// the state knows without any record (one `enid adopt` claimed from the id on its account) is
/// this record's own identity coming back: the derivation is deterministic, so it is returned.
/// A counter resolves the (theoretical) case where the derived id belongs to someone else.
fn new_id(
    key: &IdKey,
    source: &str,
    person_id: &str,
    snapshot: &Snapshot,
    linked: &dyn Fn(&str) -> bool,
) -> IdentityId {
    let mut n = 0u32;
    loop {
        let name = if n == 0 { format!("{source}\0{person_id}") } else { format!("{source}\0{person_id}\0{n}") };
        let id = key.derive(name.as_bytes()).to_string();
        if !snapshot.identities.contains_key(id.as_str()) || n == 0 && !linked(id.as_str()) {
            return id.into();
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests;
