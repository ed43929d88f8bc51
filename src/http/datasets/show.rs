//! `GET /api/v1/datasets/{id}`: one catalogue entry.

use axum::extract::State;
use axum::{Extension, Json};

use super::{DatasetSummary, summarize};
use crate::http::context::RequestContext;
use crate::http::dataset_id::DatasetId;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;

/// Metadata, schema (the columns this caller may see), record count, last
/// update, links and licence of one dataset.
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{id}",
    tag = "catalogue",
    params(("id" = String, Path, description = "Dataset id")),
    responses(
        (status = 200, description = "Catalogue entry", body = DatasetSummary),
        (status = 400, description = "The id is not UTF-8 or holds a control character"),
        (status = 404, description = "No such dataset (or not visible to the caller)"),
        (status = 410, description = "Retired: the tombstone is at `/api/v1/datasets/{id}/definition` for callers who may manage it"),
    )
)]
pub async fn show_dataset(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    DatasetId(id): DatasetId,
) -> AppResult<Json<DatasetSummary>> {
    let catalog = state.catalog.current();
    let entry = catalog.get(&id);
    let summary = entry.and_then(|entry| summarize(&state.policy, &context.caller, entry));
    // A retired dataset is out of the catalogue: its tombstone answers 410
    // to whoever may know it exists (managers read it at `/definition`).
    let retired = match entry {
        None => crate::http::publishing::retired_dataset(&state, &context, &id).await,
        Some(_) => None,
    };
    context.note(|record| {
        record.dataset = Some(id.clone());
        record.action = Some(crate::audit::Action::Metadata);
        record.decision = Some(summary.is_some());
        record.rule = Some(
            if summary.is_some() {
                "metadata visible"
            } else if retired.is_some() {
                "retired dataset"
            } else {
                "not visible"
            }
            .to_owned(),
        );
    });
    match (summary, retired) {
        (Some(summary), _) => Ok(Json(summary)),
        (None, Some(gone)) => Err(gone),
        (None, None) => Err(Problem::dataset_not_found(&id)),
    }
}
