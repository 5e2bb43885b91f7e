//! The SQLite state on disk: the database file and its backups are readable by their owner
//! only (they hold civic numbers), and a missing directory is never created.

use crate::store::files::{owner_only_file, warn_if_writable_by_others};
use std::path::Path;

/// Makes sure the state file at `path` can be opened: its directory must exist (a typo in
/// `[state] path` must not start a fresh, empty state beside the real one), and the file is
/// made owner-only ([`owner_only_file`]). A directory other users may write to gets a warning.
/// Returns whether it created the file.
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
    warn_if_writable_by_others(dir, "the state directory");
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
