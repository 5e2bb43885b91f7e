//! The runs page: the viewer's recent runs, those that need someone first with why and who can
//! fix it, and the approval of a held or planned run's operations.

use super::*;

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
pub(in crate::http) async fn runs(
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
    // What a target refused in a run that partly failed: the viewer's rows, each with its error.
    let mut refused = std::collections::BTreeMap::new();
    for r in needing.iter().filter(|r| r.run.status == "failed") {
        let filter = crate::store::LogFilter {
            run: Some(r.run.id),
            result: Some("failed".into()),
            limit: 20,
            ..Default::default()
        };
        match engine.log(filter, None, &s.principal.viewer).await {
            Ok(rows) => {
                refused.insert(r.run.id, rows);
            }
            Err(e) => return failure(&e),
        }
    }
    // A school admin's failed run is theirs to see only with refusals of their units.
    let needing: Vec<&RunView> = needing
        .into_iter()
        .filter(|r| r.run.status != "failed" || refused.get(&r.run.id).is_some_and(|rows| !rows.is_empty()))
        .collect();
    let left = match engine.needs_action(&s.principal.viewer).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    let waiting = match engine.waiting_passwords(&s.principal.viewer).await {
        Ok(w) => w,
        Err(e) => return failure(&e),
    };
    let nothing_waits = needing.is_empty() && left.is_none() && waiting.is_empty();
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
            @if nothing_waits {
                p { (lang.t("Inget väntar.", "Nothing is waiting.")) }
            }
            @if !needing.is_empty() {
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
                                    @if let Some(t) = r.tally.as_ref().filter(|t| !t.held.is_empty() && r.run.message.is_none()) {
                                        ul { @for h in &t.held { li { (h) } } }
                                    }
                                    @if let Some(rows) = refused.get(&r.run.id) {
                                        ul class="refused" {
                                            @for row in rows {
                                                li {
                                                    @match (&row.identity_id, &row.username) {
                                                        (Some(id), Some(u)) => { a href=(format!("/persons/{id}")) { (u) } }
                                                        _ => { "-" }
                                                    }
                                                    " · " (row.target.as_deref().unwrap_or("-")) " · " (row.action) ": "
                                                    span class="error" { (row.error.as_deref().unwrap_or("-")) }
                                                }
                                            }
                                        }
                                    }
                                    @if let Some(pid) = r.run.plan_id.as_ref().filter(|_| {
                                        s.principal.role == crate::engine::TokenRole::Admin
                                            && matches!(r.run.status.as_str(), "held" | "planned")
                                    }) {
                                        p { a href=(format!("/plans/{pid}?run={}", r.run.id)) { (lang.t("Läs planen", "Read the plan")) } }
                                    }
                                    @if may_approve && matches!(r.run.status.as_str(), "held" | "planned") {
                                        (approve_form(lang, &s, r))
                                    }
                                }
                                td {
                                    @if r.run.status == "failed" {
                                        (lang.t("IT: målsystemet vägrade kontot (felet står ovan); IT rättar där eller i kontots uppgifter. Nästa körning försöker igen.",
                                                "IT: the target refused the account (the error is above); IT fixes it there or in the account's data. The next run tries again."))
                                    } @else { (who) }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(left) = left.as_ref().filter(|l| l.renames_held > 0) {
                h3 id="renames" { (lang.t("Namnbyten att godkänna", "Renames to approve")) }
                p {
                    a href="/renames" { (lang.t("Namnbyten som väntar: ", "Renames waiting: ")) (left.renames_held) }
                    " · " (lang.t("Vem: IT godkänner dem.", "Who: IT approves them."))
                }
            }
            @if let Some(left) = left.as_ref().filter(|l| !l.conflicts.is_empty()) {
                h3 id="conflicts" { (lang.t("Konflikter", "Conflicts")) }
                p { (lang.t(
                    "Poster som delar personnummer eller nyckel med någon annan hålls utan konto tills IT avgör om det är samma person. Vem kan åtgärda: IT, efter att ha frågat skolan vem posterna gäller.",
                    "Records that share a civic number or a key with someone else are held without an account until IT decides whether they are the same person. Who can fix it: IT, after asking the school whom the records are for.")) }
                ul {
                    @for c in &left.conflicts {
                        li {
                            @if s.principal.role == crate::engine::TokenRole::Admin {
                                a href=(format!("/conflicts#conflict-{}", c.id)) { (c.id) }
                            } @else { (c.id) }
                            " · " (c.held) " " (lang.t("poster hålls", "records held"))
                            " · " (if c.schools.is_empty() { "-".to_string() } else { c.schools.join(", ") })
                        }
                    }
                }
            }
            @if let Some(rj) = left.as_ref().filter(|l| !l.rejected.is_empty()) {
                h3 id="rejected" { (lang.t("Rader som källan måste rätta", "Rows the source must fix")) }
                p { (lang.t(
                    "Skolans informationssystem lämnade rader som enid inte kunde läsa (körning ",
                    "The school information system gave rows enid could not read (run ")) (rj.run_id) "). "
                    (lang.t(
                    "Personerna behålls som de var tills raden är rättad. Vem kan åtgärda: den som för in uppgifterna i skolans informationssystem.",
                    "The persons are kept as they were until the row is fixed. Who can fix it: whoever enters the data in the school information system.")) }
                table {
                    thead { tr {
                        th scope="col" { (lang.t("Var", "Where")) }
                        th scope="col" { (lang.t("Fel", "What is wrong")) }
                        th scope="col" { (lang.t("Skolenhet", "School unit")) }
                    } }
                    tbody {
                        @for row in &rj.rejected {
                            tr { td { (row.source) ": " (row.location) } td { (row.message) } td { (row.school.as_deref().unwrap_or("-")) } }
                        }
                    }
                }
                @if rj.rejected_more > 0 { p { "… " (lang.t("och", "and")) " " (rj.rejected_more) " " (lang.t("till", "more")) } }
            }
            @if !waiting.is_empty() {
                h3 id="passwords" { (lang.t("Förstagångslösenord att lämna ut", "First passwords to hand out")) }
                ul {
                    @for w in &waiting {
                        li {
                            a href="/passwords" { (w.count) " " (lang.t("lösenord", "passwords")) }
                            " · " @if w.protected { (lang.t("skyddade personer", "protected persons")) } @else { (w.school) }
                            " · " (lang.t("Vem: skolan lämnar ut dem.", "Who: the school hands them out."))
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
    signed_in_page(&state, lang, q.lang.as_deref(), title, &s, body)
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
#[derive(Debug, Default)]
struct ApproveForm {
    csrf: String,
    only: String,
    school: String,
    accept_protected: Option<String>,
    /// Operations ticked one by one on the plan's page (their fingerprints), each an `op` field.
    ops: Vec<String>,
}

impl ApproveForm {
    /// The form from its fields, `op` given once per ticked operation.
    fn from_pairs(pairs: Vec<(String, String)>) -> ApproveForm {
        let mut form = ApproveForm::default();
        for (k, v) in pairs {
            match k.as_str() {
                "csrf" => form.csrf = v,
                "only" => form.only = v,
                "school" => form.school = v,
                "accept_protected" => form.accept_protected = Some(v),
                "op" => form.ops.push(v),
                _ => {}
            }
        }
        form
    }
}

/// `POST /runs/{id}/approve`: approves a held or planned run's operations (as `enid approve`
/// and the API do) and starts a run at once.
pub(in crate::http) async fn approve(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form = ApproveForm::from_pairs(pairs);
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
        ops: form.ops,
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
