//! `/health/live`, `/health/ready` and `/metrics` for operators.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub store: bool,
    pub audit: bool,
    pub datasets: usize,
    /// What is wrong, in words.
    pub problems: Vec<String>,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn live() -> &'static str {
    "ok"
}

/// Ready to serve: the store answers and the audit writer is healthy. Also
/// lists identity providers whose keys cannot be fetched.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Ready: the store answers and the audit log can be written", body = Readiness),
        (status = 503, description = "Not ready (or shutting down): `problems` says why", body = Readiness)
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.lifecycle.is_draining() {
        return draining(&state);
    }
    // The store's last background probe: readiness answers at once, even
    // while the store is down or its pool is busy.
    let probe = state.store_health.status();
    let store = probe.up;
    let audit = state.audit.healthy();
    let mut problems = Vec::new();
    if !store {
        problems.push(format!(
            "the store does not answer since {}: {}",
            probe
                .since
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            probe.error.as_deref().unwrap_or("no answer")
        ));
    }
    if !audit {
        problems.push("the audit log cannot be written".to_owned());
    }
    problems.extend(
        state
            .authenticator
            .readiness()
            .into_iter()
            .filter_map(|(issuer, status)| {
                status
                    .err()
                    .map(|why| format!("identity provider `{issuer}`: {why}"))
            }),
    );
    let ready = store && audit;
    let body = Readiness {
        ready,
        store,
        audit,
        datasets: state.catalog.current().entries().len(),
        problems,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Shutting down: load balancers must stop sending traffic here at once.
fn draining(state: &AppState) -> Response {
    let body = Readiness {
        ready: false,
        store: true,
        audit: state.audit.healthy(),
        datasets: state.catalog.current().entries().len(),
        problems: vec!["shutting down: finishing the requests in flight".to_owned()],
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}
