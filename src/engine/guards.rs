//! The guards that stop a run before planning when the inputs look broken on the target side:
//! a lost or replaced state (enid ids on a target that the state does not record, in scope or,
//! for this installation's ids, outside it), and a changed scope (owned accounts or groups the
//! target no longer shows). Also the lookup of owned accounts moved out of scope, which are
//! blocked instead of being created again.

use super::{Engine, EngineError, thousands};
use crate::core::identity::Resolution;
use crate::core::model::{IdentityId, OwnedAccount, Snapshot};
use crate::core::plan::{self, OwnedGroup};
use crate::store::StateStore;
use connector_api::{Lookup, ObservedAccount, ObservedGroup, Target};
use std::collections::{BTreeMap, HashMap, HashSet};

impl Engine {
    /// Stops when the state has never applied but a target holds accounts carrying enid ids
    /// that the state does not record as enid's: the state was lost or replaced, and planning
    /// would create everyone again. In scope, any such account stops the run (`StateLost`);
    /// outside the scope, an account carrying the id this installation gives a person of the
    /// sources who owns nothing yet (`ScopeAndStateLost`: the base DN or filter changed too; ids
    /// are keyed, so another installation's accounts never match). `enid adopt` claims them;
    /// after the first apply a stray entry with an enid id is only ever blocked.
    ///
    /// A state that `enid adopt` rebuilt is a recovered one: an entry adopt left unmatched that
    /// carries the id of an identity this run knows (its person's name changed meanwhile) is
    /// blocked by the planner for that person alone, and the rest applies. Only entries whose
    /// id no identity has still stop the run (`AdoptedUnknownIds`): nobody can be blocked for
    /// them, and their owner may be among the sources under another key (another id key, a
    /// re-keyed export), who would get a second account.
    pub(super) async fn guard_lost_state(
        &self,
        observed: &BTreeMap<String, Vec<ObservedAccount>>,
        snapshot: &Snapshot,
        resolution: &Resolution,
    ) -> Result<(), EngineError> {
        if self.store.has_applied().await? {
            return Ok(());
        }
        let adopted = self.store.has_adopted().await?;
        let known: HashSet<&str> = resolution
            .all()
            .map(|i| i.id.as_str())
            .chain(resolution.kept.iter().map(|k| k.identity_id.as_str()))
            .collect();
        for (id, accounts) in observed {
            let Some(t) = self.targets.get(id) else { continue };
            let owned: Vec<_> = snapshot.accounts.iter().filter(|a| a.target == id).collect();
            let unrecorded = plan::unrecorded_enid_entries(&owned, accounts, &t.caps);
            if !adopted && !unrecorded.is_empty() {
                let count = unrecorded.len();
                return Err(EngineError::StateLost { state: self.store.path().to_string(), target: id.clone(), count });
            }
            let unknown: Vec<_> = unrecorded
                .into_iter()
                .filter(|a| !plan::owner_values(a, &t.caps.owner_attribute).any(|v| known.contains(v)))
                .collect();
            if let Some(first) = unknown.first() {
                return Err(EngineError::AdoptedUnknownIds {
                    state: self.store.path().to_string(),
                    target: id.clone(),
                    count: unknown.len(),
                    example: connector_api::civic::mask_if_civic(first.key()).to_string(),
                });
            }
        }
        let owning: HashSet<&str> = snapshot.accounts.iter().map(|a| a.identity_id.as_str()).collect();
        let sample: Vec<String> = resolution
            .present
            .iter()
            .filter(|i| !owning.contains(i.id.as_str()))
            .take(50)
            .map(|i| i.id.to_string())
            .collect();
        for (id, t) in self.targets.iter().filter(|(_, t)| t.caps.finds_outside_scope) {
            let found = t
                .conn
                .find_outside_scope(Lookup::Owner, &sample)
                .await
                .map_err(|error| EngineError::Target { id: id.clone(), error })?;
            if let Some((key, _)) = found.first() {
                return Err(EngineError::ScopeAndStateLost {
                    state: self.store.path().to_string(),
                    target: id.clone(),
                    example: key.clone(),
                    scope: t.conn.scope(),
                });
            }
        }
        Ok(())
    }

    /// Stops when the state records accounts under a target id the config does not name and a
    /// configured target that the state records nothing on holds enid ids: a renamed target,
    /// whose every account would otherwise be blocked without a word of why.
    pub(super) fn guard_renamed_target(
        &self,
        observed: &BTreeMap<String, Vec<ObservedAccount>>,
        snapshot: &Snapshot,
    ) -> Result<(), EngineError> {
        let mut orphaned: BTreeMap<&str, usize> = BTreeMap::new();
        for a in snapshot.accounts.iter().filter(|a| !self.targets.contains_key(a.target.as_str())) {
            *orphaned.entry(a.target.as_str()).or_default() += 1;
        }
        let Some((old, recorded)) = orphaned.iter().max_by_key(|(_, n)| **n) else { return Ok(()) };
        for (target, n) in &orphaned {
            tracing::warn!(
                target_id = %target,
                accounts = n,
                "the state records accounts on a target the config no longer names; they are left as they are \
                 (if it was renamed: `enid state rename-target OLD NEW`)"
            );
        }
        for (id, accounts) in observed {
            let Some(t) = self.targets.get(id) else { continue };
            if snapshot.accounts.iter().any(|a| a.target == id) {
                continue;
            }
            let count = plan::unrecorded_enid_entries(&[], accounts, &t.caps).len();
            if count > 0 {
                return Err(EngineError::TargetRenamed {
                    old: old.to_string(),
                    new: id.clone(),
                    count,
                    recorded: *recorded,
                });
            }
        }
        Ok(())
    }

    /// Per target: the owned accounts it did not show, and how many it should have shown (for
    /// the target guard and the lookup out of scope, computed once).
    pub(super) fn missing_owned<'a>(
        &self,
        snapshot: &'a Snapshot,
        observed: &BTreeMap<String, Vec<ObservedAccount>>,
    ) -> BTreeMap<String, (Vec<&'a OwnedAccount>, usize)> {
        self.targets
            .iter()
            .map(|(id, t)| {
                let owned: Vec<&OwnedAccount> = snapshot.accounts.iter().filter(|a| a.target == id).collect();
                let obs = observed.get(id).map(Vec::as_slice).unwrap_or(&[]);
                (id.clone(), plan::missing_owned(&owned, obs, &t.caps))
            })
            .collect()
    }

    /// Owned accounts the target did not show in scope but holds elsewhere (found by anchor):
    /// target → identity → where the account is now.
    pub(super) async fn moved_out_of_scope(
        &self,
        missing_owned: &BTreeMap<String, (Vec<&OwnedAccount>, usize)>,
    ) -> Result<BTreeMap<String, HashMap<IdentityId, String>>, EngineError> {
        let mut out = BTreeMap::new();
        for (id, t) in self.targets.iter().filter(|(_, t)| t.caps.finds_outside_scope) {
            // Each missing account by its anchor, or (a row whose anchor was never read: a create
            // in bulk whose read failed) by the id the account carries.
            let (mut by_anchor, mut by_owner) = (HashMap::new(), HashMap::new());
            for a in missing_owned.get(id).into_iter().flat_map(|(m, _)| m.iter()) {
                match a.anchor() {
                    Some(anchor) => by_anchor.insert(anchor.to_owned(), a.identity_id.clone()),
                    None if a.key().is_some() => by_owner.insert(a.identity_id.to_string(), a.identity_id.clone()),
                    None => None,
                };
            }
            if by_anchor.is_empty() && by_owner.is_empty() {
                continue;
            }
            let mut here = HashMap::new();
            for (lookup, wanted) in [(Lookup::Anchor, by_anchor), (Lookup::Owner, by_owner)] {
                if wanted.is_empty() {
                    continue;
                }
                let values: Vec<String> = wanted.keys().cloned().collect();
                let found = t
                    .conn
                    .find_outside_scope(lookup, &values)
                    .await
                    .map_err(|error| EngineError::Target { id: id.clone(), error })?;
                for (key, value) in found {
                    if let Some(identity) = wanted.get(&value).or_else(|| wanted.get(&value.to_lowercase())) {
                        here.insert(identity.clone(), key);
                    }
                }
            }
            out.insert(id.clone(), here);
        }
        Ok(out)
    }

    /// The target guard: stops the run when a target shows too few of the accounts (active or
    /// disabled) or groups enid owns there. Accounts hidden by a changed base DN, filter or
    /// permission are not gone: planning on them would create everyone again and then lose
    /// track of the real accounts.
    pub(super) fn target_guard(
        &self,
        missing_owned: &BTreeMap<String, (Vec<&OwnedAccount>, usize)>,
        groups: &[OwnedGroup],
        observed_groups: &BTreeMap<String, Vec<ObservedGroup>>,
    ) -> Result<(), EngineError> {
        for (id, handle) in &self.targets {
            let t = &handle.policy.thresholds;
            let (missing, of) = missing_owned.get(id).map_or((0, 0), |(m, of)| (m.len(), *of));
            let over = |missing: usize, of: usize| {
                missing > crate::core::policy::Thresholds::limit(t.missing_percent, t.missing_min, of)
            };
            let advice = format!(
                "(more than missing_percent = {} and missing_min = {}); the base DN, filter or permissions changed, or were they moved \
                 out of it by hand? \
                 Hidden is not gone: planning now would create them again and lose track of the real ones. If they \
                 really were deleted, run again with --accept-missing",
                t.missing_percent, t.missing_min
            );
            if over(missing, of) {
                return Err(EngineError::TargetGuard {
                    id: id.clone(),
                    reason: format!(
                        "{} of {} owned accounts were not found under {} {advice}",
                        thousands(missing),
                        thousands(of),
                        handle.conn.scope()
                    ),
                });
            }
            if handle.groups.is_some() {
                let owned: Vec<_> = groups.iter().filter(|g| &g.target == id).collect();
                let obs = observed_groups.get(id).map(Vec::as_slice).unwrap_or(&[]);
                let (missing, of) = plan::missing_groups(&owned, obs, &handle.caps);
                if over(missing, of) {
                    return Err(EngineError::TargetGuard {
                        id: id.clone(),
                        reason: format!(
                            "{} of {} owned groups were not found under {} {advice}",
                            thousands(missing),
                            thousands(of),
                            handle.conn.group_scope()
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}
