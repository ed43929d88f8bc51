//! `POST /api/v1/datasets`: a new dataset from a definition (JSON, or YAML
//! with `Content-Type: application/yaml`), with an empty first version.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::{Target, authorize, invalid_definition, note_changes};
use crate::catalog::definition::AccessLevel;
use crate::catalog::publish::{
    DefinitionFormat, check_definition, create_dataset as create_dataset_in_store, created_fields,
    parse_body,
};
use crate::http::context::RequestContext;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::policy::Action;

/// The body format a `Content-Type` names.
pub fn body_format(headers: &HeaderMap) -> DefinitionFormat {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.contains("yaml") {
        DefinitionFormat::Yaml
    } else {
        DefinitionFormat::Json
    }
}

/// Creates a dataset from a definition as in a `catalog/` file (the schema
/// is required: there are no rows to infer it from). Needs `manage` on the
/// publisher's datasets, and `classify` too unless the access level is
/// `undecided` and there is no view. The dataset starts empty; upload its
/// rows with `PUT /api/v1/datasets/{id}/data`.
#[utoipa::path(
    post,
    path = "/api/v1/datasets",
    tag = "publishing",
    request_body(content = Object, description = "A dataset definition (JSON or YAML)", content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `Location` names it, `ETag` its definition", body = Object),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "The roles do not grant `manage` (or `classify`) on this publisher's datasets"),
        (status = 409, description = "A dataset with this id exists"),
        (status = 422, description = "Invalid definition: `errors` names each invalid field"),
    )
)]
pub async fn create_dataset(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let value = parse_body(&body, body_format(&headers))
        .map_err(|error| invalid_definition(vec![error]))?;
    let definition = check_definition(&value).map_err(invalid_definition)?;
    let target = Target::New {
        id: &definition.id,
        publisher: &definition.publisher,
    };
    authorize(&state, &context, &target, Action::Manage)?;
    if definition.access != AccessLevel::Undecided || !definition.views.is_empty() {
        authorize(&state, &context, &target, Action::Classify)?;
    }
    let exists = || {
        Problem::new(
            StatusCode::CONFLICT,
            "dataset-exists",
            "Dataset exists",
            format!("there is already a dataset `{}`", definition.id),
        )
    };
    if state.store.stored_dataset(&definition.id).await?.is_some() {
        return Err(exists());
    }
    // Another creation of the same id may land between the check and here.
    let hash = create_dataset_in_store(&state.store, &definition)
        .await?
        .ok_or_else(exists)?;
    let created = created_fields(&definition);
    note_changes(
        &context,
        &headers,
        serde_json::json!({"created": true, "fields": created}),
    );
    state.refresh_catalog().await?;
    let location = format!("/api/v1/datasets/{}", definition.id);
    let mut response = (StatusCode::CREATED, Json(&definition)).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = location.parse() {
        headers.insert(header::LOCATION, value);
    }
    if let Ok(value) = format!("\"{hash}\"").parse() {
        headers.insert(header::ETAG, value);
    }
    Ok(response)
}
