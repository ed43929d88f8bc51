//! Policies in the store (`policies_source = "store"`): the versions of the
//! casbin model and rules in `policy_versions`, the current one being the
//! highest number.
//!
//! Versions are only ever added. A new version names the version it
//! replaces: when another was added meanwhile, nothing is written
//! ([`Added::Stale`]), so two administrators never overwrite each other
//! unknowingly (the primary key settles two writers racing on one number).
//! Each addition is announced ([`Change::Policy`]) in its transaction, so
//! every instance reloads at commit.

use serde::Serialize;

use super::changes::{Announce, Change};
use super::{Store, StoreError};

macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

/// One stored version of the policy.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PolicyVersion {
    pub number: i64,
    /// The casbin model (`model.conf`).
    pub model: String,
    /// The rules (`policy.csv`).
    pub rules: String,
    /// Unix seconds.
    pub created_at: i64,
    pub created_by: String,
    pub reason: String,
}

/// A version as listed (without its text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PolicyVersionInfo {
    pub number: i64,
    /// Unix seconds.
    pub created_at: i64,
    pub created_by: String,
    pub reason: String,
}

/// What [`add`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// Stored as this version, now the current one.
    Stored(PolicyVersion),
    /// The current version is not the one named: nothing written.
    Stale { current: Option<i64> },
}

const SELECT: &str =
    "SELECT number, model, rules, created_at, created_by, reason FROM policy_versions";

/// The current version; `None` while the table is empty.
pub async fn current(store: &Store) -> Result<Option<PolicyVersion>, StoreError> {
    let sql = format!("{SELECT} ORDER BY number DESC LIMIT 1");
    let version = with_pool!(store, pool => {
        sqlx::query_as::<_, PolicyVersion>(sqlx::AssertSqlSafe(sql))
            .fetch_optional(pool)
            .await?
    });
    Ok(version)
}

/// The number of the current version (cheap: the polling fallback asks it).
pub async fn current_number(store: &Store) -> Result<Option<i64>, StoreError> {
    let number = with_pool!(store, pool => {
        sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(number) FROM policy_versions")
            .fetch_one(pool)
            .await?
    });
    Ok(number)
}

/// Version `number`, if stored.
pub async fn get(store: &Store, number: i64) -> Result<Option<PolicyVersion>, StoreError> {
    let sql = format!("{SELECT} WHERE number = $1");
    let version = with_pool!(store, pool => {
        sqlx::query_as::<_, PolicyVersion>(sqlx::AssertSqlSafe(sql))
            .bind(number)
            .fetch_optional(pool)
            .await?
    });
    Ok(version)
}

/// Every version, newest first.
pub async fn list(store: &Store) -> Result<Vec<PolicyVersionInfo>, StoreError> {
    let versions = with_pool!(store, pool => {
        sqlx::query_as::<_, PolicyVersionInfo>(
            "SELECT number, created_at, created_by, reason FROM policy_versions ORDER BY number DESC",
        )
        .fetch_all(pool)
        .await?
    });
    Ok(versions)
}

/// Stores version 1 when the table is empty; returns whether it did (false:
/// a version was there already, possibly stored by another instance meanwhile).
pub async fn seed(store: &Store, model: &str, rules: &str) -> Result<bool, StoreError> {
    let inserted = with_pool!(store, pool => {
        sqlx::query(
            "INSERT INTO policy_versions (number, model, rules, created_at, created_by, reason) \
             VALUES (1, $1, $2, $3, 'passerelle', 'seeded from the policy files') \
             ON CONFLICT (number) DO NOTHING",
        )
        .bind(model)
        .bind(rules)
        .bind(chrono::Utc::now().timestamp())
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(inserted == 1)
}

/// Adds a version after `replaces` (the current version's number as the
/// writer saw it), announcing it; [`Added::Stale`] when `replaces` is not
/// the current version any more.
pub async fn add(
    store: &Store,
    replaces: i64,
    model: &str,
    rules: &str,
    created_by: &str,
    reason: &str,
) -> Result<Added, StoreError> {
    let now = chrono::Utc::now().timestamp();
    // SQLite: the write lock is taken first (`BEGIN IMMEDIATE`), so that the
    // read-then-insert waits for the audit writer instead of failing with
    // "database is locked" when it upgrades a read transaction.
    macro_rules! add_in {
        ($begin:expr) => {
            async {
        let mut transaction = $begin.await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(number) FROM policy_versions")
            .fetch_one(&mut *transaction)
            .await?;
        if current != Some(replaces) {
            return Ok::<_, sqlx::Error>(Added::Stale { current });
        }
        let number = replaces + 1;
        let inserted = sqlx::query(
            "INSERT INTO policy_versions (number, model, rules, created_at, created_by, reason) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (number) DO NOTHING",
        )
        .bind(number)
        .bind(model)
        .bind(rules)
        .bind(now)
        .bind(created_by)
        .bind(reason)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if inserted != 1 {
            // Another writer took this number between our read and our insert.
            return Ok(Added::Stale { current: Some(number) });
        }
        transaction.announce(&Change::Policy).await?;
        transaction.commit().await?;
        Ok(Added::Stored(PolicyVersion {
            number,
            model: model.to_owned(),
            rules: rules.to_owned(),
            created_at: now,
            created_by: created_by.to_owned(),
            reason: reason.to_owned(),
        }))
            }
        };
    }
    let added = match store {
        Store::Sqlite(pool) => add_in!(pool.begin_with("BEGIN IMMEDIATE")).await?,
        Store::Postgres(pool) => add_in!(pool.begin()).await?,
    };
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support;

    async fn versions_are_appended_after_the_named_one(store: Store) {
        assert_eq!(current(&store).await.unwrap(), None);
        assert_eq!(current_number(&store).await.unwrap(), None);
        assert!(matches!(
            add(&store, 0, "m", "r", "admin", "none yet").await.unwrap(),
            Added::Stale { current: None }
        ));
        assert!(seed(&store, "model 1", "rules 1").await.unwrap());
        assert!(
            !seed(&store, "model x", "rules x").await.unwrap(),
            "seeded once"
        );
        let Added::Stored(second) = add(&store, 1, "model 2", "rules 2", "alice", "tighter")
            .await
            .unwrap()
        else {
            panic!("version 2 stored")
        };
        assert_eq!(second.number, 2);
        assert_eq!(current(&store).await.unwrap(), Some(second.clone()));
        assert_eq!(current_number(&store).await.unwrap(), Some(2));
        // Naming version 1 again is refused and writes nothing.
        assert_eq!(
            add(&store, 1, "model 3", "rules 3", "bob", "late")
                .await
                .unwrap(),
            Added::Stale { current: Some(2) }
        );
        let listed = list(&store).await.unwrap();
        assert_eq!(
            listed.iter().map(|v| v.number).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert_eq!(listed[1].created_by, "passerelle");
        assert_eq!(get(&store, 1).await.unwrap().unwrap().rules, "rules 1");
        assert_eq!(get(&store, 9).await.unwrap(), None);
    }

    #[tokio::test]
    async fn sqlite_versions() {
        let (store, _guard) = test_support::sqlite().await;
        versions_are_appended_after_the_named_one(store).await;
    }

    #[tokio::test]
    async fn postgres_versions() {
        let Some((store, _guard)) = test_support::postgres().await else {
            return;
        };
        versions_are_appended_after_the_named_one(store).await;
    }
}
