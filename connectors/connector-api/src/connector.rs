//! What a connector's config does for enid's registry, so that a connector is one crate and one
//! registration: its config type (the `[sources.<id>]` or `[targets.<id>]` table, less `type`
//! and the policy block, which enid reads for every connector type) checks itself, takes its
//! relative paths relative to the config file, reads its own secrets, and builds the connector.
//!
//! The engine never knows a connector's keys: it hands each config the directory of the config
//! file ([`ConnectorConfig::resolve_paths`]), asks it to [`ConnectorConfig::validate`] (pure, at
//! load) and later to build ([`SourceConnector::build`], [`TargetConnector::build`]: reads
//! secrets, contacts nothing). A target's config also declares its [`Capabilities`] from the
//! settings alone, so `enid check` and config validation know them before anything is built.

use crate::{Capabilities, Source, Target};
use std::path::{Path, PathBuf};

/// What every connector's config does.
pub trait ConnectorConfig: serde::de::DeserializeOwned + Clone + std::fmt::Debug {
    /// Checks what can be checked without a network or a file: URL schemes, DN shapes, numbers
    /// in range, keys that need each other. The message names the key and the fix; the caller
    /// puts the table's name (`[targets.<id>]`) before it.
    fn validate(&self) -> Result<(), String>;

    /// Takes every relative path in the config (files to read, secret files, CA files) relative
    /// to `dir`, the config file's directory, with [`resolve_path`].
    fn resolve_paths(&mut self, dir: &Path);
}

/// A source connector's config.
pub trait SourceConnector: ConnectorConfig {
    /// The source it builds.
    type Source: Source + std::fmt::Debug + Send + Sync;

    /// Builds the source `[sources.<id>]`: reads the secrets its config names
    /// ([`crate::secret::load_configured_secret`]) and warns about settings that weaken it (no
    /// TLS verification); contacts nothing. The message says what is wrong and the fix.
    fn build(&self, id: &str) -> Result<Self::Source, String>;
}

/// A target connector's config.
pub trait TargetConnector: ConnectorConfig {
    /// The target it builds.
    type Target: Target + std::fmt::Debug + Send + Sync;

    /// What the target declares, from the settings alone (no IO). What it does not declare
    /// takes [`Capabilities::default`], the conservative reading.
    fn capabilities(&self) -> Capabilities;

    /// Why the target's policy may not set or remove `attr`, when it may not (the attribute
    /// that names an entry, one the connector sets itself). The owner attribute is refused by
    /// enid for every target; by default nothing else is.
    fn fixed_attribute(&self, _attr: &str) -> Option<&'static str> {
        None
    }

    /// Builds the target `[targets.<id>]`: reads the secrets its config names
    /// ([`crate::secret::load_configured_secret`]) and warns about settings that weaken it (no
    /// TLS verification); contacts nothing. The message says what is wrong and the fix.
    fn build(&self, id: &str) -> Result<Self::Target, String>;
}

/// How a config names a file that systemd hands the service (`LoadCredential=` in the unit):
/// `"$CREDENTIALS_DIRECTORY/ldap-bind-password"`. The directory is the service's own and known
/// only from the environment, so the config cannot name it otherwise.
pub const CREDENTIALS_DIRECTORY: &str = "$CREDENTIALS_DIRECTORY";

/// Makes `path` relative to `dir` when it is relative; an absolute path stays as it is. A path
/// that begins with [`CREDENTIALS_DIRECTORY`] is taken from the environment variable of that
/// name instead; when it is unset (enid run by hand, not by systemd) the path stays as written,
/// and reading the file says why ([`crate::load_secret`]).
pub fn resolve_path(dir: &Path, path: &mut PathBuf) {
    resolve_path_in(dir, path, std::env::var_os("CREDENTIALS_DIRECTORY"));
}

/// [`resolve_path`] with the value of `$CREDENTIALS_DIRECTORY` given (tests).
fn resolve_path_in(dir: &Path, path: &mut PathBuf, credentials: Option<std::ffi::OsString>) {
    if let Ok(name) = path.strip_prefix(CREDENTIALS_DIRECTORY) {
        if let Some(credentials) = credentials.filter(|c| !c.is_empty()) {
            *path = Path::new(&credentials).join(name);
        }
        return;
    }
    if path.is_relative() {
        *path = dir.join(&*path);
    }
}

/// [`resolve_path`] for a key that may be left out.
pub fn resolve_optional_path(dir: &Path, path: &mut Option<PathBuf>) {
    if let Some(p) = path {
        resolve_path(dir, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_taken_from_the_config_files_directory() {
        let dir = Path::new("/etc/enid");
        let mut p = PathBuf::from("ldap.secret");
        resolve_path(dir, &mut p);
        assert_eq!(p, Path::new("/etc/enid/ldap.secret"));
        let mut p = PathBuf::from("/run/secrets/ldap");
        resolve_path(dir, &mut p);
        assert_eq!(p, Path::new("/run/secrets/ldap"));
        let mut p = Some(PathBuf::from("ca.pem"));
        resolve_optional_path(dir, &mut p);
        assert_eq!(p.as_deref(), Some(Path::new("/etc/enid/ca.pem")));
        let mut none: Option<PathBuf> = None;
        resolve_optional_path(dir, &mut none);
        assert_eq!(none, None);
    }

    #[test]
    fn a_path_in_the_credentials_directory_is_taken_from_the_environment_or_left_as_written() {
        let dir = Path::new("/etc/enid");
        let mut p = PathBuf::from("$CREDENTIALS_DIRECTORY/ldap-bind-password");
        resolve_path_in(dir, &mut p, Some("/run/credentials/enid.service".into()));
        assert_eq!(p, Path::new("/run/credentials/enid.service/ldap-bind-password"));
        // Unset or empty: never taken relative to the config file, where a stray file could be.
        for unset in [None, Some("".into())] {
            let mut p = PathBuf::from("$CREDENTIALS_DIRECTORY/ldap-bind-password");
            resolve_path_in(dir, &mut p, unset);
            assert_eq!(p, Path::new("$CREDENTIALS_DIRECTORY/ldap-bind-password"));
        }
        // Only the whole first component: a file whose name merely begins so is an ordinary one.
        let mut p = PathBuf::from("$CREDENTIALS_DIRECTORY_OLD/x");
        resolve_path_in(dir, &mut p, Some("/run/c".into()));
        assert_eq!(p, Path::new("/etc/enid/$CREDENTIALS_DIRECTORY_OLD/x"));
    }
}
