//! Secrets (passwords, tokens) in a type that never prints its value.

use std::fmt;
use std::path::Path;

/// A secret value read from a file or the environment. `Debug` and `Display` print a placeholder,
/// so a secret cannot reach a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value. Trailing newlines (as left by `echo > file`) are removed.
    pub fn new(value: impl Into<String>) -> Self {
        let mut value = value.into();
        while value.ends_with('\n') || value.ends_with('\r') {
            value.pop();
        }
        Secret(value)
    }

    /// The secret itself, for the one call that must send it (a bind, an auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Reads a secret from a file (preferred) or an environment variable. `what` names the setting
/// for the error message, which never contains the secret.
pub fn load_secret(file: Option<&Path>, env: Option<&str>, what: &str) -> Result<Secret, String> {
    match (file, env) {
        (Some(path), None) => std::fs::read_to_string(path)
            .map(Secret::new)
            .map_err(|e| format!("{what}: cannot read secret file {}: {e}", path.display())),
        (None, Some(var)) => {
            std::env::var(var).map(Secret::new).map_err(|_| format!("{what}: environment variable {var} is not set"))
        }
        (Some(_), Some(_)) => Err(format!("{what}: set either the *_file or the *_env key, not both")),
        (None, None) => Err(format!("{what}: no secret configured; set the *_file key")),
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2\n");
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }
}
