//! The publishing API: stewards and providers create datasets, edit and
//! retire them, upload new versions and restore earlier ones, under the
//! policy's `manage`, `classify` and `publish` actions, every request in the
//! audit chain.
//!
//! - `POST /datasets`, `GET /datasets/{id}/definition`, `PUT`/`PATCH`/`DELETE
//!   /datasets/{id}` ([`create`], [`definition`], [`retire`]): definitions as
//!   in `catalog/` files, changes only with `If-Match` (428 without, 412 when
//!   the definition changed meanwhile);
//! - `PUT /datasets/{id}/data` ([`upload`]): on a router of its own, with its
//!   own body limit and no request timeout;
//! - `GET /datasets/{id}/versions`, `POST /datasets/{id}/versions/{n}/restore`
//!   ([`versions`]).
//!
//! Every decision goes through [`authorize`] (the policy engine decides, this
//! module only asks), which notes it for the audit event.

pub mod create;
pub mod definition;
pub mod retire;
pub mod upload;
pub mod versions;

use axum::http::{HeaderMap, StatusCode, header};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::catalog::definition::DatasetDefinition;
use crate::catalog::publish::FieldError;
use crate::http::context::RequestContext;
use crate::http::problem::Problem;
use crate::http::state::AppState;
use crate::policy::{Action, DatasetRef, Decision};
use crate::store::datasets::StoredDataset;

/// The definition routes (the upload route is in [`upload_routes`]).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create::create_dataset))
        .routes(routes!(definition::show_definition))
        .routes(routes!(
            definition::replace_definition,
            definition::patch_definition,
            retire::retire_dataset
        ))
        .routes(routes!(retire::restore_dataset))
        .routes(routes!(versions::list_versions))
        .routes(routes!(versions::restore_version))
}

/// The upload route: mounted with its own body limit and no timeout.
pub fn upload_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload::upload_data))
}

/// The `ETag` of a stored definition: its SHA-256, quoted.
pub fn etag(stored: &StoredDataset) -> String {
    format!("\"{}\"", stored.definition_hash)
}

/// Who did it, for versions and tombstones: the subject, with the partner
/// client when there is one.
pub fn actor(context: &RequestContext) -> String {
    let caller = &context.caller;
    match &caller.client_id {
        Some(client) if client != &caller.subject => {
            format!("{} (client {client})", caller.subject)
        }
        _ => caller.subject.clone(),
    }
}

/// The stored dataset `id`: 404 when there is none, 410 when retired.
pub async fn stored_or_problem(state: &AppState, id: &str) -> Result<StoredDataset, Problem> {
    match state.store.stored_dataset(id).await? {
        None => Err(Problem::dataset_not_found(id)),
        Some(stored) if stored.is_retired() => Err(gone(&stored)),
        Some(stored) => Ok(stored),
    }
}

/// 410 for a retired dataset.
pub fn gone(stored: &StoredDataset) -> Problem {
    Problem::new(
        StatusCode::GONE,
        "dataset-retired",
        "Dataset retired",
        format!(
            "dataset `{}` was retired on {}: its data is no longer served",
            stored.id,
            stored.retired_at.as_deref().unwrap_or("an unknown date")
        ),
    )
}

/// 410 for a retired dataset the caller may know about (its tombstone's
/// metadata visibility decides, as for any entry); `None` otherwise (no such
/// dataset, not retired, or not visible to the caller: a 404 then).
pub async fn retired_dataset(
    state: &AppState,
    context: &RequestContext,
    id: &str,
) -> Option<Problem> {
    let stored = state.store.stored_dataset(id).await.ok()??;
    if !stored.is_retired() {
        return None;
    }
    let definition = stored_definition(&stored).ok()?;
    let dataset = dataset_of(&stored, &definition);
    state
        .policy
        .may_see(&context.caller.roles, &dataset)
        .then(|| gone(&stored))
}

/// The definition of a stored dataset.
pub fn stored_definition(stored: &StoredDataset) -> Result<DatasetDefinition, Problem> {
    serde_json::from_str(&stored.definition).map_err(Problem::internal)
}

/// What a publishing decision is about: a dataset of the catalogue, or a new
/// one (its creation) known by its publisher.
pub enum Target<'a> {
    Dataset { dataset: DatasetRef<'a> },
    New { id: &'a str, publisher: &'a str },
}

/// Asks the policy whether the caller may do `action` on `target`, notes the
/// decision for the audit event, and answers 404 (may not know the dataset
/// exists), 401 (anonymous) or 403 when refused.
pub fn authorize(
    state: &AppState,
    context: &RequestContext,
    target: &Target<'_>,
    action: Action,
) -> Result<Decision, Problem> {
    let caller = &context.caller;
    let (id, hidden, decision) = match target {
        Target::Dataset { dataset } => {
            let hidden = !state.policy.may_see(&caller.roles, dataset);
            (
                dataset.id,
                hidden,
                state.policy.decide(&caller.roles, dataset, action),
            )
        }
        Target::New { id, publisher } => (
            *id,
            false,
            state
                .policy
                .decide_for_publisher(&caller.roles, publisher, action),
        ),
    };
    let registered_elsewhere = caller
        .allowed_datasets
        .as_ref()
        .is_some_and(|allowed| !allowed.iter().any(|allowed| allowed == id));
    // Holding the action reveals the dataset's existence anyway.
    let hidden = hidden && !decision.allowed;
    let allowed = decision.allowed && !hidden && !registered_elsewhere;
    context.note(|record| {
        record.dataset = Some(id.to_owned());
        record.action = Some(action.into());
        record.decision = Some(allowed);
        record.rule = Some(if registered_elsewhere && decision.allowed {
            "client not registered for this dataset".to_owned()
        } else {
            decision.rule.clone()
        });
        // Publishing changes what is served: no change without its record.
        record.closed_data = true;
    });
    if allowed {
        return Ok(decision);
    }
    if hidden {
        return Err(Problem::dataset_not_found(id));
    }
    if caller.is_anonymous() {
        return Err(Problem::authentication_required(format!(
            "`{}` on dataset `{id}` needs credentials",
            action.as_str()
        )));
    }
    Err(Problem::forbidden(format!(
        "your roles do not grant `{}` on dataset `{id}`",
        action.as_str()
    )))
}

/// The dataset as the policy sees it, from the stored definition.
pub fn dataset_of<'a>(
    stored: &'a StoredDataset,
    definition: &'a DatasetDefinition,
) -> DatasetRef<'a> {
    DatasetRef {
        id: &stored.id,
        access: definition.access,
        metadata_visibility: definition.metadata_visibility,
    }
}

/// 428 without `If-Match`, 412 when it does not name the current definition.
pub fn check_if_match(headers: &HeaderMap, stored: &StoredDataset) -> Result<(), Problem> {
    let sent = headers
        .get(header::IF_MATCH)
        .map(|value| value.to_str().unwrap_or(""));
    check_etag(sent, stored)
}

/// The `If-Match` check on a value already read (a header, or the hidden
/// field of a page's form): 428 when there is none, 412 when it does not
/// name the current definition.
pub fn check_etag(sent: Option<&str>, stored: &StoredDataset) -> Result<(), Problem> {
    let Some(sent) = sent else {
        return Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            "Precondition required",
            "changing a definition needs `If-Match` with the ETag of the definition you edited (GET /api/v1/datasets/{id}/definition)",
        ));
    };
    let current = etag(stored);
    if sent.split(',').any(|tag| tag.trim() == current) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition-failed",
            "Precondition failed",
            "the definition changed since you read it: read it again, re-apply your change, and send the new ETag",
        )
        .with_header(header::ETAG, &current))
    }
}

/// 422 naming each invalid field of a definition.
pub fn invalid_definition(errors: Vec<FieldError>) -> Problem {
    let detail = errors
        .iter()
        .map(|error| {
            if error.field.is_empty() {
                error.reason.clone()
            } else {
                format!("{}: {}", error.field, error.reason)
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-definition",
        "Invalid definition",
        detail,
    )
    .with_extension("errors", errors)
}

/// Notes what the request changed for its audit event (the `changes`
/// column), with the reason given in `X-Change-Reason` when there is one.
pub fn note_changes(context: &RequestContext, headers: &HeaderMap, changes: serde_json::Value) {
    note_changes_because(context, change_reason(headers), changes);
}

/// Notes what the request changed for its audit event, with the reason
/// given (a header of the API, a field of a page's form).
pub fn note_changes_because(
    context: &RequestContext,
    reason: Option<String>,
    mut changes: serde_json::Value,
) {
    if let (Some(reason), Some(members)) = (reason, changes.as_object_mut()) {
        members.insert("reason".into(), serde_json::Value::String(reason));
    }
    let text = changes.to_string();
    context.note(|record| record.changes = Some(text));
}

/// The reason given in `X-Change-Reason`, if any (for the audit log).
pub fn change_reason(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-change-reason")
        .and_then(|value| value.to_str().ok())
        .and_then(reason_text)
}

/// A change reason as recorded: trimmed, at most 500 characters, none when blank.
pub fn reason_text(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(500).collect())
}
