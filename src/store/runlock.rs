//! One applying run at a time per state database.
//!
//! `apply` and `adopt` take an exclusive lock on `<state path>.lock` (an OS file lock, so it is
//! released when the process ends, however it ends) before they read anything. A second run
//! finds the lock taken and stops with the pid and start time the holder wrote into the file.
//! `plan`, `log` and `explain` only read, and take no lock.

use chrono::{DateTime, Utc};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock of one run; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    /// Held open for the lock's lifetime: closing the file releases the lock.
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds it: wait for it to finish.
    #[error(
        "another run ({holder}) is in progress on state database {state}; wait for it to finish (the lock is \
         {lock})"
    )]
    Busy { holder: String, state: String, lock: String },
    /// The lock file cannot be created or locked: fix the permissions of the state directory.
    #[error("cannot lock {lock}: {reason}")]
    Io { lock: String, reason: String },
}

/// The lock file of a state database: beside the real file, whatever symlinks lead to it, so
/// two configs reaching one state through different paths share one lock.
pub fn lock_path(state: &Path) -> PathBuf {
    let real = std::fs::canonicalize(state).unwrap_or_else(|_| state.to_path_buf());
    let mut name = real.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    real.with_file_name(name)
}

impl RunLock {
    /// Takes the lock of the state database at `state` for `command`, without waiting.
    pub fn acquire(state: &Path, command: &str, now: DateTime<Utc>) -> Result<RunLock, LockError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = lock_path(state);
        let io = |e: std::io::Error| LockError::Io { lock: path.display().to_string(), reason: e.to_string() };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Busy {
                    holder: if holder.is_empty() {
                        "a process that has not said who it is".into()
                    } else {
                        holder.into()
                    },
                    state: state.display().to_string(),
                    lock: path.display().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let who = format!(
            "pid {}, `enid {command}` started {}",
            std::process::id(),
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(who.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(RunLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_state_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().with_timezone(&Utc);
        let first = RunLock::acquire(&state, "apply", now).unwrap();
        let err = RunLock::acquire(&state, "apply", now).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains("2026-11-23T10:00:00Z"), "{err}");
        drop(first);
        RunLock::acquire(&state, "adopt", now).unwrap();
    }
}
