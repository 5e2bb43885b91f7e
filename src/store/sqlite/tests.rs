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
async fn a_backup_is_written_owner_only_and_never_over_a_file() {
    let (_dir, s) = open().await;
    s.commit_identities(&[("id-a".into(), "a".to_string())], &[], &[], chrono::Utc::now()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backup.db");
    s.backup(&dest).await.unwrap();
    let meta = std::fs::metadata(&dest).unwrap();
    assert!(meta.len() > 0);
    assert_eq!(meta.permissions().mode() & 0o077, 0);
    let again = s.backup(&dest).await.unwrap_err();
    assert!(again.to_string().contains("not empty"), "{again}");
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

/// A state written before `source_record_refs` (migration 21) gets the refs of the records it
/// holds (not those marked gone), so that its first incremental read finds them; and the
/// lookups an incremental tick makes are index seeks, not scans of every record.
#[tokio::test]
async fn the_refs_migration_indexes_the_stored_records_and_lookups_use_the_indexes() {
    let (dir, store) = open().await;
    let path = dir.path().join("state.db");
    let data = |id: &str| {
        format!(
            r#"{{"person_id":"{id}","given_name":"Kim","family_name":"Lind","affiliations":[{{"school_unit":"S1","school_unit_name":"Eken","kind":"duty","role":"staff","source_id":"duty-{id}"}},{{"school_unit":"S2","kind":"enrolment","role":"student"}}],"groups":[{{"name":"7A","type":"class","source_id":"g-7a"}},{{"name":"Drama","type":"class"}}],"location":"x"}}"#
        )
    };
    sqlx::query("INSERT INTO identities (id, username, created_at) VALUES ('id', 'kim', 'now')")
        .execute(&store.pool)
        .await
        .unwrap();
    for (id, gone) in [("A", None), ("B", Some("2026-01-01T00:00:00Z"))] {
        sqlx::query(
            "INSERT INTO source_records (source, person_id, identity_id, given_name, family_name, role, groups,
                 protected, content_hash, data, first_seen, updated_at, gone_at)
             VALUES ('ss', ?1, 'id', 'Kim', 'Lind', 'staff', '', 0, 'h', ?2, 'now', 'now', ?3)",
        )
        .bind(id)
        .bind(data(id))
        .bind(gone)
        .execute(&store.pool)
        .await
        .unwrap();
    }
    // As before migration 21.
    for statement in [
        "DROP TABLE source_record_refs",
        "DROP INDEX source_records_unwhole",
        "DELETE FROM _sqlx_migrations WHERE version = 21",
    ] {
        sqlx::query(statement).execute(&store.pool).await.unwrap();
    }
    drop(store);
    let store = SqliteStore::open(&path).await.unwrap();
    type Ref = (String, String, String, Option<String>, Option<String>);
    let refs: Vec<Ref> = sqlx::query_as(
        "SELECT person_id, kind, ref, unit, unit_name FROM source_record_refs ORDER BY person_id, kind, ref",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    assert_eq!(
        refs,
        [
            ("A".into(), "group".into(), "g-7a".into(), None, None),
            ("A".into(), "tie".into(), "duty-A".into(), Some("S1".into()), Some("Eken".into())),
        ],
        "one row per tie and group with a source id, of the records not gone"
    );
    assert_eq!(
        store.stored_units("ss").await.unwrap(),
        std::collections::BTreeMap::from([("S1".to_string(), std::collections::BTreeSet::from([Some("Eken".into())]))])
    );

    // How SQLite reads what every incremental tick asks: by the indexes.
    let plan = |sql: &str| {
        let sql = format!("EXPLAIN QUERY PLAN {sql}");
        let pool = store.pool.clone();
        async move {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind("ss").fetch_all(&pool).await.unwrap();
            rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ")
        }
    };
    let units = plan(
        "SELECT (SELECT MIN(unit) FROM source_record_refs WHERE source = ?1 AND kind = 'tie' AND unit > 'S1'),
                (SELECT MAX(unit_name) FROM source_record_refs WHERE source = ?1 AND kind = 'tie' AND unit = 'S1')",
    )
    .await;
    assert!(units.contains("source_record_refs_by_unit") && !units.contains("SCAN source_record_refs"), "{units}");
    // Every tick asks these two: they read the partial indexes (their queries name them:
    // without statistics, SQLite takes the primary key's index for any `source = ?`, and reads
    // every record's table page), and the count of all records reads the primary key's index
    // alone.
    let store_sql = include_str!("prior.rs");
    let unwhole = plan(
        "SELECT EXISTS (SELECT 1 FROM source_records INDEXED BY source_records_unwhole
                        WHERE source = ?1 AND data IS NULL AND gone_at IS NULL)",
    )
    .await;
    assert!(unwhole.contains("source_records_unwhole"), "{unwhole}");
    assert!(store_sql.contains("INDEXED BY source_records_unwhole"));
    let gone = plan(
        "SELECT count(*) FROM source_records INDEXED BY source_records_gone WHERE source = ?1 AND gone_at IS NOT NULL",
    )
    .await;
    assert!(gone.contains("source_records_gone"), "{gone}");
    assert!(store_sql.contains("INDEXED BY source_records_gone"));
    let all = plan("SELECT count(*) FROM source_records WHERE source = ?1").await;
    assert!(all.contains("COVERING INDEX sqlite_autoindex_source_records_1"), "{all}");
    // The lookups of records not gone keep the primary key.
    let one = plan("SELECT 1 FROM source_records WHERE source = ?1 AND person_id = 'A' AND gone_at IS NULL").await;
    assert!(one.contains("sqlite_autoindex_source_records_1"), "{one}");
}

/// A long write of this process (a chunk of a million persons' apply on a slow machine) and the
/// writes beside it (the log, the ownership rows, `meta`) queue one after the other: none meets
/// SQLite's busy timeout, which failed such an apply with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_write_and_the_writes_beside_it_queue_instead_of_timing_out() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(&dir.path().join("state.db"), Duration::from_millis(200)).await.unwrap();
    let now = chrono::Utc::now();
    let beside = {
        let store = store.clone();
        tokio::spawn(async move {
            // Once the long write holds the lock.
            tokio::time::sleep(Duration::from_millis(300)).await;
            store.set_meta("beside", "written").await
        })
    };
    // The identity is written, then its record comes a second later: the transaction holds the
    // write lock all that time.
    let mut slow = std::iter::once_with(|| {
        std::thread::sleep(Duration::from_secs(1));
        crate::store::suite::record("sis", "P1", "e-1", None)
    });
    let new = [("e-1".into(), "kim.lind".to_string())];
    store.commit_identities_from(&new, &mut slow, &[], now).await.unwrap();
    beside.await.unwrap().expect("the write beside waited for the long one");
    assert_eq!(store.meta("beside").await.unwrap().as_deref(), Some("written"));
}

/// The process writes through one connection, which alone keeps the large page cache of bulk
/// writes: the pool's connections stay at SQLite's default (each that wrote kept 16 MiB, some
/// 64 MiB through an apply), however many writes ran at once.
#[tokio::test]
async fn only_the_writing_connection_keeps_a_large_cache() {
    let (_dir, store) = open().await;
    let names: Vec<Vec<String>> = (0..8).map(|i| vec![format!("name{i}")]).collect();
    let writes = names.iter().map(|n| store.reserve_usernames(n, chrono::Utc::now()));
    for done in futures::future::join_all(writes).await {
        done.unwrap();
    }
    let cache = |size: i64| size == -16384;
    let mut readers = Vec::new();
    for _ in 0..4 {
        let mut conn = store.pool.acquire().await.unwrap();
        let size: i64 = sqlx::query_scalar("PRAGMA cache_size").fetch_one(&mut *conn).await.unwrap();
        assert!(!cache(size), "a reading connection keeps the default cache ({size})");
        readers.push(conn);
    }
    let mut writer = store.writer.acquire().await.unwrap();
    let size: i64 = sqlx::query_scalar("PRAGMA cache_size").fetch_one(&mut *writer).await.unwrap();
    assert!(cache(size), "the writing connection keeps the large one ({size})");
    drop(writer);

    // With every reading connection taken, each kind of write still goes through (one that
    // took a reading connection would wait for it): a statement, statements in a transaction,
    // a bulk write, a run's row, a claim of first passwords.
    let now = chrono::Utc::now();
    let within = |what: &'static str| {
        move |r: Result<Result<(), crate::store::StoreError>, _>| {
            r.unwrap_or_else(|_| panic!("{what} waited for a reading connection")).unwrap()
        }
    };
    let wait = std::time::Duration::from_secs(5);
    within("a statement")(tokio::time::timeout(wait, store.set_meta("k", "v")).await);
    within("a transaction")(tokio::time::timeout(wait, store.use_approvals(&[], 1)).await);
    within("a bulk write")(tokio::time::timeout(wait, store.reserve_usernames(&["x".into()], now)).await);
    within("a run's row")(
        tokio::time::timeout(wait, async { store.begin_run("apply", None, now).await.map(drop) }).await,
    );
    within("a finished run's row")(
        tokio::time::timeout(wait, async { store.record_run("plan", None, "ok", "", None, now).await.map(drop) }).await,
    );
    within("a claim")(
        tokio::time::timeout(wait, async { store.claim_passwords(&[], "c", now, now).await.map(drop) }).await,
    );
    drop(readers);
}

/// The whole-table reads open the file through a connection of their own ([`super::direct`]):
/// a state at a path with spaces and letters beyond ASCII is read as the pool wrote it.
#[tokio::test]
async fn the_whole_table_reads_find_a_state_at_a_path_with_spaces_and_letters_beyond_ascii() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("tillstånd för enid");
    std::fs::create_dir(&sub).unwrap();
    let store = SqliteStore::open(&sub.join("stat ä.db")).await.unwrap();
    let new = [("e-1".into(), "kim.lind".to_string())];
    let mut records = std::iter::once(crate::store::suite::record("sis", "P1", "e-1", None));
    store.commit_identities_from(&new, &mut records, &[], chrono::Utc::now()).await.unwrap();
    let snap = store.snapshot().await.unwrap();
    assert!(snap.record("sis", "P1").is_some(), "the record is read");
    assert_eq!(snap.identities.len(), 1);
}

/// A value of another kind where the schema says text (written by hand, or by a broken tool)
/// fails the read, naming the table: never an identity without its username, never a
/// snapshot short of a row.
#[tokio::test]
async fn a_whole_table_read_fails_on_a_value_of_another_kind_and_names_the_table() {
    let (_dir, store) = open().await;
    let new = [("e-1".into(), "kim.lind".to_string()), ("e-2".into(), "ali.berg".to_string())];
    let mut records =
        [crate::store::suite::record("sis", "P1", "e-1", None), crate::store::suite::record("sis", "P2", "e-2", None)]
            .into_iter();
    store.commit_identities_from(&new, &mut records, &[], chrono::Utc::now()).await.unwrap();
    assert_eq!(store.snapshot().await.unwrap().identities.len(), 2);
    sqlx::query("UPDATE identities SET username = x'00ff' WHERE id = 'e-2'").execute(&store.pool).await.unwrap();
    let e = store.snapshot().await.expect_err("a blob for a username");
    assert!(e.message.contains("identities"), "{e:?}");
    sqlx::query("UPDATE identities SET username = 'ali.berg' WHERE id = 'e-2'").execute(&store.pool).await.unwrap();
    sqlx::query("UPDATE source_records SET role = x'01' WHERE person_id = 'P1'").execute(&store.pool).await.unwrap();
    let e = store.snapshot().await.expect_err("a blob for a role");
    assert!(e.message.contains("source_records"), "{e:?}");
}
