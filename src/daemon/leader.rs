//! Two service nodes, one leader (a state in PostgreSQL): each `enid run` tries to take the
//! state's lease (the `run` row, the same lease a CLI run takes); the node that holds it leads,
//! runs and sends, and renews it; the other serves the API and the web page and tries again
//! every third of `[state] lease_for`. When the leader dies, or can no longer reach the database,
//! its lease expires and the other takes it: within `lease_for` and a third of it.
//!
//! A leader that can no longer confirm its lease stops sending before the lease can pass
//! (`connector_api::fence`: every request checks it, none outlasts it), and, once it sees the
//! lease lost, runs nothing more until it takes the lease again. A new leader starts with a full
//! run: whatever the old one left half done converges.
//!
//! Approvals, decisions and sessions are rows in the database, so either node takes them. A run
//! asked of a node that does not lead (an approval on its web page) is written to `meta`
//! (`run_asked`), which the leader reads with the approvals.

use super::{RunNow, ServiceStatus, Shutdown};
use crate::engine::{Engine, Leading};
use crate::store::PgStore;
use crate::store::postgres::lease::{Lease, LeaseError, RUN_LEASE};
use std::sync::Arc;
use std::time::Duration;

/// The `meta` key a node that does not lead writes a run asked of it to.
pub(super) const RUN_ASKED: &str = "run_asked";

/// This node's role, as `/healthz`, `/metrics` and the status say it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The state is a file: this is the only node.
    #[default]
    Single,
    /// This node holds the lease: it runs and sends.
    Leader,
    /// Another node holds the lease: this one waits.
    Follower,
}

/// This node as a lease names it: `host:pid`.
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{host}:{}", std::process::id())
}

/// Takes and keeps the lease for as long as the service runs; tells the engine in force (and
/// every one a reload brings) whose lock its runs go under, and the status who leads.
pub(super) async fn lead(
    pg: PgStore,
    lease_for: Duration,
    mut engines: tokio::sync::watch::Receiver<Arc<Engine>>,
    status: tokio::sync::watch::Sender<ServiceStatus>,
    run_now: tokio::sync::mpsc::UnboundedSender<RunNow>,
    shutdown: Arc<Shutdown>,
) {
    let retry = (lease_for / 3).max(Duration::from_millis(200));
    let mut said_follower: Option<String> = None;
    loop {
        if shutdown.asked() {
            return;
        }
        match Lease::acquire(&pg, RUN_LEASE, "`enid run`", lease_for).await {
            Ok(lease) => {
                let lease = Arc::new(lease);
                tracing::info!(node = %node_name(), fence = lease.fence(), "this node leads: it runs and sends");
                said_follower = None;
                engines.borrow().lead(Leading::Lease(Arc::clone(&lease)));
                status.send_modify(|s| {
                    s.role = Role::Leader;
                    s.leader = Some(node_name());
                });
                // Whatever the node before left half done converges.
                let _ = run_now.send(RunNow { full: true, why: "this node leads now".into() });
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        changed = engines.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            engines.borrow().lead(Leading::Lease(Arc::clone(&lease)));
                        }
                        _ = shutdown.notify.notified() => {}
                    }
                    if shutdown.asked() {
                        // The lease goes with the last run: the process ends right after.
                        return;
                    }
                    if !lease.holds() {
                        tracing::error!(
                            node = %node_name(),
                            "this node can no longer confirm its lease on the state: it sends nothing more and waits \
                             to lead again"
                        );
                        engines.borrow().lead(Leading::Follower("another node (this one lost its lease)".into()));
                        status.send_modify(|s| {
                            s.role = Role::Follower;
                            s.leader = None;
                        });
                        break;
                    }
                }
            }
            Err(LeaseError::Busy { holder, .. }) => {
                if said_follower.as_deref() != Some(holder.as_str()) {
                    tracing::info!(leader = %holder, "another node leads: this one serves the API and waits");
                    said_follower = Some(holder.clone());
                }
                engines.borrow().lead(Leading::Follower(holder.clone()));
                status.send_modify(|s| {
                    s.role = Role::Follower;
                    s.leader = Some(holder);
                });
            }
            Err(LeaseError::Store(e)) => {
                tracing::warn!(error = %e, "cannot reach the state to take the lease; trying again");
                engines.borrow().lead(Leading::Follower("unknown: the state cannot be reached".into()));
                status.send_modify(|s| {
                    s.role = Role::Follower;
                    s.leader = None;
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = shutdown.notify.notified() => return,
        }
    }
}
