//! The state database: identities, their source records, allocated names, owned accounts, runs,
//! the operation log and saved plans. SQLite through sqlx, with embedded migrations.
//!
//! The store is the only place a full civic number is kept. Everything it returns for display
//! carries masked values.

use crate::identity::{CivicChange, Decision};
use crate::model::{AccountStatus, IdentityId, OwnedAccount, Snapshot, StoredRecord};
use crate::plan::OwnedGroup;
use chrono::{DateTime, Utc};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlSafeStr, Sqlite, SqlitePool};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// A stored record as the snapshot reads it.
type StoredRow =
    (String, String, String, Option<String>, String, Option<String>, Option<String>, Option<String>, String, bool);

/// The schema's migrations, in order; each runs once per database.
const MIGRATIONS: [(i64, &str, &str); 8] = [
    (1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
    (2, "conflicts and civic history", include_str!("../migrations/sqlite/0002_conflicts_and_civic_history.sql")),
    (3, "correlation keys", include_str!("../migrations/sqlite/0003_correlation_keys.sql")),
    (4, "groups", include_str!("../migrations/sqlite/0004_groups.sql")),
    (5, "source counts", include_str!("../migrations/sqlite/0005_source_counts.sql")),
    (6, "lifecycle", include_str!("../migrations/sqlite/0006_lifecycle.sql")),
    (7, "source columns", include_str!("../migrations/sqlite/0007_source_columns.sql")),
    (8, "meta", include_str!("../migrations/sqlite/0008_meta.sql")),
];

/// Rows per multi-row statement: 17 columns × 1,000 rows stays under SQLite's 32,766 variables.
const CHUNK_ROWS: usize = 1000;

/// One group ownership row to write.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub target: String,
    pub name: String,
    pub key: String,
    pub anchor: Option<String>,
    pub school: String,
    /// The create is about to be sent.
    pub pending: bool,
}

/// One ownership row to write.
struct AccountRow<'a> {
    target: &'a str,
    identity: &'a str,
    key: &'a str,
    anchor: Option<&'a str>,
    status: AccountStatus,
}

/// A state database failure. The operator must fix the database path or permissions, or
/// restore the file; enid does not run without its state.
#[derive(Debug, thiserror::Error)]
#[error("state database {path}: {message}")]
pub struct StoreError {
    pub path: String,
    pub message: String,
}

/// A handle on the state database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// The database file, for messages.
    path: String,
    /// `open` created the file: the state is new.
    created: bool,
}

/// One source record as it is written to the state database.
#[derive(Debug, Clone)]
pub struct RecordRow {
    pub source: String,
    pub person_id: String,
    pub identity_id: IdentityId,
    pub civic_no: Option<String>,
    pub given_name: String,
    pub family_name: String,
    pub role: String,
    pub school_unit: Option<String>,
    pub groups: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub email: Option<String>,
    pub eppn: Option<String>,
    pub protected: bool,
    pub content_hash: String,
}

/// A record as shown by `enid explain`, civic number masked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredRecordView {
    pub source: String,
    pub person_id: String,
    pub civic_no: Option<String>,
    pub given_name: String,
    pub family_name: String,
    pub role: String,
    pub school_unit: Option<String>,
    pub groups: Vec<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub first_seen: String,
    pub updated_at: String,
    /// The record marks protected personal data (not shown; it decides what is redacted).
    #[serde(skip)]
    pub protected: bool,
}

/// One row of the operation log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogRow {
    pub id: i64,
    pub run_id: i64,
    pub at: String,
    pub identity_id: Option<String>,
    pub username: Option<String>,
    pub target: Option<String>,
    pub school: Option<String>,
    pub action: String,
    pub detail: Option<String>,
    pub result: String,
    pub error: Option<String>,
}

/// What one operation did, for the log and the ownership table.
#[derive(Debug, Clone)]
pub struct OpRecord {
    pub target: String,
    pub identity_id: IdentityId,
    pub username: String,
    pub school: String,
    pub action: String,
    pub detail: String,
    /// A group operation: it changes no account ownership row.
    pub group: bool,
    pub result: OpResult,
}

/// How an operation ended.
#[derive(Debug, Clone)]
pub enum OpResult {
    /// Done, with what it means for the ownership row.
    Ok(Ownership),
    Failed(String),
    /// Not sent, because an earlier failure stopped the target.
    Skipped(String),
}

/// What a successful operation means for the account's ownership row.
#[derive(Debug, Clone)]
pub enum Ownership {
    /// The account is at `key` with this status (the anchor is kept when `None`).
    Set { key: String, anchor: Option<String>, status: AccountStatus },
    /// The account moved to `key`; its status stays (a rename).
    Moved { key: String },
    /// The account is gone.
    Removed,
    /// Nothing to record (an attribute update, a group operation).
    Unchanged,
}

/// Filters for `enid log`.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub run: Option<i64>,
    pub identity: Option<String>,
    pub school: Option<String>,
    pub limit: i64,
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

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Store {
    /// Opens the database at `path` and brings its schema up to date. A missing file is created
    /// (readable by its owner only: it holds civic numbers) and [`Store::created`] says so; a
    /// missing directory is an error, never created: a typo in `[state] path` must not start a
    /// fresh, empty state beside the real one.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let err = |message: String| StoreError { path: shown.clone(), message };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(err(format!(
                "the directory {} does not exist; fix [state] path, or create the directory (owner only: \
                 `install -d -m 0700 {}`)",
                dir.display(),
                dir.display()
            )));
        }
        let created = owner_only_file(path).map_err(err)?;
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| err(e.to_string()))?
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| err(format!("cannot open: {e}")))?;
        let migrator = Migrator::with_migrations(
            MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(*version, (*description).into(), MigrationType::Simple, sql.into_sql_str(), false)
                })
                .collect(),
        );
        migrator.run(&pool).await.map_err(|e| err(format!("cannot migrate the schema: {e}")))?;
        Ok(Store { pool, path: shown, created })
    }

    /// Whether [`Store::open`] created the database file (a new, empty state).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The database file, as configured.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether an apply has ever run against this state (an adopt does not count). A state that
    /// never applied but faces targets holding enid's accounts was lost or replaced.
    pub async fn has_applied(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM runs WHERE command = 'apply'")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Records usernames found on the targets as taken (`enid adopt`): they belong to no identity
    /// enid knows, and are never allocated.
    pub async fn reserve_usernames(&self, names: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for chunk in names.chunks(CHUNK_ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO usernames (username, identity_id, allocated_at) ");
            q.push_values(chunk, |mut b, name| {
                b.push_bind(name).push_bind("").push_bind(&now);
            });
            q.push(" ON CONFLICT (username) DO NOTHING");
            q.build().execute(&mut *tx).await.map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Usernames recorded as taken by `enid adopt` that no identity has claimed (lowercased).
    pub async fn reserved_usernames(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT lower(username) FROM usernames WHERE identity_id = ''")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    /// Releases the protection the state remembers for these identities (an operator approved
    /// it). Their records are rewritten on the next run.
    pub async fn unprotect(&self, identities: &[IdentityId]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for id in identities {
            sqlx::query("UPDATE source_records SET protected = 0, content_hash = '' WHERE identity_id = ?1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Identities any of whose stored records marks protected personal data: shown by enid id
    /// only, in every log row, also those written before they became protected.
    pub async fn protected_identities(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT identity_id FROM source_records WHERE protected = 1")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().collect())
    }

    /// A value of the state's own settings (`meta`), if set.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    /// Sets a value of the state's own settings.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Marks runs left `running` by a process that died as `interrupted`. Called with the run
    /// lock held, so no live run is among them.
    pub async fn mark_interrupted(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'interrupted', finished_at = ?1,
                    message = 'the process ended before the run finished; the next run continued from the targets'
             WHERE status = 'running'",
        )
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(done.rows_affected())
    }

    /// Writes a consistent copy of the database to `dest` (SQLite `VACUUM INTO`), safe while
    /// another enid process uses the state. `dest` must not exist or be empty; the copy is
    /// readable by its owner only.
    pub async fn backup(&self, dest: &Path) -> Result<(), StoreError> {
        let err = |message: String| StoreError { path: self.path.clone(), message };
        if std::fs::metadata(dest).is_ok_and(|m| m.len() > 0) {
            return Err(err(format!("backup: {} exists and is not empty; choose a new file name", dest.display())));
        }
        owner_only_file(dest).map_err(|m| err(format!("backup: {m}")))?;
        let target = dest.to_str().ok_or_else(|| err(format!("backup: {} is not valid UTF-8", dest.display())))?;
        sqlx::query("VACUUM INTO ?1").bind(target).execute(&self.pool).await.map_err(|e| {
            let _ = std::fs::remove_file(dest);
            err(format!("backup to {} failed: {e}", dest.display()))
        })?;
        Ok(())
    }

    fn err(&self, e: sqlx::Error) -> StoreError {
        StoreError { path: self.path.clone(), message: e.to_string() }
    }

    /// Everything the functional core needs from the state.
    ///
    /// Each table comes back as one JSON array built inside SQLite: one row per query instead of
    /// one per identity, which makes reading 100,000 identities about ten times faster.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let (identities, records, accounts) = tokio::try_join!(
            self.json_rows::<(String, Option<String>)>(
                "SELECT json_group_array(json_array(id, username)) FROM identities"
            ),
            self.json_rows::<StoredRow>(
                "SELECT json_group_array(json_array(source, person_id, identity_id, civic_no, content_hash, school_unit,
                                                    email, eppn, role, json(CASE WHEN protected = 1 THEN 'true' ELSE 'false' END)))
                 FROM source_records"
            ),
            self.json_rows::<(String, String, String, Option<String>, String, Option<String>)>(
                "SELECT json_group_array(json_array(target, identity_id, key, anchor, status, disabled_at)) FROM accounts"
            ),
        )?;
        let mut snap = Snapshot::default();
        snap.identities.extend(identities);
        for (source, person_id, identity_id, civic_no, content_hash, school_unit, email, eppn, role, protected) in
            records
        {
            let rec = StoredRecord { identity_id, civic_no, content_hash, school_unit, role, protected, email, eppn };
            snap.insert_record(source, person_id, rec);
        }
        snap.accounts = accounts
            .into_iter()
            .map(|(target, identity_id, key, anchor, status, disabled_at)| OwnedAccount {
                disabled_at: disabled_at.and_then(|d| d.get(..10).and_then(|d| d.parse().ok())),
                target,
                identity_id,
                key,
                anchor,
                status: AccountStatus::parse(&status).unwrap_or(AccountStatus::Pending),
            })
            .collect();
        Ok(snap)
    }

    /// Every username that may not be given to someone new, lowercased: all ever allocated,
    /// except names released more than `quarantine_days` before `now` (never, without a period).
    pub async fn allocated_usernames(
        &self,
        now: DateTime<Utc>,
        quarantine_days: Option<u32>,
    ) -> Result<Vec<String>, StoreError> {
        let cutoff = quarantine_days.map(|d| ts(now - chrono::Duration::days(i64::from(d))));
        let row = sqlx::query(
            "SELECT json_group_array(lower(username)) FROM usernames
             WHERE released_at IS NULL OR ?1 IS NULL OR released_at > ?1",
        )
        .bind(cutoff)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let text: String = row.try_get(0).map_err(|e| self.err(e))?;
        serde_json::from_str(&text)
            .map_err(|e| StoreError { path: self.path.clone(), message: format!("reading the state: {e}") })
    }

    async fn json_rows<T: serde::de::DeserializeOwned>(&self, sql: &'static str) -> Result<Vec<T>, StoreError> {
        let row = sqlx::query(sql).fetch_one(&self.pool).await.map_err(|e| self.err(e))?;
        let text: String = row.try_get(0).map_err(|e| self.err(e))?;
        serde_json::from_str(&text)
            .map_err(|e| StoreError { path: self.path.clone(), message: format!("reading the state: {e}") })
    }

    /// Owned accounts, all or of one identity.
    pub async fn accounts(&self, identity: Option<&str>) -> Result<Vec<OwnedAccount>, StoreError> {
        let rows = sqlx::query(
            "SELECT target, identity_id, key, anchor, status, disabled_at FROM accounts
             WHERE ?1 IS NULL OR identity_id = ?1 ORDER BY target",
        )
        .bind(identity)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|row| OwnedAccount {
                target: row.get(0),
                identity_id: row.get(1),
                key: row.get(2),
                anchor: row.get(3),
                status: AccountStatus::parse(row.get::<&str, _>(4)).unwrap_or(AccountStatus::Pending),
                disabled_at: row.get::<Option<String>, _>(5).and_then(|d| d.get(..10).and_then(|d| d.parse().ok())),
            })
            .collect())
    }

    /// Groups enid created.
    pub async fn groups(&self) -> Result<Vec<OwnedGroup>, StoreError> {
        let rows: Vec<(String, String, String, Option<String>, String, String)> = self
            .json_rows("SELECT json_group_array(json_array(target, name, key, anchor, status, school)) FROM groups")
            .await?;
        Ok(rows
            .into_iter()
            .map(|(target, name, key, anchor, status, school)| OwnedGroup {
                target,
                name,
                key,
                anchor,
                school,
                pending: status == "pending",
            })
            .collect())
    }

    /// Writes group ownership rows: `pending` before a create is sent, `active` once it is known
    /// to exist (a create's result, or an adoption).
    pub async fn record_groups(&self, rows: &[GroupRow], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for chunk in rows.chunks(CHUNK_ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO groups (target, name, key, anchor, school, status, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, g| {
                b.push_bind(&g.target)
                    .push_bind(&g.name)
                    .push_bind(&g.key)
                    .push_bind(&g.anchor)
                    .push_bind(&g.school)
                    .push_bind(if g.pending { "pending" } else { "active" })
                    .push_bind(&now)
                    .push_bind(&now);
            });
            q.push(
                " ON CONFLICT (target, name) DO UPDATE SET key = excluded.key, anchor = excluded.anchor,
                    school = excluded.school, status = excluded.status, updated_at = excluded.updated_at",
            );
            q.build().execute(&mut *tx).await.map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Forgets a group enid deleted.
    pub async fn forget_group(&self, target: &str, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM groups WHERE target = ?1 AND name = ?2")
            .bind(target)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Starts a run and returns its id.
    pub async fn begin_run(&self, command: &str, plan_id: Option<&str>, now: DateTime<Utc>) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO runs (command, plan_id, started_at, status) VALUES (?1, ?2, ?3, 'running') RETURNING id",
        )
        .bind(command)
        .bind(plan_id)
        .bind(ts(now))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(row.get(0))
    }

    /// Ends a run with its status (`ok`, `failed`, `stopped`) and a one-line message.
    pub async fn finish_run(
        &self,
        run: i64,
        status: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET status = ?1, message = ?2, finished_at = ?3 WHERE id = ?4")
            .bind(status)
            .bind(message)
            .bind(ts(now))
            .bind(run)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records new identities with their usernames, and new or changed source records, in one
    /// transaction.
    pub async fn commit_identities(
        &self,
        new: &[(IdentityId, String)],
        records: &[RecordRow],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for chunk in new.chunks(CHUNK_ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO identities (id, username, created_at) ");
            q.push_values(chunk, |mut b, (id, username)| {
                b.push_bind(id).push_bind(username).push_bind(&now);
            });
            q.build().execute(&mut *tx).await.map_err(|e| self.err(e))?;
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO usernames (username, identity_id, allocated_at) ");
            q.push_values(chunk, |mut b, (id, username)| {
                b.push_bind(username).push_bind(id).push_bind(&now);
            });
            // A name whose quarantine ended changes hands.
            q.push(
                " ON CONFLICT (username) DO UPDATE SET identity_id = excluded.identity_id,
                    allocated_at = excluded.allocated_at, released_at = NULL",
            );
            q.build().execute(&mut *tx).await.map_err(|e| self.err(e))?;
        }
        for chunk in records.chunks(CHUNK_ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO source_records (source, person_id, identity_id, civic_no, given_name, family_name, role,
                    school_unit, groups, start_date, end_date, email, eppn, protected, content_hash, first_seen,
                    updated_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&r.source)
                    .push_bind(&r.person_id)
                    .push_bind(&r.identity_id)
                    .push_bind(&r.civic_no)
                    .push_bind(&r.given_name)
                    .push_bind(&r.family_name)
                    .push_bind(&r.role)
                    .push_bind(&r.school_unit)
                    .push_bind(&r.groups)
                    .push_bind(&r.start_date)
                    .push_bind(&r.end_date)
                    .push_bind(&r.email)
                    .push_bind(&r.eppn)
                    .push_bind(r.protected)
                    .push_bind(&r.content_hash)
                    .push_bind(&now)
                    .push_bind(&now);
            });
            q.push(
                " ON CONFLICT (source, person_id) DO UPDATE SET identity_id = excluded.identity_id,
                    civic_no = excluded.civic_no, given_name = excluded.given_name, family_name = excluded.family_name,
                    role = excluded.role, school_unit = excluded.school_unit, groups = excluded.groups,
                    start_date = excluded.start_date, end_date = excluded.end_date, email = excluded.email,
                    eppn = excluded.eppn, protected = excluded.protected, content_hash = excluded.content_hash,
                    updated_at = excluded.updated_at",
            );
            q.build().execute(&mut *tx).await.map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Gives identities their new usernames. The old name stays in `usernames`, released, so it
    /// is never given to anyone else.
    pub async fn commit_renames(
        &self,
        renames: &[crate::plan::RenameInfo],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if renames.is_empty() {
            return Ok(());
        }
        let now = ts(now);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for r in renames {
            sqlx::query("UPDATE usernames SET released_at = ?1 WHERE username = ?2")
                .bind(&now)
                .bind(&r.old)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            sqlx::query(
                "INSERT INTO usernames (username, identity_id, allocated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (username) DO UPDATE SET identity_id = excluded.identity_id,
                    allocated_at = excluded.allocated_at, released_at = NULL",
            )
            .bind(&r.new)
            .bind(&r.identity)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            sqlx::query("UPDATE identities SET username = ?1 WHERE id = ?2")
                .bind(&r.new)
                .bind(&r.identity)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            sqlx::query("DELETE FROM rename_approvals WHERE identity_id = ?1")
                .bind(&r.identity)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Approved renames: identity → the new username that was approved.
    pub async fn rename_approvals(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> = self
            .json_rows("SELECT json_group_array(json_array(identity_id, new_username)) FROM rename_approvals")
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// Approves renaming an identity to `new_username`.
    pub async fn approve_rename(
        &self,
        identity: &str,
        new_username: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO rename_approvals (identity_id, new_username, approved_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (identity_id) DO UPDATE SET new_username = excluded.new_username, approved_at = excluded.approved_at",
        )
        .bind(identity)
        .bind(new_username)
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Writes ownership rows before their creates are sent: if the run dies mid-way, the next
    /// run finds the entries and completes the record instead of creating duplicates.
    pub async fn record_pending(
        &self,
        rows: &[(String, IdentityId, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let rows: Vec<AccountRow<'_>> = rows
            .iter()
            .map(|(target, identity, key)| AccountRow {
                target,
                identity,
                key,
                anchor: None,
                status: AccountStatus::Pending,
            })
            .collect();
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        self.upsert_accounts(&mut tx, &rows, &ts(now)).await?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Completes ownership records of accounts found on a target (adoptions).
    pub async fn adopt(&self, rows: &[crate::plan::Adoption], now: DateTime<Utc>) -> Result<(), StoreError> {
        let rows: Vec<AccountRow<'_>> = rows
            .iter()
            .map(|a| AccountRow {
                target: &a.target,
                identity: &a.identity,
                key: &a.key,
                anchor: a.anchor.as_deref(),
                status: if a.disabled { AccountStatus::Disabled } else { AccountStatus::Active },
            })
            .collect();
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        self.upsert_accounts(&mut tx, &rows, &ts(now)).await?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Inserts or updates ownership rows. A row's anchor is kept when the new one is unknown,
    /// except for a pending row, which starts over.
    async fn upsert_accounts(
        &self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        rows: &[AccountRow<'_>],
        now: &str,
    ) -> Result<(), StoreError> {
        for chunk in rows.chunks(CHUNK_ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO accounts (target, identity_id, key, anchor, status, created_at, updated_at, disabled_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.target)
                    .push_bind(r.identity)
                    .push_bind(r.key)
                    .push_bind(r.anchor)
                    .push_bind(r.status.as_str())
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind((r.status == AccountStatus::Disabled).then_some(now));
            });
            q.push(
                " ON CONFLICT (target, identity_id) DO UPDATE SET key = excluded.key,
                    anchor = CASE WHEN excluded.status = 'pending' THEN NULL
                                  ELSE COALESCE(excluded.anchor, accounts.anchor) END,
                    status = excluded.status, updated_at = excluded.updated_at,
                    disabled_at = CASE WHEN excluded.status = 'disabled'
                                       THEN COALESCE(accounts.disabled_at, excluded.updated_at) ELSE NULL END",
            );
            q.build().execute(&mut **tx).await.map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Logs a batch of operations and updates the ownership table from their outcomes, in one
    /// transaction.
    pub async fn record_ops(&self, run: i64, ops: &[OpRecord], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for chunk in ops.chunks(CHUNK_ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO oplog (run_id, at, identity_id, username, target, school, action, detail, result, error) ",
            );
            q.push_values(chunk, |mut b, op| {
                let (result, error) = match &op.result {
                    OpResult::Ok(_) => ("ok", None),
                    OpResult::Failed(e) => ("failed", Some(e.as_str())),
                    OpResult::Skipped(e) => ("skipped", Some(e.as_str())),
                };
                b.push_bind(run)
                    .push_bind(&now)
                    .push_bind(&op.identity_id)
                    .push_bind(&op.username)
                    .push_bind(&op.target)
                    .push_bind(&op.school)
                    .push_bind(&op.action)
                    .push_bind(&op.detail)
                    .push_bind(result)
                    .push_bind(error);
            });
            q.build().execute(&mut *tx).await.map_err(|e| self.err(e))?;
        }
        let mut changed = Vec::new();
        for op in ops.iter().filter(|o| !o.group) {
            match &op.result {
                OpResult::Ok(Ownership::Set { key, anchor, status }) => changed.push(AccountRow {
                    target: &op.target,
                    identity: &op.identity_id,
                    key,
                    anchor: anchor.as_deref(),
                    status: *status,
                }),
                OpResult::Ok(Ownership::Moved { key }) => {
                    sqlx::query("UPDATE accounts SET key = ?1, updated_at = ?2 WHERE target = ?3 AND identity_id = ?4")
                        .bind(key)
                        .bind(&now)
                        .bind(&op.target)
                        .bind(&op.identity_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e))?;
                }
                OpResult::Ok(Ownership::Removed) => {
                    sqlx::query("DELETE FROM accounts WHERE target = ?1 AND identity_id = ?2")
                        .bind(&op.target)
                        .bind(&op.identity_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e))?;
                }
                _ => {}
            }
        }
        self.upsert_accounts(&mut tx, &changed, &now).await?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Valid records per source in the last applied run.
    pub async fn source_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let rows: Vec<(String, usize)> =
            self.json_rows("SELECT json_group_array(json_array(source, records)) FROM source_counts").await?;
        Ok(rows.into_iter().collect())
    }

    /// Remembers how many valid records each source gave in an applied run.
    pub async fn record_source_counts(
        &self,
        run: i64,
        counts: &BTreeMap<String, usize>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for (source, n) in counts {
            sqlx::query(
                "INSERT INTO source_counts (source, records, run_id, counted_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (source) DO UPDATE SET records = excluded.records, run_id = excluded.run_id,
                    counted_at = excluded.counted_at",
            )
            .bind(source)
            .bind(*n as i64)
            .bind(run)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The fields each source delivered at the last applied run.
    pub async fn source_columns(&self) -> Result<BTreeMap<String, BTreeSet<String>>, StoreError> {
        let rows: Vec<(String, String)> =
            self.json_rows("SELECT json_group_array(json_array(source, columns)) FROM source_columns").await?;
        rows.into_iter()
            .map(|(source, cols)| {
                serde_json::from_str(&cols).map(|c| (source.clone(), c)).map_err(|e| StoreError {
                    path: self.path.clone(),
                    message: format!("source_columns of {source:?}: {e}"),
                })
            })
            .collect()
    }

    /// Remembers which fields each source delivered in an applied run.
    pub async fn record_source_columns(
        &self,
        run: i64,
        columns: &BTreeMap<String, BTreeSet<String>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for (source, cols) in columns {
            let body = serde_json::to_string(cols)
                .map_err(|e| StoreError { path: self.path.clone(), message: format!("source_columns: {e}") })?;
            sqlx::query(
                "INSERT INTO source_columns (source, columns, run_id, recorded_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (source) DO UPDATE SET columns = excluded.columns, run_id = excluded.run_id,
                    recorded_at = excluded.recorded_at",
            )
            .bind(source)
            .bind(body)
            .bind(run)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The operators' conflict decisions, by conflict id.
    pub async fn decisions(&self) -> Result<BTreeMap<String, Decision>, StoreError> {
        let rows: Vec<(String, String)> = self
            .json_rows("SELECT json_group_array(json_array(conflict_id, decision)) FROM conflict_decisions")
            .await?;
        rows.into_iter()
            .map(|(id, d)| {
                serde_json::from_str(&d)
                    .map(|d| (id.clone(), d))
                    .map_err(|e| StoreError { path: self.path.clone(), message: format!("decision {id}: {e}") })
            })
            .collect()
    }

    /// Records a decision on a conflict; a later decision on the same conflict replaces it.
    pub async fn decide(
        &self,
        conflict_id: &str,
        decision: &Decision,
        records: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let json = |e: serde_json::Error| StoreError { path: self.path.clone(), message: format!("encoding: {e}") };
        let body = serde_json::to_string(decision).map_err(json)?;
        let records = serde_json::to_string(records).map_err(json)?;
        sqlx::query(
            "INSERT INTO conflict_decisions (conflict_id, decision, records, decided_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (conflict_id) DO UPDATE SET decision = excluded.decision, records = excluded.records,
                decided_at = excluded.decided_at",
        )
        .bind(conflict_id)
        .bind(body)
        .bind(records)
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records civic-number changes of linked records.
    pub async fn record_civic_changes(
        &self,
        run: i64,
        changes: &[CivicChange],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for chunk in changes.chunks(CHUNK_ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO civic_history (source, person_id, identity_id, old_civic_no, new_civic_no, changed_at, run_id) ",
            );
            q.push_values(chunk, |mut b, c| {
                b.push_bind(&c.source)
                    .push_bind(&c.person_id)
                    .push_bind(&c.identity_id)
                    .push_bind(&c.old)
                    .push_bind(&c.new)
                    .push_bind(&now)
                    .push_bind(run);
            });
            q.build().execute(&mut *tx).await.map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The civic-number history of an identity, masked: (record, old, new, when).
    pub async fn civic_history_of(&self, identity: &str) -> Result<Vec<CivicHistoryRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT source, person_id, old_civic_no, new_civic_no, changed_at FROM civic_history
             WHERE identity_id = ?1 ORDER BY id",
        )
        .bind(identity)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| CivicHistoryRow {
                record: crate::identity::record_label(&r.get::<String, _>(0), &r.get::<String, _>(1)),
                old: r.get::<Option<String>, _>(2).map(|c| describe_stored(&c)),
                new: r.get::<Option<String>, _>(3).map(|c| describe_stored(&c)),
                changed_at: r.get(4),
            })
            .collect())
    }

    /// Saves a plan for a later `enid apply --plan ID`.
    pub async fn save_plan(&self, plan_id: &str, body: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plans (plan_id, created_at, body) VALUES (?1, ?2, ?3) ON CONFLICT (plan_id) DO NOTHING",
        )
        .bind(plan_id)
        .bind(ts(now))
        .bind(body)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A saved plan's JSON, if there is one with this id.
    pub async fn load_plan(&self, plan_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT body FROM plans WHERE plan_id = ?1")
            .bind(plan_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The operation log, newest last.
    pub async fn log(&self, f: &LogFilter) -> Result<Vec<LogRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, run_id, at, identity_id, username, target, school, action, detail, result, error FROM (
                SELECT * FROM oplog
                WHERE (?1 IS NULL OR run_id = ?1)
                  AND (?2 IS NULL OR identity_id = ?2)
                  AND (?3 IS NULL OR (',' || school || ',') LIKE ('%,' || ?3 || ',%'))
                ORDER BY id DESC LIMIT ?4) ORDER BY id",
        )
        .bind(f.run)
        .bind(&f.identity)
        .bind(&f.school)
        .bind(if f.limit > 0 { f.limit } else { i64::MAX })
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| LogRow {
                id: r.get(0),
                run_id: r.get(1),
                at: r.get(2),
                identity_id: r.get(3),
                username: r.get(4),
                target: r.get(5),
                school: r.get(6),
                action: r.get(7),
                detail: r.get(8),
                result: r.get(9),
                error: r.get(10),
            })
            .collect())
    }

    /// Runs, newest last: (id, command, plan_id, started, finished, status, message).
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, command, plan_id, started_at, finished_at, status, message FROM
               (SELECT * FROM runs ORDER BY id DESC LIMIT ?1) ORDER BY id",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| RunRow {
                id: r.get(0),
                command: r.get(1),
                plan_id: r.get(2),
                started_at: r.get(3),
                finished_at: r.get(4),
                status: r.get(5),
                message: r.get(6),
            })
            .collect())
    }

    /// Finds an identity by enid id, username, or a source's person_id.
    pub async fn find_identity(&self, needle: &str) -> Result<Vec<IdentityId>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM identities WHERE id = ?1 OR username = ?1
             UNION SELECT identity_id FROM source_records WHERE person_id = ?1
             UNION SELECT identity_id FROM usernames WHERE username = ?1 AND identity_id <> ''",
        )
        .bind(needle)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    /// The stored records of an identity, civic numbers masked.
    pub async fn records_of(&self, identity: &str) -> Result<Vec<StoredRecordView>, StoreError> {
        let rows = sqlx::query(
            "SELECT source, person_id, civic_no, given_name, family_name, role, school_unit, groups, start_date,
                    end_date, first_seen, updated_at, protected
             FROM source_records WHERE identity_id = ?1 ORDER BY source, person_id",
        )
        .bind(identity)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|r| StoredRecordView {
                source: r.get(0),
                // Shown outside the state database: a key that is a civic number is masked.
                person_id: connector_api::civic::mask_if_civic(&r.get::<String, _>(1)).into_owned(),
                civic_no: r.get::<Option<String>, _>(2).map(|c| mask_stored(&c)),
                given_name: r.get(3),
                family_name: r.get(4),
                role: r.get(5),
                school_unit: r.get(6),
                groups: r.get::<String, _>(7).split('|').filter(|g| !g.is_empty()).map(String::from).collect(),
                start_date: r.get(8),
                end_date: r.get(9),
                first_seen: r.get(10),
                updated_at: r.get(11),
                protected: r.get::<i64, _>(12) != 0,
            })
            .collect())
    }
}

/// One run, for `enid log` headers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub command: String,
    pub plan_id: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub message: Option<String>,
}

/// One civic-number change, masked, for `enid explain`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CivicHistoryRow {
    pub record: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub changed_at: String,
}

/// A stored civic number as shown: masked, with its kind.
pub fn describe_stored(c: &str) -> String {
    let kind = if c.len() == 12 && c[8..].bytes().any(|b| b.is_ascii_alphabetic()) {
        "temporary number"
    } else if c.len() >= 8 && c[6..8].parse::<u32>().is_ok_and(|d| d > 60) {
        "samordningsnummer"
    } else {
        "personnummer"
    };
    format!("{} ({kind})", mask_stored(c))
}

/// Masks a normalised civic number read from the database.
fn mask_stored(c: &str) -> String {
    let head: String = c.chars().take(8).collect();
    format!("{head}-****")
}
