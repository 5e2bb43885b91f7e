//! Plans and conflicts as text. Renders only what `Computed::shown_plan` lets be shown:
//! persons with protected personal data by enid id only.

use crate::core::identity::ConflictKind;
use crate::engine::thousands;
use crate::engine::{Computed, LISTED_PER_ACTION, PlanSelection, PlanView};
use std::fmt::Write as _;

/// What of a plan the text lists: the selected operations, at most [`LISTED_PER_ACTION`] of
/// each action and of each other list unless `all`.
#[derive(Debug, Clone, Default)]
pub struct Listed {
    pub selection: PlanSelection,
    pub all: bool,
}

/// The plan as text: its shape first (a summary per target and per school unit, what holds it or
/// waits), then the selected operations grouped by action, capped, then the other lists.
pub fn render_plan(c: &Computed, listed: &Listed) -> String {
    let shown = c.shown_plan();
    let plan = &shown;
    let cap = if listed.all { None } else { Some(LISTED_PER_ACTION) };
    let view = crate::engine::plan_view(plan, &listed.selection, cap);
    let mut s = String::new();
    let reads: Vec<String> = c
        .counts
        .iter()
        .map(|(k, v)| {
            // How it was read (the changes since the last apply, or in full) and whom it skips.
            let how = match c.reads.get(k) {
                Some((_, false)) => " (changes merged with the last read)",
                _ => "",
            };
            let skipped: Vec<String> =
                c.skipped.get(k).into_iter().flatten().map(|(why, n)| format!("{n} skipped: {why}")).collect();
            let skipped = if skipped.is_empty() { String::new() } else { format!(" [{}]", skipped.join(", ")) };
            format!("{k}: {v} records{how}{skipped}")
        })
        .collect();
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
            "  target \"{t}\": {} create, {}{} rename, {}{} update, {} enable, {} disable, {} delete, {} unchanged, {} not managed by enid",
            sum.create,
            if sum.claim > 0 { format!("{} claim, ", sum.claim) } else { String::new() },
            sum.rename,
            if sum.r#move > 0 { format!("{} move, ", sum.r#move) } else { String::new() },
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
    let interrupted: Vec<_> = plan.adoptions.iter().filter(|a| !a.by_username && !a.status_only).collect();
    let recorded = |disabled: bool| plan.adoptions.iter().filter(|a| a.status_only && a.disabled == disabled).count();
    if recorded(true) > 0 {
        let _ = writeln!(
            s,
            "  accounts of leavers already disabled on the target (a stopped run, or by hand), to be recorded as \
             disabled from today (their grace period starts): {}",
            recorded(true)
        );
    }
    if recorded(false) > 0 {
        let _ = writeln!(
            s,
            "  accounts already enabled on the target that the state has as disabled (a stopped run), to be \
             recorded as active: {}",
            recorded(false)
        );
    }
    if !interrupted.is_empty() {
        let _ =
            writeln!(s, "  accounts created by an interrupted run, to be recorded as enid's: {}", interrupted.len());
    }
    let other: Vec<_> = plan.claims.iter().filter(|c| c.other_username.is_some()).collect();
    if !other.is_empty() {
        let _ = writeln!(
            s,
            "  matched, other username: {} accounts made before enid match a person whose enid username differs; \
             each is claimed only together with its rename (`--only claim,rename`)",
            other.len()
        );
    }
    by_school(&mut s, &view, listed.all);
    let waiting = plan.operations.heads().filter(|o| o.needs_approval).count() + plan.unprotect.len();
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
    if !listed.selection.is_empty() {
        let _ = writeln!(
            s,
            "\nlisting {} of {} operations ({})",
            thousands(view.selected),
            thousands(view.total),
            describe(&listed.selection)
        );
    }
    for l in &view.listings {
        let _ = writeln!(s, "\n{} ({})", l.action, thousands(l.selected));
        for op in &l.operations {
            let _ = write!(
                s,
                "  {:<10} {:<22} {:<8} {}",
                op.target,
                op.username,
                if op.school.is_empty() { "-" } else { &op.school },
                op.reason
            );
            if let (Some(before), connector_api::TargetOp::Update { changes, .. }) = (op.before(), &op.op) {
                for ch in changes {
                    let old = before.get(&ch.attr).map(|v| v.to_string()).unwrap_or_default();
                    let _ = write!(
                        s,
                        "\n  {:<10} {:<22} {:<8}   {}: {:?} → {:?}",
                        "",
                        "",
                        "",
                        ch.attr,
                        old,
                        ch.values.to_string()
                    );
                }
            }
            s.push('\n');
        }
        if l.more() > 0 {
            let _ = writeln!(
                s,
                "  … and {} more (all of them: `enid plan --all`; or narrow with --only {}, --school, --target, --person)",
                thousands(l.more()),
                // The word `--only` takes: a group action's is `groups`.
                if l.action.contains(' ') { "groups" } else { l.action }
            );
        }
    }
    if !plan.unprotect.is_empty() {
        let _ = writeln!(
            s,
            "\nprotection kept ({}): no source marks these persons as protected any more; they stay protected until \
             this plan is applied with --accept-protected",
            plan.unprotect.len()
        );
        for id in head(&plan.unprotect, listed.all) {
            let _ = writeln!(s, "  {id}");
        }
        more(&mut s, plan.unprotect.len(), listed.all);
    }
    if !plan.conflicts.is_empty() {
        let held: usize = plan.conflicts.iter().map(|c| c.held.len()).sum();
        let _ = writeln!(
            s,
            "\nheld ({held} records in {} conflicts): no account until decided; see `enid conflicts`",
            plan.conflicts.len()
        );
        for c in head(&plan.conflicts, listed.all) {
            let note = match c.kind {
                ConflictKind::KeyReused => format!(
                    "  (the key now carries another civic number, {}: the person it belonged to is kept as they are)",
                    c.civic_no
                ),
                _ => String::new(),
            };
            let _ = writeln!(s, "  {}  {}{note}", c.id, c.held.join(", "));
        }
        more(&mut s, plan.conflicts.len(), listed.all);
    }
    if !plan.kept.is_empty() {
        let _ = writeln!(
            s,
            "\nkept as at the last run ({}): no update, no disable, no group change until their rows are read again",
            plan.kept.len()
        );
        for k in head(&plan.kept, listed.all) {
            let _ = writeln!(s, "  {:<22} {}", k.username, k.reason);
        }
        more(&mut s, plan.kept.len(), listed.all);
    }
    if !plan.held_renames.is_empty() {
        let _ = writeln!(
            s,
            "\nrenames waiting for approval ({}): approve with `enid renames approve USERNAME`",
            plan.held_renames.len()
        );
        for r in head(&plan.held_renames, listed.all) {
            let _ = writeln!(s, "  {} → {}", r.old, r.new);
        }
        more(&mut s, plan.held_renames.len(), listed.all);
    }
    if !plan.civic_changes.is_empty() {
        let _ = writeln!(
            s,
            "\ncivic-number changes ({}): identities, usernames and accounts are kept",
            plan.civic_changes.len()
        );
        for c in head(&plan.civic_changes, listed.all) {
            let _ = writeln!(s, "  {c}");
        }
        more(&mut s, plan.civic_changes.len(), listed.all);
    }
    if !plan.blocked.is_empty() {
        let _ =
            writeln!(s, "\nblocked ({}): these persons get no account until the cause is fixed", plan.blocked.len());
        for b in head(&plan.blocked, listed.all) {
            let _ = writeln!(s, "  {:<10} {:<22} {}", b.target, b.username, b.reason);
        }
        more(&mut s, plan.blocked.len(), listed.all);
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
            ConflictKind::KeyReused => {
                "the source key now carries another civic number or another person's names (given to another person?)"
            }
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
                "  --merge: the same person, the number or the names were corrected (the new ones are recorded);\n  \
                 --separate: another person (the record gets an identity of its own; the first person's \
                 accounts follow the leaver lifecycle)\n"
            );
        }
    }
    s
}

/// The plan's operations per target and school unit, one line each, at most
/// [`LISTED_PER_ACTION`] lines unless `all`.
fn by_school(s: &mut String, view: &PlanView, all: bool) {
    let mut rows: Vec<((&str, &str), Vec<String>)> = Vec::new();
    for r in &view.shape {
        let key = (r.target.as_str(), r.school.as_str());
        let count = format!("{} {}", thousands(r.count), r.action);
        match rows.last_mut() {
            Some((k, counts)) if *k == key => counts.push(count),
            _ => rows.push((key, vec![count])),
        }
    }
    // One target and one school unit (or none) say nothing the summary above does not.
    if rows.len() < 2 {
        return;
    }
    let _ = writeln!(s, "  by school unit (\"-\": none, or not shown for a protected person):");
    let shown = if all { rows.len() } else { rows.len().min(LISTED_PER_ACTION) };
    for ((target, school), counts) in &rows[..shown] {
        let school = if school.is_empty() { "-" } else { school };
        let _ = writeln!(s, "    {target:<10} {school:<10} {}", counts.join(", "));
    }
    if rows.len() > shown {
        let _ = writeln!(
            s,
            "    … and {} more (all of them: `enid plan --all`; one school unit: --school UNIT)",
            thousands(rows.len() - shown)
        );
    }
}

/// A selection in words: "create or update; school unit S1; target ldap".
fn describe(sel: &PlanSelection) -> String {
    let mut parts = Vec::new();
    if !sel.only.is_empty() {
        parts.push(sel.only.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" or "));
    }
    if let Some(school) = &sel.school {
        parts.push(format!("school unit {school}"));
    }
    if let Some(target) = &sel.target {
        parts.push(format!("target {target}"));
    }
    if let Some(person) = &sel.person {
        parts.push(format!("person {person}"));
    }
    parts.join("; ")
}

/// The first [`LISTED_PER_ACTION`] items of a list, or all of them.
fn head<T>(items: &[T], all: bool) -> &[T] {
    if all { items } else { &items[..items.len().min(LISTED_PER_ACTION)] }
}

/// The line that says how many items of a list [`head`] left out.
fn more(s: &mut String, len: usize, all: bool) {
    if !all && len > LISTED_PER_ACTION {
        let _ = writeln!(s, "  … and {} more (all of them: `enid plan --all`)", thousands(len - LISTED_PER_ACTION));
    }
}
