//! The state database: identities, their source records, allocated names, owned accounts, runs,
//! the operation log and saved plans. SQLite through sqlx, with embedded migrations.
//!
//! The store is the only place a full civic number is kept. Everything it returns for display
//! carries masked values.

use crate::model::{AccountStatus, IdentityId, OwnedAccount, Snapshot, StoredRecord};
use chrono::{DateTime, Utc};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlSafeStr, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

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
    path: String,
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
    pub result: OpResult,
}

/// How an operation ended.
#[derive(Debug, Clone)]
pub enum OpResult {
    /// Done; the account is now at `key` with this status (None: account removed).
    Ok { key: Option<String>, anchor: Option<String>, status: Option<AccountStatus> },
    Failed(String),
    /// Not sent, because an earlier failure stopped the target.
    Skipped(String),
}

/// Filters for `enid log`.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub run: Option<i64>,
    pub identity: Option<String>,
    pub school: Option<String>,
    pub limit: i64,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let err = |message: String| StoreError { path: shown.clone(), message };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create directory {}: {e}", dir.display())))?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| err(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| err(format!("cannot open: {e}")))?;
        let migrator = Migrator::with_migrations(vec![Migration::new(
            1,
            "init".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0001_init.sql").into_sql_str(),
            false,
        )]);
        migrator.run(&pool).await.map_err(|e| err(format!("cannot migrate the schema: {e}")))?;
        Ok(Store { pool, path: shown })
    }

    fn err(&self, e: sqlx::Error) -> StoreError {
        StoreError { path: self.path.clone(), message: e.to_string() }
    }

    /// Everything the functional core needs from the state.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut snap = Snapshot::default();
        for row in sqlx::query("SELECT id, username FROM identities").fetch_all(&self.pool).await.map_err(|e| self.err(e))? {
            snap.identities.insert(row.get(0), row.get(1));
        }
        let rows = sqlx::query("SELECT source, person_id, identity_id, civic_no, content_hash, school_unit FROM source_records")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        for row in rows {
            snap.records.insert(
                (row.get(0), row.get(1)),
                StoredRecord {
                    identity_id: row.get(2),
                    civic_no: row.get(3),
                    content_hash: row.get(4),
                    school_unit: row.get(5),
                },
            );
        }
        for row in sqlx::query("SELECT username, identity_id FROM usernames").fetch_all(&self.pool).await.map_err(|e| self.err(e))? {
            snap.usernames.insert(row.get(0), row.get(1));
        }
        snap.accounts = self.accounts(None).await?;
        Ok(snap)
    }

    /// Owned accounts, all or of one identity.
    pub async fn accounts(&self, identity: Option<&str>) -> Result<Vec<OwnedAccount>, StoreError> {
        let rows = sqlx::query(
            "SELECT target, identity_id, key, anchor, status FROM accounts WHERE ?1 IS NULL OR identity_id = ?1 ORDER BY target",
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
            })
            .collect())
    }

    /// Starts a run and returns its id.
    pub async fn begin_run(&self, command: &str, plan_id: Option<&str>, now: DateTime<Utc>) -> Result<i64, StoreError> {
        let row = sqlx::query("INSERT INTO runs (command, plan_id, started_at, status) VALUES (?1, ?2, ?3, 'running') RETURNING id")
            .bind(command)
            .bind(plan_id)
            .bind(ts(now))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.get(0))
    }

    /// Ends a run with its status (`ok`, `failed`, `stopped`) and a one-line message.
    pub async fn finish_run(&self, run: i64, status: &str, message: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
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
        for (id, username) in new {
            sqlx::query("INSERT INTO identities (id, username, created_at) VALUES (?1, ?2, ?3)")
                .bind(id)
                .bind(username)
                .bind(&now)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            sqlx::query("INSERT INTO usernames (username, identity_id, allocated_at) VALUES (?1, ?2, ?3)")
                .bind(username)
                .bind(id)
                .bind(&now)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        for r in records {
            sqlx::query(
                "INSERT INTO source_records (source, person_id, identity_id, civic_no, given_name, family_name, role,
                    school_unit, groups, start_date, end_date, content_hash, first_seen, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)
                 ON CONFLICT (source, person_id) DO UPDATE SET identity_id = excluded.identity_id,
                    civic_no = excluded.civic_no, given_name = excluded.given_name, family_name = excluded.family_name,
                    role = excluded.role, school_unit = excluded.school_unit, groups = excluded.groups,
                    start_date = excluded.start_date, end_date = excluded.end_date,
                    content_hash = excluded.content_hash, updated_at = excluded.updated_at",
            )
            .bind(&r.source)
            .bind(&r.person_id)
            .bind(&r.identity_id)
            .bind(&r.civic_no)
            .bind(&r.given_name)
            .bind(&r.family_name)
            .bind(&r.role)
            .bind(&r.school_unit)
            .bind(&r.groups)
            .bind(&r.start_date)
            .bind(&r.end_date)
            .bind(&r.content_hash)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Writes ownership rows before their creates are sent: if the run dies mid-way, the next
    /// run finds the entries and completes the record instead of creating duplicates.
    pub async fn record_pending(&self, rows: &[(String, IdentityId, String)], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for (target, identity, key) in rows {
            sqlx::query(
                "INSERT INTO accounts (target, identity_id, key, anchor, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, NULL, 'pending', ?4, ?4)
                 ON CONFLICT (target, identity_id) DO UPDATE SET key = excluded.key, anchor = NULL,
                    status = 'pending', updated_at = excluded.updated_at",
            )
            .bind(target)
            .bind(identity)
            .bind(key)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Completes ownership records of accounts found on a target (adoptions).
    pub async fn adopt(&self, rows: &[crate::plan::Adoption], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for a in rows {
            let status = if a.disabled { AccountStatus::Disabled } else { AccountStatus::Active };
            sqlx::query(
                "INSERT INTO accounts (target, identity_id, key, anchor, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (target, identity_id) DO UPDATE SET key = excluded.key, anchor = excluded.anchor,
                    status = excluded.status, updated_at = excluded.updated_at",
            )
            .bind(&a.target)
            .bind(&a.identity)
            .bind(&a.key)
            .bind(&a.anchor)
            .bind(status.as_str())
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Logs a batch of operations and updates the ownership table from their outcomes, in one
    /// transaction.
    pub async fn record_ops(&self, run: i64, ops: &[OpRecord], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for op in ops {
            let (result, error) = match &op.result {
                OpResult::Ok { .. } => ("ok", None),
                OpResult::Failed(e) => ("failed", Some(e.as_str())),
                OpResult::Skipped(e) => ("skipped", Some(e.as_str())),
            };
            sqlx::query(
                "INSERT INTO oplog (run_id, at, identity_id, username, target, school, action, detail, result, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .bind(run)
            .bind(&now)
            .bind(&op.identity_id)
            .bind(&op.username)
            .bind(&op.target)
            .bind(&op.school)
            .bind(&op.action)
            .bind(&op.detail)
            .bind(result)
            .bind(error)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            if let OpResult::Ok { key, anchor, status } = &op.result {
                match (key, status) {
                    (Some(key), Some(status)) => {
                        sqlx::query(
                            "UPDATE accounts SET key = ?1, anchor = COALESCE(?2, anchor), status = ?3, updated_at = ?4
                             WHERE target = ?5 AND identity_id = ?6",
                        )
                        .bind(key)
                        .bind(anchor)
                        .bind(status.as_str())
                        .bind(&now)
                        .bind(&op.target)
                        .bind(&op.identity_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e))?;
                    }
                    (None, _) => {
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
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Saves a plan for a later `enid apply --plan ID`.
    pub async fn save_plan(&self, plan_id: &str, body: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO plans (plan_id, created_at, body) VALUES (?1, ?2, ?3) ON CONFLICT (plan_id) DO NOTHING")
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
             UNION SELECT identity_id FROM usernames WHERE username = ?1",
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
                    end_date, first_seen, updated_at
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
                person_id: r.get(1),
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

/// Masks a normalised civic number read from the database.
fn mask_stored(c: &str) -> String {
    let head: String = c.chars().take(8).collect();
    format!("{head}-****")
}
