//! The run lock on PostgreSQL: a lease row (`leases`) with its holder and expiry, kept by the
//! database server's clock. One holder at a time; the holder renews it while it works; a holder
//! that dies (however it dies) loses it when it expires, and at once to a process on the same
//! machine that finds the holder's pid gone.
//!
//! A session advisory lock would not do: the server frees it when it notices the connection
//! dropped, which may be before the old holder notices anything and stops. So the holder also
//! keeps, on its own monotonic clock, the moment until which its lease is certainly still its
//! own ([`Lease::confirmed`]): the last renewal's start plus the lease time, less a margin. It
//! must not send anything to a target after that moment; the server will not give the lease to
//! anyone else before it.

use super::PgStore;
use crate::store::StoreError;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The name of the run lock's lease row.
pub const RUN_LEASE: &str = "run";

/// Who holds a lease, as written to its row: `host:pid:nonce`, and a readable tail.
#[derive(Debug, Clone)]
struct Holder {
    id: String,
    host: String,
}

impl Holder {
    fn this_process() -> Holder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown-host".into());
        let pid = std::process::id();
        let mut nonce = [0u8; 6];
        let _ = getrandom::fill(&mut nonce);
        let nonce: String = crate::core::id::hex(&nonce).into();
        Holder { id: format!("{host}:{pid}:{}:{nonce}", pid_scope()), host }
    }
}

/// Where a pid means one process: this boot of this kernel, and this pid namespace (containers
/// with the host's name have their own pids). Empty when it cannot be read: then no holder is
/// ever taken for dead.
pub(crate) fn pid_scope() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|b| b.trim().replace('-', ""));
    let ns = std::fs::read_link("/proc/self/ns/pid").map(|l| l.display().to_string());
    match (boot, ns) {
        (Ok(boot), Ok(ns)) => {
            let ns: String = ns.chars().filter(char::is_ascii_digit).collect();
            format!("{}.{ns}", &boot[..boot.len().min(12)])
        }
        _ => String::new(),
    }
}

/// Whether the holder written as `id` (`host:pid:scope:nonce (...)`) is a process of this
/// machine's boot and pid namespace that has ended.
fn holder_is_dead_here(id: &str, host: &str) -> bool {
    let mut parts = id.splitn(4, ':');
    let (Some(h), Some(pid), Some(scope)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let here = pid_scope();
    h == host
        && !here.is_empty()
        && scope == here
        && pid.parse::<u32>().is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Why a lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another process holds it: wait for it to finish (or for its lease to expire).
    #[error(
        "another run ({holder}) is in progress on state database {state}; wait for it to finish (its lease runs until {until} unless renewed)"
    )]
    Busy { holder: String, state: String, until: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A lease this process holds; renewed in the background until dropped (or lost).
#[derive(Debug)]
pub struct Lease {
    inner: Arc<Inner>,
    renewer: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Inner {
    store: PgStore,
    name: String,
    holder: Holder,
    fence: i64,
    ttl: Duration,
    /// Until when (this process's monotonic clock) the lease is certainly this process's.
    confirmed: Mutex<Instant>,
    lost: AtomicBool,
}

/// The margin kept below the lease time, for the two clocks' drift and the renewal's own time.
fn margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(200)).min(ttl / 2)
}

impl Lease {
    /// Takes the lease `name` for `ttl`, or says who holds it. `what` is written with the holder
    /// (`enid apply`), for the message another process shows.
    pub async fn acquire(store: &PgStore, name: &str, what: &str, ttl: Duration) -> Result<Lease, LeaseError> {
        let holder = Holder::this_process();
        let holder_text = format!("{} ({what})", holder.id);
        let started = Instant::now();
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        // A holder on this machine whose process has ended gives the lease up at once.
        let current = sqlx::query_as::<_, (String, String)>(
            "SELECT holder, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM leases
              WHERE name = $1 AND expires_at > now()",
        )
        .bind(name)
        .fetch_optional(store.pool())
        .await;
        let current = store.ctx(current)?;
        let take_over_dead = current.as_ref().is_some_and(|(h, _)| holder_is_dead_here(h, &holder.host));
        let q = sqlx::query_scalar::<_, i64>(
            "INSERT INTO leases (name, holder, acquired_at, expires_at, fence)
             VALUES ($1, $2, now(), now() + $3 * interval '1 millisecond', 1)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at,
                    expires_at = excluded.expires_at, fence = leases.fence + 1
              WHERE leases.expires_at <= now() OR ($4::text IS NOT NULL AND leases.holder = $4)
             RETURNING fence",
        )
        .bind(name)
        .bind(&holder_text)
        .bind(ms)
        .bind(take_over_dead.then(|| current.as_ref().map(|(h, _)| h.clone())).flatten());
        let fence = store.ctx(q.fetch_optional(store.pool()).await)?;
        let Some(fence) = fence else {
            let (holder, until) = current.unwrap_or_else(|| ("a process that just took it".into(), "soon".into()));
            return Err(LeaseError::Busy { holder, state: store.shown.clone(), until });
        };
        let inner = Arc::new(Inner {
            store: store.clone(),
            name: name.to_string(),
            holder: Holder { id: holder_text, ..holder },
            fence,
            ttl,
            confirmed: Mutex::new(started + ttl.saturating_sub(margin(ttl))),
            lost: AtomicBool::new(false),
        });
        let renewer = tokio::spawn(renew(inner.clone()));
        Ok(Lease { inner, renewer })
    }

    /// Until when the lease is certainly this process's (`None` once it is known lost); after
    /// it, send nothing more.
    pub fn confirmed(&self) -> Option<Instant> {
        self.inner.confirmed()
    }

    /// Whether the lease is still certainly held now.
    pub fn holds(&self) -> bool {
        self.confirmed().is_some_and(|until| Instant::now() < until)
    }

    /// The fence an apply under this lease runs inside (`connector_api::fence`).
    pub fn deadline(&self) -> connector_api::fence::Deadline {
        let inner = self.inner.clone();
        Arc::new(move || inner.confirmed())
    }

    /// The fencing token: grows with every new holder of the lease.
    pub fn fence(&self) -> i64 {
        self.inner.fence
    }

    /// Gives the lease up now, where others hold this one too (the service's engines): it is
    /// lost to this process at once (nothing more is sent under it), and free for the next.
    pub async fn give_up(&self) {
        self.inner.lost.store(true, Ordering::SeqCst);
        self.renewer.abort();
        let _ = release(&self.inner).await;
    }

    /// Gives the lease up now (also done, in the background, when dropped).
    pub async fn release(self) {
        self.inner.lost.store(true, Ordering::SeqCst);
        self.renewer.abort();
        let _ = release(&self.inner).await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Lost first: whoever still holds `Inner` (a run's fence) sends nothing more once the row
        // is free for the next holder.
        self.inner.lost.store(true, Ordering::SeqCst);
        self.renewer.abort();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let inner = self.inner.clone();
            handle.spawn(async move {
                let _ = release(&inner).await;
            });
        }
    }
}

impl Inner {
    fn confirmed(&self) -> Option<Instant> {
        if self.lost.load(Ordering::SeqCst) {
            return None;
        }
        Some(*self.confirmed.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

async fn release(inner: &Inner) -> Result<(), sqlx::Error> {
    // Expired, not deleted: the fence keeps growing with every holder.
    sqlx::query("UPDATE leases SET expires_at = now() WHERE name = $1 AND holder = $2 AND fence = $3")
        .bind(&inner.name)
        .bind(&inner.holder.id)
        .bind(inner.fence)
        .execute(inner.store.pool())
        .await
        .map(drop)
}

/// Renews the lease every quarter of its time (from the last renewal that got through) while
/// this process holds it; a failed renewal is tried again every 200 ms. A renewal that fails
/// (the database gone, or the lease taken over) leaves the confirmed time where it was: the
/// holder stops sending when it passes.
async fn renew(inner: Arc<Inner>) {
    let ms = i64::try_from(inner.ttl.as_millis()).unwrap_or(i64::MAX);
    let every = inner.ttl / 4;
    let mut next = Instant::now() + every;
    loop {
        tokio::time::sleep_until(next.into()).await;
        let started = Instant::now();
        // A renewal may take as long as the lease is still certain, no longer.
        let Some(until) = inner.confirmed() else { return };
        let left = until.saturating_duration_since(started).max(Duration::from_millis(50));
        let renewed = tokio::time::timeout(
            left,
            sqlx::query(
                "UPDATE leases SET expires_at = now() + $4 * interval '1 millisecond'
                  WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > now()",
            )
            .bind(&inner.name)
            .bind(&inner.holder.id)
            .bind(inner.fence)
            .bind(ms)
            .execute(inner.store.pool()),
        )
        .await;
        match renewed {
            Ok(Ok(done)) if done.rows_affected() == 1 => {
                *inner.confirmed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    started + inner.ttl.saturating_sub(margin(inner.ttl));
                next = started + every;
            }
            Ok(Ok(_)) => {
                tracing::error!(lease = %inner.name, "the lease on the state was lost (it expired or another node took it); this process sends nothing more");
                inner.lost.store(true, Ordering::SeqCst);
                return;
            }
            // Tried again soon: the lease is still certain until `confirmed`.
            Ok(Err(e)) => {
                tracing::warn!(lease = %inner.name, error = %e, "cannot renew the lease on the state");
                next = Instant::now() + Duration::from_millis(200);
            }
            Err(_) => {
                tracing::warn!(lease = %inner.name, "renewing the lease on the state timed out");
                next = Instant::now() + Duration::from_millis(200);
            }
        }
    }
}
