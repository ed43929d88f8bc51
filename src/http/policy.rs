//! `POST /api/v1/policy/check` and `POST /api/v1/policy/reload`, for
//! administrators: test a decision, pick up edited policy files now.
//!
//! With `policies_source = "store"`, the policy itself: `GET`/`PUT
//! /api/v1/policy` (the replacement names the version it replaces in
//! `If-Match`, and is validated exactly as files are before it is stored),
//! `GET /api/v1/policy/versions` and `POST /api/v1/policy/versions/{n}/restore`.
//! Every change is announced to the other instances and audited with the
//! rules it added and removed in the event's `rule`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AuthMethod, Caller};
use crate::config::PoliciesSource;
use crate::http::context::RequestContext;
use crate::http::guard::require;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::policy::{Action, GrantSummary, dataset_ref};
use crate::store::policies::{self as stored, Added, PolicyVersion, PolicyVersionInfo};

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
        .routes(routes!(show_policy, replace_policy))
        .routes(routes!(list_policy_versions))
        .routes(routes!(restore_policy_version))
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

/// Re-reads the policy files (or, with policies_source = "store", the store's
/// current version); a policy that does not load leaves the one in force unchanged.
#[utoipa::path(
    post,
    path = "/api/v1/policy/reload",
    tag = "policy",
    responses(
        (status = 200, description = "The new policy is in force", body = PolicyReloadResponse),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Not an administrator"),
        (status = 422, description = "The policy does not load (or the store cannot be read); the previous policy stays in force"),
    ),
    security(("bearer" = []))
)]
pub async fn reload(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
) -> AppResult<Json<PolicyReloadResponse>> {
    require(&state, &context, Action::Admin)?;
    state.reload_policy().await.map_err(|error| {
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

/// The policy in force: its model and rules as written, and where they come from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyDocument {
    /// `files` (`policies_dir`) or `store`.
    pub source: String,
    /// The store's version (`null` with files); its ETag is `"policy-<version>"`.
    pub version: Option<i64>,
    /// The casbin model (`model.conf`).
    pub model: String,
    /// The rules (`policy.csv`).
    pub rules: String,
    /// When the version was stored (RFC 3339); `null` with files.
    pub created_at: Option<String>,
    /// Who stored it; `null` with files.
    pub created_by: Option<String>,
    /// Why; `null` with files.
    pub reason: Option<String>,
}

/// A replacement of the policy.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyReplacement {
    /// The casbin model, as `model.conf` would hold it.
    pub model: String,
    /// The rules, as `policy.csv` would hold them.
    pub rules: String,
    /// Why, kept with the version.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The stored versions, newest (the one in force) first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyVersionList {
    pub current: i64,
    pub versions: Vec<PolicyVersionEntry>,
}

/// One stored version, without its text.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyVersionEntry {
    pub number: i64,
    /// RFC 3339.
    pub created_at: String,
    pub created_by: String,
    pub reason: String,
}

/// Longest list of added and removed rules in an audit event's `rule`.
const AUDIT_DIFF_CHARS: usize = 4000;

fn etag(number: i64) -> String {
    format!("\"policy-{number}\"")
}

fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn stored_document(version: PolicyVersion) -> Response {
    let tag = etag(version.number);
    let document = PolicyDocument {
        source: "store".to_owned(),
        version: Some(version.number),
        model: version.model,
        rules: version.rules,
        created_at: Some(rfc3339(version.created_at)),
        created_by: Some(version.created_by),
        reason: Some(version.reason),
    };
    ([(header::ETAG, tag)], Json(document)).into_response()
}

/// 409 when the policy comes from files: nothing to replace through the API.
fn require_store(state: &AppState) -> Result<(), Problem> {
    match state.settings.policies_source {
        PoliciesSource::Store => Ok(()),
        PoliciesSource::Files => Err(Problem::new(
            StatusCode::CONFLICT,
            "policy-from-files",
            "Policies come from files",
            format!(
                "the policy in force is read from the files in {} (policies_source = \"files\"): \
                 edit them and reload, or set policies_source = \"store\"",
                state.settings.policies_dir.display()
            ),
        )),
    }
}

/// The store's current version; a store without one is broken (the start seeds it).
async fn current_version(state: &AppState) -> Result<PolicyVersion, Problem> {
    stored::current(&state.store)
        .await?
        .ok_or_else(|| Problem::internal("the store holds no policy version"))
}

/// Checks `If-Match` against the current version: 428 without it, 412 when
/// it names another version (`*` names none: the writer must say which
/// version it read).
fn check_if_match(headers: &HeaderMap, current: i64) -> Result<(), Problem> {
    let values: Vec<&str> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if values.is_empty() {
        return Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            "If-Match required",
            "name the version you replace: send If-Match with the ETag of GET /api/v1/policy",
        ));
    }
    let expected = etag(current);
    let matches = values
        .iter()
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == expected);
    if matches {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "The policy changed",
            format!(
                "If-Match does not name the current version ({expected}): read the policy again and redo the change"
            ),
        )
        .with_header(header::ETAG, &expected))
    }
}

/// The rule lines of a `policy.csv` text (comments and blank lines aside).
fn rule_lines(rules: &str) -> Vec<&str> {
    rules
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
}

/// What the audit event says of a change: the new version, whether the
/// model changed, each rule line added (`+`) and removed (`-`).
fn change_summary(headline: String, before: &PolicyVersion, model: &str, rules: &str) -> String {
    let old = rule_lines(&before.rules);
    let new = rule_lines(rules);
    let mut summary = headline;
    summary.push_str(if before.model == model {
        "; model unchanged"
    } else {
        "; model changed"
    });
    let added = new.iter().filter(|line| !old.contains(line));
    let removed = old.iter().filter(|line| !new.contains(line));
    let changes: Vec<String> = added
        .map(|line| format!("+ {line}"))
        .chain(removed.map(|line| format!("- {line}")))
        .collect();
    if changes.is_empty() {
        summary.push_str("; rules unchanged");
    }
    for (index, change) in changes.iter().enumerate() {
        if summary.len() + change.len() > AUDIT_DIFF_CHARS {
            summary.push_str(&format!("; … {} more", changes.len() - index));
            break;
        }
        summary.push_str("; ");
        summary.push_str(change);
    }
    summary
}

/// Validates, stores as the version after `before`, swaps it in here (the
/// other instances hear of it) and audits it.
async fn store_version(
    state: &AppState,
    context: &RequestContext,
    before: &PolicyVersion,
    replacement: PolicyReplacement,
    verb: &str,
) -> Result<Response, Problem> {
    if let Err(error) = state
        .policy
        .check_text(&replacement.model, &replacement.rules)
        .await
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-policy",
            "Policy refused",
            format!("{error}; the policy in force stays"),
        ));
    }
    let reason = replacement
        .reason
        .filter(|reason| !reason.trim().is_empty())
        .unwrap_or_else(|| format!("{verb} through the API"));
    let added = stored::add(
        &state.store,
        before.number,
        &replacement.model,
        &replacement.rules,
        &context.caller.subject,
        &reason,
    )
    .await?;
    let version = match added {
        Added::Stored(version) => version,
        Added::Stale { current } => {
            let current = current.map(etag).unwrap_or_default();
            return Err(Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "The policy changed",
                format!("another version ({current}) was stored meanwhile: read the policy again and redo the change"),
            )
            .with_header(header::ETAG, &current));
        }
    };
    if let Err(error) = state
        .policy
        .replace_text(&version.model, &version.rules, version.number)
        .await
    {
        // Validated a moment ago: only a catalogue change in between could do this.
        tracing::error!(%error, version = version.number, "stored policy not swapped in here");
    }
    let summary = change_summary(
        format!("policy {verb}: version {}", version.number),
        before,
        &version.model,
        &version.rules,
    );
    context.note(|record| record.rule = Some(summary));
    Ok(stored_document(version))
}

/// The policy in force: model, rules, and (store) its version as ETag.
#[utoipa::path(
    get,
    path = "/api/v1/policy",
    tag = "policy",
    responses(
        (status = 200, description = "The policy; with policies_source = \"store\", its version in `ETag` (`\"policy-<n>\"`)", body = PolicyDocument),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Not an administrator"),
    ),
    security(("bearer" = []))
)]
pub async fn show_policy(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
) -> AppResult<Response> {
    require(&state, &context, Action::Admin)?;
    match state.settings.policies_source {
        PoliciesSource::Store => Ok(stored_document(current_version(&state).await?)),
        PoliciesSource::Files => {
            let (model, rules) = state.policy.texts().await;
            Ok(Json(PolicyDocument {
                source: "files".to_owned(),
                version: None,
                model,
                rules,
                created_at: None,
                created_by: None,
                reason: None,
            })
            .into_response())
        }
    }
}

/// Replaces the policy (policies_source = "store"): validated as files are,
/// stored as a new version, in force on every instance within a second.
#[utoipa::path(
    put,
    path = "/api/v1/policy",
    tag = "policy",
    request_body = PolicyReplacement,
    params(("If-Match" = String, Header, description = "The ETag of the version replaced (`\"policy-<n>\"`)")),
    responses(
        (status = 200, description = "Stored and in force; its version in `ETag`", body = PolicyDocument),
        (status = 400, description = "Malformed body"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Not an administrator"),
        (status = 409, description = "The policy comes from files (policies_source = \"files\")"),
        (status = 412, description = "If-Match does not name the current version"),
        (status = 422, description = "The model or the rules do not load; the policy in force stays"),
        (status = 428, description = "If-Match missing"),
    ),
    security(("bearer" = []))
)]
pub async fn replace_policy(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> AppResult<Response> {
    require(&state, &context, Action::Admin)?;
    require_store(&state)?;
    let before = current_version(&state).await?;
    check_if_match(&headers, before.number)?;
    let replacement: PolicyReplacement = serde_json::from_slice(&body).map_err(|error| {
        Problem::bad_request(
            "invalid-body",
            "Malformed request body",
            format!("the body is not a policy: {error}"),
        )
        .with_hint(r#"{"model": "[request_definition]\n…", "rules": "p, agent, level:internal, read, allow\n…", "reason": "why"}"#)
    })?;
    store_version(&state, &context, &before, replacement, "replaced").await
}

/// The stored versions of the policy, newest first (policies_source = "store").
#[utoipa::path(
    get,
    path = "/api/v1/policy/versions",
    tag = "policy",
    responses(
        (status = 200, description = "The versions, the one in force first", body = PolicyVersionList),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Not an administrator"),
        (status = 409, description = "The policy comes from files"),
    ),
    security(("bearer" = []))
)]
pub async fn list_policy_versions(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
) -> AppResult<Json<PolicyVersionList>> {
    require(&state, &context, Action::Admin)?;
    require_store(&state)?;
    let versions: Vec<PolicyVersionInfo> = stored::list(&state.store).await?;
    Ok(Json(PolicyVersionList {
        current: versions.first().map_or(0, |version| version.number),
        versions: versions
            .into_iter()
            .map(|version| PolicyVersionEntry {
                number: version.number,
                created_at: rfc3339(version.created_at),
                created_by: version.created_by,
                reason: version.reason,
            })
            .collect(),
    }))
}

/// Puts an earlier version back in force, as a new version with its text
/// (policies_source = "store"); `If-Match`, when sent, must name the current version.
#[utoipa::path(
    post,
    path = "/api/v1/policy/versions/{number}/restore",
    tag = "policy",
    params(("number" = i64, Path, description = "The version to restore")),
    responses(
        (status = 200, description = "Restored as a new version, in force; its version in `ETag`", body = PolicyDocument),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Not an administrator"),
        (status = 404, description = "No such version"),
        (status = 409, description = "The policy comes from files"),
        (status = 412, description = "If-Match does not name the current version"),
        (status = 422, description = "The version no longer loads (the catalogue changed); the policy in force stays"),
    ),
    security(("bearer" = []))
)]
pub async fn restore_policy_version(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> AppResult<Response> {
    require(&state, &context, Action::Admin)?;
    require_store(&state)?;
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such policy version",
            format!("the store holds no policy version `{number}`"),
        )
    };
    let wanted: i64 = number.parse().map_err(|_| not_found())?;
    let restored = stored::get(&state.store, wanted)
        .await?
        .ok_or_else(not_found)?;
    let before = current_version(&state).await?;
    if headers.contains_key(header::IF_MATCH) {
        check_if_match(&headers, before.number)?;
    }
    let replacement = PolicyReplacement {
        model: restored.model,
        rules: restored.rules,
        reason: Some(format!("restore of version {wanted}")),
    };
    store_version(
        &state,
        &context,
        &before,
        replacement,
        &format!("restored from version {wanted}"),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(model: &str, rules: &str) -> PolicyVersion {
        PolicyVersion {
            number: 3,
            model: model.to_owned(),
            rules: rules.to_owned(),
            created_at: 0,
            created_by: "admin".to_owned(),
            reason: "test".to_owned(),
        }
    }

    /// The audit summary names each rule added and removed, not comments.
    #[test]
    fn summary_lists_added_and_removed_rules() {
        let before = version("m", "# rules\np, a, x, read, allow\np, b, y, read, allow\n");
        let summary = change_summary(
            "policy replaced: version 4".to_owned(),
            &before,
            "m",
            "p, a, x, read, allow\n# new\np, c, z, export, allow\n",
        );
        assert_eq!(
            summary,
            "policy replaced: version 4; model unchanged; + p, c, z, export, allow; - p, b, y, read, allow"
        );
        let same = change_summary("h".to_owned(), &before, "m2", &before.rules);
        assert_eq!(same, "h; model changed; rules unchanged");
    }

    /// A long diff is cut, saying how many changes are left out.
    #[test]
    fn summary_is_bounded() {
        let before = version("m", "");
        let rules: String = (0..500)
            .map(|index| format!("p, role{index}, x, read, allow\n"))
            .collect();
        let summary = change_summary("h".to_owned(), &before, "m", &rules);
        assert!(summary.len() <= AUDIT_DIFF_CHARS + 20, "{}", summary.len());
        assert!(summary.ends_with("more"), "{summary}");
    }

    /// If-Match: required, exact, `*` not enough.
    #[test]
    fn if_match_names_the_current_version() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            check_if_match(&headers, 2).unwrap_err().status,
            StatusCode::PRECONDITION_REQUIRED
        );
        headers.insert(header::IF_MATCH, "\"policy-1\"".parse().unwrap());
        assert_eq!(
            check_if_match(&headers, 2).unwrap_err().status,
            StatusCode::PRECONDITION_FAILED
        );
        headers.insert(header::IF_MATCH, "*".parse().unwrap());
        assert_eq!(
            check_if_match(&headers, 2).unwrap_err().status,
            StatusCode::PRECONDITION_FAILED
        );
        headers.insert(
            header::IF_MATCH,
            "\"policy-1\", \"policy-2\"".parse().unwrap(),
        );
        assert!(check_if_match(&headers, 2).is_ok());
    }
}
