//! Connector state the engine keeps for a target's connector between runs (an Entra delta
//! link and what it read): handed back before the target is observed, and stored after an apply
//! that succeeded or a run with nothing to do, never after a dry run or a failed apply. A
//! connector never opens the state database itself.

use super::{Engine, EngineError};
use crate::store::StateStore;
use connector_api::Target;

/// The state key under which a target's connector state is kept (`Target::saved_state`).
pub(super) fn connector_state_key(target: &str) -> String {
    format!("connector_state:{target}")
}

impl Engine {
    /// Hands each target the state its connector kept after the last apply that succeeded
    /// (an Entra delta link), before it observes.
    pub(super) async fn resume_targets(&self) -> Result<(), EngineError> {
        for (id, t) in &self.targets {
            t.conn.resume(self.store.meta(&connector_state_key(id)).await?);
        }
        Ok(())
    }

    /// Keeps what each target's connector asks to keep for the next run: after an apply that
    /// succeeded (or a run with nothing to do) only, so that a failed or partial run reads
    /// again from where the last good one ended.
    pub(super) async fn keep_connector_states(&self) -> Result<(), EngineError> {
        for (id, t) in &self.targets {
            if let Some(s) = t.conn.saved_state() {
                self.store.set_meta(&connector_state_key(id), &s).await?;
            }
        }
        Ok(())
    }
}
