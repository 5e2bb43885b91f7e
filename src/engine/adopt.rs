//! `enid adopt`: claims the accounts and groups on the targets that enid made, when the state
//! database no longer records them (a lost, emptied or replaced state).
//!
//! An account is claimed only on proof: it carries, in the target's owner attribute, the enid id
//! that the current sources give one identity (ids are derived from record keys with the
//! installation's id key, so the same sources and key give the same ids again). Everything else
//! that carries an enid id is listed, never guessed; `--entry KEY --person SOURCE/PERSON_ID`
//! claims one such entry by an operator's decision. Groups are claimed when they sit where enid
//! puts groups and carry a name the current sources give. Every username found on the targets is
//! recorded as taken, so it is never given to someone new. Adopting changes only the state
//! database, never a target.

use super::records::{changed_primaries, changed_records};
use super::run::{Phase, RunHook};
use super::{Engine, EngineError, Overrides};
use crate::core::desired::name_request;
use crate::core::identity::Resolution;
use crate::core::model::Usernames;
use crate::core::model::{Identity, IdentityId};
use crate::core::plan::Adoption;
use crate::store::{GroupRow, OpRecord, OpResult, Ownership, StateStore};
use chrono::{DateTime, Utc};
use connector_api::{MemberForm, ObservedAccount, Target};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// An account to be recorded as enid's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountClaim {
    pub target: String,
    pub identity: IdentityId,
    pub username: String,
    pub key: String,
    #[serde(skip)]
    pub anchor: Option<String>,
    pub disabled: bool,
    /// Claimed by an operator's `--entry ... --person ...`, not by the id on the entry.
    pub by_hand: bool,
    /// A disabled account whose person no source has now (a leaver): claimed for an identity
    /// without records.
    pub left: bool,
    /// The username the state had for the identity, never used on a target: the entry's
    /// replaces it.
    pub rename_from: Option<String>,
    /// Claimed by hand outside the target's scope: the next apply moves it into its place.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub outside: bool,
}

/// A group to be recorded as enid's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupClaim {
    pub target: String,
    pub name: String,
    pub key: String,
    #[serde(skip)]
    pub anchor: Option<String>,
    pub school: String,
}

/// An entry carrying an enid id that adopt could not match, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmatched {
    pub target: String,
    pub key: String,
    pub reason: String,
}

/// An account made before enid that a correlation rule gives a person: not recorded by adopt
/// (it carries no enid id), but claimed by a `claim` operation of the next plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Correlated {
    pub target: String,
    pub identity: IdentityId,
    /// The account's key; the enid id for a person with protected personal data.
    pub key: String,
    pub rule: crate::core::plan::Rule,
}

/// What `enid adopt` would record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AdoptPlan {
    pub accounts: Vec<AccountClaim>,
    pub groups: Vec<GroupClaim>,
    pub unmatched: Vec<Unmatched>,
    /// Accounts made before enid that the correlation rules match: the next plan claims them.
    pub correlated: Vec<Correlated>,
    /// Usernames on the targets that no claimed account has: recorded as taken, never allocated.
    pub taken_usernames: usize,
    #[serde(skip)]
    taken: Vec<String>,
    #[serde(skip)]
    new_identities: Vec<(IdentityId, String)>,
    #[serde(skip)]
    records: Vec<crate::store::RecordRow>,
    #[serde(skip)]
    primaries: Vec<(IdentityId, Option<crate::core::model::PrimaryTie>)>,
    #[serde(skip)]
    counts: BTreeMap<String, usize>,
    #[serde(skip)]
    columns: BTreeMap<String, BTreeSet<String>>,
}

impl AdoptPlan {
    /// Whether there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.groups.is_empty() && self.taken.is_empty()
    }
}

/// One entry an operator claims by hand: `--entry KEY --person SOURCE/PERSON_ID [--target ID]`.
#[derive(Debug, Clone)]
pub struct ByHand {
    pub entry: String,
    pub person: String,
    pub target: Option<String>,
}

impl Engine {
    /// Works out what `enid adopt` would claim. Reads sources, state and targets; writes nothing.
    /// `hook` is told the phases as a plan's are ([`Phase`]: reading sources, reading targets,
    /// planning).
    pub async fn plan_adopt(
        &self,
        now: DateTime<Utc>,
        by_hand: Option<&ByHand>,
        hook: Option<&dyn RunHook>,
    ) -> Result<AdoptPlan, EngineError> {
        let phase = |p: Phase| {
            if let Some(h) = hook {
                h.phase(p);
            }
        };
        let today = now.date_naive();
        phase(Phase::ReadingSources);
        self.resume_targets().await?;
        let observing = self.spawn_observe();
        let overrides = Overrides::default();
        let (fetched, state) = tokio::join!(self.fetch_all(now, &overrides), self.read_state());
        let (fetched, (snapshot, decisions, state_groups)) = match (fetched, state) {
            (Ok(f), Ok(s)) => (f, s),
            (Err(e), _) | (_, Err(e)) => {
                observing.iter().for_each(|(_, h)| h.abort());
                return Err(e);
            }
        };
        phase(Phase::ReadingTargets { records: fetched.counts.values().sum() });
        let mut observed = BTreeMap::new();
        let mut observed_groups = BTreeMap::new();
        for (id, handle) in observing {
            match handle.await {
                Ok(Ok((accounts, groups))) => {
                    observed.insert(id.clone(), accounts);
                    observed_groups.insert(id, groups);
                }
                Ok(Err(error)) => return Err(EngineError::Target { id, error }),
                Err(e) => {
                    let error = connector_api::TargetError::unavailable("read the target").with_source(e);
                    return Err(EngineError::Target { id, error });
                }
            }
        }
        phase(Phase::Planning { accounts: observed.values().map(Vec::len).sum() });
        // The sources' reads are not recorded by an adoption (it keeps the records of the
        // identities it claims only): the next apply reads every source in full.
        let super::fetch::Fetched { records, rejected: rejected_rows, counts, columns, .. } = fetched;
        let rejected = crate::core::identity::RejectedRows::from_rows(&rejected_rows);
        // The ids the rejected rows' persons would have: their accounts are theirs, not leavers'.
        // A rejected row whose key cannot be read could be anyone's.
        let mut unreadable = false;
        let mut rejected_ids: HashSet<IdentityId> = HashSet::new();
        for (source, rows) in &rejected_rows {
            for r in rows {
                match &r.person_id {
                    Some(pid) => {
                        rejected_ids.insert(crate::core::identity::derived_id(&self.id_key, source, pid));
                    }
                    None => unreadable = true,
                }
            }
        }
        let resolution = crate::core::identity::resolve(
            records,
            &snapshot,
            &decisions,
            &self.config.identity.match_on,
            &rejected,
            &self.id_key,
        );
        let by_id: HashMap<&str, &Identity> = resolution.all().map(|i| (i.id.as_str(), i)).collect();
        let refused = self.store.claim_refusals().await?;
        let inputs = self.correlation_inputs(&resolution, &refused);
        // Names that belong to an identity; those only reserved by an earlier adopt may be claimed.
        let reserved: HashSet<String> = self.store.reserved_usernames().await?.into_iter().collect();
        let allocated: HashSet<String> =
            self.store.allocated_usernames(now, None).await?.into_iter().filter(|u| !reserved.contains(u)).collect();

        let mut plan = AdoptPlan { counts, columns, ..Default::default() };
        // Persons of the sources whose id no account that fits their names carries, and who own
        // none: one of them may be the owner of an account whose id no record gives (the source
        // re-keyed them after the account was made, or gave their key to another child whose
        // account an operator separated). Their name requests, to recognise their usernames.
        let fits_id = |id: &str, a: &ObservedAccount| {
            let Some(req) = by_id.get(id).and_then(|i| name_request(i)) else { return true };
            let pseudonym = a.username().is_some_and(crate::core::naming::looks_pseudonymous);
            pseudonym || a.username().is_some_and(|u| self.namer.still_fits(u, &req))
        };
        let carried: HashSet<&str> = observed
            .iter()
            .flat_map(|(tid, accounts)| {
                let attr = self.targets.get(tid).map(|t| t.caps.owner_attribute.as_str()).unwrap_or("");
                accounts.iter().flat_map(move |a| a.attrs.texts(attr).map(move |v| (v, a)))
            })
            .filter(|(v, a)| fits_id(v, a))
            .map(|(v, _)| v)
            .collect();
        let owning: HashSet<&str> = snapshot.accounts.iter().map(|a| a.identity_id.as_str()).collect();
        let accountless: Vec<(String, crate::core::naming::NameRequest)> = resolution
            .present
            .iter()
            .filter(|i| !carried.contains(i.id.as_str()) && !owning.contains(i.id.as_str()))
            .filter_map(|i| {
                let r = i.records.first()?;
                let label = if i.is_protected() {
                    format!("a protected person ({})", i.id)
                } else {
                    crate::core::identity::record_label(&r.source, &r.record.person_id)
                };
                Some((label, name_request(i)?))
            })
            .collect();
        // Identity → the username its claimed accounts carry (one for all targets).
        let mut chosen: Usernames = BTreeMap::new();
        // Identities whose username in `chosen` came from an account the correlation attribute
        // proves under another username (a claim whose rename did not happen): an account that
        // carries the identity's id under another name replaces it.
        let mut soft: HashSet<IdentityId> = HashSet::new();
        for (tid, accounts) in &observed {
            let Some(t) = self.targets.get(tid) else { continue };
            let owned: Vec<_> = snapshot.accounts.iter().filter(|a| a.target == tid).collect();
            let owns: HashSet<&str> = owned.iter().map(|a| a.identity_id.as_str()).collect();
            let unmatched = |a: &ObservedAccount, reason: String| Unmatched {
                target: tid.clone(),
                key: a.key().to_owned(),
                reason,
            };
            // Two entries with one id on a target: neither is claimed.
            let mut per_id: HashMap<&str, Vec<&ObservedAccount>> = HashMap::new();
            for a in crate::core::plan::unrecorded_enid_entries(&owned, accounts, &t.caps) {
                for v in crate::core::plan::owner_values(a, &t.caps.owner_attribute) {
                    per_id.entry(v).or_default().push(a);
                }
            }
            let mut ids: Vec<&str> = per_id.keys().copied().collect();
            ids.sort_unstable();
            // An active account whose id no record gives belongs to someone gone from the sources,
            // if the key is evidently right (at least as many accounts matched a record) and no
            // rejected row could be theirs: claimed like a leaver, and disabled by the next apply.
            let matched = ids.iter().filter(|id| by_id.contains_key(**id)).count();
            let strays =
                ids.iter().filter(|id| !by_id.contains_key(**id) && per_id[**id].iter().any(|a| !a.disabled)).count();
            let leavers_allowed = matched > 0 && matched >= strays && !unreadable;
            for id in ids {
                let entries = &per_id[id];
                let [a] = entries.as_slice() else {
                    for a in entries {
                        let reason = format!("{} entries carry enid id {id}; none is claimed", entries.len());
                        plan.unmatched.push(unmatched(a, reason));
                    }
                    continue;
                };
                // A pseudonym says nothing about whose it is: any protected person without an
                // account could be its owner.
                let pseudonym = a.username().is_some_and(crate::core::naming::looks_pseudonymous);
                let namesake = a.username().and_then(|u| {
                    accountless.iter().find(|(_, req)| self.namer.still_fits(u, req) || pseudonym && req.pseudonymous)
                });
                if let (None, Some((label, _))) = (by_id.get(id), namesake) {
                    plan.unmatched.push(unmatched(
                        a,
                        format!(
                            "carries enid id {id}, which no record gives, and its username fits {label}, who has no \
                             account (a changed source key?); claim it with `enid adopt --entry KEY --person {label}` if \
                             it is theirs"
                        ),
                    ));
                    continue;
                }
                if !by_id.contains_key(id) && (a.disabled || leavers_allowed) && !rejected_ids.contains(id) {
                    // A leaver's account enid disabled: claimed for an identity without records,
                    // so the lifecycle goes on (deletion after the grace period), and the person
                    // gets it back if their record returns (the id derivation is deterministic).
                    match self.claim(tid, id, a, false, &snapshot, &owns, &allocated, &mut chosen) {
                        Ok(c) => plan.accounts.push(AccountClaim { left: true, ..c }),
                        Err(reason) => plan.unmatched.push(unmatched(a, reason)),
                    }
                    continue;
                }
                if !by_id.contains_key(id) {
                    plan.unmatched.push(unmatched(
                        a,
                        format!(
                            "carries enid id {id}, which no record of the current sources gives (made with another id \
                             key, a row rejected today, or the person is gone from the sources); fix the export and \
                             adopt again, claim it with `enid adopt --entry KEY --person SOURCE/PERSON_ID`, or leave it"
                        ),
                    ));
                    continue;
                }
                // The key may have been given to someone else since the account was made (a
                // reused key the lost state had held as a conflict): the entry must fit the
                // names the sources now give this identity, unless the state knows it already
                // by this username or by an account. A name the state gave when it did not know
                // the entry (an apply after the loss, while the entry was blocked) vouches for
                // nothing: otherwise a second adopt would claim what the first left unmatched.
                // A name change keeps one of the two names; another child has neither.
                let known = match snapshot.identities.get(id) {
                    Some(Some(u)) => {
                        a.username().is_some_and(|n| n.eq_ignore_ascii_case(u))
                            || snapshot.accounts.iter().any(|o| o.identity_id == id)
                    }
                    Some(None) | None => false,
                };
                let person = by_id.get(id).filter(|_| !known);
                let misfit = person.and_then(|i| name_request(i)).is_some_and(|req| {
                    let req = if self.config.naming.protected_names_from_template {
                        crate::core::naming::NameRequest { pseudonymous: false, ..req }
                    } else {
                        req
                    };
                    let fits = a.username().is_some_and(|u| self.namer.still_fits(u, &req));
                    let holds = |var: &str, want: &str| {
                        t.mapping
                            .attributes_of(var)
                            .into_iter()
                            .any(|attr| a.attrs.texts(attr).any(|v| v.trim().eq_ignore_ascii_case(want.trim())))
                    };
                    let a_name_kept = !req.pseudonymous
                        && (holds("given_name", &req.given_name) || holds("family_name", &req.family_name));
                    // The correlation attribute holding this person's value proves the link again
                    // (an account claimed under another username keeps what the old scripts stored).
                    let proven =
                        inputs.get(tid).is_some_and(|input| crate::core::plan::attribute_matches(input, id, a));
                    !fits && !a_name_kept && !proven
                });
                if misfit {
                    plan.unmatched.push(unmatched(
                        a,
                        format!(
                            "carries enid id {id}, but its username does not fit the names the sources now give that \
                             person (a name change, or a key given to someone else?); claim it with `enid adopt \
                             --entry KEY --person SOURCE/PERSON_ID` once you know whose it is"
                        ),
                    ));
                    continue;
                }
                let proven = inputs.get(tid).is_some_and(|input| crate::core::plan::attribute_matches(input, id, a));
                let name = a.username().unwrap_or_default();
                let other_name = chosen.get(id).filter(|u| !u.eq_ignore_ascii_case(name)).cloned();
                if let Some(kept) = other_name.filter(|_| (proven || soft.contains(id)) && !owns.contains(id)) {
                    // One person under two usernames on two targets: the account the attribute
                    // proves keeps its name until the next plan renames it to the identity's.
                    let winner = if proven { kept } else { name.into() };
                    if !proven {
                        soft.remove(id);
                    }
                    chosen.insert(id.into(), winner);
                    plan.accounts.push(AccountClaim {
                        target: tid.clone(),
                        identity: id.into(),
                        username: name.to_string(),
                        key: a.key().to_owned(),
                        anchor: a.anchor().map(str::to_owned),
                        disabled: a.disabled,
                        by_hand: false,
                        left: false,
                        rename_from: None,
                        outside: false,
                    });
                    continue;
                }
                if proven && !chosen.contains_key(id) {
                    soft.insert(id.into());
                }
                let claim = self.claim(tid, id, a, false, &snapshot, &owns, &allocated, &mut chosen);
                match claim {
                    Ok(c) => plan.accounts.push(c),
                    Err(reason) => plan.unmatched.push(unmatched(a, reason)),
                }
            }
        }
        if let Some(h) = by_hand {
            let same = |c: &AccountClaim| {
                self.targets.get(&c.target).is_some_and(|t| t.caps.key(&c.key) == t.caps.key(&h.entry))
            };
            if plan.accounts.iter().any(same) {
                return Err(EngineError::Adopt(format!(
                    "--entry {}: adopt claims it already by the enid id it carries; run `enid adopt --yes` without \
                     --entry",
                    connector_api::civic::mask_if_civic(&h.entry)
                )));
            }
            // An entry outside the scope (made before enid in another container): read where it
            // is, claimed, and moved into its placement by the next apply.
            let mut outside_keys: HashSet<(String, String)> = HashSet::new();
            let in_scope = observed.iter().any(|(tid, accounts)| {
                let t = &self.targets[tid];
                h.target.as_ref().is_none_or(|x| x == tid)
                    && accounts.iter().any(|a| t.caps.key(a.key()) == t.caps.key(&h.entry))
            });
            if !in_scope {
                for (tid, t) in self
                    .targets
                    .iter()
                    .filter(|(tid, t)| t.caps.finds_outside_scope && h.target.as_ref().is_none_or(|x| x == *tid))
                {
                    // What the operator typed may be anything (a civic number): a key the target
                    // refuses is no account, and an error names it masked only.
                    match t.conn.observe_at(&h.entry, &t.managed).await {
                        Ok(Some(a)) => {
                            outside_keys.insert((tid.clone(), t.caps.key(a.key())));
                            observed.entry(tid.clone()).or_default().push(a);
                        }
                        Ok(None) | Err(connector_api::TargetError::Rejected { .. }) => {}
                        Err(e) => {
                            return Err(EngineError::Adopt(format!(
                                "--entry {}: target \"{tid}\" could not be searched for it: {}",
                                connector_api::civic::mask_if_civic(&h.entry),
                                connector_api::civic::mask_civic_in_text(&connector_api::one_line(&e))
                            )));
                        }
                    }
                }
            }
            let mut c = self.claim_by_hand(h, &observed, &resolution, &snapshot, &allocated, &mut chosen)?;
            c.outside = self
                .targets
                .get(&c.target)
                .is_some_and(|t| outside_keys.contains(&(c.target.clone(), t.caps.key(&c.key))));
            plan.accounts.push(c);
        }

        // Usernames: claimed identities that the state does not know are recorded with theirs.
        let claimed_ids: BTreeSet<&str> = plan.accounts.iter().map(|c| c.identity.as_str()).collect();
        for id in &claimed_ids {
            if !snapshot.identities.contains_key(*id)
                && let Some(u) = chosen.get(*id)
            {
                plan.new_identities.push(((*id).into(), u.to_string()));
            }
        }
        let new_ids: HashSet<&str> = plan.new_identities.iter().map(|(i, _)| i.as_str()).collect();
        // A claimed account with this identity's pseudonym was a protected person's: the lost
        // state remembered that, so the records are stored protected again (sticky).
        let pseudonymous: HashSet<&str> = plan
            .accounts
            .iter()
            .filter(|c| {
                let req = crate::core::naming::NameRequest {
                    id: c.identity.clone(),
                    given_name: String::new(),
                    family_name: String::new(),
                    pseudonymous: true,
                };
                self.namer.still_fits(&c.username, &req)
            })
            .map(|c| c.identity.as_str())
            .collect();
        plan.records = changed_records(&resolution, &snapshot)
            .iter()
            .filter(|at| new_ids.contains(resolution.present[at.identity].id.as_str()))
            .map(|at| {
                let mut r = super::records::record_row(&resolution, at);
                r.protected |= pseudonymous.contains(r.identity_id.as_str());
                r
            })
            .collect();
        plan.primaries = changed_primaries(&resolution, &self.config.identity.authority.model(), today)
            .rows(&resolution)
            .filter(|(id, _)| new_ids.contains(id.as_str()))
            .collect();
        let claimed_names: HashSet<String> = chosen.values().map(|u| u.as_str().to_lowercase()).collect();
        let mut taken: BTreeSet<String> = BTreeSet::new();
        for accounts in observed.values() {
            for u in accounts.iter().filter_map(|a| a.username()) {
                let u = u.to_lowercase();
                if !claimed_names.contains(&u) && !allocated.contains(&u) {
                    taken.insert(u);
                }
            }
        }
        plan.taken_usernames = taken.len();
        plan.taken = taken.into_iter().collect();

        // Groups: those the current sources name, where enid puts groups, not owned yet.
        for (tid, t) in &self.targets {
            let Some(namer) = &t.groups else { continue };
            let mut members: Vec<(IdentityId, Option<String>)> = Vec::new();
            for a in snapshot.accounts.iter().filter(|a| a.target == tid) {
                members.extend(a.key().map(str::to_owned).map(|k| (a.identity_id.clone(), Some(k))));
            }
            for c in plan.accounts.iter().filter(|c| &c.target == tid) {
                members.push((c.identity.clone(), Some(c.key.clone())));
            }
            if t.caps.groups == Some(MemberForm::Username) {
                let names: HashMap<&str, String> = snapshot
                    .identities
                    .iter()
                    .filter_map(|(i, u)| Some((i.as_str(), u.as_ref()?.to_string())))
                    .chain(chosen.iter().map(|(i, u)| (i.as_str(), u.to_string())))
                    .collect();
                members = members
                    .into_iter()
                    .filter_map(|(i, _)| Some((i.clone(), Some(names.get(i.as_str())?.clone()))))
                    .collect();
            }
            let desired = namer
                .desired(&resolution, &self.config.identity.authority.model(), &members, today)
                .map_err(|message| EngineError::TargetConfig { id: tid.clone(), message })?;
            let wanted: HashMap<String, (&String, &crate::core::plan::DesiredGroup)> =
                desired.iter().map(|(n, g)| (t.caps.group_name(n), (n, g))).collect();
            // A group is enid's only if every member is an account enid owns or claims here: a
            // hand-made group with the same name has members of its own (a head teacher).
            let fold = |m: &str| crate::core::plan::fold_member(&t.caps, m);
            let ours: HashSet<String> = members.iter().filter_map(|(_, m)| Some(fold(m.as_deref()?))).collect();
            let owned: Vec<_> = state_groups.iter().filter(|g| &g.target == tid).collect();
            for g in observed_groups.get(tid).into_iter().flatten() {
                let is_owned = owned.iter().any(|o| {
                    o.name.eq_ignore_ascii_case(&g.name)
                        || o.anchor.is_some() && o.anchor == g.anchor
                        || o.key.as_deref().is_some_and(|k| t.caps.key(k) == t.caps.key(&g.key))
                });
                if is_owned {
                    continue;
                }
                let only_ours = g.members.iter().all(|m| ours.contains(&fold(m)));
                if let Some((name, want)) = wanted.get(&t.caps.group_name(&g.name)).filter(|_| only_ours) {
                    plan.groups.push(GroupClaim {
                        target: tid.clone(),
                        name: (*name).clone(),
                        key: g.key.clone(),
                        anchor: g.anchor.clone(),
                        school: want.school.clone(),
                    });
                }
            }
        }
        // Accounts made before enid that the correlation rules give persons: the same matches the
        // next plan claims, shown now.
        for (tid, accounts) in &observed {
            let (Some(t), Some(input)) = (self.targets.get(tid), inputs.get(tid)) else { continue };
            if input.is_empty() {
                continue;
            }
            let owned: Vec<_> = snapshot.accounts.iter().filter(|a| a.target == tid).collect();
            let claimed_keys: HashSet<String> =
                plan.accounts.iter().filter(|c| &c.target == tid).map(|c| t.caps.key(&c.key)).collect();
            let owning: HashSet<&str> = owned
                .iter()
                .map(|o| o.identity_id.as_str())
                .chain(plan.accounts.iter().filter(|c| &c.target == tid).map(|c| c.identity.as_str()))
                .collect();
            let eligible: Vec<usize> = crate::core::plan::not_owned(&owned, accounts, &t.caps)
                .into_iter()
                .filter(|&i| crate::core::plan::owner_values(&accounts[i], &t.caps.owner_attribute).next().is_none())
                .filter(|&i| !claimed_keys.contains(&t.caps.key(accounts[i].key())))
                .filter(|&i| !t.policy.exclude.matches(&accounts[i]))
                .collect();
            let people: Vec<(&Identity, Option<String>, crate::core::naming::NameRequest)> = resolution
                .present
                .iter()
                .filter(|i| !owning.contains(i.id.as_str()))
                .filter_map(|i| {
                    let name = snapshot
                        .identities
                        .get(&i.id)
                        .cloned()
                        .flatten()
                        .map(|s| s.to_string())
                        .or_else(|| chosen.get(&i.id).map(|u| u.to_string()));
                    Some((i, name, name_request(i)?))
                })
                .collect();
            let display: Vec<String> =
                people.iter().map(|(_, _, r)| format!("{} {}", r.given_name, r.family_name)).collect();
            let candidates: Vec<crate::core::plan::Candidate<'_>> = people
                .iter()
                .zip(&display)
                .map(|((i, name, r), d)| crate::core::plan::Candidate {
                    id: &i.id,
                    username: name.as_deref(),
                    display_name: d,
                    given_name: &r.given_name,
                    family_name: &r.family_name,
                    protected: i.is_protected(),
                })
                .collect();
            let m = crate::core::plan::correlate(input, &candidates, accounts, &eligible, &t.caps);
            for (id, (i, rule)) in m.matched {
                let protected = by_id.get(id.as_str()).is_some_and(|p| p.is_protected());
                let key = if protected { id.to_string() } else { accounts[i].key().to_owned() };
                plan.correlated.push(Correlated { target: tid.clone(), identity: id, key, rule });
            }
        }
        plan.correlated.sort_by(|a, b| (&a.target, &a.key).cmp(&(&b.target, &b.key)));
        plan.accounts.sort_by(|a, b| (&a.target, &a.username).cmp(&(&b.target, &b.username)));
        plan.groups.sort_by(|a, b| (&a.target, &a.name).cmp(&(&b.target, &b.name)));
        plan.unmatched.sort_by(|a, b| (&a.target, &a.key).cmp(&(&b.target, &b.key)));
        Ok(plan)
    }

    /// Checks that `identity` may take the entry `a` on target `tid`, and returns the claim.
    #[allow(clippy::too_many_arguments)]
    fn claim(
        &self,
        tid: &str,
        identity: &str,
        a: &ObservedAccount,
        by_hand: bool,
        snapshot: &crate::core::model::Snapshot,
        owns: &HashSet<&str>,
        allocated: &HashSet<String>,
        chosen: &mut Usernames,
    ) -> Result<AccountClaim, String> {
        let Some(username) = a.username() else {
            return Err("the entry has no username".into());
        };
        if owns.contains(identity) {
            return Err(format!("identity {identity} already owns another account on this target"));
        }
        let mut rename_from = None;
        match snapshot.identities.get(identity) {
            // A name the state gave an identity that owns no account anywhere (a restored older
            // backup, then a run that named the persons it did not know) was never used: the
            // entry carrying the identity's id is the proof, and its name wins.
            Some(Some(u))
                if !u.eq_ignore_ascii_case(username)
                    && !snapshot.accounts.iter().any(|a| a.identity_id == identity)
                    && !allocated.contains(username.to_lowercase().as_str()) =>
            {
                rename_from = Some(u.clone());
            }
            Some(Some(u)) if !u.eq_ignore_ascii_case(username) => {
                return Err(format!(
                    "identity {identity} has the username {u} in the state database, but the entry is {username}"
                ));
            }
            Some(Some(_)) => {}
            Some(None) => return Err(format!("identity {identity} has no username in the state database yet")),
            None if allocated.contains(username.to_lowercase().as_str()) => {
                return Err(format!("the username {username} was allocated to another identity"));
            }
            None => {}
        }
        if let Some(u) = chosen.get(identity)
            && !u.eq_ignore_ascii_case(username)
        {
            return Err(format!("identity {identity} is {u} on another target but {username} here"));
        }
        chosen.insert(identity.into(), username.into());
        Ok(AccountClaim {
            target: tid.to_string(),
            identity: identity.into(),
            username: username.to_string(),
            key: a.key().to_owned(),
            anchor: a.anchor().map(str::to_owned),
            disabled: a.disabled,
            by_hand,
            left: false,
            rename_from: rename_from.map(|s| s.to_string()),
            outside: false,
        })
    }

    fn claim_by_hand(
        &self,
        h: &ByHand,
        observed: &BTreeMap<String, Vec<ObservedAccount>>,
        resolution: &Resolution,
        snapshot: &crate::core::model::Snapshot,
        allocated: &HashSet<String>,
        chosen: &mut Usernames,
    ) -> Result<AccountClaim, EngineError> {
        let fail = EngineError::Adopt;
        let same =
            |tid: &str, key: &str| self.targets.get(tid).is_some_and(|t| t.caps.key(key) == t.caps.key(&h.entry));
        let hits: Vec<(&String, &ObservedAccount)> = observed
            .iter()
            .filter(|(t, _)| h.target.as_ref().is_none_or(|x| x == *t))
            .flat_map(|(t, accounts)| accounts.iter().map(move |a| (t, a)))
            .filter(|(t, a)| same(t, a.key()))
            .collect();
        let (tid, a) = match hits.as_slice() {
            [one] => *one,
            [] => {
                return Err(fail(format!(
                    "--entry {}: no such account on the targets",
                    connector_api::civic::mask_if_civic(&h.entry)
                )));
            }
            _ => {
                return Err(fail(format!(
                    "--entry {}: found on several targets; say which with --target",
                    connector_api::civic::mask_if_civic(&h.entry)
                )));
            }
        };
        let (source, pid) = h.person.split_once('/').ok_or_else(|| {
            fail(format!("--person {}: use SOURCE/PERSON_ID", connector_api::civic::mask_if_civic(&h.person)))
        })?;
        let ident = resolution
            .present
            .iter()
            .find(|i| i.records.iter().any(|r| r.source == source && r.record.person_id == pid))
            .ok_or_else(|| fail("--person: no record with that key in the current sources".into()))?;
        if let Some(why) = &a.foreign() {
            return Err(fail(format!(
                "--entry {}: the account {why}; enid never writes or claims such an account",
                connector_api::civic::mask_if_civic(&h.entry)
            )));
        }
        let owned: Vec<_> = snapshot.accounts.iter().filter(|o| o.target == tid).collect();
        if owned
            .iter()
            .any(|o| o.anchor().is_some() && o.anchor() == a.anchor() || o.key().is_some_and(|k| same(tid, k)))
        {
            return Err(fail(format!("--entry {}: the account is enid's already", h.entry)));
        }
        let owns: HashSet<&str> = owned.iter().map(|o| o.identity_id.as_str()).collect();
        self.claim(tid, &ident.id, a, true, snapshot, &owns, allocated, chosen)
            .map_err(|e| fail(format!("--entry {}: {e}", h.entry)))
    }

    /// Records that the entry `h.entry` is not the person's of `h.person` (an operator's
    /// decision): correlation never claims it for them, and a new person avoids its username.
    /// The entry must be in a target's scope and not enid's. Returns the target and identity.
    pub async fn refuse_claim(&self, h: &ByHand, now: DateTime<Utc>) -> Result<(String, IdentityId), EngineError> {
        let fail = EngineError::Adopt;
        let computed = self.compute(now, &Overrides::default()).await?;
        let snapshot = self.read_state().await?.0;
        let masked = connector_api::civic::mask_if_civic(&h.entry).into_owned();
        let hits: Vec<(&String, &ObservedAccount)> = computed
            .observed
            .iter()
            .filter(|(t, _)| h.target.as_ref().is_none_or(|x| x == *t))
            .flat_map(|(t, accounts)| accounts.iter().map(move |a| (t, a)))
            .filter(|(t, a)| self.targets.get(*t).is_some_and(|x| x.caps.key(a.key()) == x.caps.key(&h.entry)))
            .collect();
        let (tid, a) = match hits.as_slice() {
            [one] => *one,
            [] => return Err(fail(format!("--entry {masked}: no such account in the targets' scope"))),
            _ => return Err(fail(format!("--entry {masked}: found on several targets; say which with --target"))),
        };
        let owned: Vec<_> = snapshot.accounts.iter().filter(|o| o.target == tid).collect();
        if !crate::core::plan::not_owned(&owned, std::slice::from_ref(a), &self.targets[tid].caps).contains(&0) {
            return Err(fail(format!("--entry {masked}: the account is enid's; nothing to decide")));
        }
        let (source, pid) = h.person.split_once('/').ok_or_else(|| {
            fail(format!("--person {}: use SOURCE/PERSON_ID", connector_api::civic::mask_if_civic(&h.person)))
        })?;
        let ident = computed
            .resolution
            .present
            .iter()
            .find(|i| i.records.iter().any(|r| r.source == source && r.record.person_id == pid))
            .ok_or_else(|| fail("--person: no record with that key in the current sources".into()))?;
        let refusal = crate::store::ClaimRefusal {
            target: tid.clone(),
            identity: ident.id.clone(),
            key: a.key().to_owned(),
            anchor: a.anchor().map(str::to_owned),
        };
        self.store.refuse_claim(&refusal, now).await?;
        Ok((tid.clone(), ident.id.clone()))
    }

    /// Records what [`Engine::plan_adopt`] found, as a run of its own. Hold the run lock.
    pub async fn adopt(&self, plan: &AdoptPlan, now: DateTime<Utc>) -> Result<i64, EngineError> {
        let run = self.store.begin_run("adopt", None, now).await?;
        self.store.commit_identities(&plan.new_identities, &plan.records, &plan.primaries, now).await?;
        let mut renames: Vec<crate::core::plan::RenameInfo> = plan
            .accounts
            .iter()
            .filter_map(|c| {
                Some(crate::core::plan::RenameInfo {
                    identity: c.identity.clone(),
                    old: c.rename_from.clone()?,
                    new: c.username.clone(),
                })
            })
            .collect();
        renames.dedup_by(|a, b| a.identity == b.identity);
        self.store.commit_renames(&renames, now).await?;
        let rows: Vec<Adoption> = plan
            .accounts
            .iter()
            .map(|c| Adoption {
                target: c.target.clone(),
                identity: c.identity.clone(),
                key: c.key.clone(),
                anchor: c.anchor.clone(),
                // Who disabled the account of a person the sources still have is unknown after a
                // lost state (a lockout by IT?): recorded as active, so the next plan reports it
                // as disabled outside enid instead of enabling it. A leaver's stays disabled.
                disabled: c.disabled && c.left,
                by_username: false,
                status_only: false,
            })
            .collect();
        self.store.adopt(&rows, now).await?;
        let outside: Vec<(String, IdentityId)> =
            plan.accounts.iter().filter(|c| c.outside).map(|c| (c.target.clone(), c.identity.clone())).collect();
        self.store.record_outside_claims(&outside, now).await?;
        let groups: Vec<GroupRow> = plan
            .groups
            .iter()
            .map(|g| GroupRow {
                target: g.target.clone(),
                name: g.name.clone(),
                key: Some(g.key.clone()),
                anchor: g.anchor.clone(),
                school: g.school.clone(),
                pending: false,
            })
            .collect();
        self.store.record_groups(&groups, now).await?;
        self.store.reserve_usernames(&plan.taken, now).await?;
        let log: Vec<OpRecord> = plan
            .accounts
            .iter()
            .map(|c| OpRecord {
                target: c.target.clone(),
                identity_id: c.identity.clone(),
                username: c.username.clone(),
                school: String::new(),
                action: "adopt".into(),
                detail: if c.by_hand {
                    format!("{} claimed by an operator", c.key)
                } else if c.left {
                    format!("{} carries an enid id no source gives now: a leaver's disabled account", c.key)
                } else {
                    format!("{} carries this identity's enid id", c.key)
                },
                group: false,
                result: OpResult::Ok(Ownership::Unchanged),
            })
            .collect();
        self.store.record_ops(run, &log, now).await?;
        self.store.record_source_counts(run, &plan.counts, now).await?;
        self.store.record_source_columns(run, &plan.columns, now).await?;
        let message = format!(
            "{} accounts and {} groups claimed, {} usernames recorded as taken, {} entries not matched",
            plan.accounts.len(),
            plan.groups.len(),
            plan.taken.len(),
            plan.unmatched.len()
        );
        self.store.finish_run(run, "ok", &message, now).await?;
        Ok(run)
    }
}
