//! The SQLite state on disk: the database file and its backups are readable by their owner
//! only (they hold civic numbers), and a missing directory is never created.

use std::path::Path;

/// Makes sure the state file at `path` can be opened: its directory must exist (a typo in
/// `[state] path` must not start a fresh, empty state beside the real one), and the file is
/// made owner-only ([`owner_only_file`]). Returns whether it created the file.
pub(super) fn prepare_state_file(path: &Path) -> Result<bool, String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(format!(
            "the directory {} does not exist; fix [state] path, or create the directory (owner only: \
             `install -d -m 0700 {}`)",
            dir.display(),
            dir.display()
        ));
    }
    owner_only_file(path)
}

/// Makes sure `dest` can take a backup: it must not exist or be empty, and is created
/// owner-only. Returns the path as SQLite takes it.
pub(super) fn prepare_backup_file(dest: &Path) -> Result<&str, String> {
    if std::fs::metadata(dest).is_ok_and(|m| m.len() > 0) {
        return Err(format!("{} exists and is not empty; choose a new file name", dest.display()));
    }
    owner_only_file(dest)?;
    dest.to_str().ok_or_else(|| format!("{} is not valid UTF-8", dest.display()))
}

/// Makes sure `path` exists as a file readable by its owner only: creates it empty (mode 0600)
/// when missing, and takes group and other permissions away from an existing one. Returns
/// whether it created the file.
fn owner_only_file(path: &Path) -> Result<bool, String> {
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
                tracing::warn!(path = %path.display(), "the state file was readable by others; it is now owner-only (0600)");
            }
            Ok(false)
        }
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}
