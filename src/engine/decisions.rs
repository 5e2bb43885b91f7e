//! Operators' decisions between runs, for every front end: the conflict queue and a decision on
//! one conflict, the renames held for approval and the approval of one, and a target renamed in
//! the config. The rules (which
//! conflict, which identity a merge joins, which rename) are here; a front end only asks and
//! shows.

use super::{Engine, EngineError, Overrides, redact_conflicts};
use crate::core::identity::{Conflict, Decision};
use crate::core::plan::RenameInfo;
use crate::store::StateStore;
use chrono::{DateTime, Utc};
use connector_api::civic::mask_if_civic;

/// What an operator decides about one conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The records are one person; `into` names the identity to join when the number belongs
    /// to several.
    Merge { into: Option<String> },
    /// The records are different persons.
    Separate,
}

impl Engine {
    /// The open conflicts, as they may be shown (one involving a protected person without source
    /// keys or locations).
    pub async fn conflicts(&self, now: DateTime<Utc>) -> Result<Vec<Conflict>, EngineError> {
        let resolution = self.resolve_only(now).await?;
        let mut protected = self.store.protected_identities().await?;
        protected.extend(resolution.present.iter().filter(|i| i.is_protected()).map(|i| i.id.clone()));
        let mut conflicts = resolution.conflicts;
        redact_conflicts(&mut conflicts, &protected);
        Ok(conflicts)
    }

    /// Records a decision on the open conflict `id`, which later runs carry out, and who made
    /// it (`by`: a token's name, `local:USER`). Returns the conflict as it may be shown.
    pub async fn decide_conflict(
        &self,
        id: &str,
        choice: Choice,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Conflict, EngineError> {
        let resolution = self.resolve_only(now).await?;
        let conflict = resolution.conflicts.iter().find(|c| c.id == id).ok_or_else(|| {
            EngineError::Decision(format!(
                "no open conflict {}; `enid conflicts` lists the open ones",
                mask_if_civic(id)
            ))
        })?;
        let decision = match choice {
            Choice::Separate => Decision::Separate,
            Choice::Merge { into } => match (&into, conflict.candidates.len()) {
                (Some(target), _) if !conflict.candidates.iter().any(|c| c == target) => {
                    return Err(EngineError::Decision(format!(
                        "--into {} is not one of the identities of conflict {id}: {}",
                        mask_if_civic(target),
                        conflict.candidates.join(", ")
                    )));
                }
                (None, n) if n > 1 => {
                    return Err(EngineError::Decision(format!(
                        "conflict {id}: the number belongs to {n} identities; say which with --into ({})",
                        conflict.candidates.join(", ")
                    )));
                }
                _ => Decision::Merge { into: into.map(crate::core::model::IdentityId::from) },
            },
        };
        self.store.decide(id, &decision, &conflict.records, by, now).await?;
        let mut shown = vec![conflict.clone()];
        let mut protected = self.store.protected_identities().await?;
        protected.extend(resolution.present.iter().filter(|i| i.is_protected()).map(|i| i.id.clone()));
        redact_conflicts(&mut shown, &protected);
        Ok(shown.remove(0))
    }

    /// The renames waiting for approval (`on_name_change = "hold"`).
    pub async fn held_renames(
        &self,
        now: DateTime<Utc>,
        overrides: &Overrides,
    ) -> Result<Vec<RenameInfo>, EngineError> {
        Ok(self.compute(now, overrides).await?.plan.held_renames)
    }

    /// [`Engine::held_renames`] as `viewer` may see them: a school admin their units' persons
    /// only; a protected person's never (their old and new usernames would name them).
    pub async fn held_renames_for(
        &self,
        now: DateTime<Utc>,
        overrides: &Overrides,
        viewer: &super::Viewer,
    ) -> Result<Vec<RenameInfo>, EngineError> {
        let held = self.held_renames(now, overrides).await?;
        let protected = self.store.protected_identities().await?;
        let mut shown = Vec::new();
        for r in held {
            if protected.contains(&r.identity) {
                continue;
            }
            match self.find_person(&r.identity, viewer).await {
                Ok(_) => shown.push(r),
                Err(EngineError::Lookup(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(shown)
    }

    /// Approves the held rename of `person` (enid id or current username), recording who (`by`);
    /// the next apply renames the accounts.
    pub async fn approve_rename(
        &self,
        person: &str,
        by: &str,
        now: DateTime<Utc>,
        overrides: &Overrides,
    ) -> Result<RenameInfo, EngineError> {
        let held = self.held_renames(now, overrides).await?;
        self.approve_one_of(held, person, by, now).await
    }

    /// [`Engine::approve_rename`] as `viewer` may: only a rename [`Engine::held_renames_for`]
    /// shows them (their units' persons, never a protected person's, whose old and new usernames
    /// would name them); any other is no rename waiting. The rename is found among those, so a
    /// key that happens to name someone else never approves another's.
    pub async fn approve_rename_for(
        &self,
        person: &str,
        viewer: &super::Viewer,
        by: &str,
        now: DateTime<Utc>,
        overrides: &Overrides,
    ) -> Result<RenameInfo, EngineError> {
        let held = self.held_renames_for(now, overrides, viewer).await?;
        self.approve_one_of(held, person, by, now).await
    }

    /// Approves the rename of `person` among `held`.
    async fn approve_one_of(
        &self,
        held: Vec<RenameInfo>,
        person: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<RenameInfo, EngineError> {
        let r = held.into_iter().find(|r| r.identity == person || r.old == person).ok_or_else(|| {
            EngineError::Decision(format!(
                "no rename of {:?} is waiting; `enid renames` lists them",
                mask_if_civic(person)
            ))
        })?;
        self.store.approve_rename(&r.identity, &r.new, by, now).await?;
        Ok(r)
    }
}

impl Engine {
    /// Moves what the state records on target `old` to target `new` (a target renamed in the
    /// config), as a run of its own. `new` must be a target of the config with nothing recorded
    /// yet, and `old` one the config no longer names. Returns the accounts moved.
    pub async fn rename_target(&self, old: &str, new: &str, now: DateTime<Utc>) -> Result<u64, EngineError> {
        let fail = |m: String| EngineError::TargetConfig { id: new.to_string(), message: m };
        if !self.targets.contains_key(new) {
            return Err(fail(format!("the config names no target \"{new}\"; rename it there first")));
        }
        if self.targets.contains_key(old) {
            return Err(fail(format!(
                "the config still names target \"{old}\"; a rename moves records only from a name it no longer has"
            )));
        }
        let _lock = self.lock("state rename-target", now).await?;
        let snapshot = self.store.snapshot().await?;
        if snapshot.accounts.iter().any(|a| a.target == new) {
            return Err(fail(format!("the state records accounts on \"{new}\" already; nothing was moved")));
        }
        if !snapshot.accounts.iter().any(|a| a.target == old) {
            return Err(fail(format!("the state records no accounts on \"{old}\"; nothing to move")));
        }
        let run = self.store.begin_run("state rename-target", None, now).await?;
        let n = self.store.rename_target(old, new).await?;
        self.store
            .finish_run(run, "ok", &format!("moved {n} accounts from target \"{old}\" to \"{new}\""), now)
            .await?;
        Ok(n)
    }
}
