//! `enid run`: the service. It reconciles on `[schedule]` (a full reconcile on an interval or a
//! cron expression, the first right after start; incremental reads on their own interval; a
//! change of a watched source file, once it has settled), one run at a time (what falls due
//! during a run is coalesced into one run after it), through the same [`Engine::run`] as the
//! CLI. It tells systemd when it is ready, what the last run did and that it is alive
//! (`sd_notify`: `READY=1`, `STATUS=`, `WATCHDOG=1`); SIGHUP reloads the config (an invalid
//! one is logged and the old one stays in force); SIGTERM stops an apply between two
//! operations, records the run as interrupted, and exits within a bounded time.
//!
//! After each full reconcile it removes runs, log rows and saved plans older than `[state]
//! keep_log_for` (retention). A source or target that is down does not stop the service: the run is recorded as stopped,
//! the status says degraded, and the next attempt comes sooner (one minute, doubling up to the
//! full interval).

mod leader;

pub use leader::{Role, node_name};

use crate::config::{ApplyMode, Config};
use crate::engine::{
    Approved, Computed, Confirm, Engine, EngineError, Frontend, Outcome, Overrides, RunHook, RunMode, RunRequest,
};
use crate::store::StateStore as _;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Why the service could not start. After a start, nothing stops it but a signal.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("signals: {0}")]
    Signals(std::io::Error),
    /// `[server] listen` cannot be bound (in use, not this host's address).
    #[error("[server] listen: {0}")]
    Server(std::io::Error),
}

/// How long a stopping service waits for an apply to reach the end of its current operations.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// How often the service looks for a new approval made by another process.
const APPROVAL_POLL: Duration = Duration::from_secs(3);

/// The first retry after a failed run; it doubles up to the full interval.
const FIRST_RETRY: Duration = Duration::from_secs(60);
/// How soon a run skipped because the CLI held the state is tried again.
const LOCK_RETRY: Duration = Duration::from_secs(5);

/// The stop asked by SIGTERM, as the apply's hook sees it.
#[derive(Debug, Default)]
struct Shutdown {
    asked: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Shutdown {
    fn ask(&self) {
        self.asked.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn asked(&self) -> bool {
        self.asked.load(Ordering::SeqCst)
    }
}

impl RunHook for Shutdown {
    fn stop(&self) -> Option<String> {
        self.asked().then(|| "the service is stopping (SIGTERM); the next run continues".to_string())
    }
}

/// The daemon as the engine's front end: nobody to ask, so an apply goes ahead once the
/// approval rules let it.
struct Unattended;

impl Frontend for Unattended {
    fn computed(&mut self, _computed: &Computed) -> Confirm {
        Confirm::Go
    }

    fn confirm(&mut self, _computed: &Computed, _approved: &Approved) -> Confirm {
        Confirm::Go
    }
}

/// The state database file the service opened (its device and inode). An operator who removes
/// or replaces it under the running service (a cleanup, a restore by `mv`) leaves the service's
/// connections on a file no one will read again: every run stops until a restart opens the file
/// at `[state] path`, and a reload is refused (it would open a new, empty state there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StateFile {
    dev: u64,
    ino: u64,
}

impl StateFile {
    fn of(path: &Path) -> Option<StateFile> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| StateFile { dev: m.dev(), ino: m.ino() })
    }

    /// Why the file at `path` is no longer the one the service opened; `None` while it is.
    fn gone(self, path: &Path) -> Option<String> {
        match StateFile::of(path) {
            Some(now) if now == self => None,
            Some(_) => Some(format!(
                "the state database {} was replaced while the service ran; restart the service to use the new file",
                path.display()
            )),
            None => Some(format!(
                "the state database {} was removed while the service ran; restore it from the backup and restart \
                 the service",
                path.display()
            )),
        }
    }
}

/// What starts a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The full reconcile's time: every source read in full.
    Full,
    /// The incremental interval, or a watched file that changed: sources read what changed.
    Changes,
}

/// A run asked for at once (an approval through the API): the loop starts it as soon as the run
/// going on, if any, has ended.
#[derive(Debug, Clone)]
pub struct RunNow {
    /// Read every source in full.
    pub full: bool,
    /// Why, for the log (`approval of run 42 by token "lisa"`).
    pub why: String,
}

/// What the rest of the service holds of the daemon: the engine in force (a reload swaps it),
/// and the way to ask for a run.
#[derive(Debug, Clone)]
pub struct DaemonHandle {
    pub engine: tokio::sync::watch::Receiver<Arc<Engine>>,
    pub run_now: tokio::sync::mpsc::UnboundedSender<RunNow>,
    /// How the service is doing, as `STATUS=` says it (for `/healthz`).
    pub status: tokio::sync::watch::Receiver<ServiceStatus>,
}

/// How the service is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServiceStatus {
    /// False while the last run stopped (a source or target down, a guard): degraded.
    pub healthy: bool,
    /// What `STATUS=` says.
    pub text: String,
    /// When the last run ended, and the last one that got through.
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_ok_at: Option<DateTime<Utc>>,
    /// This node's role (a state in PostgreSQL: leader or follower).
    pub role: Role,
    /// The node that leads, as its lease names it (`host:pid (...)`), when known.
    pub leader: Option<String>,
}

/// Tells systemd (when it started us with `NOTIFY_SOCKET`); nothing otherwise.
///
/// The messages go through a thread of their own and a short queue: a service manager that
/// does not read its socket (a full queue blocks a datagram send) never stalls the service; a
/// message that finds the queue full is dropped and logged at debug.
fn tell(states: &[sd_notify::NotifyState<'_>]) {
    use std::sync::mpsc::{SyncSender, sync_channel};
    static NOTIFIER: std::sync::OnceLock<Option<SyncSender<Vec<String>>>> = std::sync::OnceLock::new();
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let notifier = NOTIFIER.get_or_init(|| {
        let (tx, rx) = sync_channel::<Vec<String>>(32);
        let spawned = std::thread::Builder::new().name("sd-notify".into()).spawn(move || {
            for lines in rx {
                let states: Vec<sd_notify::NotifyState<'_>> =
                    lines.iter().map(|l| sd_notify::NotifyState::Custom(l)).collect();
                if let Err(e) = sd_notify::notify(&states) {
                    tracing::warn!(error = %e, "could not notify the service manager");
                }
            }
        });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the thread that notifies the service manager");
                None
            }
        }
    });
    let lines: Vec<String> = states.iter().map(ToString::to_string).collect();
    if let Some(tx) = notifier
        && tx.try_send(lines).is_err()
    {
        tracing::debug!("the service manager is not reading its socket: a notification was dropped");
    }
}

/// Tells the service manager that the service stops, directly: the process ends right after.
fn tell_stopping() {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Stopping])
    {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
}

/// The config at `path`, with `[server] listen` replaced by `--listen` when given (two nodes on
/// one machine, one config).
fn load(path: &Path, listen: Option<std::net::SocketAddr>) -> Result<Config, crate::config::ConfigError> {
    let mut config = Config::load(path)?;
    if let (Some(addr), Some(server)) = (listen, config.server.as_mut()) {
        server.listen = addr;
    }
    Ok(config)
}

/// Runs the service until SIGTERM (or SIGINT).
pub async fn run(path: &Path, listen: Option<std::net::SocketAddr>) -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut config = load(path, listen)?;
    let mut engine = Arc::new(build(config.clone()).await?);
    let opened = config.state.file().and_then(StateFile::of);
    let shutdown = Arc::new(Shutdown::default());
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    {
        let shutdown = Arc::clone(&shutdown);
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("stopping (signal): an apply stops between two operations");
            tell_stopping();
            shutdown.ask();
        });
    }
    if let Some(every) = sd_notify::watchdog_enabled() {
        // Proves the runtime is alive (a run may take longer than the watchdog's interval).
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tick.tick().await;
                tell(&[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
    let (changed_tx, mut changed) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = watch(&engine, changed_tx.clone());
    // What other parts of the service (the HTTP API) see: the engine in force (swapped on a
    // reload), and a way to start a run at once (an approval).
    let (current, _) = tokio::sync::watch::channel(Arc::clone(&engine));
    let (run_now_tx, mut run_now) = tokio::sync::mpsc::unbounded_channel::<RunNow>();
    let (status, _) = tokio::sync::watch::channel(ServiceStatus {
        healthy: true,
        text: "started; the first run is due now".into(),
        ..ServiceStatus::default()
    });
    let handle = DaemonHandle { engine: current.subscribe(), run_now: run_now_tx.clone(), status: status.subscribe() };
    // A state in PostgreSQL: this node leads only while it holds the state's lease.
    if let crate::store::Store::Postgres(pg) = engine.store() {
        engine.lead(crate::engine::Leading::Follower("not known yet".into()));
        status.send_modify(|s| s.role = Role::Follower);
        tokio::spawn(leader::lead(
            pg.clone(),
            config.state.lease_for.duration(),
            current.subscribe(),
            status.clone(),
            run_now_tx.clone(),
            Arc::clone(&shutdown),
        ));
    }
    let mut asked_seen = engine.store().meta(leader::RUN_ASKED).await.ok().flatten();
    let server = match config.server.clone() {
        Some(settings) => Some(crate::http::Server::start(settings, handle).await.map_err(DaemonError::Server)?),
        None => None,
    };
    tracing::info!(full = %config.schedule.full, apply = ?config.schedule.apply, "enid run: started");
    tell(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("started; the first run is due now")]);

    // A new approval (from `enid approve` in another process, or the API) starts a run at once.
    let mut approvals_seen = engine.store().latest_approval().await.unwrap_or(0);
    let mut poll = tokio::time::interval(APPROVAL_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_full = Utc::now();
    let mut next_changes: Option<DateTime<Utc>> = None;
    let mut settling: Option<tokio::time::Instant> = None;
    let mut failures: u32 = 0;
    loop {
        if shutdown.asked() {
            break;
        }
        let now = Utc::now();
        let mut wake = next_full;
        if let Some(t) = next_changes {
            wake = wake.min(t);
        }
        let sleep = (wake - now).to_std().unwrap_or(Duration::ZERO);
        let settle_at = settling.unwrap_or_else(|| tokio::time::Instant::now() + sleep);
        tokio::select! {
            _ = tokio::time::sleep(sleep), if settling.is_none() || sleep.is_zero() => {}
            _ = tokio::time::sleep_until(settle_at), if settling.is_some() => {}
            _ = shutdown.notify.notified() => break,
            _ = hup.recv() => {
                let before = Arc::clone(&engine);
                (config, engine, watcher) = reload(path, listen, config, engine, watcher, &changed_tx, opened).await;
                engine.lead(before.leading());
                current.send_replace(Arc::clone(&engine));
                if !Arc::ptr_eq(&before, &engine) {
                    // A new config (a template, a target, a rule) changes what every person
                    // should have: a full run plans it, never an incremental one piecemeal.
                    next_full = Utc::now();
                }
                continue;
            }
            _ = poll.tick() => {
                match engine.store().latest_approval().await {
                    Ok(latest) if latest > approvals_seen => {
                        approvals_seen = latest;
                        tracing::info!("a new approval: a run starts now");
                        next_changes = Some(Utc::now());
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot read the approvals"),
                }
                // A run asked of another node (it does not lead): carried out here.
                if !matches!(engine.leading(), crate::engine::Leading::Follower(_)) {
                    match engine.store().meta(leader::RUN_ASKED).await {
                        Ok(asked) if asked != asked_seen => {
                            tracing::info!("a run asked of another node: it starts now");
                            if asked.as_deref().is_some_and(|a| a.ends_with(" full")) {
                                next_full = Utc::now();
                            }
                            asked_seen = asked;
                            next_changes = Some(Utc::now());
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot read the runs asked of other nodes"),
                    }
                }
                if next_changes.is_none_or(|t| t > Utc::now()) {
                    continue;
                }
            }
            Some(asked) = run_now.recv() => {
                tracing::info!(why = %asked.why, "a run was asked for");
                if let crate::engine::Leading::Follower(holder) = engine.leading() {
                    // The node that leads carries it out: it reads `run_asked` with the approvals.
                    let value = format!(
                        "{} {} {}",
                        Utc::now().to_rfc3339(),
                        node_name(),
                        if asked.full { "full" } else { "changes" }
                    );
                    match engine.store().set_meta(leader::RUN_ASKED, &value).await {
                        Ok(()) => tracing::info!(leader = %holder, "passed to the node that leads"),
                        Err(e) => tracing::warn!(error = %e, "cannot pass the run to the node that leads"),
                    }
                    continue;
                }
                next_changes = Some(Utc::now());
                if asked.full {
                    next_full = Utc::now();
                }
                continue;
            }
            Some(file) = changed.recv() => {
                tracing::debug!(file = %file.display(), "a watched file changed; waiting for it to settle");
                settling = Some(tokio::time::Instant::now() + config.schedule.settle.duration());
                continue;
            }
        }
        let now = Utc::now();
        let settled = settling.is_some_and(|t| t <= tokio::time::Instant::now());
        let trigger = if now >= next_full {
            Trigger::Full
        } else if settled || next_changes.is_some_and(|t| now >= t) {
            Trigger::Changes
        } else {
            continue;
        };
        if settled {
            settling = None;
        }
        if matches!(engine.leading(), crate::engine::Leading::Follower(_)) {
            // Another node leads and runs: this one waits until it leads (`leader::lead` then
            // asks for a full run at once).
            next_full = now + chrono::Duration::hours(1);
            next_changes = None;
            settling = None;
            continue;
        }
        // Whatever else fell due meanwhile is this run: a full one covers changes too.
        let mut coalesced = 0;
        while changed.try_recv().is_ok() {
            coalesced += 1;
        }
        if coalesced > 0 {
            tracing::info!(events = coalesced, "file changes during the wait are taken by this run");
        }
        let before = status.borrow().text.clone();
        // On a worker, where the connections' tasks are, not on the main thread that every
        // response of a target would have to wake (see `cli::on_worker`).
        let running = {
            let (engine, config, shutdown, before) =
                (Arc::clone(&engine), config.clone(), Arc::clone(&shutdown), before.clone());
            tokio::spawn(async move {
                // Boxed as `Send` where its lifetimes are known (rustc cannot prove the unboxed
                // future `Send` for every lifetime).
                let one: std::pin::Pin<Box<dyn std::future::Future<Output = RunEnd> + Send + '_>> =
                    Box::pin(one_run(&engine, &config, trigger, &shutdown, &before, opened));
                one.await
            })
        };
        let RunEnd { ok, text, skipped, rest_waits, quiet } = match running.await {
            Ok(end) => end,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                let text = format!("the run was cancelled: {e}");
                RunEnd { ok: false, text, skipped: false, rest_waits: false, quiet: false }
            }
        };
        let after = Utc::now();
        let recovered = quiet && !status.borrow().healthy;
        if recovered {
            // The status said degraded: a tick that got through says so, though it found nothing.
            tell(&[sd_notify::NotifyState::Status(&text)]);
        }
        status.send_modify(|s| {
            s.healthy = ok;
            if !quiet || recovered {
                s.text = text;
            }
            s.last_run_at = Some(after);
            if ok {
                s.last_ok_at = Some(after);
            }
        });
        if trigger == Trigger::Full || !ok {
            next_full = if ok {
                failures = 0;
                config.schedule.full.next_after(after)
            } else {
                failures = failures.saturating_add(1);
                let retry = FIRST_RETRY.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)));
                let retry = chrono::Duration::from_std(retry).unwrap_or(chrono::Duration::hours(1));
                (after + retry).min(config.schedule.full.next_after(after))
            };
        }
        if trigger == Trigger::Full && ok {
            // The sync log is personal data: kept for `[state] keep_log_for`, then removed.
            if let Err(e) = engine.prune(after).await {
                tracing::warn!(error = %connector_api::one_line(&e), "retention: old runs could not be removed");
            }
        }
        next_changes =
            config.schedule.incremental.and_then(|d| chrono::Duration::from_std(d.duration()).ok()).map(|d| after + d);
        if rest_waits {
            next_full = after;
        }
        if skipped {
            // The CLI held the state: what this run was for (a changed file, a full run due) is
            // tried again shortly, not left to the next event.
            let soon = after + chrono::Duration::from_std(LOCK_RETRY).unwrap_or(chrono::Duration::seconds(5));
            next_changes = Some(next_changes.map_or(soon, |t| t.min(soon)));
            if trigger == Trigger::Full {
                next_full = next_full.min(soon);
            }
        }
    }
    drop(watcher);
    // The lease goes once the last run has ended: the other node need not wait for it to expire.
    if let crate::engine::Leading::Lease(lease) = engine.leading() {
        lease.give_up().await;
    }
    if let Some(server) = server {
        server.stop().await;
    }
    tracing::info!("enid run: stopped");
    Ok(())
}

/// Builds the engine and says what the operator should know.
async fn build(config: Config) -> Result<Engine, EngineError> {
    let engine = Engine::build(config).await?;
    for n in engine.notices() {
        tracing::warn!(notice = %n, "note");
    }
    Ok(engine)
}

/// SIGHUP: the config read again; one that does not load or build is logged and the old one
/// stays in force.
async fn reload(
    path: &Path,
    listen: Option<std::net::SocketAddr>,
    config: Config,
    engine: Arc<Engine>,
    watcher: Option<notify::RecommendedWatcher>,
    changed: &tokio::sync::mpsc::UnboundedSender<PathBuf>,
    opened: Option<StateFile>,
) -> (Config, Arc<Engine>, Option<notify::RecommendedWatcher>) {
    let mut states = vec![sd_notify::NotifyState::Reloading];
    states.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
    tell(&states);
    let moved = opened.and_then(|o| config.state.file().and_then(|p| o.gone(p)));
    let fresh = match load(path, listen) {
        _ if moved.is_some() => Err(moved.unwrap_or_default()),
        // Another state database under a running service is a move of the state, not a
        // setting: done at a restart, with the lock and the checks a start makes.
        Ok(c) if format!("{:?}", c.state) != format!("{:?}", config.state) => {
            Err("[state] changed; the service keeps the state it started with: restart it to use the new one".into())
        }
        Ok(c) => build(c.clone()).await.map(|e| (c, e)).map_err(|e| connector_api::one_line(&e)),
        Err(e) => Err(e.to_string()),
    };
    if let Ok((c, _)) = &fresh
        && format!("{:?}", c.server) != format!("{:?}", config.server)
    {
        tracing::warn!("[server] changed: the API keeps its address, TLS and settings until the service is restarted");
    }
    let out = match fresh {
        Ok((c, e)) => {
            tracing::info!(config = %path.display(), "reloaded the config");
            drop(watcher);
            let e = Arc::new(e);
            let w = watch(&e, changed.clone());
            (c, e, w)
        }
        Err(why) => {
            tracing::error!(config = %path.display(), error = %why, "the new config is not valid; the old one stays in force");
            (config, engine, watcher)
        }
    };
    tell(&[sd_notify::NotifyState::Ready]);
    out
}

/// Watches the files the sources read (a CSV export, a OneRoster bundle): their directories, so
/// a file replaced by a rename is seen too.
fn watch(engine: &Engine, changed: tokio::sync::mpsc::UnboundedSender<PathBuf>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    // Absolute, as the watcher reports them (a config given as `--config enid.toml` leaves
    // the sources' paths relative to the working directory).
    let files: Vec<PathBuf> = engine.source_files().into_iter().map(|f| std::path::absolute(&f).unwrap_or(f)).collect();
    if files.is_empty() {
        return None;
    }
    let wanted: Vec<PathBuf> = files.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for p in event.paths {
            if wanted.iter().any(|w| p.starts_with(w) || p == *w) {
                let _ = changed.send(p);
            }
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the source files; their changes wait for the schedule");
            return None;
        }
    };
    for f in files {
        let dir = if f.is_dir() { f.clone() } else { f.parent().map(Path::to_path_buf).unwrap_or_else(|| f.clone()) };
        if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(path = %dir.display(), error = %e, "cannot watch; its changes wait for the schedule");
        }
    }
    Some(watcher)
}

/// How a run of the service ended, for the loop.
struct RunEnd {
    /// It got through (a held or planned run did; one stopped by an error did not).
    ok: bool,
    /// What it did, for the status.
    text: String,
    /// The CLI held the state's lock: nothing was done.
    skipped: bool,
    /// It carried out approved operations of a larger plan: the rest waits for approval, and
    /// a full run right after plans and saves it (an incremental run would not see it).
    rest_waits: bool,
    /// An incremental tick that found nothing: the status keeps what the last run did.
    quiet: bool,
}

/// One run to its end (or to a stop): logged, its outcome in the status.
async fn one_run(
    engine: &Engine,
    config: &Config,
    trigger: Trigger,
    shutdown: &Arc<Shutdown>,
    status_before: &str,
    opened: Option<StateFile>,
) -> RunEnd {
    let now = Utc::now();
    let overrides = Overrides { full_read: trigger == Trigger::Full, ..Overrides::default() };
    let mode = RunMode::Service {
        within_thresholds: config.schedule.apply == ApplyMode::WithinThresholds,
        changes_only: trigger == Trigger::Changes,
    };
    let hook: Arc<dyn RunHook> = shutdown.clone();
    let request = RunRequest { mode, now, overrides, hook: Some(hook) };
    let kind = match trigger {
        Trigger::Full => "full",
        Trigger::Changes => "changes",
    };
    if let Some(why) = opened.and_then(|o| config.state.file().and_then(|p| o.gone(p))) {
        // Nothing is read, planned or sent on the word of a state no one will read again.
        let text = format!("degraded: the last {kind} run stopped: {why}");
        if text == status_before {
            tracing::debug!(error = %why, kind, "run: stopped");
        } else {
            tracing::error!(error = %why, kind, "run: stopped");
            tell(&[sd_notify::NotifyState::Status(&text)]);
        }
        return RunEnd { ok: false, text, skipped: false, rest_waits: false, quiet: false };
    }
    // An `incremental = "1s"` tick is logged at debug: two lines a second would bury the rest.
    match trigger {
        Trigger::Full => tracing::info!(kind, "run: starting"),
        Trigger::Changes => tracing::debug!(kind, "run: starting"),
    }
    let mut frontend = Unattended;
    let run = engine.run(&request, &mut frontend);
    tokio::pin!(run);
    let result = tokio::select! {
        r = &mut run => r,
        _ = shutdown.notify.notified() => {
            // The apply stops between two operations; a read or a plan is dropped (it wrote
            // nothing). Past the grace, the run is left for the next start to mark interrupted.
            match tokio::time::timeout(STOP_GRACE, &mut run).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!("the run did not stop within the grace period; left to the next start");
                    let text = "stopping: the run did not stop within the grace period".into();
                    return RunEnd { ok: false, text, skipped: false, rest_waits: false, quiet: false };
                }
            }
        }
    };
    let skipped = matches!(result, Err(EngineError::Lock(_)));
    // An incremental tick that found nothing: no row, no new status, a debug line.
    let quiet = matches!(&result, Ok(r) if r.run_id.is_none() && matches!(r.outcome, Outcome::Unchanged))
        && trigger == Trigger::Changes;
    let rest_waits = matches!(&result, Ok(r) if r.saved && matches!(r.outcome, Outcome::Applied(_)));
    let (ok, status) = match result {
        Ok(report) => {
            let id = report.run_id.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
            let ops = report.computed.plan.operations.len();
            let text = match &report.outcome {
                Outcome::Planned => format!("run {id} ({kind}): planned {ops} operations, saved for approval"),
                Outcome::Unchanged => format!("run {id} ({kind}): nothing to do"),
                Outcome::Held { hits } => format!("run {id} ({kind}): held for review ({} thresholds)", hits.len()),
                Outcome::Declined => format!("run {id} ({kind}): not applied"),
                Outcome::Applied(a) => match &a.interrupted {
                    Some(why) => format!("run {id} ({kind}): interrupted ({why}), {} done", a.ok),
                    None => format!("run {id} ({kind}): {} done, {} failed, {} not sent", a.ok, a.failed, a.skipped),
                },
            };
            if quiet {
                tracing::debug!(run = %id, kind, outcome = %text, "run: finished");
            } else {
                tracing::info!(run = %id, kind, outcome = %text, "run: finished");
            }
            (true, text)
        }
        Err(EngineError::Lock(e)) => {
            let text = format!("skipped a {kind} run: {e}");
            tracing::info!("{text}");
            (true, text)
        }
        Err(e) => {
            let text = format!("degraded: the last {kind} run stopped: {}", connector_api::one_line(&e));
            if text == status_before {
                // The same stop at every tick: said once.
                tracing::debug!(error = %connector_api::one_line(&e), kind, "run: stopped");
            } else {
                tracing::error!(error = %connector_api::one_line(&e), kind, "run: stopped");
            }
            (false, text)
        }
    };
    if !quiet && status != status_before {
        tell(&[sd_notify::NotifyState::Status(&status)]);
    }
    RunEnd { ok, text: status, skipped, rest_waits, quiet }
}
