//! The fence: until when this process may still send anything to a target.
//!
//! A state kept in PostgreSQL is held by a lease that another node takes over once it expires.
//! A node that can no longer renew its lease (its database connection cut) must stop sending
//! before the lease can pass, or two nodes would write to one target at once. The engine runs an
//! apply inside [`scope`], with a function that says until when (on this process's monotonic
//! clock) the lease is certainly still its own. Every connector calls [`check`] before each
//! request it sends, caps each request's timeout with [`cap`] (no request outlasts the lease),
//! and ends a wait before a retry (a backoff step, a `Retry-After`) that would end past the
//! fence with [`outlasts`] instead of waiting. Outside a scope (a SQLite state, a test) there
//! is no fence and all three change nothing.

use crate::TargetError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Until when sending is certainly allowed; `None` once it no longer is (the lease was lost).
pub type Deadline = Arc<dyn Fn() -> Option<Instant> + Send + Sync>;

tokio::task_local! {
    static FENCE: Deadline;
}

/// Runs `f` with the fence `deadline` (what [`check`], [`cap`] and [`outlasts`] read inside it).
pub async fn scope<F: Future>(deadline: Deadline, f: F) -> F::Output {
    FENCE.scope(deadline, f).await
}

/// The time left before the fence: `None` without a fence, zero once it has passed.
pub fn remaining() -> Option<Duration> {
    FENCE.try_with(|d| d().map_or(Duration::ZERO, |until| until.saturating_duration_since(Instant::now()))).ok()
}

/// The error every operation gets once the fence has passed.
pub fn fenced() -> TargetError {
    TargetError::unavailable(
        "not sent: this node can no longer confirm its lease on the state (its database connection is lost, or \
         another node took over); the node that holds the lease carries on",
    )
}

/// Whether a request may still be sent now.
pub fn check() -> Result<(), TargetError> {
    match remaining() {
        Some(left) if left.is_zero() => Err(fenced()),
        _ => Ok(()),
    }
}

/// `timeout`, shortened so that a request sent now ends before the fence.
pub fn cap(timeout: Duration) -> Duration {
    remaining().map_or(timeout, |left| timeout.min(left))
}

/// Whether a wait of `wait` (before trying again) would end past the fence: then the request
/// ends now with its failure instead.
pub fn outlasts(wait: Duration) -> bool {
    remaining().is_some_and(|left| wait >= left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until(t: Option<Instant>) -> Deadline {
        Arc::new(move || t)
    }

    #[tokio::test]
    async fn without_a_scope_there_is_no_fence() {
        assert_eq!(remaining(), None);
        assert!(check().is_ok());
        assert_eq!(cap(Duration::from_secs(30)), Duration::from_secs(30));
        assert!(!outlasts(Duration::from_secs(3600)));
    }

    #[tokio::test]
    async fn inside_a_scope_requests_are_capped_and_stop_at_the_fence() {
        let soon = Instant::now() + Duration::from_secs(5);
        scope(until(Some(soon)), async {
            assert!(check().is_ok());
            assert!(cap(Duration::from_secs(30)) <= Duration::from_secs(5));
            assert_eq!(cap(Duration::from_secs(1)), Duration::from_secs(1));
            assert!(outlasts(Duration::from_secs(6)));
            assert!(!outlasts(Duration::from_secs(1)));
        })
        .await;
        scope(until(Some(Instant::now())), async {
            assert!(check().is_err());
            assert_eq!(cap(Duration::from_secs(30)), Duration::ZERO);
        })
        .await;
        scope(until(None), async {
            let e = check().unwrap_err();
            assert!(e.stops_target() && e.to_string().contains("lease"), "{e}");
        })
        .await;
    }
}
