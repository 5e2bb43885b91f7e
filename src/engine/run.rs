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
    /// Told the phases, and called between operations of an apply: progress, and whether to
    /// stop (SIGTERM).
    pub hook: Option<std::sync::Arc<dyn RunHook>>,
}

impl RunRequest {
    /// A request without a hook.
    pub fn new(mode: RunMode, now: DateTime<Utc>, overrides: Overrides) -> RunRequest {
        RunRequest { mode, now, overrides, hook: None }
    }
}

/// How far an apply has come, as [`RunHook::progress`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Operations the plan carries out, over every target.
    pub total: usize,
    pub ok: usize,
    pub failed: usize,
    pub not_sent: usize,
    /// Since the apply began sending.
    pub elapsed: std::time::Duration,
}

/// Where a run is, as [`RunHook::phase`] sees it. A run goes through them in this order (a plan
/// stops after `Planning`; an apply that has nothing to do, is held or is declined too). The
/// targets are read beside the sources from the start: `ReadingTargets` is when the run has its
/// records and waits for the accounts. A service's incremental run that turns into a full one
/// starts again at `ReadingSources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading every source (and the state).
    ReadingSources,
    /// The sources are read (`records`: valid records over every source); waiting for the
    /// targets' accounts.
    ReadingTargets { records: usize },
    /// Everything is read (`accounts`: the accounts observed over every target); resolving,
    /// checking the guards and planning.
    Planning { accounts: usize },
    /// Carrying out `total` operations: [`RunHook::progress`] follows after each one.
    Applying { total: usize },
}

/// The one hook a run calls as it goes: the phases, and between an apply's operations its
/// progress and whether to stop. The CLI's progress display and the daemon's shutdown (and
/// later a leader's lease check) use the same one. Called from the run's task; it must return
/// at once. Every method does nothing by default.
pub trait RunHook: Send + Sync {
    /// The run has begun a phase.
    fn phase(&self, _phase: Phase) {}
    /// The counts so far, after each operation's result.
    fn progress(&self, _progress: &Progress) {}
    /// Whether the apply stops before its next operation, and why (`Some("stopped by
    /// SIGTERM")`): what was sent stays sent, the rest is logged as not sent, the run is
    /// recorded as interrupted, and the next run converges.
    fn stop(&self) -> Option<String> {
        None
    }
}

impl std::fmt::Debug for dyn RunHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunHook")
    }
}

/// Plan or apply.
#[derive(Debug, Clone)]
pub enum RunMode {
    /// Compute and show, change nothing (`enid plan`); `save` keeps the plan, as shown, for
    /// `apply --plan ID`; `record` leaves a row in `runs` (a daemon's plan-only run; `enid plan`
    /// leaves none).
    Plan { save: bool, record: bool },
    /// Compute, approve under these rules, confirm, carry out (`enid apply`). Holds the state's
    /// run lock throughout.
    Apply(ApplyRequest),
    /// A service's run (`enid run`): the operations operators approved (as operations, see
    /// `engine::approvals`) that this plan still does exactly so are carried out; with
    /// `within_thresholds`, the whole plan is when nothing holds it. Everything else is saved
    /// for approval (the run is `held`, or `planned`). Holds the run lock. With
    /// `changes_only`, an incremental run (`engine::incremental`) when nothing approved waits:
    /// only the persons whose records changed, or a full run where it cannot be sure.
    Service { within_thresholds: bool, changes_only: bool },
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
pub trait Frontend: Send {
    /// The plan is computed (for an apply: a saved plan was checked first). Show it; `Stop`
    /// ends the run here (nothing is changed).
    fn computed(&mut self, computed: &Computed) -> Confirm;
    /// What the approval rules left of the plan, before anything is sent: `Go` carries it out.
    fn confirm(&mut self, computed: &Computed, approved: &Approved) -> Confirm;
}

/// How a run ended. A held plan is an outcome, not an error: the front end says what to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A dry run: nothing was changed (`enid plan`, a daemon run that only plans).
    Planned,
    /// The targets already are what the sources say: nothing to do.
    Unchanged,
    /// Held for review, nothing was changed: thresholds the plan goes over (the plan is saved,
    /// so exactly it can be approved).
    Held { hits: Vec<crate::core::plan::ThresholdHit> },
    /// The front end said no (at the prompt), or had nothing to confirm with.
    Declined,
    /// Carried out (some operations may have failed: see the report).
    Applied(ApplyReport),
}

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    /// Everything the dry run found (for an apply: the plan as approved). After an apply
    /// (`Outcome::Applied`), the new identities have no records and `records_to_store` is
    /// empty: the apply moved them into its chunks and let them go once stored. Read the plan,
    /// the counts and the failures of an applied run, not its persons (`explain` computes a run
    /// of its own).
    pub computed: Computed,
    /// What the approval rules decided, for an apply that got that far.
    pub approved: Option<Approved>,
    /// How the run ended.
    pub outcome: Outcome,
    /// The plan was saved (`plan --save`, or an apply held by a threshold or protected persons).
    pub saved: bool,
    /// The run's row in the state (`runs`), for a run that left one.
    pub run_id: Option<i64>,
}

impl RunReport {
    /// What was carried out, for an apply that went ahead.
    pub fn applied(&self) -> Option<&ApplyReport> {
        match &self.outcome {
            Outcome::Applied(r) => Some(r),
            _ => None,
        }
    }
}

/// A run's counts as its row keeps them: the plan's operations per action (over every target),
/// what was sent, and a held run's threshold hits.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunCounts {
    pub planned: std::collections::BTreeMap<String, usize>,
    #[serde(default)]
    pub ok: usize,
    #[serde(default)]
    pub failed: usize,
    #[serde(default)]
    pub not_sent: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
    /// An incremental run: only the persons whose records changed were planned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
    /// The rows the sources rejected (the first [`REJECTED_KEPT`]), each for whoever fixes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedRow>,
    /// How many rows the sources rejected in all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejected_total: usize,
    /// Renames held for approval (`on_name_change = "hold"`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub renames_held: usize,
    /// Conflicts open at this run: records held without an account until IT decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<ConflictNote>,
}

/// An open conflict as a run's counts keep it, for whoever must know that a person waits: the
/// conflict's id, how many records it holds, and their school units. No name, key or number.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConflictNote {
    pub id: String,
    pub held: usize,
    pub schools: Vec<String>,
}

/// The open conflicts of a computed run, each with the school units of the records it holds.
fn conflict_notes(computed: &Computed) -> Vec<ConflictNote> {
    let r = &computed.resolution;
    let units: std::collections::HashMap<String, Vec<&str>> = r
        .held_records
        .iter()
        .map(|s| {
            let label = crate::core::identity::record_label(&s.source, &s.record.person_id);
            (label, s.record.affiliations.iter().filter_map(|a| a.school_unit.as_deref()).collect())
        })
        .collect();
    r.conflicts
        .iter()
        .map(|c| {
            let schools: std::collections::BTreeSet<&str> =
                c.held.iter().filter_map(|h| units.get(h)).flatten().copied().collect();
            ConflictNote {
                id: c.id.clone(),
                held: c.held.len(),
                schools: schools.into_iter().map(String::from).collect(),
            }
        })
        .collect()
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// How many rejected rows a run's counts keep (the rest are counted).
pub const REJECTED_KEPT: usize = 200;

/// A source row rejected in a run, as a school admin reads it: where it is, what is wrong, and
/// the school unit the state has for its person (none for a person not seen before, whose row
/// only IT sees). A protected person's row says only where it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RejectedRow {
    pub source: String,
    /// `file:line` or the entity's id.
    pub location: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school: Option<String>,
}

impl RunCounts {
    /// The plan's operations per action.
    pub fn of(computed: &Computed) -> RunCounts {
        let mut planned = std::collections::BTreeMap::new();
        for op in computed.plan.operations.heads() {
            *planned.entry(op.action.as_str().to_string()).or_insert(0) += 1;
        }
        RunCounts {
            planned,
            incremental: computed.incremental,
            rejected: computed.rejected_rows.iter().take(REJECTED_KEPT).cloned().collect(),
            rejected_total: computed.rejected_rows.len(),
            renames_held: computed.plan.held_renames.len(),
            conflicts: conflict_notes(computed),
            ..RunCounts::default()
        }
    }

    fn json(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
}

impl Engine {
    /// Runs one request to its end. An apply leaves a row in `runs` however it ends (applied,
    /// held, stopped by a guard or an error, declined, nothing to do); a plan leaves one only
    /// when asked (`record`: a daemon's plan-only run), so `enid plan` stays read-only.
    pub async fn run(&self, request: &RunRequest, frontend: &mut dyn Frontend) -> Result<RunReport, EngineError> {
        let now = request.now;
        match &request.mode {
            RunMode::Plan { save, record } => {
                let computed = match self.compute_with(now, &request.overrides, request.hook.as_deref()).await {
                    Ok(c) => c,
                    Err(e) => {
                        if *record {
                            self.note_run("plan", None, "stopped", &connector_api::one_line(&e), None, now).await;
                        }
                        return Err(e);
                    }
                };
                if *save {
                    self.save_shown(&computed, now).await?;
                }
                let run_id = if *record {
                    let counts = RunCounts::of(&computed);
                    let message = format!("{} operations planned", computed.plan.operations.len());
                    let plan_id = Some(computed.plan.plan_id.as_str());
                    self.note_run("plan", plan_id, "planned", &message, counts.json(), now).await
                } else {
                    None
                };
                frontend.computed(&computed);
                Ok(RunReport { computed, approved: None, outcome: Outcome::Planned, saved: *save, run_id })
            }
            RunMode::Service { within_thresholds, changes_only } => {
                self.service_run(request, *within_thresholds, *changes_only, frontend).await
            }
            RunMode::Apply(approval) => {
                let _lock = self.lock("apply", now).await?;
                let stopped = |e: &EngineError| connector_api::one_line(e);
                let mut computed = match self.compute_with(now, &request.overrides, request.hook.as_deref()).await {
                    Ok(c) => c,
                    Err(e) => {
                        self.note_run("apply", approval.plan_id.as_deref(), "stopped", &stopped(&e), None, now).await;
                        return Err(e);
                    }
                };
                if let Some(id) = &approval.plan_id {
                    // A stale saved plan is refused before anything is shown as if it would happen.
                    if let Err(e) = self.check_saved(&computed, id).await {
                        self.note_run("apply", Some(id), "stopped", &stopped(&e), None, now).await;
                        return Err(e);
                    }
                }
                let nothing = computed.nothing_to_do();
                let plan_id = Some(computed.plan.plan_id.clone());
                let counts = RunCounts::of(&computed);
                if frontend.computed(&computed) == Confirm::Stop || nothing {
                    if nothing {
                        // The targets are as the sources say: what was read is where the next
                        // run's reads begin, as after an apply.
                        self.keep_connector_states().await?;
                    }
                    let (status, message, outcome) = if nothing {
                        ("unchanged", "nothing to do".to_string(), Outcome::Unchanged)
                    } else {
                        ("declined", "not confirmed; nothing was changed".to_string(), Outcome::Declined)
                    };
                    let run_id = self.note_run("apply", plan_id.as_deref(), status, &message, counts.json(), now).await;
                    return Ok(RunReport { computed, approved: None, outcome, saved: false, run_id });
                }
                let approved = match self.approve(&mut computed, approval, now).await {
                    Ok(a) => a,
                    Err(e) => {
                        self.note_run("apply", plan_id.as_deref(), "stopped", &stopped(&e), counts.json(), now).await;
                        return Err(e);
                    }
                };
                let saved = approved.saved;
                if !approved.held.is_empty() {
                    let hits = approved.held.clone();
                    let counts = RunCounts { held: hits.iter().map(|h| h.to_string()).collect(), ..counts };
                    let message = format!("held for review: {}", counts.held.join("; "));
                    let run_id = self.note_run("apply", plan_id.as_deref(), "held", &message, counts.json(), now).await;
                    let outcome = Outcome::Held { hits };
                    return Ok(RunReport { computed, approved: Some(approved), outcome, saved, run_id });
                }
                if frontend.confirm(&computed, &approved) == Confirm::Stop {
                    let message = "not confirmed; nothing was changed";
                    let run_id =
                        self.note_run("apply", plan_id.as_deref(), "declined", message, counts.json(), now).await;
                    return Ok(RunReport {
                        computed,
                        approved: Some(approved),
                        outcome: Outcome::Declined,
                        saved,
                        run_id,
                    });
                }
                let applied = self.apply_with(&mut computed, "apply", now, request.hook.as_deref()).await?;
                let run_id = Some(applied.run_id);
                Ok(RunReport { computed, approved: Some(approved), outcome: Outcome::Applied(applied), saved, run_id })
            }
        }
    }

    /// A service's run: approved operations, or the whole plan within thresholds; the rest
    /// saved for approval.
    async fn service_run(
        &self,
        request: &RunRequest,
        within_thresholds: bool,
        changes_only: bool,
        frontend: &mut dyn Frontend,
    ) -> Result<RunReport, EngineError> {
        let lock = |m: &'_ std::sync::Mutex<Option<u64>>| *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *self.narrow_signature.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let report = self.service_run_once(request, within_thresholds, changes_only, frontend).await;
        // A full run in place of an incremental one that left the changes waiting (held, or
        // planned for approval): the next ticks that find the same changes do nothing, instead
        // of weighing everything again every second until someone approves.
        let settled = match &report {
            Ok(r) if changes_only && !r.computed.incremental && !matches!(r.outcome, Outcome::Applied(_)) => {
                lock(&self.narrow_signature)
            }
            Ok(r) if r.computed.incremental && !matches!(r.outcome, Outcome::Applied(_)) => {
                lock(&self.settled_signature)
            }
            _ => None,
        };
        *self.settled_signature.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = settled;
        report
    }

    async fn service_run_once(
        &self,
        request: &RunRequest,
        within_thresholds: bool,
        changes_only: bool,
        frontend: &mut dyn Frontend,
    ) -> Result<RunReport, EngineError> {
        let now = request.now;
        let _lock = self.lock("run", now).await?;
        let approvals = self.store.live_approvals(now).await?;
        // Guards an operator accepted for the next run.
        let mut overrides = request.overrides;
        let accepted: Vec<&crate::store::ApprovalRow> = approvals.iter().filter(|a| a.accept.is_some()).collect();
        for a in &accepted {
            match a.accept.as_deref() {
                Some("shrink") => overrides.shrink = true,
                Some("missing") => overrides.missing = true,
                Some("schema_change") => overrides.schema_change = true,
                Some("scope_change") => overrides.scope_change = true,
                _ => {}
            }
        }
        // Approved operations and accepted guards are a full run's: the approved persons are
        // not the changed ones.
        let narrow = changes_only && approvals.is_empty();
        let hook = request.hook.as_deref();
        let computed = if narrow {
            match self.compute_changes(now, &overrides, hook).await {
                Ok(super::Narrowed::Yes(c)) => Ok(c),
                Ok(super::Narrowed::Full(why)) => {
                    tracing::info!(why = %why, "a full run instead of an incremental one");
                    self.compute_with(now, &overrides, hook).await
                }
                Err(e) => Err(e),
            }
        } else {
            self.compute_with(now, &overrides, hook).await
        };
        let mut computed = match computed {
            Ok(c) => c,
            Err(e) => {
                // The same stop again (a guard that holds until someone acts, at every
                // `incremental = "1s"` tick): the row already there says it.
                let message = connector_api::one_line(&e);
                let again = self.store.runs(1).await.ok().and_then(|mut r| r.pop()).is_some_and(|r| {
                    r.command == "run" && r.status == "stopped" && r.message.as_deref() == Some(&message)
                });
                if !again {
                    self.note_run("run", None, "stopped", &message, None, now).await;
                }
                return Err(e);
            }
        };
        let nothing = computed.nothing_to_do();
        let plan_id = computed.plan.plan_id.clone();
        let counts = RunCounts::of(&computed);
        frontend.computed(&computed);
        if nothing {
            if !computed.incremental {
                self.keep_connector_states().await?;
            }
            // An incremental run that found nothing (an `incremental = "1s"` tick) leaves no row:
            // a row a second would bury the runs that did something. A full one does.
            let run_id = if computed.incremental {
                None
            } else {
                self.note_run("run", Some(&plan_id), "unchanged", "nothing to do", counts.json(), now).await
            };
            return Ok(RunReport { computed, approved: None, outcome: Outcome::Unchanged, saved: false, run_id });
        }
        // Thresholds hold the whole plan. Changes to protected persons wait for approval on
        // their own (saved with the plan, `enid approve RUN --accept-protected`), as with `enid
        // apply`: one protected pupil waiting never holds everyone else's accounts back.
        let holds = !computed.plan.held.is_empty();
        let approved_fps: std::collections::HashMap<&str, i64> =
            approvals.iter().filter_map(|a| Some((a.fingerprint.as_deref()?, a.id))).collect();
        // The whole plan goes ahead within thresholds; and one without operations (records,
        // a moved watermark to keep) in either mode.
        let whole = !holds && (within_thresholds || computed.plan.operations.is_empty());
        let mut used: Vec<i64> = Vec::new();
        if !whole {
            // What is not carried out now is saved, so it can be approved.
            self.save_shown(&computed, now).await?;
            let mut matched = Vec::new();
            for op in &computed.plan.operations {
                if let Some(id) = approved_fps.get(op.fingerprint.as_str()) {
                    matched.push(op.fingerprint.clone());
                    used.push(*id);
                }
            }
            if matched.is_empty() {
                let (status, outcome) = if holds {
                    ("held", Outcome::Held { hits: computed.plan.held.clone() })
                } else {
                    ("planned", Outcome::Planned)
                };
                let counts = RunCounts { held: computed.plan.held.iter().map(|h| h.to_string()).collect(), ..counts };
                let message = if holds {
                    format!("held for review: {}", counts.held.join("; "))
                } else {
                    format!("{} operations planned, waiting for approval", computed.plan.operations.len())
                };
                // Exactly the plan the last run saved (an `incremental = "1s"` tick finding the
                // same changes waiting, or a full run the same plan): no second row; the saved
                // one is still the one to approve.
                if let Some(prev) = self.store.runs(1).await?.pop()
                    && prev.command == "run"
                    && prev.status == status
                    && prev.plan_id.as_deref() == Some(plan_id.as_str())
                {
                    return Ok(RunReport { computed, approved: None, outcome, saved: true, run_id: Some(prev.id) });
                }
                let run_id = self.note_run("run", Some(&plan_id), status, &message, counts.json(), now).await;
                return Ok(RunReport { computed, approved: None, outcome, saved: true, run_id });
            }
            let matched: std::collections::HashSet<connector_api::value::Str> = matched.into_iter().collect();
            super::approve::keep_only(&mut computed.plan, |o| matched.contains(o.fingerprint.as_str()));
            // Approved as what they do: the thresholds and the protected persons' approval
            // were the operator's review.
            computed.plan.held.clear();
            computed.plan.unprotect.clear();
        }
        if whole {
            // Changes to protected persons that an operator approved go ahead with the rest.
            computed.plan.operations.edit_where(
                |o| o.needs_approval,
                |op| {
                    if let Some(id) = approved_fps.get(op.fingerprint.as_str()) {
                        op.needs_approval = false;
                        used.push(*id);
                    }
                },
            );
        }
        let approval = ApplyRequest { accept_threshold: !whole, accept_protected: !whole, ..ApplyRequest::default() };
        let approved = self.approve(&mut computed, &approval, now).await?;
        if !approved.held.is_empty() {
            let counts = RunCounts { held: approved.held.iter().map(|h| h.to_string()).collect(), ..counts };
            let message = format!("held for review: {}", counts.held.join("; "));
            let run_id = self.note_run("run", Some(&plan_id), "held", &message, counts.json(), now).await;
            let outcome = Outcome::Held { hits: approved.held.clone() };
            return Ok(RunReport { computed, approved: Some(approved), outcome, saved: true, run_id });
        }
        let applied = self.apply_with(&mut computed, "run", now, request.hook.as_deref()).await?;
        used.extend(accepted.iter().map(|a| a.id));
        self.store.use_approvals(&used, applied.run_id).await?;
        let run_id = Some(applied.run_id);
        Ok(RunReport { computed, approved: Some(approved), outcome: Outcome::Applied(applied), saved: !whole, run_id })
    }

    /// Leaves a row for a run that ended as it began. A state that cannot take the row does not
    /// turn the run's own outcome into another error: it is logged.
    async fn note_run(
        &self,
        command: &str,
        plan_id: Option<&str>,
        status: &str,
        message: &str,
        counts: Option<String>,
        now: DateTime<Utc>,
    ) -> Option<i64> {
        match self.store.record_run(command, plan_id, status, message, counts.as_deref(), now).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(error = %e, status, "the run's row could not be recorded");
                None
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

/// `Engine::run` can be spawned on tokio and awaited in an HTTP handler: its future is `Send`
/// (checked when this compiles).
#[allow(dead_code)]
fn run_is_send(engine: &'static Engine, request: &'static RunRequest, frontend: &'static mut dyn Frontend) {
    fn spawnable<T: Send + 'static>(_: T) {}
    spawnable(engine.run(request, frontend));
}
