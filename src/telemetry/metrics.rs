//! The gateway's Prometheus metrics: every name, kind, help text and label
//! in one table ([`CATALOGUE`]), and one function per thing worth counting.
//!
//! Invariants:
//! - durations and sizes are histograms with fixed buckets (never summaries:
//!   quantiles of summaries cannot be added up across instances);
//! - label values are bounded: a route template (never a raw path), a method
//!   among the standard ones, a status class, a dataset id of the catalogue,
//!   a format, an action, a decision, a reason code, a configured issuer or
//!   pool. A subject, a path or a query string is never a label.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The Prometheus `# TYPE` of the metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric as the exporter publishes it.
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

const fn metric(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [&'static str],
) -> Metric {
    Metric {
        name,
        kind,
        help,
        labels,
    }
}

pub const HTTP_REQUESTS: &str = "passerelle_http_requests_total";
pub const HTTP_DURATION: &str = "passerelle_http_request_duration_seconds";
pub const ROWS_SENT: &str = "passerelle_rows_sent_total";
pub const BYTES_SENT: &str = "passerelle_bytes_sent_total";
pub const DECISIONS: &str = "passerelle_decisions_total";
pub const AUTH_FAILURES: &str = "passerelle_auth_failures_total";
pub const AUDIT_QUEUE_DEPTH: &str = "passerelle_audit_queue_depth";
pub const AUDIT_BATCH_SIZE: &str = "passerelle_audit_batch_size";
pub const AUDIT_COMMIT_DURATION: &str = "passerelle_audit_commit_duration_seconds";
pub const AUDIT_WRITE_FAILURES: &str = "passerelle_audit_write_failures_total";
pub const PAGE_CACHE_LOOKUPS: &str = "passerelle_page_cache_lookups_total";
pub const PAGE_CACHE_BYTES: &str = "passerelle_page_cache_bytes";
pub const PAGE_CACHE_ENTRIES: &str = "passerelle_page_cache_entries";
pub const POOL_CONNECTIONS: &str = "passerelle_db_pool_connections";
pub const POOL_MAX_CONNECTIONS: &str = "passerelle_db_pool_max_connections";
pub const POOL_TIMEOUTS: &str = "passerelle_db_pool_timeouts_total";
pub const POLICY_RELOADS: &str = "passerelle_policy_reloads_total";
pub const POLICY_RELOAD_OK: &str = "passerelle_policy_last_reload_successful";
pub const POLICY_GENERATION: &str = "passerelle_policy_generation";
pub const JWKS_FETCHES: &str = "passerelle_jwks_fetches_total";
/// Emitted by the rate limiter (`[limits]`), described here with the others.
pub const RATE_LIMIT_REFUSALS: &str = "passerelle_rate_limit_refusals_total";
pub const DATASET_READS: &str = "passerelle_dataset_reads_total";
pub const BUILD_INFO: &str = "passerelle_build_info";

/// Every metric of the gateway: the README's list, the dashboard and the
/// alert rules name only these (a test checks it).
pub const CATALOGUE: &[Metric] = &[
    metric(
        HTTP_REQUESTS,
        Kind::Counter,
        "API requests answered, by route template, method and status class.",
        &["route", "method", "status_class"],
    ),
    metric(
        HTTP_DURATION,
        Kind::Histogram,
        "Time from the request to the last byte of its answer, by route template.",
        &["route"],
    ),
    metric(
        ROWS_SENT,
        Kind::Counter,
        "Dataset rows sent to callers, by dataset and format.",
        &["dataset", "format"],
    ),
    metric(
        BYTES_SENT,
        Kind::Counter,
        "Bytes of dataset answers sent to callers, by dataset and format.",
        &["dataset", "format"],
    ),
    metric(
        DECISIONS,
        Kind::Counter,
        "Audited access decisions, by action and decision (allow or deny).",
        &["action", "decision"],
    ),
    metric(
        AUTH_FAILURES,
        Kind::Counter,
        "Requests refused with 401 because their credentials failed, by reason code.",
        &["reason"],
    ),
    metric(
        AUDIT_QUEUE_DEPTH,
        Kind::Gauge,
        "Audit events waiting for the writer.",
        &[],
    ),
    metric(
        AUDIT_BATCH_SIZE,
        Kind::Histogram,
        "Audit events written per transaction.",
        &[],
    ),
    metric(
        AUDIT_COMMIT_DURATION,
        Kind::Histogram,
        "Time to write and commit one batch of audit events.",
        &[],
    ),
    metric(
        AUDIT_WRITE_FAILURES,
        Kind::Counter,
        "Audit events that could not be written (their requests were refused unless open data may be served without audit).",
        &[],
    ),
    metric(
        PAGE_CACHE_LOOKUPS,
        Kind::Counter,
        "Lookups in the JSON page cache, by result (hit or miss).",
        &["result"],
    ),
    metric(
        PAGE_CACHE_BYTES,
        Kind::Gauge,
        "Memory the JSON page cache weighs its pages at, in bytes.",
        &[],
    ),
    metric(
        PAGE_CACHE_ENTRIES,
        Kind::Gauge,
        "Pages held by the JSON page cache.",
        &[],
    ),
    metric(
        POOL_CONNECTIONS,
        Kind::Gauge,
        "Store connections by pool (main, exports, audit) and state (in_use or idle).",
        &["pool", "state"],
    ),
    metric(
        POOL_MAX_CONNECTIONS,
        Kind::Gauge,
        "Most connections each store pool may open.",
        &["pool"],
    ),
    metric(
        POOL_TIMEOUTS,
        Kind::Counter,
        "Waits for a store connection (or an export slot) that ran out, by pool: each is a 503 or a failed audit batch.",
        &["pool"],
    ),
    metric(
        POLICY_RELOADS,
        Kind::Counter,
        "Policy reloads from the files, by outcome (ok or failed; a failed reload keeps the previous policy).",
        &["outcome"],
    ),
    metric(
        POLICY_RELOAD_OK,
        Kind::Gauge,
        "1 when the last policy reload succeeded, 0 while the files on disk do not load.",
        &[],
    ),
    metric(
        POLICY_GENERATION,
        Kind::Gauge,
        "Generation of the policy in force (incremented at each swap).",
        &[],
    ),
    metric(
        JWKS_FETCHES,
        Kind::Counter,
        "Fetches of an identity provider's keys, by configured issuer and outcome (ok or failed).",
        &["issuer", "outcome"],
    ),
    metric(
        RATE_LIMIT_REFUSALS,
        Kind::Counter,
        "Requests refused with 429 by a rate limit or quota, by policy.",
        &["policy"],
    ),
    metric(
        DATASET_READS,
        Kind::Counter,
        "Dataset reads (pages, counts, aggregates, exports) by store (primary or replica) and reason (replayed, no_replica, replica_behind, replica_down, replica_failed).",
        &["store", "reason"],
    ),
    metric(
        BUILD_INFO,
        Kind::Gauge,
        "Always 1; the gateway's version as a label.",
        &["version"],
    ),
];

/// Buckets of every `_seconds` histogram: 1 ms to 2 minutes (exports).
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Buckets of the audit batch size, up to past the default `max_batch_size`.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// The store pools, as the `pool` label names them.
pub const POOLS: [&str; 3] = ["main", "exports", "audit"];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often the recorder's histogram samples are folded into their buckets.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide recorder, installed on first use (once per process:
/// several gateways in one test process share it).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(build).as_ref()
}

fn build() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), DURATION_BUCKETS)
        .and_then(|builder| {
            builder
                .set_buckets_for_metric(Matcher::Full(AUDIT_BATCH_SIZE.to_owned()), BATCH_BUCKETS)
        });
    let handle = match builder.and_then(PrometheusBuilder::install_recorder) {
        Ok(handle) => handle,
        Err(error) => {
            tracing::warn!(%error, "metrics recorder not installed");
            return None;
        }
    };
    start_upkeep(handle.clone());
    for metric in CATALOGUE {
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Kind::Histogram => metrics::describe_histogram!(metric.name, metric.help),
        }
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Series that alerts watch exist from the start, at zero.
    metrics::counter!(AUDIT_WRITE_FAILURES).absolute(0);
    for outcome in ["ok", "failed"] {
        metrics::counter!(POLICY_RELOADS, "outcome" => outcome).absolute(0);
    }
    for pool in POOLS {
        metrics::counter!(POOL_TIMEOUTS, "pool" => pool).absolute(0);
    }
    Some(handle)
}

/// Folds the histogram samples into their buckets every [`UPKEEP_EVERY`],
/// on a thread of its own (the recorder is installed before any runtime).
/// `install_recorder` leaves this to its caller: without it every sample
/// (8 bytes, a few a request) stays in memory until `/metrics` is scraped,
/// and grows without bound where nobody scrapes (measured: RSS +16 bytes a
/// closed read, 2.7 MiB every 170,000 requests).
fn start_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(error) = started {
        tracing::error!(%error, "cannot start the metrics upkeep thread: histograms grow until scraped");
    }
}

/// The status class label: `2xx` … `5xx`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The method label: a standard method, or `other` (a client may send any token).
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}

/// One answered API request. `route` is a route template or `unmatched`.
pub fn request(route: &str, method: &str, status: u16, seconds: f64) {
    metrics::counter!(
        HTTP_REQUESTS,
        "route" => route.to_owned(),
        "method" => method_label(method),
        "status_class" => status_class(status),
    )
    .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route.to_owned()).record(seconds);
}

/// Rows and bytes of one dataset answer. `dataset` must be a catalogue id.
pub fn sent(dataset: &str, format: &'static str, rows: u64, bytes: u64) {
    metrics::counter!(ROWS_SENT, "dataset" => dataset.to_owned(), "format" => format)
        .increment(rows);
    metrics::counter!(BYTES_SENT, "dataset" => dataset.to_owned(), "format" => format)
        .increment(bytes);
}

/// One audited decision; `action` and `decision` come from the audit's enums.
pub fn decision(action: &str, decision: &str) {
    metrics::counter!(DECISIONS, "action" => action.to_owned(), "decision" => decision.to_owned())
        .increment(1);
}

/// Credentials refused; `reason` is one of the authenticator's codes.
pub fn auth_failure(reason: &'static str) {
    metrics::counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

/// Events waiting for the audit writer now.
pub fn audit_queue_depth(events: usize) {
    metrics::gauge!(AUDIT_QUEUE_DEPTH).set(events as f64);
}

/// One batch of audit events committed (or refused) after `seconds`.
pub fn audit_batch(events: usize, seconds: f64) {
    metrics::histogram!(AUDIT_BATCH_SIZE).record(events as f64);
    metrics::histogram!(AUDIT_COMMIT_DURATION).record(seconds);
}

/// Audit events that could not be written.
pub fn audit_failures(events: usize) {
    metrics::counter!(AUDIT_WRITE_FAILURES).increment(events as u64);
}

/// One page cache lookup.
pub fn page_cache_lookup(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!(PAGE_CACHE_LOOKUPS, "result" => result).increment(1);
}

/// The page cache's size now.
pub fn page_cache_size(bytes: u64, entries: u64) {
    metrics::gauge!(PAGE_CACHE_BYTES).set(bytes as f64);
    metrics::gauge!(PAGE_CACHE_ENTRIES).set(entries as f64);
}

/// A store pool's connections now.
pub fn pool(pool: &'static str, open: u32, idle: usize, max: u32) {
    let idle = idle.min(open as usize);
    metrics::gauge!(POOL_CONNECTIONS, "pool" => pool, "state" => "in_use")
        .set((open as usize - idle) as f64);
    metrics::gauge!(POOL_CONNECTIONS, "pool" => pool, "state" => "idle").set(idle as f64);
    metrics::gauge!(POOL_MAX_CONNECTIONS, "pool" => pool).set(f64::from(max));
}

/// A wait for a connection of `pool` that ran out.
pub fn pool_timeout(pool: &'static str) {
    metrics::counter!(POOL_TIMEOUTS, "pool" => pool).increment(1);
}

/// A dataset read sent to the primary or the read replica (see
/// [`crate::store::replica`]).
pub fn dataset_read(source: crate::store::replica::ReadSource) {
    metrics::counter!(
        DATASET_READS,
        "store" => source.store_label(),
        "reason" => source.reason_label()
    )
    .increment(1);
}

/// A policy reload from the files, and whether it loaded.
pub fn policy_reload(ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics::counter!(POLICY_RELOADS, "outcome" => outcome).increment(1);
}

/// The policy in force: its generation, and whether the last reload loaded.
pub fn policy_state(generation: u64, last_reload_ok: bool) {
    metrics::gauge!(POLICY_GENERATION).set(generation as f64);
    metrics::gauge!(POLICY_RELOAD_OK).set(if last_reload_ok { 1.0 } else { 0.0 });
}

/// A fetch of a provider's keys; `issuer` is a configured issuer's name.
pub fn jwks_fetch(issuer: &str, ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics::counter!(JWKS_FETCHES, "issuer" => issuer.to_owned(), "outcome" => outcome)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names follow the Prometheus conventions: prefixed, counters end in
    /// `_total`, durations in `_seconds`, every metric has help text.
    #[test]
    fn names_follow_conventions() {
        let mut seen = std::collections::HashSet::new();
        for metric in CATALOGUE {
            assert!(seen.insert(metric.name), "{} twice", metric.name);
            assert!(metric.name.starts_with("passerelle_"), "{}", metric.name);
            assert!(!metric.help.is_empty(), "{}", metric.name);
            assert_eq!(
                metric.kind == Kind::Counter,
                metric.name.ends_with("_total"),
                "{}",
                metric.name
            );
            if metric.name.contains("duration") {
                assert!(metric.name.ends_with("_seconds"), "{}", metric.name);
                assert_eq!(metric.kind, Kind::Histogram, "{}", metric.name);
            }
        }
    }

    /// Unbounded inputs map to a few label values.
    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(999), "5xx");
    }
}
