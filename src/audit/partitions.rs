//! Monthly partitions of the audit table on PostgreSQL (migration
//! `0014_audit_partitions.sql`): `audit_events_YYYY_MM` holds the events
//! whose `time_us` falls in that UTC month, `audit_events_default` anything
//! outside every month created. SQLite keeps one table.
//!
//! The writer makes sure the current and the next month's partitions exist
//! (at start, then whenever the month it last checked is over), so an event
//! written at the turn of a month always finds its partition. A purge drops
//! whole partitions ([`drop_purged`]) when every event in them is purged,
//! and deletes row by row only what is left (see `store::purge_before`).

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sqlx::{AssertSqlSafe, PgConnection};

use crate::store::Store;

/// Prefix of every monthly partition's name.
const PREFIX: &str = "audit_events_";

/// One UTC calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    year: i32,
    /// 1 to 12.
    month: u32,
}

impl Month {
    /// The month `time` falls in.
    pub fn of(time: DateTime<Utc>) -> Month {
        Month {
            year: time.year(),
            month: time.month(),
        }
    }

    /// The month after this one.
    pub fn next(self) -> Month {
        match self.month {
            12 => Month {
                year: self.year + 1,
                month: 1,
            },
            month => Month {
                year: self.year,
                month: month + 1,
            },
        }
    }

    /// Microseconds since the Unix epoch at the month's first instant.
    pub fn start_us(self) -> i64 {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .map_or(i64::MAX, |start| start.timestamp_micros())
    }

    /// The partition's table name: `audit_events_2026_12`.
    pub fn table(self) -> String {
        format!("{PREFIX}{:04}_{:02}", self.year, self.month)
    }

    /// The month a partition's table name stands for; `None` for the
    /// default partition and any other name.
    pub fn from_table(name: &str) -> Option<Month> {
        let rest = name.strip_prefix(PREFIX)?;
        let (year, month) = rest.split_once('_')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let month: u32 = month.parse().ok()?;
        (1..=12).contains(&month).then_some(Month { year, month })
    }

    /// A number that grows by one each month (to remember the last one checked).
    fn index(self) -> i64 {
        i64::from(self.year) * 12 + i64::from(self.month) - 1
    }
}

/// Remembers the last month whose partitions were made sure of, so the
/// writer asks the store once a month, not once a batch.
#[derive(Debug, Default)]
pub struct Ahead {
    /// The month made sure of, plus one (0: none yet).
    checked: AtomicI64,
    /// Unix seconds of the last failed attempt: retried once a minute, so a
    /// store that is down costs batches no extra wait.
    failed_at: AtomicI64,
}

/// Pause after a failed attempt to create partitions.
const RETRY_SECONDS: i64 = 60;

impl Ahead {
    /// Creates this month's and next month's partitions unless already done
    /// for this month. A failure is logged and tried again at the next batch:
    /// events meanwhile land in the default partition, never refused.
    pub async fn ensure(&self, store: &Store, now: DateTime<Utc>) {
        let month = Month::of(now);
        if self.checked.load(Ordering::Relaxed) == month.index() + 1
            || now.timestamp() - self.failed_at.load(Ordering::Relaxed) < RETRY_SECONDS
        {
            return;
        }
        match create_months(store, month).await {
            Ok(()) => self.checked.store(month.index() + 1, Ordering::Relaxed),
            Err(error) => {
                self.failed_at.store(now.timestamp(), Ordering::Relaxed);
                tracing::warn!(%error, "audit partitions for this month and the next not created: events go to the default partition meanwhile");
            }
        }
    }
}

/// Creates the partitions of `month` and the next month when missing
/// (PostgreSQL; nothing to do on SQLite).
pub async fn create_months(store: &Store, month: Month) -> Result<(), sqlx::Error> {
    let Store::Postgres(pool) = store else {
        return Ok(());
    };
    let mut connection = pool.acquire().await?;
    for month in [month, month.next()] {
        create(&mut connection, month).await?;
    }
    Ok(())
}

async fn create(connection: &mut PgConnection, month: Month) -> Result<(), sqlx::Error> {
    // The name and bounds are made of digits only: nothing from outside.
    let statement = format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF audit_events FOR VALUES FROM ({}) TO ({})",
        month.table(),
        month.start_us(),
        month.next().start_us()
    );
    match sqlx::query(AssertSqlSafe(statement))
        .execute(&mut *connection)
        .await
    {
        Ok(_) => Ok(()),
        // Another instance created it at the same moment.
        Err(sqlx::Error::Database(error))
            if matches!(error.code().as_deref(), Some("42P07" | "23505")) =>
        {
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Inside the purge's transaction: drops each monthly partition that ends
/// at or before `before_us` and whose events are all before `keep_from`
/// (an event written late, after an event of a later month, keeps its
/// partition: the rows left are deleted one by one). Returns how many
/// events the dropped partitions held.
pub async fn drop_purged(
    transaction: &mut PgConnection,
    keep_from: i64,
    before_us: i64,
) -> Result<u64, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT child.relname::text FROM pg_inherits \
         JOIN pg_class child ON child.oid = pg_inherits.inhrelid \
         WHERE pg_inherits.inhparent = 'audit_events'::regclass ORDER BY 1",
    )
    .fetch_all(&mut *transaction)
    .await?;
    let mut dropped = 0;
    for name in names {
        let Some(month) = Month::from_table(&name) else {
            continue;
        };
        // The current month's and later partitions stay, whatever the
        // date given: the writer relies on them being there.
        if month.next().start_us() > before_us || month >= Month::of(Utc::now()) {
            continue;
        }
        let (events, last_seq): (i64, Option<i64>) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT count(*), max(seq) FROM {}",
            month.table()
        )))
        .fetch_one(&mut *transaction)
        .await?;
        if last_seq.is_some_and(|seq| seq >= keep_from) {
            continue;
        }
        sqlx::query(AssertSqlSafe(format!("DROP TABLE {}", month.table())))
            .execute(&mut *transaction)
            .await?;
        tracing::info!(partition = %name, events, "audit partition dropped by the purge");
        dropped += u64::try_from(events).unwrap_or(0);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Months turn over at the year's end and bound partitions in UTC.
    #[test]
    fn months_and_their_tables() {
        let december = Month::of(Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap());
        assert_eq!(december.table(), "audit_events_2026_12");
        assert_eq!(december.next().table(), "audit_events_2027_01");
        assert_eq!(
            december.next().start_us(),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
                .unwrap()
                .timestamp_micros()
        );
        assert_eq!(Month::from_table("audit_events_2026_12"), Some(december));
        for other in [
            "audit_events_default",
            "audit_events_2026_13",
            "audit_events_26_12",
            "audit_events",
            "datasets",
        ] {
            assert_eq!(Month::from_table(other), None, "{other}");
        }
        assert!(december < december.next());
    }
}
