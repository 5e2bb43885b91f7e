//! `enid conflicts` (the queue of records held as possibly one person, and decisions on them)
//! and `enid renames` (username changes held for approval).

use super::render::render_conflicts;
use super::{CliError, ConflictAction, RenameAction, io};
use crate::clock;
use crate::core::identity::Decision;
use crate::engine::{Engine, Overrides};
use crate::store::StateStore;
use connector_api::civic::mask_if_civic;
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

/// Lists the renames waiting for approval, or approves one.
pub(super) async fn renames(
    engine: &Engine,
    action: Option<RenameAction>,
    overrides: Overrides,
    out: &mut impl Write,
) -> Result<ExitCode, CliError> {
    let now = clock::now(None);
    let computed = engine.compute(now, &overrides).await?;
    let held = &computed.plan.held_renames;
    match action {
        None => {
            if held.is_empty() {
                writeln!(out, "No renames are waiting for approval.").map_err(io)?;
            }
            for r in held {
                writeln!(out, "{}  {} → {}   approve: enid renames approve {}", r.identity, r.old, r.new, r.old)
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
            writeln!(out, "Approved: {} → {}. The next apply renames the accounts.", r.old, r.new).map_err(io)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
