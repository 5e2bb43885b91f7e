//! First passwords on the page, the hand-out as the CLI does it: claim (the passwords are held
//! for this hand-out alone and shown), show again as often as asked (a reload loses nothing),
//! then confirm (the admin has them: they are forgotten) or give back (shown to the next
//! hand-out). An unconfirmed claim lapses after `engine::passwords::CLAIM_TIMEOUT`. A school
//! admin hands out their own units' only; protected persons' are an administrator's, by enid id.

use super::*;
use crate::engine::passwords::{HandOutRefused, HandOutRequest};

/// `GET /passwords`: how many first passwords wait per school unit of the viewer's, each with
/// the form that shows them.
pub(in crate::http) async fn list(
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
    let title = lang.t("Förstagångslösenord", "First passwords");
    let none_handed_out = engine.password_targets().is_empty();
    let waiting = match engine.waiting_passwords(&s.principal.viewer).await {
        Ok(w) => w,
        Err(e) => return failure(&e),
    };
    let body = html! {
        h1 { (title) }
        @if none_handed_out {
            p { (lang.t("Inget mål lämnar ut förstagångslösenord.", "No target hands out first passwords.")) }
        } @else if waiting.is_empty() {
            p role="status" { (lang.t("Inga lösenord väntar på att lämnas ut.", "No first passwords wait to be handed out.")) }
        } @else {
            p { (lang.t(
                "Nya konton har fått ett lösenord som väntar här tills någon lämnar ut det. Visa dem, ge dem till \
                 eleverna och personalen, och bekräfta sedan: först då glöms de. Bekräftar du inte inom fem \
                 minuter visas de igen nästa gång.",
                "New accounts got a password that waits here until someone hands it out. Show them, give them to \
                 the pupils and staff, then confirm: only then are they forgotten. Unconfirmed within five \
                 minutes, they are shown again the next time.")) }
            table {
                thead { tr {
                    th scope="col" { (lang.t("Skolenhet", "School unit")) }
                    th scope="col" { (lang.t("Väntar", "Waiting")) }
                    th scope="col" { span class="visually-hidden" { (lang.t("Visa", "Show")) } }
                } }
                tbody {
                    @for w in &waiting {
                        tr {
                            td { @if w.protected { (lang.t("Personer med skyddade personuppgifter", "Persons with protected personal data")) } @else { (w.school) } }
                            td { (w.count) }
                            td {
                                form method="post" action="/passwords/claims" {
                                    input type="hidden" name="csrf" value=(s.csrf);
                                    input type="hidden" name="school" value=(w.school);
                                    @if w.protected { input type="hidden" name="protected" value="yes"; }
                                    button type="submit" { (lang.t("Visa lösenorden", "Show the passwords")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    signed_in_page(&state, lang, q.lang.as_deref(), title, &s, body)
}

/// The claim form as posted.
#[derive(Debug, serde::Deserialize)]
pub(in crate::http) struct ClaimForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    school: String,
    #[serde(default)]
    protected: Option<String>,
}

/// `POST /passwords/claims`: claims the waiting passwords of one unit (or protected persons'),
/// then shows the claim on its own page, so that a reload shows them again instead of claiming
/// anew.
pub(in crate::http) async fn claim(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Form(form): Form<ClaimForm>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let engine = state.engine();
    let s = match posted(&engine, &headers, &form.csrf, lang).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let protected = form.protected.is_some();
    let request = HandOutRequest {
        school: if protected { None } else { Some(form.school.trim().to_string()).filter(|x| !x.is_empty()) },
        protected,
        target: None,
    };
    let title = lang.t("Förstagångslösenord", "First passwords");
    let answer = |status: StatusCode, text: &str| {
        let body = html! {
            h1 { (title) }
            p class="error" role="alert" { (text) }
            p { a href="/passwords" { (lang.t("Tillbaka", "Back")) } }
        };
        page(status, lang, title, Some(&s), body)
    };
    if let Err(e) = request.allowed_for(&s.principal.viewer) {
        return match e {
            HandOutRefused::ProtectedNeedsAdmin => {
                answer(StatusCode::FORBIDDEN, lang.t("Bara för administratörer.", "Administrators only."))
            }
            HandOutRefused::NotTheirs => {
                answer(StatusCode::NOT_FOUND, lang.t("Ingen sådan skolenhet.", "No such school unit."))
            }
            HandOutRefused::SayWhich => answer(
                StatusCode::BAD_REQUEST,
                lang.t("Välj en av dina skolenheter.", "Choose one of your school units."),
            ),
        };
    }
    match engine.claim_passwords(&request, crate::clock::now(None)).await {
        Ok(c) => Redirect::to(&format!(
            "/passwords/claims/{}?elsewhere={}&unreadable={}",
            c.id,
            c.held_elsewhere,
            c.unreadable.len()
        ))
        .into_response(),
        Err(crate::engine::EngineError::Passwords(m)) => answer(StatusCode::BAD_REQUEST, &m),
        Err(e) => failure(&e),
    }
}

/// The query of a claim's page: what the claim could not take, and the language.
#[derive(Debug, Default, serde::Deserialize)]
pub(in crate::http) struct ClaimQuery {
    lang: Option<String>,
    #[serde(default)]
    elsewhere: usize,
    #[serde(default)]
    unreadable: usize,
}

/// `GET /passwords/claims/{claim}`: the passwords the claim holds, with the forms that confirm
/// (forget) or give them back. Another's claim, or one ended, shows none.
pub(in crate::http) async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Path(claim): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<ClaimQuery>,
) -> Response {
    let lang = Lang::of(&headers, q.lang.as_deref());
    let engine = state.engine();
    let s = match signed_in(&engine, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let shown = match engine.claimed_passwords(&claim, &s.principal.viewer).await {
        Ok(p) => p,
        Err(e) => return failure(&e),
    };
    let title = lang.t("Förstagångslösenord", "First passwords");
    let body = html! {
        h1 { (title) }
        @if q.elsewhere > 0 {
            p role="status" { (q.elsewhere) " " (lang.t(
                "till visas i en annan utlämning just nu; de kommer tillbaka om den inte bekräftas inom fem minuter.",
                "more are being shown by another hand-out now; they come back if it is not confirmed within five minutes.")) }
        }
        @if q.unreadable > 0 {
            p class="error" role="alert" { (q.unreadable) " " (lang.t(
                "kunde inte läsas (lösenordsnyckeln); IT ser orsaken med `enid passwords show`.",
                "could not be read (the password key); IT sees why with `enid passwords show`.")) }
        }
        @if shown.is_empty() {
            p role="status" { (lang.t("Den här utlämningen håller inga lösenord (bekräftad, återlämnad eller för gammal).",
                                      "This hand-out holds no passwords (confirmed, given back, or lapsed).")) }
            p { a href="/passwords" { (lang.t("Tillbaka", "Back")) } }
        } @else {
            p { (lang.t(
                "Skriv ut eller skriv av dem nu. Bekräfta när du har dem: då glöms de och kan inte visas igen.",
                "Print or copy them now. Confirm once you have them: then they are forgotten and cannot be shown again.")) }
            table class="passwords" {
                thead { tr {
                    th scope="col" { (lang.t("Användarnamn", "Username")) }
                    th scope="col" { (lang.t("Namn", "Name")) }
                    th scope="col" { (lang.t("Skolenhet", "School unit")) }
                    th scope="col" { (lang.t("Mål", "Target")) }
                    th scope="col" { (lang.t("Lösenord", "Password")) }
                } }
                tbody {
                    @for p in &shown {
                        tr {
                            td { (p.username.as_deref().unwrap_or(&p.identity)) }
                            td { (p.display_name.as_deref().unwrap_or("-")) }
                            td { (if p.school.is_empty() { "-" } else { &p.school }) }
                            td { (p.target) }
                            td { code { (p.password.expose()) } }
                        }
                    }
                }
            }
            form method="post" action=(format!("/passwords/claims/{claim}/confirm")) class="inline" {
                input type="hidden" name="csrf" value=(s.csrf);
                button type="submit" { (lang.t("Jag har dem: glöm dem", "I have them: forget them")) }
            }
            " "
            form method="post" action=(format!("/passwords/claims/{claim}/give-back")) class="inline" {
                input type="hidden" name="csrf" value=(s.csrf);
                button type="submit" { (lang.t("Lämna tillbaka (visa nästa gång)", "Give back (show them next time)")) }
            }
        }
    };
    signed_in_page(&state, lang, q.lang.as_deref(), title, &s, body)
}

/// `POST /passwords/claims/{claim}/confirm`: the admin has them; they are forgotten.
pub(in crate::http) async fn confirm(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Path(claim): axum::extract::Path<String>,
    Form(form): Form<Csrf>,
) -> Response {
    end(state, headers, claim, form, true).await
}

/// `POST /passwords/claims/{claim}/give-back`: the hand-out failed; they wait for the next.
pub(in crate::http) async fn give_back(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Path(claim): axum::extract::Path<String>,
    Form(form): Form<Csrf>,
) -> Response {
    end(state, headers, claim, form, false).await
}

/// Confirms or gives back a claim that is the session's to end (another's ends as one that
/// holds nothing).
async fn end(state: Arc<ApiState>, headers: HeaderMap, claim: String, form: Csrf, confirmed: bool) -> Response {
    let lang = Lang::of(&headers, None);
    let engine = state.engine();
    let s = match posted(&engine, &headers, &form.csrf, lang).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = crate::clock::now(None);
    let n = match engine.claim_is_theirs(&claim, &s.principal.viewer).await {
        Ok(false) => 0,
        Ok(true) if confirmed => match engine.confirm_handout(&claim, now).await {
            Ok(n) => n as u64,
            Err(e) => return failure(&e),
        },
        Ok(true) => {
            let why = format!("given back on the web page by token \"{}\"", s.principal.name);
            match engine.release_claim(&claim, &why, now).await {
                Ok(n) => n,
                Err(e) => return failure(&e),
            }
        }
        Err(e) => return failure(&e),
    };
    let title = lang.t("Förstagångslösenord", "First passwords");
    let text = match (lang, confirmed) {
        (Lang::Sv, true) => format!("{n} lösenord är glömda."),
        (Lang::En, true) => format!("{n} passwords are forgotten."),
        (Lang::Sv, false) => format!("{n} lösenord är tillbakalämnade och visas nästa gång."),
        (Lang::En, false) => format!("{n} passwords are given back and shown next time."),
    };
    let body = html! {
        h1 { (title) }
        p role="status" { (text) }
        p { a href="/passwords" { (lang.t("Tillbaka", "Back")) } }
    };
    page(StatusCode::OK, lang, title, Some(&s), body)
}
