//! Retention: the sync log (runs, operation-log rows, saved plans) is kept for `[state]
//! keep_log_for` and then removed. A child's sync log is personal data, kept only as long as
//! someone may need to ask what happened. The CLI's `enid state prune` and the service's schedule
//! call the same [`Engine::prune`].

use super::{Engine, EngineError};
use crate::store::{Pruned, StateStore};
use chrono::{DateTime, Utc};

impl Engine {
    /// Removes what the log holds from before `now - keep_log_for`; returns what was removed and
    /// that moment. What the guards decide with (whether this state ever applied or was
    /// adopted) is kept apart from the runs and survives.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<(Pruned, DateTime<Utc>), EngineError> {
        let keep = self.config.state.keep_log_for.duration();
        // A duration too long for the calendar keeps everything: nothing is older than it.
        let before = chrono::Duration::from_std(keep)
            .ok()
            .and_then(|keep| now.checked_sub_signed(keep))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let pruned = self.store.prune(before).await?;
        tracing::info!(
            runs = pruned.runs,
            log_rows = pruned.log_rows,
            plans = pruned.plans,
            "removed the sync log older than keep_log_for"
        );
        Ok((pruned, before))
    }
}
