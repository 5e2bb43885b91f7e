//! `enid explain`: renders the engine's [`Explained`] (a person's identity, records, accounts
//! and what the next run will do) as text, or prints it as JSON. What may be shown (a protected
//! person by enid id only, civic numbers masked) is decided by the engine.

use super::CliError;
use crate::engine::{Explained, Explanation};
use std::fmt::Write as _;

/// The explanation as `enid explain` prints it: JSON, or text.
pub(super) fn render(explained: &Explained, json: bool) -> Result<String, CliError> {
    let e = match explained {
        Explained::Held(h) if !json => {
            return Ok(format!(
                "{} is held in conflict {}: {}. It gets no identity and no account until decided; see `enid \
                 conflicts`.\n",
                h.record,
                h.conflict,
                h.held.join(", ")
            ));
        }
        Explained::Person(e) if !json => e,
        _ => {
            return serde_json::to_string_pretty(explained)
                .map(|s| s + "\n")
                .map_err(|e| CliError::Message(e.to_string()));
        }
    };
    Ok(text(e))
}

fn text(e: &Explanation) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Identity {}", e.id);
    let _ = writeln!(s, "  username: {}", e.username.as_deref().unwrap_or("(none yet)"));
    let _ = writeln!(s, "\nRecords in the sources now:");
    if e.records_now.is_empty() && e.kept.is_some() {
        let _ = writeln!(s, "  none read: a row of theirs was rejected or is held; kept as at the last run (below)");
    } else if e.records_now.is_empty() {
        let _ = writeln!(s, "  none: no source has this person now");
    }
    for r in &e.records_now {
        let _ = writeln!(
            s,
            "  {}/{} ({})  {} {}  {}  school {}  groups {}  civic no {}{}{}",
            r.source,
            r.person_id,
            r.location,
            r.given_name,
            r.family_name,
            r.role,
            r.school_unit.as_deref().unwrap_or("-"),
            r.groups.join(","),
            r.civic_no.as_deref().unwrap_or("none"),
            r.start_date.map(|d| format!("  starts {d}")).unwrap_or_default(),
            r.end_date.map(|d| format!("  ends {d}")).unwrap_or_default(),
        );
    }
    let _ = writeln!(s, "\nRecords in the state database:");
    if e.records_stored.is_empty() {
        let _ = writeln!(s, "  none yet: the next apply records them");
    }
    for r in &e.records_stored {
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
    if !e.civic_history.is_empty() {
        let _ = writeln!(s, "\nCivic-number history (the identity and its accounts were kept):");
        for h in &e.civic_history {
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
    if e.accounts.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for a in &e.accounts {
        let when = match (a.disabled_on, a.deleted_on) {
            (Some(d), Some(del)) => format!(" since {d}; deleted on {del} unless the person returns before"),
            (Some(d), None) => format!(" since {d}; kept (no deletion for this role)"),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {}: {}  {}{when}",
            a.target,
            a.key.as_deref().unwrap_or("(create sent, key not known yet)"),
            a.status
        );
    }
    let _ = writeln!(s, "\nNext run:");
    match (&e.plan_error, &e.kept) {
        (Some(err), _) => {
            let _ = writeln!(s, "  unknown: the plan could not be computed ({err})");
        }
        (None, Some(kept)) => {
            let _ = writeln!(s, "  kept as at the last run: {kept}; no update, no disable, no group change");
        }
        (None, None) if e.next_run.is_empty() && e.blocked.is_empty() => {
            let _ = writeln!(s, "  nothing to do: every account matches the sources");
        }
        (None, None) => {
            for n in &e.next_run {
                let _ = writeln!(s, "  {}: {} ({})", n.target, n.action, n.reason);
            }
            for b in &e.blocked {
                let _ = writeln!(s, "  blocked on {b}");
            }
        }
    }
    s
}
