//! `GET /api/v1/datasets/{id}/versions` and
//! `POST /api/v1/datasets/{id}/versions/{n}/restore` (`publish`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Serialize;

use super::{
    Target, actor, authorize, dataset_of, note_changes, stored_definition, stored_or_problem,
};
use crate::http::context::RequestContext;
use crate::http::dataset_id::DatasetId;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::policy::Action;
use crate::store::publishing::VersionRow;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionList {
    /// Newest first; refused uploads have no number and status `failed`.
    pub versions: Vec<VersionRow>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Restored {
    /// The new version number, serving the rows of the restored one.
    pub version: i64,
    pub restored_from: i64,
}

/// A dataset's versions: number, when, by whom, rows, bytes, the file's
/// SHA-256 and name, status (`current`, `previous`, `failed`), and whether
/// its rows are still kept.
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{id}/versions",
    tag = "publishing",
    params(("id" = String, Path, description = "Dataset id")),
    responses(
        (status = 200, description = "The versions", body = VersionList),
        (status = 403, description = "The roles do not grant `publish`"),
        (status = 404, description = "No such dataset"),
    )
)]
pub async fn list_versions(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    DatasetId(id): DatasetId,
) -> AppResult<Json<VersionList>> {
    let stored = stored_or_problem(&state, &id).await?;
    let definition = stored_definition(&stored)?;
    let target = Target::Dataset {
        dataset: dataset_of(&stored, &definition),
    };
    authorize(&state, &context, &target, Action::Publish)?;
    let versions = state.store.dataset_versions(&id).await?;
    Ok(Json(VersionList { versions }))
}

/// Makes an earlier version current again, as a new version number (the
/// rows of the last `[publishing] keep_versions` versions are kept).
#[utoipa::path(
    post,
    path = "/api/v1/datasets/{id}/versions/{n}/restore",
    tag = "publishing",
    params(
        ("id" = String, Path, description = "Dataset id"),
        ("n" = i64, Path, description = "The version to restore"),
    ),
    responses(
        (status = 200, description = "Restored", body = Restored),
        (status = 403, description = "The roles do not grant `publish`"),
        (status = 404, description = "No such dataset, or that version's rows are no longer kept"),
    )
)]
pub async fn restore_version(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Path((id, number)): Path<(String, i64)>,
    headers: HeaderMap,
) -> AppResult<Json<Restored>> {
    let stored = stored_or_problem(&state, &id).await?;
    let definition = stored_definition(&stored)?;
    let target = Target::Dataset {
        dataset: dataset_of(&stored, &definition),
    };
    authorize(&state, &context, &target, Action::Publish)?;
    let by = actor(&context);
    let keep = state.settings.publishing.keep_versions;
    let Some(version) = state
        .store
        .restore_version(&id, number, Some(&by), keep)
        .await?
    else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "version-not-kept",
            "Version not kept",
            format!(
                "dataset `{id}` has no kept version {number}: see GET /api/v1/datasets/{id}/versions"
            ),
        ));
    };
    note_changes(
        &context,
        &headers,
        serde_json::json!({"restored_from": number, "version": version}),
    );
    state.refresh_catalog().await?;
    Ok(Json(Restored {
        version,
        restored_from: number,
    }))
}
