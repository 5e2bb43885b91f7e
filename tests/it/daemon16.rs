//! `enid run` as systemd runs it: a subprocess with a `NOTIFY_SOCKET`, against a real slapd.
//! The first run applies right after start; a CSV edit reaches the directory through the file
//! watch; SIGHUP with a broken config keeps the old one; SIGTERM stops it, and it says so.

use crate::harness::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn pupils(n: usize) -> Vec<String> {
    (0..n).map(|i| row(&format!("P{i:05}"), &format!("Elev{i}"), "Testsson", &pnr(i), "student", "S1", "7A")).collect()
}

/// The daemon, killed when the test ends however it ends.
pub(crate) struct Daemon {
    child: Child,
    notify: UnixDatagram,
    said: Vec<String>,
}

impl Daemon {
    pub(crate) fn start(env: &Env) -> Daemon {
        let socket = env.path("notify.sock");
        // A socket of an earlier start of the service in this test.
        let _ = std::fs::remove_file(&socket);
        let notify = UnixDatagram::bind(&socket).expect("bind the notify socket");
        notify.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_enid"))
            .arg("--config")
            .arg(env.path("enid.toml"))
            .arg("run")
            .env_remove("ENID_CONFIG")
            // The service's own lines at debug: an incremental tick that finds nothing is one.
            .env("ENID_LOG", std::env::var("TEST_DAEMON_LOG").unwrap_or("info,enid::daemon=debug".into()))
            .env("NOTIFY_SOCKET", &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(env.path("daemon.log")).unwrap())
            .spawn()
            .expect("start enid run");
        Daemon { child, notify, said: Vec::new() }
    }

    /// Reads what the daemon told the service manager until `want` comes or `secs` pass.
    pub(crate) fn wait_said(&mut self, want: &str, secs: u64) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if self.said.iter().any(|s| s.contains(want)) {
                return true;
            }
            if let Ok(n) = self.notify.recv(&mut buf) {
                self.said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        self.said.iter().any(|s| s.contains(want))
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn the_service_applies_follows_a_csv_edit_survives_a_broken_reload_and_stops_on_sigterm() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"1s\"\n");
    csv_rows(&env, &pupils(3));
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20), "ready: {:?}", d.said);
    wait_for("the first run's accounts", 20, || env.people().len() == 3);
    assert!(d.wait_said("STATUS=run", 10), "a status after the run: {:?}", d.said);

    // An edit of the export: a new pupil, through the file watch (the next full run is an
    // hour away).
    csv_rows(&env, &pupils(4));
    wait_for("the new pupil's account", 20, || env.people().len() == 4);

    // A broken config on SIGHUP: logged, and the old one stays in force.
    let good = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), format!("{good}\nno_such_key = 1\n")).unwrap();
    d.signal("-HUP");
    assert!(d.wait_said("RELOADING=1", 10), "{:?}", d.said);
    wait_for("the reload error in the log", 10, || {
        std::fs::read_to_string(env.path("daemon.log")).unwrap().contains("the old one stays in force")
    });
    csv_rows(&env, &pupils(5));
    wait_for("a pupil after the broken reload", 20, || env.people().len() == 5);
    std::fs::write(env.path("enid.toml"), good).unwrap();

    // SIGTERM: it says it is stopping and exits 0.
    d.signal("-TERM");
    assert!(d.wait_said("STOPPING=1", 10), "{:?}", d.said);
    let end = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    let runs = env.enid(&["runs", "--json"]).ok().stdout;
    assert!(runs.lines().count() >= 3, "{runs}");
    let log = std::fs::read_to_string(env.path("daemon.log")).unwrap();
    for i in 0..5 {
        let c = pnr(i);
        assert!(!log.contains(&c) && !log.contains(&c[2..]), "a civic number in the daemon's log");
    }
}

/// Without `[schedule]`, the service only plans: a row `planned`, a saved plan, no account.
#[test]
fn by_default_the_service_plans_and_waits_for_an_approval() {
    let env = Env::new();
    csv_rows(&env, &pupils(2));
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    assert!(d.wait_said("STATUS=run", 20), "{:?}", d.said);
    let runs = env.enid(&["runs", "--json"]).ok().stdout;
    let first: serde_json::Value = serde_json::from_str(runs.lines().next().unwrap()).unwrap();
    assert_eq!((first["command"].as_str(), first["status"].as_str()), (Some("run"), Some("planned")));
    assert_eq!(first["counts"]["planned"]["create"], 2);
    assert!(env.people().is_empty(), "nothing applied");
    let plan_id = first["plan_id"].as_str().unwrap().to_string();
    env.enid(&["apply", "--plan", &plan_id, "--yes"]).ok();
    assert_eq!(env.people().len(), 2, "the saved plan applies");
}

fn runs(env: &Env) -> Vec<serde_json::Value> {
    let out = env.enid(&["runs", "--json"]).ok().stdout;
    out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// A threshold holds a run of the service; its operations are approved as operations, and the
/// next run carries them out although the export changed meanwhile: what changed (a new
/// surname) is not part of the approval and waits (here: applied by the run after, within the
/// thresholds). An approved operation that the plan no longer does exactly so is not carried
/// out.
#[test]
fn a_held_run_is_approved_as_operations_and_the_next_run_carries_out_only_those() {
    let env = Env::with_config(
        "\n[targets.directory.policy.thresholds]\ndisable_percent = 0\ndisable_min = 1\nupdate_percent = 0\n\
         update_min = 1\n\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"1s\"\n",
    );
    let mut rows = pupils(4);
    csv_rows(&env, &rows);
    env.apply();
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    wait_for("the first run", 20, || runs(&env).len() >= 2);
    // Two leave: over the disable threshold, held.
    csv_rows(&env, &rows[..2]);
    wait_for("a held run", 20, || runs(&env).iter().any(|r| r["status"] == "held"));
    let held = runs(&env).into_iter().rfind(|r| r["status"] == "held").unwrap();
    assert_eq!(held["counts"]["planned"]["disable"], 2, "{held}");
    let id = held["id"].as_i64().unwrap().to_string();
    // The export changes meanwhile: a surname of someone who stays, twice over the update
    // threshold with the second change below.
    rows[0] = row("P00000", "Elev0", "Nyberg", &pnr(0), "student", "S1", "7A");
    rows[1] = row("P00001", "Elev1", "Nyberg", &pnr(1), "student", "S1", "7A");
    csv_rows(&env, &rows[..2]);
    wait_for("the changed export's run", 20, || runs(&env).iter().filter(|r| r["status"] == "held").count() >= 2);
    let approved = env.enid(&["approve", &id, "--only", "disable", "--json"]).ok().json();
    assert_eq!(approved["approved"], 2, "{approved}");
    // The next run (started by the approval) disables the two, and holds the updates.
    let disabled = || env.people().values().filter(|e| e.dn.contains("ou=disabled")).count();
    assert_eq!(disabled(), 0, "nothing before the approval");
    wait_for("the approved disables", 20, || disabled() == 2);
    assert!(runs(&env).iter().any(|r| r["status"] == "ok" && r["counts"]["planned"]["disable"] == 2));
    let last_ok = runs(&env).into_iter().rfind(|r| r["status"] == "ok").unwrap();
    assert!(last_ok["counts"]["planned"].get("update").is_none(), "the updates were not approved: {last_ok}");
    let people = env.people();
    assert_eq!(people["elev0.testsson"].one("sn"), "Testsson", "the new surname waits");
    // An approved operation that the plan no longer does exactly so is not carried out: the
    // updates to "Nyberg" are approved while the service is stopped, and the export says
    // "Nyholm" by its next start.
    d.signal("-TERM");
    let _ = d.child.wait();
    let held = runs(&env).into_iter().rfind(|r| r["status"] == "held").unwrap();
    let id = held["id"].as_i64().unwrap().to_string();
    let approved = env.enid(&["approve", &id, "--only", "update", "--json"]).ok().json();
    assert_eq!(approved["approved"], 2, "{approved}");
    rows[0] = row("P00000", "Elev0", "Nyholm", &pnr(0), "student", "S1", "7A");
    rows[1] = row("P00001", "Elev1", "Nyholm", &pnr(1), "student", "S1", "7A");
    csv_rows(&env, &rows[..2]);
    let before = runs(&env).len();
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    wait_for("the run after the restart", 20, || runs(&env).len() > before);
    let last = runs(&env).pop().unwrap();
    assert_eq!(last["status"], "held", "the changed updates are not the approved ones: {last}");
    assert_eq!(env.people()["elev0.testsson"].one("sn"), "Testsson");
    // Approving that run's updates carries them out.
    let id = last["id"].as_i64().unwrap().to_string();
    env.enid(&["approve", &id, "--only", "update"]).ok();
    wait_for("the approved surnames", 20, || env.people()["elev0.testsson"].one("sn") == "Nyholm");
    d.signal("-TERM");
    let _ = d.child.wait();
    // An approval names a held run, or what an applied one left waiting; anything else is
    // refused with what to do.
    let ok_run = runs(&env).into_iter().find(|r| r["status"] == "ok").unwrap()["id"].to_string();
    let e = env.enid(&["approve", &ok_run]).fails();
    assert!(e.stderr.contains("left nothing waiting for approval"), "{}", e.stderr);
    assert!(env.enid(&["approve", "99999"]).fails().stderr.contains("no run 99999"));
}

/// SIGTERM in the middle of an apply: the service stops between two operations, records the
/// run as interrupted and exits; started again, it converges: every account once, nothing left.
#[test]
fn sigterm_mid_apply_leaves_a_consistent_state_and_the_next_start_converges() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\n");
    csv_rows(&env, &pupils(4000));
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    let count = || env.search(BASE, "(objectClass=inetOrgPerson)").len();
    wait_for("the first accounts", 60, || count() > 100);
    // A CLI apply meanwhile is told that the service holds the state.
    let cli = env.enid(&["apply", "--yes"]).fails();
    assert!(cli.stderr.contains("another run") && cli.stderr.contains("`enid run`"), "{}", cli.stderr);
    d.signal("-TERM");
    let end = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "did not exit within the grace after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    let made = count();
    assert!(made < 4000, "the signal came after the apply ended ({made} accounts): the test proves nothing");
    let all = runs(&env);
    let first = &all[0];
    assert_eq!(first["status"], "interrupted", "{first}");
    assert!(first["message"].as_str().unwrap().contains("SIGTERM"), "{first}");
    // Creates in bulk read their anchors after them (issue 19); an apply told to stop does not
    // read the whole scope first: the next run records them.
    let anchored = || env.sql_value("SELECT CAST(count(anchor) AS TEXT) FROM accounts");
    assert_eq!(anchored(), "0", "the anchors were read after the stop");
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    wait_for("every account", 120, || count() == 4000);
    wait_for("the converging run's row", 30, || runs(&env).len() >= 2);
    d.signal("-TERM");
    let _ = d.child.wait();
    assert!(ids_in_directory(&env).values().all(|dns| dns.len() == 1), "no second account");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "converged");
    // (The service may have been stopped in its run's read of the anchors: one more run.)
    env.enid(&["apply", "--yes"]).ok();
    assert_eq!(anchored(), "4000", "every anchor recorded by the runs after");
}

/// A source that is down at start: the service starts anyway, says it is degraded, and
/// recovers by itself once the export is back (here: the file appears and is seen).
#[test]
fn a_source_down_at_start_is_reported_degraded_and_the_service_recovers() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"1s\"\n");
    let _ = std::fs::remove_file(env.path("persons.csv"));
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20), "{:?}", d.said);
    assert!(d.wait_said("STATUS=degraded", 20), "{:?}", d.said);
    assert!(d.child.try_wait().unwrap().is_none(), "the service stays up");
    csv_rows(&env, &pupils(2));
    wait_for("the accounts once the export is back", 30, || env.people().len() == 2);
    d.signal("-TERM");
    let _ = d.child.wait();
}

/// Two services started on one state by mistake (a unit and a terminal): their runs never
/// overlap (one skips while the other holds the lock), and nobody gets a second account.
#[test]
fn two_services_on_one_state_never_apply_at_once() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"1s\"\n");
    csv_rows(&env, &pupils(400));
    let mut a = Daemon::start(&env);
    assert!(a.wait_said("READY=1", 20));
    std::fs::rename(env.path("notify.sock"), env.path("notify-a.sock")).unwrap();
    let mut b = Daemon::start(&env);
    assert!(b.wait_said("READY=1", 20));
    wait_for("every account", 60, || env.people().len() == 400);
    csv_rows(&env, &pupils(420));
    wait_for("the new pupils", 60, || env.people().len() == 420);
    assert!(ids_in_directory(&env).values().all(|dns| dns.len() == 1), "no second account");
    a.signal("-TERM");
    b.signal("-TERM");
    let _ = a.child.wait();
    let _ = b.child.wait();
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "converged");
}

/// The service killed with SIGKILL in the middle of an apply (an OOM kill, a power cut): the
/// next start marks the run interrupted and converges, nobody gets a second account.
#[test]
fn a_service_killed_mid_apply_converges_on_its_next_start() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\n");
    csv_rows(&env, &pupils(3000));
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    let count = || env.search(BASE, "(objectClass=inetOrgPerson)").len();
    wait_for("the first accounts", 60, || count() > 100);
    d.signal("-KILL");
    let _ = d.child.wait();
    assert!(count() < 3000, "the kill came after the apply ended: the test proves nothing");
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    wait_for("every account", 120, || count() == 3000);
    wait_for("the converging run's row", 30, || runs(&env).iter().any(|r| r["status"] == "ok"));
    d.signal("-TERM");
    let _ = d.child.wait();
    assert_eq!(runs(&env)[0]["status"], "interrupted", "the killed run is marked");
    assert!(ids_in_directory(&env).values().all(|dns| dns.len() == 1), "no second account");
    let plan = env.enid(&["plan", "--json"]).ok().json();
    assert_eq!(plan["operations"].as_array().map(Vec::len), Some(0), "converged");
}

/// A reload that points `[state]` at another database is refused (the old config stays): moving
/// the state under a running service would skip the checks a start makes.
#[test]
fn a_reload_that_moves_the_state_is_refused() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"1s\"\n");
    csv_rows(&env, &pupils(2));
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    wait_for("the first run's accounts", 20, || env.people().len() == 2);
    let good = std::fs::read_to_string(env.path("enid.toml")).unwrap();
    std::fs::write(env.path("enid.toml"), good.replace("path = \"state.db\"", "path = \"other.db\"")).unwrap();
    d.signal("-HUP");
    wait_for("the refusal in the log", 10, || {
        std::fs::read_to_string(env.path("daemon.log")).unwrap().contains("[state] changed")
    });
    // The service goes on with the state it started with.
    csv_rows(&env, &pupils(3));
    wait_for("the new pupil's account", 20, || env.people().len() == 3);
    assert!(!env.path("other.db").exists(), "no second state was made");
    std::fs::write(env.path("enid.toml"), good).unwrap();
    let runs = env.enid(&["runs", "--json"]).ok().stdout;
    assert!(runs.lines().count() >= 2, "{runs}");
}

/// A run the CLI held off (the state's lock taken) is tried again within seconds: the changed
/// file it was for is not left to the next event or the next full run.
#[test]
fn a_run_the_lock_held_off_is_tried_again_soon() {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\nsettle = \"1s\"\n");
    csv_rows(&env, &pupils(2));
    let mut d = Daemon::start(&env);
    assert!(d.wait_said("READY=1", 20));
    wait_for("the first run's accounts", 20, || env.people().len() == 2);
    // What a CLI apply holds: the lock of the state's directory.
    let dir = env.path("state.db").parent().unwrap().to_path_buf();
    let mut holder = Command::new("flock").arg(&dir).args(["-c", "sleep 6"]).spawn().expect("flock");
    std::thread::sleep(Duration::from_millis(300));
    csv_rows(&env, &pupils(3));
    wait_for("the skipped run in the log", 15, || {
        std::fs::read_to_string(env.path("daemon.log")).unwrap().contains("skipped a changes run")
    });
    holder.wait().unwrap();
    wait_for("the new pupil's account without another change", 20, || env.people().len() == 3);
}
