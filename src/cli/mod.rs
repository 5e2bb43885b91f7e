//! The command line: argument parsing, the commands, and how their results are shown.
//!
//! Arguments go through clap before anything touches the system. The CLI decides nothing the
//! engine decides: it parses, asks for confirmation on a terminal, and renders. Every output path
//! shows civic numbers masked; `main` alone turns errors into exit codes.
//!
//! One file per command: `plan` (plan and apply, through the engine's run API), `adopt`,
//! `log` (the sync log, state backups and pruning), `conflicts` (the conflict queue and held
//! renames), `explain`, `passwords` (the hand-out of first passwords), `keys` (`enid keys
//! create`); `render` turns plans and conflicts into text; `progress` draws a run's progress on
//! a terminal.

use crate::clock;
use crate::config::{Config, ConfigError};
use crate::engine::{Computed, Engine, EngineError, Overrides, Viewer};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod adopt;
mod conflicts;
mod explain;
mod keys;
mod log;
mod passwords;
mod plan;
mod progress;
mod render;
pub use render::{render_conflicts, render_plan};

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
    /// Go ahead although a source reads another scope than at the last apply (its
    /// `organisations` changed) and persons are out of it only because of that (after review)
    #[arg(long, global = true)]
    pub accept_scope_change: bool,
    /// Read every source in full, also one that could read only the changes since the last apply
    #[arg(long, global = true)]
    pub full: bool,
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
        /// List only these actions (comma-separated: create, rename, update, enable, disable,
        /// delete, groups)
        #[arg(long, value_delimiter = ',', value_name = "ACTIONS")]
        only: Vec<String>,
        /// List only the operations of this school unit
        #[arg(long, value_name = "UNIT")]
        school: Option<String>,
        /// List only the operations on this target
        #[arg(long, value_name = "ID")]
        target: Option<String>,
        /// List only this person's operations (enid id, or username)
        #[arg(long, value_name = "ID")]
        person: Option<String>,
        /// List every operation and every school unit (the text lists 20 of each otherwise;
        /// --json is always complete)
        #[arg(long)]
        all: bool,
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
        /// Every run's rows; without a selection, the log shows the last run that did something
        #[arg(long, conflicts_with = "run")]
        all: bool,
        /// JSON lines instead of text
        #[arg(long)]
        json: bool,
    },
    /// Run as a service: reconcile on [schedule], watch the source files, until SIGTERM
    Run {
        /// Listen here instead of `[server] listen` (a second node on the same machine)
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// List the runs: every apply, adopt and daemon run, applied, held, stopped or failed
    Runs {
        /// At most this many runs (the newest)
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// JSON lines instead of text
        #[arg(long)]
        json: bool,
    },
    /// Approve a held (or plan-only) run's operations for the service's next run, which carries
    /// out those it still plans exactly so; --accept-shrink and the like let it past a guard
    Approve {
        /// The run (`enid runs` lists them)
        run: i64,
        /// Only these actions (create, claim, rename, move, update, enable, disable, delete, groups)
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Only operations of this school unit
        #[arg(long)]
        school: Option<String>,
        /// Only these operations, by fingerprint (`enid plan --json` shows them)
        #[arg(long = "op")]
        ops: Vec<String>,
        /// Operations on persons with protected personal data too
        #[arg(long)]
        accept_protected: bool,
        /// JSON instead of text
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
        /// With --entry and --person: record that the entry, made before enid, is NOT that person's
        /// (it is never claimed for them, and a new person gets another username)
        #[arg(long, requires = "entry")]
        not_theirs: bool,
        /// One JSON object instead of text (shows what would be claimed; claims nothing without --yes)
        #[arg(long)]
        json: bool,
    },
    /// The state database: `enid state backup PATH` writes a consistent copy, safe while enid runs
    State {
        #[command(subcommand)]
        action: StateAction,
    },
    /// The installation's key files: `enid keys create` makes the id key and the password key
    /// (owner-only) at install time, never over an existing one
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// First passwords of new accounts (targets with initial_password = "generated")
    Passwords {
        #[command(subcommand)]
        action: PasswordAction,
    },
    /// Tokens for the HTTP API (`Authorization: Bearer TOKEN`): add, list, revoke
    Token {
        #[command(subcommand)]
        action: TokenAction,
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
pub enum PasswordAction {
    /// Show the first passwords not handed out yet, once: enid forgets each one it shows
    Show {
        /// Those of this school unit's persons
        #[arg(long, value_name = "UNIT", required_unless_present_any = ["protected", "all"])]
        school: Option<String>,
        /// Those of persons with protected personal data, by enid id only
        #[arg(long, conflicts_with_all = ["school", "all"])]
        protected: bool,
        /// Those of every school unit (not of protected persons)
        #[arg(long, conflicts_with = "school")]
        all: bool,
        /// Only those set on this target
        #[arg(long, value_name = "ID")]
        target: Option<String>,
        /// JSON instead of text
        #[arg(long)]
        json: bool,
        /// Hand out as if it were this date or time (YYYY-MM-DD or RFC 3339): expiry and the
        /// lapse of an unconfirmed hand-out's claim are reckoned from it
        #[arg(long, value_parser = clock::parse_now)]
        now: Option<DateTime<Utc>>,
    },
    /// Forget every first password not handed out yet (when the password key is lost for good:
    /// those accounts then need passwords set by hand)
    Forget {
        /// Required: nothing asks again
        #[arg(long, required = true)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make `[identity] id_key_file` and `[state] password_key_file` where missing (0600);
    /// prints their paths and fingerprints, never a key
    Create,
}

#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Write a consistent copy of the state database to PATH (a new file, owner-only)
    Backup {
        /// Where to write the copy; must not exist yet
        path: PathBuf,
    },
    /// Copy the state into a new SQLite file or an empty PostgreSQL database (`--to
    /// postgres://user@host/db`), verified by a count and a checksum of every table; then point
    /// `[state]` at the copy
    Copy {
        /// A new file (SQLite), or a PostgreSQL URL without a password
        #[arg(long)]
        to: String,
        /// The file holding the PostgreSQL password of `--to`
        #[arg(long, conflicts_with = "db_password_env")]
        db_password_file: Option<PathBuf>,
        /// The environment variable holding the PostgreSQL password of `--to`
        #[arg(long)]
        db_password_env: Option<String>,
    },
    /// Move what the state records on target OLD (accounts, groups, first passwords) to target
    /// NEW, after renaming the target in the config
    RenameTarget {
        /// The id the state records
        old: String,
        /// The id the config names now
        new: String,
    },
    /// Remove the sync log (runs, operation-log rows, saved plans) older than `[state]
    /// keep_log_for`; the service does this on its own schedule
    Prune {
        #[command(flatten)]
        time: TimeArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a token and print it once, alone on stdout (the state keeps only its hash)
    Add {
        /// Its name: unique, shown in `token list` and recorded with every decision made with it
        name: String,
        /// admin (everything) or school_admin (the school units of --school only)
        #[arg(long, value_parser = ["admin", "school_admin"])]
        role: String,
        /// A school unit a school_admin token sees (repeat for several)
        #[arg(long, value_name = "UNIT")]
        school: Vec<String>,
    },
    /// List the tokens (names, roles, school units; never the tokens)
    List {
        /// JSON lines instead of text
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it opens nothing from now on
    Revoke {
        /// The token's name
        name: String,
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

impl Cli {
    /// Whether this is `enid run`, the service.
    pub fn is_service(&self) -> bool {
        matches!(self.command, Command::Run { .. })
    }
}

/// Logs go to stderr; `ENID_LOG` (tracing filter syntax) overrides `-v`.
pub fn init_tracing(cli: &Cli) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let daemon = matches!(cli.command, Command::Run { .. });
    let level = match (cli.verbose, daemon) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENID_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Under systemd (its journal on our stderr), the service logs to the journal with every
    // field as a journal field; on a terminal, human lines.
    if daemon
        && std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journal) = tracing_journald::layer()
    {
        let _ =
            tracing_subscriber::registry().with(filter).with(journal.with_syslog_identifier("enid".into())).try_init();
        return;
    }
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // A command's log lines are written around its progress display.
    let _ = if daemon {
        fmt.with_writer(std::io::stderr).try_init()
    } else {
        fmt.with_writer(|| progress::LogLines).without_time().try_init()
    };
}

/// Runs a command.
pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let path = Config::resolve_path(cli.config.as_deref(), std::env::var("ENID_CONFIG").ok());
    let config = Config::load(&path)?;
    let overrides = Overrides {
        shrink: cli.accept_shrink,
        missing: cli.accept_missing,
        schema_change: cli.accept_schema_change,
        scope_change: cli.accept_scope_change,
        full_read: cli.full,
    };
    // Not a lock held across the run: a front end is `Send` (the engine may run it on any thread).
    let mut out = std::io::stdout();
    match cli.command {
        Command::Check => plan::check(&build(config).await?, &mut out).await,
        Command::Plan { json, save, only, school, target, person, all, time } => {
            let listed = plan::listed(&only, school, target, person, all)?;
            let engine = build(config).await?;
            let now = clock::now(time.now);
            on_worker(async move { plan::plan(&engine, json, save, now, overrides, listed, &mut out).await }).await
        }
        Command::Apply { yes, plan, accept_threshold, accept_protected, only, school, accept_date, time } => {
            let request =
                plan::apply_request(plan, accept_threshold, accept_protected, &only, school, accept_date, time.now)?;
            let engine = build(config).await?;
            let now = clock::now(time.now);
            on_worker(async move { plan::apply(&engine, request, yes, now, overrides, &mut out).await }).await
        }
        Command::Adopt { yes, entry, person, target, not_theirs, json } => {
            let by_hand = match (entry, person) {
                (Some(entry), Some(person)) => Some(crate::engine::ByHand { entry, person, target }),
                _ => None,
            };
            match by_hand {
                Some(h) if not_theirs => adopt::not_theirs(&build(config).await?, h, yes, &mut out).await,
                _ => adopt::adopt(&build(config).await?, by_hand, yes, json, &mut out).await,
            }
        }
        Command::State { action: StateAction::Backup { path } } => {
            log::backup(&build(config).await?, &path, &mut out).await
        }
        Command::State { action: StateAction::Copy { to, db_password_file, db_password_env } } => {
            let dest = log::CopyTo { to, password_file: db_password_file, password_env: db_password_env };
            log::copy(&build(config).await?, &dest, &mut out).await
        }
        Command::State { action: StateAction::RenameTarget { old, new } } => {
            log::rename_target(&build(config).await?, &old, &new, &mut out).await
        }
        Command::Keys { action: KeysAction::Create } => keys::create(&config, &mut out).await,
        Command::State { action: StateAction::Prune { time } } => {
            log::prune(&build(config).await?, clock::now(time.now), &mut out).await
        }
        Command::Log { run, person, school, limit, all, json } => {
            let asked = log::LogAsked { run, person, school, limit, all };
            log::log(&build(config).await?, asked, json, &mut out).await
        }
        Command::Run { listen } => {
            drop(config);
            crate::daemon::run(&path, listen).await.map_err(|e| CliError::Message(connector_api::one_line(&e)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Approve { run, only, school, ops, accept_protected, json } => {
            let mut accept = Vec::new();
            for (on, name) in [
                (overrides.shrink, "shrink"),
                (overrides.missing, "missing"),
                (overrides.schema_change, "schema_change"),
                (overrides.scope_change, "scope_change"),
            ] {
                if on {
                    accept.push(name.to_string());
                }
            }
            let actions = crate::engine::actions_of_words(only.iter().map(String::as_str))
                .map_err(|e| CliError::Message(format!("--only {e}")))?;
            let selection = crate::engine::Selection { only: actions, school, ops, accept_protected, accept };
            log::approve(&build(config).await?, run, &selection, json, &mut out).await
        }
        Command::Runs { limit, json } => log::runs(&build(config).await?, limit, json, &mut out).await,
        Command::Conflicts { action, json } => {
            conflicts::conflicts(&build(config).await?, action, json, &mut out).await
        }
        Command::Renames { action } => conflicts::renames(&build(config).await?, action, overrides, &mut out).await,
        Command::Passwords { action: PasswordAction::Show { school, protected, all: _, target, json, now } } => {
            let request = crate::engine::passwords::HandOutRequest { school, protected, target };
            passwords::show(&build(config).await?, request, json, now, &mut out).await
        }
        Command::Passwords { action: PasswordAction::Forget { yes: _ } } => {
            let n = build(config).await?.forget_passwords(clock::now(None)).await?;
            std::io::Write::write_all(
                &mut out,
                format!("Forgot {n} first passwords; their accounts need passwords set by hand.\n").as_bytes(),
            )
            .map_err(io)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { action } => token(&build(config).await?, action, &mut out).await,
        Command::Explain { person, json, time } => {
            let engine = build(config).await?;
            let computed = engine.compute(clock::now(time.now), &overrides).await;
            let explained =
                engine.explain_in(computed.as_ref().map_err(|e| e.to_string()), &person, &Viewer::admin()).await?;
            std::io::Write::write_all(&mut out, explain::render(&explained, json)?.as_bytes()).map_err(io)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `enid token add|list|revoke`. A new token is printed alone on stdout, once, and never logged.
async fn token(engine: &Engine, action: TokenAction, out: &mut impl std::io::Write) -> Result<ExitCode, CliError> {
    match action {
        TokenAction::Add { name, role, school } => {
            let role = crate::engine::TokenRole::parse(&role)
                .ok_or_else(|| CliError::Message(format!("--role {role:?}: admin or school_admin")))?;
            let token = engine.add_token(&name, role, &school, clock::now(None)).await?;
            writeln!(out, "{}", token.expose()).map_err(io)?;
            eprintln!("enid: token {name:?} added; it is shown this once (the state keeps only its hash)");
        }
        TokenAction::List { json } => {
            for t in engine.tokens().await? {
                if json {
                    let line = serde_json::to_string(&t).map_err(|e| CliError::Message(e.to_string()))?;
                    writeln!(out, "{line}").map_err(io)?;
                } else {
                    writeln!(
                        out,
                        "{:<20} {:<12} {:<20} created {}{}",
                        t.name,
                        t.role,
                        if t.schools.is_empty() { "-".to_string() } else { t.schools.join(",") },
                        t.created_at,
                        t.revoked_at.map(|r| format!("  revoked {r}")).unwrap_or_default()
                    )
                    .map_err(io)?;
                }
            }
        }
        TokenAction::Revoke { name } => {
            engine.revoke_token(&name, clock::now(None)).await?;
            writeln!(out, "Revoked token {name:?}.").map_err(io)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Who decides at the CLI, as a decision records it: `local:USER` (the login name the
/// environment gives, as sudo and su set it).
pub(crate) fn local_user() -> String {
    let user = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).or_else(|_| std::env::var("LOGNAME"));
    format!("local:{}", user.unwrap_or_else(|_| "unknown".into()))
}

/// Runs a command on the runtime's worker threads rather than on the thread that started the
/// runtime. The targets' connections are served by tasks on the workers: a command waiting on
/// the main thread was woken across threads for every response, and woke a worker for every
/// request. 100,000 creates into slapd took some 1.5 s and 2.5 CPU-s more that way (the
/// directory shares the machine's cores). The command may hold its worker for a while (the
/// planning, the prompt): the runtime has at least two (`main`), so the lease's renewal and the
/// connections always have one. A panic in the command stays a panic.
async fn on_worker<T: Send + 'static>(
    command: impl std::future::Future<Output = Result<T, CliError>> + Send + 'static,
) -> Result<T, CliError> {
    match tokio::spawn(command).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(CliError::Message(format!("the command was cancelled: {e}"))),
    }
}

/// Builds the engine and shows what the operator should know about this start.
async fn build(config: Config) -> Result<Engine, CliError> {
    let engine = Engine::build(config).await?;
    for n in engine.notices() {
        eprintln!("enid: note: {n}");
    }
    Ok(engine)
}

/// The process ends right after a command; freeing a 100,000-person computation one allocation
/// at a time would add a third of a second to every run. Only the CLI does this, never a
/// long-running service.
pub(crate) fn exiting(computed: Computed) {
    std::mem::forget(computed);
}

pub(crate) fn io(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return CliError::BrokenPipe;
    }
    CliError::Message(format!("cannot write output: {e}"))
}

/// Shows the persons held because their accounts could not be computed; `Err` (exit 1) when
/// there are any, after the rest of the command has done its work.
pub(crate) fn failures(c: &Computed) -> Result<(), CliError> {
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

pub(crate) fn warn_rejected(c: &Computed) {
    for (source, errors) in &c.rejected {
        for e in errors {
            tracing::warn!("source \"{source}\": {e}; row left out");
        }
    }
}
