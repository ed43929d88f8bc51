//! Streamed exports (CSV, NDJSON, GeoJSON), which hold a database connection
//! for as long as the client takes to read them:
//! - admission: exports read through a pool of their own, so no number of
//!   slow downloads can take the connections other requests, health checks
//!   or the audit writer need; one caller holds at most `max_per_caller` of
//!   them (429 beyond); when every export connection is busy a new export
//!   waits `wait_ms` at most, then gets 503 with `Retry-After`, never hangs;
//! - a producer task reads and encodes rows and hands chunks to the response
//!   body through a small channel, so a client that stops reading (nothing
//!   taken for `stall_seconds`) or reads slower than `min_bytes_per_second`
//!   is cut and its connection released; so is every export at shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{StatusCode, header};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::ExportSettings;
use crate::format::RowEncoder;
use crate::http::context::RequestContext;
use crate::http::lifecycle::Lifecycle;
use crate::http::problem::{AppResult, Problem};
use crate::http::streamed::EarlyEnd;
use crate::store::Store;
use crate::store::copy::CopyStream;
use crate::store::datasets::RowStream;
use crate::store::direct::EncodedStream;

/// Bytes buffered before the producer hands a chunk to the body.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks waiting between the producer and the connection: enough to keep a
/// fast client busy, small enough that a stalled one is noticed.
const CHANNEL_CHUNKS: usize = 2;

/// Seconds a refused export is told to wait.
const RETRY_AFTER_SECONDS: &str = "5";

/// The export pool and who holds its connections.
#[derive(Clone)]
pub struct Exports {
    store: Store,
    slots: Arc<Semaphore>,
    open_by_caller: Arc<Mutex<HashMap<String, u32>>>,
    settings: ExportSettings,
}

/// The right to run one export: one connection of the export pool and one
/// of the caller's share, both given back when the producer ends.
pub struct ExportSlot {
    _connection: OwnedSemaphorePermit,
    _caller: CallerShare,
}

struct CallerShare {
    key: String,
    open_by_caller: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for CallerShare {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open_by_caller.lock()
            && let Some(count) = open.get_mut(&self.key)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl Exports {
    /// `store` is the export pool, of `connections` connections.
    pub fn new(store: Store, connections: u32, settings: ExportSettings) -> Exports {
        Exports {
            store,
            slots: Arc::new(Semaphore::new(connections.max(1) as usize)),
            open_by_caller: Arc::default(),
            settings,
        }
    }

    /// The pool exports read through.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Admits one more export of this caller, or refuses it: 429 beyond the
    /// caller's share (audited as a deny), 503 when no export connection
    /// frees up within `wait_ms`.
    pub async fn admit(&self, context: &RequestContext) -> AppResult<ExportSlot> {
        let caller = self.take_caller_share(context)?;
        let wait = Duration::from_millis(self.settings.wait_ms);
        match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(ExportSlot {
                _connection: permit,
                _caller: caller,
            }),
            _ => Err({
                crate::telemetry::metrics::pool_timeout("exports");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "exports-busy",
                    "Exports busy",
                    "every connection reserved for exports is in use; try again shortly",
                )
                .with_header(header::RETRY_AFTER, RETRY_AFTER_SECONDS)
            }),
        }
    }

    fn take_caller_share(&self, context: &RequestContext) -> AppResult<CallerShare> {
        let key = caller_key(context);
        let maximum = self.settings.max_per_caller.max(1);
        let admitted = match self.open_by_caller.lock() {
            Ok(mut open) => {
                let count = open.entry(key.clone()).or_insert(0);
                if *count < maximum {
                    *count += 1;
                    true
                } else {
                    false
                }
            }
            Err(_) => true,
        };
        if !admitted {
            let reason = format!("more than {maximum} concurrent exports for this caller");
            context.note(|record| {
                record.decision = Some(false);
                record.rule = Some(reason.clone());
            });
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-exports",
                "Too many exports",
                format!("at most {maximum} exports may be open at once for one caller; wait until one ends"),
            )
            .with_header(header::RETRY_AFTER, RETRY_AFTER_SECONDS));
        }
        Ok(CallerShare {
            key,
            open_by_caller: self.open_by_caller.clone(),
        })
    }

    /// The response body of an export: a producer task reads `rows`,
    /// encodes them with `encoder` and hands chunks over; `counter` counts
    /// the rows of the chunks handed to the connection. The body ends with
    /// an error when the export is cut (slow reader, store error, the
    /// lifecycle's cut), so the client sees a broken transfer, and
    /// `early_end` writes the completion event at once.
    pub fn body(
        &self,
        slot: ExportSlot,
        source: Source,
        counter: Arc<AtomicU64>,
        (lifecycle, early_end): (&Lifecycle, Arc<EarlyEnd>),
        request_id: Arc<str>,
    ) -> Body {
        let (sender, mut receiver) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
        let finished = Arc::new(AtomicBool::new(false));
        let aborted = CancellationToken::new();
        // The rows are read and encoded together, chunk by chunk: one span
        // for the whole export, from its first row to its last.
        let span = tracing::debug_span!("sql", request_id = %request_id, export = true);
        let producer = Producer {
            sender,
            pace: Pace::new(&self.settings),
            cut: lifecycle.cut_token(),
            lifecycle: lifecycle.clone(),
            early_end,
            aborted: aborted.clone(),
            finished: finished.clone(),
            request_id,
        };
        tokio::spawn(tracing::Instrument::instrument(
            producer.run(slot, source),
            span,
        ));
        let stream = async_stream::stream! {
            loop {
                let chunk = tokio::select! {
                    biased;
                    () = aborted.cancelled() => None,
                    chunk = receiver.recv() => chunk,
                };
                match chunk {
                    Some(chunk) => {
                        counter.fetch_add(chunk.rows, Ordering::Relaxed);
                        yield Ok::<_, std::io::Error>(chunk.bytes);
                    }
                    None => {
                        if !finished.load(Ordering::Acquire) {
                            yield Err(std::io::Error::other("export cut"));
                        }
                        return;
                    }
                }
            }
        };
        Body::from_stream(stream)
    }
}

/// What an export is made of.
pub enum Source {
    /// Rows from the store, encoded by the gateway.
    Rows {
        rows: RowStream,
        encoder: Box<dyn RowEncoder>,
    },
    /// CSV records written by the store (PostgreSQL `COPY`), after `head`
    /// (the BOM and header row); their `\n` record ends become `\r\n`.
    Copied { head: Vec<u8>, chunks: CopyStream },
    /// Chunks encoded next to the store (SQLite), with their row counts.
    Encoded { chunks: EncodedStream },
}

/// The caller an export counts against: the partner client, the subject,
/// or the client's address for anonymous callers.
fn caller_key(context: &RequestContext) -> String {
    let caller = &context.caller;
    if caller.is_anonymous() {
        return match context.client_ip {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:unknown".to_owned(),
        };
    }
    match &caller.client_id {
        Some(client) => format!("client:{client}"),
        None => format!("subject:{}", caller.subject),
    }
}

struct Chunk {
    bytes: Bytes,
    rows: u64,
}

/// Why an export stopped before its end.
#[derive(Debug)]
enum Cut {
    ClientGone,
    Stalled,
    TooSlow(u64),
    Shutdown,
    Failed,
}

/// How fast the client takes what it is given. Only the time spent waiting
/// for the client counts, so a slow query never passes for a slow reader.
struct Pace {
    stall: Duration,
    min_bytes_per_second: u64,
    waited: Duration,
    bytes: u64,
}

impl Pace {
    fn new(settings: &ExportSettings) -> Pace {
        Pace {
            stall: Duration::from_secs(settings.stall_seconds.max(1)),
            min_bytes_per_second: settings.min_bytes_per_second,
            waited: Duration::ZERO,
            bytes: 0,
        }
    }

    /// Counts a chunk the client took after `waited`; refuses a reader
    /// slower than the minimum over a whole window.
    fn taken(&mut self, bytes: usize, waited: Duration) -> Result<(), Cut> {
        self.waited += waited;
        self.bytes += bytes as u64;
        if self.waited < self.stall {
            return Ok(());
        }
        let rate = (self.bytes as f64 / self.waited.as_secs_f64()) as u64;
        self.waited = Duration::ZERO;
        self.bytes = 0;
        if rate < self.min_bytes_per_second {
            return Err(Cut::TooSlow(rate));
        }
        Ok(())
    }
}

struct Producer {
    sender: mpsc::Sender<Chunk>,
    pace: Pace,
    cut: CancellationToken,
    lifecycle: Lifecycle,
    early_end: Arc<EarlyEnd>,
    aborted: CancellationToken,
    finished: Arc<AtomicBool>,
    request_id: Arc<str>,
}

impl Producer {
    async fn run(mut self, slot: ExportSlot, source: Source) {
        let outcome = match source {
            Source::Rows { mut rows, encoder } => {
                let outcome = self.produce(&mut rows, encoder).await;
                // The connection goes back to the pool before the slot is given back.
                drop(rows);
                outcome
            }
            Source::Copied { head, mut chunks } => {
                let outcome = self.relay(head, &mut chunks).await;
                drop(chunks);
                outcome
            }
            Source::Encoded { mut chunks } => {
                let outcome = self.forward(&mut chunks).await;
                drop(chunks);
                outcome
            }
        };
        drop(slot);
        match outcome {
            Ok(()) => self.finished.store(true, Ordering::Release),
            Err(cut) => {
                let request_id = &self.request_id;
                match &cut {
                    Cut::ClientGone | Cut::Failed => {}
                    Cut::Stalled => {
                        tracing::info!(%request_id, "export cut: the client took nothing for too long");
                    }
                    Cut::TooSlow(rate) => {
                        tracing::info!(%request_id, rate, "export cut: the client reads too slowly");
                    }
                    Cut::Shutdown => tracing::info!(%request_id, "export cut by the shutdown"),
                }
                self.aborted.cancel();
                // The client may never poll its body again: end the event now.
                if !matches!(cut, Cut::ClientGone) {
                    self.early_end.cut(&self.lifecycle);
                }
            }
        }
    }

    async fn produce(
        &mut self,
        rows: &mut RowStream,
        mut encoder: Box<dyn RowEncoder>,
    ) -> Result<(), Cut> {
        let mut buffer = Vec::with_capacity(CHUNK_BYTES + 4096);
        let mut rows_in_buffer = 0;
        encoder.begin(&mut buffer);
        // Made once: polled only while the store keeps the next row waiting
        // (rows first), so a row at hand costs no check; a cut or a client
        // gone is otherwise seen at the next chunk handed over.
        let (cut, sender) = (self.cut.clone(), self.sender.clone());
        let cancelled = cut.cancelled();
        let closed = sender.closed();
        tokio::pin!(cancelled, closed);
        loop {
            let row = tokio::select! {
                biased;
                row = rows.next() => row,
                () = &mut cancelled => return Err(Cut::Shutdown),
                () = &mut closed => return Err(Cut::ClientGone),
            };
            match row {
                Some(Ok(row)) => {
                    encoder.row(&mut buffer, &row);
                    rows_in_buffer += 1;
                    // Rows already buffered by the driver come without a
                    // pause: give the worker thread back every so often so
                    // that an export filling socket buffers never holds up
                    // the other requests on that thread.
                    tokio::task::consume_budget().await;
                    if buffer.len() >= CHUNK_BYTES {
                        let bytes =
                            std::mem::replace(&mut buffer, Vec::with_capacity(CHUNK_BYTES + 4096));
                        self.deliver(bytes, rows_in_buffer).await?;
                        rows_in_buffer = 0;
                    }
                }
                Some(Err(error)) => {
                    tracing::error!(request_id = %self.request_id, %error, "export failed mid-stream");
                    return Err(Cut::Failed);
                }
                None => break,
            }
        }
        encoder.end(&mut buffer);
        self.deliver(buffer, rows_in_buffer).await
    }

    /// Hands over CSV the store wrote, with `\r\n` line ends, counting rows.
    async fn relay(&mut self, head: Vec<u8>, chunks: &mut CopyStream) -> Result<(), Cut> {
        let mut buffer = Vec::with_capacity(CHUNK_BYTES + 4096);
        buffer.extend_from_slice(&head);
        let mut lines = LineEnds::default();
        let mut rows_in_buffer = 0;
        let (cut, sender) = (self.cut.clone(), self.sender.clone());
        let cancelled = cut.cancelled();
        let closed = sender.closed();
        tokio::pin!(cancelled, closed);
        loop {
            let chunk = tokio::select! {
                biased;
                chunk = chunks.next() => chunk,
                () = &mut cancelled => return Err(Cut::Shutdown),
                () = &mut closed => return Err(Cut::ClientGone),
            };
            match chunk {
                Some(Ok(chunk)) => {
                    rows_in_buffer += lines.convert(&chunk, &mut buffer);
                    tokio::task::consume_budget().await;
                    if buffer.len() >= CHUNK_BYTES {
                        let bytes =
                            std::mem::replace(&mut buffer, Vec::with_capacity(CHUNK_BYTES + 4096));
                        self.deliver(bytes, rows_in_buffer).await?;
                        rows_in_buffer = 0;
                    }
                }
                Some(Err(error)) => {
                    tracing::error!(request_id = %self.request_id, %error, "export failed mid-stream");
                    return Err(Cut::Failed);
                }
                None => break,
            }
        }
        self.deliver(buffer, rows_in_buffer).await
    }

    /// Hands over chunks already encoded, as they come.
    async fn forward(&mut self, chunks: &mut EncodedStream) -> Result<(), Cut> {
        loop {
            let chunk = tokio::select! {
                biased;
                chunk = chunks.next() => chunk,
                () = self.cut.cancelled() => return Err(Cut::Shutdown),
                () = self.sender.closed() => return Err(Cut::ClientGone),
            };
            match chunk {
                Some(Ok(chunk)) => self.deliver(chunk.bytes, chunk.rows).await?,
                Some(Err(error)) => {
                    tracing::error!(request_id = %self.request_id, %error, "export failed mid-stream");
                    return Err(Cut::Failed);
                }
                None => return Ok(()),
            }
        }
    }

    async fn deliver(&mut self, bytes: impl Into<Bytes>, rows: u64) -> Result<(), Cut> {
        let bytes: Bytes = bytes.into();
        let length = bytes.len();
        let chunk = Chunk { bytes, rows };
        let started = Instant::now();
        let sent = tokio::select! {
            biased;
            () = self.cut.cancelled() => return Err(Cut::Shutdown),
            sent = self.sender.send_timeout(chunk, self.pace.stall) => sent,
        };
        match sent {
            Ok(()) => self.pace.taken(length, started.elapsed()),
            Err(SendTimeoutError::Timeout(_)) => Err(Cut::Stalled),
            Err(SendTimeoutError::Closed(_)) => Err(Cut::ClientGone),
        }
    }
}

/// Turns CSV with `\n` record ends into `\r\n` ones, leaving line breaks
/// inside quoted fields as they are; state carries over between chunks.
#[derive(Debug, Default)]
pub struct LineEnds {
    quoted: bool,
}

impl LineEnds {
    /// Appends `chunk` converted to `out`; returns the records it ended.
    fn convert(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> u64 {
        let mut rows = 0;
        let mut start = 0;
        for index in memchr::memchr2_iter(b'"', b'\n', chunk) {
            if chunk[index] == b'"' {
                // A doubled quote inside a field toggles twice: no change.
                self.quoted = !self.quoted;
            } else if !self.quoted {
                out.extend_from_slice(&chunk[start..index]);
                out.extend_from_slice(b"\r\n");
                start = index + 1;
                rows += 1;
            }
        }
        out.extend_from_slice(&chunk[start..]);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Record ends become CRLF, quoted line breaks stay, across chunk borders.
    #[test]
    fn converts_record_ends() {
        let mut lines = LineEnds::default();
        let mut out = Vec::new();
        let mut rows = lines.convert(b"1,\"a\nb\"\"", &mut out);
        rows += lines.convert(b"\",x\n2,y\n", &mut out);
        assert_eq!(rows, 2);
        assert_eq!(out, b"1,\"a\nb\"\"\",x\r\n2,y\r\n");
    }

    fn pace(stall_seconds: u64, min_bytes_per_second: u64) -> Pace {
        Pace::new(&ExportSettings {
            stall_seconds,
            min_bytes_per_second,
            ..ExportSettings::default()
        })
    }

    /// A reader below the minimum over a whole window is cut; time spent
    /// producing (not waiting for the client) does not count against it.
    #[test]
    fn cuts_readers_slower_than_the_minimum() {
        let mut slow = pace(10, 1000);
        assert!(slow.taken(4000, Duration::from_secs(6)).is_ok());
        assert!(matches!(
            slow.taken(4000, Duration::from_secs(6)),
            Err(Cut::TooSlow(666))
        ));
        let mut fast = pace(10, 1000);
        for _ in 0..100 {
            assert!(fast.taken(65_536, Duration::from_secs(1)).is_ok());
        }
        let mut disabled = pace(10, 0);
        assert!(disabled.taken(1, Duration::from_secs(60)).is_ok());
    }
}
