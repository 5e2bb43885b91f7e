//! The delta query (`/users/delta`, `/groups/delta`): a first round lists every object, page
//! by page (`@odata.nextLink` with a `$skiptoken`), and ends with an `@odata.deltaLink` whose
//! `$deltatoken` is the change counter at its start; a round from a delta link lists what
//! changed after it: changed objects whole, soft-deleted users and deleted groups as `@removed`,
//! a group's member changes in `members@delta` (removed ones `@removed`). A delta link older than
//! the server's floor (`Handle::expire_delta_links`) answers 410 `resyncRequired`: read in full.

use crate::state::{Reply, State, error};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Objects a delta page holds.
const PAGE: usize = 100;

/// Where a round is: changes after `since` up to `upto`, from the `offset`-th object.
struct Round {
    since: u64,
    upto: u64,
    offset: usize,
}

fn round(state: &State, params: &BTreeMap<String, String>) -> Result<Round, Reply> {
    if let Some(t) = params.get("$skiptoken") {
        let parts: Vec<u64> = t.split('.').filter_map(|x| x.parse().ok()).collect();
        return match parts.as_slice() {
            [since, upto, offset] => Ok(Round { since: *since, upto: *upto, offset: *offset as usize }),
            _ => Err(error(400, "Request_BadRequest", "Invalid skip token.")),
        };
    }
    if let Some(t) = params.get("$deltatoken") {
        let since: u64 = t.parse().map_err(|_| error(400, "Request_BadRequest", "Invalid delta token."))?;
        if since < state.delta_floor {
            return Err(error(
                410,
                "resyncRequired",
                "The delta token has expired. Start a new delta query without a token.",
            ));
        }
        return Ok(Round { since, upto: state.counter, offset: 0 });
    }
    Ok(Round { since: 0, upto: state.counter, offset: 0 })
}

fn page(state: &State, what: &str, r: &Round, items: Vec<Value>) -> Reply {
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(r.offset).take(PAGE).collect();
    let base = &state.config.base_url;
    let mut out =
        json!({"@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#{what}"), "value": page});
    if r.offset + PAGE < total {
        out["@odata.nextLink"] =
            format!("{base}/v1.0/{what}/delta?$skiptoken={}.{}.{}", r.since, r.upto, r.offset + PAGE).into();
    } else {
        out["@odata.deltaLink"] = format!("{base}/v1.0/{what}/delta?$deltatoken={}", r.upto).into();
    }
    Reply { status: 200, body: out.to_string(), headers: Vec::new() }
}

pub(crate) fn users(state: &State, params: &BTreeMap<String, String>) -> Reply {
    let r = match round(state, params) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let items: Vec<Value> = state
        .users
        .values()
        .filter(|u| u.changed > r.since && u.changed <= r.upto && !(r.since == 0 && u.deleted))
        .map(|u| {
            if u.deleted {
                json!({"id": u.resource["id"], "@removed": {"reason": "changed"}})
            } else {
                u.resource.clone()
            }
        })
        .collect();
    page(state, "users", &r, items)
}

pub(crate) fn groups(state: &State, params: &BTreeMap<String, String>) -> Reply {
    let r = match round(state, params) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let items: Vec<Value> = state
        .groups
        .values()
        .filter(|g| g.changed > r.since && g.changed <= r.upto && !(r.since == 0 && g.deleted))
        .map(|g| {
            if g.deleted {
                return json!({"id": g.resource["id"], "@removed": {"reason": "deleted"}});
            }
            let mut v = g.resource.clone();
            // The net change of each member since the round's start.
            let mut net: BTreeMap<&str, bool> = BTreeMap::new();
            for (at, m, added) in &g.member_log {
                if *at > r.since && *at <= r.upto {
                    net.insert(m, *added);
                }
            }
            let members: Vec<Value> = net
                .into_iter()
                .map(|(m, added)| {
                    if added {
                        json!({"@odata.type": "#microsoft.graph.user", "id": m})
                    } else {
                        json!({"@odata.type": "#microsoft.graph.user", "id": m, "@removed": {"reason": "deleted"}})
                    }
                })
                .collect();
            v["members@delta"] = Value::Array(members);
            v
        })
        .collect();
    page(state, "groups", &r, items)
}
