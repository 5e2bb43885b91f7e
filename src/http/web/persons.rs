//! The sync log, a person's page (the "why" from explain) and the search by name or username.

use super::*;

/// The query of the log page: a run, a cursor, the language.
#[derive(Debug, Default, serde::Deserialize)]
pub(in crate::http) struct LogQuery {
    lang: Option<String>,
    run: Option<i64>,
    before: Option<i64>,
}

/// How many rows a page of the log shows.
const LOG_PAGE: i64 = 100;

/// `GET /log`: the operations with their results, newest first, a page at a time: the
/// viewer's school units only, protected persons by enid id.
pub(in crate::http) async fn log(
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
    signed_in_page(&state, lang, q.lang.as_deref(), title, &s, body)
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
pub(in crate::http) async fn person(
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
    let shown = explained.username.clone().unwrap_or_else(|| explained.id.to_string());
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
    signed_in_page(&state, lang, q.lang.as_deref(), &shown, &s, body)
}

/// The search form as posted (a POST, so that names typed never reach a URL or a log).
#[derive(Debug, serde::Deserialize)]
pub(in crate::http) struct SearchForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    q: String,
}

/// `POST /search`: persons by name or username among the viewer's; never a protected person.
pub(in crate::http) async fn search(
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
