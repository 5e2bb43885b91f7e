//! Two `enid run` nodes on one PostgreSQL state against a real slapd: exactly one leads (its
//! `/healthz` and `/metrics` say so), the other serves the API and waits. The leader killed with
//! SIGKILL in the middle of an apply: the other takes over within the lease's bound and the
//! directory converges with every person once. The leader's database connection cut (a proxy
//! that stops forwarding, as a network partition does): it stops writing to the directory
//! before the other node sends its first byte there.

use crate::api16::Service;
use crate::harness::*;
use crate::postgres19::on_postgres;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The lease time of these tests' config.
const LEASE: Duration = Duration::from_secs(3);

/// A TCP proxy that can be cut (it stops forwarding, without closing anything: a partition)
/// and that notes when the client first and last sent bytes through it.
struct Proxy {
    port: u16,
    #[allow(dead_code)]
    delay: Duration,
    cut: Arc<AtomicBool>,
    sent: Arc<Mutex<(Option<Instant>, Option<Instant>)>>,
}

impl Proxy {
    fn to(upstream: u16) -> Proxy {
        Proxy::slow(upstream, Duration::ZERO)
    }

    /// A proxy that holds every chunk the client sends for `delay` first (a slow link).
    fn slow(upstream: u16, delay: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new((None, None)));
        let (c, s) = (cut.clone(), sent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                for (from, to, up) in [
                    (client.try_clone().expect("clone"), server.try_clone().expect("clone"), true),
                    (server, client, false),
                ] {
                    let (cut, sent) = (c.clone(), s.clone());
                    std::thread::spawn(move || pump(from, to, up, delay, &cut, &sent));
                }
            }
        });
        Proxy { port, delay, cut, sent }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    fn first_sent(&self) -> Option<Instant> {
        self.sent.lock().expect("lock").0
    }

    fn last_sent(&self) -> Option<Instant> {
        self.sent.lock().expect("lock").1
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    up: bool,
    delay: Duration,
    cut: &AtomicBool,
    sent: &Mutex<(Option<Instant>, Option<Instant>)>,
) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16384];
    loop {
        if cut.load(Ordering::SeqCst) {
            // A partition: nothing passes, nothing is closed.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if cut.load(Ordering::SeqCst) {
                    continue;
                }
                if up && !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                if up {
                    let mut s = sent.lock().expect("lock");
                    let now = Instant::now();
                    s.0.get_or_insert(now);
                    s.1 = Some(now);
                }
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// The environment: a slapd, a PostgreSQL state with a short lease, a service that applies.
fn setup(n: usize) -> (Env, String) {
    let env = Env::with_config("\n[schedule]\nfull = \"1h\"\napply = \"within_thresholds\"\n");
    let db = on_postgres(&env);
    let config = std::fs::read_to_string(env.path("enid.toml")).expect("read");
    // Each node listens where `--listen` says.
    let config =
        format!("{}\n[server]\nlisten = \"127.0.0.1:1\"\n", config.replace("lease_for = \"5s\"", "lease_for = \"3s\""));
    std::fs::write(env.path("enid.toml"), config).expect("write");
    let rows: Vec<String> =
        (0..n).map(|i| row(&format!("p{i}"), "Kim", &format!("Lind{i}"), &pnr(i), "student", "S1", "")).collect();
    csv_rows(&env, &rows);
    (env, db)
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_string()
}

/// A node: `config` with `--listen` on a free port, its log in `log`.
fn second(env: &Env, config: &str, log: &str) -> Service {
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_enid"))
        .arg("--config")
        .arg(env.path(config))
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("ENID_CONFIG")
        .env("ENID_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(env.path(log)).expect("log"))
        .spawn()
        .expect("start enid run");
    Service { child, port }
}

fn health(s: &Service) -> String {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.call("GET", "/healthz", None, None).1))
        .unwrap_or_default()
}

fn wait_for(what: &str, within: Duration, env: &Env, ok: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if ok() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what} did not happen within {within:?}\nnode a: {}\nnode b: {}",
        tail(&std::fs::read_to_string(env.path("service.log")).unwrap_or_default()),
        tail(&std::fs::read_to_string(env.path("b.log")).unwrap_or_default())
    );
}

fn tail(text: &str) -> String {
    let lines: Vec<String> = text.lines().map(|l| l.chars().take(240).collect()).collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

/// Every person once: as many entries as persons, each enid id on one entry.
fn assert_once_each(env: &Env, n: usize) {
    let entries = env.search(BASE, "(objectClass=inetOrgPerson)");
    let ids: std::collections::BTreeSet<String> = entries.iter().map(|e| e.one("employeeNumber")).collect();
    assert_eq!(entries.len(), n, "entries");
    assert_eq!(ids.len(), n, "no person twice");
}

#[test]
fn the_leader_killed_mid_apply_is_replaced_within_the_lease_and_everyone_is_created_once() {
    let n = 2500;
    let (env, db) = setup(n);
    // Two sends at a time (for both nodes): with the default 256, the creates could all land
    // between the poll that sees the first and the kill, as they once did in the PostgreSQL
    // state's kill test.
    env.edit_config("base_dn = ", "max_in_flight = 2\nbase_dn = ");
    let token = env.enid(&["token", "add", "ops", "--role", "admin"]).ok().stdout.trim().to_string();
    let leads = |s: &Service| {
        let (status, text) = s.call("GET", "/metrics", Some(&token), None);
        assert_eq!(status, 200, "{text}");
        let line = text.lines().find(|l| l.starts_with("enid_leader{")).unwrap_or_default().to_string();
        assert!(line.contains(&format!("node=\"{}:{}\"", host(), s.child.id())), "{line}");
        line.ends_with(" 1")
    };
    // Node b waits first, so that a starts as the leader: b starts once a leads.
    let mut a = second(&env, "enid.toml", "service.log");
    wait_for("node a leading", Duration::from_secs(30), &env, || health(&a).contains("role: leader"));
    let b = second(&env, "enid.toml", "b.log");
    wait_for("node b following and naming the leader", Duration::from_secs(30), &env, || {
        let h = health(&b);
        h.contains("role: follower") && h.contains(&format!("leader: {}", host()))
    });
    assert!(leads(&a) && !leads(&b), "/metrics says which node leads");
    // Killed in the middle of its first apply.
    wait_for("node a sending", Duration::from_secs(60), &env, || !env.people().is_empty());
    a.child.kill().expect("kill -9");
    a.child.wait().expect("wait");
    // As if node a had been another machine: node b cannot see that its process is gone, and
    // must wait for the lease to expire.
    crate::postgres19::psql(
        &db,
        "UPDATE leases SET holder = 'node-a.elsewhere' || substr(holder, strpos(holder, ':'))",
    );
    let partial = env.people().len();
    assert!(partial < n, "killed before it finished ({partial} of {n})");
    let took = wait_for("node b leading", LEASE * 4, &env, || health(&b).contains("role: leader"));
    assert!(took <= LEASE + LEASE / 3 + Duration::from_secs(2), "took over in {took:?}");
    assert!(leads(&b));
    wait_for("everyone created", Duration::from_secs(120), &env, || env.people().len() == n);
    assert_once_each(&env, n);
    // The dead leader's run is interrupted (by the new leader's first run), never run again.
    wait_for("the interrupted run marked", Duration::from_secs(30), &env, || {
        crate::postgres19::psql(&db, "SELECT count(*) FROM runs WHERE status = 'interrupted'") == "1"
    });
    assert_eq!(crate::postgres19::psql(&db, "SELECT count(*) FROM runs WHERE status = 'running'"), "0");
    let log_b = std::fs::read_to_string(env.path("b.log")).unwrap_or_default();
    assert!(log_b.contains("this node leads"), "{}", tail(&log_b));
}

#[test]
fn a_leader_cut_off_from_the_database_stops_writing_before_the_other_node_starts() {
    let n = 4000;
    let (env, _db) = setup(n);
    // Node a reaches PostgreSQL and slapd through proxies; node b directly (slapd through a
    // recording proxy too, to see when it starts).
    let config = std::fs::read_to_string(env.path("enid.toml")).expect("read");
    let pg_port: u16 = config
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("the state's port");
    let ldap_port = env.slapd.port;
    // Node a's link to the directory is slow, so that without the fence it would still be
    // sending long after the lease passed (its log is flushed to the state every 1,000
    // operations: a slow link reaches no flush that would block it on the cut database).
    let (pg_a, ldap_a, ldap_b) =
        (Proxy::to(pg_port), Proxy::slow(ldap_port, Duration::from_millis(60)), Proxy::to(ldap_port));
    let with = |pg: Option<u16>, ldap: u16| {
        let mut c = config.replace(&format!("127.0.0.1:{ldap_port}"), &format!("127.0.0.1:{ldap}"));
        if let Some(pg) = pg {
            c = c.replace(&format!("127.0.0.1:{pg_port}/"), &format!("127.0.0.1:{pg}/"));
        }
        c
    };
    std::fs::write(env.path("a.toml"), with(Some(pg_a.port), ldap_a.port)).expect("write");
    std::fs::write(env.path("b.toml"), with(None, ldap_b.port)).expect("write");
    let mut a = second(&env, "a.toml", "service.log");
    wait_for("node a leading", Duration::from_secs(30), &env, || health(&a).contains("role: leader"));
    let mut b = second(&env, "b.toml", "b.log");
    wait_for("node b following", Duration::from_secs(30), &env, || health(&b).contains("role: follower"));
    wait_for("node a sending", Duration::from_secs(60), &env, || env.people().len() > 50);
    pg_a.cut();
    let cut_at = Instant::now();
    wait_for("node b leading", LEASE * 4, &env, || health(&b).contains("role: leader"));
    wait_for("everyone created", Duration::from_secs(240), &env, || env.people().len() == n);
    assert_once_each(&env, n);
    let (a_last, b_first) = (ldap_a.last_sent().expect("a sent"), ldap_b.first_sent().expect("b sent"));
    assert!(
        a_last < b_first,
        "node a sent to the directory {:?} after node b's first byte (a's last {:?} after the cut, b's first {:?})",
        a_last - b_first,
        a_last.saturating_duration_since(cut_at),
        b_first.saturating_duration_since(cut_at)
    );
    assert!(a_last.saturating_duration_since(cut_at) < LEASE, "node a stopped within the lease");
    let _ = a.child.kill();
    let _ = b.child.kill();
}
