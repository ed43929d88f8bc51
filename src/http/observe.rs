//! What an operator sees of each API request once it is over: one
//! structured log line (target `passerelle::request`: method, route, status,
//! duration, request id, subject, dataset, rows, bytes) and its metrics. A
//! streamed export is over when its body ends, so its line and its duration
//! come then, with the rows and bytes actually sent.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};

use crate::format::OutputFormat;
use crate::telemetry::metrics;

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// What is known of a request when it arrives.
#[derive(Debug, Clone)]
pub struct RequestSummary {
    pub method: String,
    /// The route template (`/api/v1/data/{id}`), never the raw path.
    pub route: String,
    pub request_id: String,
    pub started: Instant,
}

impl RequestSummary {
    pub fn of(request: &Request, request_id: &str, started: Instant) -> RequestSummary {
        RequestSummary {
            method: request.method().as_str().to_owned(),
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map_or(UNMATCHED, MatchedPath::as_str)
                .to_owned(),
            request_id: request_id.to_owned(),
            started,
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Default)]
pub struct RequestEnd {
    pub status: u16,
    pub subject: String,
    /// A dataset of the catalogue that the answer carried rows of (never an
    /// id merely read from the path: metrics label it).
    pub dataset: Option<String>,
    pub format: Option<OutputFormat>,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
}

/// Writes the request's log line and counts it.
pub fn finish(summary: &RequestSummary, end: &RequestEnd) {
    let seconds = summary.started.elapsed().as_secs_f64();
    metrics::request(&summary.route, &summary.method, end.status, seconds);
    if let (Some(dataset), Some(format)) = (&end.dataset, end.format) {
        metrics::sent(
            dataset,
            format.extension(),
            end.rows.unwrap_or(0),
            end.bytes.unwrap_or(0),
        );
    }
    tracing::info!(
        target: "passerelle::request",
        method = %summary.method,
        route = %summary.route,
        status = end.status,
        duration_ms = (seconds * 1000.0 * 1000.0).round() / 1000.0,
        request_id = %summary.request_id,
        subject = %end.subject,
        dataset = end.dataset.as_deref(),
        rows = end.rows,
        bytes = end.bytes,
        "request"
    );
}
