//! `enid state copy`: moves a state from one backend to the other (SQLite to PostgreSQL, and
//! back), table by table, and proves the copy by a count and a SHA-256 of every table read back
//! from both sides.
//!
//! The schemas of both backends hold the same tables and columns ([`TABLES`]; a test checks it
//! against both); what differs is how a value is spelled (SQLite's 0/1 and PostgreSQL's BOOLEAN,
//! a BLOB and a BYTEA), so every row is read as JSON, brought to one canonical form by the
//! column's [`Kind`], written with values of the right type, and hashed in that form. Rows go in
//! key order, in chunks, inside one transaction on the destination: a copy that fails leaves an
//! empty destination. The destination must be empty; the source is only read.

use super::{PgStore, SqliteStore, StateStore, Store, StoreError};
use futures::TryStreamExt as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How a column's values are spelled and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Bool,
    Blob,
}

use Kind::{Blob, Bool, Int, Text};

/// A table of the state: its name, its columns and the columns that order its rows.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    pub order: &'static str,
}

/// Every table of the state, in an order that satisfies the foreign keys. The schema's own
/// bookkeeping (`_sqlx_migrations`, `sqlite_sequence`) and the PostgreSQL run lock (`leases`) are
/// not copied.
pub const TABLES: &[Table] = &[
    Table {
        name: "identities",
        columns: &[
            ("id", Text),
            ("username", Text),
            ("created_at", Text),
            ("primary_school", Text),
            ("primary_tie", Text),
        ],
        order: "id",
    },
    Table {
        name: "usernames",
        columns: &[("username", Text), ("identity_id", Text), ("allocated_at", Text), ("released_at", Text)],
        order: "username",
    },
    Table {
        name: "source_records",
        columns: &[
            ("source", Text),
            ("person_id", Text),
            ("identity_id", Text),
            ("civic_no", Text),
            ("given_name", Text),
            ("family_name", Text),
            ("role", Text),
            ("school_unit", Text),
            ("groups", Text),
            ("start_date", Text),
            ("end_date", Text),
            ("content_hash", Text),
            ("first_seen", Text),
            ("updated_at", Text),
            ("email", Text),
            ("eppn", Text),
            ("protected", Bool),
            ("data", Text),
            ("gone_at", Text),
        ],
        order: "source, person_id",
    },
    Table {
        name: "source_record_refs",
        columns: &[
            ("source", Text),
            ("person_id", Text),
            ("kind", Text),
            ("ref", Text),
            ("unit", Text),
            ("unit_name", Text),
        ],
        order: "source, person_id, kind, ref, unit, unit_name",
    },
    Table {
        name: "accounts",
        columns: &[
            ("target", Text),
            ("identity_id", Text),
            ("key", Text),
            ("anchor", Text),
            ("status", Text),
            ("created_at", Text),
            ("updated_at", Text),
            ("disabled_at", Text),
        ],
        order: "target, identity_id",
    },
    Table {
        name: "groups",
        columns: &[
            ("target", Text),
            ("name", Text),
            ("key", Text),
            ("anchor", Text),
            ("school", Text),
            ("status", Text),
            ("created_at", Text),
            ("updated_at", Text),
        ],
        order: "target, name",
    },
    Table {
        name: "passwords",
        columns: &[
            ("target", Text),
            ("identity_id", Text),
            ("school", Text),
            ("sealed", Blob),
            ("created_at", Text),
            ("claim_id", Text),
            ("claimed_at", Text),
        ],
        order: "target, identity_id",
    },
    Table {
        name: "runs",
        columns: &[
            ("id", Int),
            ("command", Text),
            ("plan_id", Text),
            ("started_at", Text),
            ("finished_at", Text),
            ("status", Text),
            ("message", Text),
            ("counts", Text),
        ],
        order: "id",
    },
    Table {
        name: "oplog",
        columns: &[
            ("id", Int),
            ("run_id", Int),
            ("at", Text),
            ("identity_id", Text),
            ("username", Text),
            ("target", Text),
            ("school", Text),
            ("action", Text),
            ("detail", Text),
            ("result", Text),
            ("error", Text),
        ],
        order: "id",
    },
    Table { name: "plans", columns: &[("plan_id", Text), ("created_at", Text), ("body", Text)], order: "plan_id" },
    Table {
        name: "conflict_decisions",
        columns: &[
            ("conflict_id", Text),
            ("decision", Text),
            ("records", Text),
            ("decided_at", Text),
            ("decided_by", Text),
        ],
        order: "conflict_id",
    },
    Table {
        name: "civic_history",
        columns: &[
            ("id", Int),
            ("source", Text),
            ("person_id", Text),
            ("identity_id", Text),
            ("old_civic_no", Text),
            ("new_civic_no", Text),
            ("changed_at", Text),
            ("run_id", Int),
        ],
        order: "id",
    },
    Table {
        name: "rename_approvals",
        columns: &[("identity_id", Text), ("new_username", Text), ("approved_at", Text), ("approved_by", Text)],
        order: "identity_id",
    },
    Table {
        name: "source_counts",
        columns: &[("source", Text), ("records", Int), ("run_id", Int), ("counted_at", Text)],
        order: "source",
    },
    Table {
        name: "source_columns",
        columns: &[("source", Text), ("columns", Text), ("run_id", Int), ("recorded_at", Text)],
        order: "source",
    },
    Table { name: "meta", columns: &[("key", Text), ("value", Text)], order: "key" },
    Table {
        name: "claim_refusals",
        columns: &[
            ("target", Text),
            ("identity_id", Text),
            ("entry_key", Text),
            ("entry_anchor", Text),
            ("decided_at", Text),
        ],
        order: "target, identity_id, entry_key",
    },
    Table {
        name: "outside_claims",
        columns: &[("target", Text), ("identity_id", Text), ("claimed_at", Text)],
        order: "target, identity_id",
    },
    Table {
        name: "source_reads",
        columns: &[
            ("source", Text),
            ("watermark", Text),
            ("full_read_at", Text),
            ("scope", Text),
            ("run_id", Int),
            ("updated_at", Text),
        ],
        order: "source",
    },
    Table {
        name: "held_records",
        columns: &[
            ("source", Text),
            ("person_id", Text),
            ("civic_no", Text),
            ("data", Text),
            ("content_hash", Text),
            ("held_since", Text),
            ("run_id", Int),
        ],
        order: "source, person_id",
    },
    Table {
        name: "api_tokens",
        columns: &[
            ("name", Text),
            ("hash", Text),
            ("role", Text),
            ("schools", Text),
            ("created_at", Text),
            ("revoked_at", Text),
        ],
        order: "name",
    },
    Table {
        name: "web_sessions",
        columns: &[("id", Text), ("token_name", Text), ("csrf", Text), ("created_at", Text), ("expires_at", Text)],
        order: "id",
    },
    Table {
        name: "approvals",
        columns: &[
            ("id", Int),
            ("run_id", Int),
            ("fingerprint", Text),
            ("target", Text),
            ("identity_id", Text),
            ("action", Text),
            ("accept", Text),
            ("approved_by", Text),
            ("approved_at", Text),
            ("expires_at", Text),
            ("used_by_run", Int),
        ],
        order: "id",
    },
];

/// Rows per multi-row insert.
const CHUNK: usize = 500;

/// One table as copied: its rows and their hash, read back from both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    pub rows: u64,
    /// Hex SHA-256 of the rows in key order, each in its canonical JSON form.
    pub sha256: String,
}

/// The running hash and count of one table's rows.
#[derive(Default)]
struct Tally {
    rows: u64,
    hash: Sha256,
}

impl Tally {
    fn add(&mut self, row: &[Value]) {
        self.rows += 1;
        self.hash.update(serde_json::to_string(row).unwrap_or_default().as_bytes());
        self.hash.update(b"\n");
    }

    fn finish(self, table: &'static str) -> TableCopy {
        let sha256 = crate::core::id::hex(&self.hash.finalize()).into();
        TableCopy { table, rows: self.rows, sha256 }
    }
}

/// A row's values in their canonical form: text, integers, booleans, blobs as lowercase hex.
fn canonical(table: &Table, raw: Vec<Value>) -> Result<Vec<Value>, String> {
    if raw.len() != table.columns.len() {
        return Err(format!("{}: a row of {} values, expected {}", table.name, raw.len(), table.columns.len()));
    }
    raw.into_iter()
        .zip(table.columns)
        .map(|(v, (column, kind))| {
            let bad = || format!("{}.{column}: a value that is not {kind:?}", table.name);
            Ok(match (kind, v) {
                (_, Value::Null) => Value::Null,
                (Text, Value::String(s)) => Value::String(s),
                (Int, Value::Number(n)) if n.is_i64() => Value::Number(n),
                (Bool, Value::Bool(b)) => Value::Bool(b),
                (Bool, Value::Number(n)) => Value::Bool(n.as_i64().ok_or_else(bad)? != 0),
                (Blob, Value::String(s)) => Value::String(s.to_ascii_lowercase()),
                _ => return Err(bad()),
            })
        })
        .collect()
}

/// The SELECT that reads a table's rows as JSON arrays in key order, in this backend's dialect.
fn select(table: &Table, postgres: bool) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|(c, kind)| match (kind, postgres) {
            (Blob, false) => format!("hex(\"{c}\")"),
            (Blob, true) => format!("encode(\"{c}\", 'hex')"),
            _ => format!("\"{c}\""),
        })
        .collect();
    let order: Vec<String> = table.order.split(", ").map(|c| format!("\"{c}\"")).collect();
    if postgres {
        format!(
            "SELECT json_build_array({})::text FROM \"{}\" ORDER BY {}",
            columns.join(", "),
            table.name,
            order.join(", ")
        )
    } else {
        format!("SELECT json_array({}) FROM \"{}\" ORDER BY {}", columns.join(", "), table.name, order.join(", "))
    }
}

fn insert_head(table: &Table) -> String {
    let columns: Vec<String> = table.columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    format!("INSERT INTO \"{}\" ({}) ", table.name, columns.join(", "))
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("a blob of odd hex length".into());
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string())).collect()
}

/// A canonical value as it is bound: typed, a blob decoded from its hex.
#[derive(Debug)]
enum Bound {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Blob(Option<Vec<u8>>),
}

/// A canonical row's values as they are bound, in column order.
fn bound(table: &Table, row: &[Value]) -> Result<Vec<Bound>, String> {
    table
        .columns
        .iter()
        .zip(row)
        .map(|((column, kind), v)| {
            Ok(match kind {
                Text => Bound::Text(v.as_str().map(String::from)),
                Int => Bound::Int(v.as_i64()),
                Bool => Bound::Bool(v.as_bool()),
                Blob => Bound::Blob(
                    v.as_str().map(hex_bytes).transpose().map_err(|e| format!("{}.{column}: {e}", table.name))?,
                ),
            })
        })
        .collect()
}

/// Binds one row's values in column order onto a multi-row insert.
macro_rules! bind_row {
    ($b:expr, $values:expr) => {{
        for v in $values {
            match v {
                Bound::Text(v) => {
                    $b.push_bind(v.clone());
                }
                Bound::Int(v) => {
                    $b.push_bind(*v);
                }
                Bound::Bool(v) => {
                    $b.push_bind(*v);
                }
                Bound::Blob(v) => {
                    $b.push_bind(v.clone());
                }
            }
        }
    }};
}

/// Either backend's pool, for the copy.
enum Side<'a> {
    Sqlite(&'a SqliteStore),
    Postgres(&'a PgStore),
}

fn side(store: &Store) -> Side<'_> {
    match store {
        Store::Sqlite(s) => Side::Sqlite(s),
        Store::Postgres(s) => Side::Postgres(s),
    }
}

/// A table's rows as JSON arrays of text, in key order, streamed.
fn rows<'a>(from: &Side<'a>, table: &Table) -> futures::stream::BoxStream<'a, Result<String, sqlx::Error>> {
    match from {
        Side::Sqlite(s) => sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(select(table, false))).fetch(s.pool()),
        Side::Postgres(s) => sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(select(table, true))).fetch(s.pool()),
    }
}

/// The next canonical row of a stream from [`rows`].
async fn next_row(
    stream: &mut futures::stream::BoxStream<'_, Result<String, sqlx::Error>>,
    table: &Table,
) -> Result<Option<Vec<Value>>, String> {
    let Some(text) = stream.try_next().await.map_err(|e| format!("{}: {e}", table.name))? else { return Ok(None) };
    let raw: Vec<Value> = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", table.name))?;
    canonical(table, raw).map(Some)
}

/// How many rows a table holds.
async fn count(side: &Side<'_>, table: &str) -> Result<i64, String> {
    let sql = format!("SELECT count(*) FROM \"{table}\"");
    match side {
        Side::Sqlite(s) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(s.pool()).await,
        Side::Postgres(s) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(s.pool()).await,
    }
    .map_err(|e| format!("{table}: {e}"))
}

/// Every table's rows and hash as `store` holds them.
pub async fn tally(store: &Store) -> Result<Vec<TableCopy>, StoreError> {
    let from = side(store);
    let mut out = Vec::new();
    for table in TABLES {
        let mut t = Tally::default();
        let mut stream = rows(&from, table);
        while let Some(row) =
            next_row(&mut stream, table).await.map_err(|m| StoreError { path: store.path().to_string(), message: m })?
        {
            t.add(&row);
        }
        out.push(t.finish(table.name));
    }
    Ok(out)
}

/// Copies every table of `from` into `to`, which must hold no rows, in one transaction on `to`;
/// then reads both back and compares each table's count and hash. Returns the tables as copied.
pub async fn copy(from: &Store, to: &Store) -> Result<Vec<TableCopy>, StoreError> {
    let dest = side(to);
    let fail = |m: String| StoreError { path: to.path().to_string(), message: m };
    for table in TABLES {
        let n = count(&dest, table.name).await.map_err(fail)?;
        if n > 0 {
            return Err(fail(format!(
                "it already holds a state ({n} rows in {}); copy only into an empty database or a new file",
                table.name
            )));
        }
    }
    let source = side(from);
    let from_fail = |m: String| StoreError { path: from.path().to_string(), message: m };
    let mut copied = Vec::new();
    // Streams each table of the source into the destination's transaction, CHUNK rows a
    // statement; the same steps for either destination's connection type.
    macro_rules! copy_tables {
        ($tx:ident, $db:ty) => {
            for table in TABLES {
                let mut t = Tally::default();
                let mut stream = rows(&source, table);
                let mut chunk: Vec<Vec<Bound>> = Vec::with_capacity(CHUNK);
                loop {
                    let row = next_row(&mut stream, table).await.map_err(from_fail)?;
                    let done = row.is_none();
                    if let Some(row) = row {
                        t.add(&row);
                        chunk.push(bound(table, &row).map_err(from_fail)?);
                    }
                    if chunk.len() >= CHUNK || (done && !chunk.is_empty()) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(insert_head(table));
                        q.push_values(&chunk, |mut b, values| bind_row!(b, values));
                        q.build().execute(&mut *$tx).await.map_err(|e| fail(format!("{}: {e}", table.name)))?;
                        chunk.clear();
                    }
                    if done {
                        break;
                    }
                }
                copied.push(t.finish(table.name));
            }
        };
    }
    match &dest {
        Side::Sqlite(s) => {
            let mut tx = s.pool().begin().await.map_err(|e| fail(e.to_string()))?;
            copy_tables!(tx, sqlx::Sqlite);
            tx.commit().await.map_err(|e| fail(e.to_string()))?;
        }
        Side::Postgres(s) => {
            let mut tx = s.pool().begin().await.map_err(|e| fail(e.to_string()))?;
            copy_tables!(tx, sqlx::Postgres);
            // The ids the copy brought set where the next new row's id starts.
            for table in TABLES.iter().filter(|t| t.columns.first().is_some_and(|(c, k)| *c == "id" && *k == Int)) {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', 'id'), COALESCE((SELECT max(id) FROM \"{0}\"), 0) + 1, false)",
                    table.name
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| fail(format!("{}: {e}", table.name)))?;
            }
            tx.commit().await.map_err(|e| fail(e.to_string()))?;
        }
    }
    // Proof: both sides read back, table by table.
    let (read_from, read_to) = (tally(from).await?, tally(to).await?);
    for ((a, b), c) in read_from.iter().zip(&read_to).zip(&copied) {
        if a != b || a != c {
            return Err(fail(format!(
                "the copy of {} does not match: {} rows (sha256 {}) in the source, {} rows (sha256 {}) in the copy; \
                 the source changed meanwhile, or the copy failed: do not use the copy",
                a.table, a.rows, a.sha256, b.rows, b.sha256
            )));
        }
    }
    Ok(read_to)
}

/// The tables and columns a backend's schema holds, sorted (for the test that [`TABLES`] covers
/// every one).
#[cfg(test)]
pub(crate) async fn schema_columns(store: &Store) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = match store {
        Store::Sqlite(s) => sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
              WHERE m.type = 'table' AND m.name NOT IN ('sqlite_sequence', '_sqlx_migrations')",
        )
        .fetch_all(s.pool())
        .await
        .unwrap(),
        Store::Postgres(s) => sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
              WHERE table_schema = current_schema() AND table_name NOT IN ('_sqlx_migrations', 'leases')",
        )
        .fetch_all(s.pool())
        .await
        .unwrap(),
    };
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::CivicChange;
    use crate::core::model::{AccountStatus, IdentityId};
    use crate::store::postgres::parse_url;
    use crate::store::postgres::tests::{PASSWORD, fresh_database};
    use crate::store::{ApprovalRow, OpRecord, OpResult, Ownership, RecordRow, SealedPassword, TokenRow};
    use chrono::{TimeZone, Utc};

    async fn sqlite(dir: &tempfile::TempDir, name: &str) -> Store {
        Store::open(&dir.path().join(name)).await.unwrap()
    }

    async fn postgres() -> Store {
        Store::Postgres(PgStore::open(parse_url(&fresh_database().await, Some(PASSWORD)).unwrap()).await.unwrap())
    }

    fn record(person: &str, identity: &str, protected: bool) -> RecordRow {
        RecordRow {
            source: "sis".into(),
            person_id: person.into(),
            identity_id: identity.into(),
            civic_no: Some("201509162388".into()),
            given_name: "Åsa".into(),
            family_name: "O'Brien \\ \"Öberg\"".into(),
            role: "student".into(),
            school_unit: Some("S1".into()),
            groups: "7A|Drama".into(),
            start_date: None,
            end_date: None,
            email: Some("asa@example.org".into()),
            eppn: None,
            protected,
            content_hash: format!("h-{person}"),
            data: format!(r#"{{"person_id":"{person}","external_ids":["x-{person}"]}}"#),
            refs: vec![crate::store::RecordRef {
                kind: "tie",
                id: format!("t-{person}"),
                unit: Some("S1".into()),
                unit_name: None,
            }],
        }
    }

    /// A state with a row in most tables and every kind of value: text with quotes and
    /// non-ASCII, integers, a boolean both ways, a blob, NULLs.
    async fn fill(s: &Store) {
        let now = Utc.with_ymd_and_hms(2026, 8, 1, 12, 0, 0).unwrap();
        let ids: Vec<(IdentityId, String)> =
            (0..1200).map(|i| (format!("id-{i}").into(), format!("user{i}"))).collect();
        let records: Vec<RecordRow> =
            (0..1200).map(|i| record(&format!("p{i}"), &format!("id-{i}"), i % 7 == 0)).collect();
        s.commit_identities(&ids, &records, &[], now).await.unwrap();
        let run = s.begin_run("apply", Some("plan-1"), now).await.unwrap();
        let ops: Vec<OpRecord> = (0..1200)
            .map(|i| OpRecord {
                target: "directory".into(),
                identity_id: format!("id-{i}").into(),
                username: format!("user{i}"),
                school: "S1".into(),
                action: "create".into(),
                detail: "uid=x".into(),
                group: false,
                result: OpResult::Ok(Ownership::Set {
                    key: format!("uid=user{i},ou=people"),
                    anchor: Some(format!("a-{i}")),
                    status: if i % 5 == 0 { AccountStatus::Disabled } else { AccountStatus::Active },
                }),
            })
            .collect();
        s.record_ops(run, &ops, now).await.unwrap();
        s.finish_run(run, "ok", "done", now).await.unwrap();
        let sealed = SealedPassword {
            target: "directory".into(),
            identity_id: "id-1".into(),
            username: String::new(),
            school: "S1".into(),
            sealed: vec![0, 1, 2, 254, 255],
            created_at: String::new(),
        };
        s.keep_passwords(&[sealed], now).await.unwrap();
        s.record_civic_changes(
            run,
            &[CivicChange {
                source: "sis".into(),
                person_id: "p1".into(),
                identity_id: "id-1".into(),
                old: Some("201509162388".into()),
                new: None,
            }],
            now,
        )
        .await
        .unwrap();
        s.add_token(&TokenRow {
            name: "ops".into(),
            hash: "ab".into(),
            role: "admin".into(),
            schools: vec![],
            created_at: "2026-08-01T12:00:00Z".into(),
            revoked_at: None,
        })
        .await
        .unwrap();
        s.record_approvals(&[ApprovalRow {
            id: 0,
            run_id: run,
            fingerprint: Some("f".into()),
            target: None,
            identity: None,
            action: None,
            accept: Some("shrink".into()),
            approved_by: "local:root".into(),
            approved_at: now,
            expires_at: now,
        }])
        .await
        .unwrap();
        s.set_meta("id_key_fingerprint", "abc").await.unwrap();
        s.save_plan("plan-1", "{\"x\":1}", now).await.unwrap();
    }

    #[tokio::test]
    async fn the_table_list_covers_every_table_and_column_of_both_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let listed: Vec<(String, String)> = {
            let mut v: Vec<(String, String)> = TABLES
                .iter()
                .flat_map(|t| t.columns.iter().map(|(c, _)| (t.name.to_string(), c.to_string())))
                .collect();
            v.sort();
            v
        };
        assert_eq!(schema_columns(&sqlite(&dir, "s.db").await).await, listed, "SQLite's schema");
        assert_eq!(schema_columns(&postgres().await).await, listed, "PostgreSQL's schema");
    }

    #[tokio::test]
    async fn a_state_copied_to_postgres_and_back_is_the_same_row_for_row() {
        let dir = tempfile::tempdir().unwrap();
        let original = sqlite(&dir, "state.db").await;
        fill(&original).await;
        let before = tally(&original).await.unwrap();
        assert!(before.iter().filter(|t| t.rows > 0).count() >= 12, "{before:?}");
        let pg = postgres().await;
        let copied = copy(&original, &pg).await.unwrap();
        assert_eq!(copied, before);
        // What the engine reads is the same, and new rows get new ids.
        let (a, b) = (original.snapshot().await.unwrap(), pg.snapshot().await.unwrap());
        let sorted = |m: &crate::core::model::IdMap<Option<connector_api::value::Str>>| {
            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<std::collections::BTreeMap<_, _>>()
        };
        assert!(sorted(&a.identities) == sorted(&b.identities), "the identities differ");
        assert_eq!(a.accounts.len(), b.accounts.len());
        assert_eq!(original.protected_identities().await.unwrap(), pg.protected_identities().await.unwrap());
        assert_eq!(original.find_identity("x-p3").await.unwrap(), pg.find_identity("x-p3").await.unwrap());
        let now = Utc::now();
        assert_eq!(
            pg.begin_run("apply", None, now).await.unwrap(),
            original.begin_run("apply", None, now).await.unwrap()
        );
        // And back into a new file: the same again.
        let back = sqlite(&dir, "back.db").await;
        let pg_now = tally(&pg).await.unwrap();
        assert_eq!(copy(&pg, &back).await.unwrap(), pg_now);
        assert_eq!(tally(&back).await.unwrap(), tally(&original).await.unwrap());
    }

    #[tokio::test]
    async fn a_copy_into_a_database_that_holds_a_state_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let original = sqlite(&dir, "state.db").await;
        fill(&original).await;
        let pg = postgres().await;
        pg.set_meta("k", "v").await.unwrap();
        let err = copy(&original, &pg).await.unwrap_err();
        assert!(err.to_string().contains("already holds a state") && err.to_string().contains("meta"), "{err}");
        assert_eq!(pg.snapshot().await.unwrap().identities.len(), 0);
    }
}
