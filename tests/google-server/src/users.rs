//! `users`: insert, get, update (PUT replaces, PATCH merges), delete, and the paged listing
//! with `customer` or `domain`, `maxResults` (1 to 500), `pageToken`, `showDeleted` and the
//! `query` words a provisioning tool uses (`orgUnitPath='/X'`, every org unit below it too;
//! `email:` / `email=`; `externalId:` / `externalId=`), joined by spaces. A user made moments
//! ago answers 404 by id and 412 "User creation is not complete." to changes, as Google does
//! while it propagates.

use crate::state::{State, User, error};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Instant;

/// What Google never returns: the password and how it was hashed.
fn shown(resource: &Value) -> Value {
    let mut r = resource.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("password");
        o.remove("hashFunction");
    }
    r
}

/// Checks what insert and update share; the error to answer, if any.
fn invalid(state: &State, r: &Value) -> Option<crate::state::Reply> {
    for part in ["givenName", "familyName"] {
        if let Some(v) = r["name"][part].as_str()
            && (v.trim().is_empty() || v.chars().count() > 60)
        {
            return Some(error(400, "invalid", &format!("Invalid Input: {part}")));
        }
    }
    if let Some(p) = r["password"].as_str()
        && (p.len() < 8 || p.len() > 100 || !p.is_ascii())
    {
        return Some(error(400, "invalid", "Invalid Password"));
    }
    if let Some(ou) = r["orgUnitPath"].as_str()
        && !state.orgunits.contains(ou)
    {
        return Some(error(400, "invalid", "Invalid Input: INVALID_OU_ID"));
    }
    if r["externalIds"].to_string().len() > 2048 {
        return Some(error(400, "invalid", "Invalid Input: externalIds"));
    }
    None
}

/// A primary email Google takes: the customer's domain, a lowercase-insensitive local part of
/// letters, digits, `-`, `_`, `'` and `.`, not at its ends nor twice in a row.
fn email_ok(state: &State, email: &str) -> Result<(), crate::state::Reply> {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(error(400, "invalid", "Invalid Input: primary_user_email"));
    };
    if !domain.eq_ignore_ascii_case(&state.config.domain) {
        return Err(error(403, "forbidden", "Not Authorized to access this resource/api"));
    }
    let chars_ok = local.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '\'' | '.'));
    if local.is_empty()
        || local.len() > 64
        || !chars_ok
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(error(400, "invalid", "Invalid Input: primary_user_email"));
    }
    Ok(())
}

pub(crate) fn insert(state: &mut State, body: &Value, now: Instant) -> crate::state::Reply {
    let Some(email) = body["primaryEmail"].as_str().map(str::to_lowercase) else {
        return error(400, "required", "Invalid Input: primary_user_email");
    };
    if body["name"]["givenName"].as_str().is_none() || body["name"]["familyName"].as_str().is_none() {
        return error(400, "required", "Invalid Input: name");
    }
    if body["password"].as_str().is_none() {
        return error(400, "required", "Invalid Password");
    }
    if let Err(r) = email_ok(state, &email) {
        return r;
    }
    if let Some(r) = invalid(state, body) {
        return r;
    }
    if state.email_taken(&email) {
        return error(409, "duplicate", "Entity already exists.");
    }
    let id = state.new_id();
    let mut r = body.clone();
    let name = &body["name"];
    r["id"] = id.clone().into();
    r["kind"] = "admin#directory#user".into();
    r["primaryEmail"] = email.into();
    r["name"]["fullName"] =
        format!("{} {}", name["givenName"].as_str().unwrap_or(""), name["familyName"].as_str().unwrap_or("")).into();
    r["orgUnitPath"] = body["orgUnitPath"].as_str().unwrap_or("/").into();
    r["suspended"] = body["suspended"].as_bool().unwrap_or(false).into();
    r["isAdmin"] = false.into();
    r["customerId"] = state.config.customer_id.clone().into();
    r["includeInGlobalAddressList"] = body["includeInGlobalAddressList"].as_bool().unwrap_or(true).into();
    r["etag"] = format!("\"{id}/1\"").into();
    state.users.insert(id, User { resource: r.clone(), created: now, deleted: false });
    crate::state::State::ok(&shown(&r))
}

pub(crate) fn get(state: &State, key: &str, now: Instant) -> crate::state::Reply {
    match state.user_key(key) {
        // By id, a user still being made is not there yet.
        Some(id) if id == key && state.still_creating(&id, now) => {
            error(404, "notFound", "Resource Not Found: userKey")
        }
        Some(id) => State::ok(&shown(&state.users[&id].resource)),
        None => error(404, "notFound", "Resource Not Found: userKey"),
    }
}

pub(crate) fn update(state: &mut State, key: &str, body: &Value, replace: bool, now: Instant) -> crate::state::Reply {
    let Some(id) = state.user_key(key) else {
        return error(404, "notFound", "Resource Not Found: userKey");
    };
    if state.still_creating(&id, now) {
        return error(412, "conditionNotMet", "User creation is not complete.");
    }
    if let Some(r) = invalid(state, body) {
        return r;
    }
    if let Some(email) = body["primaryEmail"].as_str().map(str::to_lowercase) {
        if let Err(r) = email_ok(state, &email) {
            return r;
        }
        if state.user_key(&email).is_some_and(|other| other != id) || state.groups.contains_key(&email) {
            return error(409, "duplicate", "Entity already exists.");
        }
    }
    let Some(user) = state.users.get_mut(&id) else {
        return error(404, "notFound", "Resource Not Found");
    };
    let old = user.resource.clone();
    let mut r = if replace {
        // PUT: the fields given replace theirs; read-only ones stay.
        let mut r = old.clone();
        for (k, v) in body.as_object().into_iter().flatten() {
            r[k] = v.clone();
        }
        r
    } else {
        let mut r = old.clone();
        merge(&mut r, body);
        r
    };
    for k in ["id", "kind", "customerId", "isAdmin"] {
        r[k] = old[k].clone();
    }
    if let Some(e) = r["primaryEmail"].as_str() {
        r["primaryEmail"] = e.to_lowercase().into();
    }
    r["name"]["fullName"] =
        format!("{} {}", r["name"]["givenName"].as_str().unwrap_or(""), r["name"]["familyName"].as_str().unwrap_or(""))
            .into();
    let version =
        old["etag"].as_str().and_then(|e| e.trim_matches('"').rsplit('/').next()?.parse::<u64>().ok()).unwrap_or(1);
    r["etag"] = format!("\"{id}/{}\"", version + 1).into();
    user.resource = r.clone();
    State::ok(&shown(&r))
}

/// JSON merge of a PATCH: objects merge, everything else replaces.
fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

pub(crate) fn delete(state: &mut State, key: &str, now: Instant) -> crate::state::Reply {
    let Some(id) = state.user_key(key) else {
        return error(404, "notFound", "Resource Not Found: userKey");
    };
    if state.still_creating(&id, now) {
        return error(412, "conditionNotMet", "User creation is not complete.");
    }
    if let Some(u) = state.users.get_mut(&id) {
        u.deleted = true;
    }
    let email = state.users[&id].resource["primaryEmail"].as_str().unwrap_or_default().to_string();
    for g in state.groups.values_mut() {
        g.members.remove(&email);
    }
    State::done()
}

/// One word of `query`: a field, how it compares, a value.
fn matches(user: &Value, word: &str) -> bool {
    let (field, value, exact) = match (word.split_once('='), word.split_once(':')) {
        (Some((f, v)), Some((f2, _))) if f.len() < f2.len() => (f, v, true),
        (_, Some((f, v))) => (f, v, false),
        (Some((f, v)), None) => (f, v, true),
        (None, None) => return false,
    };
    let value = value.trim_matches('\'').trim_matches('"').to_lowercase();
    match field {
        "orgUnitPath" => {
            let ou = user["orgUnitPath"].as_str().unwrap_or("/").to_lowercase();
            value == "/" || ou == value || ou.starts_with(&format!("{value}/"))
        }
        "email" => {
            let e = user["primaryEmail"].as_str().unwrap_or_default().to_lowercase();
            if exact {
                e == value
            } else if let Some(p) = value.strip_suffix('*') {
                e.starts_with(p)
            } else {
                e == value
            }
        }
        "externalId" => user["externalIds"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["value"].as_str().is_some_and(|v| v.to_lowercase() == value)),
        "isSuspended" => user["suspended"].as_bool() == Some(value == "true"),
        _ => false,
    }
}

pub(crate) fn list(state: &State, params: &BTreeMap<String, String>) -> crate::state::Reply {
    let customer = params.get("customer").map(String::as_str);
    let domain = params.get("domain").map(String::as_str);
    match (customer, domain) {
        (Some(c), _) if !state.customer_ok(c) => return error(400, "invalid", "Invalid Input: customer"),
        (_, Some(d)) if !d.eq_ignore_ascii_case(&state.config.domain) => {
            return error(403, "forbidden", "Not Authorized to access this resource/api");
        }
        (None, None) => return error(400, "badRequest", "Bad Request"),
        _ => {}
    }
    let max = match params.get("maxResults").map(|m| m.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => return error(400, "invalid", "Invalid value for: maxResults"),
    };
    let deleted = params.get("showDeleted").is_some_and(|v| v == "true");
    let words: Vec<&str> = params.get("query").map(|q| q.split_whitespace().collect()).unwrap_or_default();
    // The page token is the id to start after (opaque to clients).
    let after = match params.get("pageToken") {
        Some(t) => match t.strip_prefix("after-") {
            Some(id) => Some(id.to_string()),
            None => return error(400, "invalid", "Invalid page token"),
        },
        None => None,
    };
    let mut page = Vec::new();
    let mut last = None;
    let mut more = false;
    for (id, u) in &state.users {
        if after.as_ref().is_some_and(|a| id <= a) || u.deleted != deleted {
            continue;
        }
        if !words.iter().all(|w| matches(&u.resource, w)) {
            continue;
        }
        if page.len() == max {
            more = true;
            break;
        }
        page.push(shown(&u.resource));
        last = Some(id.clone());
    }
    let mut out = json!({"kind": "admin#directory#users", "etag": "\"list\""});
    if !page.is_empty() {
        out["users"] = Value::Array(page);
    }
    if more && let Some(id) = last {
        out["nextPageToken"] = format!("after-{id}").into();
    }
    State::ok(&out)
}
