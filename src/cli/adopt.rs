//! `enid adopt`: what it would claim (with the progress display while it reads), a
//! confirmation, and the claim.

use super::progress::Display;
use super::{CliError, io};
use crate::clock;
use crate::engine::{ByHand, Engine};
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// Works out the claim, shows it, asks (or takes `--yes`), and records it.
pub(super) async fn adopt(
    engine: &Engine,
    by_hand: Option<ByHand>,
    yes: bool,
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode, CliError> {
    let now = clock::now(None);
    let _lock = engine.lock("adopt", now).await?;
    let display = Display::for_command(json);
    let planned = engine.plan_adopt(now, by_hand.as_ref(), Display::hook(&display).as_deref()).await;
    // Cleared before anything is written, also before an error's message.
    drop(display);
    let plan = planned?;
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

/// Records an operator's decision that an entry made before enid is not a person's.
pub(super) async fn not_theirs(
    engine: &Engine,
    by_hand: ByHand,
    yes: bool,
    out: &mut impl Write,
) -> Result<ExitCode, CliError> {
    let now = clock::now(None);
    let _lock = engine.lock("adopt", now).await?;
    if !yes {
        return Err(CliError::Message(
            "nothing was recorded: `enid adopt --entry KEY --person SOURCE/PERSON_ID --not-theirs --yes` records the \
             decision"
                .into(),
        ));
    }
    let (target, identity) = engine.refuse_claim(&by_hand, now).await?;
    writeln!(
        out,
        "Recorded: the entry on target \"{target}\" is not identity {identity}'s; it is never claimed for them, and a \
         new person gets another username. `enid plan` shows what the next apply does."
    )
    .map_err(io)?;
    Ok(ExitCode::SUCCESS)
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
    if !p.correlated.is_empty() {
        let _ = writeln!(
            s,
            "\nMade before enid, matched by the correlation rules ({}): not recorded now; the next plan claims \
             them (claim operations, under the claim threshold):",
            p.correlated.len()
        );
        for c in &p.correlated {
            let rule = match c.rule {
                crate::core::plan::Rule::Attribute => "attribute",
                crate::core::plan::Rule::Username => "username",
            };
            let _ = writeln!(s, "  {:<10} {} for identity {} (by {rule})", c.target, c.key, c.identity);
        }
    }
    if !p.unmatched.is_empty() {
        let _ = writeln!(s, "\nNot matched ({}): left alone, and blocked in plans until claimed:", p.unmatched.len());
        for u in &p.unmatched {
            let _ = writeln!(s, "  {:<10} {}: {}", u.target, u.key, u.reason);
        }
    }
    s
}
