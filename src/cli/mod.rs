//! The command line: argument parsing, the commands, and how their results are shown.
//!
//! Arguments go through clap before anything touches the system. Every output path shows civic
//! numbers masked; `main` alone turns errors into exit codes.

use crate::clock;
use crate::config::{Config, ConfigError};
use crate::engine::{Computed, Engine, EngineError, find_in_run, identity_in_run};
use crate::core::identity::{ConflictKind, Decision};
use crate::core::plan::Action;
use crate::store::{LogFilter, StateStore, StoreError};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use connector_api::civic::mask_if_civic;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// enid: one identity per person, one account per system.
#[derive(Debug, Parser)]
#[command(name = "enid", version, about)]
pub struct Cli {
    /// Config file [default: $ENID_CONFIG, else /etc/enid/enid.toml]
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Go ahead although a source shrank more than its max_shrink_percent since the last apply
    #[arg(long, global = true)]
    pub accept_shrink: bool,
    /// Go ahead although a target shows fewer of the accounts or groups enid owns than its
    /// thresholds' missing_percent allows (they really were deleted)
    #[arg(long, global = true)]
    pub accept_missing: bool,
    /// Go ahead although a source lacks columns it had at the last apply (after review)
    #[arg(long, global = true)]
    pub accept_schema_change: bool,
    /// More log output (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and connect to every source and target
    Check,
    /// Show what the next apply would do (a dry run: nothing is changed)
    Plan {
        /// One JSON object instead of text
        #[arg(long)]
        json: bool,
        /// Save the plan, to apply it later with `enid apply --plan ID`
        #[arg(long)]
        save: bool,
        #[command(flatten)]
        time: TimeArg,
    },
    /// Compute the plan, show it, and carry it out
    Apply {
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        /// Apply a saved plan, only if the inputs still give exactly that plan
        #[arg(long, value_name = "ID")]
        plan: Option<String>,
        /// Apply a saved plan that goes over a threshold, after review
        #[arg(long, requires = "plan")]
        accept_threshold: bool,
        /// Apply only these actions of a saved plan (comma-separated: create, rename, update,
        /// enable, disable, delete, groups); the rest stays pending
        #[arg(long, requires = "plan", value_delimiter = ',', value_name = "ACTIONS")]
        only: Vec<String>,
        /// Also apply the changes to persons with protected personal data, which otherwise wait
        #[arg(long, requires = "plan")]
        accept_protected: bool,
        /// Apply only the operations of this school unit of a saved plan
        #[arg(long, requires = "plan", value_name = "UNIT")]
        school: Option<String>,
        /// Let --now be another day than today (a test, or a rehearsal on a copy of the state):
        /// a future date deletes now what is due by then, a past one disables who had not
        /// started then and dates disables back
        #[arg(long)]
        accept_date: bool,
        #[command(flatten)]
        time: TimeArg,
    },
    /// Show the sync log
    Log {
        /// Only this run
        #[arg(long)]
        run: Option<i64>,
        /// Only this person (enid id, username or source person_id)
        #[arg(long)]
        person: Option<String>,
        /// Only this school unit
        #[arg(long)]
        school: Option<String>,
        /// At most this many rows (the newest)
        #[arg(long, default_value_t = 200)]
        limit: i64,
        /// JSON lines instead of text
        #[arg(long)]
        json: bool,
    },
    /// List records held because they might be the same person (or decide with `resolve`)
    Conflicts {
        #[command(subcommand)]
        action: Option<ConflictAction>,
        /// JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// List username changes held for approval (naming.on_name_change = "hold"), or approve one
    Renames {
        #[command(subcommand)]
        action: Option<RenameAction>,
    },
    /// Claim the accounts and groups on the targets that carry enid ids, when the state database
    /// no longer records them (restored from nothing, emptied or replaced). Changes only the state
    Adopt {
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        /// Claim this one entry (its key, an LDAP DN) by hand, for the person of --person
        #[arg(long, value_name = "KEY", requires = "person")]
        entry: Option<String>,
        /// With --entry: the record (SOURCE/PERSON_ID) whose identity the entry belongs to
        #[arg(long, value_name = "SOURCE/PERSON_ID", requires = "entry")]
        person: Option<String>,
        /// With --entry: the target the entry is on, when several have it
        #[arg(long, value_name = "ID", requires = "entry")]
        target: Option<String>,
        /// One JSON object instead of text (shows what would be claimed; claims nothing without --yes)
        #[arg(long)]
        json: bool,
    },
    /// The state database: `enid state backup PATH` writes a consistent copy, safe while enid runs
    State {
        #[command(subcommand)]
        action: StateAction,
    },
    /// Show a person's identity, records, accounts and what the next run will do
    Explain {
        /// enid id, username, or a source's person_id
        person: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        time: TimeArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConflictAction {
    /// Record a decision; the next apply carries it out
    Resolve {
        /// The conflict id from `enid conflicts`
        id: String,
        /// The records are one person
        #[arg(long, conflicts_with = "separate", required_unless_present = "separate")]
        merge: bool,
        /// The records are different persons
        #[arg(long)]
        separate: bool,
        /// With --merge, when the number belongs to several identities: the one to join
        #[arg(long, requires = "merge", value_name = "IDENTITY")]
        into: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Write a consistent copy of the state database to PATH (a new file, owner-only)
    Backup {
        /// Where to write the copy; must not exist yet
        path: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum RenameAction {
    /// Approve a held rename; the next apply renames the person's accounts
    Approve {
        /// enid id or current username
        person: String,
    },
}

#[derive(Debug, Args)]
pub struct TimeArg {
    /// Plan as if it were this date or time (YYYY-MM-DD or RFC 3339)
    #[arg(long, value_parser = clock::parse_now)]
    pub now: Option<DateTime<Utc>>,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Message(String),
    /// The reader of our output went away (`enid plan | head`): not an error worth a message.
    #[error("output closed")]
    BrokenPipe,
}

pub fn parse() -> Cli {
    Cli::parse()
}

/// Logs go to stderr; `ENID_LOG` (tracing filter syntax) overrides `-v`.
pub fn init_tracing(cli: &Cli) {
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENID_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Runs a command.
pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let path = Config::resolve_path(cli.config.as_deref(), std::env::var("ENID_CONFIG").ok());
    let config = Config::load(&path)?;
    let (accept_shrink, accept_missing, accept_schema_change) =
        (cli.accept_shrink, cli.accept_missing, cli.accept_schema_change);
    let build = |config: Config| async move {
        let mut engine = Engine::build(config).await?;
        engine.accept_shrink(accept_shrink);
        engine.accept_missing(accept_missing);
        engine.accept_schema_change(accept_schema_change);
        for n in engine.notices() {
            eprintln!("enid: note: {n}");
        }
        Ok::<Engine, CliError>(engine)
    };
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Check => {
            let engine = build(config).await?;
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
        Command::Plan { json, save, time } => {
            let engine = build(config).await?;
            let now = clock::now(time.now);
            let computed = engine.compute(now).await?;
            warn_rejected(&computed);
            let failed = failures(&computed);
            let shown = computed.shown_plan();
            if save {
                let body = serde_json::to_string(&shown).map_err(|e| CliError::Message(e.to_string()))?;
                engine.store().save_plan(&computed.plan.plan_id, &body, now).await?;
            }
            if json {
                let text = serde_json::to_string_pretty(&shown).map_err(|e| CliError::Message(e.to_string()))?;
                writeln!(out, "{text}").map_err(io)?;
            } else {
                write!(out, "{}", render_plan(&computed)).map_err(io)?;
                if save {
                    writeln!(out, "\nSaved. Apply exactly this plan with: enid apply --plan {}", computed.plan.plan_id)
                        .map_err(io)?;
                }
            }
            exiting(computed);
            failed.map(|()| ExitCode::SUCCESS)
        }
        Command::Apply { yes, plan, accept_threshold, accept_protected, only, school, accept_date, time } => {
            // A rehearsal date belongs to `plan`: applied, a future date deletes accounts whose
            // grace period has not passed, for good.
            if let Some(t) = time.now
                && (t - clock::now(None)).num_hours().abs() >= 24
                && !accept_date
            {
                return Err(CliError::Message(format!(
                    "apply --now {}: another day than today would act on the wrong day (a future date deletes \
                     accounts before their time, a past one disables who had not started and dates disables \
                     back); rehearse it with `enid plan --now` instead (or, on a copy of the state, --accept-date)",
                    t.format("%Y-%m-%d")
                )));
            }
            let mut actions = Vec::new();
            for word in &only {
                let more = crate::engine::actions_named(word).ok_or_else(|| {
                    CliError::Message(format!(
                        "--only {word:?}: use create, rename, update, enable, disable, delete or groups"
                    ))
                })?;
                actions.extend_from_slice(more);
            }
            let request = crate::engine::ApplyRequest {
                plan_id: plan.clone(),
                accept_threshold,
                accept_protected,
                only: actions,
                school,
            };
            let engine = build(config).await?;
            let now = clock::now(time.now);
            let _lock = engine.lock("apply", now).await?;
            let mut computed = engine.compute(now).await?;
            warn_rejected(&computed);
            let failed = failures(&computed);
            if let Some(id) = &plan {
                // A stale saved plan is refused before anything is shown as if it would happen.
                engine.check_saved(&computed, id).await?;
            }
            write!(out, "{}", render_plan(&computed)).map_err(io)?;
            if computed.plan.is_empty() && computed.record_rows.is_empty() {
                return failed.map(|()| ExitCode::SUCCESS);
            }
            let approved = engine.approve(&mut computed, &request, now).await?;
            if let Some(before) = approved.selected_from {
                writeln!(
                    out,
                    "\nApplying {} of the plan's {before} operations; the rest stays pending.",
                    computed.plan.operations.len()
                )
                .map_err(io)?;
            }
            if approved.waiting_protected > 0 {
                writeln!(
                    out,
                    "\n{} changes to persons with protected personal data wait for approval. The plan is saved: \
                     review it, then `enid apply --plan {} --accept-protected`.",
                    approved.waiting_protected, computed.plan.plan_id
                )
                .map_err(io)?;
            }
            if plan.is_none() && !yes && !computed.plan.operations.is_empty() {
                if !std::io::stdin().is_terminal() {
                    return Err(CliError::Message(
                        "refusing to apply without confirmation: no terminal; pass --yes, or save the plan with \
                         `enid plan --save` and apply it with `enid apply --plan ID`"
                            .into(),
                    ));
                }
                write!(out, "\nApply plan {}? [y/N] ", computed.plan.plan_id).map_err(io)?;
                out.flush().map_err(io)?;
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer).map_err(io)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    writeln!(out, "Not applied.").map_err(io)?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let report = engine.apply(&computed, "apply", now).await?;
            exiting(computed);
            writeln!(
                out,
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
        Command::Adopt { yes, entry, person, target, json } => {
            let engine = build(config).await?;
            let now = clock::now(None);
            let _lock = engine.lock("adopt", now).await?;
            let by_hand = match (entry, person) {
                (Some(entry), Some(person)) => Some(crate::engine::ByHand { entry, person, target }),
                _ => None,
            };
            let plan = engine.plan_adopt(now, by_hand.as_ref()).await?;
            if json {
                let text = serde_json::to_string_pretty(&plan).map_err(|e| CliError::Message(e.to_string()))?;
                writeln!(out, "{text}").map_err(io)?;
            } else {
                write!(out, "{}", render_adopt(&plan)).map_err(io)?;
            }
            if plan.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            if !yes {
                if json || !std::io::stdin().is_terminal() {
                    return Err(CliError::Message(
                        "nothing was recorded: review the above, then run `enid adopt --yes`".into(),
                    ));
                }
                write!(out, "\nRecord these as enid's? [y/N] ").map_err(io)?;
                out.flush().map_err(io)?;
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer).map_err(io)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    writeln!(out, "Nothing was recorded.").map_err(io)?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let run = engine.adopt(&plan, now).await?;
            writeln!(
                out,
                "\nRun {run}: recorded {} accounts and {} groups as enid's. `enid plan` shows what the next apply does.",
                plan.accounts.len(),
                plan.groups.len()
            )
            .map_err(io)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::State { action: StateAction::Backup { path } } => {
            let engine = build(config).await?;
            engine.store().backup(&path).await?;
            writeln!(out, "Wrote a copy of the state database to {}.", path.display()).map_err(io)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Log { run, person, school, limit, json } => {
            let engine = build(config).await?;
            let identity = match person {
                Some(p) => {
                    let ids = engine.store().find_identity(&p).await?;
                    match ids.as_slice() {
                        [one] => Some(one.clone()),
                        [] => {
                            return Err(CliError::Message(format!(
                                "no person {:?} in the state database",
                                mask_if_civic(&p)
                            )));
                        }
                        _ => {
                            return Err(CliError::Message(format!(
                                "{:?} matches {} identities; use the enid id",
                                mask_if_civic(&p),
                                ids.len()
                            )));
                        }
                    }
                }
                None => None,
            };
            let rows = engine.store().log(&LogFilter { run, identity, school, limit }).await?;
            let protected = engine.store().protected_identities().await?;
            for mut r in rows {
                // A protected person by enid id only, in rows written before the protection too.
                if let Some(id) = r.identity_id.clone().filter(|i| protected.contains(i)) {
                    r.username = Some(id);
                    r.school = None;
                    r.detail = Some("protected person".into());
                }
                if json {
                    writeln!(out, "{}", serde_json::to_string(&r).map_err(|e| CliError::Message(e.to_string()))?)
                } else {
                    writeln!(
                        out,
                        "{}  run {:<4} {:<8} {:<10} {:<12} {:<22} {:<8} {}{}",
                        r.at,
                        r.run_id,
                        r.result,
                        r.target.as_deref().unwrap_or("-"),
                        r.action,
                        r.username.as_deref().unwrap_or("-"),
                        r.school.as_deref().filter(|s| !s.is_empty()).unwrap_or("-"),
                        r.detail.as_deref().unwrap_or(""),
                        r.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default()
                    )
                }
                .map_err(io)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Conflicts { action, json } => {
            let engine = build(config).await?;
            let now = clock::now(None);
            let mut resolution = engine.resolve_only(now).await?;
            let mut protected = engine.store().protected_identities().await?;
            protected.extend(resolution.present.iter().filter(|i| i.is_protected()).map(|i| i.id.clone()));
            match action {
                None => {
                    crate::engine::redact_conflicts(&mut resolution.conflicts, &protected);
                    if json {
                        let text = serde_json::to_string_pretty(&resolution.conflicts)
                            .map_err(|e| CliError::Message(e.to_string()))?;
                        writeln!(out, "{text}").map_err(io)?;
                    } else {
                        write!(out, "{}", render_conflicts(&resolution.conflicts)).map_err(io)?;
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(ConflictAction::Resolve { id, merge, separate: _, into }) => {
                    let conflict = resolution.conflicts.iter().find(|c| c.id == id).ok_or_else(|| {
                        CliError::Message(format!(
                            "no open conflict {}; `enid conflicts` lists the open ones",
                            mask_if_civic(&id)
                        ))
                    })?;
                    let decision = if merge {
                        match (&into, conflict.candidates.len()) {
                            (Some(target), _) if !conflict.candidates.contains(target) => {
                                return Err(CliError::Message(format!(
                                    "--into {target} is not one of the identities of conflict {id}: {}",
                                    conflict.candidates.join(", ")
                                )));
                            }
                            (None, n) if n > 1 => {
                                return Err(CliError::Message(format!(
                                    "conflict {id}: the number belongs to {n} identities; say which with --into ({})",
                                    conflict.candidates.join(", ")
                                )));
                            }
                            _ => Decision::Merge { into },
                        }
                    } else {
                        Decision::Separate
                    };
                    engine.store().decide(&id, &decision, &conflict.records, now).await?;
                    let what = match &decision {
                        Decision::Merge { .. } => "merged into one identity",
                        Decision::Separate => "kept as separate identities",
                    };
                    writeln!(
                        out,
                        "Recorded: {} will be {what}. `enid plan` shows the result; `enid apply` carries it out.",
                        conflict.held.join(", ")
                    )
                    .map_err(io)?;
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Renames { action } => {
            let engine = build(config).await?;
            let now = clock::now(None);
            let computed = engine.compute(now).await?;
            let held = &computed.plan.held_renames;
            match action {
                None => {
                    if held.is_empty() {
                        writeln!(out, "No renames are waiting for approval.").map_err(io)?;
                    }
                    for r in held {
                        writeln!(
                            out,
                            "{}  {} → {}   approve: enid renames approve {}",
                            r.identity, r.old, r.new, r.old
                        )
                        .map_err(io)?;
                    }
                }
                Some(RenameAction::Approve { person }) => {
                    let r = held.iter().find(|r| r.identity == person || r.old == person).ok_or_else(|| {
                        CliError::Message(format!(
                            "no rename of {:?} is waiting; `enid renames` lists them",
                            mask_if_civic(&person)
                        ))
                    })?;
                    engine.store().approve_rename(&r.identity, &r.new, now).await?;
                    writeln!(out, "Approved: {} → {}. The next apply renames the accounts.", r.old, r.new)
                        .map_err(io)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { person, json, time } => {
            let engine = build(config).await?;
            let now = clock::now(time.now);
            let computed = engine.compute(now).await;
            let text = explain(&engine, computed.as_ref().map_err(|e| e.to_string()), &person, json).await?;
            write!(out, "{text}").map_err(io)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The process ends right after a command; freeing a 100,000-person computation one allocation
/// at a time would add a third of a second to every run. Only the CLI does this, never a
/// long-running service.
fn exiting(computed: Computed) {
    std::mem::forget(computed);
}

fn io(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return CliError::BrokenPipe;
    }
    CliError::Message(format!("cannot write output: {e}"))
}

/// Shows the persons held because their accounts could not be computed; `Err` (exit 1) when
/// there are any, after the rest of the command has done its work.
fn failures(c: &Computed) -> Result<(), CliError> {
    for f in &c.failures {
        eprintln!("enid: {f}");
    }
    match c.failures.as_slice() {
        [] => Ok(()),
        [one] => Err(CliError::Message(one.to_string())),
        [first, ..] => Err(CliError::Message(format!(
            "{} persons are held because their accounts could not be computed (first: {first})",
            c.failures.len()
        ))),
    }
}

/// What `enid adopt` found, as text.
fn render_adopt(p: &crate::engine::AdoptPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Accounts to record as enid's ({}):", p.accounts.len());
    for a in &p.accounts {
        let how = if a.by_hand {
            "  (by hand)"
        } else if a.left {
            if a.disabled {
                "  (a leaver: no source has the person now)"
            } else {
                "  (no source has the person now: the next apply disables it)"
            }
        } else {
            ""
        };
        let state = if a.disabled { "disabled" } else { "active" };
        let _ = writeln!(s, "  {:<10} {:<22} {:<8} {}{how}", a.target, a.username, state, a.key);
    }
    if !p.groups.is_empty() {
        let _ = writeln!(s, "\nGroups to record as enid's ({}):", p.groups.len());
        for g in &p.groups {
            let _ = writeln!(s, "  {:<10} {:<22} {}", g.target, g.name, g.key);
        }
    }
    let _ =
        writeln!(s, "\nUsernames on the targets recorded as taken (never given to anyone new): {}", p.taken_usernames);
    if !p.unmatched.is_empty() {
        let _ = writeln!(s, "\nNot matched ({}): left alone, and blocked in plans until claimed:", p.unmatched.len());
        for u in &p.unmatched {
            let _ = writeln!(s, "  {:<10} {}: {}", u.target, u.key, u.reason);
        }
    }
    s
}

fn warn_rejected(c: &Computed) {
    for (source, errors) in &c.rejected {
        for e in errors {
            tracing::warn!("source \"{source}\": {e}; row left out");
        }
    }
}

/// The plan as text: a summary per target, then operations grouped by action.
pub fn render_plan(c: &Computed) -> String {
    let shown = c.shown_plan();
    let plan = &shown;
    let mut s = String::new();
    let reads: Vec<String> = c.counts.iter().map(|(k, v)| format!("{k}: {v} records")).collect();
    let rejected: usize = c.rejected.values().map(Vec::len).sum();
    let _ = writeln!(s, "Plan {}  ({})", plan.plan_id, plan.now.format("%Y-%m-%d %H:%M UTC"));
    let _ = writeln!(
        s,
        "  sources: {}{}",
        reads.join(", "),
        if rejected > 0 { format!("; {rejected} rows rejected (see warnings)") } else { String::new() }
    );
    for (t, sum) in &plan.targets {
        let _ = writeln!(
            s,
            "  target \"{t}\": {} create, {} rename, {} update, {} enable, {} disable, {} delete, {} unchanged, {} not managed by enid",
            sum.create,
            sum.rename,
            sum.update,
            sum.enable,
            sum.disable,
            sum.delete,
            sum.unchanged,
            plan.unmanaged.get(t).copied().unwrap_or(0)
        );
    }
    for (t, g) in &plan.target_groups {
        if *g != Default::default() {
            let _ = writeln!(
                s,
                "  groups on \"{t}\": {} create, {} members added, {} members removed, {} delete, {} unchanged",
                g.create, g.members_added, g.members_removed, g.delete, g.unchanged
            );
        }
    }
    if !plan.new_identities.is_empty() {
        let _ = writeln!(s, "  new identities: {}", plan.new_identities.len());
    }
    if !plan.adoptions.is_empty() {
        let _ =
            writeln!(s, "  accounts created by an interrupted run, to be recorded as enid's: {}", plan.adoptions.len());
    }
    for action in [
        Action::Create,
        Action::Rename,
        Action::Update,
        Action::Enable,
        Action::Disable,
        Action::Delete,
        Action::CreateGroup,
        Action::AddMembers,
        Action::RemoveMembers,
        Action::DeleteGroup,
    ] {
        let ops: Vec<_> = plan.operations.iter().filter(|o| o.action == action).collect();
        if ops.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{} ({})", action.as_str(), ops.len());
        for op in &ops {
            let _ = write!(
                s,
                "  {:<10} {:<22} {:<8} {}",
                op.target,
                op.username,
                if op.school.is_empty() { "-" } else { &op.school },
                op.reason
            );
            if let (Some(before), connector_api::TargetOp::Update { changes, .. }) = (&op.before, &op.op) {
                for ch in changes {
                    let old = before.get(&ch.attr).map(|v| v.join("|")).unwrap_or_default();
                    let _ = write!(
                        s,
                        "\n  {:<10} {:<22} {:<8}   {}: {:?} → {:?}",
                        "",
                        "",
                        "",
                        ch.attr,
                        old,
                        ch.values.join("|")
                    );
                }
            }
            s.push('\n');
        }
    }
    if !plan.unprotect.is_empty() {
        let _ = writeln!(
            s,
            "\nprotection kept ({}): no source marks these persons as protected any more; they stay protected until \
             this plan is applied with --accept-protected",
            plan.unprotect.len()
        );
        for id in &plan.unprotect {
            let _ = writeln!(s, "  {id}");
        }
    }
    let waiting = plan.operations.iter().filter(|o| o.needs_approval).count() + plan.unprotect.len();
    if waiting > 0 {
        let _ = writeln!(
            s,
            "\n{waiting} changes to persons with protected personal data wait for approval \
             (`enid plan --save`, then `enid apply --plan {} --accept-protected`)",
            plan.plan_id
        );
    }
    if !plan.held.is_empty() {
        let _ = writeln!(
            s,
            "\nHELD: this plan goes over a threshold and is not applied without review \
             (`enid plan --save`, then `enid apply --plan {} --accept-threshold`):",
            plan.plan_id
        );
        for h in &plan.held {
            let _ = writeln!(s, "  {h}");
        }
    }
    if !plan.conflicts.is_empty() {
        let held: usize = plan.conflicts.iter().map(|c| c.held.len()).sum();
        let _ = writeln!(
            s,
            "\nheld ({held} records in {} conflicts): no account until decided; see `enid conflicts`",
            plan.conflicts.len()
        );
        for c in &plan.conflicts {
            let note = match c.kind {
                ConflictKind::KeyReused => format!(
                    "  (the key now carries another civic number, {}: the person it belonged to is kept as they are)",
                    c.civic_no
                ),
                _ => String::new(),
            };
            let _ = writeln!(s, "  {}  {}{note}", c.id, c.held.join(", "));
        }
    }
    if !plan.kept.is_empty() {
        let _ = writeln!(
            s,
            "\nkept as at the last run ({}): no update, no disable, no group change until their rows are read again",
            plan.kept.len()
        );
        for k in &plan.kept {
            let _ = writeln!(s, "  {:<22} {}", k.username, k.reason);
        }
    }
    if !plan.held_renames.is_empty() {
        let _ = writeln!(
            s,
            "\nrenames waiting for approval ({}): approve with `enid renames approve USERNAME`",
            plan.held_renames.len()
        );
        for r in &plan.held_renames {
            let _ = writeln!(s, "  {} → {}", r.old, r.new);
        }
    }
    if !plan.civic_changes.is_empty() {
        let _ = writeln!(
            s,
            "\ncivic-number changes ({}): identities, usernames and accounts are kept",
            plan.civic_changes.len()
        );
        for c in &plan.civic_changes {
            let _ = writeln!(s, "  {c}");
        }
    }
    if !plan.blocked.is_empty() {
        let _ =
            writeln!(s, "\nblocked ({}): these persons get no account until the cause is fixed", plan.blocked.len());
        for b in &plan.blocked {
            let _ = writeln!(s, "  {:<10} {:<22} {}", b.target, b.username, b.reason);
        }
    }
    if plan.operations.is_empty() {
        let _ = writeln!(s, "\nNo changes.");
    }
    s
}

/// The conflict queue as text.
pub fn render_conflicts(conflicts: &[crate::core::identity::Conflict]) -> String {
    let mut s = String::new();
    if conflicts.is_empty() {
        let _ = writeln!(s, "No conflicts.");
        return s;
    }
    for c in conflicts {
        let why = match c.kind {
            ConflictKind::SameSourceSameCivic => "records of one source claim the same civic number",
            ConflictKind::SeveralIdentities => "the civic number belongs to more than one identity",
            ConflictKind::KeyReused => "the source key now carries another civic number (given to another person?)",
        };
        let _ = writeln!(s, "{}  {why}: {}", c.id, c.civic_no);
        let _ = writeln!(s, "  records:    {}", c.records.join(", "));
        if c.kind == ConflictKind::KeyReused {
            let _ = writeln!(
                s,
                "  held:       {} (the identity below and its accounts are kept as they are until decided)",
                c.held.join(", ")
            );
        } else {
            let _ = writeln!(s, "  held:       {} (no identity, no account until decided)", c.held.join(", "));
        }
        if !c.candidates.is_empty() {
            let _ = writeln!(s, "  identities: {}", c.candidates.join(", "));
        }
        let into = if c.candidates.len() > 1 { " --into IDENTITY" } else { "" };
        let _ = writeln!(s, "  decide:     enid conflicts resolve {} --merge{into}  |  --separate\n", c.id);
        if c.kind == ConflictKind::KeyReused {
            let _ = writeln!(
                s,
                "  --merge: the same person, the number was corrected (the new number is recorded);\n  \
                 --separate: another person (the record gets an identity of its own; the first person's \
                 accounts follow the leaver lifecycle)\n"
            );
        }
    }
    s
}

async fn explain(
    engine: &Engine,
    computed: Result<&Computed, String>,
    needle: &str,
    json: bool,
) -> Result<String, CliError> {
    let mut ids: BTreeSet<String> = engine.store().find_identity(needle).await?.into_iter().collect();
    if let Ok(c) = computed {
        ids.extend(find_in_run(c, needle));
    }
    // The needle may be a source key that is a civic number: it is echoed masked only.
    let shown = mask_if_civic(needle);
    let id = match ids.len() {
        0 => {
            let held = computed.ok().and_then(|c| {
                c.plan.conflicts.iter().find(|k| k.held.iter().any(|h| h.rsplit('/').next() == Some(&*shown)))
            });
            return match held {
                Some(k) => Ok(format!(
                    "{shown} is held in conflict {}: {}. It gets no identity and no account until decided; see \
                     `enid conflicts`.\n",
                    k.id,
                    k.held.join(", ")
                )),
                None => {
                    Err(CliError::Message(format!("no person {shown:?}: not in the state database nor in the sources")))
                }
            };
        }
        1 => ids.into_iter().next().unwrap_or_default(),
        n => return Err(CliError::Message(format!("{shown:?} matches {n} identities: {ids:?}; use the enid id"))),
    };
    let mut stored = engine.store().records_of(&id).await?;
    let protected = computed.as_ref().ok().and_then(|c| identity_in_run(c, &id)).is_some_and(|i| i.is_protected())
        || stored.iter().any(|r| r.protected);
    let current = computed.as_ref().ok().and_then(|c| c.usernames.get(&id));
    if protected && needle != id && current.is_none_or(|u| !u.eq_ignore_ascii_case(needle)) {
        // Asked by a name or key, the answer would link them to the pseudonym and the enid id.
        return Err(CliError::Message(
            "that person has protected personal data and is shown by enid id only: `enid explain ENID_ID` (plans \
             list the id)"
                .into(),
        ));
    }
    if protected {
        for r in &mut stored {
            r.person_id = "(protected)".into();
            r.given_name = "(protected)".into();
            r.family_name = "(protected)".into();
            r.school_unit = None;
            r.groups.clear();
        }
    }
    // The grace period follows the person's roles: staff if any record says staff.
    let staff = stored.iter().any(|r| r.role == "staff");
    let grace = engine.lifecycle().grace_days(staff);
    let deletion = |a: &crate::core::model::OwnedAccount| {
        a.disabled_at.zip(grace).and_then(|(d, g)| d.checked_add_days(chrono::Days::new(u64::from(g))))
    };
    let civic_history = engine.store().civic_history_of(&id).await?;
    let accounts = engine.store().accounts(Some(&id)).await?;
    let kept: Option<String> =
        computed.as_ref().ok().and_then(|c| c.plan.kept.iter().find(|k| k.identity == id)).map(|k| k.reason.clone());
    let (current, username, next, blocked): (
        Vec<serde_json::Value>,
        Option<String>,
        Vec<serde_json::Value>,
        Vec<String>,
    ) = match computed {
        Ok(c) => {
            let ident = identity_in_run(c, &id);
            let current = ident
                .map(|i| {
                    i.records
                        .iter()
                        .map(|r| {
                            serde_json::json!({
                                "source": r.source,
                                "person_id": if protected { "(protected)".into() } else { mask_if_civic(&r.record.person_id) },
                                "location": if protected { "(protected)" } else { r.record.location.as_str() },
                                "given_name": if protected { "(protected)" } else { r.record.given_name.as_str() },
                                "family_name": if protected { "(protected)" } else { r.record.family_name.as_str() },
                                "civic_no": r.record.civic_no.as_ref().map(|c| c.masked()),
                                "role": r.record.role.as_str(),
                                "school_unit": if protected { None } else { r.record.school_unit.clone() },
                                "groups": if protected { Vec::new() } else { r.record.groups.clone() },
                                "start_date": r.record.start_date, "end_date": r.record.end_date,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let next = c
                .plan
                .operations
                .iter()
                .filter(|o| o.identity == id)
                .map(|o| o.redacted())
                .map(|o| serde_json::json!({"target": o.target, "action": o.action.as_str(), "reason": o.reason, "op": o.op, "before": o.before}))
                .collect();
            let blocked = c
                .plan
                .blocked
                .iter()
                .filter(|b| b.identity == id)
                .map(|b| format!("{}: {}", b.target, b.reason))
                .collect();
            (current, c.usernames.get(&id).cloned(), next, blocked)
        }
        Err(_) => (Vec::new(), None, Vec::new(), Vec::new()),
    };
    let value = serde_json::json!({
        "id": id,
        "username": username,
        "records_now": current,
        "records_stored": stored,
        "accounts": accounts.iter().map(|a| serde_json::json!({
            "target": a.target, "key": a.key, "anchor": a.anchor, "status": a.status.as_str(),
            "disabled_on": a.disabled_at, "deleted_on": deletion(a),
        })).collect::<Vec<_>>(),
        "civic_history": civic_history,
        "next_run": next,
        "blocked": blocked,
        "kept": kept,
        "plan_error": computed.as_ref().err(),
    });
    if json {
        return serde_json::to_string_pretty(&value).map(|s| s + "\n").map_err(|e| CliError::Message(e.to_string()));
    }
    let mut s = String::new();
    let _ = writeln!(s, "Identity {id}");
    let _ = writeln!(s, "  username: {}", value["username"].as_str().unwrap_or("(none yet)"));
    let _ = writeln!(s, "\nRecords in the sources now:");
    if current.is_empty() && kept.is_some() {
        let _ = writeln!(s, "  none read: a row of theirs was rejected or is held; kept as at the last run (below)");
    } else if current.is_empty() {
        let _ = writeln!(s, "  none: no source has this person now");
    }
    for r in &current {
        let _ = writeln!(
            s,
            "  {}/{} ({})  {} {}  {}  school {}  groups {}  civic no {}{}{}",
            r["source"].as_str().unwrap_or(""),
            r["person_id"].as_str().unwrap_or(""),
            r["location"].as_str().unwrap_or(""),
            r["given_name"].as_str().unwrap_or(""),
            r["family_name"].as_str().unwrap_or(""),
            r["role"].as_str().unwrap_or(""),
            r["school_unit"].as_str().unwrap_or("-"),
            r["groups"]
                .as_array()
                .map(|g| g.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
            r["civic_no"].as_str().unwrap_or("none"),
            r["start_date"].as_str().map(|d| format!("  starts {d}")).unwrap_or_default(),
            r["end_date"].as_str().map(|d| format!("  ends {d}")).unwrap_or_default(),
        );
    }
    let _ = writeln!(s, "\nRecords in the state database:");
    if stored.is_empty() {
        let _ = writeln!(s, "  none yet: the next apply records them");
    }
    for r in &stored {
        let _ = writeln!(
            s,
            "  {}/{}  {} {}  {}  school {}  civic no {}  first seen {}, last changed {}",
            r.source,
            r.person_id,
            r.given_name,
            r.family_name,
            r.role,
            r.school_unit.as_deref().unwrap_or("-"),
            r.civic_no.as_deref().unwrap_or("none"),
            r.first_seen,
            r.updated_at
        );
    }
    if !civic_history.is_empty() {
        let _ = writeln!(s, "\nCivic-number history (the identity and its accounts were kept):");
        for h in &civic_history {
            let _ = writeln!(
                s,
                "  {}  {}: {} → {}",
                h.changed_at,
                h.record,
                h.old.as_deref().unwrap_or("none"),
                h.new.as_deref().unwrap_or("none")
            );
        }
    }
    let _ = writeln!(s, "\nAccounts enid owns:");
    if accounts.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for a in &accounts {
        let when = match (a.disabled_at, deletion(a)) {
            (Some(d), Some(del)) => format!(" since {d}; deleted on {del} unless the person returns before"),
            (Some(d), None) => format!(" since {d}; kept (no deletion for this role)"),
            _ => String::new(),
        };
        let _ = writeln!(s, "  {}: {}  {}{when}", a.target, a.key, a.status.as_str());
    }
    let _ = writeln!(s, "\nNext run:");
    match computed {
        Err(e) => {
            let _ = writeln!(s, "  unknown: the plan could not be computed ({e})");
        }
        Ok(_) if kept.is_some() => {
            let _ = writeln!(
                s,
                "  kept as at the last run: {}; no update, no disable, no group change",
                kept.as_deref().unwrap_or("")
            );
        }
        Ok(_) if next.is_empty() && blocked.is_empty() => {
            let _ = writeln!(s, "  nothing to do: every account matches the sources");
        }
        Ok(_) => {
            for n in &next {
                let _ = writeln!(
                    s,
                    "  {}: {} ({})",
                    n["target"].as_str().unwrap_or(""),
                    n["action"].as_str().unwrap_or(""),
                    n["reason"].as_str().unwrap_or("")
                );
            }
            for b in &blocked {
                let _ = writeln!(s, "  blocked on {b}");
            }
        }
    }
    Ok(s)
}
