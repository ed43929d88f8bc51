//! `DELETE /api/v1/datasets/{id}`: retire a dataset (a tombstone: no data
//! served, metadata kept with who and when), or purge it; and
//! `POST /api/v1/datasets/{id}/restore`: serve a retired dataset again.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Target, actor, authorize, dataset_of, note_changes, stored_definition};
use crate::http::context::RequestContext;
use crate::http::dataset_id::DatasetId;
use crate::http::guard::require;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::policy::Action;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RetireParams {
    /// Administrators only: also drop the dataset's rows, versions and tombstone.
    #[serde(default)]
    pub purge: bool,
}

/// Retires a dataset (`manage`): its data answers 410, its metadata stays
/// as a tombstone with who retired it and when; an administrator can
/// restore it. `?purge=true` (administrators) removes it for good.
#[utoipa::path(
    delete,
    path = "/api/v1/datasets/{id}",
    tag = "publishing",
    params(("id" = String, Path, description = "Dataset id"), RetireParams),
    responses(
        (status = 204, description = "Retired (or purged)"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "The roles do not grant `manage` (or `admin` to purge)"),
        (status = 404, description = "No such dataset"),
        (status = 410, description = "Already retired (purge it, or restore it)"),
    )
)]
pub async fn retire_dataset(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    DatasetId(id): DatasetId,
    Query(params): Query<RetireParams>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let Some(stored) = state.store.stored_dataset(&id).await? else {
        return Err(Problem::dataset_not_found(&id));
    };
    if params.purge {
        require(&state, &context, Action::Admin)?;
        context.note(|record| record.dataset = Some(id.clone()));
        state.store.purge_dataset(&id).await?;
    } else {
        if stored.is_retired() {
            return Err(super::gone(&stored));
        }
        let definition = stored_definition(&stored)?;
        let target = Target::Dataset {
            dataset: dataset_of(&stored, &definition),
        };
        authorize(&state, &context, &target, Action::Manage)?;
        state.store.retire_dataset(&id, &actor(&context)).await?;
    }
    note_changes(
        &context,
        &headers,
        serde_json::json!({"retired": true, "purged": params.purge, "by": actor(&context)}),
    );
    state.refresh_catalog().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Serves a retired dataset again (administrators).
#[utoipa::path(
    post,
    path = "/api/v1/datasets/{id}/restore",
    tag = "publishing",
    params(("id" = String, Path, description = "Dataset id")),
    responses(
        (status = 204, description = "Served again"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "Not an administrator"),
        (status = 404, description = "No such dataset"),
        (status = 409, description = "Not retired"),
    )
)]
pub async fn restore_dataset(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    DatasetId(id): DatasetId,
    headers: HeaderMap,
) -> AppResult<Response> {
    require(&state, &context, Action::Admin)?;
    context.note(|record| record.dataset = Some(id.clone()));
    if state.store.stored_dataset(&id).await?.is_none() {
        return Err(Problem::dataset_not_found(&id));
    }
    if !state.store.unretire_dataset(&id).await? {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "not-retired",
            "Not retired",
            format!("dataset `{id}` is not retired"),
        ));
    }
    note_changes(&context, &headers, serde_json::json!({"restored": true}));
    state.refresh_catalog().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
