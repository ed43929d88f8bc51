//! The completion event of a streamed response. Exactly one is written per
//! export, whichever way the body ends: to the last byte (`complete: true`),
//! cut by the server (an error, a slow reader, a shutdown), or dropped when
//! the client goes away (`complete: false`), with the rows and bytes actually
//! handed to the connection.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;

use super::context::{AccessRecord, rows_sent};
use super::lifecycle::Lifecycle;
use super::observe::{self, RequestEnd, RequestSummary};
use crate::audit::{AuditLog, Outcome, Receipt};

/// What the completion event of one streamed response needs.
pub struct Completion {
    audit: AuditLog,
    /// Taken by whoever writes the event first: never two events.
    receipt: Mutex<Option<Receipt>>,
    record: AccessRecord,
    status: u16,
    /// The request's log line and metrics, written with the event.
    observed: (RequestSummary, RequestEnd),
    bytes: AtomicI64,
}

impl Completion {
    /// Writes the completion event unless it is already written.
    pub async fn finish(&self, complete: bool) {
        if let Some((receipt, outcome)) = self.take(complete) {
            write(&self.audit, receipt, outcome).await;
        }
    }

    fn take(&self, complete: bool) -> Option<(Receipt, Outcome)> {
        let receipt = self.receipt.lock().ok()?.take()?;
        let (summary, end) = &self.observed;
        let outcome = Outcome {
            status: self.status,
            rows: rows_sent(&self.record),
            bytes: Some(self.bytes.load(Ordering::Relaxed)),
            duration_ms: summary.started.elapsed().as_secs_f64() * 1000.0,
            complete,
        };
        let end = RequestEnd {
            rows: outcome.rows.and_then(|rows| u64::try_from(rows).ok()),
            bytes: outcome.bytes.and_then(|bytes| u64::try_from(bytes).ok()),
            ..end.clone()
        };
        observe::finish(summary, &end);
        Some((receipt, outcome))
    }
}

/// Lets the producer of an export write the completion event when it cuts
/// the export: a client that reads nothing never has its body polled again,
/// so the body's own end would only come when the client leaves.
#[derive(Default)]
pub struct EarlyEnd {
    completion: Mutex<Weak<Completion>>,
}

impl std::fmt::Debug for EarlyEnd {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("EarlyEnd")
    }
}

impl EarlyEnd {
    fn attach(&self, completion: &Arc<Completion>) {
        if let Ok(mut slot) = self.completion.lock() {
            *slot = Arc::downgrade(completion);
        }
    }

    /// Writes `complete: false` with what was handed over so far, unless
    /// the event is already written.
    pub fn cut(&self, lifecycle: &Lifecycle) {
        let completion = self.completion.lock().ok().and_then(|slot| slot.upgrade());
        let Some(completion) = completion else { return };
        if let Some((receipt, outcome)) = completion.take(false) {
            let audit = completion.audit.clone();
            lifecycle
                .tasks()
                .spawn(async move { write(&audit, receipt, outcome).await });
        }
    }
}

async fn write(audit: &AuditLog, receipt: Receipt, outcome: Outcome) {
    if let Err(error) = audit.complete(receipt, outcome).await {
        tracing::error!(%error, "could not complete the audit event of an export");
    }
}

/// Writes the event when the body is dropped before its end (the client went
/// away, or the connection was torn down).
struct DropGuard {
    completion: Arc<Completion>,
    lifecycle: Lifecycle,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        let Some((receipt, outcome)) = self.completion.take(false) else {
            return;
        };
        let audit = self.completion.audit.clone();
        if tokio::runtime::Handle::try_current().is_ok() {
            self.lifecycle
                .tasks()
                .spawn(async move { write(&audit, receipt, outcome).await });
        } else {
            tracing::error!("an export's completion event is lost: no runtime left");
        }
    }
}

/// Wraps a streamed response so that its completion event is written when
/// its body ends, however it ends.
pub fn complete_when_done(
    audit: &AuditLog,
    lifecycle: &Lifecycle,
    receipt: Receipt,
    record: AccessRecord,
    response: Response,
    observed: (RequestSummary, RequestEnd),
) -> Response {
    let (parts, body) = response.into_parts();
    let completion = Arc::new(Completion {
        audit: audit.clone(),
        receipt: Mutex::new(Some(receipt)),
        record,
        status: parts.status.as_u16(),
        observed,
        bytes: AtomicI64::new(0),
    });
    lifecycle.register(&completion);
    if let Some(early_end) = &completion.record.early_end {
        early_end.attach(&completion);
    }
    let guard = DropGuard {
        completion,
        lifecycle: lifecycle.clone(),
    };
    let mut body_stream = body.into_data_stream();
    let stream = async_stream::stream! {
        let guard = guard;
        while let Some(chunk) = body_stream.next().await {
            match chunk {
                Ok(chunk) => {
                    let length = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
                    guard.completion.bytes.fetch_add(length, Ordering::Relaxed);
                    yield Ok::<_, axum::Error>(chunk);
                }
                Err(error) => {
                    // Written before the error: the connection drops the body right after.
                    guard.completion.finish(false).await;
                    yield Err(error);
                    return;
                }
            }
        }
        guard.completion.finish(true).await;
    };
    Response::from_parts(parts, Body::from_stream(stream))
}
