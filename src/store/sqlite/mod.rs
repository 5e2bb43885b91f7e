//! The SQLite state store: one file (`[state] path`) through sqlx, with the migrations of
//! `migrations/sqlite/` embedded at build time.
//!
//! The snapshot's whole tables (identities, stored records, ownership rows) are read through
//! connections of their own, row by row on a blocking thread ([`direct`]). Other reads of many
//! rows come back as JSON arrays built inside SQLite (`json_group_array`, `json_rows`): one row
//! per query instead of one per identity through sqlx's channel. Bulk writes go as multi-row
//! statements (`bulk`). Every other statement goes through `exec`, `exec_all` (one transaction)
//! or `fetch`, so each method is its SQL and little else.

mod bulk;
mod direct;
mod file;
mod partial;
mod prior;
mod sources;
#[cfg(test)]
mod tests;

use super::rows::{
    AccountRowIn, CivicHistoryRowIn, LogRowIn, RecordViewRow, RowSink, RunRowIn, owned_account, snapshot_sinks,
};
use super::{
    CivicHistoryRow, ClaimRefusal, GroupRow, LogFilter, LogRow, OpRecord, PasswordFilter, Pruned, RecordRow, RunRow,
    SealedPassword, StateStore, StoreError, StoredRecordView,
};
use crate::core::identity::{CivicChange, Decision};
use crate::core::model::{AccountStatus, IdentityId, OwnedAccount, PrimaryTie, Snapshot};
use crate::core::plan::{Adoption, OwnedGroup, RenameInfo};
use crate::store::{
    ApprovalRow, HeldRow, PersonHit, RecordDigest, SessionRow, SourceRead, StateMetrics, StoredSourceRecord, TokenRow,
};
use bulk::AccountRow;
use chrono::{DateTime, Utc};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::query::{Query, QueryAs};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, FromRow, Row, SqlSafeStr, Sqlite, SqlitePool};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The schema's migrations, in order; each runs once per database.
const MIGRATIONS: [(i64, &str, &str); 23] = [
    (1, "init", include_str!("../../../migrations/sqlite/0001_init.sql")),
    (2, "conflicts and civic history", include_str!("../../../migrations/sqlite/0002_conflicts_and_civic_history.sql")),
    (3, "correlation keys", include_str!("../../../migrations/sqlite/0003_correlation_keys.sql")),
    (4, "groups", include_str!("../../../migrations/sqlite/0004_groups.sql")),
    (5, "source counts", include_str!("../../../migrations/sqlite/0005_source_counts.sql")),
    (6, "lifecycle", include_str!("../../../migrations/sqlite/0006_lifecycle.sql")),
    (7, "source columns", include_str!("../../../migrations/sqlite/0007_source_columns.sql")),
    (8, "meta", include_str!("../../../migrations/sqlite/0008_meta.sql")),
    (9, "target keys", include_str!("../../../migrations/sqlite/0009_target_keys.sql")),
    (10, "passwords", include_str!("../../../migrations/sqlite/0010_passwords.sql")),
    (11, "password claims", include_str!("../../../migrations/sqlite/0011_password_claims.sql")),
    (12, "claim refusals", include_str!("../../../migrations/sqlite/0012_claim_refusals.sql")),
    (13, "affiliations", include_str!("../../../migrations/sqlite/0013_affiliations.sql")),
    (14, "held records", include_str!("../../../migrations/sqlite/0014_held_records.sql")),
    (15, "retention", include_str!("../../../migrations/sqlite/0015_retention.sql")),
    (16, "run outcomes", include_str!("../../../migrations/sqlite/0016_run_outcomes.sql")),
    (17, "tokens", include_str!("../../../migrations/sqlite/0017_tokens.sql")),
    (18, "approvals", include_str!("../../../migrations/sqlite/0018_approvals.sql")),
    (19, "accounts by identity", include_str!("../../../migrations/sqlite/0019_accounts_by_identity.sql")),
    (20, "pending accounts", include_str!("../../../migrations/sqlite/0020_pending_accounts.sql")),
    (21, "record refs", include_str!("../../../migrations/sqlite/0021_record_refs.sql")),
    (22, "live records", include_str!("../../../migrations/sqlite/0022_live_records.sql")),
    (23, "web sessions", include_str!("../../../migrations/sqlite/0023_web_sessions.sql")),
];

/// Runs bulk writes (`bulk` functions given `&mut tx`) in one transaction, naming this
/// database in an error.
macro_rules! in_tx {
    ($self:ident, $tx:ident => $($write:expr);+) => {
        $self.ctx(
            async {
                let (_writing, mut $tx) = $self.begin_write().await?;
                // The writing connection keeps a page cache of 16 MiB (SQLite's default is 2):
                // ownership rows and the log are keyed by random ids, so a run's batches touch
                // index pages all over, and with the default cache each batch read them back
                // from the file (an apply of 100,000 took a tenth longer). Only writers grow it:
                // a plan reads the whole state, and a reader's cache that large would be held
                // through the run's peak.
                sqlx::query("PRAGMA cache_size = -16384").execute(&mut *$tx).await?;
                $($write.await?;)+
                $tx.commit().await
            }
            .await,
        )
    };
}

/// A statement with its values bound.
type Q<'q> = Query<'q, Sqlite, SqliteArguments>;

/// The capitals outside ASCII that names in Swedish schools hold, with their small letters:
/// folded for "Find a person" where SQLite's `lower()` does not.
const SEARCH_FOLDED: [(&str, &str); 8] =
    [("Å", "å"), ("Ä", "ä"), ("Ö", "ö"), ("É", "é"), ("È", "è"), ("Ü", "ü"), ("Æ", "æ"), ("Ø", "ø")];

/// A handle on the SQLite state database. Clones share one connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The one connection this process writes through (writes queue for it at `writing`
    /// anyway): only it keeps the large page cache a run's bulk writes want (`in_tx!`), where
    /// each of the pool's connections that happened to write kept one (64 MiB through an apply).
    writer: SqlitePool,
    /// The database file, for messages.
    path: String,
    /// The database file, for the whole-table reads' own connections ([`direct`]).
    file: std::path::PathBuf,
    /// How long a connection waits for another process's write lock.
    busy: Duration,
    /// `open` created the file: the state is new.
    created: bool,
    /// Held by every write of this process, from before its transaction begins to its end: the
    /// writes of one run (a chunk of new identities, the log, the ownership rows) queue here,
    /// not in SQLite's busy handler, whose timeout a long chunk outlasted on a slow machine
    /// ("database is locked", and the apply failed). Other processes still meet the timeout.
    writing: Arc<tokio::sync::Mutex<()>>,
}

/// A timestamp as the SQLite schema stores it: RFC 3339 in UTC, whole seconds, so that text
/// order is time order.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl SqliteStore {
    /// Opens the database at `path` and brings its schema up to date. A missing file is created
    /// (readable by its owner only: it holds civic numbers) and [`StateStore::created`] says so;
    /// a missing directory is an error, never created: a typo in `[state] path` must not start a
    /// fresh, empty state beside the real one.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, Duration::from_secs(30)).await
    }

    /// [`SqliteStore::open`], waiting at most `busy` for another process's write lock.
    async fn open_with(path: &Path, busy: Duration) -> Result<SqliteStore, StoreError> {
        let shown = path.display().to_string();
        let err = |message: String| StoreError { path: shown.clone(), message };
        let created = file::prepare_state_file(path).map_err(err)?;
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| err(e.to_string()))?
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Statement journals in memory, not in temporary files: a run's bulk writes are
            // statements inside one transaction, and each wrote its journal to disk. (The page
            // cache grows on writing connections only: `in_tx!`.)
            .pragma("temp_store", "MEMORY")
            .busy_timeout(busy)
            // Reading every record of 100,000 persons takes over a second by design: not a
            // warning in the service's log every run.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let migrator = Migrator::with_migrations(
            MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(*version, (*description).into(), MigrationType::Simple, sql.into_sql_str(), false)
                })
                .collect(),
        );
        // Two enid processes starting on a new state at once must not both create the schema:
        // the migration runs under an OS lock on `<state>.migrate.lock`, taken for that moment
        // only. Never on the database file itself: closing another descriptor of that file
        // would drop SQLite's own (POSIX) locks in this process.
        let lock_path = {
            let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            name.push(".migrate.lock");
            path.with_file_name(name)
        };
        let guard = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&lock_path)
                .map_err(|e| err(format!("cannot open {}: {e}", lock_path.display())))?
        };
        let locked = tokio::task::spawn_blocking(move || guard.lock().map(|()| guard))
            .await
            .map_err(|e| err(format!("cannot lock for the schema migration: {e}")))?
            .map_err(|e| err(format!("cannot lock for the schema migration: {e}")))?;
        // Connecting switches a new database to WAL, which needs the file to itself: done under
        // the same lock, so that processes starting at once never meet "database is locked".
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_slow_level(log::LevelFilter::Debug)
            .connect_lazy_with(opts.clone());
        // The file sqlx opens (its URL's path, decoded), for the reads that open it again.
        let file = opts.get_filename().to_path_buf();
        let opened = async {
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                // Waiting a few seconds for a connection while a run reads the whole state is
                // expected on a busy machine: not a warning on an operator's terminal.
                .acquire_slow_level(log::LevelFilter::Debug)
                .connect_with(opts)
                .await
                .map_err(|e| err(format!("cannot open: {e}")))?;
            migrator.run(&pool).await.map_err(|e| err(format!("cannot migrate the schema: {e}")))?;
            Ok::<_, StoreError>(pool)
        }
        .await;
        drop(locked);
        let pool = opened?;
        Ok(SqliteStore { pool, writer, path: shown, file, busy, created, writing: Arc::default() })
    }

    /// The pool, for `enid state copy`.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// An error about this database.
    fn fail(&self, message: String) -> StoreError {
        StoreError { path: self.path.clone(), message }
    }

    /// Names this database in a sqlx error.
    fn ctx<T>(&self, result: sqlx::Result<T>) -> Result<T, StoreError> {
        result.map_err(|e| self.fail(e.to_string()))
    }

    /// A write transaction, begun once this process's other writes are done: the gate
    /// ([`SqliteStore::writing`]) is held until the guard drops, after the transaction's end
    /// (declare the guard first).
    async fn begin_write(&self) -> sqlx::Result<(tokio::sync::MutexGuard<'_, ()>, sqlx::Transaction<'static, Sqlite>)> {
        let gate = self.writing.lock().await;
        Ok((gate, self.writer.begin().await?))
    }

    /// Runs one statement; returns the rows it changed.
    async fn exec(&self, q: Q<'_>) -> Result<u64, StoreError> {
        let _writing = self.writing.lock().await;
        self.ctx(q.execute(&self.writer).await.map(|done| done.rows_affected()))
    }

    /// Runs statements in order, in one transaction.
    async fn exec_all(&self, statements: Vec<Q<'_>>) -> Result<(), StoreError> {
        self.ctx(
            async {
                let (_writing, mut tx) = self.begin_write().await?;
                for q in statements {
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await
            }
            .await,
        )
    }

    /// The rows a query returns, as tuples.
    async fn fetch<T>(&self, q: QueryAs<'_, Sqlite, T, SqliteArguments>) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.ctx(q.fetch_all(&self.pool).await)
    }

    /// The rows of a query that returns one JSON array (`json_group_array`), decoded.
    async fn json_rows<T: serde::de::DeserializeOwned>(&self, q: Q<'_>) -> Result<Vec<T>, StoreError> {
        let row = self.ctx(q.fetch_one(&self.pool).await)?;
        let text: &str = self.ctx(row.try_get(0))?;
        serde_json::from_str(text).map_err(|e| self.fail(format!("reading the state: {e}")))
    }

    /// The rows of a query that returns their count and one JSON array of them, each decoded
    /// and handed to `into` as it is read, never all held at once (the snapshot's records: a
    /// million rows at the largest).
    async fn json_each<T: serde::de::DeserializeOwned, S: RowSink<T>>(
        &self,
        q: Q<'_>,
        mut into: S,
    ) -> Result<S, StoreError> {
        let row = self.ctx(q.fetch_one(&self.pool).await)?;
        let count: i64 = self.ctx(row.try_get(0))?;
        into.reserve(usize::try_from(count).unwrap_or(0));
        self.decode_each(self.ctx(row.try_get(1))?, &mut into)?;
        Ok(into)
    }

    /// A JSON array of rows, each decoded and handed to `into` as it is read.
    fn decode_each<T: serde::de::DeserializeOwned, S: RowSink<T>>(
        &self,
        text: &str,
        into: &mut S,
    ) -> Result<(), StoreError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let each = super::rows::EachRow { into, row: std::marker::PhantomData };
        serde::Deserializer::deserialize_seq(&mut de, each)
            .and_then(|()| de.end())
            .map_err(|e| self.fail(format!("reading the state: {e}")))
    }

    /// A JSON column's value, decoded; `what` names it in the error.
    fn decode<T: serde::de::DeserializeOwned>(&self, what: &str, text: &str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| self.fail(format!("{what}: {e}")))
    }

    /// A value as JSON text, for a JSON column.
    fn encode<T: serde::Serialize + ?Sized>(&self, what: &str, value: &T) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|e| self.fail(format!("{what}: {e}")))
    }

    /// Writes ownership rows in one transaction.
    async fn write_accounts(&self, rows: &[AccountRow<'_>], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        in_tx!(self, tx => bulk::upsert_accounts(&mut tx, rows, &now))
    }
}

/// The statements of one upsert per entry of a map: few rows (one per source), so no bulk.
fn upserts<'a, V: 'a>(
    sql: &'static str,
    map: impl IntoIterator<Item = (&'a String, V)>,
    mut bind: impl FnMut(Q<'a>, V) -> Q<'a>,
) -> Vec<Q<'a>> {
    map.into_iter().map(|(key, value)| bind(sqlx::query(sql).bind(key), value)).collect()
}

impl SqliteStore {
    /// The snapshot, its tables read side by side, with the ownership rows or without them.
    async fn read_snapshot(&self, with_accounts: bool) -> Result<Snapshot, StoreError> {
        let (identities, records, accounts) = snapshot_sinks();
        let accounts =
            async { if with_accounts { self.read_whole(direct::ACCOUNTS, accounts).await } else { Ok(accounts) } };
        let (identities, records, accounts) = tokio::try_join!(
            self.read_whole(direct::IDENTITIES, identities),
            self.read_whole(direct::RECORDS, records),
            accounts,
        )?;
        Ok(super::rows::build_snapshot(identities, records, accounts))
    }
}

impl StateStore for SqliteStore {
    fn created(&self) -> bool {
        self.created
    }

    fn path(&self) -> &str {
        &self.path
    }

    /// SQLite's `VACUUM INTO`: a consistent copy while other connections write.
    async fn backup(&self, dest: &Path) -> Result<(), StoreError> {
        let target = file::prepare_backup_file(dest).map_err(|m| self.fail(format!("backup: {m}")))?;
        if let Err(e) = self.exec(sqlx::query("VACUUM INTO ?1").bind(target)).await {
            let _ = std::fs::remove_file(dest);
            return Err(self.fail(format!("backup to {} failed: {}", dest.display(), e.message)));
        }
        Ok(())
    }

    async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let q = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1").bind(key);
        self.ctx(q.fetch_optional(&self.pool).await)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let sql =
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
        self.exec(sqlx::query(sql).bind(key).bind(value)).await.map(drop)
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.read_snapshot(true).await
    }

    async fn snapshot_without_accounts(&self) -> Result<Snapshot, StoreError> {
        self.read_snapshot(false).await
    }

    async fn owned_accounts(
        &self,
        identities: std::sync::Arc<crate::core::model::IdMap<Option<connector_api::value::Str>>>,
    ) -> Result<Vec<OwnedAccount>, StoreError> {
        let accounts = self.read_whole(direct::ACCOUNTS, super::rows::accounts_sink(identities)).await?;
        Ok(accounts.into_accounts())
    }

    async fn commit_identities_from(
        &self,
        new: &[(IdentityId, String)],
        records: &mut (dyn Iterator<Item = RecordRow> + Send),
        primaries: &[(IdentityId, Option<PrimaryTie>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        in_tx!(self, tx => bulk::insert_identities(&mut tx, new, &now); bulk::upsert_records_from(&mut tx, records, &now);
            bulk::set_primaries(&mut tx, primaries))
    }

    async fn allocated_usernames(
        &self,
        now: DateTime<Utc>,
        quarantine_days: Option<u32>,
    ) -> Result<Vec<String>, StoreError> {
        let cutoff = quarantine_days.map(|d| ts(now - chrono::Duration::days(i64::from(d))));
        self.json_rows(
            sqlx::query(
                "SELECT json_group_array(lower(username)) FROM usernames
                 WHERE released_at IS NULL OR ?1 IS NULL OR released_at > ?1",
            )
            .bind(cutoff),
        )
        .await
    }

    async fn commit_renames(&self, renames: &[RenameInfo], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        let mut statements = Vec::with_capacity(renames.len() * 4);
        for r in renames {
            statements.extend([
                sqlx::query("UPDATE usernames SET released_at = ?1 WHERE username = ?2").bind(&now).bind(&r.old),
                sqlx::query(
                    "INSERT INTO usernames (username, identity_id, allocated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (username) DO UPDATE SET identity_id = excluded.identity_id,
                        allocated_at = excluded.allocated_at, released_at = NULL",
                )
                .bind(&r.new)
                .bind(&r.identity)
                .bind(&now),
                sqlx::query("UPDATE identities SET username = ?1 WHERE id = ?2").bind(&r.new).bind(&r.identity),
                sqlx::query("DELETE FROM rename_approvals WHERE identity_id = ?1").bind(&r.identity),
            ]);
        }
        if statements.is_empty() {
            return Ok(());
        }
        self.exec_all(statements).await
    }

    async fn rename_approvals(&self) -> Result<BTreeMap<String, (String, String)>, StoreError> {
        let sql = "SELECT json_group_array(json_array(identity_id, new_username, approved_by)) FROM rename_approvals";
        let rows: Vec<(String, String, String)> = self.json_rows(sqlx::query(sql)).await?;
        Ok(rows.into_iter().map(|(id, new, by)| (id, (new, by))).collect())
    }

    async fn approve_rename(
        &self,
        identity: &str,
        new_username: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT INTO rename_approvals (identity_id, new_username, approved_at, approved_by) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (identity_id) DO UPDATE SET new_username = excluded.new_username,
                approved_at = excluded.approved_at, approved_by = excluded.approved_by",
        );
        self.exec(q.bind(identity).bind(new_username).bind(ts(now)).bind(by)).await.map(drop)
    }

    async fn reserve_usernames(&self, names: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        in_tx!(self, tx => bulk::reserve_usernames(&mut tx, names, &now))
    }

    async fn reserved_usernames(&self) -> Result<Vec<String>, StoreError> {
        let q = sqlx::query_scalar("SELECT lower(username) FROM usernames WHERE identity_id = ''");
        self.ctx(q.fetch_all(&self.pool).await)
    }

    async fn refuse_claim(&self, r: &ClaimRefusal, now: DateTime<Utc>) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT OR IGNORE INTO claim_refusals (target, identity_id, entry_key, entry_anchor, decided_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&r.target)
        .bind(&r.identity)
        .bind(&r.key)
        .bind(&r.anchor)
        .bind(ts(now));
        self.exec(q).await.map(|_| ())
    }

    async fn rename_target(&self, old: &str, new: &str) -> Result<u64, StoreError> {
        let moved = async {
            let (_writing, mut tx) = self.begin_write().await?;
            let n = sqlx::query("UPDATE accounts SET target = ? WHERE target = ?")
                .bind(new)
                .bind(old)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for table in ["groups", "passwords", "claim_refusals", "outside_claims"] {
                let sql = format!("UPDATE {table} SET target = ? WHERE target = ?");
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(new).bind(old).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(n)
        }
        .await;
        self.ctx(moved)
    }

    async fn record_outside_claims(&self, rows: &[(String, IdentityId)], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        let done = async {
            let (_writing, mut tx) = self.begin_write().await?;
            for (target, identity) in rows {
                sqlx::query("INSERT OR REPLACE INTO outside_claims (target, identity_id, claimed_at) VALUES (?, ?, ?)")
                    .bind(target)
                    .bind(identity)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        .await;
        self.ctx(done)
    }

    async fn outside_claims(&self) -> Result<Vec<(String, IdentityId)>, StoreError> {
        let q = sqlx::query_as("SELECT target, identity_id FROM outside_claims ORDER BY target, identity_id");
        self.ctx(q.fetch_all(&self.pool).await)
    }

    async fn forget_outside_claims(&self, rows: &[(String, IdentityId)]) -> Result<(), StoreError> {
        let done = async {
            let (_writing, mut tx) = self.begin_write().await?;
            for (target, identity) in rows {
                sqlx::query("DELETE FROM outside_claims WHERE target = ? AND identity_id = ?")
                    .bind(target)
                    .bind(identity)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        .await;
        self.ctx(done)
    }

    async fn claim_refusals(&self) -> Result<Vec<ClaimRefusal>, StoreError> {
        let q = sqlx::query_as::<_, (String, String, String, Option<String>)>(
            "SELECT target, identity_id, entry_key, entry_anchor FROM claim_refusals \
             ORDER BY target, identity_id, entry_key",
        );
        let rows = self.ctx(q.fetch_all(&self.pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(target, identity, key, anchor)| ClaimRefusal { target, identity: identity.into(), key, anchor })
            .collect())
    }

    async fn protected_identities(&self) -> Result<std::collections::HashSet<IdentityId>, StoreError> {
        let q = sqlx::query_scalar("SELECT DISTINCT identity_id FROM source_records WHERE protected = 1");
        let rows: Vec<IdentityId> = self.ctx(q.fetch_all(&self.pool).await)?;
        Ok(rows.into_iter().collect())
    }

    async fn unprotect(&self, identities: &[IdentityId]) -> Result<(), StoreError> {
        let sql = "UPDATE source_records SET protected = 0, content_hash = '' WHERE identity_id = ?1";
        self.exec_all(identities.iter().map(|id| sqlx::query(sql).bind(id)).collect()).await
    }

    async fn find_identity(&self, needle: &str) -> Result<Vec<IdentityId>, StoreError> {
        let q = sqlx::query_scalar(
            "SELECT id FROM identities WHERE id = ?1 OR username = ?1
             UNION SELECT identity_id FROM source_records WHERE person_id = ?1
             UNION SELECT identity_id FROM usernames WHERE username = ?1 AND identity_id <> ''
             UNION SELECT r.identity_id FROM source_records r, json_each(r.data, '$.external_ids') e
                   WHERE r.data IS NOT NULL AND e.value = ?1",
        );
        self.ctx(q.bind(needle).fetch_all(&self.pool).await)
    }

    async fn records_of(&self, identity: &str) -> Result<Vec<StoredRecordView>, StoreError> {
        let q = sqlx::query_as::<_, RecordViewRow>(
            "SELECT source, person_id, civic_no, given_name, family_name, role, school_unit, groups, start_date,
                    end_date, first_seen, updated_at, protected
             FROM source_records WHERE identity_id = ?1 ORDER BY source, person_id",
        );
        let rows = self.fetch(q.bind(identity)).await?;
        Ok(rows.into_iter().map(StoredRecordView::from_row).collect())
    }

    async fn decisions(&self) -> Result<BTreeMap<String, Decision>, StoreError> {
        let sql = "SELECT json_group_array(json_array(conflict_id, decision)) FROM conflict_decisions";
        let rows: Vec<(String, String)> = self.json_rows(sqlx::query(sql)).await?;
        rows.into_iter().map(|(id, d)| Ok((id.clone(), self.decode(&format!("decision {id}"), &d)?))).collect()
    }

    async fn decide(
        &self,
        conflict_id: &str,
        decision: &Decision,
        records: &[String],
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let body = self.encode("encoding", decision)?;
        let records = self.encode("encoding", records)?;
        let q = sqlx::query(
            "INSERT INTO conflict_decisions (conflict_id, decision, records, decided_at, decided_by)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (conflict_id) DO UPDATE SET decision = excluded.decision, records = excluded.records,
                decided_at = excluded.decided_at, decided_by = excluded.decided_by",
        );
        self.exec(q.bind(conflict_id).bind(body).bind(records).bind(ts(now)).bind(by)).await.map(drop)
    }

    async fn record_civic_changes(
        &self,
        run: i64,
        changes: &[CivicChange],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        in_tx!(self, tx => bulk::insert_civic_history(&mut tx, run, changes, &now))
    }

    async fn civic_history_of(&self, identity: &str) -> Result<Vec<CivicHistoryRow>, StoreError> {
        let q = sqlx::query_as::<_, CivicHistoryRowIn>(
            "SELECT source, person_id, old_civic_no, new_civic_no, changed_at FROM civic_history
             WHERE identity_id = ?1 ORDER BY id",
        );
        let rows = self.fetch(q.bind(identity)).await?;
        Ok(rows.into_iter().map(CivicHistoryRow::from_row).collect())
    }

    async fn accounts(&self, identity: Option<&str>) -> Result<Vec<OwnedAccount>, StoreError> {
        let q = sqlx::query_as::<_, AccountRowIn>(
            "SELECT target, identity_id, key, anchor, status, disabled_at FROM accounts
             WHERE ?1 IS NULL OR identity_id = ?1 ORDER BY target",
        );
        let rows = self.fetch(q.bind(identity)).await?;
        Ok(rows.into_iter().map(owned_account).collect())
    }

    async fn record_pending(&self, rows: &[(String, IdentityId)], now: DateTime<Utc>) -> Result<(), StoreError> {
        let rows: Vec<AccountRow<'_>> = rows
            .iter()
            .map(|(target, identity)| AccountRow {
                target,
                identity,
                key: None,
                anchor: None,
                status: AccountStatus::Pending,
            })
            .collect();
        self.write_accounts(&rows, now).await
    }

    async fn adopt(&self, rows: &[Adoption], now: DateTime<Utc>) -> Result<(), StoreError> {
        let rows: Vec<AccountRow<'_>> = rows
            .iter()
            .map(|a| AccountRow {
                target: &a.target,
                identity: &a.identity,
                key: Some(&a.key),
                anchor: a.anchor.as_deref(),
                status: if a.disabled { AccountStatus::Disabled } else { AccountStatus::Active },
            })
            .collect();
        self.write_accounts(&rows, now).await
    }

    async fn keep_passwords(&self, rows: &[SealedPassword], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        in_tx!(self, tx => bulk::upsert_passwords(&mut tx, rows, &now))
    }

    async fn passwords(&self, filter: &PasswordFilter) -> Result<Vec<SealedPassword>, StoreError> {
        // A school matches a whole entry of the comma-separated list (`instr`, never `LIKE`: a
        // unit's `_` or `%` would match another unit's passwords).
        let q = sqlx::query_as::<_, super::rows::PasswordRowIn>(
            "SELECT p.target, p.identity_id, i.username, p.school, p.sealed, p.created_at FROM passwords p
               JOIN accounts a ON a.target = p.target AND a.identity_id = p.identity_id
               JOIN identities i ON i.id = p.identity_id
              WHERE a.status <> 'pending' AND a.key IS NOT NULL
                AND (?1 IS NULL OR instr(',' || p.school || ',', ',' || ?1 || ',') > 0)
                AND (?2 IS NULL OR p.target = ?2)
                AND (?3 IS NULL OR p.claim_id IS NULL OR p.claimed_at < ?3)
                AND (?4 IS NULL OR p.claim_id = ?4)
              ORDER BY p.created_at, p.target, p.identity_id",
        )
        .bind(filter.school.as_deref())
        .bind(filter.target.as_deref())
        .bind(filter.claims_lapsed_before.map(ts))
        .bind(filter.claim.as_deref());
        let rows = self.ctx(q.fetch_all(&self.pool).await)?;
        Ok(rows.into_iter().map(super::rows::sealed_password).collect())
    }

    async fn kept_passwords(&self) -> Result<u64, StoreError> {
        let q = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM passwords");
        Ok(u64::try_from(self.ctx(q.fetch_one(&self.pool).await)?).unwrap_or(0))
    }

    async fn claim_passwords(
        &self,
        rows: &[SealedPassword],
        claim: &str,
        now: DateTime<Utc>,
        lapsed_before: DateTime<Utc>,
    ) -> Result<Vec<SealedPassword>, StoreError> {
        let (now, lapsed_before) = (ts(now), ts(lapsed_before));
        self.ctx(
            async {
                // BEGIN IMMEDIATE: the write lock first, so two hand-outs claim one after the other.
                // A transaction sqlx knows of, so one cut short (an error, a dropped request) is
                // rolled back, never left open on the process's one writing connection.
                let _writing = self.writing.lock().await;
                let mut conn = self.writer.begin_with("BEGIN IMMEDIATE").await?;
                let mut claimed = Vec::new();
                for r in rows {
                    let q = sqlx::query(
                        "UPDATE passwords SET claim_id = ?1, claimed_at = ?2
                          WHERE target = ?3 AND identity_id = ?4 AND sealed = ?5
                            AND (claim_id IS NULL OR claimed_at < ?6)",
                    )
                    .bind(claim)
                    .bind(&now)
                    .bind(&r.target)
                    .bind(&r.identity_id)
                    .bind(&r.sealed)
                    .bind(&lapsed_before);
                    if q.execute(&mut *conn).await?.rows_affected() == 1 {
                        claimed.push(r.clone());
                    }
                }
                conn.commit().await?;
                Ok(claimed)
            }
            .await,
        )
    }

    async fn confirm_claim(&self, claim: &str) -> Result<Vec<SealedPassword>, StoreError> {
        // What the log shows of each row, read first; the DELETE alone decides which rows this
        // claim still held (one claimed anew by another hand-out meanwhile is not among them).
        let shown = sqlx::query_as::<_, (String, String, String, String, String)>(
            "SELECT p.target, p.identity_id, i.username, p.school, p.created_at FROM passwords p
               JOIN identities i ON i.id = p.identity_id
              WHERE p.claim_id = ?1
              ORDER BY p.created_at, p.target, p.identity_id",
        );
        let shown = self.fetch(shown.bind(claim)).await?;
        let gone = sqlx::query_as::<_, (String, String)>(
            "DELETE FROM passwords WHERE claim_id = ?1 RETURNING target, identity_id",
        );
        let gone: BTreeSet<(String, String)> = self.fetch(gone.bind(claim)).await?.into_iter().collect();
        Ok(shown
            .into_iter()
            .filter(|(target, identity, ..)| gone.contains(&(target.clone(), identity.clone())))
            .map(|(target, identity, username, school, created_at)| {
                super::rows::sealed_password((target, identity, username, school, Vec::new(), created_at))
            })
            .collect())
    }

    async fn release_claim(&self, claim: &str) -> Result<u64, StoreError> {
        let q = sqlx::query("UPDATE passwords SET claim_id = NULL, claimed_at = NULL WHERE claim_id = ?1");
        self.exec(q.bind(claim)).await
    }

    async fn expire_passwords(&self, before: DateTime<Utc>, lapsed_before: DateTime<Utc>) -> Result<u64, StoreError> {
        let q = sqlx::query("DELETE FROM passwords WHERE created_at < ?1 AND (claim_id IS NULL OR claimed_at < ?2)");
        self.exec(q.bind(ts(before)).bind(ts(lapsed_before))).await
    }

    async fn groups(&self) -> Result<Vec<OwnedGroup>, StoreError> {
        let sql = "SELECT json_group_array(json_array(target, name, key, anchor, status, school)) FROM groups";
        let rows: Vec<super::rows::GroupRowIn> = self.json_rows(sqlx::query(sql)).await?;
        Ok(rows.into_iter().map(super::rows::owned_group).collect())
    }

    async fn record_groups(&self, rows: &[GroupRow], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        in_tx!(self, tx => bulk::upsert_groups(&mut tx, rows, &now))
    }

    async fn forget_group(&self, target: &str, name: &str) -> Result<(), StoreError> {
        let q = sqlx::query("DELETE FROM groups WHERE target = ?1 AND name = ?2");
        self.exec(q.bind(target).bind(name)).await.map(drop)
    }

    async fn begin_run(&self, command: &str, plan_id: Option<&str>, now: DateTime<Utc>) -> Result<i64, StoreError> {
        // The first apply is also kept in `meta`, in the same transaction: retention may remove
        // the run, never the fact that this state has applied (the lost-state guard reads it).
        let now = ts(now);
        self.ctx(
            async {
                let (_writing, mut tx) = self.begin_write().await?;
                let id = sqlx::query_scalar(
                    "INSERT INTO runs (command, plan_id, started_at, status) VALUES (?1, ?2, ?3, 'running') \
                     RETURNING id",
                )
                .bind(command)
                .bind(plan_id)
                .bind(&now)
                .fetch_one(&mut *tx)
                .await?;
                if command == "apply" || command == "run" {
                    sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('first_apply', ?1)")
                        .bind(&now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await.map(|()| id)
            }
            .await,
        )
    }

    async fn finish_run(&self, run: i64, status: &str, message: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        let finish = sqlx::query("UPDATE runs SET status = ?1, message = ?2, finished_at = ?3 WHERE id = ?4")
            .bind(status)
            .bind(message)
            .bind(&now)
            .bind(run);
        // A finished adopt is kept in `meta` like the first apply, for the same reason.
        let adopted = sqlx::query(
            "INSERT OR IGNORE INTO meta (key, value)
             SELECT 'first_adopt', ?1 FROM runs WHERE id = ?2 AND command = 'adopt' AND status = 'ok'",
        )
        .bind(&now)
        .bind(run);
        self.exec_all(vec![finish, adopted]).await
    }

    async fn record_run(
        &self,
        command: &str,
        plan_id: Option<&str>,
        status: &str,
        message: &str,
        counts: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let q = sqlx::query_scalar(
            "INSERT INTO runs (command, plan_id, started_at, finished_at, status, message, counts)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6) RETURNING id",
        );
        let q = q.bind(command).bind(plan_id).bind(ts(now)).bind(status).bind(message).bind(counts);
        let _writing = self.writing.lock().await;
        self.ctx(q.fetch_one(&self.writer).await)
    }

    async fn run_by_id(&self, run: i64) -> Result<Option<RunRow>, StoreError> {
        let q = sqlx::query_as::<_, RunRowIn>(
            "SELECT id, command, plan_id, started_at, finished_at, status, message, counts FROM runs WHERE id = ?1",
        );
        Ok(self.fetch(q.bind(run)).await?.into_iter().next().map(RunRow::from_row))
    }

    async fn record_approvals(&self, rows: &[ApprovalRow]) -> Result<(), StoreError> {
        let statements = rows
            .iter()
            .map(|a| {
                sqlx::query(
                    "INSERT INTO approvals (run_id, fingerprint, target, identity_id, action, accept, approved_by,
                        approved_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .bind(a.run_id)
                .bind(&a.fingerprint)
                .bind(&a.target)
                .bind(&a.identity)
                .bind(&a.action)
                .bind(&a.accept)
                .bind(&a.approved_by)
                .bind(ts(a.approved_at))
                .bind(ts(a.expires_at))
            })
            .collect();
        self.exec_all(statements).await
    }

    async fn live_approvals(&self, now: DateTime<Utc>) -> Result<Vec<ApprovalRow>, StoreError> {
        let sql = "SELECT json_group_array(json_array(id, run_id, fingerprint, target, identity_id, action, accept,
                       approved_by, approved_at, expires_at)) FROM
                   (SELECT * FROM approvals WHERE used_by_run IS NULL AND expires_at > ?1 ORDER BY id)";
        type Row = (
            i64,
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            String,
            String,
        );
        let rows: Vec<Row> = self.json_rows(sqlx::query(sql).bind(ts(now))).await?;
        let time = |what: &str, t: &str| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| self.fail(format!("approvals: {what} {t:?}: {e}")))
        };
        rows.into_iter()
            .map(|(id, run_id, fingerprint, target, identity, action, accept, approved_by, at, expires)| {
                Ok(ApprovalRow {
                    id,
                    run_id,
                    fingerprint,
                    target,
                    identity,
                    action,
                    accept,
                    approved_by,
                    approved_at: time("approved_at", &at)?,
                    expires_at: time("expires_at", &expires)?,
                })
            })
            .collect()
    }

    async fn use_approvals(&self, ids: &[i64], run: i64) -> Result<(), StoreError> {
        let statements = ids
            .iter()
            .map(|id| sqlx::query("UPDATE approvals SET used_by_run = ?1 WHERE id = ?2").bind(run).bind(id))
            .collect();
        self.exec_all(statements).await
    }

    async fn latest_approval(&self) -> Result<i64, StoreError> {
        let q = sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM approvals");
        self.ctx(q.fetch_one(&self.pool).await)
    }

    async fn set_run_counts(&self, run: i64, counts: &str) -> Result<(), StoreError> {
        let q = sqlx::query("UPDATE runs SET counts = ?1 WHERE id = ?2");
        self.exec(q.bind(counts).bind(run)).await.map(drop)
    }

    async fn mark_interrupted(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let q = sqlx::query(
            "UPDATE runs SET status = 'interrupted', finished_at = ?1,
                    message = 'the process ended before the run finished; the next run continued from the targets'
             WHERE status = 'running'",
        );
        self.exec(q.bind(ts(now))).await
    }

    async fn has_applied(&self) -> Result<bool, StoreError> {
        // A fact in `meta`, written by the first run that may send something (an apply, a
        // service run), so retention cannot make an applied state look new; held, stopped and
        // declined runs never write it.
        Ok(self.meta("first_apply").await?.is_some())
    }

    async fn has_adopted(&self) -> Result<bool, StoreError> {
        Ok(self.meta("first_adopt").await?.is_some())
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let before = ts(before);
        // A run still `running` is never removed, however old its start: its process may be
        // writing its log right now (or the next locked run marks it interrupted).
        self.ctx(
            async {
                let (_writing, mut tx) = self.begin_write().await?;
                let log_rows = sqlx::query(
                    "DELETE FROM oplog WHERE run_id IN
                       (SELECT id FROM runs WHERE started_at < ?1 AND status <> 'running')",
                )
                .bind(&before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let runs = sqlx::query("DELETE FROM runs WHERE started_at < ?1 AND status <> 'running'")
                    .bind(&before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let plans = sqlx::query("DELETE FROM plans WHERE created_at < ?1")
                    .bind(&before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await.map(|()| Pruned { runs, log_rows, plans })
            }
            .await,
        )
    }

    async fn runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let q = sqlx::query_as::<_, RunRowIn>(
            "SELECT id, command, plan_id, started_at, finished_at, status, message, counts FROM
               (SELECT * FROM runs ORDER BY id DESC LIMIT ?1) ORDER BY id",
        );
        let rows = self.fetch(q.bind(limit)).await?;
        Ok(rows.into_iter().map(RunRow::from_row).collect())
    }

    async fn record_anchors(&self, target: &str, found: &[connector_api::FoundAnchor]) -> Result<u64, StoreError> {
        let done = async {
            let (_writing, mut tx) = self.begin_write().await?;
            sqlx::query("PRAGMA cache_size = -16384").execute(&mut *tx).await?;
            let set = bulk::record_anchors(&mut tx, target, found).await?;
            tx.commit().await?;
            Ok(set)
        }
        .await;
        self.ctx(done)
    }

    async fn record_ops(&self, run: i64, ops: &[OpRecord], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        in_tx!(self, tx => bulk::insert_oplog(&mut tx, run, ops, &now); bulk::record_outcomes(&mut tx, ops, &now))
    }

    async fn log(&self, f: &LogFilter) -> Result<Vec<LogRow>, StoreError> {
        // A school matches a whole entry of the comma-separated list (`instr`, never `LIKE`: a
        // code is data, not a pattern).
        let q = sqlx::query_as::<_, LogRowIn>(
            "SELECT id, run_id, at, identity_id, username, target, school, action, detail, result, error FROM (
                SELECT * FROM oplog
                WHERE (?1 IS NULL OR run_id = ?1)
                  AND (?2 IS NULL OR identity_id = ?2)
                  AND (?3 IS NULL OR instr(',' || school || ',', ',' || ?3 || ',') > 0)
                  AND (?5 IS NULL OR EXISTS (SELECT 1 FROM json_each(?5) j
                                             WHERE instr(',' || school || ',', ',' || j.value || ',') > 0))
                  AND (?6 IS NULL OR target = ?6)
                  AND (?7 IS NULL OR action = ?7)
                  AND (?8 IS NULL OR result = ?8)
                  AND (?9 IS NULL OR id < ?9)
                ORDER BY id DESC LIMIT ?4) ORDER BY id",
        );
        let limit = if f.limit > 0 { f.limit } else { i64::MAX };
        let schools = match &f.schools {
            Some(s) => Some(self.encode("log schools", s)?),
            None => None,
        };
        let q = q.bind(f.run).bind(&f.identity).bind(&f.school).bind(limit).bind(schools);
        let rows = self.fetch(q.bind(&f.target).bind(&f.action).bind(&f.result).bind(f.before)).await?;
        Ok(rows.into_iter().map(LogRow::from_row).collect())
    }

    async fn log_tally(&self, run: i64, schools: &[String]) -> Result<Vec<(String, String, i64)>, StoreError> {
        let q = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT action, result, count(*) FROM oplog
              WHERE run_id = ?1 AND EXISTS (SELECT 1 FROM json_each(?2) j
                                            WHERE instr(',' || school || ',', ',' || j.value || ',') > 0)
              GROUP BY action, result ORDER BY action, result",
        );
        let schools = self.encode("log schools", &schools)?;
        self.fetch(q.bind(run).bind(schools)).await
    }

    async fn save_plan(&self, plan_id: &str, body: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT INTO plans (plan_id, created_at, body) VALUES (?1, ?2, ?3) ON CONFLICT (plan_id) DO NOTHING",
        );
        self.exec(q.bind(plan_id).bind(ts(now)).bind(body)).await.map(drop)
    }

    async fn load_plan(&self, plan_id: &str) -> Result<Option<String>, StoreError> {
        let q = sqlx::query_scalar("SELECT body FROM plans WHERE plan_id = ?1");
        self.ctx(q.bind(plan_id).fetch_optional(&self.pool).await)
    }

    async fn metrics(&self) -> Result<StateMetrics, StoreError> {
        let runs =
            sqlx::query_as::<_, (String, i64)>("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status");
        let operations = sqlx::query_as::<_, (String, String, String, i64)>(
            "SELECT coalesce(target, ''), action, result, count(*) FROM oplog GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        );
        let sources =
            sqlx::query_as::<_, (String, String)>("SELECT source, updated_at FROM source_reads ORDER BY source");
        let targets = sqlx::query_as::<_, (String, String)>(
            "SELECT o.target, max(r.finished_at) FROM runs r JOIN oplog o ON o.run_id = r.id \
             WHERE r.status = 'ok' AND o.target IS NOT NULL AND r.finished_at IS NOT NULL GROUP BY o.target \
             ORDER BY o.target",
        );
        Ok(StateMetrics {
            runs: self.ctx(runs.fetch_all(&self.pool).await)?,
            operations: self.ctx(operations.fetch_all(&self.pool).await)?,
            source_success: self.ctx(sources.fetch_all(&self.pool).await)?,
            target_success: self.ctx(targets.fetch_all(&self.pool).await)?,
        })
    }

    async fn add_token(&self, t: &TokenRow) -> Result<bool, StoreError> {
        let schools = self.encode("encoding", &t.schools)?;
        let q = sqlx::query(
            "INSERT INTO api_tokens (name, hash, role, schools, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&t.name)
        .bind(&t.hash)
        .bind(&t.role)
        .bind(schools)
        .bind(&t.created_at)
        .bind(&t.revoked_at);
        Ok(self.exec(q).await? == 1)
    }

    async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let q = sqlx::query_as::<_, (String, String, String, String, String, Option<String>)>(
            "SELECT name, hash, role, schools, created_at, revoked_at FROM api_tokens ORDER BY name",
        );
        let rows = self.ctx(q.fetch_all(&self.pool).await)?;
        rows.into_iter()
            .map(|(name, hash, role, schools, created_at, revoked_at)| {
                let schools = serde_json::from_str(&schools)
                    .map_err(|e| self.fail(format!("api_tokens: token {name:?} has unreadable schools: {e}")))?;
                Ok(TokenRow { name, hash, role, schools, created_at, revoked_at })
            })
            .collect()
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let q = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL");
        Ok(self.exec(q.bind(ts(now)).bind(name)).await? == 1)
    }

    async fn search_persons(
        &self,
        text: &str,
        schools: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<PersonHit>, StoreError> {
        if text.contains('\0') {
            // SQLite's LIKE ends its pattern at a NUL ("kim\0" would find every name ending in
            // "kim"); no stored name holds one (PostgreSQL's text cannot), so nothing is found.
            return Ok(Vec::new());
        }
        // LIKE's own characters in the text are taken as themselves.
        let escaped: String =
            text.chars().flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
        let pattern = format!("%{escaped}%");
        let schools = schools.map(|s| self.encode("encoding", &s)).transpose()?;
        // SQLite's lower() folds ASCII only; the text comes lowered in full, so the capitals of
        // the names a Swedish school has (Åsa, Öberg) are folded here too.
        let fold = |column: &str| {
            SEARCH_FOLDED
                .iter()
                .fold(format!("lower({column})"), |e, (upper, lower)| format!("replace({e}, '{upper}', '{lower}')"))
        };
        let sql = format!(
            "SELECT json_group_array(json_array(identity_id, username, given_name, family_name, school_unit)) FROM
                   (SELECT DISTINCT r.identity_id, i.username, r.given_name, r.family_name, r.school_unit
                      FROM source_records r JOIN identities i ON i.id = r.identity_id
                     WHERE r.gone_at IS NULL
                       AND NOT EXISTS (SELECT 1 FROM source_records p WHERE p.identity_id = r.identity_id AND p.protected = 1)
                       AND ({} LIKE ?1 ESCAPE '\\'
                            OR {} LIKE ?1 ESCAPE '\\'
                            OR lower(i.username) LIKE ?1 ESCAPE '\\')
                       AND (?2 IS NULL OR r.school_unit IN (SELECT value FROM json_each(?2)))
                     ORDER BY r.family_name, r.given_name, r.identity_id
                     LIMIT ?3)",
            fold("r.given_name || ' ' || r.family_name"),
            fold("r.family_name || ' ' || r.given_name"),
        );
        type Hit = super::rows::PersonHitIn;
        // Only constants make the text of `sql`; the values are bound.
        let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(pattern).bind(schools).bind(limit);
        let rows: Vec<Hit> = self.json_rows(q).await?;
        Ok(rows.into_iter().map(super::rows::person_hit).collect())
    }

    async fn add_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT INTO web_sessions (id, token_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.token_name)
        .bind(&s.csrf)
        .bind(ts(s.created_at))
        .bind(ts(s.expires_at));
        self.exec(q).await.map(|_| ())
    }

    async fn session(&self, id: &str, now: DateTime<Utc>) -> Result<Option<SessionRow>, StoreError> {
        let q = sqlx::query_as::<_, (String, String, String, String, String)>(
            "SELECT id, token_name, csrf, created_at, expires_at FROM web_sessions WHERE id = ? AND expires_at > ?",
        )
        .bind(id)
        .bind(ts(now));
        let Some((id, token_name, csrf, created_at, expires_at)) = self.ctx(q.fetch_optional(&self.pool).await)? else {
            return Ok(None);
        };
        let time = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| self.fail(format!("web_sessions: a time that does not read ({t:?}): {e}")))
        };
        Ok(Some(SessionRow { id, token_name, csrf, created_at: time(&created_at)?, expires_at: time(&expires_at)? }))
    }

    async fn remove_session(&self, id: &str) -> Result<(), StoreError> {
        self.exec(sqlx::query("DELETE FROM web_sessions WHERE id = ?").bind(id)).await.map(|_| ())
    }

    async fn remove_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.exec(sqlx::query("DELETE FROM web_sessions WHERE expires_at <= ?").bind(ts(now))).await
    }

    async fn source_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let sql = "SELECT json_group_array(json_array(source, records)) FROM source_counts";
        let rows: Vec<(String, usize)> = self.json_rows(sqlx::query(sql)).await?;
        Ok(rows.into_iter().collect())
    }

    async fn record_source_counts(
        &self,
        run: i64,
        counts: &BTreeMap<String, usize>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        let sql = "INSERT INTO source_counts (source, records, run_id, counted_at) VALUES (?1, ?2, ?3, ?4)
                   ON CONFLICT (source) DO UPDATE SET records = excluded.records, run_id = excluded.run_id,
                      counted_at = excluded.counted_at";
        self.exec_all(upserts(sql, counts, |q, n| q.bind(*n as i64).bind(run).bind(&now))).await
    }

    async fn source_reads(&self) -> Result<BTreeMap<String, SourceRead>, StoreError> {
        self.read_source_reads().await
    }

    async fn record_source_reads(
        &self,
        run: i64,
        reads: &BTreeMap<String, (SourceRead, bool)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write_source_reads(run, reads, now).await
    }

    async fn stored_records(&self, source: &str) -> Result<Vec<StoredSourceRecord>, StoreError> {
        self.read_stored_records(source).await
    }

    async fn stored_records_where(
        &self,
        source: &str,
        query: &connector_api::PriorQuery,
    ) -> Result<Vec<StoredSourceRecord>, StoreError> {
        self.read_stored_where(source, query).await
    }

    async fn stored_units(&self, source: &str) -> Result<BTreeMap<String, BTreeSet<Option<String>>>, StoreError> {
        self.read_stored_units(source).await
    }

    async fn stored_presence(&self, source: &str, ids: &[String]) -> Result<(usize, BTreeSet<String>), StoreError> {
        self.read_stored_presence(source, ids).await
    }

    async fn stored_unwhole(&self, source: &str) -> Result<bool, StoreError> {
        self.read_stored_unwhole(source).await
    }

    async fn record_digests_of(&self, keys: &[(String, String)]) -> Result<Vec<RecordDigest>, StoreError> {
        self.read_record_digests_of(keys).await
    }

    async fn mark_gone(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<(), StoreError> {
        self.write_gone(rows, now).await
    }

    async fn held_keys(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.read_held_keys().await
    }

    async fn record_digests(&self) -> Result<Vec<RecordDigest>, StoreError> {
        self.read_record_digests().await
    }

    async fn snapshot_of(
        &self,
        keys: &[(String, String)],
        civic: &[String],
        email: &[String],
        eppn: &[String],
    ) -> Result<Snapshot, StoreError> {
        self.read_snapshot_of(keys, civic, email, eppn).await
    }

    async fn records_data(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        self.read_records_data(keys).await
    }

    async fn owned_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        self.read_owned_counts().await
    }

    async fn applied_since(&self, run: i64) -> Result<Vec<(String, String, usize)>, StoreError> {
        let sql = "SELECT json_group_array(json_array(target, action, n)) FROM
                       (SELECT target, action, count(*) AS n FROM oplog WHERE run_id > ?1 AND result = 'ok'
                        GROUP BY target, action ORDER BY target, action)";
        self.json_rows(sqlx::query(sql).bind(run)).await
    }

    async fn hold_records(
        &self,
        run: i64,
        sources: &[String],
        rows: &[HeldRow],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write_held(run, sources, rows, now).await
    }

    async fn source_columns(&self) -> Result<BTreeMap<String, BTreeSet<String>>, StoreError> {
        let sql = "SELECT json_group_array(json_array(source, columns)) FROM source_columns";
        let rows: Vec<(String, String)> = self.json_rows(sqlx::query(sql)).await?;
        rows.into_iter()
            .map(|(source, cols)| Ok((source.clone(), self.decode(&format!("source_columns of {source:?}"), &cols)?)))
            .collect()
    }

    async fn record_source_columns(
        &self,
        run: i64,
        columns: &BTreeMap<String, BTreeSet<String>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        let bodies = columns
            .iter()
            .map(|(source, cols)| Ok((source, self.encode("source_columns", cols)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let sql = "INSERT INTO source_columns (source, columns, run_id, recorded_at) VALUES (?1, ?2, ?3, ?4)
                   ON CONFLICT (source) DO UPDATE SET columns = excluded.columns, run_id = excluded.run_id,
                      recorded_at = excluded.recorded_at";
        self.exec_all(upserts(sql, bodies, |q, body| q.bind(body).bind(run).bind(&now))).await
    }
}
