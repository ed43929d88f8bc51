//! Changes every gateway instance must apply at once: PostgreSQL
//! `LISTEN`/`NOTIFY` on one channel.
//!
//! The writer announces a change inside the transaction that makes it
//! ([`Announce`]): PostgreSQL delivers the notification at commit and never
//! for a rolled-back transaction, so a listener never hears of a change it
//! cannot read yet. Every instance listens ([`listen`]) and applies what it
//! hears; when the connection is lost and re-established, anything may have
//! been missed, so the listener asks for a full refresh
//! ([`Heard::Everything`]). Polling stays the fallback for a notification
//! lost without the connection noticing.
//!
//! SQLite has no notifications: an instance on SQLite learns of changes made
//! by another process (the CLI) by polling only.

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool, SqliteConnection};

/// The one channel every instance listens on.
pub const CHANNEL: &str = "passerelle_changes";

/// Pause before connecting again after the listener failed.
const RETRY: Duration = Duration::from_secs(1);

/// A change another instance made and this one must apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A dataset's catalogue row changed: new version, new definition
    /// (classification included), removed.
    Catalog { dataset: String },
    /// The policy changed (re-read it).
    Policy,
    /// A partner client was disabled, enabled, deleted, got a new secret or
    /// new limits, or one of its API keys was revoked.
    Client { client_id: String },
    /// The gateway's signing keys were rotated: every instance signs with
    /// the new key from now on.
    Keys,
}

impl Change {
    /// The notification's payload (`catalog:<id>`, `policy`, `client:<id>`).
    pub fn payload(&self) -> String {
        match self {
            Change::Catalog { dataset } => format!("catalog:{dataset}"),
            Change::Policy => "policy".to_owned(),
            Change::Client { client_id } => format!("client:{client_id}"),
            Change::Keys => "keys".to_owned(),
        }
    }

    /// Reads a payload; `None` for one this version does not know (the
    /// listener then refreshes everything rather than ignore it).
    pub fn parse(payload: &str) -> Option<Change> {
        match payload.split_once(':') {
            Some(("catalog", dataset)) if !dataset.is_empty() => Some(Change::Catalog {
                dataset: dataset.to_owned(),
            }),
            Some(("client", client_id)) if !client_id.is_empty() => Some(Change::Client {
                client_id: client_id.to_owned(),
            }),
            None if payload == "policy" => Some(Change::Policy),
            None if payload == "keys" => Some(Change::Keys),
            _ => None,
        }
    }
}

/// What the listener tells the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// One change, to apply now.
    Change(Change),
    /// The listener (re)connected, or heard a payload it does not know:
    /// changes may have been missed, refresh everything.
    Everything,
}

/// Announces a change within the caller's transaction (see the module
/// documentation). A no-op on SQLite.
pub trait Announce {
    fn announce(&mut self, change: &Change)
    -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

impl Announce for PgConnection {
    async fn announce(&mut self, change: &Change) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(change.payload())
            .execute(self)
            .await?;
        Ok(())
    }
}

impl Announce for SqliteConnection {
    async fn announce(&mut self, _change: &Change) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl crate::store::Store {
    /// Announces a change on its own, after what it announces was committed
    /// (the policy files re-read, the signing keys rotated). A no-op on SQLite.
    pub async fn announce(&self, change: &Change) -> Result<(), sqlx::Error> {
        match self {
            crate::store::Store::Postgres(pool) => pool.acquire().await?.announce(change).await,
            crate::store::Store::Sqlite(_) => Ok(()),
        }
    }
}

/// Listens on [`CHANNEL`] until the process ends, with a connection of its
/// own (never one of `pool`'s). `apply` gets [`Heard::Everything`] each time
/// the listener is connected (at start too: nothing said before it listened
/// is heard), then every change as it comes.
pub async fn listen<F, Fut>(pool: &PgPool, mut apply: F)
where
    F: FnMut(Heard) -> Fut,
    Fut: Future<Output = ()>,
{
    // One connection, reconnected by the listener itself when it is lost.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(pool.connect_options().as_ref().clone());
    loop {
        let mut listener = match subscribe(&own).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for changes: polling only until it can");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        apply(Heard::Everything).await;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match Change::parse(notification.payload()) {
                    Some(change) => apply(Heard::Change(change)).await,
                    None => {
                        tracing::warn!(
                            payload = notification.payload(),
                            "unknown change notification: refreshing everything"
                        );
                        apply(Heard::Everything).await;
                    }
                },
                // Lost and listening again already: what was said meanwhile is gone.
                Ok(None) => {
                    tracing::warn!("change listener reconnected: refreshing everything");
                    apply(Heard::Everything).await;
                }
                Err(error) => {
                    tracing::warn!(%error, "change listener failed: reconnecting");
                    tokio::time::sleep(RETRY).await;
                    break;
                }
            }
        }
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, test_support};

    /// Payloads read back as the change they announce; unknown ones do not.
    #[test]
    fn payloads_round_trip() {
        for change in [
            Change::Catalog {
                dataset: "locations-velos".to_owned(),
            },
            Change::Policy,
            Change::Client {
                client_id: "client_ab12".to_owned(),
            },
            Change::Keys,
        ] {
            assert_eq!(Change::parse(&change.payload()), Some(change));
        }
        for unknown in ["", "catalog:", "client:", "policy:x", "limits:c", "nope"] {
            assert_eq!(Change::parse(unknown), None, "{unknown}");
        }
    }

    async fn wait(heard: &mut tokio::sync::mpsc::UnboundedReceiver<Heard>) -> Option<Heard> {
        tokio::time::timeout(Duration::from_secs(5), heard.recv())
            .await
            .expect("heard in time")
    }

    /// A change announced in a committed transaction reaches a listener on
    /// another connection; a rolled-back one never does.
    #[tokio::test]
    async fn announced_at_commit_only() {
        let Some((store, _guard)) = test_support::postgres().await else {
            return;
        };
        let Store::Postgres(pool) = &store else {
            unreachable!("a PostgreSQL test store")
        };
        let (sender, mut heard) = tokio::sync::mpsc::unbounded_channel();
        let listening = pool.clone();
        let task = tokio::spawn(async move {
            listen(&listening, move |what| {
                let _ = sender.send(what);
                async {}
            })
            .await
        });
        assert_eq!(wait(&mut heard).await, Some(Heard::Everything));

        let rolled_back = Change::Client {
            client_id: "client_rolled_back".to_owned(),
        };
        let mut transaction = pool.begin().await.unwrap();
        transaction.announce(&rolled_back).await.unwrap();
        transaction.rollback().await.unwrap();
        let committed = Change::Catalog {
            dataset: "ds".to_owned(),
        };
        let mut transaction = pool.begin().await.unwrap();
        transaction.announce(&committed).await.unwrap();
        transaction.commit().await.unwrap();
        assert_eq!(wait(&mut heard).await, Some(Heard::Change(committed)));

        // The listener's connection ends: it listens again and asks for everything.
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN%' AND datname = current_database()",
        )
        .execute(pool)
        .await
        .unwrap();
        assert_eq!(wait(&mut heard).await, Some(Heard::Everything));
        let mut transaction = pool.begin().await.unwrap();
        transaction.announce(&Change::Policy).await.unwrap();
        transaction.commit().await.unwrap();
        assert_eq!(wait(&mut heard).await, Some(Heard::Change(Change::Policy)));
        task.abort();
    }
}
