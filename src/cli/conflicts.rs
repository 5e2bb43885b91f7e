//! `enid conflicts` (the queue of records held as possibly one person, and decisions on them)
//! and `enid renames` (username changes held for approval).

use super::render::render_conflicts;
use super::{CliError, ConflictAction, RenameAction, io};
use crate::clock;
use crate::engine::{Choice, Engine, Overrides};
use std::io::Write;
use std::process::ExitCode;

/// Lists the open conflicts, or records a decision on one.
pub(super) async fn conflicts(
    engine: &Engine,
    action: Option<ConflictAction>,
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode, CliError> {
    let now = clock::now(None);
    match action {
        None => {
            let conflicts = engine.conflicts(now).await?;
            if json {
                let text = serde_json::to_string_pretty(&conflicts).map_err(|e| CliError::Message(e.to_string()))?;
                writeln!(out, "{text}").map_err(io)?;
            } else {
                write!(out, "{}", render_conflicts(&conflicts)).map_err(io)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(ConflictAction::Resolve { id, merge, separate: _, into }) => {
            let choice = if merge { Choice::Merge { into } } else { Choice::Separate };
            let merged = matches!(choice, Choice::Merge { .. });
            let conflict = engine.decide_conflict(&id, choice, &super::local_user(), now).await?;
            let what = if merged { "merged into one identity" } else { "kept as separate identities" };
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

/// Lists the renames waiting for approval, or approves one.
pub(super) async fn renames(
    engine: &Engine,
    action: Option<RenameAction>,
    overrides: Overrides,
    out: &mut impl Write,
) -> Result<ExitCode, CliError> {
    let now = clock::now(None);
    match action {
        None => {
            let held = engine.held_renames(now, &overrides).await?;
            if held.is_empty() {
                writeln!(out, "No renames are waiting for approval.").map_err(io)?;
            }
            for r in held {
                writeln!(out, "{}  {} → {}   approve: enid renames approve {}", r.identity, r.old, r.new, r.old)
                    .map_err(io)?;
            }
        }
        Some(RenameAction::Approve { person }) => {
            let r = engine.approve_rename(&person, &super::local_user(), now, &overrides).await?;
            writeln!(out, "Approved: {} → {}. The next apply renames the accounts.", r.old, r.new).map_err(io)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
