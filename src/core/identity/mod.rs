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

use crate::core::model::{Identity, IdentityId, Snapshot, Sourced};
use gather::Gathered;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};

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

/// Whether a source key is the civic number itself (normalised, twelve digits), with or without
/// the century.
pub fn key_is_number(person_id: &str, number: &str) -> bool {
    let compact: String = person_id.chars().filter(char::is_ascii_alphanumeric).collect();
    compact.eq_ignore_ascii_case(number) || number.get(2..).is_some_and(|n| compact.eq_ignore_ascii_case(n))
}

/// The records whose source key *is* their civic number, now a personnummer, where the same source
/// had, under the key that was the person's samordningsnummer, a record with the same date of
/// birth (day + 60) and at least one of the same names, whose key is gone from this run and
/// whose identity has no record now: the same person, re-keyed by the number's change (reverse
/// re-keying). Each such identity is given to the one record that fits it, and to none when
/// several do. Returns (source, new key, identity, old number, new number), by record order.
fn rekeyed(unlinked: &[(usize, Sourced)], snapshot: &Snapshot, by_id: &Gathered) -> Vec<Rekey> {
    use connector_api::civic::{CivicKind, kind_of_normalised};
    // Only records that may be re-keyed are looked at, so a run without any costs nothing more.
    let wanted: Vec<(&Sourced, &str)> = unlinked
        .iter()
        .filter_map(|(_, r)| {
            let c = r.record.civic_no.as_ref().filter(|c| c.kind() == CivicKind::Personnummer)?.expose();
            key_is_number(&r.record.person_id, c).then_some((r, c))
        })
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    // The stored records keyed by their samordningsnummer (few in any state), by source, date
    // of birth and the number's day (the birth day + 60): looked up once per wanted record,
    // where every stored record of the source was read for each (a daily run of a thousand new
    // pupils keyed by their numbers, against a million stored, read a billion).
    let day = |n: &str| n.get(6..8).and_then(|d| d.parse::<u32>().ok());
    let mut earlier: HashMap<(&str, &str, u32), Vec<Earlier<'_>>> = HashMap::default();
    let sources: HashSet<&str> = wanted.iter().map(|(r, _)| r.source.as_str()).collect();
    for source in sources {
        let Some(stored) = snapshot.source_records(source) else { continue };
        for (old_key, old) in stored {
            let Some(old_no) = old.civic_no.as_deref() else { continue };
            if kind_of_normalised(old_no) == Some(CivicKind::Samordningsnummer)
                && key_is_number(old_key, old_no)
                && let (Some(born), Some(d)) = (old_no.get(..6), day(old_no))
            {
                earlier.entry((source, born, d)).or_default().push((&**old_key, old, old_no));
            }
        }
    }
    let mut fitting: Vec<(&Sourced, &str, Vec<Earlier<'_>>)> = Vec::new();
    for (r, number) in wanted {
        let Some(at) =
            number.get(..6).zip(day(number)).and_then(|(born, d)| earlier.get(&(r.source.as_str(), born, d + 60)))
        else {
            continue;
        };
        let names = crate::core::model::NameFingerprint::of(&r.record.given_name, &r.record.family_name);
        let fits: Vec<_> = at
            .iter()
            .filter(|(_, old, _)| {
                !by_id.contains(&old.identity_id) && old.names.is_some_and(|n| !n.all_names_differ(&names))
            })
            .copied()
            .collect();
        if !fits.is_empty() {
            fitting.push((r, number, fits));
        }
    }
    // Whether an earlier key is still given this run, asked of the few that fit: a set of every
    // key of the run was some 50 MB at a million.
    let asked: HashSet<(&str, &str)> =
        fitting.iter().flat_map(|(r, _, fits)| fits.iter().map(|(k, ..)| (r.source.as_str(), *k))).collect();
    let present: HashSet<(&str, &str)> = if asked.is_empty() {
        HashSet::default()
    } else {
        unlinked
            .iter()
            .map(|(_, r)| r)
            .chain(by_id.iter().flat_map(|ident| &ident.records))
            .map(|r| (r.source.as_str(), r.record.person_id.as_str()))
            .filter(|k| asked.contains(k))
            .collect()
    };
    let mut found: Vec<Rekey> = Vec::new();
    for (r, number, fits) in fitting {
        let fits: Vec<_> = fits.into_iter().filter(|(k, ..)| !present.contains(&(r.source.as_str(), *k))).collect();
        if let [(_, old, old_no)] = fits.as_slice() {
            found.push((
                r.source.to_string(),
                r.record.person_id.to_string(),
                old.identity_id.clone(),
                old_no.to_string(),
                number.to_string(),
            ));
        }
    }
    // An identity two records fit is given to neither: which one it is, is not for enid to guess.
    let mut claims: HashMap<IdentityId, usize> = HashMap::default();
    for f in &found {
        *claims.entry(f.2.clone()).or_default() += 1;
    }
    found.retain(|f| claims.get(&f.2) == Some(&1));
    found
}

/// A stored record a re-keyed record may have been: its key, the record, its samordningsnummer.
type Earlier<'a> = (&'a str, &'a crate::core::model::StoredRecord, &'a str);

/// (source, new key, identity, old number, new number) of a re-keyed record.
type Rekey = (String, String, IdentityId, String, String);

/// Resolves the records no stored link knows, adding them to `by_id` or holding them in
/// `conflicts`. Returns the re-keyed records among them ([`rekeyed`]).
fn resolve_unlinked(
    unlinked: Vec<(usize, Sourced)>,
    snapshot: &Snapshot,
    decisions: &BTreeMap<String, Decision>,
    rules: &[MatchKey],
    key: &IdKey,
    by_id: &mut Gathered,
    (conflicts, held): (&mut Vec<Conflict>, &mut Vec<Sourced>),
) -> Vec<Rekey> {
    let rekeyed = rekeyed(&unlinked, snapshot, by_id);
    // The maps below hold what the records to resolve look up, no more: a run with a few new
    // persons among a million looked at every stored record's number and key (some 200 MB at
    // the resolution, a run's peak), and a first run's million at every record twice.
    let (owners, key_owners, per_source) = {
        let wanted: HashSet<&str> = unlinked.iter().filter_map(|(_, r)| civic_of(r)).collect();
        let wanted_keys: HashSet<(MatchKey, &str)> = unlinked
            .iter()
            .flat_map(|(_, r)| rules.iter().filter_map(move |rule| Some((*rule, rule.of(r)?))))
            .collect();
        // Who holds each civic number and each configured key: stored records and this run's
        // linked records.
        let mut owners: HashMap<String, BTreeSet<IdentityId>> = HashMap::default();
        let mut key_owners: HashMap<(MatchKey, String), BTreeSet<IdentityId>> = HashMap::default();
        for rec in snapshot.all_records() {
            if let Some(c) = rec.civic_no.as_deref().filter(|c| wanted.contains(c)) {
                owners.entry(c.to_string()).or_default().insert(rec.identity_id.clone());
            }
            for rule in rules {
                if let Some(v) = rule.of_stored(rec).filter(|v| wanted_keys.contains(&(*rule, *v))) {
                    key_owners.entry((*rule, v.to_string())).or_default().insert(rec.identity_id.clone());
                }
            }
        }
        for Identity { id, records, .. } in by_id.iter() {
            for r in records {
                if let Some(c) = civic_of(r).filter(|c| wanted.contains(c)) {
                    owners.entry(c.to_string()).or_default().insert(id.clone());
                }
                for rule in rules {
                    if let Some(v) = rule.of(r).filter(|v| wanted_keys.contains(&(*rule, *v))) {
                        key_owners.entry((*rule, v.to_string())).or_default().insert(id.clone());
                    }
                }
            }
        }
        // Every present record per (source, civic number) that another record of the source
        // shares (two keys claiming one number), found by sorting the pairs by their hash: a map
        // of every record's pair, with its key and location as strings, was some 250 MB at a
        // first run of a million.
        let present = by_id.iter().flat_map(|i| &i.records).filter(|r| civic_of(r).is_some_and(|c| wanted.contains(c)));
        let all: Vec<&Sourced> =
            present.chain(unlinked.iter().map(|(_, r)| r).filter(|r| civic_of(r).is_some())).collect();
        let hash = |r: &Sourced| std::hash::BuildHasher::hash_one(&rustc_hash::FxBuildHasher, source_civic(r));
        let mut hashed: Vec<(u64, usize)> = all.iter().enumerate().map(|(at, r)| (hash(r), at)).collect();
        hashed.sort_unstable();
        let mut per_source: HashMap<(String, String), Vec<(String, String)>> = HashMap::default();
        for run in hashed.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
            // In the order the records were met (present before the ones to resolve): a run of
            // one hash is sorted by place too.
            let mut groups: HashMap<(&str, &str), Vec<&Sourced>> = HashMap::default();
            for r in run.iter().map(|&(_, at)| all[at]) {
                groups.entry(source_civic(r)).or_default().push(r);
            }
            for ((source, civic), records) in groups.into_iter().filter(|(_, g)| g.len() > 1) {
                let held = records.iter().map(|r| (r.record.person_id.to_string(), r.record.location.to_string()));
                per_source.insert((source.to_string(), civic.to_string()), held.collect());
            }
        }
        (owners, key_owners, per_source)
    };

    // Identities that have stored records (one without any is a claimed account waiting for
    // them): asked only when a new id is one the state holds, so gathered then.
    let linked: std::cell::OnceCell<HashSet<&str>> = std::cell::OnceCell::new();
    let is_linked =
        |id: &str| linked.get_or_init(|| snapshot.all_records().map(|r| r.identity_id.as_str()).collect()).contains(id);
    // Identities created in this run, by civic number and by key, so records of different
    // sources join.
    // (The numbers in place, as `Str`s: a first run creates a million.)
    let mut created: HashMap<connector_api::value::Str, IdentityId> = HashMap::default();
    let mut created_by_key: HashMap<(MatchKey, String), IdentityId> = HashMap::default();
    for (i, r) in unlinked {
        let civic = civic_of(&r).map(str::to_string);
        let mut candidates: BTreeSet<IdentityId> = BTreeSet::new();
        let mut same_source: &[(String, String)] = &[];
        if let Some(c) = &civic {
            // A number no other record of the source claims has no list: the record alone.
            if let Some(shared) = per_source.get(&(r.source.to_string(), c.clone())) {
                same_source = shared;
            }
            candidates.extend(owners.get(c).into_iter().flatten().cloned());
            candidates.extend(created.get(c.as_str()).cloned());
        }
        // The first configured rule that finds someone. It must agree with the civic number.
        let by_rule: BTreeSet<IdentityId> = rules
            .iter()
            .filter_map(|rule| {
                let key = (*rule, rule.of(&r)?.to_string());
                let mut found: BTreeSet<IdentityId> = key_owners.get(&key).cloned().unwrap_or_default();
                found.extend(created_by_key.get(&key).cloned());
                (!found.is_empty()).then_some(found)
            })
            .next()
            .unwrap_or_default();
        // A record whose key is still linked here was separated from that identity
        // (`KeyReused`, decided `separate`): it never joins it again, by number or by rule.
        let mut by_rule = by_rule;
        if let Some(former) = snapshot.record(&r.source, &r.record.person_id) {
            candidates.remove(&former.identity_id);
            by_rule.remove(&former.identity_id);
        }
        let disagree = !candidates.is_empty() && !by_rule.is_empty() && by_rule != candidates;
        candidates.extend(by_rule);

        let label = (record_label(&r.source, &r.record.person_id), r.record.location.to_string());
        let conflict = if same_source.len() > 1 {
            let mut recs: Vec<(String, String)> =
                same_source.iter().map(|(pid, loc)| (record_label(&r.source, pid), loc.clone())).collect();
            recs.sort();
            Some((ConflictKind::SameSourceSameCivic, recs))
        } else if candidates.len() > 1 || disagree {
            Some((ConflictKind::SeveralIdentities, vec![label]))
        } else {
            None
        };
        let id = match conflict {
            None => candidates.into_iter().next(),
            Some((kind, recs)) => {
                let cid = conflict_id(kind, &recs, &candidates, "");
                match decisions.get(&cid) {
                    Some(Decision::Separate) => {
                        // A person of their own: a fresh identity, and the number joins nobody.
                        let id = new_id(key, &r.source, &r.record.person_id, snapshot, &is_linked);
                        add_to(by_id, snapshot, id, i, r);
                        continue;
                    }
                    Some(Decision::Merge { into: Some(into) }) if candidates.contains(into) => Some(into.clone()),
                    Some(Decision::Merge { .. }) if candidates.len() <= 1 => candidates.into_iter().next(),
                    _ => {
                        let civic_label = civic.as_deref().unwrap_or("");
                        hold(conflicts, cid, kind, &r, recs, candidates, civic_label);
                        held.push(r);
                        continue;
                    }
                }
            }
        };
        let id = match id {
            Some(id) => id,
            None => {
                // A record re-keyed by its new personnummer goes back to its identity; anyone
                // else starts a new one.
                let id = match rekeyed.iter().find(|k| k.0 == r.source && k.1 == r.record.person_id) {
                    Some(k) => k.2.clone(),
                    None => new_id(key, &r.source, &r.record.person_id, snapshot, &is_linked),
                };
                if let Some(c) = civic {
                    created.insert(c.into(), id.clone());
                }
                for rule in rules {
                    if let Some(v) = rule.of(&r) {
                        created_by_key.insert((*rule, v.to_string()), id.clone());
                    }
                }
                id
            }
        };
        add_to(by_id, snapshot, id, i, r);
    }
    rekeyed
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
