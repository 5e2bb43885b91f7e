//! `enid passwords show`: the first passwords of new accounts, for a school admin to hand out.
//! Each is shown once and then forgotten; a protected person's only with `--protected`, by enid
//! id, without name or username.

use super::{CliError, io};
use crate::engine::Engine;
use crate::engine::passwords::HandOutRequest;
use chrono::{DateTime, Utc};
use std::io::Write;
use std::process::ExitCode;

pub(super) async fn show(
    engine: &Engine,
    request: HandOutRequest,
    json: bool,
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> Result<ExitCode, CliError> {
    let result = engine.hand_out_passwords(&request, now).await?;
    let handed = result.passwords;
    let unreadable = |code: ExitCode| -> Result<ExitCode, CliError> {
        for u in &result.unreadable {
            eprintln!("enid: {u}");
        }
        match result.unreadable.as_slice() {
            [] => Ok(code),
            [one] => Err(CliError::Message(one.clone())),
            [first, ..] => Err(CliError::Message(format!(
                "{} first passwords cannot be read (first: {first})",
                result.unreadable.len()
            ))),
        }
    };
    if json {
        let text = serde_json::to_string_pretty(&handed).map_err(|e| CliError::Message(e.to_string()))?;
        writeln!(out, "{text}").map_err(io)?;
        return unreadable(ExitCode::SUCCESS);
    }
    if handed.is_empty() {
        writeln!(
            out,
            "No first passwords to hand out{}. Each is shown once; one not shown within [state] password_handout_days \
             is forgotten, and the account then needs a password set by hand.",
            match (&request.school, request.protected) {
                (_, true) => " for protected persons".to_string(),
                (Some(s), _) => format!(" for school unit {s}"),
                (None, _) => String::new(),
            }
        )
        .map_err(io)?;
        return unreadable(ExitCode::SUCCESS);
    }
    if request.protected {
        writeln!(out, "{:<38} {:<12} {:<20} PASSWORD", "ENID ID", "TARGET", "SET").map_err(io)?;
        for h in &handed {
            writeln!(out, "{:<38} {:<12} {:<20} {}", h.identity, h.target, h.set_at, h.password.expose()).map_err(io)?;
        }
    } else {
        writeln!(out, "{:<20} {:<30} {:<12} {:<10} PASSWORD", "USERNAME", "NAME", "TARGET", "SCHOOL").map_err(io)?;
        for h in &handed {
            writeln!(
                out,
                "{:<20} {:<30} {:<12} {:<10} {}",
                h.username.as_deref().unwrap_or("-"),
                h.display_name.as_deref().unwrap_or("-"),
                h.target,
                h.school,
                h.password.expose()
            )
            .map_err(io)?;
        }
    }
    writeln!(
        out,
        "\n{} first password(s) shown; enid has forgotten them. The user must choose a new one at the first logon.",
        handed.len()
    )
    .map_err(io)?;
    unreadable(ExitCode::SUCCESS)
}
