//! Secrets (passwords, tokens) in a type that never prints its value, and how a connector reads
//! the ones its config names ([`load_configured_secret`]: from a file or the environment, with a
//! warning when the file is open to other users).

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
/// for the error message. Neither the secret nor the configured file name or variable name is
/// ever echoed: an operator who put the password itself into `*_file` or `*_env` must not find it
/// in a log.
pub fn load_secret(file: Option<&Path>, env: Option<&str>, what: &str) -> Result<Secret, String> {
    let secret = read_secret(file, env, what)?;
    // An empty secret, or one of several lines, is a file written wrong: said here, not as the
    // server's refusal later.
    if secret.expose().trim().is_empty() {
        return Err(format!("{what}: the secret is empty; put it in the file (or the variable) on one line"));
    }
    if secret.expose().contains(['\n', '\r']) {
        return Err(format!("{what}: the secret holds more than one line; put it on one line"));
    }
    Ok(secret)
}

/// Reads a secret as [`load_secret`] does and warns (on every run) when it came from a file that
/// other users of the machine can read: what a connector's `build` calls for each secret its
/// config names.
pub fn load_configured_secret(file: Option<&Path>, env: Option<&str>, what: &str) -> Result<Secret, String> {
    let secret = load_secret(file, env, what)?;
    if let Some(path) = file {
        warn_if_readable_by_others(path, what);
    }
    Ok(secret)
}

/// Reads a secret file whole, as a key file is (a PEM private key, a service account's JSON key:
/// several lines), and warns when other users of the machine can read it. Its name is never
/// echoed, nor what it holds.
pub fn load_secret_file(path: &Path, what: &str) -> Result<Secret, String> {
    let secret = read_secret(Some(path), None, what)?;
    if secret.expose().trim().is_empty() {
        return Err(format!("{what}: the file is empty"));
    }
    warn_if_readable_by_others(path, what);
    Ok(secret)
}

/// Warns, on every run, that `table` (`[targets.lms]`) turned certificate verification off
/// (`tls_insecure_skip_verify = true`), saying what anyone on the network path can then read
/// (`leaks`: "the token and every account").
pub fn warn_unverified_tls(table: &str, leaks: &str) {
    tracing::warn!(
        "{table} tls_insecure_skip_verify = true: the server certificate is not verified, so anyone on the network \
         path can read {leaks}; give tls_ca_file instead"
    );
}

/// Warns when the secret file `path`, which `what` names, is readable by other users of the
/// machine: they could read the password or token it holds. Only the file's name and mode are
/// shown, never what it holds. The name is a real file's (it was just read), so it is not a
/// secret put into a `*_file` key by mistake. A file that cannot be looked at gets no warning:
/// reading it has already succeeded or failed with its own message.
pub fn warn_if_readable_by_others(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else { return };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o004 != 0 {
        tracing::warn!(
            "{what}: the file {} is readable by every user of this machine (mode {mode:04o}); make it readable by \
             enid's user only: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
}

fn read_secret(file: Option<&Path>, env: Option<&str>, what: &str) -> Result<Secret, String> {
    match (file, env) {
        (Some(path), None) if path.starts_with(crate::connector::CREDENTIALS_DIRECTORY) => Err(format!(
            "{what}: the *_file key names a file in $CREDENTIALS_DIRECTORY, which is not set; systemd sets it for \
             the service (LoadCredential= in the unit). To run enid by hand with this config, set it to a directory \
             that holds those files, such as CREDENTIALS_DIRECTORY=/run/credentials/enid.service while the service \
             runs"
        )),
        (Some(path), None) => match std::fs::read_to_string(path) {
            Ok(text) => Ok(Secret::new(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "{what}: the file named by the *_file key does not exist (if that key holds the secret itself, move \
                 the secret into a file readable only by enid and name the file there)"
            )),
            Err(e) => Err(format!("{what}: the file named by the *_file key cannot be read: {}", e.kind())),
        },
        (None, Some(var)) => {
            let valid_name = !var.is_empty()
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !var.as_bytes()[0].is_ascii_digit();
            if !valid_name {
                return Err(format!(
                    "{what}: the *_env key must name an environment variable (letters, digits and _), not hold the \
                     secret itself; put the secret in a file and use the *_file key"
                ));
            }
            std::env::var(var).map(Secret::new).map_err(|_| {
                format!(
                    "{what}: the environment variable named by the *_env key is not set (if that key holds the \
                     secret itself, put the secret in a file and use the *_file key)"
                )
            })
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
    fn a_secret_in_the_wrong_key_is_never_echoed() {
        for value in ["Hunter2", "hunter 2!", "S3cret_Pa55"] {
            let e = load_secret(None, Some(value), "bind password of [targets.x]").unwrap_err();
            assert!(!e.contains(value) && e.contains("*_env"), "{e}");
            let e = load_secret(Some(Path::new(value)), None, "bind password of [targets.x]").unwrap_err();
            assert!(!e.contains(value) && e.contains("*_file"), "{e}");
        }
    }

    #[test]
    fn an_empty_or_many_lined_secret_is_an_error_before_it_is_sent() {
        let dir = std::env::temp_dir().join(format!("enid-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (text, want) in [("\n", "is empty"), ("  \n", "is empty"), ("tok\nen\n", "more than one line")] {
            let p = dir.join("s");
            std::fs::write(&p, text).unwrap();
            let e = load_secret(Some(&p), None, "secret of [targets.x]").unwrap_err();
            assert!(e.contains(want) && !e.contains("tok"), "{e}");
        }
        std::fs::write(dir.join("s"), "token\n").unwrap();
        assert_eq!(load_secret(Some(&dir.join("s")), None, "x").unwrap().expose(), "token");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_credential_without_its_directory_says_what_systemd_sets() {
        let path = Path::new("$CREDENTIALS_DIRECTORY/ldap-bind-password");
        let e = load_secret(Some(path), None, "bind password of [targets.x]").unwrap_err();
        assert!(e.contains("$CREDENTIALS_DIRECTORY, which is not set") && e.contains("LoadCredential="), "{e}");
    }

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2\n");
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }
}
