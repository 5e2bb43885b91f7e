//! The records no stored link knows ([`resolve_unlinked`]): each joins the identity its civic
//! number or a configured key gives, starts a new one, or is held in a conflict; and the new
//! keys that are a person's personnummer where their key was the samordningsnummer
//! ([`rekeyed`]: reverse re-keying).

use super::*;

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
pub(super) fn resolve_unlinked(
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
