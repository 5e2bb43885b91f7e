//! An administrator's pages: a dry run shown as a person reads a plan, conflicts decided, held
//! renames approved.

use super::*;

/// `POST /plans` (an admin): a dry run now, saved, shown as a person reads a plan: its shape
/// per target and school unit, then 20 operations of each action.
pub(in crate::http) async fn dry_run(
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
    let report = match engine.run(&request, &mut crate::http::api::DryRun).await {
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
    let held: Vec<String> = plan.held.iter().map(ToString::to_string).collect();
    let intro = lang.t("ändringar. Inget är gjort; planen är sparad.", "changes. Nothing was done; the plan is saved.");
    let body = plan_markup(lang, title, intro, &view, &held, &PlanQuery::default(), None);
    page(StatusCode::OK, lang, title, Some(&s), body)
}

/// A plan's view as a page: threshold hits, the shape per target and school unit, then each
/// action's page of operations with links to the next and previous pages of that action.
fn plan_markup<O: crate::engine::ViewedOp>(
    lang: Lang,
    title: &str,
    intro: &str,
    view: &crate::engine::PlanView<O>,
    held: &[String],
    asked: &PlanQuery,
    approve: Option<(i64, &str)>,
) -> Markup {
    let dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
    let link = |action: &str, offset: usize| {
        let mut url = format!("/plans/{}?only={action}&offset={offset}", view.plan_id);
        if let Some(run) = asked.run {
            url.push_str(&format!("&run={run}"));
        }
        for (k, v) in [("school", &asked.school), ("target", &asked.target), ("person", &asked.person)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                url.push_str(&format!("&{k}={}", urlencoding(v)));
            }
        }
        url
    };
    html! {
        h1 { (title) " " (view.plan_id) }
        p { (view.total) " " (intro) }
        @if !held.is_empty() {
            section class="needs" {
                h2 { (lang.t("Över gränserna", "Over the thresholds")) }
                ul { @for h in held { li { (h) } } }
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
                    tr { td { (r.target) } td { (dash(&r.school)) } td { (r.action) } td { (r.count) } }
                }
            }
        }
        form method="get" action=(format!("/plans/{}", view.plan_id)) class="selection" {
            h2 { (lang.t("Välj ändringar", "Select changes")) }
            @if let Some(run) = asked.run { input type="hidden" name="run" value=(run); }
            label for="sel-only" { (lang.t("Ändring (t.ex. create,disable)", "Change (e.g. create,disable)")) }
            input type="text" id="sel-only" name="only" value=(asked.only.as_deref().unwrap_or_default());
            label for="sel-school" { (lang.t("Skolenhet", "School unit")) }
            input type="text" id="sel-school" name="school" value=(asked.school.as_deref().unwrap_or_default());
            label for="sel-target" { (lang.t("Mål", "Target")) }
            input type="text" id="sel-target" name="target" value=(asked.target.as_deref().unwrap_or_default());
            label for="sel-person" { (lang.t("Person (användarnamn eller enid-id)", "Person (username or enid id)")) }
            input type="text" id="sel-person" name="person" value=(asked.person.as_deref().unwrap_or_default());
            p { button type="submit" { (lang.t("Visa", "Show")) } }
        }
        @for l in &view.listings {
            h2 id=(format!("action-{}", l.action)) { (l.action) " (" (l.selected) ")" }
            @if l.offset > 0 {
                p { (lang.t("Från nummer ", "From number ")) (l.offset.saturating_add(1)) }
            }
            @if let Some((run, csrf)) = approve {
                form method="post" action=(format!("/runs/{run}/approve")) class="approve-ops" {
                    input type="hidden" name="csrf" value=(csrf);
                    ul class="ops" {
                        @for op in &l.operations {
                            @let id = format!("op-{}", op.fingerprint());
                            li {
                                input type="checkbox" name="op" value=(op.fingerprint()) id=(id);
                                " "
                                label for=(id) class="inline" {
                                    (op.target()) " · " (op.username()) " · " (dash(op.school())) " · " (op.reason())
                                }
                            }
                        }
                    }
                    label {
                        input type="checkbox" name="accept_protected" value="yes";
                        " " (lang.t("även personer med skyddade personuppgifter", "also persons with protected personal data"))
                    }
                    p { button type="submit" { (lang.t("Godkänn de markerade", "Approve the ticked")) " (" (l.action) ")" } }
                }
            } @else {
                ul {
                    @for op in &l.operations {
                        li { (op.target()) " · " (op.username()) " · " (dash(op.school())) " · " (op.reason()) }
                    }
                }
            }
            nav aria-label=(format!("{} {}", l.action, lang.t("sidor", "pages"))) {
                @if l.offset > 0 {
                    a href=(link(l.action, l.offset.saturating_sub(PLAN_PAGE))) { (lang.t("Föregående", "Previous")) }
                    " "
                }
                @if l.more() > 0 {
                    "… " (lang.t("och", "and")) " " (l.more()) " " (lang.t("till", "more")) " "
                    a href=(link(l.action, l.offset.saturating_add(l.operations.len()))) { (lang.t("Nästa", "Next")) " " (l.action) }
                }
            }
        }
    }
}

/// How many operations of each action a page of a saved plan lists.
const PLAN_PAGE: usize = 100;

/// A URL query value, percent-encoded.
fn urlencoding(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query of a saved plan's page: a selection, a page, the language.
#[derive(Debug, Default, serde::Deserialize)]
pub(in crate::http) struct PlanQuery {
    lang: Option<String>,
    only: Option<String>,
    school: Option<String>,
    target: Option<String>,
    person: Option<String>,
    #[serde(default)]
    offset: usize,
    /// The held or planned run whose plan this is: its operations can be approved one by one.
    run: Option<i64>,
}

/// `GET /plans/{id}` (an admin): a saved plan (a dry run's, a held or planned run's) as a
/// person reads it: its shape, then a page of each action's operations the selection picks.
pub(in crate::http) async fn saved_plan(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<PlanQuery>,
) -> Response {
    let lang = Lang::of(&headers, q.lang.as_deref());
    let engine = state.engine();
    let s = match signed_in(&engine, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let title = lang.t("Plan", "Plan");
    if let Some(r) = admins_only(lang, title, &s) {
        return r;
    }
    let answer = |status: StatusCode, text: String| {
        page(status, lang, title, Some(&s), html! { h1 { (title) } p class="error" role="alert" { (text) } })
    };
    let selection = match crate::engine::PlanSelection::from_words(
        q.only.as_deref(),
        q.school.as_deref(),
        q.target.as_deref(),
        q.person.as_deref(),
    ) {
        Ok(sel) => sel,
        Err(m) => return answer(StatusCode::BAD_REQUEST, m),
    };
    let view = match engine.saved_plan_view(&id, &selection, q.offset, Some(PLAN_PAGE)).await {
        Ok(Some(v)) => v,
        Ok(None) => return answer(StatusCode::NOT_FOUND, lang.t("Ingen sådan plan.", "No such plan.").into()),
        Err(e) => return failure(&e),
    };
    // A held or planned run of this plan: its operations are approved one by one here.
    let mut approve = None;
    let mut held = Vec::new();
    if let Some(run) = q.run
        && may_approve(&state, &s)
    {
        match engine.run_by_id(run, &s.principal.viewer).await {
            Ok(Some(r))
                if matches!(r.run.status.as_str(), "held" | "planned") && r.run.plan_id.as_deref() == Some(&id) =>
            {
                held = r.tally.map(|t| t.held).unwrap_or_default();
                approve = Some((run, s.csrf.as_str()));
            }
            Ok(_) => {}
            Err(e) => return failure(&e),
        }
    }
    let intro = lang.t("ändringar i planen.", "changes in the plan.");
    let body = plan_markup(lang, title, intro, &view, &held, &q, approve);
    signed_in_page(&state, lang, q.lang.as_deref(), title, &s, body)
}

/// `GET /conflicts` (an admin): records held because they conflict, each with the decision
/// form (one person, or different persons), as `enid conflicts` shows them.
pub(in crate::http) async fn conflicts(
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
pub(in crate::http) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    into: Option<String>,
}

/// `POST /conflicts/{id}/decision` (an admin): records the decision with the token's name; the
/// next apply carries it out.
pub(in crate::http) async fn decide(
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

/// `GET /renames`: the renames held for approval (`[naming] on_name_change = "hold"`) among the
/// viewer's persons, each with its approval form for whoever may approve.
pub(in crate::http) async fn renames(
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
    let held = match engine
        .held_renames_for(crate::clock::now(None), &crate::engine::Overrides::default(), &s.principal.viewer)
        .await
    {
        Ok(h) => h,
        Err(e) => return failure(&e),
    };
    let may = may_approve(&state, &s);
    let title = lang.t("Namnbyten", "Renames");
    let body = html! {
        h1 { (title) }
        @if held.is_empty() {
            p role="status" { (lang.t("Inga namnbyten väntar.", "No renames are waiting.")) }
        } @else {
            p { (lang.t(
                "Namnet har ändrats i källan; användarnamnet byts först när någon godkänner. Vem kan åtgärda: IT.",
                "The name changed in the source; the username changes only once someone approves. Who can fix it: IT.")) }
            table {
                thead { tr {
                    th scope="col" { (lang.t("Nu", "Now")) }
                    th scope="col" { (lang.t("Blir", "Becomes")) }
                    th scope="col" { span class="visually-hidden" { (lang.t("Godkänn", "Approve")) } }
                } }
                tbody {
                    @for r in &held {
                        tr id=(format!("rename-{}", r.identity)) {
                            td { a href=(format!("/persons/{}", r.identity)) { (r.old) } }
                            td { (r.new) }
                            td {
                                @if may {
                                    form method="post" action=(format!("/renames/{}/approve", r.identity)) {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        button type="submit" { (lang.t("Godkänn", "Approve")) " " (r.new) }
                                    }
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

/// `POST /renames/{person}/approve`: approves a held rename, recorded with the token's name;
/// the next apply renames the accounts. Only one the renames page lists: another school's
/// person, and a protected person, is not found.
pub(in crate::http) async fn approve_rename(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Path(person): axum::extract::Path<String>,
    Form(form): Form<Csrf>,
) -> Response {
    let lang = Lang::of(&headers, None);
    let engine = state.engine();
    let s = match posted(&engine, &headers, &form.csrf, lang).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let title = lang.t("Namnbyte", "Rename");
    let answer = |status: StatusCode, text: String| {
        let body = html! {
            h1 { (title) }
            p role="status" { (text) }
            p { a href="/renames" { (lang.t("Tillbaka till namnbytena", "Back to the renames")) } }
        };
        page(status, lang, title, Some(&s), body)
    };
    if !may_approve(&state, &s) {
        return answer(StatusCode::FORBIDDEN, lang.t("Du får inte godkänna.", "You may not approve.").into());
    }
    let not_found = lang.t("Inget sådant namnbyte väntar.", "No such rename is waiting.");
    let now = crate::clock::now(None);
    let overrides = crate::engine::Overrides::default();
    match engine.approve_rename_for(&person, &s.principal.viewer, &s.principal.name, now, &overrides).await {
        Ok(r) => {
            let _ = state.handle.run_now.send(crate::daemon::RunNow {
                // A decision is no record change: an incremental run would not see it.
                full: true,
                why: format!("rename approved on the web page by token {:?}", s.principal.name),
            });
            answer(
                StatusCode::OK,
                match lang {
                    Lang::Sv => format!("{} blir {} vid nästa körning.", r.old, r.new),
                    Lang::En => format!("{} becomes {} in the next run.", r.old, r.new),
                },
            )
        }
        Err(crate::engine::EngineError::Decision(_)) => answer(StatusCode::NOT_FOUND, not_found.into()),
        Err(e) => failure(&e),
    }
}
