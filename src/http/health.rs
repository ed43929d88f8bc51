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
    responses((status = 200, body = Readiness), (status = 503, body = Readiness))
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.lifecycle.is_draining() {
        return draining(&state);
    }
    let store = state.store.ping().await;
    let audit = state.audit.healthy();
    let mut problems = Vec::new();
    if !store {
        problems.push("the store does not answer".to_owned());
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
