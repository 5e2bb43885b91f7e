//! The `enid` binary: parses arguments, runs the command, and alone decides the exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = enid::cli::parse();
    #[cfg(feature = "mimalloc")]
    set_purge_delay(if cli.is_service() { "30000" } else { "0" });
    no_huge_pages();
    enid::cli::init_tracing(&cli);
    // At least two workers, also on one CPU: `enid plan` and `enid apply` run on a worker and
    // hold it while they plan or wait at the prompt, and the lease on a PostgreSQL state is
    // renewed by a task of its own that must not wait for them.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build() {
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

/// How long memory a run freed is kept before it is given back to the kernel (mimalloc's
/// purge delay, one second by default).
///
/// A command runs once, and what its reads allocate for a while (the sources', the state's and
/// the directory's buffers and transients, freed as the planning starts) stayed resident beside
/// the planning for that second: a command gives freed memory back at once (`0`). A no-op plan
/// of 1,000,000 identities peaked at 1,226-1,313 MiB with the default and at 1,160-1,163 MiB
/// with this, for about a second more of system time.
///
/// The service runs again and again, often seconds apart: memory a run freed is kept for 30 s so
/// that the next run does not fault it in afresh. The kernel zeroing those pages was two thirds
/// of an incremental run at 100,000 persons. Its peak is then the larger (an operator who would
/// rather have the lower peak sets `MIMALLOC_PURGE_DELAY=0`).
///
/// mimalloc reads the delay from its environment at start, so the process starts itself again
/// with it (the same process id, as systemd expects); an operator's own `MIMALLOC_PURGE_DELAY`
/// is kept. If that fails, the process runs as it is. (A build with the system allocator, for a
/// memory profiler, does not: the profiler follows the first process only.)
#[cfg(feature = "mimalloc")]
fn set_purge_delay(millis: &str) {
    use std::os::unix::process::CommandExt as _;
    const VAR: &str = "MIMALLOC_PURGE_DELAY";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let error = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env(VAR, millis).exec();
    eprintln!("enid: note: running without {VAR} ({error})");
}

/// Transparent huge pages off for this process. mimalloc asks for them, and a run at a million
/// identities then spent a sixth of its CPU in the kernel zeroing 2 MiB pages, again and again as
/// freed memory was given back and touched anew (7-8 s of system time in a 20 s no-op plan,
/// 3.7 s without), and held 50 MiB more at its peak for pages partly used. An operator who
/// wants them sets `MIMALLOC_ALLOW_THP=1`; where the kernel has no such switch, nothing changes.
fn no_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
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
/// fifth of a 100,000-person plan in malloc and free. (Without the `mimalloc` feature, for a
/// memory profiler, the system allocator.)
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
