//! Issue 17, progress in the CLI: the engine tells its run hook each phase (reading sources,
//! reading targets, planning, applying with the total) and, after each operation, how far the
//! apply has come; `enid plan`, `apply` and `adopt` draw that on stderr when it is a terminal,
//! never with `--json` or without a terminal, and stdout stays what it was.

use crate::harness::*;
use enid::engine::{
    ApplyRequest, Approved, Computed, Confirm, Engine, Frontend, Outcome, Overrides, Phase, Progress, RunHook, RunMode,
    RunRequest,
};
use std::sync::{Arc, Mutex};

/// What a run told its hook, in order.
#[derive(Debug, Clone, PartialEq)]
enum Told {
    Phase(Phase),
    Progress(Progress),
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Told>>);

impl RunHook for Recorder {
    fn phase(&self, phase: Phase) {
        self.0.lock().unwrap().push(Told::Phase(phase));
    }
    fn progress(&self, progress: &Progress) {
        self.0.lock().unwrap().push(Told::Progress(*progress));
    }
}

impl Recorder {
    fn take(&self) -> Vec<Told> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn phases(told: &[Told]) -> Vec<Phase> {
    told.iter().filter_map(|t| if let Told::Phase(p) = t { Some(*p) } else { None }).collect()
}

/// A front end that goes ahead.
struct Go;

impl Frontend for Go {
    fn computed(&mut self, _: &Computed) -> Confirm {
        Confirm::Go
    }
    fn confirm(&mut self, _: &Computed, _: &Approved) -> Confirm {
        Confirm::Go
    }
}

fn rows(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            row(&format!("p{i}"), "Elev", &format!("Nummer{}", (b'a' + i as u8) as char), &pnr(i), "student", "S1", "")
        })
        .collect()
}

#[test]
fn progress17_the_hook_is_told_the_phases_in_order_and_the_apply_counts_every_operation() {
    let env = Env::new();
    csv_rows(&env, &rows(3));
    let config = enid::config::Config::load(&env.path("enid.toml")).expect("config");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let engine = Engine::build(config).await.expect("engine");
        let recorder = Arc::new(Recorder::default());
        let run = |mode: RunMode| {
            let mut request = RunRequest::new(mode, chrono::Utc::now(), Overrides::default());
            request.hook = Some(Arc::clone(&recorder) as Arc<dyn RunHook>);
            request
        };

        // A plan: the three reading and planning phases, no apply.
        let report = engine.run(&run(RunMode::Plan { save: false, record: false }), &mut Go).await.unwrap();
        let planned = report.computed.plan.operations.len();
        assert_eq!(planned, 3, "three creates");
        let told = recorder.take();
        assert_eq!(
            phases(&told),
            [Phase::ReadingSources, Phase::ReadingTargets { records: 3 }, Phase::Planning { accounts: 0 }],
            "{told:#?}"
        );
        assert!(!told.iter().any(|t| matches!(t, Told::Progress(_))), "a plan sends nothing: {told:#?}");

        // An apply: the same, then applying the plan's operations; the progress after each
        // operation, never going back, the last counting every one.
        let report = engine.run(&run(RunMode::Apply(ApplyRequest::default())), &mut Go).await.unwrap();
        let applied = report.applied().expect("applied");
        assert_eq!((applied.ok, applied.failed, applied.skipped), (3, 0, 0));
        let told = recorder.take();
        assert_eq!(
            phases(&told),
            [
                Phase::ReadingSources,
                Phase::ReadingTargets { records: 3 },
                Phase::Planning { accounts: 0 },
                Phase::Applying { total: planned }
            ],
            "{told:#?}"
        );
        let applying = told.iter().position(|t| matches!(t, Told::Phase(Phase::Applying { .. }))).unwrap();
        let progress: Vec<Progress> =
            told.iter().filter_map(|t| if let Told::Progress(p) = t { Some(*p) } else { None }).collect();
        assert_eq!(progress.len(), planned, "one after each operation: {told:#?}");
        assert!(
            told[..applying].iter().all(|t| matches!(t, Told::Phase(_))),
            "no progress before the apply begins: {told:#?}"
        );
        let done = |p: &Progress| p.ok + p.failed + p.not_sent;
        assert!(progress.windows(2).all(|w| done(&w[0]) < done(&w[1]) && w[0].elapsed <= w[1].elapsed));
        let last = progress.last().unwrap();
        assert_eq!((last.total, done(last), last.ok), (planned, planned, planned), "{last:?}");

        // Nothing to do: the apply ends after planning, and has read the three accounts.
        let report = engine.run(&run(RunMode::Apply(ApplyRequest::default())), &mut Go).await.unwrap();
        assert_eq!(report.outcome, Outcome::Unchanged);
        let told = recorder.take();
        assert_eq!(
            told,
            [
                Told::Phase(Phase::ReadingSources),
                Told::Phase(Phase::ReadingTargets { records: 3 }),
                Told::Phase(Phase::Planning { accounts: 3 })
            ]
        );

        // `enid adopt` reads as a plan does.
        let hook: &dyn RunHook = &*recorder;
        engine.plan_adopt(chrono::Utc::now(), None, Some(hook)).await.unwrap();
        assert_eq!(
            phases(&recorder.take()),
            [Phase::ReadingSources, Phase::ReadingTargets { records: 3 }, Phase::Planning { accounts: 3 }]
        );

        // A change to an account the target holds: the apply carries it out without the run's
        // observed accounts and names, which it lets go before it sends (a million of each were
        // held through the sends for nothing).
        let mut changed = rows(3);
        changed[0] = row("p0", "Elev", "Annatnamn", &pnr(0), "student", "S1", "");
        csv_rows(&env, &changed);
        let report = engine.run(&run(RunMode::Apply(ApplyRequest::default())), &mut Go).await.unwrap();
        let applied = report.applied().expect("applied");
        assert_eq!((applied.ok, applied.failed, report.computed.plan.operations.len()), (1, 0, 1));
        assert!(report.computed.observed.values().all(Vec::is_empty), "the observed accounts were let go");
        assert!(report.computed.usernames.is_empty(), "the names were let go");
        recorder.take();
        let report = engine.run(&run(RunMode::Apply(ApplyRequest::default())), &mut Go).await.unwrap();
        assert_eq!(report.outcome, Outcome::Unchanged, "and it converged");
    });
}

/// Runs enid under a pseudo-terminal (util-linux `script`): what the terminal showed.
/// `stdout_to` sends stdout to that file instead, so the terminal is stderr's alone; `log` is
/// `ENID_LOG` (`info`: lines to see written around the display).
fn on_terminal(env: &Env, args: &str, stdout_to: Option<&str>, log: &str) -> String {
    let (enid, config) = (env!("CARGO_BIN_EXE_enid"), env.path("enid.toml"));
    let mut command = format!("ENID_LOG={log} '{enid}' --config '{}' {args}", config.display());
    if let Some(file) = stdout_to {
        command.push_str(&format!(" > '{}'", env.path(file).display()));
    }
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("ENID_CONFIG")
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "enid {args} failed on a terminal:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The phases' words as the display writes them.
const DRAWN: [&str; 4] = ["reading sources", "reading targets", "planning (", "applying ["];

fn drawn(text: &str) -> Vec<&'static str> {
    DRAWN.into_iter().filter(|w| text.contains(w)).collect()
}

#[test]
fn progress17_a_terminal_shows_progress_on_stderr_and_nothing_else_does() {
    let env = Env::new();
    csv_rows(&env, &rows(2));

    // No terminal (as under cron or a pipe): nothing drawn on either stream.
    let run = env.enid(&["apply", "--yes"]).ok();
    assert_eq!(drawn(&run.stdout), Vec::<&str>::new(), "{}", run.stdout);
    assert_eq!(drawn(&run.stderr), Vec::<&str>::new(), "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}') && !run.stdout.contains('\u{1b}'), "{run:?}", run = run.stderr);

    // On a terminal, with stdout to a file: every phase on the terminal, stdout as without one.
    csv_rows(&env, &rows(4));
    let terminal = on_terminal(&env, "apply --yes", Some("apply.out"), "info");
    assert_eq!(drawn(&terminal), DRAWN, "{terminal}");
    assert!(terminal.contains("/2 ops, 0 failed"), "the bar's counts: {terminal}");
    // A log line while the bar is shown is a line of its own: the bar is cleared first (the
    // line starts after the last carriage return with no bar in front of it).
    let logged: Vec<&str> = terminal.lines().filter(|l| l.contains("sent operations")).collect();
    assert_eq!(logged.len(), 1, "{terminal:?}");
    let head = logged[0].split("sent operations").next().unwrap_or_default();
    let head = head.rsplit('\r').next().unwrap_or_default();
    assert!(!head.contains("ops") && !head.contains("applying"), "{head:?} in {terminal:?}");
    let stdout = std::fs::read_to_string(env.path("apply.out")).unwrap();
    assert!(stdout.contains("2 done, 0 failed, 0 not sent."), "{stdout}");
    assert_eq!(drawn(&stdout), Vec::<&str>::new(), "{stdout}");
    assert!(!stdout.contains('\u{1b}') && !stdout.contains('\r'), "{stdout:?}");
    assert_eq!(env.people().len(), 4);
    // Never a civic number on the terminal.
    for i in 0..4 {
        assert!(!terminal.contains(&pnr(i)) && !terminal.contains(&pnr(i).replace('-', "")), "{terminal}");
    }

    // `--json` on a terminal: the JSON alone, nothing drawn.
    let terminal = on_terminal(&env, "plan --json", None, "warn");
    assert_eq!(drawn(&terminal), Vec::<&str>::new(), "{terminal}");
    let plan: serde_json::Value = serde_json::from_str(&terminal).expect("the terminal shows only the JSON");
    assert!(plan["operations"].as_array().is_some_and(Vec::is_empty), "{plan}");
    let terminal = on_terminal(&env, "adopt --json", None, "warn");
    assert_eq!(drawn(&terminal), Vec::<&str>::new(), "{terminal}");

    // A plan and an adopt on a terminal show their reading phases, then their text.
    let terminal = on_terminal(&env, "plan", None, "warn");
    assert_eq!(drawn(&terminal), DRAWN[..3], "{terminal}");
    let terminal = on_terminal(&env, "adopt --yes", None, "warn");
    assert_eq!(drawn(&terminal), DRAWN[..3], "{terminal}");
    assert!(terminal.contains("Accounts to record as enid's"), "{terminal}");
}
