//! The tamper-evident audit log: one event per request, durable before the
//! response starts, hash-chained so that a change, insertion or deletion is
//! detected by `verify`.
//!
//! Invariants:
//! - `record` answers only after the event's transaction committed
//!   (group commit: one writer task drains waiting events and writes them in
//!   one transaction, then answers every caller);
//! - `record_buffered` (open data by default, see [`Durability`]) answers once
//!   the event is queued: the writer commits it within `buffer_ms`. It waits
//!   like `record` while the queue is full, while the writer is more than
//!   `buffer_ms` behind, and while the log is not healthy (so a failing log
//!   is still noticed, and refused, by the next request);
//! - reads of the log (`list`, `stream`, `stats`, `verify`) first wait for the
//!   events queued before them: an auditor sees every event already answered;
//! - the chain is one sequence `1, 2, 3…` even with several gateways on one
//!   PostgreSQL (each batch takes an advisory lock and reads the head inside it);
//! - rows are never updated: a streamed export's outcome is a separate
//!   `completion` event referring to the original one;
//! - signed checkpoints pin the head (periodically, on shutdown, on demand);
//!   a purge leaves a signed anchor the verification starts from.

mod columns;
mod event;
mod operator;
mod partitions;
mod query;
mod signer;
mod store;
mod verify;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub use event::{
    Action, AuthMethod, Decision, Event, EventKind, GENESIS_HASH, Outcome, Receipt, StoredEvent,
    hmac_sha256, redact_query,
};
pub use operator::{operator_event, operator_subject};
pub use query::{
    AuditQueryError, Count, Dashboard, DayCount, EventPage, EventQuery, ExportTotals, MAX_LIMIT,
    PersonalReads, Stats, StatsQuery, SubjectCount, VERIFIED_RULE, event_csv_line,
    events_csv_header,
};
pub use signer::{CheckpointSigner, Es256Signer};
pub use verify::{BreakReason, BrokenEntry, Verification};

use crate::store::Store;
use crate::store::probe::StoreHealth;
use writer::Command;

/// Settings of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Most events written in one transaction.
    pub max_batch_size: usize,
    /// How long the writer waits for more events before committing a batch
    /// that is not full (0: commit what is waiting at once).
    pub max_batch_wait_ms: u64,
    /// Under load, how long a batch that callers wait for may wait for more
    /// events: while many more requests are being answered than wait in the
    /// batch, their events are about to come, and one commit for all of them
    /// costs the store less CPU than several (0: never).
    pub busy_wait_ms: u64,
    /// Events waiting for the writer before `record` itself waits.
    pub queue_capacity: usize,
    /// How often a signed checkpoint of the head is written.
    pub checkpoint_interval_seconds: u64,
    /// GDPR: store `hmac-sha256:<hex>` of the client IP instead of the IP.
    pub hash_client_ip: bool,
    /// The HMAC key for `hash_client_ip` (required when it is on).
    pub ip_hash_key: Option<String>,
    /// The name of this gateway instance, stored with each event.
    pub instance: String,
    /// Longest time a buffered event waits for its commit (`audit.buffer_ms`,
    /// set from [`AuditSettings`](crate::config::AuditSettings)).
    #[serde(skip)]
    pub buffer_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            max_batch_size: 512,
            max_batch_wait_ms: 0,
            busy_wait_ms: DEFAULT_BUSY_WAIT_MS,
            queue_capacity: 16_384,
            checkpoint_interval_seconds: 300,
            hash_client_ip: false,
            ip_hash_key: None,
            instance: default_instance(),
            buffer_ms: DEFAULT_BUFFER_MS,
        }
    }
}

/// Default of `audit.log.busy_wait_ms`.
pub const DEFAULT_BUSY_WAIT_MS: u64 = 2;

/// A batch callers wait for waits for more (`busy_wait_ms`) while more than
/// this many times as many other requests are being answered. Below it, the
/// requests still coming are few enough to make the next batch while this
/// one commits: waiting for them would leave the processors idle.
const BUSY_FACTOR: usize = 2;

/// Default of `audit.buffer_ms`.
pub const DEFAULT_BUFFER_MS: u64 = 50;

/// When the event of a request is committed, relative to its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Committed before the response starts: never lost.
    Durable,
    /// Queued, committed within `audit.buffer_ms`; the response does not
    /// wait. A crash loses at most the last `buffer_ms` of these events.
    Buffered,
}

fn default_instance() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty());
    match host {
        Some(host) => format!("{host}-{}", std::process::id()),
        None => "gateway".to_owned(),
    }
}

/// Why the audit log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store refused the write: nothing was recorded.
    #[error("the audit log cannot be written: {0}")]
    Unavailable(String),
    /// The writer has stopped (after `shutdown`).
    #[error("the audit log is shut down")]
    Stopped,
    /// Reading the log failed.
    #[error("cannot read the audit log: {0}")]
    Read(#[from] sqlx::Error),
}

/// The chain's head and last signed checkpoint, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStatus {
    pub head_seq: Option<i64>,
    pub head_hash: Option<String>,
    pub checkpoint_seq: Option<i64>,
    pub checkpoint_time: Option<DateTime<Utc>>,
}

/// What a purge removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub before: String,
    pub deleted_events: u64,
    pub deleted_checkpoints: u64,
    /// The first kept sequence, now pinned by a signed anchor.
    pub anchor_seq: Option<i64>,
    pub anchor_hash: Option<String>,
}

/// The read side of the audit log: verification, listings, statistics and
/// exports. It never writes (no writer task, no checkpoint), so
/// `passerelle audit verify` and `audit export` leave the store as they found it.
#[derive(Clone)]
pub struct AuditReader {
    store: Store,
    signer: Arc<dyn CheckpointSigner>,
}

impl AuditReader {
    /// Reads the log in `store`, checking checkpoints with `signer`'s keys.
    pub fn new(store: Store, signer: Arc<dyn CheckpointSigner>) -> AuditReader {
        AuditReader { store, signer }
    }

    /// Verifies the chain for `seq` in `[from, to]` (everything by default).
    pub async fn verify(
        &self,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Verification, AuditError> {
        Ok(verify::verify(&self.store, self.signer.as_ref(), from, to).await?)
    }

    /// One page of events, newest first.
    pub async fn list(&self, query: &EventQuery) -> Result<EventPage, AuditError> {
        Ok(query::list(&self.store, query).await?)
    }

    /// Every event matching the filters, newest first, read page by page
    /// (constant memory); `limit` is the page size of the reads, not a cap.
    pub fn stream(
        &self,
        query: EventQuery,
    ) -> impl Stream<Item = Result<StoredEvent, AuditError>> + Send + use<> {
        let store = self.store.clone();
        async_stream::try_stream! {
            let mut query = EventQuery { limit: MAX_LIMIT, ..query };
            loop {
                let page = query::list(&store, &query).await?;
                for event in page.events {
                    yield event;
                }
                match page.next_cursor.and_then(|cursor| cursor.parse().ok()) {
                    Some(cursor) => query.cursor = Some(cursor),
                    None => break,
                }
            }
        }
    }

    /// Request counts over a period.
    pub async fn stats(&self, query: &StatsQuery) -> Result<Stats, AuditError> {
        Ok(query::stats(&self.store, query).await?)
    }

    /// The auditors' dashboard over a period (`personal`: the datasets
    /// holding personal data).
    pub async fn dashboard(
        &self,
        query: &StatsQuery,
        personal: &[String],
    ) -> Result<Dashboard, AuditError> {
        Ok(query::dashboard(&self.store, query, personal).await?)
    }

    /// When the dashboard last verified the chain, and its result.
    pub async fn last_verification(&self) -> Result<Option<(DateTime<Utc>, String)>, AuditError> {
        Ok(query::last_verification(&self.store).await?)
    }

    /// The chain's head and its last signed checkpoint (`None` when empty).
    pub async fn chain_status(&self) -> Result<ChainStatus, AuditError> {
        let head = store::head(&self.store).await?;
        let checkpoint = store::last_checkpoint(&self.store).await?;
        Ok(ChainStatus {
            head_seq: head.as_ref().map(|head| head.seq),
            head_hash: head.map(|head| head.hash),
            checkpoint_seq: checkpoint.as_ref().map(|row| row.seq),
            checkpoint_time: checkpoint
                .and_then(|row| DateTime::<Utc>::from_timestamp_micros(row.time_us)),
        })
    }

    /// Writes the events with `from <= time < to`, oldest first, as `csv` or `ndjson`.
    pub async fn export(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        format: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> anyhow::Result<()> {
        let csv = match format {
            "csv" => true,
            "ndjson" => false,
            other => anyhow::bail!("unknown export format `{other}` (expected csv or ndjson)"),
        };
        if csv {
            out.write_all(events_csv_header().as_bytes())?;
        }
        let start = match from {
            Some(from) => store::first_seq_since(&self.store, from.timestamp_micros()).await?,
            None => Some(0),
        };
        let mut next = start.unwrap_or(i64::MAX);
        let to_us = to.map(|to| to.timestamp_micros());
        let from_us = from.map(|from| from.timestamp_micros());
        loop {
            let rows = store::events_ascending(&self.store, next, None, 1000).await?;
            let Some(last) = rows.last() else { break };
            next = last.stored.seq + 1;
            for row in rows {
                let time_us = row.stored.time.timestamp_micros();
                let in_period = from_us.is_none_or(|from| time_us >= from)
                    && to_us.is_none_or(|to| time_us < to);
                if !in_period {
                    continue;
                }
                let event = row.into_stored()?;
                if csv {
                    out.write_all(event_csv_line(&event).as_bytes())?;
                } else {
                    serde_json::to_writer(&mut *out, &event)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// The audit log handle: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
}

struct Shared {
    /// The writer's pool (checkpoints and purges too).
    store: Store,
    /// Where auditors' reads go, so that a long listing never holds the
    /// connections the writer needs.
    reader: AuditReader,
    signer: Arc<dyn CheckpointSigner>,
    /// False after a write failed, except for the store being down while
    /// `store_health` says so; true again after a write succeeds.
    healthy: AtomicBool,
    /// The store's probed state, when the application follows it.
    store_health: OnceLock<StoreHealth>,
    instance: String,
    ip_hash_key: Option<Vec<u8>>,
    /// Buffered events queued and not yet written (or failed).
    pending_buffered: AtomicUsize,
    /// Micro-seconds after `epoch` since which the oldest buffered event
    /// still waiting may have waited (a lower bound of its queuing time).
    backlog_since_us: AtomicU64,
    epoch: Instant,
    buffer: Duration,
    /// This month's and next month's partitions (PostgreSQL).
    partitions: partitions::Ahead,
    /// The head as the writer left it after its last batch (`None` after a
    /// failure: read again under the lock).
    known_head: std::sync::Mutex<Option<store::Head>>,
    /// Requests being answered (see [`AuditLog::request_started`]).
    in_flight: AtomicUsize,
    /// Rung after queuing a command somebody waits for: a writer lingering
    /// for more buffered events sleeps through the others (see `writer`).
    urgent: tokio::sync::Notify,
}

impl Shared {
    fn new(
        store: Store,
        reader: Store,
        config: &AuditConfig,
        signer: Arc<dyn CheckpointSigner>,
    ) -> anyhow::Result<Shared> {
        let ip_hash_key = match (config.hash_client_ip, &config.ip_hash_key) {
            (false, _) => None,
            (true, Some(key)) if key.len() >= 16 => Some(key.as_bytes().to_vec()),
            (true, _) => anyhow::bail!(
                "audit.hash_client_ip needs audit.ip_hash_key, at least 16 characters"
            ),
        };
        anyhow::ensure!(
            config.max_batch_size > 0,
            "audit.max_batch_size must be at least 1"
        );
        Ok(Shared {
            store,
            reader: AuditReader::new(reader, signer.clone()),
            signer,
            healthy: AtomicBool::new(true),
            store_health: OnceLock::new(),
            instance: config.instance.clone(),
            ip_hash_key,
            pending_buffered: AtomicUsize::new(0),
            backlog_since_us: AtomicU64::new(0),
            epoch: Instant::now(),
            buffer: Duration::from_millis(config.buffer_ms),
            partitions: partitions::Ahead::default(),
            known_head: std::sync::Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            urgent: tokio::sync::Notify::new(),
        })
    }

    fn known_head(&self) -> Option<store::Head> {
        self.known_head.lock().ok().and_then(|head| head.clone())
    }

    fn set_known_head(&self, head: Option<store::Head>) {
        if let Ok(mut known) = self.known_head.lock() {
            *known = head;
        }
    }

    /// Whether many more requests are being answered than the `waiting`
    /// callers of the batch being gathered: their events are coming.
    fn more_coming(&self, waiting: usize) -> bool {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        in_flight.saturating_sub(waiting) > BUSY_FACTOR * waiting
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// True while buffered events wait that may have been queued more than
    /// `buffer_ms` ago: the writer is behind, new events must wait for it.
    fn lagging(&self) -> bool {
        if self.pending_buffered.load(Ordering::Acquire) == 0 {
            return false;
        }
        let since = self.backlog_since_us.load(Ordering::Acquire);
        let buffer = u64::try_from(self.buffer.as_micros()).unwrap_or(u64::MAX);
        self.now_us().saturating_sub(since) > buffer
    }

    /// Notes that the writer is done (written or failed) with `count`
    /// buffered events, the last of them queued at `last_queued_us`.
    fn buffered_done(&self, count: usize, last_queued_us: u64) {
        if count == 0 {
            return;
        }
        // Whatever still waits was queued after the last one written.
        self.backlog_since_us
            .fetch_max(last_queued_us, Ordering::AcqRel);
        self.pending_buffered.fetch_sub(count, Ordering::AcqRel);
    }

    /// Why the store is known not to answer, per its probe.
    fn store_down(&self) -> Option<String> {
        let status = self.store_health.get()?.status();
        (!status.up).then(|| {
            format!(
                "the store does not answer (since {}): {}",
                status.since.to_rfc3339(),
                status.error.as_deref().unwrap_or("no answer")
            )
        })
    }
}

/// A request being answered (see [`AuditLog::request_started`]).
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AuditLog {
    /// Starts the writer task on `store` (whose migrations are applied).
    pub async fn start(
        store: Store,
        config: AuditConfig,
        signer: Arc<dyn CheckpointSigner>,
    ) -> anyhow::Result<AuditLog> {
        AuditLog::start_with_reader(store.clone(), store, config, signer).await
    }

    /// Starts the writer task on `writer` (a pool reserved for it) and reads
    /// the log through `reader`.
    pub async fn start_with_reader(
        store: Store,
        reader: Store,
        config: AuditConfig,
        signer: Arc<dyn CheckpointSigner>,
    ) -> anyhow::Result<AuditLog> {
        let shared = Arc::new(Shared::new(store, reader, &config, signer)?);
        shared.partitions.ensure(&shared.store, Utc::now()).await;
        let (sender, receiver) = mpsc::channel(config.queue_capacity.max(1));
        tokio::spawn(writer::run(shared.clone(), config, receiver));
        Ok(AuditLog {
            shared,
            commands: sender,
        })
    }

    /// As [`AuditLog::start_with_reader`], but the writer runs on a thread of
    /// its own, with a runtime of its own, on the pool `open_writer` makes
    /// there. Between the round trips of a batch the writer waits for its
    /// store; woken on the request runtime, it would then wait again behind
    /// every request ready to run, and each durable event with it (measured
    /// with 32 closed-data readers: 2.0 ms a batch on the shared runtime).
    /// On its own thread it is woken by its own reactor and the kernel runs it
    /// at once. The thread ends when the writer does (shutdown, or every
    /// handle dropped), closing its pool.
    pub async fn start_on_own_thread<F, Fut>(
        open_writer: F,
        reader: Store,
        config: AuditConfig,
        signer: Arc<dyn CheckpointSigner>,
    ) -> anyhow::Result<AuditLog>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<Store>>,
    {
        type Started = anyhow::Result<(Arc<Shared>, mpsc::Sender<Command>)>;
        let (started, answer) = oneshot::channel::<Started>();
        std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.send(Err(error.into()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let opened = async {
                        let store = open_writer().await?;
                        let shared = Arc::new(Shared::new(store, reader, &config, signer)?);
                        shared.partitions.ensure(&shared.store, Utc::now()).await;
                        anyhow::Ok(shared)
                    };
                    match opened.await {
                        Ok(shared) => {
                            let (sender, receiver) = mpsc::channel(config.queue_capacity.max(1));
                            if started.send(Ok((shared.clone(), sender))).is_ok() {
                                writer::run(shared, config, receiver).await;
                            }
                        }
                        Err(error) => {
                            let _ = started.send(Err(error));
                        }
                    }
                });
            })?;
        let (shared, commands) = answer
            .await
            .map_err(|_| anyhow::anyhow!("the audit writer's thread stopped while starting"))??;
        Ok(AuditLog { shared, commands })
    }

    /// Records `event`; returns once it is committed durably.
    pub async fn record(&self, event: Event) -> Result<Receipt, AuditError> {
        let record = event.sealed(&self.shared.instance, self.shared.ip_hash_key.as_deref());
        let span = tracing::debug_span!("audit_commit", request_id = %record.request_id);
        let sequence = tracing::Instrument::instrument(self.append(record.clone()), span).await?;
        Ok(Receipt {
            sequence,
            event: Box::new(record),
        })
    }

    /// Records `event` without waiting for its commit: the writer commits it
    /// within `buffer_ms`. Waits for the commit, as [`AuditLog::record`]
    /// does, when the writer is behind by more than `buffer_ms` or the log is
    /// not healthy (a write failed, the store does not answer); waits for a
    /// place when the queue is full. Never drops the event.
    pub async fn record_buffered(&self, event: Event) -> Result<(), AuditError> {
        if !self.healthy() || self.shared.lagging() {
            return self.record(event).await.map(|_| ());
        }
        let record = event.sealed(&self.shared.instance, self.shared.ip_hash_key.as_deref());
        let permit = self
            .commands
            .reserve()
            .await
            .map_err(|_| AuditError::Stopped)?;
        let queued_us = self.shared.now_us();
        if self.shared.pending_buffered.fetch_add(1, Ordering::AcqRel) == 0 {
            // The first of a new backlog: its age starts now.
            self.shared
                .backlog_since_us
                .fetch_max(queued_us, Ordering::AcqRel);
        }
        permit.send(Command::Append {
            record: Box::new(record),
            reply: writer::Reply::Buffered { queued_us },
        });
        Ok(())
    }

    /// Counts a request as being answered until the returned guard drops: the
    /// writer lets a batch wait for more events while many requests are.
    pub fn request_started(&self) -> InFlight<'_> {
        self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.shared.in_flight)
    }

    /// Waits until every event queued before this call is written (or failed).
    pub async fn flush(&self) {
        let (reply, answer) = oneshot::channel();
        if self.send_urgent(Command::Flush { reply }).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// Records how a streamed response ended, as a chained `completion` event.
    pub async fn complete(&self, receipt: Receipt, outcome: Outcome) -> Result<(), AuditError> {
        let record = receipt
            .event
            .completion(receipt.sequence, outcome, &self.shared.instance);
        self.append(record).await.map(|_| ())
    }

    async fn append(&self, record: Event) -> Result<i64, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send_urgent(Command::Append {
            record: Box::new(record),
            reply: writer::Reply::Wait(reply),
        })
        .await?;
        answer.await.map_err(|_| AuditError::Stopped)?
    }

    /// Queues a command somebody waits for, and wakes the writer for it.
    async fn send_urgent(&self, command: Command) -> Result<(), AuditError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| AuditError::Stopped)?;
        self.shared.urgent.notify_one();
        Ok(())
    }

    /// Events waiting for the writer now.
    pub fn queue_depth(&self) -> usize {
        self.commands.max_capacity() - self.commands.capacity()
    }

    /// The writer's pool.
    pub fn writer_store(&self) -> &Store {
        &self.shared.store
    }

    /// Follows the store's probed state: while the probe says the store does
    /// not answer, events are refused at once (each batch would otherwise
    /// wait for a connection, and every caller with it) and the log is not
    /// healthy; it is again as soon as the probe sees the store back.
    pub fn follow_store_health(&self, health: StoreHealth) {
        let _ = self.shared.store_health.set(health);
    }

    /// False after a failed write, until a write succeeds again, and while
    /// the store's probe says the store does not answer.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed) && self.shared.store_down().is_none()
    }

    /// Writes what is waiting, a signed checkpoint, and stops the writer.
    pub async fn shutdown(&self) {
        let (reply, answer) = oneshot::channel();
        if self.send_urgent(Command::Shutdown { reply }).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// Writes a signed checkpoint of the head now (after what is waiting).
    pub async fn checkpoint(&self) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send_urgent(Command::Checkpoint { reply }).await?;
        answer.await.map_err(|_| AuditError::Stopped)?
    }

    /// The read side of the log (verification, listings, statistics, exports).
    pub fn reader(&self) -> &AuditReader {
        &self.shared.reader
    }

    /// Verifies the chain for `seq` in `[from, to]` (everything by default).
    pub async fn verify(
        &self,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Verification, AuditError> {
        self.flush().await;
        self.shared.reader.verify(from, to).await
    }

    /// One page of events, newest first.
    pub async fn list(&self, query: &EventQuery) -> Result<EventPage, AuditError> {
        self.flush().await;
        self.shared.reader.list(query).await
    }

    /// Every event matching the filters, newest first (see [`AuditReader::stream`]).
    pub fn stream(
        &self,
        query: EventQuery,
    ) -> impl Stream<Item = Result<StoredEvent, AuditError>> + Send + use<> {
        let log = self.clone();
        async_stream::try_stream! {
            log.flush().await;
            let events = log.shared.reader.stream(query);
            futures::pin_mut!(events);
            while let Some(event) = futures::StreamExt::next(&mut events).await {
                yield event?;
            }
        }
    }

    /// Request counts over a period.
    pub async fn stats(&self, query: &StatsQuery) -> Result<Stats, AuditError> {
        self.flush().await;
        self.shared.reader.stats(query).await
    }

    /// Deletes events older than `before`, keeping the rest verifiable: the
    /// part deleted is verified first, then a signed anchor pins the first
    /// kept event's link. Refuses when the part to delete does not verify.
    pub async fn purge(&self, before: DateTime<Utc>) -> anyhow::Result<PurgeReport> {
        let store = &self.shared.store;
        let keep_from = match store::first_seq_since(store, before.timestamp_micros()).await? {
            Some(seq) => seq,
            None => store::head(store).await?.map_or(1, |head| head.seq + 1),
        };
        let mut report = PurgeReport {
            before: before.to_rfc3339(),
            deleted_events: 0,
            deleted_checkpoints: 0,
            anchor_seq: None,
            anchor_hash: None,
        };
        let verification = self.verify(None, Some(keep_from - 1)).await?;
        if let Some(broken) = verification.first_broken {
            anyhow::bail!(
                "refusing to purge: the events to delete do not verify (seq {}: {:?}, {})",
                broken.seq,
                broken.reason,
                broken.detail
            );
        }
        let Some(last_hash) = verification
            .head_hash
            .filter(|_| verification.to_seq == Some(keep_from - 1))
        else {
            return Ok(report);
        };
        let purged = store::purge_before(
            store,
            self.shared.signer.as_ref(),
            keep_from,
            before.timestamp_micros(),
            &last_hash,
        )
        .await?;
        report.deleted_events = purged.events;
        report.deleted_checkpoints = purged.checkpoints;
        report.anchor_seq = purged.anchor.as_ref().map(|anchor| anchor.seq);
        report.anchor_hash = purged.anchor.map(|anchor| anchor.hash);
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
