//! `enid explain`: a person's identity, records, accounts and what the next run will do. A
//! person with protected personal data is explained by enid id only, and then without names,
//! keys, schools or civic-number digits.

use super::CliError;
use crate::engine::{Computed, Engine, find_in_run, identity_in_run};
use crate::store::StateStore;
use connector_api::civic::mask_if_civic;
use std::collections::BTreeSet;
use std::fmt::Write as _;

pub(super) async fn explain(
    engine: &Engine,
    computed: Result<&Computed, String>,
    needle: &str,
    json: bool,
) -> Result<String, CliError> {
    let mut ids: BTreeSet<String> = engine.store().find_identity(needle).await?.into_iter().collect();
    if let Ok(c) = computed {
        ids.extend(find_in_run(c, needle));
    }
    // The needle may be a source key that is a civic number: it is echoed masked only.
    let shown = mask_if_civic(needle);
    let id = match ids.len() {
        0 => {
            let held = computed.ok().and_then(|c| {
                c.plan.conflicts.iter().find(|k| k.held.iter().any(|h| h.rsplit('/').next() == Some(&*shown)))
            });
            return match held {
                Some(k) => Ok(format!(
                    "{shown} is held in conflict {}: {}. It gets no identity and no account until decided; see \
                     `enid conflicts`.\n",
                    k.id,
                    k.held.join(", ")
                )),
                None => {
                    Err(CliError::Message(format!("no person {shown:?}: not in the state database nor in the sources")))
                }
            };
        }
        1 => ids.into_iter().next().unwrap_or_default(),
        n => return Err(CliError::Message(format!("{shown:?} matches {n} identities: {ids:?}; use the enid id"))),
    };
    let mut stored = engine.store().records_of(&id).await?;
    let protected = computed.as_ref().ok().and_then(|c| identity_in_run(c, &id)).is_some_and(|i| i.is_protected())
        || stored.iter().any(|r| r.protected);
    let current = computed.as_ref().ok().and_then(|c| c.usernames.get(&id));
    if protected && needle != id && current.is_none_or(|u| !u.eq_ignore_ascii_case(needle)) {
        // Asked by a name or key, the answer would link them to the pseudonym and the enid id.
        return Err(CliError::Message(
            "that person has protected personal data and is shown by enid id only: `enid explain ENID_ID` (plans \
             list the id)"
                .into(),
        ));
    }
    if protected {
        for r in &mut stored {
            r.person_id = "(protected)".into();
            r.given_name = "(protected)".into();
            r.family_name = "(protected)".into();
            r.school_unit = None;
            r.groups.clear();
            // Even masked, a civic number shows the birth date: not for a protected person.
            r.civic_no = r.civic_no.as_ref().map(|_| "(protected)".into());
        }
    }
    // The grace period follows the person's roles: staff if any record says staff.
    let staff = stored.iter().any(|r| r.role == "staff");
    let grace = engine.lifecycle().grace_days(staff);
    let deletion = |a: &crate::core::model::OwnedAccount| {
        a.disabled_at.zip(grace).and_then(|(d, g)| d.checked_add_days(chrono::Days::new(u64::from(g))))
    };
    let mut civic_history = engine.store().civic_history_of(&id).await?;
    if protected {
        for h in &mut civic_history {
            h.record = "(protected)".into();
            h.old = h.old.as_ref().map(|_| "(protected)".into());
            h.new = h.new.as_ref().map(|_| "(protected)".into());
        }
    }
    let accounts = engine.store().accounts(Some(&id)).await?;
    let kept: Option<String> =
        computed.as_ref().ok().and_then(|c| c.plan.kept.iter().find(|k| k.identity == id)).map(|k| k.reason.clone());
    let (current, username, next, blocked): (
        Vec<serde_json::Value>,
        Option<String>,
        Vec<serde_json::Value>,
        Vec<String>,
    ) = match computed {
        Ok(c) => {
            let ident = identity_in_run(c, &id);
            let current = ident
                .map(|i| {
                    i.records
                        .iter()
                        .map(|r| {
                            serde_json::json!({
                                "source": r.source,
                                "person_id": if protected { "(protected)".into() } else { mask_if_civic(&r.record.person_id) },
                                "location": if protected { "(protected)" } else { r.record.location.as_str() },
                                "given_name": if protected { "(protected)" } else { r.record.given_name.as_str() },
                                "family_name": if protected { "(protected)" } else { r.record.family_name.as_str() },
                                "civic_no": r.record.civic_no.as_ref().map(|c| if protected { "(protected)".into() } else { c.masked() }),
                                "role": r.record.roles().iter().map(|r| r.as_str()).collect::<Vec<_>>().join(","),
                                "school_unit": if protected { None } else { r.record.school_unit_codes() },
                                "affiliations": if protected { Vec::new() } else { r.record.affiliations.clone() },
                                // The number a school admin knows; one shaped like a civic number is masked.
                                "external_ids": if protected { Vec::new() } else {
                                    r.record.external_ids.iter().map(|e| mask_if_civic(e)).collect::<Vec<_>>()
                                },
                                "groups": if protected { Vec::new() } else {
                                    r.record.groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>()
                                },
                                "start_date": r.record.start_date(), "end_date": r.record.end_date(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let next = c
                .plan
                .operations
                .iter()
                .filter(|o| o.identity == id)
                .map(|o| o.redacted())
                .map(|o| serde_json::json!({"target": o.target, "action": o.action.as_str(), "reason": o.reason, "op": o.op, "before": o.before}))
                .collect();
            let blocked = c
                .plan
                .blocked
                .iter()
                .filter(|b| b.identity == id)
                // A reason names accounts on the target (their keys can carry a protected
                // person's names): for a protected person only that they are blocked.
                .map(|b| {
                    if protected {
                        format!(
                            "{}: blocked (an account made before enid is in the way; its key is not shown for a \
                             protected person)",
                            b.target
                        )
                    } else {
                        format!("{}: {}", b.target, b.reason)
                    }
                })
                .collect();
            (current, c.usernames.get(&id).cloned(), next, blocked)
        }
        Err(_) => (Vec::new(), None, Vec::new(), Vec::new()),
    };
    let value = serde_json::json!({
        "id": id,
        "username": username,
        "records_now": current,
        "records_stored": stored,
        "accounts": accounts.iter().map(|a| serde_json::json!({
            "target": a.target, "key": a.key, "anchor": a.anchor, "status": a.status.as_str(),
            "disabled_on": a.disabled_at, "deleted_on": deletion(a),
        })).collect::<Vec<_>>(),
        "civic_history": civic_history,
        "next_run": next,
        "blocked": blocked,
        "kept": kept,
        "plan_error": computed.as_ref().err(),
    });
    if json {
        return serde_json::to_string_pretty(&value).map(|s| s + "\n").map_err(|e| CliError::Message(e.to_string()));
    }
    let mut s = String::new();
    let _ = writeln!(s, "Identity {id}");
    let _ = writeln!(s, "  username: {}", value["username"].as_str().unwrap_or("(none yet)"));
    let _ = writeln!(s, "\nRecords in the sources now:");
    if current.is_empty() && kept.is_some() {
        let _ = writeln!(s, "  none read: a row of theirs was rejected or is held; kept as at the last run (below)");
    } else if current.is_empty() {
        let _ = writeln!(s, "  none: no source has this person now");
    }
    for r in &current {
        let _ = writeln!(
            s,
            "  {}/{} ({})  {} {}  {}  school {}  groups {}  civic no {}{}{}",
            r["source"].as_str().unwrap_or(""),
            r["person_id"].as_str().unwrap_or(""),
            r["location"].as_str().unwrap_or(""),
            r["given_name"].as_str().unwrap_or(""),
            r["family_name"].as_str().unwrap_or(""),
            r["role"].as_str().unwrap_or(""),
            r["school_unit"].as_str().unwrap_or("-"),
            r["groups"]
                .as_array()
                .map(|g| g.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
            r["civic_no"].as_str().unwrap_or("none"),
            r["start_date"].as_str().map(|d| format!("  starts {d}")).unwrap_or_default(),
            r["end_date"].as_str().map(|d| format!("  ends {d}")).unwrap_or_default(),
        );
    }
    let _ = writeln!(s, "\nRecords in the state database:");
    if stored.is_empty() {
        let _ = writeln!(s, "  none yet: the next apply records them");
    }
    for r in &stored {
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
    if !civic_history.is_empty() {
        let _ = writeln!(s, "\nCivic-number history (the identity and its accounts were kept):");
        for h in &civic_history {
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
    if accounts.is_empty() {
        let _ = writeln!(s, "  none");
    }
    for a in &accounts {
        let when = match (a.disabled_at, deletion(a)) {
            (Some(d), Some(del)) => format!(" since {d}; deleted on {del} unless the person returns before"),
            (Some(d), None) => format!(" since {d}; kept (no deletion for this role)"),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {}: {}  {}{when}",
            a.target,
            a.key.as_deref().unwrap_or("(create sent, key not known yet)"),
            a.status.as_str()
        );
    }
    let _ = writeln!(s, "\nNext run:");
    match computed {
        Err(e) => {
            let _ = writeln!(s, "  unknown: the plan could not be computed ({e})");
        }
        Ok(_) if kept.is_some() => {
            let _ = writeln!(
                s,
                "  kept as at the last run: {}; no update, no disable, no group change",
                kept.as_deref().unwrap_or("")
            );
        }
        Ok(_) if next.is_empty() && blocked.is_empty() => {
            let _ = writeln!(s, "  nothing to do: every account matches the sources");
        }
        Ok(_) => {
            for n in &next {
                let _ = writeln!(
                    s,
                    "  {}: {} ({})",
                    n["target"].as_str().unwrap_or(""),
                    n["action"].as_str().unwrap_or(""),
                    n["reason"].as_str().unwrap_or("")
                );
            }
            for b in &blocked {
                let _ = writeln!(s, "  blocked on {b}");
            }
        }
    }
    Ok(s)
}
