//! `$batch`: account operations of different users sent together (at most 20 a request), each
//! sub-response read on its own, and those Graph answered 429 or 503 sent again after their own
//! `Retry-After`, within the request budget.

use crate::{EntraTarget, into_target};
use connector_api::{OpOutcome, TargetError, TargetOp};
use connector_http::{Method, Request};
use serde_json::{Value as Json, json};
use std::time::{Duration, Instant};

impl EntraTarget {
    /// Operations of different accounts in `$batch` requests; a sub-request answered 429 (or
    /// 503) is sent again after its `Retry-After`, within the request budget.
    pub(crate) async fn batch(&self, ops: &[TargetOp]) -> Vec<Result<OpOutcome, TargetError>> {
        let mut out: Vec<Option<Result<OpOutcome, TargetError>>> = (0..ops.len()).map(|_| None).collect();
        let mut pending: Vec<(usize, Json)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            // A create whose person has a deleted user is a restore: two requests, alone.
            if let TargetOp::Create { account } = op {
                match self.deleted_with(account).await {
                    Ok(Some(old)) => {
                        out[i] = Some(self.restore(&old, account).await);
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        out[i] = Some(Err(e));
                        continue;
                    }
                }
            }
            match self.request_of(op) {
                Ok(Some((method, path, body, _))) => {
                    let mut r = json!({"id": i.to_string(), "method": method.as_str(), "url": format!("/{path}")});
                    if let Some(b) = body {
                        r["body"] = b;
                        r["headers"] = json!({"Content-Type": "application/json"});
                    }
                    pending.push((i, r));
                }
                Ok(None) => out[i] = Some(self.group_op(op).await),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        let started = Instant::now();
        let budget = Duration::from_secs(self.config.max_wait_secs);
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let body = json!({"requests": pending.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()});
            let what = format!("send {} changes in one $batch", pending.len());
            let req = Request::new(Method::POST, "$batch", what.clone()).json(body);
            let answer = match self.http.send(&req).await {
                Ok(a) => a.body,
                Err(e) => {
                    // The batch as a whole failed: every request in it did.
                    let text = e.to_string();
                    let e = into_target(e);
                    for (i, _) in pending.drain(..) {
                        out[i] = Some(Err(e.retold(format!("{} ({text})", describe(&ops[i])))));
                    }
                    break;
                }
            };
            let responses: Vec<Json> = answer.get("responses").and_then(Json::as_array).cloned().unwrap_or_default();
            let mut again = Vec::new();
            let mut wait = Duration::ZERO;
            for (i, r) in pending.drain(..) {
                let Some(resp) = responses.iter().find(|x| x.get("id").and_then(Json::as_str) == Some(&i.to_string()))
                else {
                    out[i] = Some(Err(TargetError::unavailable(format!(
                        "{}: the $batch answer does not say",
                        describe(&ops[i])
                    ))));
                    continue;
                };
                let status = resp.get("status").and_then(Json::as_u64).unwrap_or(0) as u16;
                let body = resp.get("body").cloned().unwrap_or(Json::Null);
                if (200..300).contains(&status) {
                    out[i] = Some(Self::outcome(&ops[i], &body));
                    continue;
                }
                if status == 404 && matches!(ops[i], TargetOp::Delete { .. }) {
                    out[i] = Some(Ok(OpOutcome::Deleted));
                    continue;
                }
                let retry_after =
                    header(resp, "retry-after").and_then(|s| s.trim().parse::<f64>().ok()).map(Duration::from_secs_f64);
                if status == 429 || status == 503 || status == 504 {
                    let w = retry_after.unwrap_or(Duration::from_secs(1 << attempt.min(4)));
                    if attempt < self.config.max_attempts
                        && started.elapsed() + w <= budget
                        && !connector_api::fence::outlasts(w)
                    {
                        wait = wait.max(w);
                        again.push((i, r));
                        continue;
                    }
                }
                let bytes = body.to_string();
                let e = connector_http::HttpFailure::from_status(status, retry_after, bytes.as_bytes())
                    .with(&describe(&ops[i]));
                out[i] = Some(Err(into_target(e)));
            }
            if !again.is_empty() {
                tracing::debug!(
                    requests = again.len(),
                    wait_ms = wait.as_millis() as u64,
                    "$batch: throttled, waiting"
                );
                tokio::time::sleep(wait).await;
            }
            pending = again;
        }
        out.into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| Err(TargetError::unavailable(format!("{}: not sent", describe(&ops[i])))))
            })
            .collect()
    }
}

/// An operation in a message.
fn describe(op: &TargetOp) -> String {
    match op {
        TargetOp::Create { account } => format!("create user {}", account.id),
        TargetOp::Rename { key, .. } => format!("rename user {key}"),
        TargetOp::Update { key, .. } => format!("update user {key}"),
        TargetOp::Disable { key } => format!("disable user {key}"),
        TargetOp::Enable { key } => format!("enable user {key}"),
        TargetOp::Delete { key } => format!("delete user {key}"),
        other => format!("{:?}", other.key()),
    }
}

/// A header of a `$batch` sub-response, by name without case.
fn header<'a>(resp: &'a Json, name: &str) -> Option<&'a str> {
    resp.get("headers")?.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?.1.as_str()
}
