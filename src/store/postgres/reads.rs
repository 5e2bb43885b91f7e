//! What an incremental run reads of the PostgreSQL state instead of the whole snapshot (every
//! record's digest, the state of a few identities, the records a change names), and the held
//! records. The same questions as the SQLite store's `partial`, `prior` and `sources`, asked
//! with arrays instead of JSON.

use super::{PgStore, RECORD_COLUMNS, bulk, ts};
use crate::core::model::Snapshot;
use crate::store::rows::{AccountRowIn, IdentityRow, StoredRow, build_snapshot, snapshot_sinks};
use crate::store::{HeldRow, RecordDigest, StoreError, StoredSourceRecord};
use chrono::{DateTime, Utc};
use connector_api::PriorQuery;
use std::collections::{BTreeMap, BTreeSet};

/// A record digest as read: (source, person_id, identity_id, content_hash, gone).
type DigestRow = (String, String, String, String, bool);

fn digest((source, person_id, identity_id, content_hash, gone): DigestRow) -> RecordDigest {
    RecordDigest { source, person_id, identity_id, content_hash, gone }
}

/// The stored records of one source (`$1`; a held record in place of a linked one with its
/// key) whose person is in `ids`, a CTE of person ids.
const RECORDS_OF_IDS: &str = "SELECT person_id, civic_no, data FROM held_records
        WHERE source = $1 AND person_id IN (SELECT id FROM ids)
    UNION ALL
    SELECT person_id, civic_no, data FROM source_records r
        WHERE source = $1 AND gone_at IS NULL AND person_id IN (SELECT id FROM ids)
          AND NOT EXISTS (SELECT 1 FROM held_records h WHERE h.source = r.source AND h.person_id = r.person_id)";

/// The elements of a JSON array inside a held record's data (`key`), none when it is missing.
fn held_array(key: &str) -> String {
    let data = super::jsonb("h.data");
    format!(
        "jsonb_array_elements(CASE WHEN jsonb_typeof({data} -> '{key}') = 'array'
                                   THEN {data} -> '{key}' ELSE '[]'::jsonb END)"
    )
}

fn list(set: &BTreeSet<String>) -> Vec<&str> {
    set.iter().map(String::as_str).collect()
}

fn split_keys(keys: &[(String, String)]) -> (Vec<&str>, Vec<&str>) {
    keys.iter().map(|(s, p)| (s.as_str(), p.as_str())).unzip()
}

impl PgStore {
    pub(super) async fn read_record_digests(&self) -> Result<Vec<RecordDigest>, StoreError> {
        let q = sqlx::query_as::<_, DigestRow>(
            "SELECT source, person_id, identity_id, content_hash, gone_at IS NOT NULL FROM source_records",
        );
        Ok(self.fetch(q).await?.into_iter().map(digest).collect())
    }

    pub(super) async fn read_record_digests_of(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<RecordDigest>, StoreError> {
        let (sources, persons) = split_keys(keys);
        let q = sqlx::query_as::<_, DigestRow>(
            "SELECT source, person_id, identity_id, content_hash, gone_at IS NOT NULL FROM source_records
              WHERE (source, person_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        );
        Ok(self.fetch(q.bind(sources).bind(persons)).await?.into_iter().map(digest).collect())
    }

    /// The identities linked to `keys` or holding one of the values in a stored record (civic
    /// numbers as stored; e-mail addresses and eppns compared lowercased), with everything the
    /// snapshot holds of them.
    pub(super) async fn read_snapshot_of(
        &self,
        keys: &[(String, String)],
        civic: &[String],
        email: &[String],
        eppn: &[String],
    ) -> Result<Snapshot, StoreError> {
        let (sources, persons) = split_keys(keys);
        let email: Vec<String> = email.iter().map(|e| e.to_lowercase()).collect();
        let eppn: Vec<String> = eppn.iter().map(|e| e.to_lowercase()).collect();
        let q = sqlx::query_scalar::<_, String>(
            "SELECT identity_id FROM source_records
              WHERE (source, person_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
             UNION SELECT identity_id FROM source_records WHERE civic_no = ANY($3)
             UNION SELECT identity_id FROM source_records WHERE lower(email) = ANY($4)
             UNION SELECT identity_id FROM source_records WHERE lower(eppn) = ANY($5)",
        )
        .bind(sources)
        .bind(persons)
        .bind(civic)
        .bind(&email)
        .bind(&eppn);
        let ids: BTreeSet<String> = self.ctx(q.fetch_all(&self.pool).await)?.into_iter().collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let records_sql = format!("SELECT {RECORD_COLUMNS} FROM source_records WHERE identity_id = ANY($1)");
        let (identities, records, accounts) = snapshot_sinks();
        let (identities, records, accounts) = tokio::try_join!(
            self.fetch_each(
                sqlx::query_as::<_, IdentityRow>(
                    "SELECT id, username, primary_school, primary_tie FROM identities WHERE id = ANY($1)"
                )
                .bind(&ids),
                identities
            ),
            self.fetch_each(sqlx::query_as::<_, StoredRow>(sqlx::AssertSqlSafe(records_sql)).bind(&ids), records),
            self.fetch_each(
                sqlx::query_as::<_, AccountRowIn>(
                    "SELECT target, identity_id, key, anchor, status, disabled_at FROM accounts
                      WHERE identity_id = ANY($1)"
                )
                .bind(&ids),
                accounts
            ),
        )?;
        Ok(build_snapshot(identities, records, accounts))
    }

    pub(super) async fn read_stored_records(&self, source: &str) -> Result<Vec<StoredSourceRecord>, StoreError> {
        let q = sqlx::query_as::<_, (String, Option<String>, Option<String>)>(
            "SELECT person_id, civic_no, data FROM held_records WHERE source = $1
             UNION ALL
             SELECT person_id, civic_no, data FROM source_records r WHERE source = $1 AND gone_at IS NULL
                AND NOT EXISTS (SELECT 1 FROM held_records h WHERE h.source = r.source AND h.person_id = r.person_id)",
        );
        Ok(self
            .fetch(q.bind(source))
            .await?
            .into_iter()
            .map(|(person_id, civic_no, data)| StoredSourceRecord { person_id, civic_no, data })
            .collect())
    }

    /// The stored records of `source` that may answer `query`: every one that does, and perhaps
    /// a few more (the caller filters with [`PriorQuery::matches`]).
    pub(super) async fn read_stored_where(
        &self,
        source: &str,
        query: &PriorQuery,
    ) -> Result<Vec<StoredSourceRecord>, StoreError> {
        let sql = format!(
            "WITH ids(id) AS (
                 SELECT unnest($2::text[])
                 UNION SELECT person_id FROM source_record_refs WHERE source = $1 AND kind = 'tie' AND ref = ANY($3)
                 UNION SELECT person_id FROM source_record_refs WHERE source = $1 AND kind = 'group' AND ref = ANY($4)
                 UNION SELECT person_id FROM source_record_refs WHERE source = $1 AND kind = 'tie' AND unit = ANY($5)
                 UNION SELECT h.person_id FROM held_records h WHERE h.source = $1 AND (
                     EXISTS (SELECT 1 FROM {affiliations} a
                             WHERE a ->> 'source_id' = ANY($3)
                                OR a ->> 'source_id' IS NOT NULL AND a ->> 'school_unit' = ANY($5))
                     OR EXISTS (SELECT 1 FROM {groups} g WHERE g ->> 'source_id' = ANY($4)))
             )
             {RECORDS_OF_IDS}",
            affiliations = held_array("affiliations"),
            groups = held_array("groups"),
        );
        let q = sqlx::query_as::<_, (String, Option<String>, Option<String>)>(sqlx::AssertSqlSafe(sql))
            .bind(source)
            .bind(list(&query.persons))
            .bind(list(&query.ties))
            .bind(list(&query.groups))
            .bind(list(&query.school_units));
        Ok(self
            .fetch(q)
            .await?
            .into_iter()
            .map(|(person_id, civic_no, data)| StoredSourceRecord { person_id, civic_no, data })
            .collect())
    }

    /// The school unit codes of `source`'s stored ties with a source id, each with the least and
    /// the greatest unit name stored with it and `None` when a tie there is stored without one.
    /// Walks the index from unit to unit (a few seeks per school unit, whatever the number of
    /// records), since every incremental tick asks.
    pub(super) async fn read_stored_units(
        &self,
        source: &str,
    ) -> Result<BTreeMap<String, BTreeSet<Option<String>>>, StoreError> {
        let q = sqlx::query_as::<_, (String, Option<String>, Option<String>, bool)>(
            "WITH RECURSIVE u(code) AS (
                SELECT MIN(unit) FROM source_record_refs WHERE source = $1 AND kind = 'tie'
                UNION ALL
                SELECT (SELECT MIN(unit) FROM source_record_refs WHERE source = $1 AND kind = 'tie' AND unit > u.code)
                FROM u WHERE u.code IS NOT NULL
            )
            SELECT code,
                (SELECT MIN(unit_name) FROM source_record_refs WHERE source = $1 AND kind = 'tie' AND unit = u.code),
                (SELECT MAX(unit_name) FROM source_record_refs WHERE source = $1 AND kind = 'tie' AND unit = u.code),
                EXISTS (SELECT 1 FROM source_record_refs
                         WHERE source = $1 AND kind = 'tie' AND unit = u.code AND unit_name IS NULL)
            FROM u WHERE code IS NOT NULL",
        );
        let mut out: BTreeMap<String, BTreeSet<Option<String>>> = BTreeMap::new();
        for (code, least, greatest, unnamed) in self.fetch(q.bind(source)).await? {
            let names = out.entry(code).or_default();
            names.extend(least.map(Some));
            names.extend(greatest.map(Some));
            if unnamed {
                names.insert(None);
            }
        }
        // Held records are few: read whole.
        let held_sql = format!(
            "SELECT a ->> 'school_unit', a ->> 'school_unit_name' FROM held_records h, {} a
              WHERE h.source = $1 AND a ->> 'source_id' IS NOT NULL AND a ->> 'school_unit' IS NOT NULL",
            held_array("affiliations")
        );
        let held = sqlx::query_as::<_, (String, Option<String>)>(sqlx::AssertSqlSafe(held_sql)).bind(source);
        for (code, name) in self.fetch(held).await? {
            out.entry(code).or_default().insert(name);
        }
        Ok(out)
    }

    /// How many records `source`'s last applied read left (linked ones not gone, and held ones),
    /// and which of `ids` are among them.
    pub(super) async fn read_stored_presence(
        &self,
        source: &str,
        ids: &[String],
    ) -> Result<(usize, BTreeSet<String>), StoreError> {
        let count = sqlx::query_scalar::<_, i64>(
            "SELECT (SELECT count(*) FROM held_records WHERE source = $1)
                  + (SELECT count(*) FROM source_records WHERE source = $1 AND gone_at IS NULL)
                  - (SELECT count(*) FROM held_records h WHERE h.source = $1
                       AND EXISTS (SELECT 1 FROM source_records r
                                   WHERE r.source = h.source AND r.person_id = h.person_id AND r.gone_at IS NULL))",
        )
        .bind(source);
        let present = sqlx::query_scalar::<_, String>(
            "SELECT k FROM unnest($2::text[]) k
              WHERE EXISTS (SELECT 1 FROM held_records WHERE source = $1 AND person_id = k)
                 OR EXISTS (SELECT 1 FROM source_records WHERE source = $1 AND person_id = k AND gone_at IS NULL)",
        )
        .bind(source)
        .bind(ids);
        let count = self.ctx(count.fetch_one(&self.pool).await)?;
        let present = self.ctx(present.fetch_all(&self.pool).await)?;
        Ok((usize::try_from(count).unwrap_or(0), present.into_iter().collect()))
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
                let mut tx = self.pool.begin().await?;
                bulk::upsert_rows(
                    &mut tx,
                    "INSERT INTO held_records (source, person_id, civic_no, data, content_hash, held_since, run_id) ",
                    " ON CONFLICT (source, person_id) DO UPDATE SET civic_no = excluded.civic_no,
                        data = excluded.data, content_hash = excluded.content_hash, run_id = excluded.run_id",
                    rows,
                    |r| (r.source.as_str(), r.person_id.as_str()),
                    |mut b, r| {
                        b.push_bind(r.source.clone())
                            .push_bind(r.person_id.clone())
                            .push_bind(r.civic_no.clone())
                            .push_bind(r.data.clone())
                            .push_bind(r.content_hash.clone())
                            .push_bind(now.clone())
                            .push_bind(run);
                    },
                )
                .await?;
                sqlx::query("DELETE FROM held_records WHERE source = ANY($1) AND run_id <> $2")
                    .bind(sources)
                    .bind(run)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            .await,
        )
    }
}
