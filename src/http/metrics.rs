//! `GET /metrics`: Prometheus text (OpenMetrics) through `prometheus-client`, read from the
//! state at each scrape, so it counts every run however it started (the service, the CLI) and
//! survives restarts: runs by result, operations by target, action and result, the last
//! successful run per source and target, the operations a held run waits with, and how long
//! the newest run took. No label holds a person, a username or a school unit.

use super::{ApiError, ApiState};
use crate::engine::Principal;
use crate::store::StateStore;
use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(&'static str, String)>;

/// Seconds since the epoch of an RFC 3339 time the state wrote; `None` for one that does not read.
fn seconds(t: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.timestamp() as f64)
}

/// An admin's token only: the counts span every school unit.
pub(super) async fn metrics(
    State(state): State<Arc<ApiState>>,
    Extension(who): Extension<Principal>,
) -> Result<Response, ApiError> {
    super::admin_only(&who)?;
    let engine = state.engine();
    let m = engine.store().metrics().await.map_err(crate::engine::EngineError::from)?;
    let newest = engine.runs(1, &crate::engine::Viewer::admin()).await?;

    let mut registry = Registry::with_prefix("enid");
    let runs = Family::<Labels, Gauge>::default();
    for (status, n) in &m.runs {
        runs.get_or_create(&vec![("result", status.clone())]).set(*n);
    }
    registry.register("runs", "Runs recorded in the state, by how they ended", runs);
    let ops = Family::<Labels, Gauge>::default();
    for (target, action, result, n) in &m.operations {
        ops.get_or_create(&vec![("target", target.clone()), ("action", action.clone()), ("result", result.clone())])
            .set(*n);
    }
    registry.register("operations", "Operations logged, by target, action and result", ops);
    let last = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (source, at) in &m.source_success {
        if let Some(s) = seconds(at) {
            last.get_or_create(&vec![("source", source.clone())]).set(s);
        }
    }
    for (target, at) in &m.target_success {
        if let Some(s) = seconds(at) {
            last.get_or_create(&vec![("target", target.clone())]).set(s);
        }
    }
    registry.register(
        "last_success_timestamp_seconds",
        "When the last applied read of a source, or the last run that ended ok with operations on a target, finished",
        last,
    );
    let held = Gauge::<i64>::default();
    let duration = Gauge::<f64, AtomicU64>::default();
    if let Some(run) = newest.first() {
        if run.run.status == "held" {
            held.set(run.tally.as_ref().map(|t| t.planned.values().sum::<usize>()).unwrap_or(0) as i64);
        }
        if let (Some(start), Some(end)) =
            (seconds(&run.run.started_at), run.run.finished_at.as_deref().and_then(seconds))
        {
            duration.set((end - start).max(0.0));
        }
    }
    registry.register("held_operations", "Operations of the newest run that wait for an approval (it was held)", held);
    registry.register("last_run_duration_seconds", "How long the newest run took", duration);
    // Two nodes on one PostgreSQL state: which one leads.
    let role = state.handle.status.borrow().role.clone();
    if role != crate::daemon::Role::Single {
        let leader = Family::<Labels, Gauge>::default();
        leader
            .get_or_create(&vec![("node", crate::daemon::node_name())])
            .set(i64::from(role == crate::daemon::Role::Leader));
        registry.register(
            "leader",
            "1 on the node that holds the state's lease (it runs and sends), 0 on one that waits",
            leader,
        );
    }

    let mut text = String::new();
    encode(&mut text, &registry).map_err(|e| ApiError::Internal(format!("metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}
