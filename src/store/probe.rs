//! The store's health, probed in the background: a task asks the store a
//! trivial question every interval and keeps the last answer, so that
//! readiness and the audit writer know at once whether the store answers
//! instead of each waiting for it while it is down.
//!
//! The probe has a connection of its own, outside the pool: a pool busy with
//! slow exports is not a store that is down, and a probe queueing behind them
//! would say so. The task stops once every handle on its answer is gone.

use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use sqlx::{ConnectOptions, PgConnection, SqliteConnection};
use tokio::time::MissedTickBehavior;

use super::Store;

/// The probe's last answer.
#[derive(Debug, Clone)]
pub struct StoreStatus {
    /// The store answered the last probe.
    pub up: bool,
    /// Since when the store has been up, or down.
    pub since: DateTime<Utc>,
    /// When the store was last asked.
    pub checked_at: DateTime<Utc>,
    /// Why the last probe failed.
    pub error: Option<String>,
}

/// A handle on the probe's last answer: cheap to clone, read without waiting.
#[derive(Debug, Clone)]
pub struct StoreHealth {
    status: Arc<ArcSwap<StoreStatus>>,
}

impl StoreHealth {
    /// Starts probing `store` every `interval`; a probe without an answer
    /// within `timeout` counts as a failure. The store counts as up until the
    /// first probe says otherwise (it has just been opened).
    pub fn spawn(store: &Store, interval: Duration, timeout: Duration) -> StoreHealth {
        let now = Utc::now();
        let status = Arc::new(ArcSwap::from_pointee(StoreStatus {
            up: true,
            since: now,
            checked_at: now,
            error: None,
        }));
        tokio::spawn(probe_loop(
            store.clone(),
            Arc::downgrade(&status),
            interval,
            timeout,
        ));
        StoreHealth { status }
    }

    /// The last answer.
    pub fn status(&self) -> Arc<StoreStatus> {
        self.status.load_full()
    }

    /// The store answered the last probe.
    pub fn is_up(&self) -> bool {
        self.status.load().up
    }
}

async fn probe_loop(
    store: Store,
    status: Weak<ArcSwap<StoreStatus>>,
    interval: Duration,
    timeout: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut connection = None;
    loop {
        ticker.tick().await;
        let Some(status) = status.upgrade() else {
            break;
        };
        let outcome = match tokio::time::timeout(timeout, probe(&store, &mut connection)).await {
            Ok(outcome) => outcome.map_err(|error| error.to_string()),
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
        record(&status, outcome);
    }
}

/// The probe's own connection.
enum ProbeConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Asks the store a question that needs the database itself (the file for
/// SQLite); keeps the connection only after a good answer, so a connection
/// left in an unknown state (an error, a timeout) is never reused.
async fn probe(store: &Store, kept: &mut Option<ProbeConnection>) -> Result<(), sqlx::Error> {
    let mut connection = match kept.take() {
        Some(connection) => connection,
        None => match store {
            Store::Sqlite(pool) => ProbeConnection::Sqlite(pool.connect_options().connect().await?),
            Store::Postgres(pool) => {
                ProbeConnection::Postgres(pool.connect_options().connect().await?)
            }
        },
    };
    match &mut connection {
        ProbeConnection::Sqlite(connection) => {
            sqlx::query("SELECT count(*) FROM sqlite_master")
                .execute(connection)
                .await?;
        }
        ProbeConnection::Postgres(connection) => {
            sqlx::query("SELECT 1").execute(connection).await?;
        }
    }
    *kept = Some(connection);
    Ok(())
}

/// Stores the answer; a change of state is logged once, not every probe.
fn record(status: &ArcSwap<StoreStatus>, outcome: Result<(), String>) {
    let previous = status.load_full();
    let now = Utc::now();
    let up = outcome.is_ok();
    if up != previous.up {
        match &outcome {
            Ok(()) => tracing::info!(
                down_since = %previous.since,
                "the store answers again"
            ),
            Err(error) => tracing::error!(%error, "the store does not answer"),
        }
    }
    status.store(Arc::new(StoreStatus {
        up,
        since: if up == previous.up {
            previous.since
        } else {
            now
        },
        checked_at: now,
        error: outcome.err(),
    }));
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use super::*;
    use crate::store::test_support;

    async fn wait_for(health: &StoreHealth, what: impl Fn(&StoreStatus) -> bool) -> Duration {
        let started = Instant::now();
        while !what(&health.status()) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the probe did not get there: {:?}",
                health.status()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        started.elapsed()
    }

    /// A store that answers is up, and is asked again every interval.
    #[tokio::test]
    async fn an_answering_store_is_up() {
        let (store, _guard) = test_support::sqlite().await;
        let health = StoreHealth::spawn(&store, Duration::from_millis(20), Duration::from_secs(1));
        let first = health.status().checked_at;
        wait_for(&health, |status| status.checked_at > first).await;
        let status = health.status();
        assert!(status.up && status.error.is_none(), "{status:?}");
        assert!(status.since <= first);
    }

    /// A server nobody listens for is down at the first probe, with the reason.
    #[tokio::test]
    async fn a_refused_connection_is_down_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let options = PgConnectOptions::new().host("127.0.0.1").port(port);
        let store = Store::Postgres(PgPoolOptions::new().connect_lazy_with(options));
        let health = StoreHealth::spawn(&store, Duration::from_millis(20), Duration::from_secs(5));
        let waited = wait_for(&health, |status| !status.up).await;
        assert!(waited < Duration::from_secs(1), "down after {waited:?}");
        let status = health.status();
        assert!(status.error.is_some(), "{status:?}");
        assert!(!health.is_up());
    }
}
