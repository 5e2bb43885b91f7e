//! The SQLite store's bulk writes: every table that a run writes by the thousand is written
//! through [`insert_rows`], as multi-row statements of [`CHUNK_ROWS`] rows inside the caller's
//! transaction.
//!
//! sqlx hands every statement to its SQLite worker thread and waits for the answer; one
//! statement per row would make that round trip dominate a 100,000-person run. These functions
//! return `sqlx::Error`; the caller names the database in the error.

use super::super::{GroupRow, OpRecord, OpResult, Ownership, RecordRef, RecordRow, SealedPassword};
use crate::core::identity::CivicChange;
use crate::core::model::{AccountStatus, IdentityId, PrimaryTie};
use sqlx::query_builder::Separated;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

/// Rows per multi-row statement: 18 columns × 1,000 rows stays under SQLite's 32,766 variables.
pub(super) const CHUNK_ROWS: usize = 1000;

/// Inserts `rows` with `head` (`INSERT INTO t (columns) `) and `tail` (an `ON CONFLICT` clause,
/// or empty), [`CHUNK_ROWS`] rows per statement; `bind` binds one row's values in column order.
pub(super) async fn insert_rows<T>(
    conn: &mut SqliteConnection,
    head: &str,
    tail: &str,
    rows: &[T],
    mut bind: impl FnMut(Separated<'_, Sqlite, &'static str>, &T),
) -> sqlx::Result<()> {
    for chunk in rows.chunks(CHUNK_ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(head);
        q.push_values(chunk, &mut bind);
        q.push(tail);
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Records usernames as taken by no identity (`enid adopt`); names already known stay as they are.
pub(super) async fn reserve_usernames(conn: &mut SqliteConnection, names: &[String], now: &str) -> sqlx::Result<()> {
    insert_rows(
        conn,
        "INSERT INTO usernames (username, identity_id, allocated_at) ",
        " ON CONFLICT (username) DO NOTHING",
        names,
        |mut b, name| {
            b.push_bind(name).push_bind("").push_bind(now);
        },
    )
    .await
}

/// Inserts new identities and allocates their usernames. A name whose quarantine ended
/// changes hands.
pub(super) async fn insert_identities(
    conn: &mut SqliteConnection,
    new: &[(IdentityId, String)],
    now: &str,
) -> sqlx::Result<()> {
    insert_rows(conn, "INSERT INTO identities (id, username, created_at) ", "", new, |mut b, (id, username)| {
        b.push_bind(id).push_bind(username).push_bind(now);
    })
    .await?;
    // In the order of the table's key (the identities come in id order): each name next to the
    // one before in the index, not on a page of its own.
    let mut by_name: Vec<&(IdentityId, String)> = new.iter().collect();
    by_name.sort_unstable_by(|a, b| a.1.cmp(&b.1));
    insert_rows(
        conn,
        "INSERT INTO usernames (username, identity_id, allocated_at) ",
        ALLOCATE,
        &by_name,
        |mut b, (id, username)| {
            b.push_bind(username).push_bind(id).push_bind(now);
        },
    )
    .await
}

/// The conflict clause that gives a username (back) to an identity: a released name whose
/// quarantine ended, or a name reserved by `enid adopt` for an identity that claims it.
pub(super) const ALLOCATE: &str = " ON CONFLICT (username) DO UPDATE SET identity_id = excluded.identity_id,
    allocated_at = excluded.allocated_at, released_at = NULL";

/// Records identities' primary school units (`None`: none any more).
pub(super) async fn set_primaries(
    conn: &mut SqliteConnection,
    rows: &[(IdentityId, Option<PrimaryTie>)],
) -> sqlx::Result<()> {
    for chunk in rows.chunks(CHUNK_ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "UPDATE identities SET primary_school = v.column2, primary_tie = v.column3 FROM (",
        );
        q.push_values(chunk, |mut b, (id, primary)| {
            b.push_bind(id)
                .push_bind(primary.as_ref().map(PrimaryTie::school_unit))
                .push_bind(primary.as_ref().and_then(PrimaryTie::source_id));
        });
        q.push(") AS v WHERE identities.id = v.column1");
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// [`upsert_records`] of records taken one by one, [`CHUNK_ROWS`] at a time: never all their
/// rows at once.
pub(super) async fn upsert_records_from(
    conn: &mut SqliteConnection,
    records: &mut (dyn Iterator<Item = RecordRow> + Send),
    now: &str,
) -> sqlx::Result<()> {
    loop {
        let chunk: Vec<RecordRow> = (&mut *records).take(CHUNK_ROWS).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        upsert_records(conn, &chunk, now).await?;
    }
}

/// Writes new or changed source records (full civic numbers: only here).
pub(super) async fn upsert_records(conn: &mut SqliteConnection, records: &[RecordRow], now: &str) -> sqlx::Result<()> {
    insert_rows(
        conn,
        "INSERT INTO source_records (source, person_id, identity_id, civic_no, given_name, family_name, role,
            school_unit, groups, start_date, end_date, email, eppn, protected, content_hash, data, first_seen,
            updated_at) ",
        " ON CONFLICT (source, person_id) DO UPDATE SET identity_id = excluded.identity_id,
            civic_no = excluded.civic_no, given_name = excluded.given_name, family_name = excluded.family_name,
            role = excluded.role, school_unit = excluded.school_unit, groups = excluded.groups,
            start_date = excluded.start_date, end_date = excluded.end_date, email = excluded.email,
            eppn = excluded.eppn, protected = excluded.protected, content_hash = excluded.content_hash,
            data = excluded.data, gone_at = NULL, updated_at = excluded.updated_at",
        records,
        |mut b, r| {
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
                .push_bind(&r.data)
                .push_bind(now)
                .push_bind(now);
        },
    )
    .await?;
    // The refs an incremental read looks records up by, replaced with the record (records of
    // sources without source ids, as CSV, have none: nothing to write, nothing to remove).
    let with_refs: Vec<&RecordRow> = records.iter().filter(|r| !r.refs.is_empty()).collect();
    forget_refs(conn, &with_refs.iter().map(|r| (r.source.as_str(), r.person_id.as_str())).collect::<Vec<_>>()).await?;
    let refs: Vec<(&RecordRow, &RecordRef)> =
        with_refs.iter().flat_map(|r| r.refs.iter().map(move |f| (*r, f))).collect();
    insert_rows(
        conn,
        "INSERT INTO source_record_refs (source, person_id, kind, ref, unit, unit_name) ",
        "",
        &refs,
        |mut b, (r, f)| {
            b.push_bind(&r.source)
                .push_bind(&r.person_id)
                .push_bind(f.kind)
                .push_bind(&f.id)
                .push_bind(&f.unit)
                .push_bind(&f.unit_name);
        },
    )
    .await
}

/// Removes the refs of records (source, person_id): replaced, or marked gone.
pub(super) async fn forget_refs(conn: &mut SqliteConnection, keys: &[(&str, &str)]) -> sqlx::Result<()> {
    for chunk in keys.chunks(CHUNK_ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "DELETE FROM source_record_refs WHERE (source, person_id) IN (SELECT column1, column2 FROM (",
        );
        q.push_values(chunk, |mut b, (source, person_id)| {
            b.push_bind(*source).push_bind(*person_id);
        });
        q.push("))");
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// One ownership row to write.
pub(super) struct AccountRow<'a> {
    pub target: &'a str,
    pub identity: &'a str,
    /// `None` for a pending row: the target has not given a key yet.
    pub key: Option<&'a str>,
    pub anchor: Option<&'a str>,
    pub status: AccountStatus,
}

/// Inserts or updates ownership rows. A row's anchor and key are kept when the new ones are
/// unknown, except for a pending row, which starts over (the create gets a key from the
/// target); `disabled_at` is kept while the account stays disabled.
pub(super) async fn upsert_accounts(
    conn: &mut SqliteConnection,
    rows: &[AccountRow<'_>],
    now: &str,
) -> sqlx::Result<()> {
    insert_rows(
        conn,
        "INSERT INTO accounts (target, identity_id, key, anchor, status, created_at, updated_at, disabled_at) ",
        " ON CONFLICT (target, identity_id) DO UPDATE SET
            key = CASE WHEN excluded.status = 'pending' THEN NULL ELSE COALESCE(excluded.key, accounts.key) END,
            anchor = CASE WHEN excluded.status = 'pending' THEN NULL
                          ELSE COALESCE(excluded.anchor, accounts.anchor) END,
            status = excluded.status, updated_at = excluded.updated_at,
            disabled_at = CASE WHEN excluded.status = 'disabled'
                               THEN COALESCE(accounts.disabled_at, excluded.updated_at) ELSE NULL END",
        rows,
        |mut b, r| {
            b.push_bind(r.target)
                .push_bind(r.identity)
                .push_bind(r.key)
                .push_bind(r.anchor)
                .push_bind(r.status.as_str())
                .push_bind(now)
                .push_bind(now)
                .push_bind((r.status == AccountStatus::Disabled).then_some(now));
        },
    )
    .await
}

/// Writes group ownership rows.
pub(super) async fn upsert_groups(conn: &mut SqliteConnection, rows: &[GroupRow], now: &str) -> sqlx::Result<()> {
    insert_rows(
        conn,
        "INSERT INTO groups (target, name, key, anchor, school, status, created_at, updated_at) ",
        " ON CONFLICT (target, name) DO UPDATE SET key = excluded.key, anchor = excluded.anchor,
            school = excluded.school, status = excluded.status, updated_at = excluded.updated_at",
        rows,
        |mut b, g| {
            b.push_bind(&g.target)
                .push_bind(&g.name)
                .push_bind(&g.key)
                .push_bind(&g.anchor)
                .push_bind(&g.school)
                .push_bind(if g.pending { "pending" } else { "active" })
                .push_bind(now)
                .push_bind(now);
        },
    )
    .await
}

/// Appends operations to the log.
pub(super) async fn insert_oplog(
    conn: &mut SqliteConnection,
    run: i64,
    ops: &[OpRecord],
    now: &str,
) -> sqlx::Result<()> {
    insert_rows(
        conn,
        "INSERT INTO oplog (run_id, at, identity_id, username, target, school, action, detail, result, error) ",
        "",
        ops,
        |mut b, op| {
            let (result, error) = match &op.result {
                OpResult::Ok(_) => ("ok", None),
                OpResult::Failed(e) => ("failed", Some(e.as_str())),
                OpResult::Skipped(e) => ("skipped", Some(e.as_str())),
            };
            b.push_bind(run)
                .push_bind(now)
                .push_bind(&op.identity_id)
                .push_bind(&op.username)
                .push_bind(&op.target)
                .push_bind(&op.school)
                .push_bind(&op.action)
                .push_bind(&op.detail)
                .push_bind(result)
                .push_bind(error);
        },
    )
    .await
}

/// Updates the ownership table from the outcomes of account operations (group operations and
/// failures change nothing).
pub(super) async fn record_outcomes(conn: &mut SqliteConnection, ops: &[OpRecord], now: &str) -> sqlx::Result<()> {
    let mut changed = Vec::new();
    for op in ops.iter().filter(|o| !o.group) {
        match &op.result {
            OpResult::Ok(Ownership::Set { key, anchor, status }) => changed.push(AccountRow {
                target: &op.target,
                identity: &op.identity_id,
                key: Some(key),
                anchor: anchor.as_deref(),
                status: *status,
            }),
            OpResult::Ok(Ownership::Moved { key }) => {
                sqlx::query("UPDATE accounts SET key = ?1, updated_at = ?2 WHERE target = ?3 AND identity_id = ?4")
                    .bind(key)
                    .bind(now)
                    .bind(&op.target)
                    .bind(&op.identity_id)
                    .execute(&mut *conn)
                    .await?;
            }
            OpResult::Ok(Ownership::Removed) => {
                sqlx::query("DELETE FROM accounts WHERE target = ?1 AND identity_id = ?2")
                    .bind(&op.target)
                    .bind(&op.identity_id)
                    .execute(&mut *conn)
                    .await?;
            }
            _ => {}
        }
    }
    // In the order of the table's key, each account next to the one before in the index (they
    // come in the order the target answered). Stable: a later row for the same account stays
    // later, and wins.
    changed.sort_by(|a, b| (a.target, a.identity).cmp(&(b.target, b.identity)));
    upsert_accounts(conn, &changed, now).await
}

/// Appends civic-number changes to the history.
pub(super) async fn insert_civic_history(
    conn: &mut SqliteConnection,
    run: i64,
    changes: &[CivicChange],
    now: &str,
) -> sqlx::Result<()> {
    insert_rows(
        conn,
        "INSERT INTO civic_history (source, person_id, identity_id, old_civic_no, new_civic_no, changed_at, run_id) ",
        "",
        changes,
        |mut b, c| {
            b.push_bind(&c.source)
                .push_bind(&c.person_id)
                .push_bind(&c.identity_id)
                .push_bind(&c.old)
                .push_bind(&c.new)
                .push_bind(now)
                .push_bind(run);
        },
    )
    .await
}

/// Keeps sealed first passwords; a newer one for the same target and identity replaces the older
/// and is claimed by no hand-out (the hand-out that claimed the older one must not forget it).
pub(super) async fn upsert_passwords(
    conn: &mut SqliteConnection,
    rows: &[SealedPassword],
    now: &str,
) -> sqlx::Result<()> {
    insert_rows(
        conn,
        "INSERT INTO passwords (target, identity_id, school, sealed, created_at) ",
        " ON CONFLICT (target, identity_id) DO UPDATE SET school = excluded.school, sealed = excluded.sealed,
             created_at = excluded.created_at, claim_id = NULL, claimed_at = NULL",
        rows,
        |mut b, r| {
            b.push_bind(r.target.clone()).push_bind(r.identity_id.clone()).push_bind(r.school.clone());
            b.push_bind(r.sealed.clone()).push_bind(now.to_string());
        },
    )
    .await
}

/// Sets the anchors found after a run's creates (`StateStore::record_anchors`), a chunk of rows
/// per statement (their values as one JSON array), each row found by its primary key.
pub(super) async fn record_anchors(
    conn: &mut SqliteConnection,
    target: &str,
    found: &[connector_api::FoundAnchor],
) -> sqlx::Result<u64> {
    let mut set = 0;
    for chunk in found.chunks(CHUNK_ROWS) {
        let rows: Vec<[&str; 3]> =
            chunk.iter().map(|f| [f.owner.as_str(), f.key.as_str(), f.anchor.as_str()]).collect();
        let json = serde_json::to_string(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let q = sqlx::query(
            // Materialised, so that each found row looks its account up by the primary key (as
            // a subquery, the planner walked every row of the target for each found one).
            "WITH found (identity_id, key, anchor) AS MATERIALIZED
                  (SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?2))
             UPDATE accounts SET anchor = found.anchor FROM found
              WHERE accounts.target = ?1 AND accounts.identity_id = found.identity_id
                AND accounts.key = found.key AND accounts.anchor IS NULL AND accounts.status <> 'pending'",
        )
        .bind(target)
        .bind(json);
        set += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(set)
}
