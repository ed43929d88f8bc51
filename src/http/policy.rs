//! `POST /api/v1/policy/check` and `POST /api/v1/policy/reload`, for
//! administrators: test a decision, pick up edited policy files now.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AuthMethod, Caller};
use crate::http::context::RequestContext;
use crate::http::guard::require;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::policy::{Action, GrantSummary, dataset_ref};

/// A decision to test: the identity a partner or an agent would present.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyCheckRequest {
    /// The roles of the caller to test (`anonymous` is always added).
    pub roles: Vec<String>,
    /// The claims its token would carry, for row filters (`{"org": "Troyes"}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// `read`, `export`, `aggregate`, `metadata`, `audit:read` or `admin`.
    pub action: String,
    /// The dataset (required for every action but `audit:read` and `admin`).
    #[serde(default)]
    pub dataset: Option<String>,
}

/// What the policy decides, why, and what the caller would get.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyCheckResponse {
    pub allowed: bool,
    /// The policy line (or built-in rule) that decided.
    pub rule: String,
    /// Why access is refused, as the caller would be told; `null` when allowed.
    pub reason: Option<String>,
    /// The catalogue view that applies, if any.
    pub view: Option<String>,
    /// The effective grant of a data action (`read`, `export`, `aggregate`):
    /// columns, row filter with the claims substituted, aggregate-only and
    /// its minimum group size. `null` when refused or for other actions.
    pub grant: Option<GrantSummary>,
    /// Whether the roles may know the dataset exists.
    pub may_see: bool,
    pub roles: Vec<String>,
    pub action: String,
    pub dataset: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyReloadResponse {
    /// Increments on every successful reload.
    pub generation: u64,
}

/// Each route registered with its documentation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(check))
        .routes(routes!(reload))
}

/// Decides `action` on `dataset` for `roles` with the policy in force.
#[utoipa::path(
    post,
    path = "/api/v1/policy/check",
    tag = "policy",
    request_body = PolicyCheckRequest,
    responses(
        (status = 200, description = "The decision, the rule that made it and the effective grant", body = PolicyCheckResponse),
        (status = 400, description = "Unknown action or malformed body"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Not an administrator"),
        (status = 404, description = "No such dataset"),
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
        .with_hint(r#"{"roles": ["partenaire"], "claims": {"org": "Troyes"}, "action": "read", "dataset": "locations-velos"}"#)
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
    let caller = check_caller(request.roles, request.claims);
    let roles = caller.roles.clone();
    let answer = |allowed: bool, rule: String, reason: Option<String>| PolicyCheckResponse {
        allowed,
        rule,
        reason,
        view: None,
        grant: None,
        may_see: true,
        roles: roles.clone(),
        action: action.as_str().to_owned(),
        dataset: request.dataset.clone(),
    };
    if action.is_global() {
        let decision = state.policy.decide_global(&caller.roles, action);
        return Ok(Json(answer(decision.allowed, decision.rule, None)));
    }
    let id = request.dataset.clone().ok_or_else(|| {
        Problem::bad_request(
            "invalid-body",
            "Dataset required",
            format!("action `{action}` is about a dataset: name it in `dataset`"),
        )
    })?;
    let catalog = state.catalog.current();
    let entry = catalog
        .get(&id)
        .ok_or_else(|| Problem::dataset_not_found(&id))?;
    let dataset = dataset_ref(entry);
    let may_see = state.policy.may_see(&caller.roles, &dataset);
    if !action.is_data() {
        let decision = state.policy.decide(&caller.roles, &dataset, action);
        return Ok(Json(PolicyCheckResponse {
            view: decision.view,
            may_see,
            ..answer(decision.allowed, decision.rule, None)
        }));
    }
    Ok(Json(match state.policy.grant(&caller, entry, action) {
        Ok(grant) => PolicyCheckResponse {
            view: grant.view.clone(),
            grant: Some(grant.summary(&entry.schema)),
            may_see,
            ..answer(true, grant.rule, None)
        },
        Err(refusal) => PolicyCheckResponse {
            view: refusal.view().map(str::to_owned),
            may_see,
            ..answer(false, refusal.rule(), Some(refusal.detail()))
        },
    }))
}

/// The caller `/policy/check` decides for: the roles (with `anonymous`) and
/// the claims it would present; anonymous when no other role is given.
fn check_caller(roles: Vec<String>, claims: serde_json::Map<String, serde_json::Value>) -> Caller {
    let mut caller = Caller::anonymous();
    for role in roles {
        if !role.is_empty() && !caller.roles.contains(&role) {
            caller.roles.push(role);
        }
    }
    if caller.roles.len() > 1 {
        caller.subject = "policy-check".to_owned();
        caller.auth_method = AuthMethod::GatewayToken;
    }
    caller.org = claims
        .get("org")
        .and_then(|org| org.as_str())
        .map(str::to_owned);
    caller.claims = claims;
    caller
}

/// Re-reads the policy files; a file that does not load leaves the policy in force unchanged.
#[utoipa::path(
    post,
    path = "/api/v1/policy/reload",
    tag = "policy",
    responses(
        (status = 200, description = "The new policy is in force", body = PolicyReloadResponse),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Not an administrator"),
        (status = 422, description = "The files do not load; the previous policy stays in force"),
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
    // The other instances re-read their files now rather than at their
    // next look (PostgreSQL; they still watch the files anyway).
    if let Err(error) = state
        .store
        .announce(&crate::store::changes::Change::Policy)
        .await
    {
        tracing::warn!(%error, "policy reload not announced to the other instances");
    }
    Ok(Json(PolicyReloadResponse {
        generation: state.policy.generation(),
    }))
}
