//! The web page of `enid run` (with `[server]`): school admins read the runs of their own
//! school units; administrators see every run. Server-rendered HTML (maud, checked at compile
//! time), no JavaScript, in Swedish or English. It shows what the engine's queries return for
//! the session's `Viewer`, as the API does, and decides nothing itself.
//!
//! Sign-in takes an API token (`enid token add`) and starts a session kept in the state
//! database ([`Engine::sign_in`]): the browser holds a random cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` when enid serves HTTPS itself), the state its hash. Every form
//! carries the session's CSRF token, and a POST without it is refused (403); the sign-in form,
//! before there is a session, carries a token that must equal a cookie set with it. Pages are
//! `Cache-Control: no-store` (they show children's names) and forbid framing and scripts
//! through their Content-Security-Policy.

use super::ApiState;
use crate::engine::{Engine, RunView, Session};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use std::sync::Arc;

/// The session cookie's name.
const SESSION: &str = "enid_session";
/// The sign-in form's cookie (the double-submitted token before there is a session).
const PRESESSION: &str = "enid_signin";
/// The language cookie.
const LANG: &str = "enid_lang";

/// The page's language: Swedish or English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    Sv,
    En,
}

impl Lang {
    /// `?lang=` first, then the cookie, then `Accept-Language` (Swedish when it comes before
    /// English), else Swedish: the users are Swedish schools.
    fn of(headers: &HeaderMap, asked: Option<&str>) -> Lang {
        let pick = |s: &str| match s.trim() {
            "en" => Some(Lang::En),
            "sv" => Some(Lang::Sv),
            _ => None,
        };
        if let Some(l) = asked.and_then(pick) {
            return l;
        }
        if let Some(l) = cookie(headers, LANG).as_deref().and_then(pick) {
            return l;
        }
        let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let position = |code: &str| {
            accept.split(',').position(|part| part.trim().split(';').next().is_some_and(|t| t.starts_with(code)))
        };
        match (position("sv"), position("en")) {
            (None, Some(_)) => Lang::En,
            (Some(s), Some(e)) if e < s => Lang::En,
            _ => Lang::Sv,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }

    /// The text in this language.
    fn t(self, sv: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Sv => sv,
            Lang::En => en,
        }
    }
}

/// The value of cookie `name` in the request, if sent.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: never readable by scripts, never sent from another site, `Secure`
/// when enid serves HTTPS.
fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A page: the headers every page carries (no caching of personal data, no framing, no
/// scripts), its status and its HTML.
fn page(status: StatusCode, lang: Lang, title: &str, signed_in: Option<&Session>, body: Markup) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · enid" }
                link rel="stylesheet" href="/static/enid.css";
            }
            body {
                header {
                    nav aria-label=(lang.t("Huvudmeny", "Main menu")) {
                        a href="/runs" { "enid" }
                        " "
                        a href="/log" { (lang.t("Logg", "Log")) }
                        @if signed_in.is_some_and(|s| s.principal.role == crate::engine::TokenRole::Admin) {
                            " "
                            a href="/conflicts" { (lang.t("Konflikter", "Conflicts")) }
                        }
                        " "
                        a href="?lang=sv" lang="sv" { "Svenska" }
                        " "
                        a href="?lang=en" lang="en" { "English" }
                        @if let Some(s) = signed_in {
                            form method="post" action="/search" class="inline" role="search" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                label for="q" class="inline" { (lang.t("Sök person", "Find a person")) " " }
                                input type="search" id="q" name="q" minlength="2";
                                " "
                                button type="submit" { (lang.t("Sök", "Search")) }
                            }
                            " "
                            form method="post" action="/sign-out" class="inline" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                span { (s.principal.name) " " }
                                button type="submit" { (lang.t("Logga ut", "Sign out")) }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
             base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The page's style sheet: readable on a phone, high contrast, visible focus.
pub(super) async fn style() -> Response {
    const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#111;background:#fff;line-height:1.45}\
        header{background:#0b3d62;color:#fff;padding:.6rem 1rem}header a,header span,header label{color:#fff;margin-right:1rem}\
        main{padding:1rem;max-width:60rem}a{color:#0b4f8a}a:focus,button:focus,input:focus{outline:3px solid #f0a000}\
        table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ccc}\
        .needs{border-left:6px solid #b00020;padding-left:.8rem}.inline{display:inline}\
        .error{color:#b00020;font-weight:bold}tr.failed td{background:#fde8ea}label{display:block;margin:.5rem 0 .2rem}\
        input[type=password]{font-size:1rem;padding:.4rem;width:min(30rem,100%)}button{font-size:1rem;padding:.3rem .8rem}";
    let mut r = CSS.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r
}

/// The query every page takes: the language.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct PageQuery {
    lang: Option<String>,
}

/// The session the request's cookie opens, if any.
async fn session(engine: &Engine, headers: &HeaderMap) -> Result<Option<Session>, Response> {
    let Some(value) = cookie(headers, SESSION) else { return Ok(None) };
    engine.session(&value, chrono::Utc::now()).await.map_err(|e| failure(&e))
}

/// The session of a signed-in page, or what to answer instead: the sign-in form, a failure.
async fn signed_in(engine: &Engine, headers: &HeaderMap) -> Result<Session, Response> {
    match session(engine, headers).await? {
        Some(s) => Ok(s),
        None => Err(Redirect::to("/sign-in").into_response()),
    }
}

/// [`signed_in`] for a posted form, which must carry the session's CSRF token (403 otherwise).
async fn posted(engine: &Engine, headers: &HeaderMap, csrf: &str, lang: Lang) -> Result<Session, Response> {
    let s = signed_in(engine, headers).await?;
    if s.csrf_matches(csrf) { Ok(s) } else { Err(refused(lang)) }
}

/// The 403 page of an admin's page asked for by a school admin; `None` for an admin.
fn admins_only(lang: Lang, title: &str, s: &Session) -> Option<Response> {
    (s.principal.role != crate::engine::TokenRole::Admin).then(|| {
        let body =
            html! { h1 { (title) } p class="error" { (lang.t("Bara för administratörer.", "Administrators only.")) } };
        page(StatusCode::FORBIDDEN, lang, title, Some(s), body)
    })
}

/// A page for an engine failure: its message names the component, never a civic number.
fn failure(e: &crate::engine::EngineError) -> Response {
    let line = connector_api::one_line(e);
    tracing::error!(error = %line, "web page: the engine failed");
    page(StatusCode::INTERNAL_SERVER_ERROR, Lang::En, "Error", None, html! { p class="error" { (line) } })
}

/// Keeps the language asked for in a cookie, so that every page after it has it too.
fn remember_lang(mut response: Response, asked: Option<&str>, lang: Lang, secure: bool) -> Response {
    if asked.is_some() {
        response.headers_mut().append(header::SET_COOKIE, set_cookie(LANG, lang.code(), 365 * 86400, secure));
    }
    response
}

/// `GET /`: the runs when signed in, else the sign-in form.
pub(super) async fn home(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    match session(&state.engine(), &headers).await {
        Ok(Some(_)) => Redirect::to("/runs").into_response(),
        Ok(None) => Redirect::to("/sign-in").into_response(),
        Err(r) => r,
    }
}

/// `GET /sign-in`: the form, with a fresh double-submitted token.
pub(super) async fn sign_in_form(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Response {
    let lang = Lang::of(&headers, q.lang.as_deref());
    sign_in_page(&state, lang, StatusCode::OK, None, q.lang.as_deref())
}

fn sign_in_page(
    state: &ApiState,
    lang: Lang,
    status: StatusCode,
    error: Option<&str>,
    asked: Option<&str>,
) -> Response {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            lang,
            "enid",
            None,
            html! { p class="error" { "the OS random source failed" } },
        );
    }
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let title = lang.t("Logga in", "Sign in");
    let body = html! {
        h1 { (title) }
        @if let Some(e) = error { p class="error" role="alert" { (e) } }
        form method="post" action="/sign-in" {
            input type="hidden" name="csrf" value=(token);
            label for="token" { (lang.t("Din nyckel (token) från IT", "Your token from IT")) }
            input type="password" id="token" name="token" autocomplete="current-password" required;
            p { button type="submit" { (title) } }
        }
    };
    let secure = state.settings.tls_cert_file.is_some();
    let mut r = page(status, lang, title, None, body);
    r.headers_mut().append(header::SET_COOKIE, set_cookie(PRESESSION, &token, 3600, secure));
    remember_lang(r, asked, lang, secure)
}

/// The sign-in form as posted.
#[derive(Debug, serde::Deserialize)]
pub(super) struct SignIn {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

/// `POST /sign-in`: a session for a valid token; the form again for anything else.
pub(super) async fn sign_in(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let expected = cookie(&headers, PRESESSION).unwrap_or_default();
    let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), form.csrf.as_bytes()).into();
    if expected.is_empty() || !same {
        return refused(lang);
    }
    let lasts = chrono::Duration::from_std(state.settings.session_expires_after.duration())
        .unwrap_or(chrono::Duration::hours(8));
    match state.engine().sign_in(form.token.trim(), chrono::Utc::now(), lasts).await {
        Ok(Some(new)) => {
            tracing::info!(token = %new.session.principal.name, "web page: signed in");
            let secure = state.settings.tls_cert_file.is_some();
            let mut r = Redirect::to("/runs").into_response();
            let value = set_cookie(SESSION, new.cookie.expose(), lasts.num_seconds(), secure);
            r.headers_mut().append(header::SET_COOKIE, value);
            r.headers_mut().append(header::SET_COOKIE, set_cookie(PRESESSION, "", 0, secure));
            r
        }
        Ok(None) => sign_in_page(
            &state,
            lang,
            StatusCode::UNAUTHORIZED,
            Some(
                lang.t("Nyckeln gäller inte (fel, eller återkallad).", "That token is not valid (wrong, or revoked)."),
            ),
            None,
        ),
        Err(e) => failure(&e),
    }
}

/// A form posted without its CSRF token (or with another session's).
fn refused(lang: Lang) -> Response {
    let title = lang.t("Nekad", "Refused");
    let text = lang.t(
        "Formuläret saknade sin kontrollkod. Ladda om sidan och försök igen.",
        "The form did not carry its check code. Reload the page and try again.",
    );
    page(StatusCode::FORBIDDEN, lang, title, None, html! { h1 { (title) } p class="error" { (text) } })
}

/// A form of a signed-in page: only its CSRF token is read here.
#[derive(Debug, serde::Deserialize)]
pub(super) struct Csrf {
    #[serde(default)]
    csrf: String,
}

/// `POST /sign-out`: ends the session.
pub(super) async fn sign_out(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Form(form): Form<Csrf>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let engine = state.engine();
    if let Err(r) = posted(&engine, &headers, &form.csrf, lang).await {
        return r;
    }
    if let Some(value) = cookie(&headers, SESSION)
        && let Err(e) = engine.sign_out(&value).await
    {
        return failure(&e);
    }
    let mut r = Redirect::to("/sign-in").into_response();
    r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION, "", 0, state.settings.tls_cert_file.is_some()));
    r
}

/// What a run's status asks of whom, in plain words; `None` for a run that needs nothing.
fn needs(lang: Lang, status: &str) -> Option<(&'static str, &'static str)> {
    match status {
        "held" => Some((
            lang.t(
                "Stoppad för granskning: fler ändringar än gränsen tillåter.",
                "Held for review: more changes than the thresholds allow.",
            ),
            lang.t("IT: en administratör granskar och godkänner.", "IT: an administrator reviews and approves."),
        )),
        "planned" => Some((
            lang.t("Planerad, väntar på godkännande.", "Planned, waiting for approval."),
            lang.t("IT: en administratör godkänner.", "IT: an administrator approves."),
        )),
        "stopped" => Some((
            lang.t(
                "Stoppad innan något ändrades: en källa eller ett mål svarade inte, eller indata såg fel ut.",
                "Stopped before anything changed: a source or target did not answer, or the input looked wrong.",
            ),
            lang.t(
                "IT, eller skolans informationssystem om exporten är fel.",
                "IT, or the school information system if its export is wrong.",
            ),
        )),
        "failed" => Some((
            lang.t("Misslyckades: några konton kunde inte skrivas.", "Failed: some accounts could not be written."),
            lang.t("IT.", "IT."),
        )),
        "interrupted" => Some((
            lang.t("Avbruten; nästa körning gör klart.", "Interrupted; the next run finishes the work."),
            lang.t("Ingen: det sker av sig självt.", "No one: it happens by itself."),
        )),
        _ => None,
    }
}

/// A run's status in words (the stored word when it is none of those known).
fn status_word(lang: Lang, status: &str) -> &str {
    match status {
        "ok" => lang.t("klar", "done"),
        "unchanged" => lang.t("inget att ändra", "nothing to change"),
        "held" => lang.t("stoppad för granskning", "held for review"),
        "planned" => lang.t("väntar på godkännande", "waiting for approval"),
        "stopped" => lang.t("stoppad", "stopped"),
        "failed" => lang.t("misslyckades delvis", "partly failed"),
        "interrupted" => lang.t("avbruten", "interrupted"),
        "running" => lang.t("pågår", "running"),
        "declined" => lang.t("avböjd", "declined"),
        other => other,
    }
}

/// A run's counts in words.
fn counts(lang: Lang, r: &RunView) -> String {
    let Some(t) = &r.tally else { return String::new() };
    let planned: Vec<String> = t.planned.iter().map(|(a, n)| format!("{n} {a}")).collect();
    let done = match lang {
        Lang::Sv => format!("{} klara, {} misslyckade", t.ok, t.failed),
        Lang::En => format!("{} done, {} failed", t.ok, t.failed),
    };
    if planned.is_empty() { done } else { format!("{}; {done}", planned.join(", ")) }
}

/// `GET /runs`: the viewer's recent runs, those that need someone first.
pub(super) async fn runs(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Response {
    let lang = Lang::of(&headers, q.lang.as_deref());
    let engine = state.engine();
    let s = match signed_in(&engine, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut all = match engine.runs(100, &s.principal.viewer).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    all.reverse(); // newest first
    // A run that went through since settles what stopped or waited before it.
    let settled = all.iter().find(|r| matches!(r.run.status.as_str(), "ok" | "unchanged")).map_or(0, |r| r.run.id);
    let (needing, rest): (Vec<&RunView>, Vec<&RunView>) =
        all.iter().partition(|r| r.run.id > settled && needs(lang, &r.run.status).is_some());
    let may_approve = may_approve(&state, &s);
    let title = lang.t("Körningar", "Runs");
    let schools = s.principal.viewer.schools.as_ref().map(|s| s.iter().cloned().collect::<Vec<_>>().join(", "));
    let body = html! {
        h1 { (title) }
        p {
            @match &schools {
                Some(list) => { (lang.t("Dina skolenheter: ", "Your school units: ")) (list) }
                None => { (lang.t("Alla skolenheter (administratör).", "Every school unit (administrator).")) }
            }
        }
        @if s.principal.role == crate::engine::TokenRole::Admin {
            form method="post" action="/plans" {
                input type="hidden" name="csrf" value=(s.csrf);
                button type="submit" { (lang.t("Starta en provkörning", "Start a dry run")) }
            }
        }
        section class="needs" aria-labelledby="needs" {
            h2 id="needs" { (lang.t("Behöver åtgärd", "Needs action")) }
            @if needing.is_empty() {
                p { (lang.t("Inget väntar.", "Nothing is waiting.")) }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { (lang.t("Körning", "Run")) }
                        th scope="col" { (lang.t("Varför", "Why")) }
                        th scope="col" { (lang.t("Vem kan åtgärda", "Who can fix it")) }
                    } }
                    tbody {
                        @for r in &needing {
                            @let (why, who) = needs(lang, &r.run.status).unwrap_or(("", ""));
                            tr id=(format!("run-{}", r.run.id)) {
                                td { (r.run.id) " · " (r.run.started_at) " · " (status_word(lang, &r.run.status)) }
                                td {
                                    (why)
                                    @if let Some(m) = &r.run.message { br; small { (m) } }
                                    @if may_approve && matches!(r.run.status.as_str(), "held" | "planned") {
                                        (approve_form(lang, &s, r))
                                    }
                                }
                                td { (who) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="recent" {
            h2 id="recent" { (lang.t("Senaste körningar", "Recent runs")) }
            table {
                thead { tr {
                    th scope="col" { (lang.t("Körning", "Run")) }
                    th scope="col" { (lang.t("När", "When")) }
                    th scope="col" { (lang.t("Resultat", "Result")) }
                    th scope="col" { (lang.t("Ändringar", "Changes")) }
                } }
                tbody {
                    @for r in &rest {
                        tr id=(format!("run-{}", r.run.id)) {
                            td { a href=(format!("/log?run={}", r.run.id)) { (r.run.id) } " " (r.run.command) }
                            td { (r.run.started_at) }
                            td { (status_word(lang, &r.run.status)) }
                            td { (counts(lang, r)) }
                        }
                    }
                }
            }
        }
    };
    let secure = state.settings.tls_cert_file.is_some();
    remember_lang(page(StatusCode::OK, lang, title, Some(&s), body), q.lang.as_deref(), lang, secure)
}

/// Whether the session may approve: an admin, or a school admin where `[server]
/// school_admins_approve` allows it (then for their own units only: the engine sees to that).
fn may_approve(state: &ApiState, s: &Session) -> bool {
    s.principal.role == crate::engine::TokenRole::Admin || state.settings.school_admins_approve
}

/// The form that approves a held or planned run's operations: all, or those of one action or
/// school unit, with protected persons' changes only when ticked.
fn approve_form(lang: Lang, s: &Session, r: &RunView) -> Markup {
    let id = r.run.id;
    html! {
        form method="post" action=(format!("/runs/{id}/approve")) class="approve" {
            input type="hidden" name="csrf" value=(s.csrf);
            label for=(format!("only-{id}")) { (lang.t("Vilka ändringar", "Which changes")) }
            select id=(format!("only-{id}")) name="only" {
                option value="" { (lang.t("alla", "all")) }
                @for a in ["create", "update", "rename", "enable", "disable", "delete", "groups"] {
                    option value=(a) { (a) }
                }
            }
            label for=(format!("school-{id}")) { (lang.t("Bara skolenhet (tomt: alla)", "Only school unit (empty: all)")) }
            input type="text" id=(format!("school-{id}")) name="school";
            label {
                input type="checkbox" name="accept_protected" value="yes";
                " " (lang.t("även personer med skyddade personuppgifter", "also persons with protected personal data"))
            }
            p { button type="submit" { (lang.t("Godkänn", "Approve")) " " (id) } }
        }
    }
}

/// The approval form as posted.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ApproveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    only: String,
    #[serde(default)]
    school: String,
    #[serde(default)]
    accept_protected: Option<String>,
}

/// `POST /runs/{id}/approve`: approves a held or planned run's operations (as `enid approve`
/// and the API do) and starts a run at once.
pub(super) async fn approve(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<ApproveForm>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let engine = state.engine();
    let s = match posted(&engine, &headers, &form.csrf, lang).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let title = lang.t("Godkännande", "Approval");
    let answer = |status: StatusCode, text: String| {
        let body = html! {
            h1 { (title) }
            p role="status" { (text) }
            p { a href="/runs" { (lang.t("Tillbaka till körningarna", "Back to the runs")) } }
        };
        page(status, lang, title, Some(&s), body)
    };
    if !may_approve(&state, &s) {
        return answer(StatusCode::FORBIDDEN, lang.t("Du får inte godkänna.", "You may not approve.").into());
    }
    let Ok(id) = id.parse::<i64>() else {
        return answer(StatusCode::NOT_FOUND, lang.t("Ingen sådan körning.", "No such run.").into());
    };
    let only = match form.only.trim() {
        "" => Vec::new(),
        word => match crate::engine::actions_named(word) {
            Some(actions) => actions.to_vec(),
            None => return answer(StatusCode::BAD_REQUEST, lang.t("Okänd ändring.", "Unknown change.").into()),
        },
    };
    let school = Some(form.school.trim().to_string()).filter(|x| !x.is_empty());
    let selection = crate::engine::Selection {
        only,
        school,
        ops: Vec::new(),
        accept_protected: form.accept_protected.is_some(),
        accept: Vec::new(),
    };
    match engine.approve_run(id, &selection, &s.principal.name, &s.principal.viewer, crate::clock::now(None)).await {
        Ok(summary) => {
            let _ = state.handle.run_now.send(crate::daemon::RunNow {
                full: false,
                why: format!("approval of run {id} on the web page by token {:?}", s.principal.name),
            });
            let text = match lang {
                Lang::Sv => format!(
                    "Godkände {} ändringar i körning {id}. Tjänsten genomför nu de som den fortfarande planerar \
                     exakt så; allt nytt eller ändrat väntar på granskning.",
                    summary.approved
                ),
                Lang::En => format!(
                    "Approved {} changes of run {id}. The service now carries out those it still plans exactly so; \
                     anything new or changed waits for review.",
                    summary.approved
                ),
            };
            answer(StatusCode::OK, text)
        }
        Err(crate::engine::EngineError::ApproveRun(crate::engine::ApproveRunError::NoSuchRun(_))) => {
            answer(StatusCode::NOT_FOUND, lang.t("Ingen sådan körning.", "No such run.").into())
        }
        Err(crate::engine::EngineError::ApproveRun(e)) => answer(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => failure(&e),
    }
}

/// The query of the log page: a run, a cursor, the language.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct LogQuery {
    lang: Option<String>,
    run: Option<i64>,
    before: Option<i64>,
}

/// How many rows a page of the log shows.
const LOG_PAGE: i64 = 100;

/// `GET /log`: the operations with their results, newest first, a page at a time: the
/// viewer's school units only, protected persons by enid id.
pub(super) async fn log(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<LogQuery>,
) -> Response {
    let lang = Lang::of(&headers, q.lang.as_deref());
    let engine = state.engine();
    let s = match signed_in(&engine, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let filter = crate::store::LogFilter { run: q.run, before: q.before, limit: LOG_PAGE, ..Default::default() };
    let mut rows = match engine.log(filter, None, &s.principal.viewer).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    rows.reverse(); // newest first
    let older = (rows.len() as i64 == LOG_PAGE).then(|| rows.last().map(|r| r.id)).flatten();
    let title = lang.t("Ändringslogg", "Sync log");
    let body = html! {
        h1 { (title) @if let Some(run) = q.run { " · " (lang.t("körning", "run")) " " (run) } }
        (log_table(lang, &rows))
        @if let Some(before) = older {
            p { a href=(match q.run { Some(r) => format!("/log?run={r}&before={before}"), None => format!("/log?before={before}") }) {
                (lang.t("Äldre rader", "Older rows"))
            } }
        }
    };
    let secure = state.settings.tls_cert_file.is_some();
    remember_lang(page(StatusCode::OK, lang, title, Some(&s), body), q.lang.as_deref(), lang, secure)
}

/// Log rows as a table, each person linked to their page.
fn log_table(lang: Lang, rows: &[crate::store::LogRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            p { (lang.t("Inga rader.", "No rows.")) }
        } @else {
            table {
                thead { tr {
                    th scope="col" { (lang.t("När", "When")) }
                    th scope="col" { (lang.t("Person", "Person")) }
                    th scope="col" { (lang.t("Skolenhet", "School unit")) }
                    th scope="col" { (lang.t("Mål", "Target")) }
                    th scope="col" { (lang.t("Ändring", "Change")) }
                    th scope="col" { (lang.t("Resultat", "Result")) }
                } }
                tbody {
                    @for r in rows {
                        tr class=(if r.result == "ok" { "" } else { "failed" }) {
                            td { (r.at) " · " (r.run_id) }
                            td {
                                @match (&r.identity_id, &r.username) {
                                    (Some(id), Some(u)) => { a href=(format!("/persons/{id}")) { (u) } }
                                    (Some(id), None) => { a href=(format!("/persons/{id}")) { (id) } }
                                    _ => { "-" }
                                }
                            }
                            td { (r.school.as_deref().unwrap_or("-")) }
                            td { (r.target.as_deref().unwrap_or("-")) }
                            td { (r.action) @if let Some(d) = &r.detail { br; small { (d) } } }
                            td { (r.result) @if let Some(e) = &r.error { br; small class="error" { (e) } } }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /persons/{id}`: a person by enid id or username, with why: their records, accounts,
/// what the next run does and their sync log. Another school's person, and a protected person
/// asked for by anything but the enid id, is not found, as no one.
pub(super) async fn person(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Response {
    let lang = Lang::of(&headers, q.lang.as_deref());
    let engine = state.engine();
    let s = match signed_in(&engine, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let not_found = |s: &Session| {
        let title = lang.t("Hittades inte", "Not found");
        page(StatusCode::NOT_FOUND, lang, title, Some(s), html! { h1 { (title) } })
    };
    // A civic number is never taken in a URL (it would reach logs and history).
    if connector_api::civic::contains_civic(&id) {
        return not_found(&s);
    }
    let now = crate::clock::now(None);
    let explained = match engine.explain(&id, now, &crate::engine::Overrides::default(), &s.principal.viewer).await {
        Ok(crate::engine::Explained::Person(p)) => p,
        Ok(crate::engine::Explained::Held(_)) => return not_found(&s),
        Err(crate::engine::EngineError::Lookup(_)) => return not_found(&s),
        Err(e) => return failure(&e),
    };
    let filter = crate::store::LogFilter { limit: 50, ..Default::default() };
    let mut rows = match engine.log(filter, Some(&explained.id), &s.principal.viewer).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    rows.reverse();
    let shown = explained.username.clone().unwrap_or_else(|| explained.id.clone());
    let body = html! {
        h1 { (shown) }
        p { small { "enid id " (explained.id) } }
        @if let Some(e) = &explained.plan_error { p class="error" { (e) } }
        h2 { (lang.t("Uppgifter från källorna", "Records from the sources")) }
        @if explained.records_now.is_empty() {
            p { (lang.t("Ingen källa har personen just nu.", "No source has the person now.")) }
        }
        ul {
            @for r in &explained.records_now {
                li { (r.given_name) " " (r.family_name) " · " (r.role) " · "
                     (r.school_unit.as_deref().unwrap_or("-")) " · " (r.source) " (" (r.location) ")" }
            }
        }
        @if explained.records_now.is_empty() && !explained.records_stored.is_empty() {
            h2 { (lang.t("Uppgifter vid senaste körningen", "Records as at the last run")) }
            ul {
                @for r in &explained.records_stored {
                    li { (r.given_name) " " (r.family_name) " · " (r.role) " · "
                         (r.school_unit.as_deref().unwrap_or("-")) " · " (r.source) }
                }
            }
        }
        h2 { (lang.t("Konton", "Accounts")) }
        ul {
            @for a in &explained.accounts {
                li {
                    (a.target) ": " (a.status)
                    @if let Some(d) = a.deleted_on { " · " (lang.t("tas bort", "deleted on")) " " (d) }
                }
            }
        }
        h2 { (lang.t("Nästa körning", "Next run")) }
        @if explained.next_run.is_empty() && explained.blocked.is_empty() && explained.kept.is_none() {
            p { (lang.t("Inget att ändra.", "Nothing to change.")) }
        }
        ul {
            @for o in &explained.next_run { li { (o.target) ": " (o.action) " (" (o.reason) ")" } }
            @for b in &explained.blocked { li class="error" { (b) } }
            @if let Some(k) = &explained.kept { li { (k) } }
        }
        h2 { (lang.t("Logg", "Log")) }
        (log_table(lang, &rows))
    };
    let secure = state.settings.tls_cert_file.is_some();
    remember_lang(page(StatusCode::OK, lang, &shown, Some(&s), body), q.lang.as_deref(), lang, secure)
}

/// The search form as posted (a POST, so that names typed never reach a URL or a log).
#[derive(Debug, serde::Deserialize)]
pub(super) struct SearchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    q: String,
}

/// `POST /search`: persons by name or username among the viewer's; never a protected person.
pub(super) async fn search(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Form(form): Form<SearchForm>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let engine = state.engine();
    let s = match posted(&engine, &headers, &form.csrf, lang).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let hits = match engine.search_persons(&form.q, &s.principal.viewer).await {
        Ok(h) => h,
        Err(e) => return failure(&e),
    };
    let title = lang.t("Sökresultat", "Search results");
    let body = html! {
        h1 { (title) }
        @if hits.is_empty() {
            p role="status" { (lang.t("Ingen hittades. Personer med skyddade personuppgifter hittas bara på sitt enid-id.",
                                     "No one found. Persons with protected personal data are found by their enid id only.")) }
        } @else {
            ul {
                @for h in &hits {
                    li {
                        a href=(format!("/persons/{}", h.identity_id)) { (h.given_name) " " (h.family_name) }
                        " · " (h.username.as_deref().unwrap_or("-")) " · " (h.school_unit.as_deref().unwrap_or("-"))
                    }
                }
            }
        }
    };
    page(StatusCode::OK, lang, title, Some(&s), body)
}

/// `POST /plans` (an admin): a dry run now, saved, shown as a person reads a plan: its shape
/// per target and school unit, then 20 operations of each action.
pub(super) async fn dry_run(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Form(form): Form<Csrf>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let engine = state.engine();
    let s = match posted(&engine, &headers, &form.csrf, lang).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let title = lang.t("Provkörning", "Dry run");
    if let Some(r) = admins_only(lang, title, &s) {
        return r;
    }
    let request = crate::engine::RunRequest::new(
        crate::engine::RunMode::Plan { save: true, record: false },
        crate::clock::now(None),
        crate::engine::Overrides::default(),
    );
    let report = match engine.run(&request, &mut super::api::DryRun).await {
        Ok(r) => r,
        Err(e) => {
            let line = connector_api::one_line(&e);
            let body = html! { h1 { (title) } p class="error" role="alert" { (line) } };
            return page(StatusCode::OK, lang, title, Some(&s), body);
        }
    };
    let view =
        report.computed.plan_view(&crate::engine::PlanSelection::default(), Some(crate::engine::LISTED_PER_ACTION));
    let plan = report.computed.shown_plan();
    let body = html! {
        h1 { (title) " " (view.plan_id) }
        p { (view.total) " " (lang.t("ändringar. Inget är gjort; planen är sparad.", "changes. Nothing was done; the plan is saved.")) }
        @if !plan.held.is_empty() {
            section class="needs" {
                h2 { (lang.t("Över gränserna", "Over the thresholds")) }
                ul { @for h in &plan.held { li { (h.to_string()) } } }
            }
        }
        h2 { (lang.t("Per skolenhet", "Per school unit")) }
        table {
            thead { tr {
                th scope="col" { (lang.t("Mål", "Target")) }
                th scope="col" { (lang.t("Skolenhet", "School unit")) }
                th scope="col" { (lang.t("Ändring", "Change")) }
                th scope="col" { (lang.t("Antal", "Count")) }
            } }
            tbody {
                @for r in &view.shape {
                    tr { td { (r.target) } td { (if r.school.is_empty() { "-" } else { &r.school }) } td { (r.action) } td { (r.count) } }
                }
            }
        }
        @for l in &view.listings {
            h2 { (l.action) " (" (l.selected) ")" }
            ul {
                @for op in &l.operations {
                    li { (op.target) " · " (op.username) " · " (if op.school.is_empty() { "-" } else { &op.school }) " · " (op.reason) }
                }
            }
            @if l.more() > 0 {
                p { "… " (lang.t("och", "and")) " " (l.more()) " " (lang.t("till", "more")) }
            }
        }
    };
    page(StatusCode::OK, lang, title, Some(&s), body)
}

/// `GET /conflicts` (an admin): records held because they conflict, each with the decision
/// form (one person, or different persons), as `enid conflicts` shows them.
pub(super) async fn conflicts(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Response {
    let lang = Lang::of(&headers, q.lang.as_deref());
    let engine = state.engine();
    let s = match signed_in(&engine, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let title = lang.t("Konflikter", "Conflicts");
    if let Some(r) = admins_only(lang, title, &s) {
        return r;
    }
    let list = match engine.conflicts(crate::clock::now(None)).await {
        Ok(c) => c,
        Err(e) => return failure(&e),
    };
    let body = html! {
        h1 { (title) }
        @if list.is_empty() { p { (lang.t("Inga konflikter.", "No conflicts.")) } }
        @for c in &list {
            section id=(format!("conflict-{}", c.id)) class="needs" {
                h2 { (c.id) " · " (c.civic_no) }
                p { (lang.t("Poster: ", "Records: ")) (c.records.join(", ")) }
                p { (lang.t("Hålls (inget konto förrän det är avgjort): ", "Held (no account until decided): ")) (c.held.join(", ")) }
                p { (lang.t("Vem kan åtgärda: IT, efter att ha frågat skolan vem posterna gäller.",
                            "Who can fix it: IT, after asking the school whom the records are for.")) }
                form method="post" action=(format!("/conflicts/{}/decision", c.id)) {
                    input type="hidden" name="csrf" value=(s.csrf);
                    @if c.candidates.len() > 1 {
                        label for=(format!("into-{}", c.id)) { (lang.t("Slå ihop med", "Merge into")) }
                        select id=(format!("into-{}", c.id)) name="into" {
                            @for id in &c.candidates { option value=(id) { (id) } }
                        }
                    }
                    button type="submit" name="decision" value="merge" { (lang.t("Samma person", "The same person")) }
                    " "
                    button type="submit" name="decision" value="separate" { (lang.t("Olika personer", "Different persons")) }
                }
            }
        }
    };
    page(StatusCode::OK, lang, title, Some(&s), body)
}

/// The decision form as posted.
#[derive(Debug, serde::Deserialize)]
pub(super) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    into: Option<String>,
}

/// `POST /conflicts/{id}/decision` (an admin): records the decision with the token's name; the
/// next apply carries it out.
pub(super) async fn decide(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let engine = state.engine();
    let s = match posted(&engine, &headers, &form.csrf, lang).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let title = lang.t("Beslut", "Decision");
    let answer = |status: StatusCode, text: String| {
        let body = html! {
            h1 { (title) }
            p role="status" { (text) }
            p { a href="/conflicts" { (lang.t("Tillbaka till konflikterna", "Back to the conflicts")) } }
        };
        page(status, lang, title, Some(&s), body)
    };
    if s.principal.role != crate::engine::TokenRole::Admin {
        return answer(StatusCode::FORBIDDEN, lang.t("Bara för administratörer.", "Administrators only.").into());
    }
    let choice = match form.decision.as_str() {
        "merge" => crate::engine::Choice::Merge { into: form.into.filter(|x| !x.is_empty()) },
        "separate" => crate::engine::Choice::Separate,
        _ => return answer(StatusCode::BAD_REQUEST, lang.t("Okänt beslut.", "Unknown decision.").into()),
    };
    match engine.decide_conflict(&id, choice, &s.principal.name, crate::clock::now(None)).await {
        Ok(c) => answer(
            StatusCode::OK,
            format!(
                "{} {}: {}",
                lang.t("Beslutet om", "The decision on"),
                c.id,
                lang.t("är sparat; nästa körning genomför det.", "is recorded; the next run carries it out.")
            ),
        ),
        Err(crate::engine::EngineError::Decision(m)) => answer(StatusCode::BAD_REQUEST, m),
        Err(e) => failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_language_is_asked_for_then_kept_then_the_browsers_then_swedish() {
        assert_eq!(Lang::of(&headers(&[]), None), Lang::Sv, "Swedish schools: Swedish by default");
        assert_eq!(Lang::of(&headers(&[("accept-language", "en-GB,en;q=0.9")]), None), Lang::En);
        assert_eq!(Lang::of(&headers(&[("accept-language", "sv-SE,en;q=0.8")]), None), Lang::Sv);
        assert_eq!(Lang::of(&headers(&[("accept-language", "en-US,sv;q=0.5")]), None), Lang::En, "English first");
        assert_eq!(Lang::of(&headers(&[("accept-language", "de-DE")]), None), Lang::Sv);
        let cookie_en = headers(&[("cookie", "a=b; enid_lang=en"), ("accept-language", "sv")]);
        assert_eq!(Lang::of(&cookie_en, None), Lang::En, "the kept choice over the browser's");
        assert_eq!(Lang::of(&cookie_en, Some("sv")), Lang::Sv, "asked for now over the kept one");
        assert_eq!(Lang::of(&cookie_en, Some("fr")), Lang::En, "an unknown one is ignored");
    }

    #[test]
    fn cookies_are_read_by_exact_name_from_every_cookie_header() {
        let h = headers(&[("cookie", "enid_session_old=x; enid_session=abc"), ("cookie", "enid_lang=sv")]);
        assert_eq!(cookie(&h, "enid_session").as_deref(), Some("abc"), "not a name that merely starts so");
        assert_eq!(cookie(&h, "enid_lang").as_deref(), Some("sv"));
        assert_eq!(cookie(&h, "enid_signin"), None);
    }

    #[test]
    fn a_session_cookie_is_httponly_strict_and_secure_only_over_tls() {
        let plain = set_cookie(SESSION, "v", 60, false);
        assert_eq!(plain.to_str().unwrap(), "enid_session=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=60");
        let tls = set_cookie(SESSION, "v", 60, true);
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
    }
}
