//! `enid log` (the sync log, protected persons by enid id only), `enid state backup` and
//! `enid state prune`.

use super::{CliError, io};
use crate::engine::Engine;
use crate::store::{LogFilter, StateStore};
use connector_api::civic::mask_if_civic;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Writes a consistent, owner-only copy of the state database.
pub(super) async fn backup(engine: &Engine, path: &Path, out: &mut impl Write) -> Result<ExitCode, CliError> {
    engine.store().backup(path).await?;
    writeln!(out, "Wrote a copy of the state database to {}.", path.display()).map_err(io)?;
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
    let identity = match person {
        Some(p) => {
            let ids = engine.store().find_identity(&p).await?;
            match ids.as_slice() {
                [one] => Some(one.clone()),
                [] => {
                    return Err(CliError::Message(format!("no person {:?} in the state database", mask_if_civic(&p))));
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
