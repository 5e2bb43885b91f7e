//! The `/api/v1` handlers: each turns its request into an engine query for the token's
//! `Viewer` and returns what the engine gives, as JSON. Values the caller sent are never echoed
//! in an error (a key can be a civic number).

use super::{ApiError, ApiState, admin_only};
use crate::engine::{Computed, Confirm, Explained, Frontend, Overrides, Principal, RunMode, RunRequest};
use crate::store::{LogFilter, StateStore};
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;

/// A whole number from the query string; the error names the parameter, not the value.
fn number(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|v| v.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("{name}: a whole number, please"))))
        .transpose()
}

/// `GET /runs?limit=N`: the newest runs (50 by default), oldest first.
pub(super) async fn runs(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let limit = number(&params, "limit")?.unwrap_or(50).clamp(1, 1000);
    let runs = state.engine().runs(limit, &who.viewer).await?;
    Ok(Json(runs).into_response())
}

/// `GET /needs-action`: what waits for someone, as the web page's "Needs action" shows it:
/// what the newest full run left (rows the sources rejected, open conflicts, an admin's count of
/// held renames) and the first passwords waiting per school unit, all of the viewer's units.
pub(super) async fn needs_action(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
) -> Result<Response, ApiError> {
    let engine = state.engine();
    let left = engine.needs_action(&who.viewer).await?;
    let passwords = engine.waiting_passwords(&who.viewer).await?;
    Ok(Json(serde_json::json!({ "last_full_run": left, "passwords_waiting": passwords })).into_response())
}

/// `GET /runs/{id}`: one run, if the viewer may see it.
pub(super) async fn run(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let found = state.engine().run_by_id(id, &who.viewer).await?;
    found.map(|r| Json(r).into_response()).ok_or(ApiError::NotFound)
}

/// The sync log, a page at a time.
#[derive(Debug, serde::Serialize)]
struct LogPage {
    /// Newest last.
    rows: Vec<crate::store::LogRow>,
    /// The `before` of the next (older) page; none when this page is the last.
    next_before: Option<i64>,
}

/// `GET /log?run=&person=&school=&target=&action=&result=&before=&limit=`: the newest `limit`
/// rows (200 by default) older than the row id `before`, newest last.
pub(super) async fn log(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let limit = number(&params, "limit")?.unwrap_or(200).clamp(1, 5000);
    let filter = LogFilter {
        run: number(&params, "run")?,
        school: params.get("school").cloned(),
        target: params.get("target").cloned(),
        action: params.get("action").cloned(),
        result: params.get("result").cloned(),
        before: number(&params, "before")?,
        limit,
        ..LogFilter::default()
    };
    let engine = state.engine();
    let mut person = None;
    if let Some(p) = params.get("person") {
        refuse_civic_in_url(p)?;
        let id = engine.find_person(p, &who.viewer).await?;
        // A protected person is found by enid id only: by a key or a name they are no one.
        let protected = engine.store().protected_identities().await.map_err(crate::engine::EngineError::from)?;
        if protected.contains(&id) && *p != id {
            return Err(ApiError::NotFound);
        }
        person = Some(id);
    }
    let rows = engine.log(filter, person.as_deref(), &who.viewer).await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.first().map(|r| r.id)).flatten();
    Ok(Json(LogPage { rows, next_before }).into_response())
}

/// A key that can be a civic number belongs in a body (`POST /persons/lookup`), never in a URL,
/// where proxies and browsers keep it.
fn refuse_civic_in_url(key: &str) -> Result<(), ApiError> {
    // An enid id is no civic number, whatever its hex digits spell.
    if !crate::core::model::is_enid_id(key) && connector_api::civic::contains_civic(key) {
        return Err(ApiError::BadRequest(
            "a civic number or a source key does not go in a URL: POST /api/v1/persons/lookup with {\"key\": ...}"
                .into(),
        ));
    }
    Ok(())
}

/// `GET /persons/{id}`: a person explained, by enid id or username.
pub(super) async fn person(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    refuse_civic_in_url(&id)?;
    explain(&state, &who, &id).await
}

/// The body of `POST /persons/lookup`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupBody {
    /// A source key (`person_id`, which can be a civic number) or an external identifier; an
    /// enid id or a username does too.
    key: String,
}

/// `POST /persons/lookup` `{"key": "..."}`: a person explained, by a key that may be a civic
/// number. The body is read here, so that a malformed one is never echoed in an error.
pub(super) async fn lookup(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: LookupBody = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("the body is JSON: {\"key\": \"SOURCE KEY OR IDENTIFIER\"}".into()))?;
    explain(&state, &who, body.key.trim()).await
}

async fn explain(state: &ApiState, who: &Principal, key: &str) -> Result<Response, ApiError> {
    if key.is_empty() {
        return Err(ApiError::NotFound);
    }
    let now = crate::clock::now(None);
    let explained = state.engine().explain(key, now, &Overrides::default(), &who.viewer).await?;
    // A held record is shown to an admin only (the engine says so for a school admin already).
    if matches!(explained, Explained::Held(_)) && who.viewer.schools.is_some() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(explained).into_response())
}

/// The API's part in a dry run: it shows nothing and confirms nothing.
pub(super) struct DryRun;

impl Frontend for DryRun {
    fn computed(&mut self, _computed: &Computed) -> Confirm {
        Confirm::Go
    }

    fn confirm(&mut self, _computed: &Computed, _approved: &crate::engine::Approved) -> Confirm {
        Confirm::Stop
    }
}

/// `POST /plans` (admin): a dry run now, its plan saved; returns the plan as it may be shown
/// (`GET /plans/{plan_id}` reads it again, `enid apply --plan ID` applies exactly it).
pub(super) async fn new_plan(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
) -> Result<Response, ApiError> {
    admin_only(&who)?;
    let request =
        RunRequest::new(RunMode::Plan { save: true, record: false }, crate::clock::now(None), Overrides::default());
    let report = state.engine().run(&request, &mut DryRun).await?;
    let body = serde_json::to_value(&*report.computed.shown_plan())
        .map_err(|e| ApiError::Internal(format!("the plan as JSON: {e}")))?;
    Ok((axum::http::StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /plans/{id}` (admin): a saved plan, as it was saved.
pub(super) async fn plan(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin_only(&who)?;
    let engine = state.engine();
    let body = engine.store().load_plan(&id).await.map_err(crate::engine::EngineError::from)?;
    body.map(|b| ([(header::CONTENT_TYPE, "application/json")], b).into_response()).ok_or(ApiError::NotFound)
}

/// The query of `GET /plans/{id}/view`: a selection (as `enid plan` takes it) and a page.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanViewQuery {
    /// Comma-separated action words (`create`, `disable`, `groups`, …).
    only: Option<String>,
    school: Option<String>,
    target: Option<String>,
    /// An enid id or a username (a protected person: the enid id only).
    person: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// The most operations of each action one page of `GET /plans/{id}/view` lists.
const PLAN_PAGE_MAX: usize = 1000;

/// `GET /plans/{id}/view` (admin): a saved plan as a person reads it, a page at a time: the
/// shape of the whole plan (per target, school unit and action), and of each action the
/// operations the selection picks from `offset` on, at most `limit` (default 20, at most
/// 1,000), each listing with `selected` and `offset` to page on.
pub(super) async fn plan_view(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    query: Result<Query<PlanViewQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    admin_only(&who)?;
    // The rejection quotes an unknown parameter's name, which can be anything typed.
    let Query(q) = query.map_err(|e| {
        ApiError::BadRequest(format!("the query: {}", connector_api::civic::mask_civic_in_text(&e.body_text())))
    })?;
    if let Some(p) = &q.person {
        refuse_civic_in_url(p)?;
    }
    let limit = q.limit.unwrap_or(crate::engine::LISTED_PER_ACTION);
    if limit == 0 || limit > PLAN_PAGE_MAX {
        return Err(ApiError::BadRequest(format!("limit is 1 to {PLAN_PAGE_MAX}")));
    }
    let selection = crate::engine::PlanSelection::from_words(
        q.only.as_deref(),
        q.school.as_deref(),
        q.target.as_deref(),
        q.person.as_deref(),
    )
    .map_err(ApiError::BadRequest)?;
    let view = state.engine().saved_plan_view(&id, &selection, q.offset, Some(limit)).await?;
    view.map(|v| Json(v).into_response()).ok_or(ApiError::NotFound)
}

/// `GET /conflicts` (admin): the open conflicts, as `enid conflicts --json` shows them.
pub(super) async fn conflicts(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
) -> Result<Response, ApiError> {
    admin_only(&who)?;
    let conflicts = state.engine().conflicts(crate::clock::now(None)).await?;
    Ok(Json(conflicts).into_response())
}

/// The body of `POST /conflicts/{id}/decision`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, tag = "decision", rename_all = "snake_case")]
enum DecisionBody {
    /// The records are one person; `into` names the identity to join when there are several.
    Merge { into: Option<String> },
    /// The records are different persons.
    Separate,
}

/// `POST /conflicts/{id}/decision` (admin) `{"decision": "merge", "into": ID}` or
/// `{"decision": "separate"}`: recorded with the token's name; the next apply carries it out.
pub(super) async fn decide(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&who)?;
    let body: DecisionBody = serde_json::from_slice(&body).map_err(|_| {
        ApiError::BadRequest(
            "the body is JSON: {\"decision\": \"merge\", \"into\": ENID_ID or null} or {\"decision\": \"separate\"}"
                .into(),
        )
    })?;
    let choice = match body {
        DecisionBody::Merge { into } => crate::engine::Choice::Merge { into },
        DecisionBody::Separate => crate::engine::Choice::Separate,
    };
    let engine = state.engine();
    let decided =
        engine.decide_conflict(&id, choice, &who.name, crate::clock::now(None)).await.map_err(|e| match e {
            crate::engine::EngineError::Decision(m) => ApiError::BadRequest(m),
            e => e.into(),
        })?;
    Ok(Json(decided).into_response())
}

/// `GET /renames`: the renames waiting for approval, of the persons the viewer may see (never
/// a protected person's).
pub(super) async fn renames(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
) -> Result<Response, ApiError> {
    let engine = state.engine();
    let shown = engine.held_renames_for(crate::clock::now(None), &Overrides::default(), &who.viewer).await?;
    Ok(Json(shown).into_response())
}

/// `POST /renames/{person}/approve`: approves the held rename of a person (enid id or current
/// username), recorded with the token's name. An admin's token may; a school admin's only with
/// `[server] school_admins_approve = true`, and only for their units' persons. Only a rename
/// `GET /renames` lists: a protected person's is not found (approved on the server, `enid
/// renames approve`).
pub(super) async fn approve_rename(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(person): Path<String>,
) -> Result<Response, ApiError> {
    refuse_civic_in_url(&person)?;
    if who.role == crate::engine::TokenRole::SchoolAdmin && !state.settings.school_admins_approve {
        return Err(ApiError::Forbidden("school admins approve nothing here ([server] school_admins_approve)"));
    }
    let approved = state
        .engine()
        .approve_rename_for(&person, &who.viewer, &who.name, crate::clock::now(None), &Overrides::default())
        .await
        .map_err(|e| match e {
            crate::engine::EngineError::Decision(_) => ApiError::NotFound,
            e => e.into(),
        })?;
    Ok(Json(approved).into_response())
}

/// The body of `POST /passwords/claims`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    /// One school unit's persons (a school admin: one of theirs, required).
    school: Option<String>,
    /// Those of persons with protected personal data, by enid id only (an admin's).
    #[serde(default)]
    protected: bool,
    /// Only those set on this target.
    target: Option<String>,
}

/// A claim as the API shows it: the passwords, and the id to confirm or give back.
#[derive(Debug, serde::Serialize)]
struct ClaimView {
    claim: String,
    passwords: Vec<crate::engine::passwords::HandedOut>,
    unreadable: Vec<String>,
    held_elsewhere: usize,
    /// When the claim lapses unconfirmed (its passwords are shown to the next hand-out then).
    lapses_at: String,
}

/// `POST /passwords/claims` `{"school": UNIT}`: claims and shows the first passwords not handed
/// out yet. Nothing is forgotten until `POST /passwords/claims/{claim}/confirm`, after the
/// caller has them; a lost answer's claim lapses and the next hand-out shows them again, so a
/// retry never loses one. A school admin's for one of their units only; protected persons' and
/// every unit's at once for an admin.
pub(super) async fn claim_passwords(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ClaimBody = if body.is_empty() {
        ClaimBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            ApiError::BadRequest("the body is JSON: {\"school\": UNIT, \"target\": ID, \"protected\": false}".into())
        })?
    };
    let request = crate::engine::passwords::HandOutRequest {
        school: body.school,
        protected: body.protected,
        target: body.target,
    };
    request.allowed_for(&who.viewer).map_err(|e| match e {
        crate::engine::passwords::HandOutRefused::ProtectedNeedsAdmin => {
            ApiError::Forbidden("protected persons' passwords need an admin token")
        }
        crate::engine::passwords::HandOutRefused::NotTheirs => ApiError::NotFound,
        crate::engine::passwords::HandOutRefused::SayWhich => {
            ApiError::BadRequest("say which of your school units: {\"school\": UNIT}".into())
        }
    })?;
    let now = crate::clock::now(None);
    let claim = state.engine().claim_passwords(&request, now).await.map_err(|e| match e {
        crate::engine::EngineError::Passwords(m) => ApiError::BadRequest(m),
        e => e.into(),
    })?;
    let view = ClaimView {
        claim: claim.id,
        passwords: claim.passwords,
        unreadable: claim.unreadable,
        held_elsewhere: claim.held_elsewhere,
        lapses_at: (now + crate::engine::passwords::CLAIM_TIMEOUT).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let mut response = (axum::http::StatusCode::CREATED, Json(view)).into_response();
    // Passwords: no cache anywhere may keep the answer.
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A claim id is 32 hexadecimal digits; anything else that holds a civic number is refused
/// before it can be echoed (`GET` answers with the claim id).
fn refuse_civic_in_claim(claim: &str) -> Result<(), ApiError> {
    if crate::engine::passwords::is_claim_id(claim) { Ok(()) } else { refuse_civic_in_url(claim) }
}

/// `GET /passwords/claims/{claim}`: the passwords the claim still holds, shown again (an answer
/// lost on the way, a page reloaded); forgets nothing.
pub(super) async fn show_claim(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(claim): Path<String>,
) -> Result<Response, ApiError> {
    refuse_civic_in_claim(&claim)?;
    let passwords = state.engine().claimed_passwords(&claim, &who.viewer).await?;
    let mut response = Json(serde_json::json!({ "claim": claim, "passwords": passwords })).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /passwords/claims/{claim}/confirm`: the caller has the passwords; they are forgotten.
pub(super) async fn confirm_claim(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(claim): Path<String>,
) -> Result<Response, ApiError> {
    refuse_civic_in_claim(&claim)?;
    let engine = state.engine();
    if !engine.claim_is_theirs(&claim, &who.viewer).await? {
        return Ok(Json(serde_json::json!({ "forgotten": 0 })).into_response());
    }
    let n = engine.confirm_handout(&claim, crate::clock::now(None)).await?;
    Ok(Json(serde_json::json!({ "forgotten": n })).into_response())
}

/// `DELETE /passwords/claims/{claim}`: the hand-out failed; the passwords are given back.
pub(super) async fn release_claim(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(claim): Path<String>,
) -> Result<Response, ApiError> {
    refuse_civic_in_claim(&claim)?;
    let engine = state.engine();
    if !engine.claim_is_theirs(&claim, &who.viewer).await? {
        return Ok(Json(serde_json::json!({ "given_back": 0 })).into_response());
    }
    let why = format!("given back through the API by token \"{}\"", who.name);
    let n = engine.release_claim(&claim, &why, crate::clock::now(None)).await?;
    Ok(Json(serde_json::json!({ "given_back": n })).into_response())
}

/// `POST /passwords/forget` (admin): forgets every kept first password (a lost password key).
pub(super) async fn forget_passwords(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
) -> Result<Response, ApiError> {
    admin_only(&who)?;
    let n = state.engine().forget_passwords(crate::clock::now(None)).await?;
    Ok(Json(serde_json::json!({ "forgotten": n })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_civic_number_in_a_url_is_refused_in_any_spelling_and_an_enid_id_is_not() {
        for key in ["201509162388", "20150916-2388", "150916-2388", "19821105 9954"] {
            assert!(refuse_civic_in_url(key).is_err(), "{key}");
        }
        for key in ["anna.berg", "ee192d38-3309-8bea-b4c1-d87445dd73ab", "u36059484", "4711"] {
            assert!(refuse_civic_in_url(key).is_ok(), "{key}");
        }
        // A claim id whose digits spell a civic number is still a claim id.
        assert!(refuse_civic_in_url("ab201509162388cdef0123456789abcd").is_err());
        assert!(refuse_civic_in_claim("ab201509162388cdef0123456789abcd").is_ok());
        assert!(refuse_civic_in_claim("201509162388").is_err());
    }
}

/// The body of `POST /runs/{id}/approve`: what of the run to approve, as `enid approve` takes it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    /// Only these actions (create, claim, rename, move, update, enable, disable, delete, groups).
    #[serde(default)]
    only: Vec<String>,
    /// Only operations of this school unit.
    school: Option<String>,
    /// Only these operations, by fingerprint.
    #[serde(default)]
    ops: Vec<String>,
    /// Operations on persons with protected personal data too.
    #[serde(default)]
    accept_protected: bool,
    /// Guards the next run may go past (an admin's): shrink, missing, schema_change, scope_change.
    #[serde(default)]
    accept: Vec<String>,
}

/// Approves a held or plan-only run's operations (an admin; a school admin only with
/// `school_admins_approve`, then only their units' operations and no guard), and starts a run
/// at once, which carries out those it still plans exactly so.
pub(super) async fn approve_run(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // As `GET /runs/{id}`: an id that is no run's is not found (and never echoed).
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    if who.role == crate::engine::TokenRole::SchoolAdmin && !state.settings.school_admins_approve {
        return Err(ApiError::Forbidden("school admins approve nothing here ([server] school_admins_approve)"));
    }
    let body: ApproveBody = if body.is_empty() {
        ApproveBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            ApiError::BadRequest(
                "the body is JSON: {\"only\": [ACTIONS], \"school\": UNIT, \"ops\": [FINGERPRINTS], \
                 \"accept_protected\": BOOL, \"accept\": [GUARDS]}, every field optional"
                    .into(),
            )
        })?
    };
    let mut only = Vec::new();
    for word in &body.only {
        only.extend_from_slice(crate::engine::actions_named(word).ok_or_else(|| {
            let word = connector_api::civic::mask_if_civic(word);
            ApiError::BadRequest(format!("unknown action in \"only\": {word:?}"))
        })?);
    }
    let selection = crate::engine::Selection {
        only,
        school: body.school,
        ops: body.ops,
        accept_protected: body.accept_protected,
        accept: body.accept,
    };
    let engine = state.engine();
    let summary = engine.approve_run(id, &selection, &who.name, &who.viewer, crate::clock::now(None)).await.map_err(
        |e| match e {
            crate::engine::EngineError::ApproveRun(crate::engine::ApproveRunError::NoSuchRun(_)) => ApiError::NotFound,
            crate::engine::EngineError::ApproveRun(crate::engine::ApproveRunError::NotAllowed) => {
                ApiError::Forbidden("a school admin accepts no guard")
            }
            crate::engine::EngineError::ApproveRun(e) => ApiError::BadRequest(e.to_string()),
            e => e.into(),
        },
    )?;
    let _ = state
        .handle
        .run_now
        .send(crate::daemon::RunNow { full: false, why: format!("approval of run {id} by token {:?}", who.name) });
    Ok(Json(summary).into_response())
}
