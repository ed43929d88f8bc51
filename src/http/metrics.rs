//! `GET /metrics`: the Prometheus text exposition of the metrics listed in
//! `telemetry::metrics`. Gauges of state that lives elsewhere (pools, page
//! cache, audit queue, policy generation) are read at each scrape.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::telemetry::metrics;

/// The process-wide recorder (see [`metrics::install`]).
pub fn install() {
    metrics::install();
}

/// Reads the gauges of `state` into the recorder.
fn sample(state: &AppState) {
    state.pages.run_pending_tasks();
    metrics::page_cache_size(state.pages.weighted_size(), state.pages.entry_count());
    metrics::audit_queue_depth(state.audit.queue_depth());
    metrics::policy_state(state.policy.generation(), state.policy.last_reload_ok());
    for (pool, store) in [
        ("main", &state.store),
        ("exports", state.exports.store()),
        ("audit", state.audit.writer_store()),
    ] {
        let status = store.pool_status();
        metrics::pool(pool, status.open, status.idle, status.max);
    }
}

/// The Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn render(State(state): State<AppState>) -> Response {
    match metrics::install() {
        Some(handle) => {
            sample(&state);
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                handle.render(),
            )
                .into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable").into_response(),
    }
}
