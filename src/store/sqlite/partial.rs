//! What an incremental run reads of the SQLite state instead of the whole snapshot: every
//! record's digest (key, identity, content hash), the state of a few identities, the old copies
//! of a few records, and how many accounts each target owns.

use super::SqliteStore;
use crate::core::model::Snapshot;
use crate::store::rows::{build_snapshot, snapshot_sinks};
use crate::store::{RecordDigest, StoreError};
use std::collections::{BTreeMap, BTreeSet};

/// A stored record as the snapshot reads it.
pub(super) const RECORD_COLUMNS: &str =
    "json_array(source, person_id, identity_id, civic_no, content_hash, school_unit,
    email, eppn, role, json(CASE WHEN protected = 1 THEN 'true' ELSE 'false' END),
    given_name, family_name, json(CASE WHEN gone_at IS NULL THEN 'false' ELSE 'true' END))";

impl SqliteStore {
    pub(super) async fn read_record_digests(&self) -> Result<Vec<RecordDigest>, StoreError> {
        let sql = "SELECT json_group_array(json_array(source, person_id, identity_id, content_hash,
                          json(CASE WHEN gone_at IS NULL THEN 'false' ELSE 'true' END))) FROM source_records";
        let rows: Vec<(String, String, String, String, bool)> = self.json_rows(sqlx::query(sql)).await?;
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
        let keys_json = self.encode("lookup", keys)?;
        let civic_json = self.encode("lookup", civic)?;
        let email_json = self.encode("lookup", &email.iter().map(|e| e.to_lowercase()).collect::<Vec<_>>())?;
        let eppn_json = self.encode("lookup", &eppn.iter().map(|e| e.to_lowercase()).collect::<Vec<_>>())?;
        let mut ids: BTreeSet<String> = BTreeSet::new();
        let by_key: Vec<String> = self
            .json_rows(
                sqlx::query(
                    "SELECT json_group_array(identity_id) FROM source_records
                     WHERE (source, person_id) IN
                           (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1))",
                )
                .bind(keys_json),
            )
            .await?;
        ids.extend(by_key);
        if !civic.is_empty() {
            let found: Vec<String> = self
                .json_rows(
                    sqlx::query(
                        "SELECT json_group_array(identity_id) FROM source_records
                         WHERE civic_no IN (SELECT value FROM json_each(?1))",
                    )
                    .bind(civic_json),
                )
                .await?;
            ids.extend(found);
        }
        for (column, values, given) in [("email", email_json, email), ("eppn", eppn_json, eppn)] {
            if given.is_empty() {
                continue;
            }
            let sql = format!(
                "SELECT json_group_array(identity_id) FROM source_records
                 WHERE lower({column}) IN (SELECT value FROM json_each(?1))"
            );
            let found: Vec<String> = self.json_rows(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(values)).await?;
            ids.extend(found);
        }
        self.read_identities(&ids.into_iter().collect::<Vec<_>>()).await
    }

    /// The snapshot of exactly these identities.
    async fn read_identities(&self, ids: &[String]) -> Result<Snapshot, StoreError> {
        let ids_json = self.encode("lookup", ids)?;
        let (identities, records, accounts) = snapshot_sinks();
        let identities = self
            .json_each(
                sqlx::query(
                    "SELECT count(*), json_group_array(json_array(id, username, primary_school, primary_tie))
                       FROM identities WHERE id IN (SELECT value FROM json_each(?1))",
                )
                .bind(ids_json.clone()),
                identities,
            )
            .await?;
        let sql = format!(
            "SELECT count(*), json_group_array({RECORD_COLUMNS}) FROM source_records
             WHERE identity_id IN (SELECT value FROM json_each(?1))"
        );
        let records = self.json_each(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids_json.clone()), records).await?;
        let accounts = self
            .json_each(
                sqlx::query(
                    "SELECT count(*), json_group_array(json_array(target, identity_id, key, anchor, status, disabled_at))
                     FROM accounts WHERE identity_id IN (SELECT value FROM json_each(?1))",
                )
                .bind(ids_json),
                accounts,
            )
            .await?;
        Ok(build_snapshot(identities, records, accounts))
    }

    pub(super) async fn read_records_data(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let keys_json = self.encode("lookup", keys)?;
        self.json_rows(
            sqlx::query(
                "SELECT json_group_array(json_array(source, person_id, data)) FROM source_records
                 WHERE (source, person_id) IN
                       (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1))",
            )
            .bind(keys_json),
        )
        .await
    }

    pub(super) async fn read_owned_counts(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        // Every account (the primary key's index) less the pending ones (a partial index): a
        // scan of the status of every row costs ten times as much.
        let all: Vec<(String, usize)> = self
            .json_rows(sqlx::query(
                "SELECT json_group_array(json_array(target, n)) FROM
                   (SELECT target, count(*) AS n FROM accounts GROUP BY target)",
            ))
            .await?;
        let pending: Vec<(String, usize)> = self
            .json_rows(sqlx::query(
                "SELECT json_group_array(json_array(target, n)) FROM
                   (SELECT target, count(*) AS n FROM accounts WHERE status = 'pending' GROUP BY target)",
            ))
            .await?;
        let pending: BTreeMap<String, usize> = pending.into_iter().collect();
        Ok(all.into_iter().map(|(t, n)| (t.clone(), n - pending.get(&t).copied().unwrap_or(0).min(n))).collect())
    }
}
