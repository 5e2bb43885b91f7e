//! The SQLite store's memory of source reads: the watermark and scope of each source's last
//! applied read, the records that read left (for an incremental read's merge: the linked ones
//! and the held ones, which are in no identity yet), and the records whose persons the source
//! no longer gives (marked gone, never deleted).

use super::{SqliteStore, bulk, ts};
use crate::store::{HeldRow, SourceRead, StoreError, StoredSourceRecord};
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};
use std::collections::BTreeMap;

impl SqliteStore {
    pub(super) async fn read_source_reads(&self) -> Result<BTreeMap<String, SourceRead>, StoreError> {
        let sql = "SELECT json_group_array(json_array(source, watermark, full_read_at, scope)) FROM source_reads";
        let rows: Vec<(String, Option<String>, Option<String>, String)> = self.json_rows(sqlx::query(sql)).await?;
        rows.into_iter()
            .map(|(source, watermark, full, scope)| {
                let full_read_at = match full {
                    None => None,
                    Some(t) => Some(
                        DateTime::parse_from_rfc3339(&t)
                            .map_err(|e| self.fail(format!("source_reads of {source:?}: full_read_at {t:?}: {e}")))?
                            .with_timezone(&Utc),
                    ),
                };
                Ok((source, SourceRead { watermark, full_read_at, scope }))
            })
            .collect()
    }

    pub(super) async fn write_source_reads(
        &self,
        run: i64,
        reads: &BTreeMap<String, (SourceRead, bool)>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        // A full read sets its time; an incremental one keeps the last full read's.
        let sql = "INSERT INTO source_reads (source, watermark, full_read_at, scope, run_id, updated_at)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                   ON CONFLICT (source) DO UPDATE SET watermark = excluded.watermark,
                      full_read_at = COALESCE(excluded.full_read_at, source_reads.full_read_at),
                      scope = excluded.scope, run_id = excluded.run_id, updated_at = excluded.updated_at";
        let statements = reads
            .iter()
            .map(|(source, (read, full))| {
                sqlx::query(sql)
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

    pub(super) async fn read_stored_records(&self, source: &str) -> Result<Vec<StoredSourceRecord>, StoreError> {
        let sql = "SELECT json_group_array(json_array(person_id, civic_no, data)) FROM (
                       SELECT person_id, civic_no, data FROM held_records WHERE source = ?1
                       UNION ALL
                       SELECT person_id, civic_no, data FROM source_records r WHERE source = ?1 AND gone_at IS NULL
                           AND NOT EXISTS (SELECT 1 FROM held_records h
                                           WHERE h.source = r.source AND h.person_id = r.person_id))";
        let rows: Vec<(String, Option<String>, Option<String>)> = self.json_rows(sqlx::query(sql).bind(source)).await?;
        Ok(rows
            .into_iter()
            .map(|(person_id, civic_no, data)| StoredSourceRecord { person_id, civic_no, data })
            .collect())
    }

    pub(super) async fn read_held_keys(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let sql = "SELECT json_group_array(json_array(source, person_id, content_hash)) FROM
                       (SELECT source, person_id, content_hash FROM held_records ORDER BY source, person_id)";
        self.json_rows(sqlx::query(sql)).await
    }

    /// Upserts the held rows with this run's id, then deletes the rows of `sources` this run
    /// did not hold: one transaction.
    pub(super) async fn write_held(
        &self,
        run: i64,
        sources: &[String],
        rows: &[HeldRow],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = ts(now);
        self.ctx(
            async {
                let (_writing, mut tx) = self.begin_write().await?;
                bulk::insert_rows(
                    &mut tx,
                    "INSERT INTO held_records (source, person_id, civic_no, data, content_hash, held_since, run_id) ",
                    " ON CONFLICT (source, person_id) DO UPDATE SET civic_no = excluded.civic_no,
                        data = excluded.data, content_hash = excluded.content_hash, run_id = excluded.run_id",
                    rows,
                    |mut b, r| {
                        b.push_bind(&r.source)
                            .push_bind(&r.person_id)
                            .push_bind(&r.civic_no)
                            .push_bind(&r.data)
                            .push_bind(&r.content_hash)
                            .push_bind(&now)
                            .push_bind(run);
                    },
                )
                .await?;
                for source in sources {
                    sqlx::query("DELETE FROM held_records WHERE source = ?1 AND run_id <> ?2")
                        .bind(source)
                        .bind(run)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
            .await,
        )
    }

    pub(super) async fn write_gone(&self, rows: &[(String, String)], now: DateTime<Utc>) -> Result<(), StoreError> {
        let now = ts(now);
        self.ctx(
            async {
                let (_writing, mut tx) = self.begin_write().await?;
                for chunk in rows.chunks(bulk::CHUNK_ROWS) {
                    let mut q = QueryBuilder::<Sqlite>::new("UPDATE source_records SET gone_at = ");
                    q.push_bind(now.clone());
                    q.push(" FROM (");
                    q.push_values(chunk, |mut b, (source, person_id)| {
                        b.push_bind(source).push_bind(person_id);
                    });
                    q.push(
                        ") AS v WHERE source_records.source = v.column1 AND source_records.person_id = v.column2 \
                         AND source_records.gone_at IS NULL",
                    );
                    q.build().execute(&mut *tx).await?;
                    let keys: Vec<(&str, &str)> = chunk.iter().map(|(s, p)| (s.as_str(), p.as_str())).collect();
                    bulk::forget_refs(&mut tx, &keys).await?;
                }
                tx.commit().await
            }
            .await,
        )
    }
}
