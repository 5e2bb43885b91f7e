//! The `enid` binary: parses arguments, runs the command, and alone decides the exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = enid::cli::parse();
    enid::cli::init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("enid: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(enid::cli::run(cli)) {
        Ok(code) => code,
        Err(enid::cli::CliError::BrokenPipe) => ExitCode::SUCCESS,
        Err(e) => {
            let e = anyhow::Error::new(e);
            eprintln!("enid: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// mimalloc: enid allocates millions of small strings per run; the system allocator spends a
/// fifth of a 100,000-person plan in malloc and free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
