//! `POST /api/v1/policy/check` and `POST /api/v1/policy/reload`, for
//! administrators: test a decision, pick up edited policy files now.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use crate::http::context::RequestContext;
use crate::http::data::access::dataset_ref;
use crate::http::guard::require;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::policy::Action;

/// A decision to test.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyCheckRequest {
    /// The roles of the caller to test (`anonymous` is always added).
    pub roles: Vec<String>,
    /// `read`, `export`, `aggregate`, `metadata`, `audit:read` or `admin`.
    pub action: String,
    pub dataset: String,
}

/// What the policy decides, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyCheckResponse {
    pub allowed: bool,
    /// The policy line (or built-in rule) that decided.
    pub rule: String,
    /// The catalogue view that applies, if any.
    pub view: Option<String>,
    /// Whether the roles may know the dataset exists.
    pub may_see: bool,
    pub roles: Vec<String>,
    pub action: String,
    pub dataset: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyReloadResponse {
    /// Increments on every successful reload.
    pub generation: u64,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/policy/check", post(check))
        .route("/api/v1/policy/reload", post(reload))
}

/// Decides `action` on `dataset` for `roles` with the policy in force.
#[utoipa::path(
    post,
    path = "/api/v1/policy/check",
    tag = "policy",
    request_body = PolicyCheckRequest,
    responses(
        (status = 200, description = "The decision, the rule that made it and the view that applies", body = PolicyCheckResponse),
        (status = 400, description = "Unknown action or malformed body", body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn check(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    body: axum::body::Bytes,
) -> AppResult<Json<PolicyCheckResponse>> {
    require(&state, &context, Action::Admin)?;
    let request: PolicyCheckRequest = serde_json::from_slice(&body).map_err(|error| {
        Problem::bad_request(
            "invalid-body",
            "Malformed request body",
            format!("the body is not a policy check: {error}"),
        )
        .with_hint(r#"{"roles": ["partenaire"], "action": "read", "dataset": "locations-velos"}"#)
    })?;
    let action = Action::parse(&request.action).ok_or_else(|| {
        Problem::bad_request(
            "invalid-body",
            "Unknown action",
            format!(
                "`{}` is not an action: use read, export, aggregate, metadata, audit:read or admin",
                request.action
            ),
        )
    })?;
    let catalog = state.catalog.current();
    let entry = catalog
        .get(&request.dataset)
        .ok_or_else(|| Problem::dataset_not_found(&request.dataset))?;
    let mut roles = request.roles;
    if !roles.iter().any(|role| role == "anonymous") {
        roles.push("anonymous".to_owned());
    }
    let dataset = dataset_ref(entry);
    let decision = state.policy.decide(&roles, &dataset, action);
    Ok(Json(PolicyCheckResponse {
        allowed: decision.allowed,
        rule: decision.rule,
        view: decision.view,
        may_see: state.policy.may_see(&roles, &dataset),
        roles,
        action: action.as_str().to_owned(),
        dataset: request.dataset,
    }))
}

/// Re-reads the policy files; a file that does not load leaves the policy in force unchanged.
#[utoipa::path(
    post,
    path = "/api/v1/policy/reload",
    tag = "policy",
    responses(
        (status = 200, description = "The new policy is in force", body = PolicyReloadResponse),
        (status = 401, description = "Not authenticated", body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "The files do not load; the previous policy stays in force", body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn reload(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
) -> AppResult<Json<PolicyReloadResponse>> {
    require(&state, &context, Action::Admin)?;
    state.policy.reload().await.map_err(|error| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-policy",
            "Policy not reloaded",
            format!("{error}; the previous policy stays in force"),
        )
    })?;
    Ok(Json(PolicyReloadResponse {
        generation: state.policy.generation(),
    }))
}
