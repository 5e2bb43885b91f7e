//! Org units (`customer/{customer}/orgunits`: list with `type=all`, insert with
//! `parentOrgUnitPath`, get by path), groups (insert, list by `customer` or `domain` with
//! paging, get, patch, delete) and their members (list with paging, insert: 409
//! "Member already exists." for one already in, delete, `hasMember`).

use crate::state::{Group, Reply, State, error};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Instant;

pub(crate) fn orgunits(
    state: &mut State,
    method: &str,
    path: &str,
    params: &BTreeMap<String, String>,
    body: &Value,
) -> Reply {
    let resource = |p: &str| {
        let (parent, name) = p.rsplit_once('/').unwrap_or(("", p));
        json!({"kind": "admin#directory#orgUnit", "orgUnitPath": p, "name": name,
               "parentOrgUnitPath": if parent.is_empty() { "/" } else { parent }})
    };
    match (method, path) {
        ("GET", "") => {
            let all = params.get("type").is_some_and(|t| t == "all" || t == "allIncludingParent");
            let units: Vec<Value> = state
                .orgunits
                .iter()
                .filter(|p| p.as_str() != "/" && (all || p.matches('/').count() == 1))
                .map(|p| resource(p))
                .collect();
            State::ok(&json!({"kind": "admin#directory#orgUnits", "organizationUnits": units}))
        }
        ("POST", "") => {
            let Some(name) = body["name"].as_str().filter(|n| !n.trim().is_empty() && !n.contains('/')) else {
                return error(400, "invalid", "Invalid Input: name");
            };
            let parent = body["parentOrgUnitPath"].as_str().unwrap_or("/");
            if !state.orgunits.contains(parent) {
                return error(400, "invalid", "Invalid Input: parent org unit");
            }
            let p = if parent == "/" { format!("/{name}") } else { format!("{parent}/{name}") };
            if state.orgunits.contains(&p) {
                return error(400, "invalid", "Invalid Ou Id");
            }
            state.orgunits.insert(p.clone());
            State::ok(&resource(&p))
        }
        ("GET", p) => {
            let p = format!("/{}", p.trim_start_matches('/'));
            if state.orgunits.contains(&p) {
                State::ok(&resource(&p))
            } else {
                error(404, "notFound", "Org unit not found")
            }
        }
        _ => error(405, "badRequest", "method"),
    }
}

fn group_key(state: &State, key: &str) -> Option<String> {
    let key = key.to_lowercase();
    if state.groups.contains_key(&key) {
        return Some(key);
    }
    state.groups.iter().find(|(_, g)| g.resource["id"].as_str() == Some(key.as_str())).map(|(e, _)| e.clone())
}

pub(crate) fn insert(state: &mut State, body: &Value) -> Reply {
    let Some(email) = body["email"].as_str().map(str::to_lowercase) else {
        return error(400, "required", "Missing required field: email");
    };
    if !email.rsplit_once('@').is_some_and(|(_, d)| d.eq_ignore_ascii_case(&state.config.domain)) {
        return error(403, "forbidden", "Not Authorized to access this resource/api");
    }
    if state.email_taken(&email) {
        return error(409, "duplicate", "Entity already exists.");
    }
    let id = format!("0{}", state.new_id());
    let mut r = body.clone();
    r["id"] = id.into();
    r["kind"] = "admin#directory#group".into();
    r["email"] = email.clone().into();
    r["directMembersCount"] = "0".into();
    state.groups.insert(email, Group { resource: r.clone(), members: BTreeMap::new() });
    State::ok(&r)
}

pub(crate) fn list(state: &State, params: &BTreeMap<String, String>) -> Reply {
    match (params.get("customer"), params.get("domain")) {
        (Some(c), _) if !state.customer_ok(c) => return error(400, "invalid", "Invalid Input: customer"),
        (None, None) => return error(400, "badRequest", "Bad Request"),
        _ => {}
    }
    let max = params.get("maxResults").and_then(|m| m.parse::<usize>().ok()).unwrap_or(200).clamp(1, 200);
    let after = params.get("pageToken").and_then(|t| t.strip_prefix("after-")).map(str::to_string);
    let mut page = Vec::new();
    let mut more = false;
    for (email, g) in &state.groups {
        if after.as_ref().is_some_and(|a| email <= a) {
            continue;
        }
        if page.len() == max {
            more = true;
            break;
        }
        page.push(with_count(g));
    }
    let mut out = json!({"kind": "admin#directory#groups"});
    if more && let Some(last) = page.last().and_then(|g| g["email"].as_str()) {
        out["nextPageToken"] = format!("after-{last}").into();
    }
    if !page.is_empty() {
        out["groups"] = Value::Array(page);
    }
    State::ok(&out)
}

fn with_count(g: &Group) -> Value {
    let mut r = g.resource.clone();
    r["directMembersCount"] = g.members.len().to_string().into();
    r
}

pub(crate) fn one(state: &mut State, method: &str, key: &str, body: &Value) -> Reply {
    let Some(email) = group_key(state, key) else {
        return error(404, "notFound", "Resource Not Found: groupKey");
    };
    match method {
        "GET" => State::ok(&with_count(&state.groups[&email])),
        "PATCH" | "PUT" => {
            let Some(g) = state.groups.get_mut(&email) else {
                return error(404, "notFound", "Resource Not Found");
            };
            for (k, v) in body.as_object().into_iter().flatten() {
                if !matches!(k.as_str(), "id" | "kind" | "email") {
                    g.resource[k] = v.clone();
                }
            }
            State::ok(&with_count(g))
        }
        "DELETE" => {
            state.groups.remove(&email);
            State::done()
        }
        _ => error(405, "badRequest", "method"),
    }
}

pub(crate) fn members(
    state: &mut State,
    method: &str,
    key: &str,
    member: Option<&str>,
    params: &BTreeMap<String, String>,
    body: &Value,
    now: Instant,
) -> Reply {
    let Some(email) = group_key(state, key) else {
        return error(404, "notFound", "Resource Not Found: groupKey");
    };
    match (method, member) {
        ("GET", None) => {
            let max = params.get("maxResults").and_then(|m| m.parse::<usize>().ok()).unwrap_or(200).clamp(1, 200);
            let after = params.get("pageToken").and_then(|t| t.strip_prefix("after-")).map(str::to_string);
            let g = &state.groups[&email];
            let mut page: Vec<Value> = Vec::new();
            let mut more = false;
            for (m, r) in &g.members {
                if after.as_ref().is_some_and(|a| m <= a) {
                    continue;
                }
                if page.len() == max {
                    more = true;
                    break;
                }
                page.push(r.clone());
            }
            let mut out = json!({"kind": "admin#directory#members"});
            if more && let Some(last) = page.last().and_then(|m| m["email"].as_str()) {
                out["nextPageToken"] = format!("after-{last}").into();
            }
            if !page.is_empty() {
                out["members"] = Value::Array(page);
            }
            State::ok(&out)
        }
        ("POST", None) => {
            let who = body["email"].as_str().or(body["id"].as_str()).unwrap_or_default().to_string();
            let Some(uid) = state.user_key(&who) else {
                return error(404, "notFound", "Resource Not Found: memberKey");
            };
            if state.still_creating(&uid, now) {
                return error(412, "conditionNotMet", "User creation is not complete.");
            }
            let user_email = state.users[&uid].resource["primaryEmail"].as_str().unwrap_or_default().to_string();
            let Some(g) = state.groups.get_mut(&email) else {
                return error(404, "notFound", "Resource Not Found");
            };
            if g.members.contains_key(&user_email) {
                return error(409, "duplicate", "Member already exists.");
            }
            let r = json!({"kind": "admin#directory#member", "email": user_email, "id": uid,
                           "role": body["role"].as_str().unwrap_or("MEMBER"), "type": "USER", "status": "ACTIVE"});
            g.members.insert(user_email, r.clone());
            State::ok(&r)
        }
        ("DELETE", Some(m)) => {
            let m = state
                .user_key(m)
                .map(|id| state.users[&id].resource["primaryEmail"].as_str().unwrap_or_default().to_string())
                .unwrap_or_else(|| m.to_lowercase());
            let Some(g) = state.groups.get_mut(&email) else {
                return error(404, "notFound", "Resource Not Found");
            };
            if g.members.remove(&m).is_some() {
                State::done()
            } else {
                error(404, "notFound", "Resource Not Found: memberKey")
            }
        }
        ("GET", Some(m)) => {
            let g = &state.groups[&email];
            match g.members.get(&m.to_lowercase()) {
                Some(r) => State::ok(r),
                None => error(404, "notFound", "Resource Not Found: memberKey"),
            }
        }
        _ => error(405, "badRequest", "method"),
    }
}
