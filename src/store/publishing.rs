//! The store side of the publishing API: a dataset's origin and tombstone,
//! and its versions.
//!
//! Invariants:
//! - `dataset_versions` has at most one `current` row per dataset, the one
//!   whose table the catalogue row points at;
//! - the rows of the last `keep` published versions stay in their tables
//!   (taken out of `retired_tables`); older tables are retired, so the
//!   cleanup drops them once no reader uses them, and their version rows
//!   lose their `table_name`;
//! - a restore never rewrites history: it publishes a new version number
//!   pointing at the kept table of the earlier one.

use super::datasets::{ORIGIN_API, StoredDataset, TABLE_PREFIX};
use super::retired::{RETIRE_SQL, now_seconds};
use super::{Store, StoreError};

/// Runs `$body` with `$pool` bound to the concrete pool.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

/// Status of a version row.
pub const STATUS_CURRENT: &str = "current";
/// Status of an earlier published version.
pub const STATUS_PREVIOUS: &str = "previous";
/// Status of a refused upload: nothing was published.
pub const STATUS_FAILED: &str = "failed";

/// One row of `dataset_versions`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct VersionRow {
    /// The version number; null for a refused upload.
    pub number: Option<i64>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Subject or client that published it.
    pub created_by: Option<String>,
    pub rows: i64,
    pub bytes: Option<i64>,
    /// SHA-256 of the file, hex.
    pub sha256: Option<String>,
    pub file_name: Option<String>,
    /// `current`, `previous` or `failed`.
    pub status: String,
    /// Whether the rows of this version are still kept (restorable, readable with `?version=`).
    #[sqlx(skip)]
    pub kept: bool,
    #[serde(skip)]
    pub table_name: Option<String>,
}

/// What is recorded about a version that was just published or refused.
#[derive(Debug, Clone)]
pub struct VersionFacts<'a> {
    pub dataset_id: &'a str,
    pub created_by: Option<&'a str>,
    pub rows: i64,
    pub bytes: Option<i64>,
    pub sha256: Option<&'a str>,
    pub file_name: Option<&'a str>,
}

const DATASET_SQL: &str = "SELECT id, definition, definition_hash, source_hash, schema, table_name, \
     version, record_count, last_updated, origin, retired_at, retired_by \
     FROM datasets WHERE id = $1";

/// Tells the other instances (PostgreSQL) that `id`'s catalogue row
/// changed; polling catches up if this is lost.
async fn announce_catalog(store: &Store, id: &str) {
    let change = super::changes::Change::Catalog {
        dataset: id.to_owned(),
    };
    if let Err(error) = store.announce(&change).await {
        tracing::warn!(dataset = %id, %error, "catalogue change not announced: polling will catch up");
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Store {
    /// The catalogue row of `id`, retired or not.
    pub async fn stored_dataset(&self, id: &str) -> Result<Option<StoredDataset>, StoreError> {
        let row = on_pool!(self, pool => {
            sqlx::query_as::<_, StoredDataset>(DATASET_SQL)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row)
    }

    /// Marks `id` as created through the API: `catalog sync` leaves it alone.
    pub async fn mark_from_api(&self, id: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE datasets SET origin = $1 WHERE id = $2")
                .bind(ORIGIN_API)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Retires `id`: its row stays as a tombstone (who and when), no data is
    /// served. False when there is no such dataset or it is already retired.
    pub async fn retire_dataset(&self, id: &str, by: &str) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE datasets SET retired_at = $1, retired_by = $2 WHERE id = $3 AND retired_at IS NULL",
            )
            .bind(now_rfc3339())
            .bind(by)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed > 0 {
            announce_catalog(self, id).await;
        }
        Ok(changed > 0)
    }

    /// Serves a retired dataset again. False when it is not retired.
    pub async fn unretire_dataset(&self, id: &str) -> Result<bool, StoreError> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE datasets SET retired_at = NULL, retired_by = NULL WHERE id = $1 AND retired_at IS NOT NULL",
            )
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed > 0 {
            announce_catalog(self, id).await;
        }
        Ok(changed > 0)
    }

    /// Removes `id` for good: its catalogue row and versions; every table of
    /// its rows is retired (dropped by the cleanup once no reader uses it).
    pub async fn purge_dataset(&self, id: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            let mut tables: Vec<String> =
                sqlx::query_scalar("SELECT table_name FROM datasets WHERE id = $1")
                    .bind(id)
                    .fetch_all(&mut *transaction)
                    .await?;
            let kept: Vec<Option<String>> = sqlx::query_scalar(
                "SELECT table_name FROM dataset_versions WHERE dataset_id = $1",
            )
            .bind(id)
            .fetch_all(&mut *transaction)
            .await?;
            tables.extend(kept.into_iter().flatten());
            tables.sort();
            tables.dedup();
            for table in tables.iter().filter(|table| table.starts_with(TABLE_PREFIX)) {
                sqlx::query(RETIRE_SQL)
                    .bind(table)
                    .bind(id)
                    .bind(now_seconds())
                    .execute(&mut *transaction)
                    .await?;
            }
            sqlx::query("DELETE FROM dataset_versions WHERE dataset_id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await?;
            sqlx::query("DELETE FROM datasets WHERE id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await?;
        });
        announce_catalog(self, id).await;
        Ok(())
    }

    /// Records that `facts.dataset_id` now serves version `number` from
    /// `table`, which replaced `previous_table`: the earlier current version
    /// becomes `previous`, and the rows of the last `keep` published versions
    /// are kept (the others retired).
    pub async fn record_published_version(
        &self,
        facts: &VersionFacts<'_>,
        number: i64,
        table: &str,
        keep: u32,
    ) -> Result<(), StoreError> {
        let id = facts.dataset_id;
        on_pool!(self, pool => {
            let mut transaction = pool.begin().await?;
            sqlx::query(
                "UPDATE dataset_versions SET status = $1 WHERE dataset_id = $2 AND status = $3",
            )
            .bind(STATUS_PREVIOUS)
            .bind(id)
            .bind(STATUS_CURRENT)
            .execute(&mut *transaction)
            .await?;
            sqlx::query(
                "INSERT INTO dataset_versions (dataset_id, number, created_at, created_by, rows, bytes, \
                 sha256, file_name, status, table_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(id)
            .bind(number)
            .bind(now_rfc3339())
            .bind(facts.created_by)
            .bind(facts.rows)
            .bind(facts.bytes)
            .bind(facts.sha256)
            .bind(facts.file_name)
            .bind(STATUS_CURRENT)
            .bind(table)
            .execute(&mut *transaction)
            .await?;
            // The newest `keep` versions keep their tables: out of the
            // retired list (the import put the replaced one there).
            let published: Vec<(i64, Option<String>)> = sqlx::query_as(
                "SELECT number, table_name FROM dataset_versions \
                 WHERE dataset_id = $1 AND number IS NOT NULL ORDER BY number DESC",
            )
            .bind(id)
            .fetch_all(&mut *transaction)
            .await?;
            let keep = usize::try_from(keep.max(1)).unwrap_or(usize::MAX);
            let kept_tables: Vec<&str> = published
                .iter()
                .take(keep)
                .filter_map(|(_, table)| table.as_deref())
                .collect();
            for kept in &kept_tables {
                sqlx::query("DELETE FROM retired_tables WHERE table_name = $1")
                    .bind(*kept)
                    .execute(&mut *transaction)
                    .await?;
            }
            for (number, old_table) in published.iter().skip(keep) {
                let Some(old_table) = old_table else { continue };
                sqlx::query(
                    "UPDATE dataset_versions SET table_name = NULL WHERE dataset_id = $1 AND number = $2",
                )
                .bind(id)
                .bind(number)
                .execute(&mut *transaction)
                .await?;
                // A restored version shares its table with the one it restored.
                if old_table.starts_with(TABLE_PREFIX) && !kept_tables.contains(&old_table.as_str()) {
                    sqlx::query(RETIRE_SQL)
                        .bind(old_table)
                        .bind(id)
                        .bind(now_seconds())
                        .execute(&mut *transaction)
                        .await?;
                }
            }
            transaction.commit().await?;
        });
        Ok(())
    }

    /// Records a refused upload (no number: nothing was published).
    pub async fn record_failed_version(&self, facts: &VersionFacts<'_>) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO dataset_versions (dataset_id, number, created_at, created_by, rows, bytes, \
                 sha256, file_name, status, table_name) VALUES ($1, NULL, $2, $3, $4, $5, $6, $7, $8, NULL)",
            )
            .bind(facts.dataset_id)
            .bind(now_rfc3339())
            .bind(facts.created_by)
            .bind(facts.rows)
            .bind(facts.bytes)
            .bind(facts.sha256)
            .bind(facts.file_name)
            .bind(STATUS_FAILED)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Every version of `id`, newest first (refused uploads included).
    pub async fn dataset_versions(&self, id: &str) -> Result<Vec<VersionRow>, StoreError> {
        let mut rows: Vec<VersionRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT number, created_at, created_by, rows, bytes, sha256, file_name, status, table_name \
                 FROM dataset_versions WHERE dataset_id = $1 ORDER BY created_at DESC, number DESC",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        for row in &mut rows {
            row.kept = row.table_name.is_some();
        }
        Ok(rows)
    }

    /// Makes the kept rows of version `number` current again, as a new
    /// version `new_number`; `None` when that version's rows are not kept.
    /// The table the dataset served until now stays kept as a previous version.
    pub async fn restore_version(
        &self,
        id: &str,
        number: i64,
        by: Option<&str>,
        keep: u32,
    ) -> Result<Option<i64>, StoreError> {
        let versions = self.dataset_versions(id).await?;
        let Some(source) = versions
            .iter()
            .find(|row| row.number == Some(number) && row.table_name.is_some())
        else {
            return Ok(None);
        };
        let table = source.table_name.clone().unwrap_or_default();
        let Some(current) = self.stored_dataset(id).await? else {
            return Ok(None);
        };
        let new_number = versions
            .iter()
            .filter_map(|row| row.number)
            .max()
            .unwrap_or(0)
            .max(current.version)
            + 1;
        let now = now_rfc3339();
        let swapped = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE datasets SET table_name = $1, version = $2, record_count = $3, last_updated = $4 \
                 WHERE id = $5 AND version = $6",
            )
            .bind(&table)
            .bind(new_number)
            .bind(source.rows)
            .bind(&now)
            .bind(id)
            .bind(current.version)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if swapped == 0 {
            return Ok(None);
        }
        let facts = VersionFacts {
            dataset_id: id,
            created_by: by,
            rows: source.rows,
            bytes: source.bytes,
            sha256: source.sha256.as_deref(),
            file_name: source.file_name.as_deref(),
        };
        self.record_published_version(&facts, new_number, &table, keep)
            .await?;
        announce_catalog(self, id).await;
        Ok(Some(new_number))
    }

    /// The table holding the kept rows of version `number` of `id`.
    pub async fn version_table(&self, id: &str, number: i64) -> Result<Option<String>, StoreError> {
        let table: Option<Option<String>> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT table_name FROM dataset_versions WHERE dataset_id = $1 AND number = $2",
            )
            .bind(id)
            .bind(number)
            .fetch_optional(pool)
            .await?
        });
        Ok(table.flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Field, FieldType, Schema, Value};
    use crate::store::datasets::{ImportOutcome, NewVersion};

    async fn import(store: &Store, rows: i64) -> (i64, String) {
        let schema = Schema {
            fields: vec![Field::new("n", FieldType::Integer)],
            primary_key: None,
        };
        let new = NewVersion {
            id: "kept",
            schema: &schema,
            definition: "{}",
            definition_hash: "d",
            source_hash: "s",
            origin: crate::store::datasets::ORIGIN_FILE,
        };
        let values = (0..rows).map(|n| Ok::<_, String>(vec![Value::Int(n)]));
        match store.import_rows(new, values, 10).await.unwrap() {
            ImportOutcome::Imported {
                version,
                table_name,
                ..
            } => (version, table_name),
            ImportOutcome::Rejected(_) => panic!("rejected"),
        }
    }

    fn facts(rows: i64) -> VersionFacts<'static> {
        VersionFacts {
            dataset_id: "kept",
            created_by: Some("steward"),
            rows,
            bytes: Some(10),
            sha256: Some("ab"),
            file_name: Some("f.csv"),
        }
    }

    async fn retired(store: &Store) -> Vec<String> {
        let Store::Sqlite(pool) = store else {
            unreachable!()
        };
        sqlx::query_scalar("SELECT table_name FROM retired_tables ORDER BY table_name")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    /// The last `keep` versions keep their tables, older ones are retired;
    /// one version is current; a restore publishes a new number on the old table.
    #[tokio::test]
    async fn keeps_versions_and_restores() {
        let (store, _guard) = crate::store::test_support::sqlite().await;
        for rows in 1..=3 {
            let (version, table) = import(&store, rows).await;
            store
                .record_published_version(&facts(rows), version, &table, 2)
                .await
                .unwrap();
        }
        let versions = store.dataset_versions("kept").await.unwrap();
        let statuses: Vec<(Option<i64>, &str, bool)> = versions
            .iter()
            .map(|row| (row.number, row.status.as_str(), row.kept))
            .collect();
        assert_eq!(
            statuses,
            vec![
                (Some(3), STATUS_CURRENT, true),
                (Some(2), STATUS_PREVIOUS, true),
                (Some(1), STATUS_PREVIOUS, false),
            ]
        );
        assert_eq!(retired(&store).await, vec!["ds_kept_v1".to_owned()]);
        assert_eq!(
            store.restore_version("kept", 1, None, 2).await.unwrap(),
            None
        );
        assert_eq!(
            store
                .restore_version("kept", 2, Some("admin"), 2)
                .await
                .unwrap(),
            Some(4)
        );
        let current = store.stored_dataset("kept").await.unwrap().unwrap();
        assert_eq!(
            (
                current.table_name.as_str(),
                current.version,
                current.record_count
            ),
            ("ds_kept_v2", 4, 2)
        );
        // The last two are 4 (v2's table) and 3: version 2's row no longer
        // holds the table (version 4 does), and nothing more is retired.
        assert_eq!(retired(&store).await, vec!["ds_kept_v1".to_owned()]);
        let versions = store.dataset_versions("kept").await.unwrap();
        let kept: Vec<(Option<i64>, bool)> =
            versions.iter().map(|row| (row.number, row.kept)).collect();
        assert_eq!(
            kept,
            vec![
                (Some(4), true),
                (Some(3), true),
                (Some(2), false),
                (Some(1), false)
            ]
        );
        store.record_failed_version(&facts(0)).await.unwrap();
        let versions = store.dataset_versions("kept").await.unwrap();
        assert_eq!(versions.len(), 5);
        assert!(
            versions
                .iter()
                .any(|row| row.status == STATUS_FAILED && row.number.is_none())
        );
    }

    /// A retired dataset is a tombstone with who retired it; restoring clears it.
    #[tokio::test]
    async fn retires_and_restores_datasets() {
        let (store, _guard) = crate::store::test_support::sqlite().await;
        import(&store, 1).await;
        assert!(store.retire_dataset("kept", "alice").await.unwrap());
        assert!(!store.retire_dataset("kept", "alice").await.unwrap());
        let row = store.stored_dataset("kept").await.unwrap().unwrap();
        assert!(row.is_retired());
        assert_eq!(row.retired_by.as_deref(), Some("alice"));
        assert!(store.unretire_dataset("kept").await.unwrap());
        store.purge_dataset("kept").await.unwrap();
        assert!(store.stored_dataset("kept").await.unwrap().is_none());
        assert_eq!(retired(&store).await, vec!["ds_kept_v1".to_owned()]);
    }
}
