//! A local SS 12000 (v2.x) API server for enid's tests and benchmarks, written from the
//! specification because no vendor's server can run here. It serves `/organisations`,
//! `/persons`, `/duties`, `/groups`, `/placements`, `/activities` (lists, single entities and
//! `POST …/lookup`) and `/deletedEntities` with the specification's paging (`limit`, an opaque `pageToken`, a
//! follow-up that carries nothing else), change filters (`meta.*.after` exclusive), the listed
//! filters and `expand`/`expandReferenceNames`, behind an OAuth2 client-credentials token
//! endpoint (`/token`). Tests start it in-process on 127.0.0.1:0 (`start`), change its data and
//! clock while it runs, inject faults and read its request log through a `Handle`.
//! Data comes from the seeded generator (`generate`). The `ss12000-server` binary serves the
//! same for benchmarks and demos.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ss12000_server::*;
//! let today = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap_or_default();
//! let g = generate(&GenParams { persons: 300, seed: 1, today }).map_err(std::io::Error::other)?;
//! let config = Config { clock: Some(chrono::Utc::now()), ..Config::default() };
//! let server = start_with(config, g.dataset, vec![FaultRule::on("/persons", When::Nth(2), Fault::DropMidBody)]).await?;
//! // ... point the client at server.url() with client id "enid" and secret "enid-test-secret" ...
//! let h = server.handle();
//! h.advance(chrono::Duration::minutes(5));
//! h.delete(Kind::Person, &g.specials.former_pupil);
//! assert!(h.violations().is_empty(), "the client kept to the paging rules");
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod civic;
pub mod fault;
pub mod generate;
mod http;
pub mod model;
mod query;
mod render;
mod rng;
mod server;
mod store;

pub use fault::{AuthOutcome, Fault, FaultRule, RequestRecord, Violation, ViolationKind, When};
pub use generate::{GenParams, GenerateError, Generated, Specials, generate};
pub use model::*;
pub use store::Deletion;

use chrono::{DateTime, NaiveDate, Utc};
use http::{Shared, lock};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How clients authenticate.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Whether endpoints other than `/token` need a bearer token.
    pub required: bool,
    /// The OAuth2 client id `/token` accepts.
    pub client_id: String,
    /// The OAuth2 client secret `/token` accepts.
    pub client_secret: String,
    /// How long an issued token is valid (by the server's clock); `expires_in` says the same.
    pub token_lifetime: Duration,
    /// A bearer token accepted besides the issued ones, and never expiring.
    pub static_token: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            required: true,
            client_id: "enid".into(),
            client_secret: "enid-test-secret".into(),
            token_lifetime: Duration::from_secs(3600),
            static_token: None,
        }
    }
}

/// How `meta.created` and `meta.modified` are written. Filters always compare the full times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timestamps {
    /// `2026-10-04T03:00:01.000Z`.
    #[default]
    UtcMillis,
    /// `2026-10-04T04:00:01+01:00`: whole seconds and an offset, as many Swedish servers write
    /// them. A client that takes a shown time as its `meta.modified.after` watermark then sees
    /// again what changed later in the same second (harmless), and must parse offsets.
    LocalSeconds,
}

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which edition's spellings the server writes and accepts.
    pub dialect: Dialect,
    /// Authentication.
    pub auth: AuthConfig,
    /// The page size when a request gives no `limit`.
    pub default_limit: usize,
    /// The largest page; a larger `limit` is cut to this (servers do that, the spec allows it).
    pub max_limit: usize,
    /// How long a page token stays valid (by the server's clock).
    pub page_token_ttl: Duration,
    /// The status for an expired page token: 410 (Gone) or 400.
    pub expired_page_token_status: u16,
    /// Whether a membership change bumps the group's `meta.modified`. Real servers often do
    /// not: a client that only reads changed groups then misses it until its next full read.
    pub bump_group_on_membership: bool,
    /// A fixed starting time for the server's clock (tests move it with `Handle::set_now` and
    /// `advance`); `None` uses the wall clock.
    pub clock: Option<DateTime<Utc>>,
    /// Seed of the bearer and page tokens.
    pub token_seed: u64,
    /// How `meta` times are written.
    pub timestamps: Timestamps,
    /// The most ids and civic numbers one `/lookup` may ask for (more: 503).
    pub max_lookup: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            dialect: Dialect::V21,
            auth: AuthConfig::default(),
            default_limit: 500,
            max_limit: 5000,
            page_token_ttl: Duration::from_secs(600),
            expired_page_token_status: 410,
            bump_group_on_membership: true,
            clock: None,
            token_seed: 1,
            timestamps: Timestamps::UtcMillis,
            max_lookup: 500,
        }
    }
}

/// A running server. Dropping it stops it too; `shutdown` waits until it has stopped.
#[derive(Debug)]
pub struct Server {
    url: String,
    addr: SocketAddr,
    handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Starts a server with the default `Config` on 127.0.0.1 and a free port.
pub async fn start(dataset: Dataset, faults: Vec<FaultRule>) -> std::io::Result<Server> {
    start_with(Config::default(), dataset, faults).await
}

/// Starts a server with `config` on 127.0.0.1 and a free port.
pub async fn start_with(config: Config, dataset: Dataset, faults: Vec<FaultRule>) -> std::io::Result<Server> {
    serve_on(config, dataset, faults, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts a server on `addr`.
pub async fn serve_on(
    config: Config,
    dataset: Dataset,
    faults: Vec<FaultRule>,
    addr: SocketAddr,
) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let mut store = store::Store::new(dataset, config.timestamps);
    store.warm(config.dialect);
    let state = server::State::new(config, store, faults);
    let shared: Shared = Arc::new(Mutex::new(state));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = http::router(Arc::clone(&shared));
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Server { url: format!("http://{addr}"), addr, handle: Handle(shared), stop: Some(stop), task: Some(task) })
}

impl Server {
    /// The base URL, `http://127.0.0.1:<port>` (endpoints are directly below it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to change data, faults and the clock, and read the log.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops accepting, lets requests in flight finish (at most 5 s), then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Changes a running server's data, clock and faults, and reads its log. Every data change
/// stamps `meta.modified` of what it changed with the server's clock.
#[derive(Debug, Clone)]
pub struct Handle(Shared);

impl Handle {
    /// The server's state; the indexes built from the data are dropped, since most callers change
    /// the data (for the others the next filtered listing builds them again once).
    fn state(&self) -> std::sync::MutexGuard<'_, server::State> {
        let mut s = lock(&self.0);
        s.store.forget_indexes();
        s
    }

    /// The server's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.state().clock.now()
    }

    /// Sets the server's clock (from then on it stands still until set or advanced again).
    pub fn set_now(&self, t: DateTime<Utc>) {
        self.state().clock = server::Clock::Manual(t);
    }

    /// Moves the server's clock forward (a wall clock becomes a set one, `d` ahead).
    pub fn advance(&self, d: chrono::Duration) {
        let mut s = self.state();
        let t = s.clock.now() + d;
        s.clock = server::Clock::Manual(t);
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, faults: Vec<FaultRule>) {
        self.state().faults = faults;
    }

    /// Adds a fault rule after the others.
    pub fn add_fault(&self, fault: FaultRule) {
        self.state().faults.push(fault);
    }

    /// Switches whether membership changes bump the group's `meta.modified`.
    pub fn set_bump_group_on_membership(&self, bump: bool) {
        self.state().cfg.bump_group_on_membership = bump;
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().requests.clone()
    }

    /// Every protocol violation so far, in order.
    pub fn violations(&self) -> Vec<Violation> {
        self.state().violations.clone()
    }

    /// Forgets the request log and the violations.
    pub fn clear_log(&self) {
        let mut s = self.state();
        s.requests.clear();
        s.violations.clear();
    }

    /// The live data as it is now.
    pub fn dataset(&self) -> Dataset {
        self.state().store.dataset()
    }

    /// Every deletion so far.
    pub fn deletions(&self) -> Vec<Deletion> {
        self.state().store.deletions.clone()
    }

    /// Changes a person; false when there is no such (live) person.
    pub fn update_person(&self, id: &str, f: impl FnOnce(&mut Person)) -> bool {
        let mut s = self.state();
        let now = s.clock.now();
        let found = s.store.persons.change(id, now, true, f).is_some();
        s.store.person_changed(id);
        found
    }

    /// Changes a duty; false when there is no such duty.
    pub fn update_duty(&self, id: &str, f: impl FnOnce(&mut Duty)) -> bool {
        let mut s = self.state();
        let now = s.clock.now();
        s.store.duties.change(id, now, true, f).is_some()
    }

    /// Changes a group (its own values: always bumps `meta.modified`); false when there is none.
    pub fn update_group(&self, id: &str, f: impl FnOnce(&mut Group)) -> bool {
        let mut s = self.state();
        let now = s.clock.now();
        s.store.groups.change(id, now, true, f).is_some()
    }

    /// Changes an organisation element; false when there is none.
    pub fn update_organisation(&self, id: &str, f: impl FnOnce(&mut Organisation)) -> bool {
        let mut s = self.state();
        let now = s.clock.now();
        s.store.organisations.change(id, now, true, f).is_some()
    }

    /// Adds a person, created now; false when the id is taken.
    pub fn add_person(&self, mut p: Person) -> bool {
        let mut s = self.state();
        p.meta = Meta::at(s.clock.now());
        s.store.persons.add(p)
    }

    /// Adds a duty, created now; false when the id is taken.
    pub fn add_duty(&self, mut d: Duty) -> bool {
        let mut s = self.state();
        d.meta = Meta::at(s.clock.now());
        s.store.duties.add(d)
    }

    /// Adds a group, created now; false when the id is taken.
    pub fn add_group(&self, mut g: Group) -> bool {
        let mut s = self.state();
        g.meta = Meta::at(s.clock.now());
        s.store.groups.add(g)
    }

    /// Adds an activity, created now; false when the id is taken.
    pub fn add_activity(&self, mut a: Activity) -> bool {
        let mut s = self.state();
        a.meta = Meta::at(s.clock.now());
        s.store.activities.add(a)
    }

    /// Ends a person's open enrolments at `school_unit` on `end` (inclusive); false when the
    /// person has none there.
    pub fn end_enrolment(&self, person: &str, school_unit: &str, end: NaiveDate) -> bool {
        let mut s = self.state();
        let now = s.clock.now();
        let open = |e: &Enrolment| e.enroled_at == school_unit && e.end_date.is_none_or(|d| d > end);
        if !s.store.persons.get(person).is_some_and(|p| p.enrolments.iter().any(open)) {
            return false;
        }
        s.store.persons.change(person, now, true, |p| {
            p.enrolments.iter_mut().filter(|e| open(e)).for_each(|e| e.end_date = Some(end));
        });
        true
    }

    /// Moves a pupil to another school unit from `on`: every enrolment open on that day ends
    /// the day before and a new one (same school type and year) starts `on`; memberships of
    /// groups at other units end the day before, and the pupil joins the first class (Klass) of
    /// the same school type at the new unit. Groups are bumped as `bump_group_on_membership`
    /// says. False when the person or the unit does not exist.
    pub fn move_pupil(&self, person: &str, to_unit: &str, on: NaiveDate) -> bool {
        let mut s = self.state();
        let now = s.clock.now();
        let bump = s.cfg.bump_group_on_membership;
        let day_before = on.pred_opt().unwrap_or(on);
        if s.store.organisations.get(to_unit).is_none() {
            return false;
        }
        let Some(last) = s.store.persons.get(person).and_then(|p| p.enrolments.last().cloned()) else { return false };
        s.store.persons.change(person, now, true, |p| {
            for e in p.enrolments.iter_mut().filter(|e| e.end_date.is_none_or(|d| d >= on)) {
                e.end_date = Some(day_before);
            }
            p.enrolments.push(Enrolment {
                enroled_at: to_unit.to_string(),
                start_date: on,
                end_date: None,
                ..last.clone()
            });
        });
        let ids: Vec<(String, bool)> = s
            .store
            .groups
            .live()
            .filter(|g| g.memberships.iter().any(|m| m.person == person && m.end_date.is_none_or(|d| d >= on)))
            .map(|g| (g.id.clone(), g.organisation == to_unit))
            .collect();
        for (gid, same_unit) in ids {
            if !same_unit {
                s.store.groups.change(&gid, now, bump, |g| {
                    for m in
                        g.memberships.iter_mut().filter(|m| m.person == person && m.end_date.is_none_or(|d| d >= on))
                    {
                        m.end_date = Some(day_before);
                    }
                });
            }
        }
        let class = s
            .store
            .groups
            .live()
            .find(|g| {
                g.organisation == to_unit && g.group_type == GroupType::Class && g.school_type == Some(last.school_type)
            })
            .map(|g| g.id.clone());
        if let Some(gid) = class {
            s.store.groups.change(&gid, now, bump, |g| {
                g.memberships.push(Membership { person: person.to_string(), start_date: Some(on), end_date: None });
            });
        }
        true
    }

    /// Adds a membership; false when the group does not exist.
    pub fn add_membership(&self, group: &str, person: &str, start: Option<NaiveDate>) -> bool {
        let mut s = self.state();
        let now = s.clock.now();
        let bump = s.cfg.bump_group_on_membership;
        s.store
            .groups
            .change(group, now, bump, |g| {
                g.memberships.push(Membership { person: person.to_string(), start_date: start, end_date: None })
            })
            .is_some()
    }

    /// Ends a person's open memberships of a group on `end`; false when there is none.
    pub fn end_membership(&self, group: &str, person: &str, end: NaiveDate) -> bool {
        let mut s = self.state();
        let now = s.clock.now();
        let bump = s.cfg.bump_group_on_membership;
        let open = |m: &Membership| m.person == person && m.end_date.is_none_or(|d| d > end);
        if !s.store.groups.get(group).is_some_and(|g| g.memberships.iter().any(open)) {
            return false;
        }
        s.store.groups.change(group, now, bump, |g| {
            g.memberships.iter_mut().filter(|m| open(m)).for_each(|m| m.end_date = Some(end));
        });
        true
    }

    /// Deletes an entity: it leaves the listings and appears in `/deletedEntities` with the
    /// server's time. A deleted person also leaves every group (bumped as
    /// `bump_group_on_membership` says). False when there is no such live entity.
    pub fn delete(&self, kind: Kind, id: &str) -> bool {
        let mut s = self.state();
        let now = s.clock.now();
        let st = &mut s.store;
        let pos = match kind {
            Kind::Organisation => st.organisations.position(id).map(|i| st.organisations.deleted[i] = true),
            Kind::Person => st.persons.position(id).map(|i| st.persons.deleted[i] = true),
            Kind::Duty => st.duties.position(id).map(|i| st.duties.deleted[i] = true),
            Kind::Group => st.groups.position(id).map(|i| st.groups.deleted[i] = true),
            Kind::Activity => st.activities.position(id).map(|i| st.activities.deleted[i] = true),
            Kind::Placement => st.placements.position(id).map(|i| st.placements.deleted[i] = true),
        };
        if pos.is_none() {
            return false;
        }
        st.deletions.push(Deletion { kind, id: id.to_string(), at: now });
        if kind == Kind::Person {
            let bump = s.cfg.bump_group_on_membership;
            let ids: Vec<String> = s
                .store
                .groups
                .live()
                .filter(|g| g.memberships.iter().any(|m| m.person == id))
                .map(|g| g.id.clone())
                .collect();
            for gid in ids {
                s.store.groups.change(&gid, now, bump, |g| g.memberships.retain(|m| m.person != id));
            }
            s.store.person_changed(id);
        }
        true
    }
}
