//! `GET /api/v1/datasets/{id}/definition`, `PUT` and `PATCH
//! /api/v1/datasets/{id}`: read and change a definition, never losing
//! another steward's change (`If-Match`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value as Json_;

use super::create::body_format;
use super::{
    Target, authorize, change_reason, check_etag, dataset_of, etag, gone, invalid_definition,
    note_changes_because, stored_definition, stored_or_problem,
};
use crate::catalog::definition::DatasetDefinition;
use crate::catalog::publish::{
    FieldError, changed_fields, check_definition, classifies, parse_body,
    replace_definition as replace_definition_in_store,
};
use crate::http::context::RequestContext;
use crate::http::dataset_id::DatasetId;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::policy::Action;

fn with_etag(body: &impl serde::Serialize, tag: &str, status: StatusCode) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = tag.parse() {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// The full definition (views and row filters included), for callers who
/// may manage the dataset, with its `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/datasets/{id}/definition",
    tag = "publishing",
    params(("id" = String, Path, description = "Dataset id")),
    responses(
        (status = 200, description = "The definition; `ETag` to send back in `If-Match`. A retired dataset's (its tombstone) also has `retired_at` and `retired_by`", body = Object),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "The roles do not grant `manage`"),
        (status = 404, description = "No such dataset (or not visible to the caller)"),
        (status = 410, description = "Retired, and the caller may not manage it"),
    )
)]
pub async fn show_definition(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    DatasetId(id): DatasetId,
) -> AppResult<Response> {
    let stored = state
        .store
        .stored_dataset(&id)
        .await?
        .ok_or_else(|| Problem::dataset_not_found(&id))?;
    let definition = stored_definition(&stored)?;
    let dataset = dataset_of(&stored, &definition);
    let target = Target::Dataset { dataset };
    if !stored.is_retired() {
        authorize(&state, &context, &target, Action::Manage)?;
        return Ok(with_etag(&definition, &etag(&stored), StatusCode::OK));
    }
    // A tombstone: who retired it and when, for those who may manage the
    // publisher's datasets (a retired dataset has left the catalogue's
    // groups); a 410 for the others who may know it exists, else a 404.
    let tombstone_target = Target::New {
        id: &stored.id,
        publisher: &definition.publisher,
    };
    if authorize(&state, &context, &tombstone_target, Action::Manage).is_err() {
        return Err(if state.policy.may_see(&context.caller.roles, &dataset) {
            gone(&stored)
        } else {
            Problem::dataset_not_found(&id)
        });
    }
    let mut tombstone = serde_json::to_value(&definition).map_err(Problem::internal)?;
    if let Some(members) = tombstone.as_object_mut() {
        members.insert("retired_at".into(), stored.retired_at.clone().into());
        members.insert("retired_by".into(), stored.retired_by.clone().into());
    }
    Ok(with_etag(&tombstone, &etag(&stored), StatusCode::OK))
}

/// Replaces a definition. Needs `manage`, and `classify` when the access
/// level, metadata visibility, personal data flag or views change; `If-Match`
/// with the current `ETag`. A schema change of a dataset that has rows must
/// keep how they are stored.
#[utoipa::path(
    put,
    path = "/api/v1/datasets/{id}",
    tag = "publishing",
    params(
        ("id" = String, Path, description = "Dataset id"),
        ("If-Match" = String, Header, description = "The ETag of the definition being replaced"),
        ("X-Change-Reason" = Option<String>, Header, description = "Why, for the audit log"),
    ),
    request_body(content = Object, description = "The whole definition (JSON or YAML)", content_type = "application/json"),
    responses(
        (status = 200, description = "The new definition and its `ETag`", body = Object),
        (status = 403, description = "The roles do not grant `manage` (or `classify` for the fields changed)"),
        (status = 404, description = "No such dataset"),
        (status = 412, description = "The definition changed since the ETag was read"),
        (status = 422, description = "Invalid definition, or an incompatible schema change"),
        (status = 428, description = "`If-Match` missing"),
    )
)]
pub async fn replace_definition(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    DatasetId(id): DatasetId,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let value = parse_body(&body, body_format(&headers))
        .map_err(|error| invalid_definition(vec![error]))?;
    change(state, context, id, headers, |_| Ok(value)).await
}

/// Changes some fields of a definition: a JSON Merge Patch (RFC 7396,
/// `application/merge-patch+json`). Rights and `If-Match` as for `PUT`.
#[utoipa::path(
    patch,
    path = "/api/v1/datasets/{id}",
    tag = "publishing",
    params(
        ("id" = String, Path, description = "Dataset id"),
        ("If-Match" = String, Header, description = "The ETag of the definition being changed"),
        ("X-Change-Reason" = Option<String>, Header, description = "Why, for the audit log"),
    ),
    request_body(content = Object, description = "A JSON Merge Patch of the definition", content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "The new definition and its `ETag`", body = Object),
        (status = 403, description = "The roles do not grant `manage` (or `classify` for the fields changed)"),
        (status = 404, description = "No such dataset"),
        (status = 412, description = "The definition changed since the ETag was read"),
        (status = 422, description = "Invalid result, or an incompatible schema change"),
        (status = 428, description = "`If-Match` missing"),
    )
)]
pub async fn patch_definition(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    DatasetId(id): DatasetId,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let patch = parse_body(&body, super::create::body_format(&headers))
        .map_err(|error| invalid_definition(vec![error]))?;
    change(state, context, id, headers, move |current| {
        let mut target = serde_json::to_value(current).map_err(Problem::internal)?;
        merge_patch(&mut target, &patch);
        Ok(target)
    })
    .await
}

/// RFC 7396: objects merge member by member, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Json_, patch: &Json_) {
    let Json_::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Json_::Object(Default::default());
    }
    if let Json_::Object(existing) = target {
        for (name, value) in members {
            if value.is_null() {
                existing.remove(name);
            } else {
                merge_patch(existing.entry(name.clone()).or_insert(Json_::Null), value);
            }
        }
    }
}

async fn change(
    state: AppState,
    context: RequestContext,
    id: String,
    headers: HeaderMap,
    edit: impl FnOnce(&DatasetDefinition) -> Result<Json_, Problem>,
) -> AppResult<Response> {
    let if_match = headers
        .get(header::IF_MATCH)
        .map(|value| value.to_str().unwrap_or(""));
    let changed = change_definition(
        &state,
        &context,
        &id,
        if_match,
        change_reason(&headers),
        edit,
    )
    .await?;
    Ok(with_etag(
        &changed.definition,
        &changed.etag,
        StatusCode::OK,
    ))
}

/// A definition as changed, with its new `ETag`.
pub struct Changed {
    pub definition: DatasetDefinition,
    pub etag: String,
}

/// Changes the definition of dataset `id` with `edit` (given the current
/// definition, the new one as JSON): `manage` needed, `classify` too when a
/// classification field changes; `if_match` must name the current
/// definition (428 without, 412 when stale); every field checked (422); the
/// changed fields and `reason` noted for the audit event. The API's `PUT`
/// and `PATCH` and the stewards' edit page both change definitions here.
pub async fn change_definition(
    state: &AppState,
    context: &RequestContext,
    id: &str,
    if_match: Option<&str>,
    reason: Option<String>,
    edit: impl FnOnce(&DatasetDefinition) -> Result<Json_, Problem>,
) -> Result<Changed, Problem> {
    let stored = stored_or_problem(state, id).await?;
    let current = stored_definition(&stored)?;
    let target = Target::Dataset {
        dataset: dataset_of(&stored, &current),
    };
    authorize(state, context, &target, Action::Manage)?;
    check_etag(if_match, &stored)?;
    let value = edit(&current)?;
    let mut definition = check_definition(&value).map_err(invalid_definition)?;
    if definition.id != id {
        return Err(invalid_definition(vec![FieldError {
            field: "id".into(),
            reason: format!("a dataset's id cannot change (`{id}`)"),
        }]));
    }
    // A file dataset keeps its source file; an API one has none.
    if definition.source.file.is_none() {
        definition.source.file = current.source.file.clone();
    }
    let changes = changed_fields(&current, &definition);
    if classifies(&changes) {
        authorize(state, context, &target, Action::Classify)?;
    }
    let hash = replace_definition_in_store(&state.store, &stored, &definition)
        .await?
        .map_err(invalid_definition)?;
    note_changes_because(context, reason, serde_json::json!({"fields": changes}));
    state.refresh_catalog().await?;
    Ok(Changed {
        definition,
        etag: format!("\"{hash}\""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7396 appendix A, the cases that matter here.
    #[test]
    fn merges_patches() {
        let cases = [
            (r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#),
            (r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#),
            (r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#),
            (
                r#"{"a":{"b":"c"}}"#,
                r#"{"a":{"b":"d","c":null}}"#,
                r#"{"a":{"b":"d"}}"#,
            ),
            (r#"["a"]"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
        ];
        for (target, patch, expected) in cases {
            let mut target: Json_ = serde_json::from_str(target).unwrap();
            merge_patch(&mut target, &serde_json::from_str(patch).unwrap());
            assert_eq!(
                target,
                serde_json::from_str::<Json_>(expected).unwrap(),
                "{patch}"
            );
        }
    }
}
