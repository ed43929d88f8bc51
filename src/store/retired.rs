//! Retired tables. An import never drops the table of the version it
//! replaces, and removing a dataset never drops its table: both record it in
//! `retired_tables`, and a cleanup drops it later, once
//! - its grace period has passed: every instance's catalogue has moved on
//!   (the grace is several catalogue refreshes) and every request that
//!   resolved the old name has started reading;
//! - no running read of this process holds a [`TableLease`] on it;
//! - on PostgreSQL, it gets the table's lock within a short lock timeout: a
//!   reader elsewhere (a slow export) makes the DROP give up until the next
//!   pass, instead of queueing every new reader of the table behind it.
//!
//! A SQLite import also registers the table it is still writing, touching
//! its `retired_at` as it goes, so that a crashed import's table is cleaned
//! up too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::datasets::TABLE_PREFIX;
use super::sql::quote_identifier;
use super::{Store, StoreError};

/// Records a table as retired now (or refreshes the time of one already recorded).
pub(crate) const RETIRE_SQL: &str = "INSERT INTO retired_tables (table_name, dataset_id, retired_at) \
     VALUES ($1, $2, $3) ON CONFLICT (table_name) DO UPDATE SET retired_at = excluded.retired_at";

/// How long the cleanup's DROP may wait for a table's lock on PostgreSQL:
/// readers arriving meanwhile queue behind it, so this bounds their stall.
const DROP_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '100ms'";

/// Seconds since the Unix epoch, the unit of `retired_at`.
pub(crate) fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Tables read by running requests of this process, with how many reads each.
#[derive(Debug, Clone, Default)]
pub struct TablesInUse {
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl TablesInUse {
    /// Marks `table` in use until the lease is dropped.
    pub fn lease(&self, table: &str) -> TableLease {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(table.to_owned())
            .or_default() += 1;
        TableLease {
            registry: self.clone(),
            table: table.to_owned(),
        }
    }

    pub fn contains(&self, table: &str) -> bool {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(table)
    }
}

/// Keeps its table from being dropped by this process's cleanup while alive.
#[derive(Debug)]
pub struct TableLease {
    registry: TablesInUse,
    table: String,
}

impl Clone for TableLease {
    fn clone(&self) -> Self {
        self.registry.lease(&self.table)
    }
}

impl Drop for TableLease {
    fn drop(&mut self) {
        let mut counts = self
            .registry
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.table) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.table);
            }
        }
    }
}

/// What one cleanup pass did.
#[derive(Debug, Default)]
pub struct Cleanup {
    pub dropped: Vec<String>,
    /// Due but still in use, or locked by a reader elsewhere: tried again next pass.
    pub deferred: Vec<String>,
}

impl Store {
    /// Drops the retired tables whose grace has passed and that nothing uses.
    pub async fn drop_retired_tables(
        &self,
        grace: Duration,
        in_use: &TablesInUse,
    ) -> Result<Cleanup, StoreError> {
        let cutoff = now_seconds() - i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        let select =
            "SELECT table_name FROM retired_tables WHERE retired_at <= $1 ORDER BY retired_at";
        let due: Vec<String> = match self {
            Store::Sqlite(pool) => {
                sqlx::query_scalar(select)
                    .bind(cutoff)
                    .fetch_all(pool)
                    .await?
            }
            Store::Postgres(pool) => {
                sqlx::query_scalar(select)
                    .bind(cutoff)
                    .fetch_all(pool)
                    .await?
            }
        };
        let mut cleanup = Cleanup::default();
        for table in due {
            if in_use.contains(&table) {
                cleanup.deferred.push(table);
                continue;
            }
            match self.drop_retired_table(&table, cutoff).await {
                Ok(true) => cleanup.dropped.push(table),
                Ok(false) => {}
                Err(error) => {
                    tracing::debug!(%table, %error, "retired table not dropped yet");
                    cleanup.deferred.push(table);
                }
            }
        }
        Ok(cleanup)
    }

    /// Drops one retired table if it is still due; false when another pass
    /// (or a running import touching it) got there first.
    async fn drop_retired_table(&self, table: &str, cutoff: i64) -> Result<bool, StoreError> {
        let claim = "DELETE FROM retired_tables WHERE table_name = $1 AND retired_at <= $2";
        // A name that is current again (never expected) is only forgotten.
        let live = "SELECT count(*) FROM datasets WHERE table_name = $1";
        let drop = sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {}", quote_identifier(table)));
        let droppable = table.starts_with(TABLE_PREFIX);
        match self {
            Store::Sqlite(pool) => {
                // IMMEDIATE: take the write lock first, rather than fail on
                // upgrading a read snapshot another writer has moved past.
                let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
                let claimed = sqlx::query(claim)
                    .bind(table)
                    .bind(cutoff)
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected();
                if claimed == 0 {
                    return Ok(false);
                }
                let live: i64 = sqlx::query_scalar(live)
                    .bind(table)
                    .fetch_one(&mut *transaction)
                    .await?;
                if live == 0 && droppable {
                    sqlx::query(drop).execute(&mut *transaction).await?;
                }
                transaction.commit().await?;
            }
            Store::Postgres(pool) => {
                let mut transaction = pool.begin().await?;
                sqlx::query(DROP_LOCK_TIMEOUT)
                    .execute(&mut *transaction)
                    .await?;
                let claimed = sqlx::query(claim)
                    .bind(table)
                    .bind(cutoff)
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected();
                if claimed == 0 {
                    return Ok(false);
                }
                let live: i64 = sqlx::query_scalar(live)
                    .bind(table)
                    .fetch_one(&mut *transaction)
                    .await?;
                if live == 0 && droppable {
                    sqlx::query(drop).execute(&mut *transaction).await?;
                }
                transaction.commit().await?;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table stays in use until its last lease, clones included, is dropped.
    #[test]
    fn leases_count_every_read() {
        let registry = TablesInUse::default();
        let first = registry.lease("ds_a_v1");
        let second = first.clone();
        assert!(registry.contains("ds_a_v1"));
        drop(first);
        assert!(registry.contains("ds_a_v1"));
        drop(second);
        assert!(!registry.contains("ds_a_v1"));
        assert!(!registry.contains("ds_b_v1"));
    }
}
