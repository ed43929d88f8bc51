//! Per-request context: the request id every response, problem document and
//! audit event share, and the facts handlers learn (dataset, decision, view,
//! rows) that the audit event records once the response is ready.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;

use crate::auth::Caller;

tokio::task_local! {
    static CURRENT: RequestInfo;
}

/// What any code running for a request may ask about it.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub request_id: String,
    pub path: String,
}

/// The request being served by this task, if any.
pub fn current_request() -> Option<RequestInfo> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `future` with `info` as the current request.
pub async fn scope<F: std::future::Future>(info: RequestInfo, future: F) -> F::Output {
    CURRENT.scope(info, future).await
}

/// The id the edge gave `request` (see `http::edge`), or one from its
/// headers when it never passed the edge.
pub fn request_id_of<B>(request: &axum::http::Request<B>) -> String {
    request
        .extensions()
        .get::<RequestInfo>()
        .map(|info| info.request_id.clone())
        .unwrap_or_else(|| request_id_from(request.headers()))
}

/// The client's `X-Request-Id` when it is sane (short, URL-safe characters),
/// else a new time-ordered UUID.
pub fn request_id_from(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            !value.is_empty()
                && value.len() <= 128
                && value.bytes().all(|byte| {
                    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b':')
                })
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Facts about the request gathered while serving it, for the audit event.
#[derive(Debug, Default, Clone)]
pub struct AccessRecord {
    pub dataset: Option<String>,
    pub action: Option<crate::audit::Action>,
    /// The partner client the request names when it is not the caller's
    /// (the token endpoint's client).
    pub client_id: Option<String>,
    pub decision: Option<bool>,
    pub rule: Option<String>,
    pub view: Option<String>,
    pub purpose: Option<String>,
    /// Publishing: what the request changed, as JSON (the audit `changes` column).
    pub changes: Option<String>,
    /// The access level of the dataset the request reads (once the policy
    /// was asked): whether its event is durable or buffered.
    pub access: Option<crate::catalog::definition::AccessLevel>,
    /// True when the request touches closed data: if the audit log cannot be
    /// written, the answer is refused (fail closed).
    pub closed_data: bool,
    /// Rows sent so far (updated while a body streams).
    pub rows: Option<Arc<AtomicU64>>,
    /// Set when the response body streams: the audit event is completed when it ends.
    pub streamed: bool,
    /// For a streamed export: how its producer ends the event when it cuts it.
    pub early_end: Option<Arc<super::streamed::EarlyEnd>>,
    /// Why authentication failed, when it did.
    pub auth_failure: Option<String>,
    /// The caller's daily quota, charged with the rows and bytes sent.
    pub quota: Option<crate::limits::QuotaCharge>,
    /// The person a page sign-in just identified: the event names them,
    /// not the anonymous visitor who arrived at the callback.
    pub signed_in: Option<Caller>,
}

/// Shared between the middleware and the handler (an extension of the request).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: Arc<str>,
    pub caller: Arc<Caller>,
    /// The client's address (through trusted proxies only).
    pub client_ip: Option<IpAddr>,
    record: Arc<Mutex<AccessRecord>>,
}

impl RequestContext {
    pub fn new(request_id: &str, caller: Caller) -> RequestContext {
        RequestContext {
            request_id: Arc::from(request_id),
            caller: Arc::new(caller),
            client_ip: None,
            record: Arc::default(),
        }
    }

    pub fn with_client_ip(mut self, ip: Option<IpAddr>) -> RequestContext {
        self.client_ip = ip;
        self
    }

    /// Changes the access record.
    pub fn note(&self, change: impl FnOnce(&mut AccessRecord)) {
        if let Ok(mut record) = self.record.lock() {
            change(&mut record);
        }
    }

    pub fn record(&self) -> AccessRecord {
        self.record
            .lock()
            .map(|record| record.clone())
            .unwrap_or_default()
    }

    /// A counter of rows sent, registered in the record.
    pub fn row_counter(&self) -> Arc<AtomicU64> {
        let counter = Arc::new(AtomicU64::new(0));
        let shared = counter.clone();
        self.note(|record| record.rows = Some(shared));
        counter
    }
}

/// Reads a row counter.
pub fn rows_sent(record: &AccessRecord) -> Option<i64> {
    record
        .rows
        .as_ref()
        .map(|counter| i64::try_from(counter.load(Ordering::Relaxed)).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sane client ids are kept; anything else is replaced.
    #[test]
    fn keeps_only_sane_request_ids() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "abc-123_x.y".parse().unwrap());
        assert_eq!(request_id_from(&headers), "abc-123_x.y");
        headers.insert("x-request-id", "bad id<script>".parse().unwrap());
        assert_ne!(request_id_from(&headers), "bad id<script>");
        headers.insert("x-request-id", "a".repeat(200).parse().unwrap());
        assert_eq!(request_id_from(&headers).len(), 36);
    }
}
