//! The PostgreSQL store's bulk writes: every table a run writes by the thousand goes as
//! multi-row statements of [`CHUNK_ROWS`] rows inside the caller's transaction, one round trip
//! per chunk instead of one per row. The statements are the SQLite store's (`ON CONFLICT ...
//! excluded`, which both databases speak); what differs is the connection type and the alias a
//! `VALUES` list needs in PostgreSQL. These functions return `sqlx::Error`; the caller names
//! the database in the error.

use crate::core::identity::CivicChange;
use crate::core::model::{AccountStatus, IdentityId, PrimaryTie};
use crate::store::{GroupRow, OpRecord, OpResult, Ownership, RecordRef, RecordRow, SealedPassword};
use sqlx::query_builder::Separated;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::BTreeMap;

/// Rows per multi-row statement: 18 columns × 1,000 rows stays under PostgreSQL's 65,535
/// parameters.
pub(super) const CHUNK_ROWS: usize = 1000;

/// Inserts `rows` with `head` (`INSERT INTO t (columns) `) and `tail` (an `ON CONFLICT` clause,
/// or empty), [`CHUNK_ROWS`] rows per statement; `bind` binds one row's values in column order.
pub(super) async fn insert_rows<T>(
    conn: &mut PgConnection,
    head: &str,
    tail: &str,
    rows: &[T],
    mut bind: impl FnMut(Separated<'_, Postgres, &'static str>, &T),
) -> sqlx::Result<()> {
    for chunk in rows.chunks(CHUNK_ROWS) {
        let mut q = QueryBuilder::<Postgres>::new(head);
        q.push_values(chunk, &mut bind);
        q.push(tail);
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Like [`insert_rows`] for an upsert (`ON CONFLICT ... DO UPDATE`) whose rows may name one
/// key (`key`) twice. PostgreSQL refuses a statement that changes one row twice ("ON CONFLICT DO
/// UPDATE command cannot affect row a second time"); SQLite writes such rows one after the
/// other. So the rows go in rounds, each with at most one row per key, a key's rows in their
/// order: what writing them one after the other writes, as on SQLite (the later row wins, with
/// what the clause keeps of the earlier one).
pub(super) async fn upsert_rows<'r, T, K: Ord>(
    conn: &mut PgConnection,
    head: &str,
    tail: &str,
    rows: &'r [T],
    key: impl Fn(&'r T) -> K,
    mut bind: impl FnMut(Separated<'_, Postgres, &'static str>, &T),
) -> sqlx::Result<()> {
    let mut seen: BTreeMap<K, usize> = BTreeMap::new();
    let mut rounds: Vec<Vec<&'r T>> = Vec::new();
    for row in rows {
        let n = seen.entry(key(row)).or_insert(0);
        match rounds.get_mut(*n) {
            Some(round) => round.push(row),
            None => rounds.push(vec![row]),
        }
        *n += 1;
    }
    for round in rounds {
        insert_rows(conn, head, tail, &round, |b, row| bind(b, row)).await?;
    }
    Ok(())
}

/// The conflict clause that gives a username (back) to an identity: a released name whose
/// quarantine ended, or a name reserved by `enid adopt` for an identity that claims it.
const ALLOCATE: &str = " ON CONFLICT (username) DO UPDATE SET identity_id = excluded.identity_id,
    allocated_at = excluded.allocated_at, released_at = NULL";

/// Records usernames as taken by no identity (`enid adopt`); names already known stay as they are.
pub(super) async fn reserve_usernames(conn: &mut PgConnection, names: &[String], now: &str) -> sqlx::Result<()> {
    insert_rows(
        conn,
        "INSERT INTO usernames (username, identity_id, allocated_at) ",
        " ON CONFLICT (username) DO NOTHING",
        names,
        |mut b, name| {
            b.push_bind(name.clone()).push_bind("").push_bind(now.to_string());
        },
    )
    .await
}

/// Inserts new identities and allocates their usernames.
pub(super) async fn insert_identities(
    conn: &mut PgConnection,
    new: &[(IdentityId, String)],
    now: &str,
) -> sqlx::Result<()> {
    insert_rows(conn, "INSERT INTO identities (id, username, created_at) ", "", new, |mut b, (id, username)| {
        b.push_bind(id.clone()).push_bind(username.clone()).push_bind(now.to_string());
    })
    .await?;
    // In the order of the table's key (the identities come in id order), as SQLite's store does.
    let mut by_name: Vec<&(IdentityId, String)> = new.iter().collect();
    by_name.sort_unstable_by(|a, b| a.1.cmp(&b.1));
    upsert_rows(
        conn,
        "INSERT INTO usernames (username, identity_id, allocated_at) ",
        ALLOCATE,
        &by_name,
        |(_, username)| username.as_str(),
        |mut b, (id, username)| {
            b.push_bind(username.clone()).push_bind(id.clone()).push_bind(now.to_string());
        },
    )
    .await
}

/// Records identities' primary school units (`None`: none any more).
pub(super) async fn set_primaries(
    conn: &mut PgConnection,
    rows: &[(IdentityId, Option<PrimaryTie>)],
) -> sqlx::Result<()> {
    for chunk in rows.chunks(CHUNK_ROWS) {
        let mut q = QueryBuilder::<Postgres>::new(
            "UPDATE identities SET primary_school = v.school, primary_tie = v.tie FROM (",
        );
        q.push_values(chunk, |mut b, (id, primary)| {
            b.push_bind(id.clone())
                .push_bind(primary.as_ref().map(|p| p.school_unit().to_string()))
                .push_bind(primary.as_ref().and_then(|p| p.source_id().map(str::to_string)));
        });
        q.push(") AS v (id, school, tie) WHERE identities.id = v.id");
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// [`upsert_records`] of records taken one by one, [`CHUNK_ROWS`] at a time: never all their
/// rows at once.
pub(super) async fn upsert_records_from(
    conn: &mut PgConnection,
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

/// Writes new or changed source records (full civic numbers: only here), and their refs.
pub(super) async fn upsert_records(conn: &mut PgConnection, records: &[RecordRow], now: &str) -> sqlx::Result<()> {
    upsert_rows(
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
        |r| (r.source.as_str(), r.person_id.as_str()),
        |mut b, r| {
            b.push_bind(r.source.clone())
                .push_bind(r.person_id.clone())
                .push_bind(r.identity_id.clone())
                .push_bind(r.civic_no.clone())
                .push_bind(r.given_name.clone())
                .push_bind(r.family_name.clone())
                .push_bind(r.role.clone())
                .push_bind(r.school_unit.clone())
                .push_bind(r.groups.clone())
                .push_bind(r.start_date.clone())
                .push_bind(r.end_date.clone())
                .push_bind(r.email.clone())
                .push_bind(r.eppn.clone())
                .push_bind(r.protected)
                .push_bind(r.content_hash.clone())
                .push_bind(r.data.clone())
                .push_bind(now.to_string())
                .push_bind(now.to_string());
        },
    )
    .await?;
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
            b.push_bind(r.source.clone())
                .push_bind(r.person_id.clone())
                .push_bind(f.kind)
                .push_bind(f.id.clone())
                .push_bind(f.unit.clone())
                .push_bind(f.unit_name.clone());
        },
    )
    .await
}

/// Removes the refs of records (source, person_id): replaced, or marked gone.
pub(super) async fn forget_refs(conn: &mut PgConnection, keys: &[(&str, &str)]) -> sqlx::Result<()> {
    for chunk in keys.chunks(CHUNK_ROWS * 10) {
        let (sources, persons): (Vec<&str>, Vec<&str>) = chunk.iter().copied().unzip();
        sqlx::query(
            "DELETE FROM source_record_refs WHERE (source, person_id) IN
               (SELECT * FROM unnest($1::text[], $2::text[]))",
        )
        .bind(sources)
        .bind(persons)
        .execute(&mut *conn)
        .await?;
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

/// Inserts or updates ownership rows by [`crate::store::Ownership`]'s rules (see the SQLite
/// store's `upsert_accounts`: the same statement).
pub(super) async fn upsert_accounts(conn: &mut PgConnection, rows: &[AccountRow<'_>], now: &str) -> sqlx::Result<()> {
    upsert_rows(
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
        |r| (r.target, r.identity),
        |mut b, r| {
            b.push_bind(r.target.to_string())
                .push_bind(r.identity.to_string())
                .push_bind(r.key.map(String::from))
                .push_bind(r.anchor.map(String::from))
                .push_bind(r.status.as_str())
                .push_bind(now.to_string())
                .push_bind(now.to_string())
                .push_bind((r.status == AccountStatus::Disabled).then(|| now.to_string()));
        },
    )
    .await
}

/// Writes group ownership rows.
pub(super) async fn upsert_groups(conn: &mut PgConnection, rows: &[GroupRow], now: &str) -> sqlx::Result<()> {
    upsert_rows(
        conn,
        "INSERT INTO groups (target, name, key, anchor, school, status, created_at, updated_at) ",
        " ON CONFLICT (target, name) DO UPDATE SET key = excluded.key, anchor = excluded.anchor,
            school = excluded.school, status = excluded.status, updated_at = excluded.updated_at",
        rows,
        |g| (g.target.as_str(), g.name.as_str()),
        |mut b, g| {
            b.push_bind(g.target.clone())
                .push_bind(g.name.clone())
                .push_bind(g.key.clone())
                .push_bind(g.anchor.clone())
                .push_bind(g.school.clone())
                .push_bind(if g.pending { "pending" } else { "active" })
                .push_bind(now.to_string())
                .push_bind(now.to_string());
        },
    )
    .await
}

/// Appends operations to the log.
pub(super) async fn insert_oplog(conn: &mut PgConnection, run: i64, ops: &[OpRecord], now: &str) -> sqlx::Result<()> {
    insert_rows(
        conn,
        "INSERT INTO oplog (run_id, at, identity_id, username, target, school, action, detail, result, error) ",
        "",
        ops,
        |mut b, op| {
            let (result, error) = match &op.result {
                OpResult::Ok(_) => ("ok", None),
                OpResult::Failed(e) => ("failed", Some(e.clone())),
                OpResult::Skipped(e) => ("skipped", Some(e.clone())),
            };
            b.push_bind(run)
                .push_bind(now.to_string())
                .push_bind(op.identity_id.clone())
                .push_bind(op.username.clone())
                .push_bind(op.target.clone())
                .push_bind(op.school.clone())
                .push_bind(op.action.clone())
                .push_bind(op.detail.clone())
                .push_bind(result)
                .push_bind(error);
        },
    )
    .await
}

/// Updates the ownership table from the outcomes of account operations (group operations and
/// failures change nothing).
pub(super) async fn record_outcomes(conn: &mut PgConnection, ops: &[OpRecord], now: &str) -> sqlx::Result<()> {
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
                sqlx::query("UPDATE accounts SET key = $1, updated_at = $2 WHERE target = $3 AND identity_id = $4")
                    .bind(key)
                    .bind(now)
                    .bind(&op.target)
                    .bind(&op.identity_id)
                    .execute(&mut *conn)
                    .await?;
            }
            OpResult::Ok(Ownership::Removed) => {
                sqlx::query("DELETE FROM accounts WHERE target = $1 AND identity_id = $2")
                    .bind(&op.target)
                    .bind(&op.identity_id)
                    .execute(&mut *conn)
                    .await?;
            }
            _ => {}
        }
    }
    // In the order of the table's key, as SQLite's store does; stable, so a later row for the
    // same account stays later (`upsert_rows` writes it in a later round) and wins.
    changed.sort_by(|a, b| (a.target, a.identity).cmp(&(b.target, b.identity)));
    upsert_accounts(conn, &changed, now).await
}

/// Appends civic-number changes to the history.
pub(super) async fn insert_civic_history(
    conn: &mut PgConnection,
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
            b.push_bind(c.source.clone())
                .push_bind(c.person_id.clone())
                .push_bind(c.identity_id.clone())
                .push_bind(c.old.clone())
                .push_bind(c.new.clone())
                .push_bind(now.to_string())
                .push_bind(run);
        },
    )
    .await
}

/// Keeps sealed first passwords; a newer one replaces the older and is claimed by no hand-out.
pub(super) async fn upsert_passwords(conn: &mut PgConnection, rows: &[SealedPassword], now: &str) -> sqlx::Result<()> {
    upsert_rows(
        conn,
        "INSERT INTO passwords (target, identity_id, school, sealed, created_at) ",
        " ON CONFLICT (target, identity_id) DO UPDATE SET school = excluded.school, sealed = excluded.sealed,
             created_at = excluded.created_at, claim_id = NULL, claimed_at = NULL",
        rows,
        |r| (r.target.as_str(), r.identity_id.as_str()),
        |mut b, r| {
            b.push_bind(r.target.clone()).push_bind(r.identity_id.clone()).push_bind(r.school.clone());
            b.push_bind(r.sealed.clone()).push_bind(now.to_string());
        },
    )
    .await
}

/// Marks records gone (their persons the source no longer gives) and forgets their refs.
pub(super) async fn mark_gone(conn: &mut PgConnection, rows: &[(String, String)], now: &str) -> sqlx::Result<()> {
    for chunk in rows.chunks(CHUNK_ROWS * 10) {
        let (sources, persons): (Vec<&str>, Vec<&str>) = chunk.iter().map(|(s, p)| (s.as_str(), p.as_str())).unzip();
        sqlx::query(
            "UPDATE source_records SET gone_at = $1
               FROM unnest($2::text[], $3::text[]) AS v (source, person_id)
              WHERE source_records.source = v.source AND source_records.person_id = v.person_id
                AND source_records.gone_at IS NULL",
        )
        .bind(now)
        .bind(&sources)
        .bind(&persons)
        .execute(&mut *conn)
        .await?;
        let keys: Vec<(&str, &str)> = sources.into_iter().zip(persons).collect();
        forget_refs(conn, &keys).await?;
    }
    Ok(())
}
