//! Files that hold secrets or civic numbers (the state database, its backups, the id key) are
//! readable by their owner only: created so, and made so when found looser. The state directory is
//! the operator's: enid warns when other users can write to it, on every run, and leaves it as it
//! is (so do the connectors about the secret files their config names:
//! `connector_api::secret::load_configured_secret`).

use std::path::Path;

/// Makes sure `path` exists as a file readable by its owner only: creates it empty (mode 0600)
/// when missing, and takes group and other permissions away from an existing one. Returns
/// whether it created the file.
pub fn owner_only_file(path: &Path) -> Result<bool, String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if !meta.is_file() {
                return Err(format!("{} is not a file", path.display()));
            }
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                    format!("{} is readable by others and cannot be made owner-only: {e}", path.display())
                })?;
                tracing::warn!(path = %path.display(), "the file was readable by others; it is now owner-only (0600)");
            }
            Ok(false)
        }
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// Warns (on every run) when the directory `dir`, which `what` names, is writable by other users
/// of the machine: they could put their own file where enid keeps its state, its lock or its
/// backups. A directory that cannot be looked at gets no warning (opening the state says why).
pub fn warn_if_writable_by_others(dir: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(dir) else { return };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        tracing::warn!(
            "{what} {} is writable by every user of this machine (mode {mode:04o}): another user could replace \
             the state database or its lock files; chmod o-w {} (or keep the state in a directory of enid's own)",
            dir.display(),
            dir.display()
        );
    }
}
