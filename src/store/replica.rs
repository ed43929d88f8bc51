//! Dataset reads on a PostgreSQL streaming replica (`database_read_url`).
//!
//! Only dataset reads (rows, counts, aggregates, exports) may go to the
//! replica; everything that writes, and the catalogue itself, stays on the
//! primary. Invariant: a read never sees an older dataset version than the
//! catalogue in force. The catalogue notes, for each entry, the primary's
//! WAL position when it first read that version ([`WalPosition`], taken
//! after the catalogue read, so every commit the read saw is at or before
//! it); a read goes to the replica only when the replica has replayed at
//! least that far, else to the primary. The replica's replay position only
//! grows, so a cached value that is far enough is proof enough; a cached
//! value that is not is re-read at most every [`RECHECK`].
//!
//! A replica that is down, lagging or refusing costs no request: reads go to
//! the primary (counted in `passerelle_dataset_reads_total`, logged when the
//! replica goes down or comes back) until a background probe finds it again.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::copy::{CopyFormat, CopyStream};
use super::datasets::{DatasetRead, RowStream, SuppressedGroups};
use super::{Store, StoreError, redact_password};

/// Shortest pause between two on-demand reads of the replay position while
/// the replica is behind: a burst of reads costs one query, not one each.
const RECHECK: Duration = Duration::from_millis(50);

/// How often the replica is probed in the background.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// A position in PostgreSQL's write-ahead log (a `pg_lsn`), as a number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct WalPosition(u64);

impl WalPosition {
    /// Before any write: every replica has replayed that far.
    pub const START: WalPosition = WalPosition(0);
}

impl FromStr for WalPosition {
    type Err = String;

    /// Reads the text form of a `pg_lsn`: two hexadecimal halves, `16/B374D848`.
    fn from_str(text: &str) -> Result<WalPosition, String> {
        let invalid = || format!("`{text}` is not a WAL position");
        let (high, low) = text.split_once('/').ok_or_else(invalid)?;
        let half = |part: &str| u32::from_str_radix(part, 16).map_err(|_| invalid());
        Ok(WalPosition(
            (u64::from(half(high)?) << 32) | u64::from(half(low)?),
        ))
    }
}

impl Store {
    /// The primary's WAL write position now; `None` on SQLite (no replica).
    pub async fn wal_position(&self) -> Result<Option<WalPosition>, StoreError> {
        let Store::Postgres(pool) = self else {
            return Ok(None);
        };
        let text: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(pool)
            .await?;
        Ok(text.parse().ok())
    }
}

/// Where a dataset read was sent, and why (the `store` and `reason` labels
/// of `passerelle_dataset_reads_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    /// The replica had replayed the version read.
    Replica,
    /// No replica is configured (or the store is SQLite).
    PrimaryOnly,
    /// The replica has not replayed the version in force yet.
    PrimaryReplicaBehind,
    /// The replica is down (or is not a standby).
    PrimaryReplicaDown,
    /// The replica failed this read before any row: read again on the primary.
    PrimaryAfterReplicaFailure,
}

impl ReadSource {
    /// The `store` label: `replica` or `primary`.
    pub fn store_label(self) -> &'static str {
        match self {
            ReadSource::Replica => "replica",
            _ => "primary",
        }
    }

    /// The `reason` label.
    pub fn reason_label(self) -> &'static str {
        match self {
            ReadSource::Replica => "replayed",
            ReadSource::PrimaryOnly => "no_replica",
            ReadSource::PrimaryReplicaBehind => "replica_behind",
            ReadSource::PrimaryReplicaDown => "replica_down",
            ReadSource::PrimaryAfterReplicaFailure => "replica_failed",
        }
    }
}

/// The replica's pools and what is known of its state; cheap to clone.
#[derive(Clone, Debug)]
pub struct Replica {
    inner: Arc<ReplicaState>,
}

#[derive(Debug)]
struct ReplicaState {
    /// Pages, counts and aggregates.
    pages: Store,
    /// Streamed exports (admission stays with the export slots).
    exports: Store,
    /// One connection for the replay position, so that busy read pools
    /// never make a serving replica look down.
    probe: PgPool,
    /// The last replay position read (`WalPosition` as a number).
    replayed: AtomicU64,
    up: AtomicBool,
    /// When the replay position was last read on demand.
    last_check: std::sync::Mutex<Option<Instant>>,
    probe_timeout: Duration,
    /// For the logs, password hidden.
    url: String,
}

impl Replica {
    /// Pools on the replica at `url`, connected lazily: a replica that is
    /// down at start delays nothing (reads go to the primary meanwhile).
    /// `up` is false until the first probe answers.
    pub fn connect(
        url: &str,
        pages_connections: u32,
        export_connections: u32,
        acquire_timeout: Duration,
        probe_timeout: Duration,
    ) -> Result<Replica, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
            url: redact_password(url),
            source,
        })?;
        let pool = |connections: u32| {
            PgPoolOptions::new()
                .max_connections(connections.max(1))
                .acquire_timeout(acquire_timeout)
                .connect_lazy_with(options.clone())
        };
        Ok(Replica {
            inner: Arc::new(ReplicaState {
                pages: Store::Postgres(pool(pages_connections)),
                exports: Store::Postgres(pool(export_connections)),
                probe: pool(1),
                replayed: AtomicU64::new(0),
                up: AtomicBool::new(false),
                last_check: std::sync::Mutex::new(None),
                probe_timeout,
                url: redact_password(url),
            }),
        })
    }

    /// The pool for pages, counts and aggregates.
    pub fn pages(&self) -> &Store {
        &self.inner.pages
    }

    /// The pool for streamed exports.
    pub fn exports(&self) -> &Store {
        &self.inner.exports
    }

    /// True while the last probe (or read) found the replica serving.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Whether a read of a version the primary had written by `needed` may
    /// go to the replica now; the cached replay position first, the
    /// replica's own answer when the cache is not far enough (at most every
    /// [`RECHECK`]).
    pub async fn choose(&self, needed: WalPosition) -> ReadSource {
        if !self.is_up() {
            return ReadSource::PrimaryReplicaDown;
        }
        if self.replayed() >= needed {
            return ReadSource::Replica;
        }
        if self.due_for_check() {
            self.probe().await;
            if !self.is_up() {
                return ReadSource::PrimaryReplicaDown;
            }
            if self.replayed() >= needed {
                return ReadSource::Replica;
            }
        }
        ReadSource::PrimaryReplicaBehind
    }

    fn replayed(&self) -> WalPosition {
        WalPosition(self.inner.replayed.load(Ordering::Relaxed))
    }

    fn due_for_check(&self) -> bool {
        let Ok(mut last) = self.inner.last_check.lock() else {
            return false;
        };
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < RECHECK) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Reads the replica's replay position; marks it up or down.
    pub async fn probe(&self) {
        let answer =
            tokio::time::timeout(self.inner.probe_timeout, replay_position(&self.inner.probe))
                .await;
        match answer {
            Ok(Ok(Some(position))) => {
                self.inner.replayed.fetch_max(position.0, Ordering::Relaxed);
                if !self.inner.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(replica = %self.inner.url, "read replica serving: dataset reads go to it");
                }
            }
            Ok(Ok(None)) => self.mark_down("the server is not a standby (not in recovery)"),
            Ok(Err(error)) => self.mark_down(&error.to_string()),
            Err(_) => self.mark_down("no answer within database_probe_timeout_ms"),
        }
    }

    /// The replica cannot serve: reads go to the primary until a probe
    /// finds it again (logged once per outage).
    pub fn mark_down(&self, reason: &str) {
        if self.inner.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(replica = %self.inner.url, %reason, "read replica down: dataset reads go to the primary");
        }
    }

    /// Probes the replica every second, for as long as the process runs.
    pub fn spawn_probe(&self) {
        let replica = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(PROBE_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                replica.probe().await;
            }
        });
    }

    /// `stream`, read on the replica; when it fails before its first item
    /// because the replica cannot serve, the replica is marked down and
    /// `on_primary` gives the same read on the primary instead.
    pub fn or_on_primary<T: Send + 'static>(
        &self,
        stream: BoxStream<'static, Result<T, StoreError>>,
        on_primary: impl FnOnce() -> BoxStream<'static, Result<T, StoreError>> + Send + 'static,
    ) -> BoxStream<'static, Result<T, StoreError>> {
        let replica = self.clone();
        async_stream::stream! {
            let mut stream = stream;
            match stream.next().await {
                Some(Err(error)) if error.is_unavailable() => {
                    replica.mark_down(&error.to_string());
                    crate::telemetry::metrics::dataset_read(ReadSource::PrimaryAfterReplicaFailure);
                    let mut primary = on_primary();
                    while let Some(item) = primary.next().await {
                        yield item;
                    }
                }
                Some(first) => {
                    yield first;
                    while let Some(item) = stream.next().await {
                        yield item;
                    }
                }
                None => {}
            }
        }
        .boxed()
    }
}

/// The pools dataset reads may use: the primary's, and the replica's when
/// one is configured. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReadStores {
    primary: Store,
    primary_exports: Store,
    replica: Option<Replica>,
}

impl ReadStores {
    /// `primary` serves pages, `primary_exports` exports, unless `replica`
    /// has replayed what a read needs.
    pub fn new(primary: Store, primary_exports: Store, replica: Option<Replica>) -> ReadStores {
        ReadStores {
            primary,
            primary_exports,
            replica,
        }
    }

    /// The replica, when one is configured.
    pub fn replica(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    /// Where a page, count or aggregate of a version written by `needed` runs.
    pub async fn for_pages(&self, needed: WalPosition) -> ReadRoute {
        self.route(needed, &self.primary, Replica::pages).await
    }

    /// Where an export of a version written by `needed` runs.
    pub async fn for_exports(&self, needed: WalPosition) -> ReadRoute {
        self.route(needed, &self.primary_exports, Replica::exports)
            .await
    }

    async fn route(
        &self,
        needed: WalPosition,
        primary: &Store,
        pool: fn(&Replica) -> &Store,
    ) -> ReadRoute {
        let source = match &self.replica {
            None => ReadSource::PrimaryOnly,
            Some(replica) => replica.choose(needed).await,
        };
        crate::telemetry::metrics::dataset_read(source);
        let replica = self
            .replica
            .as_ref()
            .filter(|_| source == ReadSource::Replica);
        ReadRoute {
            store: replica.map_or_else(|| primary.clone(), |replica| pool(replica).clone()),
            primary: primary.clone(),
            replica: replica.cloned(),
        }
    }
}

/// One read's store: the replica's pool or the primary's. On the replica, a
/// failure before any row because the replica cannot serve is retried on
/// the primary (and the replica marked down): a replica outage alone never
/// fails a read.
#[derive(Clone, Debug)]
pub struct ReadRoute {
    store: Store,
    primary: Store,
    /// Set when the read runs on the replica.
    replica: Option<Replica>,
}

impl ReadRoute {
    /// True when the read runs on the replica.
    pub fn on_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Whether `error` on this route calls for the same read on the
    /// primary; marks the replica down if so.
    fn falls_back(&self, error: &StoreError) -> bool {
        match &self.replica {
            Some(replica) if error.is_unavailable() => {
                replica.mark_down(&error.to_string());
                crate::telemetry::metrics::dataset_read(ReadSource::PrimaryAfterReplicaFailure);
                true
            }
            _ => false,
        }
    }

    /// See [`Store::stream_rows`].
    pub fn stream_rows(&self, read: Arc<DatasetRead>, limit: Option<u64>) -> RowStream {
        let stream = self.store.stream_rows(read.clone(), limit);
        match &self.replica {
            None => stream,
            Some(replica) => {
                let primary = self.primary.clone();
                replica.or_on_primary(stream, move || primary.stream_rows(read, limit))
            }
        }
    }

    /// See [`Store::copy_export`].
    pub fn copy_export(
        &self,
        read: Arc<DatasetRead>,
        limit: Option<u64>,
        format: &CopyFormat,
    ) -> Option<CopyStream> {
        let stream = self.store.copy_export(read.clone(), limit, format)?;
        Some(match &self.replica {
            None => stream,
            Some(replica) => {
                let primary = self.primary.clone();
                let format = format.clone();
                replica.or_on_primary(stream, move || {
                    primary
                        .copy_export(read, limit, &format)
                        .unwrap_or_else(|| futures::stream::empty().boxed())
                })
            }
        })
    }

    /// See [`Store::direct_export`]: SQLite only, and a replica is always
    /// PostgreSQL, so this read never runs on one.
    pub fn direct_export(
        &self,
        read: Arc<DatasetRead>,
        limit: Option<u64>,
    ) -> Option<crate::store::direct::DirectExport> {
        self.store.direct_export(read, limit)
    }

    /// See [`Store::read_groups`].
    pub async fn read_groups(
        &self,
        read: Arc<DatasetRead>,
        minimum: u32,
        limit: Option<u64>,
    ) -> Result<SuppressedGroups, StoreError> {
        match self.store.read_groups(read.clone(), minimum, limit).await {
            Err(error) if self.falls_back(&error) => {
                self.primary.read_groups(read, minimum, limit).await
            }
            answer => answer,
        }
    }

    /// See [`Store::count_rows`].
    pub async fn count_rows(&self, read: &DatasetRead) -> Result<u64, StoreError> {
        match self.store.count_rows(read).await {
            Err(error) if self.falls_back(&error) => self.primary.count_rows(read).await,
            answer => answer,
        }
    }

    /// See [`Store::estimate_rows`].
    pub async fn estimate_rows(&self, read: &DatasetRead) -> Result<Option<u64>, StoreError> {
        match self.store.estimate_rows(read).await {
            Err(error) if self.falls_back(&error) => self.primary.estimate_rows(read).await,
            answer => answer,
        }
    }
}

/// `pg_last_wal_replay_lsn()`: `None` when the server is not a standby.
async fn replay_position(pool: &PgPool) -> Result<Option<WalPosition>, StoreError> {
    let text: Option<String> = sqlx::query_scalar("SELECT pg_last_wal_replay_lsn()::text")
        .fetch_one(pool)
        .await?;
    Ok(text.and_then(|text| text.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WAL positions read as PostgreSQL prints them and compare as numbers.
    #[test]
    fn reads_wal_positions() {
        let early: WalPosition = "0/3000060".parse().unwrap();
        let later: WalPosition = "16/B374D848".parse().unwrap();
        assert_eq!(later, WalPosition(0x16_B374_D848));
        assert!(early < later);
        assert!(WalPosition::START < early);
        // The low half is not a decimal suffix: 0/FF < 1/0.
        assert!("0/FFFFFFFF".parse::<WalPosition>().unwrap() < "1/0".parse().unwrap());
        for invalid in ["", "16", "16/", "/1", "G/1", "1/2/3", "100000000/0"] {
            assert!(invalid.parse::<WalPosition>().is_err(), "{invalid}");
        }
    }

    /// Labels are the bounded set the metric documents.
    #[test]
    fn labels_name_store_and_reason() {
        assert_eq!(ReadSource::Replica.store_label(), "replica");
        assert_eq!(ReadSource::PrimaryReplicaBehind.store_label(), "primary");
        assert_eq!(
            ReadSource::PrimaryReplicaBehind.reason_label(),
            "replica_behind"
        );
    }

    /// A replica that cannot be reached counts as down after one probe,
    /// and every read then goes to the primary, never fails.
    #[tokio::test]
    async fn unreachable_replica_sends_reads_to_the_primary() {
        // A port nobody listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let replica = Replica::connect(
            &format!("postgres://nobody@127.0.0.1:{port}/none"),
            1,
            1,
            Duration::from_millis(200),
            Duration::from_millis(500),
        )
        .unwrap();
        assert_eq!(
            replica.choose(WalPosition::START).await,
            ReadSource::PrimaryReplicaDown
        );
        replica.probe().await;
        assert!(!replica.is_up());
        assert_eq!(
            replica.choose(WalPosition::START).await,
            ReadSource::PrimaryReplicaDown
        );
    }
}
