//! What every connector error shares: the boxed underlying error kept as `source`, and the one
//! way to show an error with its causes on one line.
//!
//! Connector errors ([`crate::TargetError`], [`crate::SourceError`]) keep the lower-level error
//! (an I/O error, a TLS failure, a protocol library's error) as their `source`, so a caller can
//! walk the chain or downcast it; their own `Display` names the operation and the fix. Whoever
//! turns an error into text for a person (a log line, the op log, `enid check`) uses
//! [`one_line`], so the cause is never lost.

use std::error::Error;

/// An underlying error of any kind, kept as the `source` of a connector error.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// The error and its causes on one line, `outer: cause: root cause`. A cause whose text an
/// earlier part already contains is left out, so an error that quotes its source is not shown
/// twice.
pub fn one_line(e: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        next = cause.source();
    }
    parts.join(": ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Outer {
        message: String,
        #[source]
        source: BoxError,
    }

    #[test]
    fn one_line_joins_causes_and_skips_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = Outer { message: "connect to ldap://x".into(), source: Box::new(io) };
        assert_eq!(one_line(&e), "connect to ldap://x: connection refused");
        let io = std::io::Error::other("refused");
        let e = Outer { message: "cannot read a.csv: refused".into(), source: Box::new(io) };
        assert_eq!(one_line(&e), "cannot read a.csv: refused");
    }
}
