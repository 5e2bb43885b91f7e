//! What a front end may show of the state: the runs, the sync log, a person looked up. Every
//! privacy rule is applied here, once: a person with protected personal data appears by enid id
//! only (no username, school or detail, in rows written before the protection too), a civic
//! number given as a key is echoed masked, and a viewer limited to some school units (a school
//! admin) sees only their rows and persons, another school's person being indistinguishable
//! from one who does not exist. The CLI and the HTTP API show what these return.

use super::{Engine, EngineError};
use crate::core::model::IdentityId;
use crate::store::{LogFilter, LogRow, RunRow, StateStore};
use connector_api::civic::mask_if_civic;
use std::collections::BTreeSet;

/// Who is asking: every school unit (an administrator, the CLI), or some (a school admin).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Viewer {
    /// `None`: every school unit.
    pub schools: Option<BTreeSet<String>>,
}

impl Viewer {
    /// Sees everything: an administrator, the CLI on the server.
    pub fn admin() -> Viewer {
        Viewer { schools: None }
    }

    /// Sees these school units only.
    pub fn of_schools(schools: impl IntoIterator<Item = String>) -> Viewer {
        Viewer { schools: Some(schools.into_iter().collect()) }
    }

    /// Whether a row of these school units (comma-separated) is this viewer's.
    pub fn sees(&self, schools: &str) -> bool {
        match &self.schools {
            None => true,
            Some(mine) => schools.split(',').any(|s| mine.contains(s)),
        }
    }
}

/// A run as a front end shows it: its row, with the counts read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunView {
    #[serde(flatten)]
    pub run: RunRow,
    /// The plan per action and what was sent (`None` for a run from before counts were kept).
    #[serde(rename = "counts")]
    pub tally: Option<super::RunCounts>,
}

/// Why a lookup found no one to show: the front end says so (HTTP 404, a CLI message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No person by that key the viewer may see (another school's person is no one).
    #[error("no person {0:?} in the state database")]
    NotFound(String),
    /// Several identities carry the key: ask by enid id.
    #[error("{0:?} matches {1} identities; use the enid id")]
    Ambiguous(String, usize),
    /// The person has protected personal data and was asked for by another key than the enid
    /// id: the answer would link that key to the enid id and the pseudonym. (The HTTP API says
    /// 404, as for no one.)
    #[error(
        "that person has protected personal data and is shown by enid id only: `enid explain ENID_ID` (plans list \
         the id)"
    )]
    ProtectedByIdOnly,
}

/// A run as the viewer is shown it: its counts read; a run's message (which can name another
/// school's persons or the configuration) to an admin only.
fn run_view(run: RunRow, viewer: &Viewer) -> RunView {
    let mut tally: Option<super::RunCounts> = run.counts.as_deref().and_then(|c| serde_json::from_str(c).ok());
    // A school admin reads the rejected rows of their units' persons only.
    if viewer.schools.is_some()
        && let Some(t) = &mut tally
    {
        t.rejected.retain(|r| r.school.as_deref().is_some_and(|s| viewer.sees(s)));
        t.rejected_total = t.rejected.len();
        t.conflicts.retain(|c| c.schools.iter().any(|s| viewer.sees(s)));
        t.renames_held = 0;
    }
    let message = if viewer.schools.is_some() { None } else { run.message };
    RunView { run: RunRow { counts: None, message, ..run }, tally }
}

/// What the newest full run left for someone to fix or decide, as a viewer may read it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NeedsAction {
    pub run_id: i64,
    /// The rows the sources rejected: the school information system fixes them.
    pub rejected: Vec<super::RejectedRow>,
    /// Rejected rows beyond `rejected` (an admin's: those the run did not keep).
    pub rejected_more: usize,
    /// Renames held for approval (an administrator's only).
    pub renames_held: usize,
    /// Open conflicts holding records of the viewer's units (an administrator: all).
    pub conflicts: Vec<super::ConflictNote>,
}

impl Engine {
    /// The newest `limit` runs, oldest first. A school admin sees the runs that touched their
    /// schools' persons (by the log), and never a run's free-text message beyond its status.
    pub async fn runs(&self, limit: i64, viewer: &Viewer) -> Result<Vec<RunView>, EngineError> {
        let rows = self.store.runs(limit).await?;
        let mut out = Vec::with_capacity(rows.len());
        for run in rows {
            if self.run_visible(&run, viewer).await? {
                let plan_id = run.plan_id.clone();
                let mut view = run_view(run, viewer);
                self.scope_counts(&mut view, plan_id.as_deref(), viewer).await?;
                out.push(view);
            }
        }
        Ok(out)
    }

    /// A school admin's counts of a run: their units' operations only (by the log; a planned
    /// or held run, which has none yet, by its saved plan), never the whole run's numbers.
    async fn scope_counts(
        &self,
        view: &mut RunView,
        plan_id: Option<&str>,
        viewer: &Viewer,
    ) -> Result<(), EngineError> {
        let (Some(mine), Some(t)) = (&viewer.schools, &mut view.tally) else { return Ok(()) };
        let mine: Vec<String> = mine.iter().cloned().collect();
        t.planned.clear();
        (t.ok, t.failed, t.not_sent) = (0, 0, 0);
        let tally = self.store.log_tally(view.run.id, &mine).await?;
        if tally.is_empty()
            && matches!(view.run.status.as_str(), "planned" | "held")
            && let Some(id) = plan_id
            && let Some(body) = self.store.load_plan(id).await?
        {
            let plan: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            for o in plan["operations"].as_array().into_iter().flatten() {
                if o["school"].as_str().is_some_and(|s| s.split(',').any(|x| !x.is_empty() && viewer.sees(x))) {
                    let action = crate::core::plan::Action::saved_as_str(o["action"].as_str().unwrap_or_default());
                    *t.planned.entry(action.to_string()).or_default() += 1;
                }
            }
            return Ok(());
        }
        for (action, result, n) in tally {
            let n = usize::try_from(n).unwrap_or(0);
            *t.planned.entry(action).or_default() += n;
            match result.as_str() {
                "ok" => t.ok += n,
                "failed" => t.failed += n,
                _ => t.not_sent += n,
            }
        }
        Ok(())
    }

    /// What the newest full run left to fix or decide (an incremental run reads only what
    /// changed): the rows the sources rejected, renames held for approval. `None` when it left
    /// nothing the viewer may read.
    pub async fn needs_action(&self, viewer: &Viewer) -> Result<Option<NeedsAction>, EngineError> {
        for run in self.store.runs(50).await?.into_iter().rev() {
            let Some(counts) = run.counts.as_deref() else { continue };
            let Ok(t) = serde_json::from_str::<super::RunCounts>(counts) else { continue };
            if t.incremental {
                continue;
            }
            let view = run_view(run, viewer);
            let Some(t) = view.tally else { return Ok(None) };
            if t.rejected.is_empty() && t.renames_held == 0 && t.conflicts.is_empty() {
                return Ok(None);
            }
            return Ok(Some(NeedsAction {
                run_id: view.run.id,
                rejected_more: t.rejected_total.saturating_sub(t.rejected.len()),
                rejected: t.rejected,
                renames_held: t.renames_held,
                conflicts: t.conflicts,
            }));
        }
        Ok(None)
    }

    /// Run `id`, if the viewer may see it (one run read, not every run).
    pub async fn run_by_id(&self, id: i64, viewer: &Viewer) -> Result<Option<RunView>, EngineError> {
        match self.store.run_by_id(id).await? {
            Some(run) if self.run_visible(&run, viewer).await? => {
                let plan_id = run.plan_id.clone();
                let mut view = run_view(run, viewer);
                self.scope_counts(&mut view, plan_id.as_deref(), viewer).await?;
                Ok(Some(view))
            }
            _ => Ok(None),
        }
    }

    /// Whether the viewer may see run `run`: an admin every run; a school admin one that touched
    /// one of their units (by the log), or a planned or held run whose saved plan holds an
    /// operation of one of them (it has no log rows yet, and is theirs to approve with
    /// `school_admins_approve`).
    pub(super) async fn run_visible(&self, run: &crate::store::RunRow, viewer: &Viewer) -> Result<bool, EngineError> {
        let Some(mine) = &viewer.schools else { return Ok(true) };
        let filter = LogFilter {
            run: Some(run.id),
            schools: Some(mine.iter().cloned().collect()),
            limit: 1,
            ..LogFilter::default()
        };
        if !self.store.log(&filter).await?.is_empty() {
            return Ok(true);
        }
        if !matches!(run.status.as_str(), "planned" | "held") {
            return Ok(false);
        }
        let Some(plan_id) = &run.plan_id else { return Ok(false) };
        let Some(body) = self.store.load_plan(plan_id).await? else { return Ok(false) };
        let plan: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        Ok(plan["operations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["school"].as_str().is_some_and(|s| s.split(',').any(|x| !x.is_empty() && viewer.sees(x)))))
    }

    /// Persons whose name or username holds `text`, among those the viewer may see, at most
    /// 50: never a protected person (found by enid id only), never by a civic number.
    pub async fn search_persons(
        &self,
        text: &str,
        viewer: &Viewer,
    ) -> Result<Vec<crate::store::PersonHit>, EngineError> {
        let text = text.trim().to_lowercase();
        if text.chars().count() < 2 || connector_api::civic::contains_civic(&text) {
            return Ok(Vec::new());
        }
        let schools: Option<Vec<String>> = viewer.schools.as_ref().map(|s| s.iter().cloned().collect());
        Ok(self.store.search_persons(&text, schools.as_deref(), 50).await?)
    }

    /// The run of the newest log row the viewer may see: the last run that did something.
    pub async fn last_run_with_operations(&self, viewer: &Viewer) -> Result<Option<i64>, EngineError> {
        let filter = LogFilter {
            schools: viewer.schools.as_ref().map(|s| s.iter().cloned().collect()),
            limit: 1,
            ..LogFilter::default()
        };
        Ok(self.store.log(&filter).await?.first().map(|r| r.run_id))
    }

    /// One identity by enid id, username (current or earlier), source key or external
    /// identifier, among the persons the viewer may see. The key is echoed masked when it has
    /// a civic number's shape.
    pub async fn find_person(&self, needle: &str, viewer: &Viewer) -> Result<IdentityId, EngineError> {
        let mut ids = self.store.find_identity(needle).await?;
        if viewer.schools.is_some() {
            let mut visible = Vec::new();
            for id in ids {
                if self.person_visible(&id, viewer).await? {
                    visible.push(id);
                }
            }
            ids = visible;
        }
        let shown = mask_if_civic(needle).into_owned();
        match ids.len() {
            0 => Err(LookupError::NotFound(shown).into()),
            1 => Ok(ids.remove(0)),
            n => Err(LookupError::Ambiguous(shown, n).into()),
        }
    }

    /// Whether the viewer may see the identity: one of its stored records is at one of their
    /// school units.
    pub(super) async fn person_visible(&self, id: &str, viewer: &Viewer) -> Result<bool, EngineError> {
        if viewer.schools.is_none() {
            return Ok(true);
        }
        let records = self.store.records_of(id).await?;
        Ok(records.iter().any(|r| r.school_unit.as_deref().is_some_and(|s| viewer.sees(s))))
    }

    /// The sync log, newest last, as the viewer may see it: their school units only, a
    /// protected person by enid id only. `person` is looked up as [`Engine::find_person`] does.
    pub async fn log(
        &self,
        mut filter: LogFilter,
        person: Option<&str>,
        viewer: &Viewer,
    ) -> Result<Vec<LogRow>, EngineError> {
        if let Some(p) = person {
            filter.identity = Some(self.find_person(p, viewer).await?.to_string());
        }
        if let Some(mine) = &viewer.schools {
            filter.schools = Some(mine.iter().cloned().collect());
        }
        let rows = self.store.log(&filter).await?;
        let protected = self.store.protected_identities().await?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                // A protected person by enid id only, in rows written before the protection too.
                if let Some(id) = r.identity_id.clone().filter(|i| protected.contains(i.as_str())) {
                    r.username = Some(id);
                    r.school = None;
                    r.detail = Some("protected person".into());
                }
                r
            })
            .collect())
    }
}
