//! Names a target keeps unique in its whole server, beyond the scope enid observes (AD: a
//! group's `sAMAccountName` shares one namespace with every user and computer of the domain).
//! The names of the groups a plan would create are looked up there before the plan is shown: a
//! group whose name another entry holds is blocked with a reason, instead of a create that the
//! server refuses on every run while its members are never added.

use super::{Engine, EngineError};
use crate::core::plan::{self, TargetPlan};
use connector_api::{Lookup, ObservedAccount, Target, TargetOp};
use std::collections::{BTreeMap, HashSet};

impl Engine {
    /// Blocks the group creates of target `id` whose names are held elsewhere on a target that
    /// keeps names unique server-wide (`Capabilities::usernames_unique_server_wide`). Groups
    /// enid owns are never looked up (the plan creates only groups it does not find). A lookup
    /// that fails stops the run: a name that could not be looked up is not proven free.
    ///
    /// The reason names the holder by its key, except an account in scope carrying the enid id
    /// of a person with protected personal data (`protected`), which appears by enid id only.
    pub(super) async fn block_held_group_names(
        &self,
        id: &str,
        observed: &[ObservedAccount],
        protected: &HashSet<&str>,
        tp: &mut TargetPlan,
    ) -> Result<(), EngineError> {
        let Some(handle) = self.targets.get(id) else { return Ok(()) };
        let Some(namer) = handle.groups.as_ref().filter(|_| handle.caps.usernames_unique_server_wide) else {
            return Ok(());
        };
        let creates: BTreeMap<&str, &str> = tp
            .operations
            .rest()
            .iter()
            .filter_map(|o| match &o.op {
                TargetOp::CreateGroup { name, .. } => Some((name.as_str(), o.school.as_str())),
                _ => None,
            })
            .collect();
        if creates.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = creates.keys().map(|n| n.to_string()).collect();
        let found = handle
            .conn
            .find_outside_scope(Lookup::GroupName, &names)
            .await
            .map_err(|error| EngineError::Target { id: id.to_string(), error })?;
        let caps = &handle.caps;
        let owner = caps.owner_attribute.as_str();
        let holder_of = |key: &str| -> String {
            let marked = observed
                .iter()
                .filter(|a| caps.key(a.key()) == caps.key(key))
                .flat_map(|a| a.attrs.texts(owner))
                .find(|v| protected.contains(*v));
            match marked {
                Some(identity) => format!("the account of enid identity {identity}"),
                None => key.to_string(),
            }
        };
        let mut held = BTreeMap::new();
        for (key, name) in found {
            let Some(school) = creates.get(name.as_str()) else { continue };
            let template = namer.template_of(&name, school);
            held.entry(name).or_insert_with(|| {
                format!(
                    "the group's name is held by {} elsewhere on the target, which keeps the names of groups, \
                     users and computers unique in the whole domain; the group is not created and its members \
                     are not added: change [targets.{id}.policy.groups] {template} so that it gives another \
                     name, or rename that entry",
                    holder_of(&key)
                )
            });
        }
        plan::block_group_creates(id, &held, caps, tp);
        Ok(())
    }
}
