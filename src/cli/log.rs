//! `enid log` (the sync log), `enid runs` (the runs), as the engine's queries give them
//! (protected persons by enid id only), `enid state backup` and `enid state prune`.

use super::{CliError, io};
use crate::engine::{Engine, Viewer};
use crate::store::{LogFilter, StateStore};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Writes a consistent, owner-only copy of the state database.
pub(super) async fn backup(engine: &Engine, path: &Path, out: &mut impl Write) -> Result<ExitCode, CliError> {
    engine.store().backup(path).await?;
    writeln!(out, "Wrote a copy of the state database to {}.", path.display()).map_err(io)?;
    Ok(ExitCode::SUCCESS)
}

/// Where `enid state copy` writes.
pub(super) struct CopyTo {
    pub to: String,
    pub password_file: Option<std::path::PathBuf>,
    pub password_env: Option<String>,
}

/// Copies the state into a new file or an empty PostgreSQL database, holding the run lock so
/// that nothing writes to the state meanwhile, and shows each table's count and checksum.
pub(super) async fn copy(engine: &Engine, dest: &CopyTo, out: &mut impl Write) -> Result<ExitCode, CliError> {
    use crate::store::{PgStore, SqliteStore, Store, StoreError};
    let _lock = engine.lock("state copy", crate::clock::now(None)).await?;
    let target = if dest.to.starts_with("postgres://") || dest.to.starts_with("postgresql://") {
        let fail = |message: String| StoreError { path: "--to".into(), message };
        let password = match (&dest.password_file, &dest.password_env) {
            (None, None) => None,
            (file, env) => Some(
                connector_api::load_configured_secret(file.as_deref(), env.as_deref(), "--db-password-file")
                    .map_err(fail)?,
            ),
        };
        let parsed =
            crate::store::postgres::parse_url(&dest.to, password.as_ref().map(|p| p.expose())).map_err(fail)?;
        Store::Postgres(PgStore::open(parsed).await?)
    } else {
        let path = Path::new(&dest.to);
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Err(StoreError {
                path: dest.to.clone(),
                message: "exists and is not empty; copy into a new file".into(),
            }
            .into());
        }
        Store::Sqlite(SqliteStore::open(path).await?)
    };
    let tables = match crate::store::copy::copy(engine.store(), &target).await {
        Ok(tables) => tables,
        Err(e) => {
            // A new file the copy failed to fill is not left to be taken for a state.
            if let Store::Sqlite(_) = target {
                drop(target);
                for suffix in ["", "-wal", "-shm", ".migrate.lock"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", dest.to));
                }
            }
            return Err(e.into());
        }
    };
    let rows: u64 = tables.iter().map(|t| t.rows).sum();
    writeln!(out, "Copied the state from {} to {}:", engine.store().path(), target.path()).map_err(io)?;
    for t in &tables {
        writeln!(out, "  {:<20} {:>9} rows  sha256 {}", t.table, t.rows, &t.sha256[..16]).map_err(io)?;
    }
    writeln!(
        out,
        "Every table ({} of them, {rows} rows) read back from both sides matches. Point [state] at the copy \
         ({}), and keep the old state until the first run on the new one has finished.",
        tables.len(),
        match &target {
            Store::Postgres(_) => "url, with db_password_file or db_password_env",
            Store::Sqlite(_) => "path",
        }
    )
    .map_err(io)?;
    Ok(ExitCode::SUCCESS)
}

/// Removes the sync log older than `keep_log_for` and says how much went.
pub(super) async fn prune(
    engine: &Engine,
    now: chrono::DateTime<chrono::Utc>,
    out: &mut impl Write,
) -> Result<ExitCode, CliError> {
    let (p, before) = engine.prune(now).await?;
    writeln!(
        out,
        "Removed {} runs, {} operation-log rows and {} saved plans from before {}.",
        p.runs,
        p.log_rows,
        p.plans,
        before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
    .map_err(io)?;
    Ok(ExitCode::SUCCESS)
}

/// Moves the state's records of a target renamed in the config to its new id.
pub(super) async fn rename_target(
    engine: &Engine,
    old: &str,
    new: &str,
    out: &mut impl Write,
) -> Result<ExitCode, CliError> {
    let n = engine.rename_target(old, new, crate::clock::now(None)).await?;
    writeln!(out, "Moved {n} accounts and everything else recorded on target \"{old}\" to \"{new}\".").map_err(io)?;
    Ok(ExitCode::SUCCESS)
}

/// What `enid log` was asked for.
pub(super) struct LogAsked {
    pub run: Option<i64>,
    pub person: Option<String>,
    pub school: Option<String>,
    pub limit: i64,
    /// Every run's rows, not only the last run's that did something.
    pub all: bool,
}

/// Shows the sync log, newest last: without a selection (or `all`), the last run that did something. In
/// text, each run's rows follow a line that sums the run up.
pub(super) async fn log(
    engine: &Engine,
    asked: LogAsked,
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode, CliError> {
    let LogAsked { run, person, school, limit, all } = asked;
    let viewer = Viewer::admin();
    let run = match (run, &person, &school) {
        (None, None, None) if !all => match engine.last_run_with_operations(&viewer).await? {
            Some(id) => Some(id),
            None => {
                if !json {
                    writeln!(out, "No operations logged yet (`enid runs` lists every run).").map_err(io)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
        },
        _ => run,
    };
    let filter = LogFilter { run, school, limit, ..LogFilter::default() };
    let rows = engine.log(filter, person.as_deref(), &viewer).await?;
    if !json && rows.len() as i64 == limit {
        writeln!(out, "(the newest {limit} rows: --limit N shows more)").map_err(io)?;
    }
    let mut last_run = None;
    for r in rows {
        if json {
            writeln!(out, "{}", serde_json::to_string(&r).map_err(|e| CliError::Message(e.to_string()))?)
                .map_err(io)?;
            continue;
        }
        if last_run != Some(r.run_id) {
            last_run = Some(r.run_id);
            if let Some(v) = engine.run_by_id(r.run_id, &viewer).await? {
                writeln!(out, "{}", run_line(&v)).map_err(io)?;
            }
        }
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
        .map_err(io)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A run summed up in one line: what, when, how it ended, and its counts.
fn run_line(v: &crate::engine::RunView) -> String {
    let mut line = format!("== run {} ({}, {}): {}", v.run.id, v.run.command, v.run.started_at, v.run.status);
    if let Some(t) = &v.tally {
        let planned: Vec<String> =
            t.planned.iter().map(|(a, n)| format!("{} {a}", crate::engine::thousands(*n))).collect();
        if !planned.is_empty() {
            line.push_str(&format!("; planned {}", planned.join(", ")));
        }
        line.push_str(&format!(
            "; {} done, {} failed, {} not sent",
            crate::engine::thousands(t.ok),
            crate::engine::thousands(t.failed),
            crate::engine::thousands(t.not_sent)
        ));
    }
    line
}

/// Lists the newest runs, oldest first: every apply, adopt and daemon run, however it ended.
pub(super) async fn runs(engine: &Engine, limit: i64, json: bool, out: &mut impl Write) -> Result<ExitCode, CliError> {
    for r in engine.runs(limit, &Viewer::admin()).await? {
        if json {
            writeln!(out, "{}", serde_json::to_string(&r).map_err(|e| CliError::Message(e.to_string()))?)
        } else {
            let planned = r
                .tally
                .as_ref()
                .map(|t| t.planned.iter().map(|(a, n)| format!("{n} {a}")).collect::<Vec<_>>().join(", "))
                .filter(|s| !s.is_empty())
                .map(|s| format!("  [{s}]"))
                .unwrap_or_default();
            writeln!(
                out,
                "run {:<5} {}  {:<8} {:<11} {}{planned}",
                r.run.id,
                r.run.started_at,
                r.run.command,
                r.run.status,
                r.run.message.as_deref().unwrap_or("")
            )
        }
        .map_err(io)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Records an approval of a held run's operations for the service's next run.
pub(super) async fn approve(
    engine: &Engine,
    run: i64,
    selection: &crate::engine::Selection,
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode, CliError> {
    let by = super::local_user();
    let summary = engine.approve_run(run, selection, &by, &Viewer::admin(), crate::clock::now(None)).await?;
    if json {
        let text = serde_json::to_string(&summary).map_err(|e| CliError::Message(e.to_string()))?;
        writeln!(out, "{text}").map_err(io)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "Approved {} operations of run {} (as {by}), until {}: the service's next run carries out those it still \
         plans exactly so, and holds anything new or changed.",
        summary.approved, summary.run_id, summary.expires_at
    )
    .map_err(io)?;
    if !summary.guards.is_empty() {
        writeln!(out, "The next run may go past: {}.", summary.guards.join(", ")).map_err(io)?;
    }
    if summary.left_protected > 0 {
        writeln!(out, "Left out: {} operations on protected persons (--accept-protected).", summary.left_protected)
            .map_err(io)?;
    }
    if summary.left_disabled_outside > 0 {
        writeln!(
            out,
            "Left out: {} enables of accounts disabled outside enid (--only enable).",
            summary.left_disabled_outside
        )
        .map_err(io)?;
    }
    Ok(ExitCode::SUCCESS)
}
