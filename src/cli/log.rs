//! `enid log` (the sync log), `enid runs` (the runs), as the engine's queries give them
//! (protected persons by enid id only), and `enid state backup`.

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

/// Shows the sync log, newest last.
pub(super) async fn log(
    engine: &Engine,
    run: Option<i64>,
    person: Option<String>,
    school: Option<String>,
    limit: i64,
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode, CliError> {
    let filter = LogFilter { run, school, limit, ..LogFilter::default() };
    let rows = engine.log(filter, person.as_deref(), &Viewer::admin()).await?;
    for r in rows {
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
