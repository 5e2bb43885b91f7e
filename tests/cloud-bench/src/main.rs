//! The Google and Entra targets against their local servers with the services' rate limits,
//! scaled down in time (the same rate, a shorter window): Google's 2,400 queries a minute as
//! 400 per 10 s, Graph's 3,000 writes per 150 s as 200 per 10 s. For each, `enid apply --yes`
//! of N new persons (creates), then a no-op `enid plan`; from the server's own log: the
//! requests (Google) or writes (Graph) carried out per second against the limit, the most in any
//! window (never above the limit), how many the server refused, and what the no-op plan sent.
//!
//! `cloud-bench ENID PERSONS_CSV WORK_DIR` (run by `tests/bench/cloud-bench.sh`).

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(10);
const GOOGLE_QUOTA: usize = 400;
const GRAPH_QUOTA: usize = 200;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, enid, persons, work] = args.as_slice() else {
        eprintln!("usage: cloud-bench ENID PERSONS_CSV WORK_DIR");
        return ExitCode::from(2);
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(enid, persons, std::path::Path::new(work))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloud-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs enid with the config in `dir`; the wall time.
fn enid(enid: &str, dir: &std::path::Path, args: &[&str]) -> Result<Duration, String> {
    let started = Instant::now();
    let out = Command::new(enid)
        .arg("--config")
        .arg(dir.join("enid.toml"))
        .args(args)
        .output()
        .map_err(|e| format!("run {enid}: {e}"))?;
    if !out.status.success() {
        return Err(format!("enid {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(started.elapsed())
}

/// The most a quota of `quota` a window lets through in `elapsed`: a full window at once, then
/// the rate.
fn allowed(quota: usize, elapsed: Duration) -> f64 {
    quota as f64 * (elapsed.as_secs_f64() / WINDOW.as_secs_f64() + 1.0)
}

/// The most of `times` in any window of `WINDOW`.
fn most_in_window(times: &[Instant]) -> usize {
    let mut t = times.to_vec();
    t.sort();
    let mut most = 0;
    let mut start = 0;
    for end in 0..t.len() {
        while t[end].duration_since(t[start]) >= WINDOW {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

fn setup(dir: &std::path::Path, persons: &str, table: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    std::fs::copy(persons, dir.join("persons.csv")).map_err(|e| e.to_string())?;
    let config =
        format!("[state]\npath = \"state.db\"\n\n[sources.sis]\ntype = \"csv\"\npath = \"persons.csv\"\n\n{table}\n");
    std::fs::write(dir.join("enid.toml"), config).map_err(|e| e.to_string())
}

fn secret_file(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(|e| e.to_string())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())
}

/// A service account's key pair by openssl: (private PEM, public PEM).
fn keys(dir: &std::path::Path) -> Result<(String, String), String> {
    let key = dir.join("sa.pem");
    let ok = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("openssl: {e}"))?;
    if !ok.success() {
        return Err("openssl genpkey failed".into());
    }
    let public =
        Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).output().map_err(|e| e.to_string())?;
    Ok((std::fs::read_to_string(&key).map_err(|e| e.to_string())?, String::from_utf8_lossy(&public.stdout).into()))
}

async fn run(enid_bin: &str, persons: &str, work: &std::path::Path) -> Result<(), String> {
    let n = std::fs::read_to_string(persons).map_err(|e| e.to_string())?.lines().count().saturating_sub(1);

    // Google: every query counts against the quota, reads too.
    let dir = work.join("google");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (private, public) = keys(&dir)?;
    let server = google_server::start(google_server::Config {
        service_account: google_server::ServiceAccount {
            client_email: "enid@bench.iam.gserviceaccount.com".into(),
            key_id: "k1".into(),
            public_key_pem: public,
        },
        queries_per_window: Some(GOOGLE_QUOTA),
        quota_window: WINDOW,
        ..google_server::Config::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let h = server.handle();
    h.add_orgunit("/Elever");
    let key = serde_json::json!({"type": "service_account", "private_key_id": "k1", "private_key": private,
        "client_email": "enid@bench.iam.gserviceaccount.com", "token_uri": format!("{}/token", server.url())});
    secret_file(&dir.join("key.json"), &key.to_string())?;
    setup(
        &dir,
        persons,
        &format!(
            "[targets.gw]\ntype = \"google\"\ndomain = \"skola.example.org\"\ncredentials_file = \"key.json\"\n\
             admin_email = \"admin@skola.example.org\"\napi_url = \"{}\"\n",
            server.url()
        ),
    )?;
    let apply = enid(enid_bin, &dir, &["apply", "--yes"])?;
    let log = h.log();
    let api: Vec<&google_server::Logged> = log.iter().filter(|l| l.path.starts_with("/admin/")).collect();
    let done: Vec<Instant> = api.iter().filter(|l| l.status != 403).map(|l| l.at).collect();
    let refused = api.iter().filter(|l| l.status == 403).count();
    let users = h.users().len();
    let limit = GOOGLE_QUOTA as f64 / WINDOW.as_secs_f64();
    let rate = done.len() as f64 / apply.as_secs_f64();
    println!("Google, {n} persons: {users} users made in {:.1} s", apply.as_secs_f64());
    println!(
        "  queries carried out: {} ({rate:.1}/s against {limit:.0}/s allowed: {:.0}% of the rate, {:.0}% of the most the quota lets through in that time); most in any {} s: {} of {GOOGLE_QUOTA}; refused by the quota: {refused}",
        done.len(),
        100.0 * rate / limit,
        100.0 * done.len() as f64 / allowed(GOOGLE_QUOTA, apply),
        WINDOW.as_secs(),
        most_in_window(&done),
    );
    let before = h.log().len();
    let plan = enid(enid_bin, &dir, &["plan"])?;
    let after = h.log();
    let plan_log = &after[before..];
    let writes = plan_log.iter().filter(|l| l.method != "GET" && l.path.starts_with("/admin/")).count();
    println!(
        "  no-op plan: {:.2} s, {} requests ({} API listings, {writes} writes)",
        plan.as_secs_f64(),
        plan_log.len(),
        plan_log.iter().filter(|l| l.path.starts_with("/admin/")).count()
    );
    drop(server);

    // Graph: writes count against the quota ($batch: each request in it).
    let dir = work.join("entra");
    let server = graph_server::start(graph_server::Config {
        writes_per_window: Some(GRAPH_QUOTA),
        write_window: WINDOW,
        ..graph_server::Config::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let h = server.handle();
    let c = graph_server::Config::default();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    secret_file(&dir.join("entra.secret"), &c.client_secret.clone().unwrap_or_default())?;
    setup(
        &dir,
        persons,
        &format!(
            "[targets.m365]\ntype = \"entra\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"entra.secret\"\n\
             upn_suffix = \"skola.example.org\"\ngraph_url = \"{}/v1.0\"\ntoken_url = \"{}/{}/oauth2/v2.0/token\"\n",
            c.tenant_id,
            c.client_id,
            server.url(),
            server.url(),
            c.tenant_id
        ),
    )?;
    let apply = enid(enid_bin, &dir, &["apply", "--yes"])?;
    let (writes, refused) = h.writes();
    let batches = h.log().iter().filter(|l| l.path.ends_with("$batch")).count();
    let limit = GRAPH_QUOTA as f64 / WINDOW.as_secs_f64();
    let rate = writes.len() as f64 / apply.as_secs_f64();
    println!("Entra, {n} persons: {} users made in {:.1} s", h.users().len(), apply.as_secs_f64());
    println!(
        "  writes carried out: {} in {batches} $batch requests ({rate:.1}/s against {limit:.0}/s allowed: {:.0}% of the rate, {:.0}% of the most the quota lets through in that time); most in any {} s: {} of {GRAPH_QUOTA}; refused 429 and sent again: {refused}",
        writes.len(),
        100.0 * rate / limit,
        100.0 * writes.len() as f64 / allowed(GRAPH_QUOTA, apply),
        WINDOW.as_secs(),
        most_in_window(&writes),
    );
    // The run after the first keeps the delta of what the first made; then a no-op plan.
    enid(enid_bin, &dir, &["apply", "--yes"])?;
    let before = h.log().len();
    let writes_before = h.writes().0.len();
    let plan = enid(enid_bin, &dir, &["plan"])?;
    let plan_log = &h.log()[before..];
    println!(
        "  no-op plan (delta): {:.2} s, {} requests, {} writes",
        plan.as_secs_f64(),
        plan_log.len(),
        h.writes().0.len() - writes_before
    );
    Ok(())
}
