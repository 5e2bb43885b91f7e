//! `enid keys create`: makes the installation's two key files at install time, before the first
//! run needs them, so that they can be backed up (and handed to the service) from the start.
//!
//! The id key (`[identity] id_key_file`) shapes every identity id; the password key (`[state]
//! password_key_file`) seals first passwords until they are handed out. A key file that exists
//! is never overwritten, and one that the state database records but that is missing is never
//! made afresh: a new key in its place would give everyone new ids, or leave the kept passwords
//! sealed for good. Only paths and fingerprints leave this module, never key material.

use super::EngineError;
use crate::config::Config;
use crate::store::{StateStore, Store};
use std::path::PathBuf;

/// One key file after [`create_keys`].
#[derive(Debug, Clone)]
pub struct KeyFile {
    /// What the key is, for messages: "id key file" or "password key file".
    pub what: &'static str,
    pub path: PathBuf,
    /// The key's fingerprint ([`crate::core::identity::IdKey::fingerprint`]), which tells keys
    /// apart without revealing them.
    pub fingerprint: String,
    /// Made now; otherwise it was there already and is left as it was (made owner-only when
    /// found looser).
    pub created: bool,
}

/// Makes whichever of the two key files is missing (owner-only) and reads the other; each
/// key's outcome separately, the id key's first. Reads the state database only if it exists (it
/// is never created here), to refuse making a key the state was built with.
pub async fn create_keys(config: &Config) -> Vec<Result<KeyFile, EngineError>> {
    // A PostgreSQL state is always read (its database exists, or the error says so).
    let state = if config.state.file().is_none_or(|p| p.exists()) {
        match Store::open_config(&config.state).await {
            Ok(s) => Some(s),
            Err(e) => return vec![Err(EngineError::Store(e))],
        }
    } else {
        None
    };
    let recorded = |key: &'static str| {
        let state = state.clone();
        async move {
            match state {
                Some(s) => s.meta(key).await.map(|v| v.filter(|f| !f.is_empty())),
                None => Ok(None),
            }
        }
    };
    let shown = state.as_ref().map(|s| s.path().to_string()).unwrap_or_default();
    let id = async {
        let path = config.identity.id_key_path();
        let recorded = recorded("id_key_fingerprint").await?;
        let key = KeyFile::make(&path, "id key file", "New identity ids depend on it", recorded.is_none())
            .map_err(EngineError::IdKey)?;
        check(&key, recorded.as_deref(), &shown).map_err(EngineError::IdKey)?;
        Ok(key)
    };
    let password = async {
        let path = config.state.password_key_path();
        let recorded = recorded(super::passwords::PASSWORD_KEY_FINGERPRINT).await?;
        // As the engine decides when it first needs the key: a recorded key matters only while
        // first passwords sealed with it are kept.
        let kept = match (&recorded, &state) {
            (Some(_), Some(s)) => s.kept_passwords().await?,
            _ => 0,
        };
        let why = format!("{kept} first passwords kept for the hand-out are sealed with it");
        let key = KeyFile::make(&path, "password key file", &why, kept == 0).map_err(EngineError::Passwords)?;
        if kept > 0 {
            check(&key, recorded.as_deref(), &shown).map_err(EngineError::Passwords)?;
        }
        Ok(key)
    };
    vec![id.await, password.await]
}

impl KeyFile {
    fn make(path: &std::path::Path, what: &'static str, why: &str, may_create: bool) -> Result<KeyFile, String> {
        let loaded = super::idkey::load_named(path, may_create, what, why)?;
        Ok(KeyFile { what, path: path.to_path_buf(), fingerprint: loaded.key.fingerprint(), created: loaded.created })
    }
}

/// An existing key that is not the one the state recorded is an error now rather than at the
/// first run.
fn check(key: &KeyFile, recorded: Option<&str>, state: &str) -> Result<(), String> {
    match recorded {
        Some(r) if r != key.fingerprint => Err(format!(
            "{} {} is not the key state database {} was built with (fingerprint {}, expected {r}); restore the \
             right file from your backup",
            key.what,
            key.path.display(),
            state,
            key.fingerprint
        )),
        _ => Ok(()),
    }
}
