//! One applying run at a time per state database: a file lock for SQLite ([`FileLock`]), a
//! lease row for PostgreSQL ([`super::postgres::lease::Lease`]), as [`RunLock`].
//!
//! `apply` and `adopt` take an exclusive lock on `<state path>.lock` (an OS file lock, so it is
//! released when the process ends, however it ends) before they read anything. A second run
//! finds the lock taken and stops with the pid and start time the holder wrote into the file.
//! `plan`, `log` and `explain` only read, and take no lock.
//!
//! The lock file alone is not enough: an operator who deletes it while a run holds it (cleaning
//! up what looks like a stale file) lets the next run create a new file and lock that. So the run
//! also locks the directory that holds the state database, which cannot be deleted while the
//! state is in it. Every state database in one directory therefore shares one lock. Never the
//! database file itself: closing any descriptor of it would drop SQLite's own POSIX locks.

use chrono::{DateTime, Utc};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock of one run, whichever the state's backend; released when dropped.
#[derive(Debug)]
pub enum RunLock {
    File(FileLock),
    Lease(super::postgres::lease::Lease),
    /// A run of the service node that leads: under the node's lease, which outlives the run.
    Led(Led),
}

/// The fence of a service node's lease, held by one of its runs.
#[derive(Clone)]
pub struct Led(pub connector_api::fence::Deadline);

impl std::fmt::Debug for Led {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Led")
    }
}

impl RunLock {
    /// The fence an apply under this lock runs inside: a lease's (PostgreSQL); none for a file
    /// lock, which no other machine can take over.
    pub fn deadline(&self) -> Option<connector_api::fence::Deadline> {
        match self {
            RunLock::File(_) => None,
            RunLock::Lease(lease) => Some(lease.deadline()),
            RunLock::Led(led) => Some(led.0.clone()),
        }
    }

    /// Takes the run lock of `store` for `command`, without waiting. `lease_for`: how long a
    /// PostgreSQL lease lasts unless renewed.
    pub async fn take(
        store: &super::Store,
        command: &str,
        now: DateTime<Utc>,
        lease_for: std::time::Duration,
    ) -> Result<RunLock, LockError> {
        match store {
            super::Store::Sqlite(s) => {
                let state = Path::new(crate::store::StateStore::path(s));
                Ok(RunLock::File(FileLock::acquire_after_own(state, command, now, OWN_RELEASE).await?))
            }
            super::Store::Postgres(s) => {
                match super::postgres::lease::Lease::acquire(
                    s,
                    super::postgres::lease::RUN_LEASE,
                    &format!("`enid {command}`"),
                    lease_for,
                )
                .await
                {
                    Ok(lease) => Ok(RunLock::Lease(lease)),
                    Err(super::postgres::lease::LeaseError::Busy { holder, state, until }) => Err(LockError::Busy {
                        holder,
                        state,
                        lock: format!("the lease row \"run\", held until {until} unless renewed"),
                    }),
                    Err(super::postgres::lease::LeaseError::Store(e)) => {
                        Err(LockError::Io { lock: format!("the lease on {}", e.path), reason: e.message })
                    }
                }
            }
        }
    }
}

/// The file lock of one run on a SQLite state; released when dropped.
#[derive(Debug)]
pub struct FileLock {
    /// Held open for the lock's lifetime: closing the file releases the lock.
    _file: File,
    /// The state's directory, locked too, so that deleting the lock file does not free the lock.
    _dir: File,
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
    /// This node held the lease of a shared state and can no longer confirm it (its database
    /// connection is lost, or another node took over): it writes and sends nothing more.
    #[error(
        "this node can no longer confirm its lease on state database {state} (its database connection is lost, or \
         another node took over): nothing was written or sent, and the node that holds the lease carries on"
    )]
    Lost { state: String },
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

/// How long a lock that this very process was named as holding may take to come free
/// ([`FileLock::acquire_after_own`]).
const OWN_RELEASE: std::time::Duration = std::time::Duration::from_secs(2);

impl FileLock {
    /// [`FileLock::acquire`], waiting up to `wait` while the holder it names is this very
    /// process. A lock this process let go can still be held for a moment: `flock` frees it only
    /// when every descriptor of the file is closed, and a process this one is starting (a
    /// directory server, a command) holds copies of them all between its fork and its exec.
    /// Another process's lock is refused at once, as is this one's after `wait`.
    pub async fn acquire_after_own(
        state: &Path,
        command: &str,
        now: DateTime<Utc>,
        wait: std::time::Duration,
    ) -> Result<FileLock, LockError> {
        let own = format!("pid {}, ", std::process::id());
        let started = std::time::Instant::now();
        loop {
            match FileLock::acquire(state, command, now) {
                Err(LockError::Busy { holder, .. }) if holder.starts_with(&own) && started.elapsed() < wait => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                taken => return taken,
            }
        }
    }

    /// Takes the lock of the state database at `state` for `command`, without waiting.
    pub fn acquire(state: &Path, command: &str, now: DateTime<Utc>) -> Result<FileLock, LockError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = lock_path(state);
        let io = |e: std::io::Error| LockError::Io { lock: path.display().to_string(), reason: e.to_string() };
        let busy = |holder: String| LockError::Busy {
            holder,
            state: state.display().to_string(),
            lock: path.display().to_string(),
        };
        // The directory first: its lock is the one a deleted lock file cannot undo.
        let dir_path = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir = File::open(&dir_path).map_err(|e| LockError::Io {
            lock: dir_path.display().to_string(),
            reason: format!("{e}; enid locks the directory of the state database and must be able to open it"),
        })?;
        match dir.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = match std::fs::read_to_string(&path) {
                    Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
                    Ok(_) => "a process that has not said who it is".into(),
                    Err(_) => deleted_holder(&dir, &path),
                };
                return Err(busy(holder));
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
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
                return Err(busy(if holder.is_empty() {
                    "a process that has not said who it is".into()
                } else {
                    holder.into()
                }));
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
        Ok(FileLock { _file: file, _dir: dir })
    }
}

/// Who holds the directory's lock when the lock file that named them is gone: the pid the kernel
/// lists for it (Linux's `/proc/locks`), or a sentence saying the file was deleted.
fn deleted_holder(dir: &File, lock: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let gone = format!("its lock file {} was deleted while it ran", lock.display());
    let Ok(meta) = dir.metadata() else { return format!("a process ({gone})") };
    // /proc/locks names a file as MAJOR:MINOR:INODE in hex, hex and decimal; st_dev packs major
    // and minor the way glibc's gnu_dev_major/minor unpack them.
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let pid = std::fs::read_to_string("/proc/locks").ok().and_then(|text| {
        text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // "1: FLOCK  ADVISORY  WRITE 1234 08:02:131 0 EOF"; a waiter's line has "->" after the
            // number and is not the holder.
            match fields.as_slice() {
                [_, "FLOCK", _, _, pid, file, ..] if *file == id => Some(pid.to_string()),
                _ => None,
            }
        })
    });
    match pid {
        Some(pid) => format!("pid {pid}; {gone}"),
        None => format!("a process whose pid enid could not find; {gone}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_this_process_lets_go_is_taken_once_free_and_one_it_keeps_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().with_timezone(&Utc);
        // Let go a moment later (as when a started process still held a copy of its files); the
        // wait only bounds a busy machine's delay, the lock is taken as soon as it is free.
        let first = FileLock::acquire(&state, "apply", now).unwrap();
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(150));
            drop(first);
        });
        let second = FileLock::acquire_after_own(&state, "apply", now, std::time::Duration::from_secs(30)).await;
        letting_go.join().unwrap();
        assert!(second.is_ok(), "{second:?}");
        // Kept: refused after the wait, naming this process.
        let (started, wait) = (std::time::Instant::now(), std::time::Duration::from_millis(300));
        let third = FileLock::acquire_after_own(&state, "plan", now, wait).await;
        let Err(LockError::Busy { holder, .. }) = third else { panic!("{third:?}") };
        assert!(holder.starts_with(&format!("pid {}, ", std::process::id())), "{holder}");
        assert!(started.elapsed() >= wait);
    }

    #[test]
    fn a_second_lock_on_the_same_state_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().with_timezone(&Utc);
        let first = FileLock::acquire(&state, "apply", now).unwrap();
        let err = FileLock::acquire(&state, "apply", now).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains("2026-11-23T10:00:00Z"), "{err}");
        drop(first);
        FileLock::acquire(&state, "adopt", now).unwrap();
    }

    #[test]
    fn deleting_the_lock_file_does_not_free_the_lock_and_the_holder_is_still_named() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().with_timezone(&Utc);
        let first = FileLock::acquire(&state, "apply", now).unwrap();
        std::fs::remove_file(lock_path(&state)).unwrap();
        let err = FileLock::acquire(&state, "apply", now).unwrap_err().to_string();
        assert!(err.contains("another run"), "{err}");
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains("was deleted"), "{err}");
        drop(first);
        FileLock::acquire(&state, "apply", now).unwrap();
    }
}
