//! The PostgreSQL state store (`[state] url`): the same tables as the SQLite store (one schema
//! migration of its own, `migrations/postgres/`), through sqlx's PostgreSQL driver.
//!
//! What differs from SQLite, and why:
//! - Rows come back row by row (PostgreSQL streams them cheaply), not as one JSON text: a
//!   million records would near PostgreSQL's 1 GB limit on one value.
//! - Lists of values are bound as arrays (`= ANY($1)`, `unnest($1, $2)`) instead of JSON.
//! - Text columns are `COLLATE "C"`, so sorting and time comparisons match SQLite's.
//! - Two hand-outs claiming one password: each `UPDATE ... WHERE claim_id IS NULL` row waits
//!   for the other's transaction and is evaluated again, so each row goes to one of them.
//! - A multi-row upsert may not touch one row twice: rows naming one key twice go in rounds
//!   (`bulk::upsert_rows`), which writes what SQLite's row-after-row statement writes.
//! - `LIMIT` refuses a negative value, which SQLite reads as none: bound as `NULL` instead.
//! - Text cannot hold a NUL, and `jsonb` refuses `\u0000`: a lookup of text with a NUL finds
//!   nothing, and whole records are read as `jsonb` with `\u0000` as U+FFFD. A record with a
//!   NUL in a column, or a value over about 2,700 bytes in an indexed column (person_id,
//!   email, eppn, a ref), is still refused where SQLite stores it: the sources must bound them.
//! - The password is never part of the URL (an error names the database as
//!   `postgres://user@host:port/db`), and TLS verifies the server unless the URL says otherwise.

mod bulk;
pub mod lease;
mod reads;
#[cfg(test)]
pub(crate) mod tests;

use super::rows::{
    AccountRowIn, CivicHistoryRowIn, IdentityRow, LogRowIn, RecordViewRow, RowSink, RunRowIn, StoredRow,
    build_snapshot, owned_account, snapshot_sinks,
};
use super::{
    ApprovalRow, CivicHistoryRow, ClaimRefusal, GroupRow, HeldRow, LogFilter, LogRow, OpRecord, PasswordFilter,
    PersonHit, Pruned, RecordDigest, RecordRow, RunRow, SealedPassword, SessionRow, SourceRead, StateMetrics,
    StateStore, StoreError, StoredRecordView, StoredSourceRecord, TokenRow,
};
use crate::core::identity::{CivicChange, Decision};
use crate::core::model::{AccountStatus, IdentityId, OwnedAccount, PrimaryTie, Snapshot};
use crate::core::plan::{Adoption, OwnedGroup, RenameInfo};
use bulk::AccountRow;
use chrono::{DateTime, Utc};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::query::Query;
use sqlx::{ConnectOptions as _, PgPool, Postgres, SqlSafeStr};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The schema's migrations, in order; each runs once per database.
const MIGRATIONS: [(i64, &str, &str); 1] = [(1, "init", include_str!("../../../migrations/postgres/0001_init.sql"))];

/// The advisory lock key under which a store checks and migrates the schema ("enid" in ASCII).
const SCHEMA_LOCK: i64 = 0x656e_6964;

/// A statement with its values bound.
type Q<'q> = Query<'q, Postgres, PgArguments>;

/// A handle on a PostgreSQL state database. Clones share one connection pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The database as shown: `postgres://user@host:port/db`, never with a password.
    shown: String,
    /// `open` created the schema: the state is new.
    created: bool,
}

/// A timestamp as the schema stores it: RFC 3339 in UTC, whole seconds (as on SQLite).
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What a connection URL is parsed into, and the database as shown.
#[derive(Debug)]
pub struct PgTarget {
    pub options: PgConnectOptions,
    pub shown: String,
    /// The server's certificate is not verified (`sslmode` below `verify-full` towards a host
    /// that is not this machine).
    pub unverified: bool,
    /// [`PgTarget::end_idle_transactions_after`].
    pub idle_transactions_end: Option<Duration>,
}

/// Whether `host` is this machine (or a Unix socket directory), where TLS adds nothing.
fn is_local(host: &str) -> bool {
    host.starts_with('/') || matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

/// Parses `[state] url` (`postgres://user@host:port/db?sslmode=...`). A password inside the URL
/// is refused (it would be printed with it, and sit in the config): it comes from
/// `db_password_file` or `db_password_env`. Without `sslmode`, a server that is not this
/// machine must present a certificate the system trusts for its name (`verify-full`).
pub fn parse_url(url: &str, password: Option<&str>) -> Result<PgTarget, String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or("[state] url must start with postgres:// (for SQLite, give [state] path instead)")?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':')) {
        return Err("[state] url holds a password; remove it from the URL and give it in db_password_file or \
                    db_password_env"
            .into());
    }
    let mut options = PgConnectOptions::from_str(url).map_err(|e| format!("[state] url does not parse: {e}"))?;
    let explicit_tls = url.split_once('?').is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("sslmode=")));
    let local = options.get_socket().is_some() || is_local(options.get_host());
    if !explicit_tls {
        options = options.ssl_mode(if local { PgSslMode::Prefer } else { PgSslMode::VerifyFull });
    }
    if let Some(password) = password {
        options = options.password(password);
    }
    let unverified = !local && !matches!(options.get_ssl_mode(), PgSslMode::VerifyFull);
    let host = match options.get_socket() {
        Some(dir) => dir.display().to_string(),
        None => options.get_host().to_string(),
    };
    let shown = format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        host,
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    );
    options = options.application_name("enid").log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
    Ok(PgTarget { options, shown, unverified, idle_transactions_end: None })
}

impl PgTarget {
    /// Has the server end a transaction left open longer than `after` without a statement
    /// (`idle_in_transaction_session_timeout`): a node cut off from the database mid-transaction
    /// otherwise holds its locks until the server notices the connection is gone (TCP keepalive:
    /// hours), and the node that takes its lease over waits on them (an identity or a username it
    /// stores too). With `after` the lease, the cut-off node's transaction ends by the time the
    /// lease can pass. enid's own transactions send their statements back to back.
    ///
    /// Set on each connection as it opens (`SET`), not as a startup parameter, which connection
    /// poolers such as PgBouncer refuse.
    pub fn end_idle_transactions_after(mut self, after: Duration) -> PgTarget {
        self.idle_transactions_end = Some(after.max(Duration::from_secs(1)));
        self
    }
}

impl PgStore {
    /// Connects to the database and brings its schema up to date. An empty database gets the
    /// schema and [`StateStore::created`] says so; the database itself must exist (created by
    /// its administrator: enid never creates one, so a typo in the URL is an error, not a new
    /// empty state).
    pub async fn open(target: PgTarget) -> Result<PgStore, StoreError> {
        let shown = target.shown.clone();
        let err = |message: String| StoreError { path: shown.clone(), message };
        if target.unverified {
            connector_api::warn_unverified_tls(
                "[state] url (sslmode below verify-full)",
                "the civic numbers and everything else in the state",
            );
        }
        let idle_end = target
            .idle_transactions_end
            .map(|d| format!("SET idle_in_transaction_session_timeout = {}", d.as_millis()));
        let pool = PgPoolOptions::new()
            .after_connect(move |conn, _| {
                let set = idle_end.clone();
                Box::pin(async move {
                    if let Some(set) = set {
                        sqlx::Executor::execute(conn, sqlx::AssertSqlSafe(set)).await?;
                    }
                    Ok(())
                })
            })
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            // Waiting a few seconds for a connection while a run reads the whole state is
            // expected: not a warning on an operator's terminal (the timeout above is the error).
            .acquire_slow_level(log::LevelFilter::Debug)
            .connect_with(target.options)
            .await
            .map_err(|e| err(format!("cannot connect: {e}")))?;
        let migrator = Migrator::with_migrations(
            MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(*version, (*description).into(), MigrationType::Simple, sql.into_sql_str(), false)
                })
                .collect(),
        );
        // Two nodes starting on an empty database: one creates the schema, and only that one
        // says so. Both steps run under an advisory lock of enid's own, on one connection.
        let created = async {
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT pg_advisory_lock($1)").bind(SCHEMA_LOCK).execute(&mut *conn).await?;
            let done = async {
                let before: Option<String> =
                    sqlx::query_scalar("SELECT to_regclass('identities')::text").fetch_one(&mut *conn).await?;
                migrator.run(&mut *conn).await.map_err(|e| sqlx::Error::Protocol(format!("migration: {e}")))?;
                Ok::<bool, sqlx::Error>(before.is_none())
            }
            .await;
            sqlx::query("SELECT pg_advisory_unlock($1)").bind(SCHEMA_LOCK).execute(&mut *conn).await?;
            done
        }
        .await
        .map_err(|e| err(format!("cannot bring the schema up to date: {e}")))?;
        Ok(PgStore { pool, shown: target.shown, created })
    }

    /// An error about this database.
    fn fail(&self, message: String) -> StoreError {
        StoreError { path: self.shown.clone(), message }
    }

    /// Names this database in a sqlx error.
    fn ctx<T>(&self, result: sqlx::Result<T>) -> Result<T, StoreError> {
        result.map_err(|e| self.fail(e.to_string()))
    }

    /// Runs one statement; returns the rows it changed.
    async fn exec(&self, q: Q<'_>) -> Result<u64, StoreError> {
        self.ctx(q.execute(&self.pool).await.map(|done| done.rows_affected()))
    }

    /// Runs statements in order, in one transaction.
    async fn exec_all(&self, statements: Vec<Q<'_>>) -> Result<(), StoreError> {
        if statements.is_empty() {
            return Ok(());
        }
        self.ctx(
            async {
                let mut tx = self.pool.begin().await?;
                for q in statements {
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await
            }
            .await,
        )
    }

    /// The rows a query returns, as tuples.
    async fn fetch<T>(&self, q: sqlx::query::QueryAs<'_, Postgres, T, PgArguments>) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        self.ctx(q.fetch_all(&self.pool).await)
    }

    /// The rows of a query, each handed to `into` as it arrives, never all held at once (the
    /// snapshot's records: a million rows at the largest).
    async fn fetch_each<T, S: RowSink<T>>(
        &self,
        q: sqlx::query::QueryAs<'_, Postgres, T, PgArguments>,
        mut into: S,
    ) -> Result<S, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        use futures::TryStreamExt as _;
        let mut rows = q.fetch(&self.pool);
        while let Some(row) = self.ctx(rows.try_next().await)? {
            into.add(row);
        }
        Ok(into)
    }

    /// [`PgStore::fetch_each`] of a whole table, with room made first for as many rows as it
    /// has (counted just before: a hint, so a row added between the two only costs a growth).
    async fn fetch_each_counted<T, S: RowSink<T>>(
        &self,
        table: &'static str,
        q: sqlx::query::QueryAs<'_, Postgres, T, PgArguments>,
        mut into: S,
    ) -> Result<S, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        let count: i64 = self.ctx(
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&self.pool)
                .await,
        )?;
        into.reserve(usize::try_from(count).unwrap_or(0));
        self.fetch_each(q, into).await
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
        self.ctx(
            async {
                let mut tx = self.pool.begin().await?;
                bulk::upsert_accounts(&mut tx, rows, &now).await?;
                tx.commit().await
            }
            .await,
        )
    }

    /// The pool, for the lease and `enid state copy`.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Runs bulk writes (`bulk` functions given `&mut tx`) in one transaction, naming this
/// database in an error.
macro_rules! in_tx {
    ($self:ident, $tx:ident => $($write:expr);+) => {
        $self.ctx(
            async {
                let mut $tx = $self.pool.begin().await?;
                $($write.await?;)+
                $tx.commit().await
            }
            .await,
        )
    };
}

/// The record columns the snapshot reads, in [`StoredRow`]'s order.
const RECORD_COLUMNS: &str = "source, person_id, identity_id, civic_no, content_hash, school_unit, email, eppn, role,
    protected, given_name, family_name, gone_at IS NOT NULL";

/// The capitals outside ASCII that names in Swedish schools hold, with their small letters:
/// folded for "Find a person" where `lower()` under `COLLATE "C"` does not.
const SEARCH_FOLDED: [(&str, &str); 8] =
    [("Å", "å"), ("Ä", "ä"), ("Ö", "ö"), ("É", "é"), ("È", "è"), ("Ü", "ü"), ("Æ", "æ"), ("Ø", "ø")];

/// A JSON text column as `jsonb`. A record's whole copy may hold `\u0000` (serde_json's
/// spelling of a NUL a source delivered), which SQLite's JSON functions read but `jsonb` (and
/// every `json` operator) refuses, failing the whole query for every record: it is read as
/// U+FFFD instead, a character no lookup asks for.
fn jsonb(column: &str) -> String {
    format!("replace({column}, '\\u0000', '\\ufffd')::jsonb")
}

fn parse_time(t: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc))
}

impl PgStore {
    /// The snapshot, its tables read side by side, with the ownership rows or without them.
    async fn read_snapshot(&self, with_accounts: bool) -> Result<Snapshot, StoreError> {
        let records_sql = format!("SELECT {RECORD_COLUMNS} FROM source_records");
        let (identities, records, accounts) = snapshot_sinks();
        let accounts = async {
            if with_accounts {
                self.fetch_each_counted("accounts", sqlx::query_as::<_, AccountRowIn>(ACCOUNTS_SQL), accounts).await
            } else {
                Ok(accounts)
            }
        };
        let (identities, records, accounts) = tokio::try_join!(
            self.fetch_each_counted("identities", sqlx::query_as::<_, IdentityRow>(IDENTITIES_SQL), identities),
            self.fetch_each_counted(
                "source_records",
                sqlx::query_as::<_, StoredRow>(sqlx::AssertSqlSafe(records_sql)),
                records
            ),
            accounts,
        )?;
        Ok(build_snapshot(identities, records, accounts))
    }
}

/// A snapshot's identities and ownership rows.
const IDENTITIES_SQL: &str = "SELECT id, username, primary_school, primary_tie FROM identities";
const ACCOUNTS_SQL: &str = "SELECT target, identity_id, key, anchor, status, disabled_at FROM accounts";

impl StateStore for PgStore {
    fn created(&self) -> bool {
        self.created
    }

    fn path(&self) -> &str {
        &self.shown
    }

    async fn backup(&self, _dest: &Path) -> Result<(), StoreError> {
        Err(self.fail(
            "the state is in PostgreSQL: back it up with pg_dump (for example `pg_dump --format=custom \
             --file=enid-state.dump DATABASE`), which copies it consistently while enid runs"
                .into(),
        ))
    }

    async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let q = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key);
        self.ctx(q.fetch_optional(&self.pool).await)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let sql =
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
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
    ) -> Result<Vec<crate::core::model::OwnedAccount>, StoreError> {
        let sink = crate::store::rows::accounts_sink(identities);
        let accounts =
            self.fetch_each_counted("accounts", sqlx::query_as::<_, AccountRowIn>(ACCOUNTS_SQL), sink).await?;
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
        let q = sqlx::query_scalar(
            "SELECT lower(username) FROM usernames
             WHERE released_at IS NULL OR $1::text IS NULL OR released_at > $1",
        )
        .bind(cutoff);
        self.ctx(q.fetch_all(&self.pool).await)
    }

    async fn commit_renames(&self, renames: &[RenameInfo], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        let mut statements = Vec::with_capacity(renames.len() * 4);
        for r in renames {
            statements.extend([
                sqlx::query("UPDATE usernames SET released_at = $1 WHERE username = $2").bind(now.clone()).bind(&r.old),
                sqlx::query(
                    "INSERT INTO usernames (username, identity_id, allocated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (username) DO UPDATE SET identity_id = excluded.identity_id,
                        allocated_at = excluded.allocated_at, released_at = NULL",
                )
                .bind(&r.new)
                .bind(&r.identity)
                .bind(now.clone()),
                sqlx::query("UPDATE identities SET username = $1 WHERE id = $2").bind(&r.new).bind(&r.identity),
                sqlx::query("DELETE FROM rename_approvals WHERE identity_id = $1").bind(&r.identity),
            ]);
        }
        self.exec_all(statements).await
    }

    async fn rename_approvals(&self) -> Result<BTreeMap<String, (String, String)>, StoreError> {
        let q = sqlx::query_as::<_, (String, String, Option<String>)>(
            "SELECT identity_id, new_username, approved_by FROM rename_approvals",
        );
        let rows = self.fetch(q).await?;
        Ok(rows.into_iter().map(|(id, new, by)| (id, (new, by.unwrap_or_default()))).collect())
    }

    async fn approve_rename(
        &self,
        identity: &str,
        new_username: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT INTO rename_approvals (identity_id, new_username, approved_at, approved_by) VALUES ($1, $2, $3, $4)
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
            "INSERT INTO claim_refusals (target, identity_id, entry_key, entry_anchor, decided_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&r.target)
        .bind(&r.identity)
        .bind(&r.key)
        .bind(&r.anchor)
        .bind(ts(now));
        self.exec(q).await.map(drop)
    }

    async fn rename_target(&self, old: &str, new: &str) -> Result<u64, StoreError> {
        let moved = async {
            let mut tx = self.pool.begin().await?;
            let n = sqlx::query("UPDATE accounts SET target = $1 WHERE target = $2")
                .bind(new)
                .bind(old)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for table in ["groups", "passwords", "claim_refusals", "outside_claims"] {
                let sql = format!("UPDATE {table} SET target = $1 WHERE target = $2");
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
        let statements = rows
            .iter()
            .map(|(target, identity)| {
                sqlx::query(
                    "INSERT INTO outside_claims (target, identity_id, claimed_at) VALUES ($1, $2, $3)
                     ON CONFLICT (target, identity_id) DO UPDATE SET claimed_at = excluded.claimed_at",
                )
                .bind(target)
                .bind(identity)
                .bind(now.clone())
            })
            .collect();
        self.exec_all(statements).await
    }

    async fn outside_claims(&self) -> Result<Vec<(String, IdentityId)>, StoreError> {
        self.fetch(sqlx::query_as("SELECT target, identity_id FROM outside_claims ORDER BY target, identity_id")).await
    }

    async fn forget_outside_claims(&self, rows: &[(String, IdentityId)]) -> Result<(), StoreError> {
        let statements = rows
            .iter()
            .map(|(target, identity)| {
                sqlx::query("DELETE FROM outside_claims WHERE target = $1 AND identity_id = $2")
                    .bind(target)
                    .bind(identity)
            })
            .collect();
        self.exec_all(statements).await
    }

    async fn claim_refusals(&self) -> Result<Vec<ClaimRefusal>, StoreError> {
        let q = sqlx::query_as::<_, (String, String, String, Option<String>)>(
            "SELECT target, identity_id, entry_key, entry_anchor FROM claim_refusals
             ORDER BY target, identity_id, entry_key",
        );
        Ok(self
            .fetch(q)
            .await?
            .into_iter()
            .map(|(target, identity, key, anchor)| ClaimRefusal { target, identity: identity.into(), key, anchor })
            .collect())
    }

    async fn protected_identities(&self) -> Result<std::collections::HashSet<IdentityId>, StoreError> {
        let q = sqlx::query_scalar("SELECT DISTINCT identity_id FROM source_records WHERE protected");
        let rows: Vec<IdentityId> = self.ctx(q.fetch_all(&self.pool).await)?;
        Ok(rows.into_iter().collect())
    }

    async fn unprotect(&self, identities: &[IdentityId]) -> Result<(), StoreError> {
        let q =
            sqlx::query("UPDATE source_records SET protected = FALSE, content_hash = '' WHERE identity_id = ANY($1)")
                .bind(identities.iter().map(IdentityId::as_str).collect::<Vec<_>>());
        self.exec(q).await.map(drop)
    }

    async fn find_identity(&self, needle: &str) -> Result<Vec<IdentityId>, StoreError> {
        if needle.contains('\0') {
            // PostgreSQL's text holds no NUL (it refuses the value): nothing stored has one.
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id FROM identities WHERE id = $1 OR username = $1
             UNION SELECT identity_id FROM source_records WHERE person_id = $1
             UNION SELECT identity_id FROM usernames WHERE username = $1 AND identity_id <> ''
             UNION SELECT r.identity_id FROM source_records r
                   WHERE r.data IS NOT NULL AND jsonb_typeof({data} -> 'external_ids') = 'array'
                     AND {data} -> 'external_ids' ? $1",
            data = jsonb("r.data"),
        );
        // Only constants make the text of `sql`; the value is bound.
        let q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
        self.ctx(q.bind(needle).fetch_all(&self.pool).await)
    }

    async fn records_of(&self, identity: &str) -> Result<Vec<StoredRecordView>, StoreError> {
        let q = sqlx::query_as::<_, RecordViewRow>(
            "SELECT source, person_id, civic_no, given_name, family_name, role, school_unit, groups, start_date,
                    end_date, first_seen, updated_at, protected
             FROM source_records WHERE identity_id = $1 ORDER BY source, person_id",
        );
        Ok(self.fetch(q.bind(identity)).await?.into_iter().map(StoredRecordView::from_row).collect())
    }

    async fn decisions(&self) -> Result<BTreeMap<String, Decision>, StoreError> {
        let rows = self
            .fetch(sqlx::query_as::<_, (String, String)>("SELECT conflict_id, decision FROM conflict_decisions"))
            .await?;
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
             VALUES ($1, $2, $3, $4, $5)
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
             WHERE identity_id = $1 ORDER BY id",
        );
        Ok(self.fetch(q.bind(identity)).await?.into_iter().map(CivicHistoryRow::from_row).collect())
    }

    async fn accounts(&self, identity: Option<&str>) -> Result<Vec<OwnedAccount>, StoreError> {
        let q = sqlx::query_as::<_, AccountRowIn>(
            "SELECT target, identity_id, key, anchor, status, disabled_at FROM accounts
             WHERE $1::text IS NULL OR identity_id = $1 ORDER BY target",
        );
        Ok(self.fetch(q.bind(identity)).await?.into_iter().map(owned_account).collect())
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
        // A school matches a whole entry of the comma-separated list (`strpos`, never `LIKE`).
        let q = sqlx::query_as::<_, super::rows::PasswordRowIn>(
            "SELECT p.target, p.identity_id, i.username, p.school, p.sealed, p.created_at FROM passwords p
               JOIN accounts a ON a.target = p.target AND a.identity_id = p.identity_id
               JOIN identities i ON i.id = p.identity_id
              WHERE a.status <> 'pending' AND a.key IS NOT NULL
                AND ($1::text IS NULL OR strpos(',' || p.school || ',', ',' || $1 || ',') > 0)
                AND ($2::text IS NULL OR p.target = $2)
                AND ($3::text IS NULL OR p.claim_id IS NULL OR p.claimed_at < $3)
                AND ($4::text IS NULL OR p.claim_id = $4)
              ORDER BY p.created_at, p.target, p.identity_id",
        )
        .bind(filter.school.as_deref())
        .bind(filter.target.as_deref())
        .bind(filter.claims_lapsed_before.map(ts))
        .bind(filter.claim.as_deref());
        Ok(self.fetch(q).await?.into_iter().map(super::rows::sealed_password).collect())
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
                let mut tx = self.pool.begin().await?;
                let mut claimed = Vec::new();
                for r in rows {
                    let done = sqlx::query(
                        "UPDATE passwords SET claim_id = $1, claimed_at = $2
                          WHERE target = $3 AND identity_id = $4 AND sealed = $5
                            AND (claim_id IS NULL OR claimed_at < $6)",
                    )
                    .bind(claim)
                    .bind(&now)
                    .bind(&r.target)
                    .bind(&r.identity_id)
                    .bind(&r.sealed)
                    .bind(&lapsed_before)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 1 {
                        claimed.push(r.clone());
                    }
                }
                tx.commit().await?;
                Ok(claimed)
            }
            .await,
        )
    }

    async fn confirm_claim(&self, claim: &str) -> Result<Vec<SealedPassword>, StoreError> {
        // One statement: the rows this claim still held are deleted and returned with what the
        // log shows of them.
        let q = sqlx::query_as::<_, (String, String, String, String, String)>(
            "WITH gone AS (DELETE FROM passwords WHERE claim_id = $1
                           RETURNING target, identity_id, school, created_at)
             SELECT g.target, g.identity_id, i.username, g.school, g.created_at FROM gone g
               JOIN identities i ON i.id = g.identity_id
              ORDER BY g.created_at, g.target, g.identity_id",
        );
        Ok(self
            .fetch(q.bind(claim))
            .await?
            .into_iter()
            .map(|(target, identity, username, school, created_at)| {
                super::rows::sealed_password((target, identity, username, school, Vec::new(), created_at))
            })
            .collect())
    }

    async fn release_claim(&self, claim: &str) -> Result<u64, StoreError> {
        self.exec(
            sqlx::query("UPDATE passwords SET claim_id = NULL, claimed_at = NULL WHERE claim_id = $1").bind(claim),
        )
        .await
    }

    async fn expire_passwords(&self, before: DateTime<Utc>, lapsed_before: DateTime<Utc>) -> Result<u64, StoreError> {
        let q = sqlx::query("DELETE FROM passwords WHERE created_at < $1 AND (claim_id IS NULL OR claimed_at < $2)");
        self.exec(q.bind(ts(before)).bind(ts(lapsed_before))).await
    }

    async fn groups(&self) -> Result<Vec<OwnedGroup>, StoreError> {
        let q = sqlx::query_as::<_, super::rows::GroupRowIn>(
            "SELECT target, name, key, anchor, status, school FROM groups",
        );
        Ok(self.fetch(q).await?.into_iter().map(super::rows::owned_group).collect())
    }

    async fn record_groups(&self, rows: &[GroupRow], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        in_tx!(self, tx => bulk::upsert_groups(&mut tx, rows, &now))
    }

    async fn forget_group(&self, target: &str, name: &str) -> Result<(), StoreError> {
        self.exec(sqlx::query("DELETE FROM groups WHERE target = $1 AND name = $2").bind(target).bind(name))
            .await
            .map(drop)
    }

    async fn begin_run(&self, command: &str, plan_id: Option<&str>, now: DateTime<Utc>) -> Result<i64, StoreError> {
        let now = ts(now);
        self.ctx(
            async {
                let mut tx = self.pool.begin().await?;
                let id = sqlx::query_scalar(
                    "INSERT INTO runs (command, plan_id, started_at, status) VALUES ($1, $2, $3, 'running')
                     RETURNING id",
                )
                .bind(command)
                .bind(plan_id)
                .bind(&now)
                .fetch_one(&mut *tx)
                .await?;
                if command == "apply" || command == "run" {
                    sqlx::query("INSERT INTO meta (key, value) VALUES ('first_apply', $1) ON CONFLICT DO NOTHING")
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
        let finish = sqlx::query("UPDATE runs SET status = $1, message = $2, finished_at = $3 WHERE id = $4")
            .bind(status)
            .bind(message)
            .bind(now.clone())
            .bind(run);
        let adopted = sqlx::query(
            "INSERT INTO meta (key, value)
             SELECT 'first_adopt', $1 FROM runs WHERE id = $2 AND command = 'adopt' AND status = 'ok'
             ON CONFLICT DO NOTHING",
        )
        .bind(now)
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
             VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id",
        );
        let q = q.bind(command).bind(plan_id).bind(ts(now)).bind(status).bind(message).bind(counts);
        self.ctx(q.fetch_one(&self.pool).await)
    }

    async fn set_run_counts(&self, run: i64, counts: &str) -> Result<(), StoreError> {
        self.exec(sqlx::query("UPDATE runs SET counts = $1 WHERE id = $2").bind(counts).bind(run)).await.map(drop)
    }

    async fn run_by_id(&self, run: i64) -> Result<Option<RunRow>, StoreError> {
        let q = sqlx::query_as::<_, RunRowIn>(
            "SELECT id, command, plan_id, started_at, finished_at, status, message, counts FROM runs WHERE id = $1",
        );
        Ok(self.fetch(q.bind(run)).await?.into_iter().next().map(RunRow::from_row))
    }

    async fn record_approvals(&self, rows: &[ApprovalRow]) -> Result<(), StoreError> {
        let statements = rows
            .iter()
            .map(|a| {
                sqlx::query(
                    "INSERT INTO approvals (run_id, fingerprint, target, identity_id, action, accept, approved_by,
                        approved_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        let q = sqlx::query_as::<_, Row>(
            "SELECT id, run_id, fingerprint, target, identity_id, action, accept, approved_by, approved_at, expires_at
               FROM approvals WHERE used_by_run IS NULL AND expires_at > $1 ORDER BY id",
        );
        let rows = self.fetch(q.bind(ts(now))).await?;
        let time = |what: &str, t: &str| parse_time(t).map_err(|e| self.fail(format!("approvals: {what} {t:?}: {e}")));
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
        let q = sqlx::query("UPDATE approvals SET used_by_run = $1 WHERE id = ANY($2)").bind(run).bind(ids);
        self.exec(q).await.map(drop)
    }

    async fn latest_approval(&self) -> Result<i64, StoreError> {
        let q = sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM approvals");
        self.ctx(q.fetch_one(&self.pool).await)
    }

    async fn mark_interrupted(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let q = sqlx::query(
            "UPDATE runs SET status = 'interrupted', finished_at = $1,
                    message = 'the process ended before the run finished; the next run continued from the targets'
             WHERE status = 'running'",
        );
        self.exec(q.bind(ts(now))).await
    }

    async fn has_applied(&self) -> Result<bool, StoreError> {
        Ok(self.meta("first_apply").await?.is_some())
    }

    async fn has_adopted(&self) -> Result<bool, StoreError> {
        Ok(self.meta("first_adopt").await?.is_some())
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let before = ts(before);
        self.ctx(
            async {
                let mut tx = self.pool.begin().await?;
                let log_rows = sqlx::query(
                    "DELETE FROM oplog WHERE run_id IN
                       (SELECT id FROM runs WHERE started_at < $1 AND status <> 'running')",
                )
                .bind(&before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let runs = sqlx::query("DELETE FROM runs WHERE started_at < $1 AND status <> 'running'")
                    .bind(&before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let plans = sqlx::query("DELETE FROM plans WHERE created_at < $1")
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
               (SELECT * FROM runs ORDER BY id DESC LIMIT $1) r ORDER BY id",
        );
        // A negative limit is none (SQLite's `LIMIT -1`; PostgreSQL's is `LIMIT NULL`).
        Ok(self.fetch(q.bind((limit >= 0).then_some(limit))).await?.into_iter().map(RunRow::from_row).collect())
    }

    async fn record_anchors(&self, target: &str, found: &[connector_api::FoundAnchor]) -> Result<u64, StoreError> {
        let column = |f: fn(&connector_api::FoundAnchor) -> &str| found.iter().map(f).collect::<Vec<&str>>();
        let q = sqlx::query(
            "UPDATE accounts SET anchor = found.anchor
               FROM unnest($2::text[], $3::text[], $4::text[]) AS found (identity_id, key, anchor)
              WHERE accounts.target = $1 AND accounts.identity_id = found.identity_id
                AND accounts.key = found.key AND accounts.anchor IS NULL AND accounts.status <> 'pending'",
        )
        .bind(target)
        .bind(column(|f| &f.owner))
        .bind(column(|f| &f.key))
        .bind(column(|f| &f.anchor));
        self.exec(q).await
    }

    async fn record_ops(&self, run: i64, ops: &[OpRecord], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        in_tx!(self, tx => bulk::insert_oplog(&mut tx, run, ops, &now); bulk::record_outcomes(&mut tx, ops, &now))
    }

    async fn log(&self, f: &LogFilter) -> Result<Vec<LogRow>, StoreError> {
        let q = sqlx::query_as::<_, LogRowIn>(
            "SELECT id, run_id, at, identity_id, username, target, school, action, detail, result, error FROM (
                SELECT * FROM oplog
                WHERE ($1::bigint IS NULL OR run_id = $1)
                  AND ($2::text IS NULL OR identity_id = $2)
                  AND ($3::text IS NULL OR strpos(',' || school || ',', ',' || $3 || ',') > 0)
                  AND ($5::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($5::text[]) j (v)
                                             WHERE strpos(',' || school || ',', ',' || j.v || ',') > 0))
                  AND ($6::text IS NULL OR target = $6)
                  AND ($7::text IS NULL OR action = $7)
                  AND ($8::text IS NULL OR result = $8)
                  AND ($9::bigint IS NULL OR id < $9)
                ORDER BY id DESC LIMIT $4) o ORDER BY id",
        );
        let limit = if f.limit > 0 { f.limit } else { i64::MAX };
        let q = q.bind(f.run).bind(&f.identity).bind(&f.school).bind(limit).bind(&f.schools);
        let rows = self.fetch(q.bind(&f.target).bind(&f.action).bind(&f.result).bind(f.before)).await?;
        Ok(rows.into_iter().map(LogRow::from_row).collect())
    }

    async fn log_tally(&self, run: i64, schools: &[String]) -> Result<Vec<(String, String, i64)>, StoreError> {
        let q = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT action, result, count(*) FROM oplog
              WHERE run_id = $1 AND EXISTS (SELECT 1 FROM unnest($2::text[]) j (v)
                                            WHERE strpos(',' || school || ',', ',' || j.v || ',') > 0)
              GROUP BY action, result ORDER BY action, result",
        );
        self.fetch(q.bind(run).bind(schools)).await
    }

    async fn save_plan(&self, plan_id: &str, body: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT INTO plans (plan_id, created_at, body) VALUES ($1, $2, $3) ON CONFLICT (plan_id) DO NOTHING",
        );
        self.exec(q.bind(plan_id).bind(ts(now)).bind(body)).await.map(drop)
    }

    async fn load_plan(&self, plan_id: &str) -> Result<Option<String>, StoreError> {
        if plan_id.contains('\0') {
            return Ok(None);
        }
        let q = sqlx::query_scalar("SELECT body FROM plans WHERE plan_id = $1");
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
            "SELECT o.target, max(r.finished_at) FROM runs r JOIN oplog o ON o.run_id = r.id
             WHERE r.status = 'ok' AND o.target IS NOT NULL AND r.finished_at IS NOT NULL GROUP BY o.target
             ORDER BY o.target",
        );
        Ok(StateMetrics {
            runs: self.fetch(runs).await?,
            operations: self.fetch(operations).await?,
            source_success: self.fetch(sources).await?,
            target_success: self.fetch(targets).await?,
        })
    }

    async fn add_token(&self, t: &TokenRow) -> Result<bool, StoreError> {
        let schools = self.encode("encoding", &t.schools)?;
        let q = sqlx::query(
            "INSERT INTO api_tokens (name, hash, role, schools, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)
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
        self.fetch(q)
            .await?
            .into_iter()
            .map(|(name, hash, role, schools, created_at, revoked_at)| {
                let schools = serde_json::from_str(&schools)
                    .map_err(|e| self.fail(format!("api_tokens: token {name:?} has unreadable schools: {e}")))?;
                Ok(TokenRow { name, hash, role, schools, created_at, revoked_at })
            })
            .collect()
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let q = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL");
        Ok(self.exec(q.bind(ts(now)).bind(name)).await? == 1)
    }

    async fn search_persons(
        &self,
        text: &str,
        schools: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<PersonHit>, StoreError> {
        if text.contains('\0') {
            // As in find_identity: no stored name holds a NUL.
            return Ok(Vec::new());
        }
        let escaped: String =
            text.chars().flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
        let pattern = format!("%{escaped}%");
        let fold = |column: &str| {
            SEARCH_FOLDED
                .iter()
                .fold(format!("lower({column})"), |e, (upper, lower)| format!("replace({e}, '{upper}', '{lower}')"))
        };
        let sql = format!(
            "SELECT DISTINCT r.identity_id, i.username, r.given_name, r.family_name, r.school_unit
               FROM source_records r JOIN identities i ON i.id = r.identity_id
              WHERE r.gone_at IS NULL
                AND NOT EXISTS (SELECT 1 FROM source_records p WHERE p.identity_id = r.identity_id AND p.protected)
                AND ({} LIKE $1 ESCAPE '\\'
                     OR {} LIKE $1 ESCAPE '\\'
                     OR lower(i.username) LIKE $1 ESCAPE '\\')
                AND ($2::text[] IS NULL OR r.school_unit = ANY($2))
              ORDER BY r.family_name, r.given_name, r.identity_id
              LIMIT $3",
            fold("r.given_name || ' ' || r.family_name"),
            fold("r.family_name || ' ' || r.given_name"),
        );
        type Hit = super::rows::PersonHitIn;
        // Only constants make the text of `sql`; the values are bound.
        let q = sqlx::query_as::<_, Hit>(sqlx::AssertSqlSafe(sql))
            .bind(pattern)
            .bind(schools)
            .bind((limit >= 0).then_some(limit));
        Ok(self.fetch(q).await?.into_iter().map(super::rows::person_hit).collect())
    }

    async fn add_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        let q = sqlx::query(
            "INSERT INTO web_sessions (id, token_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.id)
        .bind(&s.token_name)
        .bind(&s.csrf)
        .bind(ts(s.created_at))
        .bind(ts(s.expires_at));
        self.exec(q).await.map(drop)
    }

    async fn session(&self, id: &str, now: DateTime<Utc>) -> Result<Option<SessionRow>, StoreError> {
        let q = sqlx::query_as::<_, (String, String, String, String, String)>(
            "SELECT id, token_name, csrf, created_at, expires_at FROM web_sessions WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(ts(now));
        let Some((id, token_name, csrf, created_at, expires_at)) = self.ctx(q.fetch_optional(&self.pool).await)? else {
            return Ok(None);
        };
        let time = |t: &str| {
            parse_time(t).map_err(|e| self.fail(format!("web_sessions: a time that does not read ({t:?}): {e}")))
        };
        Ok(Some(SessionRow { id, token_name, csrf, created_at: time(&created_at)?, expires_at: time(&expires_at)? }))
    }

    async fn remove_session(&self, id: &str) -> Result<(), StoreError> {
        self.exec(sqlx::query("DELETE FROM web_sessions WHERE id = $1").bind(id)).await.map(drop)
    }

    async fn remove_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.exec(sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1").bind(ts(now))).await
    }

    async fn source_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let rows = self.fetch(sqlx::query_as::<_, (String, i64)>("SELECT source, records FROM source_counts")).await?;
        Ok(rows.into_iter().map(|(s, n)| (s, usize::try_from(n).unwrap_or(0))).collect())
    }

    async fn record_source_counts(
        &self,
        run: i64,
        counts: &BTreeMap<String, usize>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        let statements = counts
            .iter()
            .map(|(source, n)| {
                sqlx::query(
                    "INSERT INTO source_counts (source, records, run_id, counted_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (source) DO UPDATE SET records = excluded.records, run_id = excluded.run_id,
                        counted_at = excluded.counted_at",
                )
                .bind(source)
                .bind(i64::try_from(*n).unwrap_or(i64::MAX))
                .bind(run)
                .bind(now.clone())
            })
            .collect();
        self.exec_all(statements).await
    }

    async fn source_reads(&self) -> Result<BTreeMap<String, SourceRead>, StoreError> {
        let q = sqlx::query_as::<_, (String, Option<String>, Option<String>, String)>(
            "SELECT source, watermark, full_read_at, scope FROM source_reads",
        );
        self.fetch(q)
            .await?
            .into_iter()
            .map(|(source, watermark, full, scope)| {
                let full_read_at = match full {
                    None => None,
                    Some(t) => Some(
                        parse_time(&t)
                            .map_err(|e| self.fail(format!("source_reads of {source:?}: full_read_at {t:?}: {e}")))?,
                    ),
                };
                Ok((source, SourceRead { watermark, full_read_at, scope }))
            })
            .collect()
    }

    async fn record_source_reads(
        &self,
        run: i64,
        reads: &BTreeMap<String, (SourceRead, bool)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        // A full read sets its time; an incremental one keeps the last full read's.
        let statements = reads
            .iter()
            .map(|(source, (read, full))| {
                sqlx::query(
                    "INSERT INTO source_reads (source, watermark, full_read_at, scope, run_id, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (source) DO UPDATE SET watermark = excluded.watermark,
                        full_read_at = COALESCE(excluded.full_read_at, source_reads.full_read_at),
                        scope = excluded.scope, run_id = excluded.run_id, updated_at = excluded.updated_at",
                )
                .bind(source)
                .bind(&read.watermark)
                .bind(full.then(|| now.clone()))
                .bind(&read.scope)
                .bind(run)
                .bind(now.clone())
            })
            .collect();
        self.exec_all(statements).await
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
        let q = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM source_records WHERE source = $1 AND data IS NULL AND gone_at IS NULL)",
        );
        self.ctx(q.bind(source).fetch_one(&self.pool).await)
    }

    async fn record_digests_of(&self, keys: &[(String, String)]) -> Result<Vec<RecordDigest>, StoreError> {
        self.read_record_digests_of(keys).await
    }

    async fn mark_gone(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        in_tx!(self, tx => bulk::mark_gone(&mut tx, rows, &now))
    }

    async fn held_keys(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.fetch(sqlx::query_as(
            "SELECT source, person_id, content_hash FROM held_records ORDER BY source, person_id",
        ))
        .await
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
        let (sources, persons): (Vec<&str>, Vec<&str>) = keys.iter().map(|(s, p)| (s.as_str(), p.as_str())).unzip();
        let q = sqlx::query_as(
            "SELECT source, person_id, data FROM source_records
              WHERE (source, person_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        );
        self.fetch(q.bind(sources).bind(persons)).await
    }

    async fn owned_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let q = sqlx::query_as::<_, (String, i64)>(
            "SELECT target, count(*) FILTER (WHERE status <> 'pending') FROM accounts GROUP BY target",
        );
        Ok(self.fetch(q).await?.into_iter().map(|(t, n)| (t, usize::try_from(n).unwrap_or(0))).collect())
    }

    async fn applied_since(&self, run: i64) -> Result<Vec<(String, String, usize)>, StoreError> {
        let q = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT target, action, count(*) FROM oplog WHERE run_id > $1 AND result = 'ok'
              GROUP BY target, action ORDER BY target, action",
        );
        Ok(self
            .fetch(q.bind(run))
            .await?
            .into_iter()
            .map(|(t, a, n)| (t, a, usize::try_from(n).unwrap_or(0)))
            .collect())
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
        let rows =
            self.fetch(sqlx::query_as::<_, (String, String)>("SELECT source, columns FROM source_columns")).await?;
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
        let statements = columns
            .iter()
            .map(|(source, cols)| {
                Ok(sqlx::query(
                    "INSERT INTO source_columns (source, columns, run_id, recorded_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (source) DO UPDATE SET columns = excluded.columns, run_id = excluded.run_id,
                        recorded_at = excluded.recorded_at",
                )
                .bind(source)
                .bind(self.encode("source_columns", cols)?)
                .bind(run)
                .bind(now.clone()))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.exec_all(statements).await
    }
}
