//! Whole-table reads of a SQLite state through a connection of their own (rusqlite), row by row
//! on a blocking thread: what a full run reads of every identity, stored record and ownership
//! row. Through sqlx each row crossed a channel from its worker thread, so these reads had
//! SQLite build each table as JSON text and parsed it again: at 100,000 persons some 0.3 s of
//! SQLite's CPU and 0.25 s of parsing in a no-op plan, a run bound by its CPU. Here each column
//! is read where SQLite holds it.
//!
//! The connection is the same SQLite library sqlx links (one copy in the process: its file
//! locks are the process's one view of them), opened read-write but never creating, and
//! `query_only`. Each table is read in one transaction: its count and its rows are one view.

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::rows::{AccountRowIn, IdentityRow, RowSink, StoredRow};
use std::path::Path;
use std::time::Duration;

/// A row of a table read whole, made a `T` from the columns the read asked for.
type MakeRow<T> = fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>;

/// The identities: id, username, primary school, primary tie.
pub(super) const IDENTITIES: (&str, &str, MakeRow<IdentityRow>) =
    ("identities", "id, username, primary_school, primary_tie", |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)));

/// The stored records, as [`StoredRow`] orders them.
pub(super) const RECORDS: (&str, &str, MakeRow<StoredRow>) = (
    "source_records",
    "source, person_id, identity_id, civic_no, content_hash, school_unit, email, eppn, role, protected = 1,
     given_name, family_name, gone_at IS NOT NULL",
    |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
        ))
    },
);

/// The ownership rows: target, identity, key, anchor, status, disabled at.
pub(super) const ACCOUNTS: (&str, &str, MakeRow<AccountRowIn>) =
    ("accounts", "target, identity_id, key, anchor, status, disabled_at", |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
    });

impl SqliteStore {
    /// Every row of `table` (one of this module's constants: the code's own, never input),
    /// each handed to `into` as it is read.
    pub(super) async fn read_whole<T: 'static, S: RowSink<T> + Send + 'static>(
        &self,
        (table, columns, make): (&'static str, &'static str, MakeRow<T>),
        into: S,
    ) -> Result<S, StoreError> {
        let (file, busy) = (self.file.clone(), self.busy);
        let read = tokio::task::spawn_blocking(move || read_table(&file, busy, table, columns, make, into)).await;
        match read {
            Ok(Ok(into)) => Ok(into),
            Ok(Err(e)) => Err(self.fail(format!("reading the state ({table}): {e}"))),
            Err(e) => Err(self.fail(format!("reading the state ({table}) stopped: {e}"))),
        }
    }
}

fn read_table<T, S: RowSink<T>>(
    file: &Path,
    busy: Duration,
    table: &str,
    columns: &str,
    make: MakeRow<T>,
    mut into: S,
) -> rusqlite::Result<S> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.execute_batch("BEGIN")?;
    let count: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    into.reserve(usize::try_from(count).unwrap_or(0));
    {
        let mut statement = conn.prepare(&format!("SELECT {columns} FROM {table}"))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            into.add(make(row)?);
        }
    }
    conn.execute_batch("COMMIT")?;
    Ok(into)
}
