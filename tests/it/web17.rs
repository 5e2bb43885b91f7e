//! Issue 17, the web page, in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver): sign-in with a token, a school admin sees only the
//! runs of their school, a failure is shown with its reason and who can fix it, a form posted
//! without its CSRF token is refused, sign-out ends the session. Screenshots are kept under
//! `target/test-artifacts/web17/`.

use crate::api16::Service;
use crate::harness::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt as _;

/// chromedriver on a free port, stopped when dropped.
pub(crate) struct Driver {
    child: std::process::Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    /// Stops chromedriver and the browser it started: its process group, so that a test that
    /// panicked before closing its session leaves no headless Chromium behind.
    fn drop(&mut self) {
        let _ =
            std::process::Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub(crate) fn start() -> Driver {
        let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("chromedriver is not installed: apt-get install chromium chromium-driver");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(binary)
            // A group of its own, which the browser it starts joins: dropped, both go.
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < end, "chromedriver did not listen on {port}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Driver { child, port, _profile: tempfile::tempdir().unwrap() }
    }

    /// A headless Chromium session.
    pub(crate) async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        let profile = self._profile.path().display().to_string();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1000,900", format!("--user-data-dir={profile}"), "--lang=sv"],
                "prefs": { "intl.accept_languages": "sv,en" }
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session")
    }
}

/// Saves a screenshot as a test artefact.
pub(crate) async fn screenshot(browser: &Client, name: &str) {
    let dir = repo().join("target/test-artifacts/web17");
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// A raw HTTP/1.1 request with a cookie; (status, headers and body).
pub(crate) fn raw(port: u16, method: &str, path: &str, cookie: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

/// Waits (10 s at most) until the browser is at a page whose path ends with `path`: a click's
/// navigation completes after the click returns.
pub(crate) async fn at(browser: &Client, path: &str) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = browser.current_url().await.unwrap();
        if now.path().ends_with(path) || path.ends_with('/') && now.path().starts_with(path) {
            return;
        }
        assert!(std::time::Instant::now() < end, "still at {now}, not {path}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Clicks `css` and waits (10 s at most) until the page it was on is gone: a form posted to the
/// URL the browser is already at (a second search) changes no URL that [`at`] could wait for.
pub(crate) async fn click_and_wait(browser: &Client, css: &str) {
    let old = browser.find(Locator::Css("html")).await.unwrap();
    browser.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while old.tag_name().await.is_ok() {
        assert!(std::time::Instant::now() < end, "the page did not change after clicking {css}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    browser.wait().for_element(Locator::Css("main")).await.unwrap();
}

pub(crate) async fn sign_in(browser: &Client, base: &str, token: &str) {
    browser.goto(&format!("{base}/sign-in")).await.unwrap();
    let field = browser.find(Locator::Id("token")).await.unwrap();
    field.send_keys(token).await.unwrap();
    browser.find(Locator::Css("main button[type=submit]")).await.unwrap().click().await.unwrap();
}

#[test]
fn web17_a_school_admin_signs_in_sees_only_their_school_and_forms_need_their_csrf_token() {
    let env = Env::new();
    // Anna at S1, Bo at S2, and Hemlig Berg at S1 with protected personal data.
    let export = |bo: &str| {
        format!(
            "{HEADER},protection\n1,Anna,Berg,{},student,S1,,,,\n2,Bo,{bo},{},student,S2,,,,\n\
             3,Hemlig,Berg,{},student,S1,,,,Skyddad folkbokföring\n",
            pnr(1),
            pnr(2),
            pnr(3)
        )
    };
    std::fs::write(env.path("persons.csv"), export("Ek")).unwrap();
    env.apply(); // run 1: both schools (Hemlig's account waits for approval)
    std::fs::write(env.path("persons.csv"), export("Lind")).unwrap();
    env.apply(); // run 2: S2 only
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    // The service's first run finds the export cut to its header: stopped, a failure to show.
    std::fs::write(env.path("persons.csv"), format!("{HEADER},protection\n")).unwrap();
    let service = Service::spawn(&env, "");
    // Degraded (503) once the run stops: up all the same.
    service.wait_up(&env, || service.call("GET", "/healthz", None, None).0 != 0);
    let base = format!("http://127.0.0.1:{}", service.port);
    crate::daemon16::wait_for("the service's stopped run", 60, || {
        env.sql_value("SELECT CAST(count(*) AS TEXT) FROM runs WHERE status = 'stopped'") != "0"
    });
    let bo = env.sql_value("SELECT identity_id FROM source_records WHERE person_id = '2'");
    let anna = env.sql_value("SELECT identity_id FROM source_records WHERE person_id = '1'");
    let driver = Driver::start();
    let rt = rt();
    rt.block_on(async {
        let browser = driver.browser().await;
        // Not signed in: the sign-in form, in Swedish.
        browser.goto(&format!("{base}/runs")).await.unwrap();
        at(&browser, "/sign-in").await;
        screenshot(&browser, "1-sign-in").await;
        // A wrong token: refused, still the form.
        sign_in(&browser, &base, "enid_00").await;
        browser.wait().for_element(Locator::Css("p.error")).await.unwrap();
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("Nyckeln gäller inte"), "{text}");

        sign_in(&browser, &base, &lisa).await;
        at(&browser, "/runs").await;
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("Dina skolenheter: S1"), "{text}");
        assert!(text.contains("klar"), "the run's status in Swedish: {text}");
        screenshot(&browser, "2-school-admin-runs").await;
        let html = browser.source().await.unwrap();
        assert!(html.contains("id=\"run-1\""), "run 1 touched S1: {html}");
        // Run 1 created Anna's account at S1 and Bo's at S2: Lisa reads S1's numbers only.
        let row = browser.find(Locator::Css("tr#run-1")).await.unwrap().text().await.unwrap();
        assert!(row.contains("1 create; 1 klara"), "{row}");
        assert!(!html.contains("id=\"run-2\""), "run 2 touched S2 only: {html}");
        assert!(!html.contains("Bo") && !html.contains("Lind"), "nothing of S2's pupil: {html}");

        // The session cookie, as the browser holds it: HttpOnly, SameSite=Strict.
        let cookie = browser.get_named_cookie("enid_session").await.expect("the session cookie");
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site().map(|s| format!("{s:?}")).as_deref(), Some("Strict"));
        let session = format!("enid_session={}", cookie.value());
        // A form posted without its CSRF token, or with another, is refused; the session lives.
        let (status, _) = raw(service.port, "POST", "/sign-out", &session, "");
        assert_eq!(status, 403);
        let (status, _) = raw(service.port, "POST", "/sign-out", &session, "csrf=0000");
        assert_eq!(status, 403);
        let (status, page) = raw(service.port, "GET", "/runs", &session, "");
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Cache-Control: no-store") || page.contains("cache-control: no-store"), "{page}");
        // The sign-in form too needs the token its cookie was set with.
        let (status, _) = raw(service.port, "POST", "/sign-in", "", &format!("token={lisa}"));
        assert_eq!(status, 403, "a sign-in posted from elsewhere");

        // In English on asking, kept for the next page.
        browser.goto(&format!("{base}/runs?lang=en")).await.unwrap();
        browser.goto(&format!("{base}/runs")).await.unwrap();
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("Your school units: S1"), "{text}");

        // The sync log: their school's operations only, each person linked to their page.
        browser.goto(&format!("{base}/log?lang=sv")).await.unwrap();
        let log = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(log.contains("anna.berg") && !log.contains("bo.ek") && !log.contains("bo.lind"), "{log}");
        assert!(!log.to_lowercase().contains("hemlig"), "a protected person's name: {log}");
        browser.find(Locator::LinkText("anna.berg")).await.unwrap().click().await.unwrap();
        at(&browser, "/persons/").await;
        let person = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(person.contains("anna.berg") && person.contains("Anna Berg"), "{person}");
        assert!(person.contains("directory: active"), "{person}");
        screenshot(&browser, "5-person").await;
        // Another school's person is no one, as is a civic number in the URL.
        browser.goto(&format!("{base}/persons/{bo}")).await.unwrap();
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("Hittades inte") && !text.contains("Bo"), "{text}");
        let (status, _) = raw(service.port, "GET", &format!("/persons/{bo}"), &session, "");
        assert_eq!(status, 404);
        let (status, page) = raw(service.port, "GET", "/persons/20150916-2388", &session, "");
        assert_eq!(status, 404, "{page}");

        // A search by name finds their school's persons, never another school's or a protected
        // person (Hemlig Berg is at S1 too).
        let search = |q: &'static str| {
            let browser = &browser;
            async move {
                let field = browser.find(Locator::Id("q")).await.unwrap();
                field.send_keys(q).await.unwrap();
                click_and_wait(browser, "form[role=search] button").await;
                at(browser, "/search").await;
                browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap()
            }
        };
        let found = search("berg").await;
        assert!(found.contains("Anna Berg"), "{found}");
        assert!(!found.contains("Hemlig") && !found.contains("Bo"), "{found}");
        screenshot(&browser, "6-search").await;
        let found = search("hemlig").await;
        assert!(found.contains("Ingen hittades"), "{found}");
        // The search is a form like the others: without its CSRF token, refused.
        let (status, _) = raw(service.port, "POST", "/search", &session, "q=berg");
        assert_eq!(status, 403);

        // No page shows a civic number (in any spelling) or the protected person's name.
        let mut pages = Vec::new();
        for path in ["/runs", "/log", &format!("/persons/{anna}")] {
            browser.goto(&format!("{base}{path}")).await.unwrap();
            pages.push((path.to_string(), browser.source().await.unwrap()));
        }
        pages.push(("search".into(), {
            search("berg").await;
            browser.source().await.unwrap()
        }));
        for (path, html) in &pages {
            let digits: String = html.chars().filter(char::is_ascii_digit).collect();
            for i in 1..=3 {
                let ten: String = pnr(i)[2..].chars().filter(char::is_ascii_digit).collect();
                assert!(!digits.contains(&ten), "{path}: pnr({i}) in {html}");
            }
            assert!(!html.to_lowercase().contains("hemlig"), "{path}: {html}");
        }

        // Sign out: the button's form carries the token; the old cookie opens nothing.
        browser.find(Locator::Css("form[action=\"/sign-out\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/sign-in").await;
        let (status, page) = raw(service.port, "GET", "/runs", &session, "");
        assert_eq!(status, 303, "{page}");

        // The admin sees every run, the stopped one first with its reason and who can fix it.
        sign_in(&browser, &base, &admin).await;
        at(&browser, "/runs").await;
        let needs = browser.find(Locator::Css("section.needs")).await.unwrap().text().await.unwrap();
        assert!(needs.contains("Stoppad innan något ändrades"), "{needs}");
        assert!(needs.contains("zero valid records"), "the run's own message, for an admin: {needs}");
        assert!(needs.contains("IT, eller skolans informationssystem"), "{needs}");
        let html = browser.source().await.unwrap();
        assert!(html.contains("id=\"run-2\""), "{html}");
        screenshot(&browser, "3-admin-runs").await;
        // Revoking the token ends its sessions at once.
        env.enid(&["token", "revoke", "ops"]).ok();
        browser.goto(&format!("{base}/runs")).await.unwrap();
        at(&browser, "/sign-in").await;
        browser.close().await.unwrap();
    });
    // Signed out and revoked: no session is left in the state.
    assert_eq!(env.sql_value("SELECT CAST(count(*) AS TEXT) FROM web_sessions"), "0");
    drop(service);
}

/// An admin approves a held run on the page (only its disables); the service carries them out
/// at once and slapd shows it. A school admin (without `school_admins_approve`) gets no form.
#[test]
fn web17_an_admin_approves_a_held_run_on_the_page_and_slapd_shows_it_applied() {
    let env = Env::with_config(
        "\n[targets.directory.policy.thresholds]\ndisable_percent = 0\ndisable_min = 1\n\n\
         [schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"1s\"\n",
    );
    let rows: Vec<String> =
        (0..4).map(|i| row(&format!("P{i}"), &format!("Elev{i}"), "Testsson", "", "student", "S1", "")).collect();
    csv_rows(&env, &rows);
    env.apply();
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let service = Service::start(&env);
    let base = format!("http://127.0.0.1:{}", service.port);
    let runs = || env.sql_value("SELECT CAST(count(*) AS TEXT) FROM runs").parse::<usize>().unwrap();
    crate::daemon16::wait_for("the service's first run", 30, || runs() >= 2);
    // Two leave: over the disable threshold, held.
    csv_rows(&env, &rows[..2]);
    crate::daemon16::wait_for("a held run", 30, || {
        env.sql_value("SELECT CAST(count(*) AS TEXT) FROM runs WHERE status = 'held'") != "0"
    });
    let held = env.sql_value("SELECT CAST(max(id) AS TEXT) FROM runs WHERE status = 'held'");
    let disabled = || env.people().values().filter(|e| e.dn.contains("ou=disabled")).count();
    assert_eq!(disabled(), 0);
    let driver = Driver::start();
    rt().block_on(async {
        let browser = driver.browser().await;
        sign_in(&browser, &base, &lisa).await;
        at(&browser, "/runs").await;
        let html = browser.source().await.unwrap();
        assert!(!html.contains("/approve"), "a school admin may not approve here: {html}");
        browser.find(Locator::Css("form[action=\"/sign-out\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/sign-in").await;

        sign_in(&browser, &base, &admin).await;
        at(&browser, "/runs").await;
        // A dry run: the plan's shape, over the threshold, nothing done.
        browser.find(Locator::Css("form[action=\"/plans\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/plans").await;
        let plan = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(plan.contains("Inget är gjort") && plan.contains("disable (2)"), "{plan}");
        assert!(plan.contains("Över gränserna"), "{plan}");
        screenshot(&browser, "7-dry-run").await;
        browser.goto(&format!("{base}/runs")).await.unwrap();
        let form = browser.find(Locator::Css(&format!("tr#run-{held} form.approve"))).await.expect("the approval form");
        form.find(Locator::Css("select[name=only]")).await.unwrap().select_by_value("disable").await.unwrap();
        screenshot(&browser, "4-approve").await;
        form.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
        at(&browser, "/approve").await;
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("Godkände 2 ändringar"), "{text}");
        browser.close().await.unwrap();
    });
    crate::daemon16::wait_for("the approved disables on slapd", 30, || disabled() == 2);
    let by = env.sql_value("SELECT approved_by FROM approvals ORDER BY id DESC LIMIT 1");
    assert_eq!(by, "ops", "the token's name is recorded");
}

/// The value of `name` in a response's `Set-Cookie` headers.
fn set_cookie_value(response: &str, name: &str) -> Option<String> {
    response
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_string()))
}

/// Sessions are kept in the state: a restart of the service keeps them; they end when
/// `session_expires_after` has passed.
#[test]
fn web17_a_session_survives_a_restart_and_expires() {
    let env = Env::new();
    env.csv(&[&row("1", "Anna", "Berg", "", "student", "S1", "")]);
    env.apply();
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let mut service = Service::spawn(&env, "session_expires_after = \"8s\"");
    service.wait_up(&env, || service.call("GET", "/healthz", None, None).0 != 0);
    let port = service.port;
    // Sign in by hand: the form's token and its cookie, then the token.
    let (_, form) = raw(port, "GET", "/sign-in", "", "");
    let presession = set_cookie_value(&form, "enid_signin").expect("the sign-in form's cookie");
    let csrf = form.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
    let (status, signed) =
        raw(port, "POST", "/sign-in", &format!("enid_signin={presession}"), &format!("csrf={csrf}&token={admin}"));
    assert_eq!(status, 303, "{signed}");
    let cookie = format!("enid_session={}", set_cookie_value(&signed, "enid_session").expect("a session cookie"));
    assert!(signed.contains("HttpOnly") && signed.contains("SameSite=Strict"), "{signed}");
    assert!(!signed.contains("; Secure"), "plain HTTP: no Secure flag (the browser would drop it)");
    let signed_at = std::time::Instant::now();
    assert_eq!(raw(port, "GET", "/runs", &cookie, "").0, 200);

    // A restart keeps the session.
    let _ = service.child.kill();
    let _ = service.child.wait();
    service.child = std::process::Command::new(env!("CARGO_BIN_EXE_enid"))
        .arg("--config")
        .arg(env.path("enid.toml"))
        .arg("run")
        .env_remove("ENID_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(env.path("service2.log")).unwrap())
        .spawn()
        .expect("restart enid run");
    service.wait_up(&env, || service.call("GET", "/healthz", None, None).0 != 0);
    let (status, page) = raw(port, "GET", "/runs", &cookie, "");
    assert_eq!(status, 200, "the session after a restart: {page}");
    assert!(signed_at.elapsed() < std::time::Duration::from_secs(8), "the restart took too long to test the expiry");

    // Expired: back to the sign-in form.
    std::thread::sleep(
        std::time::Duration::from_secs(8).saturating_sub(signed_at.elapsed()) + std::time::Duration::from_millis(1200),
    );
    let (status, page) = raw(port, "GET", "/runs", &cookie, "");
    assert_eq!(status, 303, "{page}");
    assert!(page.contains("location: /sign-in") || page.contains("Location: /sign-in"), "{page}");
}

/// Two rows with one civic number (a person typed twice): held as a conflict, no account. An
/// admin decides on the page that they are the same person; the next apply makes one account.
/// A school admin has no conflicts page.
#[test]
fn web17_an_admin_decides_a_conflict_on_the_page_and_the_next_apply_makes_one_account() {
    let env = Env::new();
    let civic = pnr(17);
    env.csv(&[
        &row("1", "Anna", "Berg", &pnr(11), "student", "S1", ""),
        &row("6", "Eva", "Fors", &civic, "student", "S1", ""),
        &row("7", "Eva", "Fors", &civic, "student", "S1", ""),
    ]);
    env.apply();
    assert!(!env.people().contains_key("eva.fors"), "held, no account");
    let admin = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let lisa =
        env.enid(&["token", "add", "lisa", "--role", "school_admin", "--school", "S1"]).ok().stdout.trim().to_string();
    let per =
        env.enid(&["token", "add", "per", "--role", "school_admin", "--school", "S2"]).ok().stdout.trim().to_string();
    let service = Service::spawn(&env, "");
    service.wait_up(&env, || service.call("GET", "/healthz", None, None).0 != 0);
    let base = format!("http://127.0.0.1:{}", service.port);
    let driver = Driver::start();
    rt().block_on(async {
        let browser = driver.browser().await;
        // A school admin of another unit hears nothing of it.
        sign_in(&browser, &base, &per).await;
        at(&browser, "/runs").await;
        let needs = browser.find(Locator::Css("section.needs")).await.unwrap().text().await.unwrap();
        assert!(!needs.contains("poster hålls"), "{needs}");
        browser.find(Locator::Css("form[action=\"/sign-out\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/sign-in").await;
        // Lisa's school: the held records need action, by IT; no key, name or number shown.
        sign_in(&browser, &base, &lisa).await;
        at(&browser, "/runs").await;
        let needs = browser.find(Locator::Css("section.needs")).await.unwrap().text().await.unwrap();
        assert!(needs.contains("2 poster hålls · S1") && needs.contains("Vem kan åtgärda: IT"), "{needs}");
        assert!(!needs.contains("sis/6") && !needs.contains("Eva"), "{needs}");
        browser.goto(&format!("{base}/conflicts")).await.unwrap();
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("Bara för administratörer"), "{text}");
        browser.find(Locator::Css("form[action=\"/sign-out\"] button")).await.unwrap().click().await.unwrap();
        at(&browser, "/sign-in").await;

        sign_in(&browser, &base, &admin).await;
        at(&browser, "/runs").await;
        browser.find(Locator::LinkText("Konflikter")).await.unwrap().click().await.unwrap();
        at(&browser, "/conflicts").await;
        let html = browser.source().await.unwrap();
        let digits: String = html.chars().filter(char::is_ascii_digit).collect();
        let ten: String = civic[2..].chars().filter(char::is_ascii_digit).collect();
        assert!(!digits.contains(&ten), "the civic number is masked: {html}");
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("sis/6") && text.contains("sis/7"), "{text}");
        screenshot(&browser, "8-conflict").await;
        browser.find(Locator::Css("button[name=decision][value=merge]")).await.unwrap().click().await.unwrap();
        at(&browser, "/decision").await;
        let text = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("är sparat"), "{text}");
        browser.close().await.unwrap();
    });
    assert_eq!(env.sql_value("SELECT decided_by FROM conflict_decisions"), "ops", "the token's name is recorded");
    drop(service);
    env.apply();
    let evas: Vec<String> = env.people().into_keys().filter(|u| u.starts_with("eva")).collect();
    assert_eq!(evas, ["eva.fors"], "one account for the one person");
}
