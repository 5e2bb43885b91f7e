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
use crate::store::rows::RowSink;
use std::path::Path;
use std::time::Duration;

/// A table read whole: its name and the columns asked for, in the order of the row the sink
/// takes (a tuple: rusqlite makes one of a row's columns in order).
#[derive(Clone, Copy)]
pub(super) struct Table {
    name: &'static str,
    columns: &'static str,
}

/// The identities: id, username, primary school, primary tie (`rows::IdentityRow`).
pub(super) const IDENTITIES: Table = Table { name: "identities", columns: "id, username, primary_school, primary_tie" };

/// The stored records, as `rows::StoredRow` orders them.
pub(super) const RECORDS: Table = Table {
    name: "source_records",
    columns: "source, person_id, identity_id, civic_no, content_hash, school_unit, email, eppn, role, protected = 1,
              given_name, family_name, gone_at IS NOT NULL",
};

/// The ownership rows: target, identity, key, anchor, status, disabled at (`rows::AccountRowIn`).
pub(super) const ACCOUNTS: Table =
    Table { name: "accounts", columns: "target, identity_id, key, anchor, status, disabled_at" };

impl SqliteStore {
    /// Every row of `table` (one of this module's constants: the code's own, never input),
    /// each handed to `into` as it is read.
    pub(super) async fn read_whole<T, S>(&self, table: Table, into: S) -> Result<S, StoreError>
    where
        T: for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error> + 'static,
        S: RowSink<T> + Send + 'static,
    {
        let (file, busy) = (self.file.clone(), self.busy);
        let read = tokio::task::spawn_blocking(move || read_table(&file, busy, table, into)).await;
        let table = table.name;
        match read {
            Ok(Ok(into)) => Ok(into),
            Ok(Err(e)) => Err(self.fail(format!("reading the state ({table}): {e}"))),
            Err(e) => Err(self.fail(format!("reading the state ({table}) stopped: {e}"))),
        }
    }
}

fn read_table<T, S>(file: &Path, busy: Duration, table: Table, mut into: S) -> rusqlite::Result<S>
where
    T: for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>,
    S: RowSink<T>,
{
    let Table { name, columns } = table;
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.execute_batch("BEGIN")?;
    let count: i64 = conn.query_row(&format!("SELECT count(*) FROM {name}"), [], |r| r.get(0))?;
    into.reserve(usize::try_from(count).unwrap_or(0));
    {
        let mut statement = conn.prepare(&format!("SELECT {columns} FROM {name}"))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            into.add(T::try_from(row)?);
        }
    }
    conn.execute_batch("COMMIT")?;
    Ok(into)
}
