//! The installation's id key file (`[identity] id_key_file`): read it, or create it for a new
//! installation.
//!
//! The key shapes every new identity id (see [`crate::core::identity::IdKey`]). It lives outside the
//! state database, so a copy of the state alone does not let anyone turn ids back into source
//! keys, and a lost state can be rebuilt by `enid adopt` as long as the key survives. The state
//! database remembers the key's fingerprint: a different or missing key for a state that was
//! built with one stops enid instead of silently giving new persons ids in another scheme.

use crate::core::identity::IdKey;
use std::path::Path;

/// What [`load`] found.
#[derive(Debug)]
pub struct Loaded {
    pub key: IdKey,
    /// The file did not exist and was created now.
    pub created: bool,
}

/// Reads the key at `path`: 64 hexadecimal digits (surrounding whitespace ignored). When the file
/// does not exist and `may_create` holds, writes a new random key there, readable by its owner
/// only.
pub fn load(path: &Path, may_create: bool) -> Result<Loaded, String> {
    load_named(path, may_create, "id key file", "New identity ids depend on it")
}

/// [`load`] for another 32-byte key file (the password key): `what` names it in messages, `why`
/// says what depends on it.
pub fn load_named(path: &Path, may_create: bool, what: &str, why: &str) -> Result<Loaded, String> {
    if path.starts_with(connector_api::connector::CREDENTIALS_DIRECTORY) {
        // Never made or read at a literal "$CREDENTIALS_DIRECTORY/..." path.
        return Err(format!(
            "{what} {}: the config names a file in $CREDENTIALS_DIRECTORY, which is not set; systemd sets it for \
             the service (LoadCredential=); by hand, run with CREDENTIALS_DIRECTORY=/run/credentials/enid.service",
            path.display()
        ));
    }
    match std::fs::read_to_string(path) {
        Ok(text) => {
            // With the key, ids of persons whose source key is a civic number can be turned
            // back into the number: owner-only, like the state.
            crate::store::files::owner_only_file(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
            parse(text.trim())
                .map(|key| Loaded { key, created: false })
                .map_err(|e| format!("{what} {}: {e}; restore the file from your backup", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| format!("{what} {}: the OS random source failed: {e}", path.display()))?;
            if write_new(path, &crate::core::id::hex(&bytes), what)? {
                Ok(Loaded { key: IdKey::new(bytes), created: true })
            } else {
                load_named(path, false, what, why) // another enid made it a moment ago
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{what} {} is missing, but the state database was built with it (fingerprint recorded); restore the \
             file from your backup. {why}",
            path.display()
        )),
        Err(e) => Err(format!("{what} {}: cannot read: {e}", path.display())),
    }
}

fn parse(text: &str) -> Result<IdKey, String> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("not an id key (64 hexadecimal digits expected)".into());
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(IdKey::new(bytes))
}

/// Writes a new key file atomically: to a temporary file first, then linked into place, so a
/// second enid starting at the same moment either links first or reads the whole key. Returns
/// false when another process's key got there first.
fn write_new(path: &Path, text: &str, what: &str) -> Result<bool, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("new-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("{what} {}: cannot create: {e}", path.display()))?;
        f.write_all(format!("{text}\n").as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("{what} {}: cannot write: {e}", path.display()))?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(format!("{what} {}: cannot create: {e}", path.display())),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_key_is_created_owner_only_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        let first = load(&path, true).unwrap();
        assert!(first.created);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = load(&path, true).unwrap();
        assert!(!again.created);
        assert_eq!(first.key.fingerprint(), again.key.fingerprint());
    }

    #[test]
    fn a_missing_key_is_an_error_when_it_may_not_be_created_and_a_bad_one_always() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        assert!(load(&path, false).unwrap_err().contains("restore the file"));
        std::fs::write(&path, "hunter2").unwrap();
        let e = load(&path, true).unwrap_err();
        assert!(e.contains("not an id key") && !e.contains("hunter2"), "{e}");
    }
}
