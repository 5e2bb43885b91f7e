//! The one engine API every front end calls: a [`RunRequest`] goes in, a [`RunReport`] comes
//! out. The CLI, the daemon and the HTTP API differ only in how they show what the engine
//! found and whether they ask a person before an apply goes ahead ([`Frontend`]); every rule
//! (saved plans, thresholds, protected persons, partial selections, the run lock) is here.

use super::{ApplyReport, ApplyRequest, Approved, Computed, Engine, EngineError};
use crate::store::{StateStore, StoreError};
use chrono::{DateTime, Utc};

/// What a front end asks for.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub mode: RunMode,
    /// The time the run acts at (a parameter, so tests and rehearsals choose it).
    pub now: DateTime<Utc>,
    /// Guards an operator let through for this run, after review.
    pub overrides: Overrides,
}

/// Plan or apply.
#[derive(Debug, Clone)]
pub enum RunMode {
    /// Compute and show, change nothing (`enid plan`); `save` keeps the plan, as shown, for
    /// `apply --plan ID`.
    Plan { save: bool },
    /// Compute, approve under these rules, confirm, carry out (`enid apply`). Holds the state's
    /// run lock throughout.
    Apply(ApplyRequest),
}

/// Input guards an operator let through for one run, after review.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// A source shrank more than its `max_shrink_percent` since the last apply (`--accept-shrink`).
    pub shrink: bool,
    /// A target shows fewer of the accounts or groups enid owns than `missing_percent` allows
    /// (`--accept-missing`).
    pub missing: bool,
    /// A source lacks columns it had at the last apply (`--accept-schema-change`).
    pub schema_change: bool,
    /// A source reads another scope than at the last apply, and persons are out of it only
    /// because of that (`--accept-scope-change`).
    pub scope_change: bool,
    /// Every source is read in full, also one that could read only its changes (`--full`).
    pub full_read: bool,
}

/// A front end's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    Go,
    Stop,
}

/// How a front end takes part in a run: it sees the computed plan, and it is asked once the
/// approval rules have decided what an apply would carry out.
pub trait Frontend {
    /// The plan is computed (for an apply: a saved plan was checked first). Show it; `Stop`
    /// ends the run here (nothing is changed).
    fn computed(&mut self, computed: &Computed) -> Confirm;
    /// What the approval rules left of the plan, before anything is sent: `Go` carries it out.
    fn confirm(&mut self, computed: &Computed, approved: &Approved) -> Confirm;
}

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    /// Everything the dry run found (for an apply: the plan as approved).
    pub computed: Computed,
    /// What the approval rules decided, for an apply that got that far.
    pub approved: Option<Approved>,
    /// What was carried out, for an apply that went ahead.
    pub applied: Option<ApplyReport>,
    /// The plan was saved (`plan --save`, or an apply held by a threshold or protected persons).
    pub saved: bool,
}

impl Engine {
    /// Runs one request to its end.
    pub async fn run(&self, request: &RunRequest, frontend: &mut dyn Frontend) -> Result<RunReport, EngineError> {
        let now = request.now;
        match &request.mode {
            RunMode::Plan { save } => {
                let computed = self.compute(now, &request.overrides).await?;
                if *save {
                    self.save_shown(&computed, now).await?;
                }
                frontend.computed(&computed);
                Ok(RunReport { computed, approved: None, applied: None, saved: *save })
            }
            RunMode::Apply(approval) => {
                let _lock = self.lock("apply", now).await?;
                let mut computed = self.compute(now, &request.overrides).await?;
                if let Some(id) = &approval.plan_id {
                    // A stale saved plan is refused before anything is shown as if it would happen.
                    self.check_saved(&computed, id).await?;
                }
                let nothing = computed.plan.is_empty()
                    && computed.record_rows.is_empty()
                    && computed.primary_rows.is_empty()
                    && computed.gone_rows.is_empty()
                    && !computed.reads_changed;
                if frontend.computed(&computed) == Confirm::Stop || nothing {
                    return Ok(RunReport { computed, approved: None, applied: None, saved: false });
                }
                let approved = self.approve(&mut computed, approval, now).await?;
                let saved = approved.saved;
                if frontend.confirm(&computed, &approved) == Confirm::Stop {
                    return Ok(RunReport { computed, approved: Some(approved), applied: None, saved });
                }
                let applied = self.apply(&computed, "apply", now).await?;
                Ok(RunReport { computed, approved: Some(approved), applied: Some(applied), saved })
            }
        }
    }

    /// Saves the plan as it may be shown (protected persons by enid id only).
    pub(super) async fn save_shown(&self, computed: &Computed, now: DateTime<Utc>) -> Result<(), EngineError> {
        let body = serde_json::to_string(&computed.shown_plan()).map_err(|e| {
            EngineError::Store(StoreError {
                path: self.store.path().to_string(),
                message: format!("saving the plan: {e}"),
            })
        })?;
        self.store.save_plan(&computed.plan.plan_id, &body, now).await?;
        Ok(())
    }
}
