//! Issue 17, the web page's hand-outs and decisions, in a real headless Chromium: first
//! passwords claimed, shown, given back and forgotten only on confirm (against the shared Samba
//! DC); what needs action with who can fix it (a row the source must fix, with its file and
//! line; an account the target refused; passwords to hand out); held renames approved on the
//! page and carried out on slapd. Screenshots under `target/test-artifacts/web17/`.

use crate::api16::Service;
use crate::harness::*;
use crate::web17::{Driver, at, click_and_wait, raw, screenshot, sign_in};
use fantoccini::Locator;

/// First passwords on the page, against the shared Samba DC: a school admin sees their own
/// unit's waiting (not another's), shows them, a reload shows the same ones and forgets none,
/// giving back keeps them, and only "I have them" forgets them. No password reaches the log.
#[test]
fn web17_first_passwords_are_handed_out_on_the_page_and_forgotten_only_on_confirm() {
    use crate::ad::{ad_table, env_with, test_ou};
    let ou = test_ou();
    let env = env_with(&ad_table("ldaps://127.0.0.1:636", &ou, "initial_password = \"generated\"\n"));
    let fam = crate::api16::unique_family();
    csv_rows(
        &env,
        &[
            row("1", "Ada", &fam, "", "student", "Norr", ""),
            row("2", "Bo", &fam, "", "student", "Norr", ""),
            row("3", "Cia", &fam, "", "student", "Syd", ""),
        ],
    );
    env.enid(&["apply", "--yes"]).ok();
    let lisa = env
        .enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "Norr"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let service = Service::start(&env);
    let base = format!("http://127.0.0.1:{}", service.port);
    // Read on a thread of its own: the harness blocks on a runtime, the browser's is running.
    let kept = || {
        std::thread::scope(|t| {
            t.spawn(|| env.sql_value("SELECT CAST(count(*) AS TEXT) FROM passwords WHERE length(sealed) > 0"))
                .join()
                .unwrap()
        })
    };
    assert_eq!(kept(), "3");
    let driver = Driver::start();
    let shown = rt().block_on(async {
        let browser = driver.browser().await;
        sign_in(&browser, &base, &lisa).await;
        at(&browser, "/runs").await;
        // What needs action says the school has passwords to hand out.
        let needs = browser.find(Locator::Css("section.needs")).await.unwrap().text().await.unwrap();
        assert!(needs.contains("2 lösenord") && needs.contains("Norr"), "{needs}");
        browser.find(Locator::LinkText("Lösenord")).await.unwrap().click().await.unwrap();
        at(&browser, "/passwords").await;
        let list = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(list.contains("Norr") && !list.contains("Syd"), "their unit only: {list}");
        browser.find(Locator::Css("form[action=\"/passwords/claims\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/passwords/claims/").await;
        let claim_url = browser.current_url().await.unwrap().to_string();
        let cells = |browser: &fantoccini::Client| {
            let browser = browser.clone();
            async move {
                let mut out = Vec::new();
                for c in browser.find_all(Locator::Css("table.passwords code")).await.unwrap() {
                    out.push(c.text().await.unwrap());
                }
                out
            }
        };
        let first = cells(&browser).await;
        assert_eq!(first.len(), 2, "Ada's and Bo's");
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains(&format!("ada.{}", fam.to_lowercase())), "{text}");
        assert!(!text.contains("Cia"), "another unit's: {text}");
        screenshot(&browser, "8-passwords").await;
        // A reload (the page lost, the printer jammed): the same two, nothing forgotten.
        browser.goto(&claim_url).await.unwrap();
        assert_eq!(cells(&browser).await, first);
        assert_eq!(kept(), "3");
        // Given back: kept, and shown again by the next hand-out.
        browser.find(Locator::Css("form[action$=\"/give-back\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/give-back").await;
        assert_eq!(kept(), "3");
        browser.goto(&format!("{base}/passwords")).await.unwrap();
        browser.find(Locator::Css("form[action=\"/passwords/claims\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/passwords/claims/").await;
        let again = cells(&browser).await;
        assert_eq!(again.len(), 2);
        let mut sorted = (first.clone(), again.clone());
        sorted.0.sort();
        sorted.1.sort();
        assert_eq!(sorted.0, sorted.1, "the same passwords come back");
        // Confirming without the form's CSRF token is refused and forgets nothing.
        let claim_path = browser.current_url().await.unwrap().path().to_string();
        let cookie = browser.get_named_cookie("enid_session").await.unwrap();
        let session = format!("enid_session={}", cookie.value());
        let (status, _) = raw(service.port, "POST", &format!("{claim_path}/confirm"), &session, "");
        assert_eq!(status, 403);
        assert_eq!(kept(), "3");
        browser.find(Locator::Css("form[action$=\"/confirm\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/confirm").await;
        let done = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(done.contains("2 lösenord är glömda"), "{done}");
        // Forgotten: the claim's page holds none now; Syd's is still kept.
        browser.goto(&format!("{base}{claim_path}")).await.unwrap();
        assert!(cells(&browser).await.is_empty());
        assert_eq!(kept(), "1");
        // Another unit's claim is no one's to see: a school admin asking for Syd is refused.
        let csrf_page = raw(service.port, "GET", "/passwords", &session, "").1;
        let csrf = csrf_page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        let (status, _) = raw(service.port, "POST", "/passwords/claims", &session, &format!("csrf={csrf}&school=Syd"));
        assert_eq!(status, 404);
        let (status, _) =
            raw(service.port, "POST", "/passwords/claims", &session, &format!("csrf={csrf}&school=Norr&protected=yes"));
        assert_eq!(status, 403);
        assert_eq!(kept(), "1");
        browser.close().await.unwrap();
        first
    });
    drop(service);
    let log = std::fs::read_to_string(env.path("service.log")).unwrap();
    for p in &shown {
        assert!(!log.contains(p.as_str()), "a password in the service's log");
    }
    let logged = env.enid(&["log", "--all"]).ok().stdout;
    assert!(logged.contains("hand_out_password"), "the hand-out is in the sync log: {logged}");
    for p in &shown {
        assert!(!logged.contains(p.as_str()), "a password in the sync log");
    }
}

/// What needs action, each with who can fix it: a row the source must fix (its file and line,
/// to the school whose person it is, not to another school), an account the directory refused
/// (with its error), and a held rename an admin approves on the page, after which slapd shows
/// the new name. A school admin sees renames but gets no approval form.
#[test]
fn web17_rejected_rows_refused_accounts_and_held_renames_need_action_on_the_page() {
    let env = Env::with_config(
        "\n[targets.directory.policy.attributes]\nmail = \"{{ given_name }}@skola.example.org\"\n\n\
         [naming]\non_name_change = \"hold\"\n\n[sources.sis.policy]\nmax_rejected_percent = 50\n\n\
         [schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\n",
    );
    csv_rows(
        &env,
        &[
            row("1", "Anna", "Berg", &pnr(1), "student", "S1", ""),
            row("2", "Bo", "Ek", &pnr(2), "student", "S2", ""),
            row("3", "Cia", "Dahl", &pnr(3), "student", "S1", ""),
        ],
    );
    env.apply();
    // Anna marries (a held rename); Bo's row gets a role no one knows (line 3); Åsa is new and
    // her mail is not ASCII, which slapd refuses.
    csv_rows(
        &env,
        &[
            row("1", "Anna", "Lind", &pnr(1), "student", "S1", ""),
            row("2", "Bo", "Ek", &pnr(2), "wizard", "S2", ""),
            row("3", "Cia", "Dahl", &pnr(3), "student", "S1", ""),
            row("4", "Åsa", "Holm", &pnr(4), "student", "S1", ""),
            // A new pupil whose row lacks the given name (line 6): no one the state knows.
            row("5", "", "Fors", &pnr(5), "student", "S1", ""),
        ],
    );
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let s1 =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let s2 =
        env.enid(&["token", "add", "per", "--role", "school_admin", "--school", "S2"]).ok().stdout.trim().to_string();
    let service = Service::start(&env);
    let base = format!("http://127.0.0.1:{}", service.port);
    crate::daemon16::wait_for("the service's failed run", 60, || {
        env.sql_value("SELECT CAST(count(*) AS TEXT) FROM runs WHERE status = 'failed'") != "0"
    });
    let driver = Driver::start();
    rt().block_on(async {
        let browser = driver.browser().await;
        // S2's admin: Bo's row, with its file and line, theirs to have fixed in the SIS.
        sign_in(&browser, &base, &s2).await;
        at(&browser, "/runs").await;
        let needs = browser.find(Locator::Css("section.needs")).await.unwrap().text().await.unwrap();
        assert!(needs.contains("persons.csv:3") && needs.contains("wizard"), "{needs}");
        assert!(needs.contains("skolans informationssystem"), "who can fix it: {needs}");
        assert!(!needs.contains("asa") && !needs.contains("Åsa"), "S1's refusal is not S2's: {needs}");
        assert!(!needs.contains("persons.csv:6"), "S1's new pupil's row is not S2's: {needs}");
        screenshot(&browser, "9-rejected-row").await;
        browser.find(Locator::Css("form[action=\"/sign-out\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/sign-in").await;

        // S1's admin: Åsa's account refused, with the directory's error and who fixes it; not
        // Bo's row; Anna's rename listed without an approval form.
        sign_in(&browser, &base, &s1).await;
        at(&browser, "/runs").await;
        let needs = browser.find(Locator::Css("section.needs")).await.unwrap().text().await.unwrap();
        assert!(needs.contains("asa.holm") && needs.contains("målsystemet vägrade"), "{needs}");
        assert!(!needs.contains("persons.csv:3"), "S2's row is not S1's: {needs}");
        assert!(needs.contains("persons.csv:6") && needs.contains("given_name is empty"), "a new pupil's row: {needs}");
        screenshot(&browser, "10-refused-account").await;
        browser.find(Locator::LinkText("Namnbyten")).await.unwrap().click().await.unwrap();
        at(&browser, "/renames").await;
        let renames = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(renames.contains("anna.berg") && renames.contains("anna.lind"), "{renames}");
        let html = browser.source().await.unwrap();
        assert!(!html.contains("/approve"), "a school admin may not approve here: {html}");
        browser.find(Locator::Css("form[action=\"/sign-out\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/sign-in").await;

        // The admin approves the rename; the service carries it out at once.
        sign_in(&browser, &base, &admin).await;
        at(&browser, "/runs").await;
        let needs = browser.find(Locator::Css("section.needs")).await.unwrap().text().await.unwrap();
        assert!(needs.contains("persons.csv:3") && needs.contains("asa.holm"), "an admin sees both: {needs}");
        assert!(needs.contains("Namnbyten som väntar: 1"), "and the held rename: {needs}");
        browser.goto(&format!("{base}/renames")).await.unwrap();
        screenshot(&browser, "11-renames").await;
        browser.find(Locator::Css("form[action$=\"/approve\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/approve").await;
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("anna.berg blir anna.lind"), "{text}");
        browser.close().await.unwrap();
    });
    // The API's view of the same: S2's token gets Bo's row, S1's does not; neither any number.
    let per = service.json("GET", "/api/v1/needs-action", &s2, None);
    let rows = per["last_full_run"]["rejected"].as_array().expect("S2's rejected row").clone();
    assert!(
        rows.iter().any(|r| r["location"].as_str().unwrap().ends_with("/persons.csv:3") && r["school"] == "S2"),
        "{per}"
    );
    let lisa = service.json("GET", "/api/v1/needs-action", &s1, None);
    assert!(!lisa.to_string().contains("persons.csv:3"), "{lisa}");
    for answer in [&per, &lisa] {
        let digits: String = answer.to_string().chars().filter(char::is_ascii_digit).collect();
        for i in 1..=5 {
            let ten: String = pnr(i)[2..].chars().filter(char::is_ascii_digit).collect();
            assert!(!digits.contains(&ten), "pnr({i}) in {answer}");
        }
    }
    crate::daemon16::wait_for("the approved rename on slapd", 30, || env.people().contains_key("anna.lind"));
    assert!(!env.people().contains_key("anna.berg"));
    // Who approved it stays in the sync log once the approval is used up.
    let log = env.enid(&["log", "--person", "anna.lind"]).ok().stdout;
    assert!(log.contains("anna.berg → anna.lind; approved by ops"), "{log}");
}

/// A plan a person can read, paged, through the API and on the page: a service that only plans
/// leaves a planned run of 45 creates; `GET /api/v1/plans/{id}/view` pages through them with a
/// selection, refusing what it cannot read; the admin reads the plan from the runs page and
/// pages to the next creates; a school admin gets neither.
#[test]
fn web17_a_saved_plan_is_read_a_page_at_a_time_through_the_api_and_on_the_page() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"plan_only\"\n");
    let rows: Vec<String> = (0..45)
        .map(|i| {
            row(
                &format!("P{i:02}"),
                &format!("Elev{i:02}"),
                "Plansson",
                "",
                "student",
                if i < 30 { "S1" } else { "S2" },
                "",
            )
        })
        .collect();
    csv_rows(&env, &rows);
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let s1 =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let api = Service::start(&env);
    crate::daemon16::wait_for("the planned run", 60, || {
        env.sql_value("SELECT CAST(count(*) AS TEXT) FROM runs WHERE status = 'planned'") != "0"
    });
    let plan_id = env.sql_value("SELECT plan_id FROM runs WHERE status = 'planned'");
    let view = |query: &str| api.call("GET", &format!("/api/v1/plans/{plan_id}/view{query}"), Some(&admin), None);
    let (status, body) = view("?only=create&offset=20&limit=20");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"], 45);
    let creates = &v["listings"][0];
    assert_eq!(
        (creates["action"].as_str(), creates["selected"].as_u64(), creates["offset"].as_u64()),
        (Some("create"), Some(45), Some(20))
    );
    let names: Vec<&str> =
        creates["operations"].as_array().unwrap().iter().map(|o| o["username"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 20);
    assert!(names[0].starts_with("elev20."), "{names:?}");
    let shape = v["shape"].as_array().unwrap();
    assert!(shape.iter().any(|r| r["school"] == "S1" && r["count"] == 30), "the whole plan's shape: {shape:?}");
    let (_, body) = view("?school=S2&limit=100");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["selected"], 15, "a school's selection: {body}");
    for bad in ["?only=explode", "?limit=0", "?limit=5000", "?colour=red", "?offset=-1", "?person=20150916-2388"] {
        let (status, body) = view(bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(!body.contains("2388"), "{body}");
    }
    assert_eq!(api.call("GET", "/api/v1/plans/nosuchplan/view", Some(&admin), None).0, 404);
    assert_eq!(api.call("GET", &format!("/api/v1/plans/{plan_id}/view"), Some(&s1), None).0, 403);

    let base = format!("http://127.0.0.1:{}", api.port);
    let driver = Driver::start();
    rt().block_on(async {
        let browser = driver.browser().await;
        sign_in(&browser, &base, &admin).await;
        at(&browser, "/runs").await;
        browser.find(Locator::LinkText("Läs planen")).await.unwrap().click().await.unwrap();
        at(&browser, &format!("/plans/{plan_id}")).await;
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("create (45)") && text.contains("elev00."), "{text}");
        // A selection: S2 only.
        browser.find(Locator::Id("sel-school")).await.unwrap().send_keys("S2").await.unwrap();
        click_and_wait(&browser, "form.selection button").await;
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("create (15)") && text.contains("elev30.") && !text.contains("elev00."), "{text}");
        screenshot(&browser, "12-plan-selection").await;
        // A dry run lists 20 of each action, and pages on from there.
        browser.goto(&format!("{base}/runs")).await.unwrap();
        browser.find(Locator::Css("form[action=\"/plans\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/plans").await;
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("och 25 till"), "{text}");
        // The next page replaces this one (both have the same headings): wait for it to go.
        let old = browser.find(Locator::Css("html")).await.unwrap();
        browser
            .find(Locator::XPath("//a[starts-with(normalize-space(.), 'Nästa')]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while old.tag_name().await.is_ok() {
            assert!(std::time::Instant::now() < end, "the next page did not come");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        browser.wait().for_element(Locator::Css("h2#action-create")).await.unwrap();
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("Från nummer 21") && text.contains("elev20.") && !text.contains("elev19."), "{text}");
        // Two operations ticked one by one on the planned run's plan: only those are carried out.
        browser.goto(&format!("{base}/runs")).await.unwrap();
        browser.find(Locator::LinkText("Läs planen")).await.unwrap().click().await.unwrap();
        browser.wait().for_element(Locator::Css("form.approve-ops")).await.unwrap();
        let mut ticked = 0;
        for label in browser.find_all(Locator::Css("form.approve-ops label.inline")).await.unwrap() {
            let text = label.text().await.unwrap();
            if text.contains("elev00.") || text.contains("elev31.") {
                label.click().await.unwrap(); // a label ticks its box
                ticked += 1;
            }
        }
        assert_eq!(ticked, 2);
        screenshot(&browser, "15-approve-ops").await;
        browser.find(Locator::Css("form.approve-ops button[type=submit]")).await.unwrap().click().await.unwrap();
        at(&browser, "/approve").await;
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("Godkände 2 ändringar"), "{text}");
        browser.find(Locator::Css("form[action=\"/sign-out\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/sign-in").await;
        // A school admin has no plan page.
        sign_in(&browser, &base, &s1).await;
        at(&browser, "/runs").await;
        assert!(!browser.source().await.unwrap().contains("Läs planen"));
        browser.goto(&format!("{base}/plans/{plan_id}")).await.unwrap();
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("Bara för administratörer"), "{text}");
        browser.close().await.unwrap();
    });
    let (status, _) = raw(api.port, "GET", &format!("/plans/{plan_id}"), "", "");
    assert_eq!(status, 303, "not signed in: to the sign-in form");
    crate::daemon16::wait_for("the two approved creates on slapd", 30, || env.people().len() == 2);
    let people: Vec<String> = env.people().into_keys().collect();
    assert!(people[0].starts_with("elev00.") && people[1].starts_with("elev31."), "{people:?}");
}

/// The accessibility problems a page has, as the checks below find them in the browser: a
/// missing `lang`, not one `h1`, a form field without a label, a button or link without text, a
/// table header without scope, a positive `tabindex`, text whose contrast with its background
/// is under 4.5:1 (WCAG AA), and a page wider than a phone's screen.
const A11Y: &str = r#"
const problems = [];
if (!document.documentElement.lang) problems.push('no lang on <html>');
if (document.querySelectorAll('h1').length !== 1) problems.push('not one h1');
for (const f of document.querySelectorAll('input, select, textarea')) {
  if (f.type === 'hidden' || f.type === 'submit') continue;
  const labelled = (f.id && document.querySelector('label[for="' + f.id + '"]')) || f.closest('label') || f.getAttribute('aria-label');
  if (!labelled) problems.push('no label: ' + f.outerHTML);
}
for (const b of document.querySelectorAll('button, a')) {
  if (!b.textContent.trim() && !b.getAttribute('aria-label')) problems.push('no text: ' + b.outerHTML);
}
for (const th of document.querySelectorAll('th')) if (!th.getAttribute('scope')) problems.push('th without scope');
for (const e of document.querySelectorAll('[tabindex]')) if (parseInt(e.getAttribute('tabindex')) > 0) problems.push('positive tabindex');
const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
const background = e => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c; } return [255, 255, 255]; };
for (const e of document.querySelectorAll('body *')) {
  const text = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  if (!text || e.offsetParent === null && getComputedStyle(e).position !== 'fixed') continue;
  const fg = rgb(getComputedStyle(e).color), bg = background(e);
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  if (ratio < 4.5) problems.push('contrast ' + ratio.toFixed(2) + ': ' + e.tagName + ' ' + e.textContent.trim().slice(0, 40));
}
if (document.documentElement.scrollWidth > window.innerWidth + 1) problems.push('wider than the screen: ' + document.documentElement.scrollWidth + ' > ' + window.innerWidth);
return problems;
"#;

/// Every page, as an admin and as a school admin, on a phone's screen: labelled, in contrast,
/// usable from the keyboard (sign-in and search without a mouse, focus visible), and no wider
/// than the screen.
#[test]
fn web17_every_page_is_labelled_in_contrast_keyboard_usable_and_fits_a_phone() {
    let env =
        Env::with_config("\n[naming]\non_name_change = \"hold\"\n\n[schedule]\nfull = \"1h\"\napply = \"plan_only\"\n");
    csv_rows(
        &env,
        &[row("1", "Anna", "Berg", &pnr(1), "student", "S1", ""), row("2", "Bo", "Ek", &pnr(2), "student", "S2", "")],
    );
    env.apply();
    csv_rows(
        &env,
        &[
            row("1", "Anna", "Lind", &pnr(1), "student", "S1", ""),
            row("2", "Bo", "Ek", &pnr(2), "student", "S2", ""),
            row("3", "Cia", "Dahl-Långnamnsdotter-Ytterligare", &pnr(3), "student", "S1", ""),
        ],
    );
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let s1 =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let service = Service::start(&env);
    crate::daemon16::wait_for("the planned run", 60, || {
        env.sql_value("SELECT CAST(count(*) AS TEXT) FROM runs WHERE status = 'planned'") != "0"
    });
    let plan_id = env.sql_value("SELECT plan_id FROM runs WHERE status = 'planned'");
    let planned = env.sql_value("SELECT CAST(id AS TEXT) FROM runs WHERE status = 'planned'");
    let anna = env.sql_value("SELECT identity_id FROM source_records WHERE person_id = '1'");
    let base = format!("http://127.0.0.1:{}", service.port);
    let driver = Driver::start();
    rt().block_on(async {
        let browser = driver.browser().await;
        browser.set_window_size(390, 844).await.unwrap(); // a phone
        let check = |what: String| {
            let browser = browser.clone();
            async move {
                let found = browser.execute(A11Y, vec![]).await.unwrap();
                let problems: Vec<String> = serde_json::from_value(found).unwrap();
                assert!(problems.is_empty(), "{what}: {problems:#?}");
            }
        };
        browser.goto(&format!("{base}/sign-in")).await.unwrap();
        check("sign-in".into()).await;
        // Signed in from the keyboard alone: the token typed, Enter.
        let field = browser.find(Locator::Id("token")).await.unwrap();
        field.send_keys(&format!("{s1}\u{E007}")).await.unwrap();
        at(&browser, "/runs").await;
        // The focus is visible where the keyboard puts it.
        browser.find(Locator::Id("q")).await.unwrap().send_keys("").await.unwrap();
        let outline =
            browser.execute("return getComputedStyle(document.activeElement).outlineStyle", vec![]).await.unwrap();
        assert_ne!(outline.as_str(), Some("none"), "no visible focus");
        for path in ["/runs", "/log", "/passwords", "/renames", &format!("/persons/{anna}")] {
            browser.goto(&format!("{base}{path}")).await.unwrap();
            check(format!("school admin {path}")).await;
        }
        // Search from the keyboard: typed, Enter.
        browser.find(Locator::Id("q")).await.unwrap().send_keys("anna\u{E007}").await.unwrap();
        at(&browser, "/search").await;
        check("school admin search".into()).await;
        screenshot(&browser, "13-phone-search").await;
        browser.find(Locator::Css("form[action=\"/sign-out\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/sign-in").await;

        sign_in(&browser, &base, &admin).await;
        at(&browser, "/runs").await;
        for path in [
            "/runs",
            "/log",
            "/conflicts",
            "/renames",
            "/passwords",
            &format!("/plans/{plan_id}"),
            &format!("/plans/{plan_id}?run={planned}"),
            "/runs?lang=en",
        ] {
            browser.goto(&format!("{base}{path}")).await.unwrap();
            check(format!("admin {path}")).await;
        }
        screenshot(&browser, "14-phone-runs").await;
        browser.find(Locator::Css("form[action=\"/plans\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/plans").await;
        check("admin dry run".into()).await;
        browser.close().await.unwrap();
    });
}
