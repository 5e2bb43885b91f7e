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
                        " "
                        a href="/passwords" { (lang.t("Lösenord", "Passwords")) }
                        @if signed_in.is_some_and(|s| s.principal.role == crate::engine::TokenRole::Admin) {
                            " "
                            a href="/conflicts" { (lang.t("Konflikter", "Conflicts")) }
                        }
                        " "
                        a href="/renames" { (lang.t("Namnbyten", "Renames")) }
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
        header{background:#0b3d62;color:#fff;padding:.6rem 1rem}header a,header span,header label{color:#fff}\
        header nav,header form{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center}\
        header label{margin:0}input[type=search]{width:10rem;max-width:100%;font-size:1rem;padding:.3rem}\
        main{padding:1rem;max-width:60rem;overflow-wrap:anywhere}a{color:#0b4f8a}\
        a:focus,button:focus,input:focus,select:focus{outline:3px solid #f0a000;outline-offset:1px}\
        table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ccc}\
        @media (max-width:40rem){table{display:block;overflow-x:auto}main{padding:.6rem}}\
        .needs{border-left:6px solid #b00020;padding-left:.8rem}.inline{display:inline}\
        .error{color:#b00020;font-weight:bold}tr.failed td{background:#fde8ea}label{display:block;margin:.5rem 0 .2rem}\
        input[type=password],input[type=text],select{font-size:1rem;padding:.4rem;width:min(30rem,100%);box-sizing:border-box}\
        button{font-size:1rem;padding:.3rem .8rem}\
        .visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}\
        table.passwords code{font-size:1.15rem;letter-spacing:.05em}";
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

/// Whether the session may approve: an admin, or a school admin where `[server]
/// school_admins_approve` allows it (then for their own units only: the engine sees to that).
fn may_approve(state: &ApiState, s: &Session) -> bool {
    s.principal.role == crate::engine::TokenRole::Admin || state.settings.school_admins_approve
}

/// A page for an engine failure: its message names the component, never a civic number.
fn failure(e: &crate::engine::EngineError) -> Response {
    let line = connector_api::one_line(e);
    tracing::error!(error = %line, "web page: the engine failed");
    page(StatusCode::INTERNAL_SERVER_ERROR, Lang::En, "Error", None, html! { p class="error" { (line) } })
}

/// A signed-in page (200), keeping the language asked for (`?lang=`) for the pages after it.
fn signed_in_page(
    state: &ApiState,
    lang: Lang,
    asked: Option<&str>,
    title: &str,
    s: &Session,
    body: Markup,
) -> Response {
    let secure = state.settings.tls_cert_file.is_some();
    remember_lang(page(StatusCode::OK, lang, title, Some(s), body), asked, lang, secure)
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
    let token: String = crate::core::id::hex(&bytes).into();
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

mod admin;
pub(super) mod passwords;
mod persons;
mod runs;

pub(super) use admin::{approve_rename, conflicts, decide, dry_run, renames, saved_plan};
pub(super) use persons::{log, person, search};
pub(super) use runs::{approve, runs};

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
