//! The SQLite store against the shared suite (directly and through [`Store`]), and what only a
//! database file has: where it may be created, its permissions, reopening, and backups that
//! open as a state.

use super::SqliteStore;
use crate::store::suite::store_suite;
use crate::store::{StateStore, Store};
use std::os::unix::fs::PermissionsExt;
use tempfile::TempDir;

/// A fresh store in a directory of its own, which lives as long as the guard.
async fn open() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).await.unwrap();
    (dir, store)
}

mod direct {
    use super::*;
    store_suite!(open());
}

mod through_the_enum {
    use super::*;

    async fn open_any() -> (TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).await.unwrap();
        (dir, store)
    }

    store_suite!(open_any());
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_new_file_is_owner_only_and_reopening_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(store.created());
    assert_eq!(store.path(), path.display().to_string());
    assert_eq!(mode(&path), 0o600);
    store.set_meta("k", "v").await.unwrap();
    drop(store);

    let again = SqliteStore::open(&path).await.unwrap();
    assert!(!again.created());
    assert_eq!(again.meta("k").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn an_empty_file_is_given_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, "").unwrap();
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(!store.created());
    assert!(store.snapshot().await.unwrap().identities.is_empty());
}

#[tokio::test]
async fn a_state_readable_by_others_is_made_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, "").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    SqliteStore::open(&path).await.unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test]
async fn a_missing_directory_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let err = SqliteStore::open(&missing.join("state.db")).await.unwrap_err();
    assert!(err.to_string().contains("does not exist") && err.to_string().contains("[state] path"), "{err}");
    assert!(!missing.exists());
}

#[tokio::test]
async fn a_backup_opens_as_the_same_state() {
    let (dir, store) = open().await;
    store.set_meta("id_key_fingerprint", "abc").await.unwrap();
    let dest = dir.path().join("copy.db");
    store.backup(&dest).await.unwrap();
    let copy = SqliteStore::open(&dest).await.unwrap();
    assert!(!copy.created());
    assert_eq!(copy.meta("id_key_fingerprint").await.unwrap().as_deref(), Some("abc"));
}
