//! What an incremental read of a source asks of the records its last applied read left,
//! without reading them all: the records a change names (by person, by a tie's or group's
//! source id, by a tie's school unit, through `source_record_refs`), the school units the
//! stored ties are at, how many records are stored and which of some keys are, and the digests
//! of a few records.

use super::SqliteStore;
use crate::store::{RecordDigest, StoreError, StoredSourceRecord};
use connector_api::PriorQuery;
use std::collections::{BTreeMap, BTreeSet};

/// The stored records of one source (a held record in place of a linked one with its key) whose
/// person is in `ids`, a CTE of person ids named `ids` with the source as `?1`.
const RECORDS_OF_IDS: &str = "SELECT json_group_array(json_array(person_id, civic_no, data)) FROM (
        SELECT person_id, civic_no, data FROM held_records WHERE source = ?1 AND person_id IN (SELECT id FROM ids)
        UNION ALL
        SELECT person_id, civic_no, data FROM source_records r
        WHERE source = ?1 AND gone_at IS NULL AND person_id IN (SELECT id FROM ids)
            AND NOT EXISTS (SELECT 1 FROM held_records h WHERE h.source = r.source AND h.person_id = r.person_id))";

impl SqliteStore {
    /// The stored records of `source` that may answer `query`: every one that does, and perhaps
    /// a few more (the caller filters with [`PriorQuery::matches`]).
    pub(super) async fn read_stored_where(
        &self,
        source: &str,
        query: &PriorQuery,
    ) -> Result<Vec<StoredSourceRecord>, StoreError> {
        let sql = format!(
            "WITH ids(id) AS (
                 SELECT value FROM json_each(?2)
                 UNION SELECT person_id FROM source_record_refs
                     WHERE source = ?1 AND kind = 'tie' AND ref IN (SELECT value FROM json_each(?3))
                 UNION SELECT person_id FROM source_record_refs
                     WHERE source = ?1 AND kind = 'group' AND ref IN (SELECT value FROM json_each(?4))
                 UNION SELECT person_id FROM source_record_refs
                     WHERE source = ?1 AND kind = 'tie' AND unit IN (SELECT value FROM json_each(?5))
                 UNION SELECT h.person_id FROM held_records h WHERE h.source = ?1 AND (
                     EXISTS (SELECT 1 FROM json_each(h.data, '$.affiliations') a
                             WHERE json_extract(a.value, '$.source_id') IN (SELECT value FROM json_each(?3))
                                OR json_extract(a.value, '$.source_id') IS NOT NULL
                                   AND json_extract(a.value, '$.school_unit') IN (SELECT value FROM json_each(?5)))
                     OR EXISTS (SELECT 1 FROM json_each(h.data, '$.groups') g
                                WHERE json_extract(g.value, '$.source_id') IN (SELECT value FROM json_each(?4))))
             )
             {RECORDS_OF_IDS}"
        );
        let rows: Vec<(String, Option<String>, Option<String>)> = self
            .json_rows(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(source.to_string())
                    .bind(self.encode("lookup", &query.persons)?)
                    .bind(self.encode("lookup", &query.ties)?)
                    .bind(self.encode("lookup", &query.groups)?)
                    .bind(self.encode("lookup", &query.school_units)?),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(person_id, civic_no, data)| StoredSourceRecord { person_id, civic_no, data })
            .collect())
    }

    /// The school unit codes of `source`'s stored ties with a source id, each with the least and
    /// the greatest unit name stored with it and `None` when a tie there is stored without one:
    /// enough to tell whether every tie at a unit has one name. Read by seeks on an index (a few
    /// per school unit, whatever the number of records), since every incremental tick asks.
    pub(super) async fn read_stored_units(
        &self,
        source: &str,
    ) -> Result<BTreeMap<String, BTreeSet<Option<String>>>, StoreError> {
        let sql = "WITH RECURSIVE u(code) AS (
                SELECT MIN(unit) FROM source_record_refs WHERE source = ?1 AND kind = 'tie'
                UNION ALL
                SELECT (SELECT MIN(unit) FROM source_record_refs WHERE source = ?1 AND kind = 'tie' AND unit > u.code)
                FROM u WHERE u.code IS NOT NULL
            )
            SELECT json_group_array(json_array(code,
                (SELECT MIN(unit_name) FROM source_record_refs WHERE source = ?1 AND kind = 'tie' AND unit = u.code),
                (SELECT MAX(unit_name) FROM source_record_refs WHERE source = ?1 AND kind = 'tie' AND unit = u.code),
                json(CASE WHEN EXISTS (SELECT 1 FROM source_record_refs
                                       WHERE source = ?1 AND kind = 'tie' AND unit = u.code AND unit_name IS NULL)
                          THEN 'true' ELSE 'false' END)))
            FROM u WHERE code IS NOT NULL";
        let rows: Vec<(String, Option<String>, Option<String>, bool)> =
            self.json_rows(sqlx::query(sql).bind(source.to_string())).await?;
        let mut out: BTreeMap<String, BTreeSet<Option<String>>> = BTreeMap::new();
        for (code, least, greatest, unnamed) in rows {
            let names = out.entry(code).or_default();
            names.extend(least.map(Some));
            names.extend(greatest.map(Some));
            if unnamed {
                names.insert(None);
            }
        }
        // Held records are few: read whole.
        let held_sql = "SELECT json_group_array(json_array(json_extract(a.value, '$.school_unit'),
                               json_extract(a.value, '$.school_unit_name')))
                        FROM held_records h, json_each(h.data, '$.affiliations') a
                        WHERE h.source = ?1 AND json_extract(a.value, '$.source_id') IS NOT NULL
                          AND json_extract(a.value, '$.school_unit') IS NOT NULL";
        let held: Vec<(String, Option<String>)> =
            self.json_rows(sqlx::query(held_sql).bind(source.to_string())).await?;
        for (code, name) in held {
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
        let sql = "SELECT json_array(json_array(
                (SELECT count(*) FROM held_records WHERE source = ?1)
                  + (SELECT count(*) FROM source_records WHERE source = ?1)
                  - (SELECT count(*) FROM source_records INDEXED BY source_records_gone
                       WHERE source = ?1 AND gone_at IS NOT NULL)
                  - (SELECT count(*) FROM held_records h WHERE h.source = ?1
                       AND EXISTS (SELECT 1 FROM source_records r
                                   WHERE r.source = h.source AND r.person_id = h.person_id AND r.gone_at IS NULL)),
                json((SELECT json_group_array(value) FROM json_each(?2) k
                      WHERE EXISTS (SELECT 1 FROM held_records WHERE source = ?1 AND person_id = k.value)
                         OR EXISTS (SELECT 1 FROM source_records
                                    WHERE source = ?1 AND person_id = k.value AND gone_at IS NULL)))))";
        let mut rows: Vec<(usize, Vec<String>)> =
            self.json_rows(sqlx::query(sql).bind(source.to_string()).bind(self.encode("lookup", ids)?)).await?;
        let (count, present) =
            rows.pop().ok_or_else(|| self.fail("reading the stored record count: no answer".into()))?;
        Ok((count, present.into_iter().collect()))
    }

    /// Whether a record of `source` not gone was stored before records were kept whole.
    pub(super) async fn read_stored_unwhole(&self, source: &str) -> Result<bool, StoreError> {
        let sql =
            "SELECT json_array(json(CASE WHEN EXISTS (SELECT 1 FROM source_records INDEXED BY source_records_unwhole
                       WHERE source = ?1 AND data IS NULL AND gone_at IS NULL) THEN 'true' ELSE 'false' END))";
        let found: Vec<bool> = self.json_rows(sqlx::query(sql).bind(source.to_string())).await?;
        Ok(found.first().copied().unwrap_or(true))
    }

    /// The digests of the records at `keys` (source, person_id) that are stored.
    pub(super) async fn read_record_digests_of(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<RecordDigest>, StoreError> {
        let sql = "SELECT json_group_array(json_array(source, person_id, identity_id, content_hash,
                          json(CASE WHEN gone_at IS NULL THEN 'false' ELSE 'true' END))) FROM source_records
                   WHERE (source, person_id) IN
                         (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1))";
        let rows: Vec<(String, String, String, String, bool)> =
            self.json_rows(sqlx::query(sql).bind(self.encode("lookup", keys)?)).await?;
        Ok(rows
            .into_iter()
            .map(|(source, person_id, identity_id, content_hash, gone)| RecordDigest {
                source,
                person_id,
                identity_id,
                content_hash,
                gone,
            })
            .collect())
    }
}
