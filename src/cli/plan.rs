//! `enid check`, `enid plan` and `enid apply`. Plan and apply go through the engine's one run
//! API ([`Engine::run`]); this file only turns arguments into a [`RunRequest`], shows what the
//! engine found, and asks for confirmation on a terminal ([`Terminal`], the CLI's [`Frontend`]).

use super::progress::Display;
use super::render::{Listed, render_plan};
use super::{CliError, exiting, failures, io, warn_rejected};
use crate::clock;
use crate::engine::{
    ApplyRequest, ApprovalError, Approved, Computed, Confirm, Engine, Frontend, Outcome, Overrides, RunMode, RunReport,
    RunRequest,
};
use chrono::{DateTime, Utc};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// Connects to every source and target and says how each went.
pub(super) async fn check(engine: &Engine, out: &mut impl Write) -> Result<ExitCode, CliError> {
    let mut failed = Vec::new();
    for c in engine.check().await {
        match &c.result {
            Ok(msg) => writeln!(out, "ok      {}: {msg}", c.component),
            Err(e) => {
                failed.push(c.component.clone());
                writeln!(out, "FAILED  {}: {e}", c.component)
            }
        }
        .map_err(io)?;
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::Message(format!("check failed for {}", failed.join(", "))))
    }
}

/// The dry run: shows the plan (text or JSON), and saves it when asked.
pub(super) async fn plan(
    engine: &Engine,
    json: bool,
    save: bool,
    now: DateTime<Utc>,
    overrides: Overrides,
    listed: Listed,
    out: &mut (impl Write + Send),
) -> Result<ExitCode, CliError> {
    let display = Display::for_command(json);
    let mut request = RunRequest::new(RunMode::Plan { save, record: false }, now, overrides);
    request.hook = Display::hook(&display);
    let mut terminal = Terminal { out, json, yes: true, plan_id: None, error: None, listed, display };
    let report = engine.run(&request, &mut terminal).await;
    terminal.finish()?;
    let report = report?;
    let failed = failures(&report.computed);
    if save && !json {
        writeln!(
            terminal.out,
            "\nSaved. Apply exactly this plan with: enid apply --plan {}",
            report.computed.plan.plan_id
        )
        .map_err(io)?;
    }
    exiting(report.computed);
    failed.map(|()| ExitCode::SUCCESS)
}

/// Turns `plan`'s selection words into what its text lists; an unknown `--only` word, or a
/// civic number in any, is refused before anything is read.
pub(super) fn listed(
    only: &[String],
    school: Option<String>,
    target: Option<String>,
    person: Option<String>,
    all: bool,
) -> Result<Listed, CliError> {
    let only = only_words(only)?;
    // The page's and the API's words, read the same way: a civic number in one is refused (it
    // selects nothing, and would be said back with the selection).
    let selection =
        crate::engine::PlanSelection::from_words(None, school.as_deref(), target.as_deref(), person.as_deref())
            .map_err(CliError::Message)?;
    Ok(Listed { selection: crate::engine::PlanSelection { only, ..selection }, all })
}

/// The actions `--only` words name (`groups`: every group action).
fn only_words(words: &[String]) -> Result<Vec<crate::core::plan::Action>, CliError> {
    crate::engine::actions_of_words(words.iter().map(String::as_str))
        .map_err(|e| CliError::Message(format!("--only {e}")))
}

/// Turns `apply`'s arguments into the engine's approval request; refuses, before anything is
/// read, what cannot be right: an unknown `--only` word, or a `--now` on another day than today
/// without `--accept-date`.
pub(super) fn apply_request(
    plan: Option<String>,
    accept_threshold: bool,
    accept_protected: bool,
    only: &[String],
    school: Option<String>,
    accept_date: bool,
    now: Option<DateTime<Utc>>,
) -> Result<ApplyRequest, CliError> {
    // A rehearsal date belongs to `plan`: applied, a future date deletes accounts whose grace
    // period has not passed, for good.
    if let Some(t) = now
        && (t - clock::now(None)).num_hours().abs() >= 24
        && !accept_date
    {
        return Err(CliError::Message(format!(
            "apply --now {}: another day than today would act on the wrong day (a future date deletes accounts \
             before their time, a past one disables who had not started and dates disables back); rehearse it \
             with `enid plan --now` instead (or, on a copy of the state, --accept-date)",
            t.format("%Y-%m-%d")
        )));
    }
    let actions = only_words(only)?;
    Ok(ApplyRequest { plan_id: plan, accept_threshold, accept_protected, only: actions, school })
}

/// Computes, shows, approves, confirms and carries out.
pub(super) async fn apply(
    engine: &Engine,
    request: ApplyRequest,
    yes: bool,
    now: DateTime<Utc>,
    overrides: Overrides,
    out: &mut (impl Write + Send),
) -> Result<ExitCode, CliError> {
    let plan_id = request.plan_id.clone();
    let display = Display::for_command(false);
    let mut request = RunRequest::new(RunMode::Apply(request), now, overrides);
    request.hook = Display::hook(&display);
    let mut terminal = Terminal { out, json: false, yes, plan_id, error: None, listed: Listed::default(), display };
    let report = engine.run(&request, &mut terminal).await;
    terminal.finish()?;
    let RunReport { computed, outcome, .. } = report?;
    let failed = failures(&computed);
    let report = match outcome {
        Outcome::Applied(report) => report,
        Outcome::Held { hits } => {
            let hits = hits.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("; ");
            let id = computed.plan.plan_id.clone();
            exiting(computed);
            return Err(CliError::Engine(ApprovalError::Held { id, hits }.into()));
        }
        Outcome::Planned | Outcome::Unchanged | Outcome::Declined => {
            exiting(computed);
            return failed.map(|()| ExitCode::SUCCESS);
        }
    };
    exiting(computed);
    writeln!(
        terminal.out,
        "\nRun {}: {} done, {} failed, {} not sent.",
        report.run_id, report.ok, report.failed, report.skipped
    )
    .map_err(io)?;
    match report.first_error {
        Some(e) if report.failed > 0 || report.skipped > 0 => Err(CliError::Message(format!(
            "{} of {} operations failed or were not sent (first: {e}); see `enid log --run {}`; the next run \
             continues from where this one stopped",
            report.failed + report.skipped,
            report.ok + report.failed + report.skipped,
            report.run_id
        ))),
        _ => failed.map(|()| ExitCode::SUCCESS),
    }
}

/// The CLI as the engine's front end: prints the plan, and asks on a terminal before an apply.
struct Terminal<'a, W: Write> {
    out: &'a mut W,
    /// The plan as one JSON object instead of text.
    json: bool,
    /// Go ahead without asking (`--yes`; a plan never asks).
    yes: bool,
    /// The saved plan being applied: it was reviewed, so it is not asked about again.
    plan_id: Option<String>,
    /// What went wrong writing or reading, kept until the run returns.
    error: Option<CliError>,
    /// What of the plan the text lists (`--json` is always the whole plan).
    listed: Listed,
    /// The progress display on a terminal, cleared before anything is written.
    display: Option<std::sync::Arc<Display>>,
}

impl<W: Write> Terminal<'_, W> {
    /// The run is over: the progress display is cleared; the first error the front end met, if
    /// any.
    fn finish(&mut self) -> Result<(), CliError> {
        self.clear();
        self.error.take().map_or(Ok(()), Err)
    }

    /// Clears the progress display, before the plan, a question or the result is written.
    fn clear(&self) {
        if let Some(d) = &self.display {
            d.clear();
        }
    }

    fn write(&mut self, text: &str) -> Confirm {
        self.clear();
        match self.out.write_all(text.as_bytes()) {
            Ok(()) => Confirm::Go,
            Err(e) => {
                self.error.get_or_insert(io(e));
                Confirm::Stop
            }
        }
    }

    fn ask(&mut self, computed: &Computed) -> Result<Confirm, CliError> {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Message(
                "refusing to apply without confirmation: no terminal; pass --yes, or save the plan with `enid plan \
                 --save` and apply it with `enid apply --plan ID`"
                    .into(),
            ));
        }
        write!(self.out, "\nApply plan {}? [y/N] ", computed.plan.plan_id).map_err(io)?;
        self.out.flush().map_err(io)?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).map_err(io)?;
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(Confirm::Go);
        }
        writeln!(self.out, "Not applied.").map_err(io)?;
        Ok(Confirm::Stop)
    }
}

impl<W: Write + Send> Frontend for Terminal<'_, W> {
    fn computed(&mut self, computed: &Computed) -> Confirm {
        self.clear();
        warn_rejected(computed);
        if self.json {
            return match serde_json::to_string_pretty(&computed.shown_plan()) {
                Ok(text) => self.write(&format!("{text}\n")),
                Err(e) => {
                    self.error = Some(CliError::Message(e.to_string()));
                    Confirm::Stop
                }
            };
        }
        self.write(&render_plan(computed, &self.listed))
    }

    fn confirm(&mut self, computed: &Computed, approved: &Approved) -> Confirm {
        if let Some(before) = approved.selected_from {
            let n = computed.plan.operations.len();
            let text = format!("\nApplying {n} of the plan's {before} operations; the rest stays pending.\n");
            if self.write(&text) == Confirm::Stop {
                return Confirm::Stop;
            }
        }
        if approved.waiting_protected > 0 {
            let text = format!(
                "\n{} changes to persons with protected personal data wait for approval. The plan is saved: review \
                 it, then `enid apply --plan {} --accept-protected`.\n",
                approved.waiting_protected, computed.plan.plan_id
            );
            if self.write(&text) == Confirm::Stop {
                return Confirm::Stop;
            }
        }
        if self.plan_id.is_some() || self.yes || computed.plan.operations.is_empty() {
            return Confirm::Go;
        }
        match self.ask(computed) {
            Ok(c) => c,
            Err(e) => {
                self.error = Some(e);
                Confirm::Stop
            }
        }
    }
}
