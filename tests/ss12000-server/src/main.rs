//! `ss12000-server`: serves generated data for benchmarks and demos.
//!
//! ```text
//! ss12000-server [--persons N] [--port P] [--seed S] [--dialect 2020|2.1] [--today YYYY-MM-DD]
//!                [--client-id ID] [--client-secret SECRET] [--static-token T] [--no-auth]
//!                [--token-lifetime-secs N] [--local-seconds] [--control]
//! ```
//! It prints its URL and how to get a token, and serves until interrupted (Ctrl-C).
//!
//! With `--control` it also reads commands from stdin, one per line, for benchmarks that change
//! the data while enid reads it: `family-name N NAME` gives the N-th enrolled pupil (modulo
//! their number) the family name NAME, as a school information system's edit would (its
//! `modifiedAt` moves). It answers `ok` or an error on stdout; it stops at the end of stdin.

use ss12000_server::{AuthConfig, Config, Dialect, GenParams, Timestamps};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

struct Args {
    persons: usize,
    port: u16,
    seed: u64,
    today: Option<chrono::NaiveDate>,
    config: Config,
    control: bool,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args { persons: 500, port: 0, seed: 1, today: None, config: Config::default(), control: false };
    let mut auth = AuthConfig::default();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |name: &str, v: String| v.parse::<u64>().map_err(|_| format!("{name}: {v:?} is not a number"));
        match flag.as_str() {
            "--persons" => a.persons = num("--persons", value("--persons")?)? as usize,
            "--port" => a.port = num("--port", value("--port")?)? as u16,
            "--seed" => a.seed = num("--seed", value("--seed")?)?,
            "--today" => {
                let v = value("--today")?;
                a.today = Some(
                    chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                        .map_err(|_| format!("--today: {v:?} is not YYYY-MM-DD"))?,
                )
            }
            "--dialect" => {
                a.config.dialect = match value("--dialect")?.as_str() {
                    "2020" | "2.0" => Dialect::V2020,
                    "2.1" => Dialect::V21,
                    other => return Err(format!("--dialect: {other:?} is neither 2020 nor 2.1")),
                }
            }
            "--client-id" => auth.client_id = value("--client-id")?,
            "--client-secret" => auth.client_secret = value("--client-secret")?,
            "--static-token" => auth.static_token = Some(value("--static-token")?),
            "--no-auth" => auth.required = false,
            "--local-seconds" => a.config.timestamps = Timestamps::LocalSeconds,
            "--control" => a.control = true,
            "--token-lifetime-secs" => {
                auth.token_lifetime =
                    Duration::from_secs(num("--token-lifetime-secs", value("--token-lifetime-secs")?)?)
            }
            "-h" | "--help" => return Err("usage: see the top of tests/ss12000-server/src/main.rs".into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    a.config.auth = auth;
    Ok(a)
}

#[tokio::main]
async fn main() {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ss12000-server: {e}");
            std::process::exit(2);
        }
    };
    let today = args.today.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let started = std::time::Instant::now();
    let generated = match ss12000_server::generate(&GenParams { persons: args.persons, seed: args.seed, today }) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let generated_in = started.elapsed();
    let auth = args.config.auth.clone();
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let server = match ss12000_server::serve_on(args.config, generated.dataset, Vec::new(), addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ss12000-server: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "ss12000-server: {} persons (seed {}, {:.2?} to generate) at {}",
        args.persons,
        args.seed,
        generated_in,
        server.url()
    );
    if auth.required {
        println!(
            "token: curl -s -d grant_type=client_credentials -d client_id={} -d client_secret={} {}/token",
            auth.client_id,
            auth.client_secret,
            server.url()
        );
    }
    if args.control {
        let pupils: Vec<String> =
            generated_pupils(&server.handle().dataset()).into_iter().map(|p| p.id.clone()).collect();
        let handle = server.handle();
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) => println!("{}", control(&handle, &pupils, &line)),
                    _ => break,
                },
                _ = tokio::signal::ctrl_c() => break,
            }
        }
    } else {
        let _ = tokio::signal::ctrl_c().await;
    }
    server.shutdown().await;
}

/// The persons with an enrolment, in the dataset's order.
fn generated_pupils(dataset: &ss12000_server::Dataset) -> Vec<&ss12000_server::Person> {
    dataset.persons.iter().filter(|p| !p.enrolments.is_empty()).collect()
}

/// One `--control` command.
fn control(handle: &ss12000_server::Handle, pupils: &[String], line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["family-name", n, name] => {
            let Ok(n) = n.parse::<usize>() else { return format!("error: {n:?} is not a number") };
            if pupils.is_empty() {
                return "error: no enrolled pupils".into();
            }
            let name = name.to_string();
            if handle.update_person(&pupils[n % pupils.len()], |p| p.family_name = name) {
                "ok".into()
            } else {
                "error: the pupil is gone".into()
            }
        }
        _ => format!("error: unknown command {line:?}"),
    }
}
