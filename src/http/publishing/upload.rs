//! `PUT /api/v1/datasets/{id}/data`: a new version of a dataset's rows.
//!
//! The body streams to a temporary file, hashed (SHA-256) as it comes; the
//! file is then validated row by row against the schema (every bad row
//! counted, the first 100 reported) and only a clean file is imported, by the
//! same all-or-nothing swap as `passerelle import`. Nothing is published when
//! the client goes away, the file is refused, or another upload of the same
//! dataset is running (409): the temporary file and any half-written table
//! are removed, the previous version stays served.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{
    Target, actor, authorize, change_reason, dataset_of, note_changes_because, stored_definition,
    stored_or_problem,
};
use crate::catalog::definition::DatasetDefinition;
use crate::catalog::publish::{UploadOptions, UploadReport, open_upload, validate};
use crate::domain::Schema;
use crate::http::context::RequestContext;
use crate::http::dataset_id::DatasetId;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::policy::Action;
use crate::store::datasets::StoredDataset;
use crate::store::datasets::{ImportOutcome, NewVersion};
use crate::store::publishing::VersionFacts;

/// Datasets with an upload running in this process: a second upload of the
/// same dataset is refused (409), never mixed with the first.
#[derive(Debug, Clone, Default)]
pub struct UploadLocks(Arc<Mutex<HashSet<String>>>);

/// Holds a dataset's upload slot until dropped (the handler ended, or the
/// client went away and the request was dropped).
pub struct UploadSlot {
    locks: UploadLocks,
    id: String,
}

impl UploadLocks {
    /// The dataset's slot, or `None` when an upload of it is running.
    pub fn acquire(&self, id: &str) -> Option<UploadSlot> {
        let mut running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        running.insert(id.to_owned()).then(|| UploadSlot {
            locks: self.clone(),
            id: id.to_owned(),
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        self.locks
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// True for a request to the upload route (`PUT /api/v1/datasets/{id}/data`),
/// which has its own body limit (`[publishing] max_upload_bytes`).
pub fn is_upload<B>(request: &axum::http::Request<B>) -> bool {
    let path = request.uri().path();
    request.method() == axum::http::Method::PUT
        && path
            .strip_prefix("/api/v1/datasets/")
            .and_then(|rest| rest.strip_suffix("/data"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// Validate and report; publish nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// `csv` or `geojson` (else from `Content-Type`, then the definition).
    pub format: Option<String>,
    /// CSV separator: `,`, `;` or `tab` (else the definition's, else detected).
    pub delimiter: Option<String>,
    /// `utf-8` or `windows-1252` (else the definition's, else detected).
    pub encoding: Option<String>,
    /// The file's name, recorded with the version.
    pub file_name: Option<String>,
}

/// What an upload published (or, with `dry_run`, would publish).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadAnswer {
    /// The new version; null for a dry run.
    pub version: Option<i64>,
    pub rows: u64,
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    pub dry_run: bool,
    pub report: UploadReport,
}

/// Uploads a new version of the rows (`publish`): `text/csv` (dialect from
/// the query or the definition) or `application/geo+json`, chunked or not.
/// Every row is checked against the schema; a file with errors is refused
/// (422, with the number of bad rows and the first 100 errors) and nothing
/// is published. Size limit: `[publishing] max_upload_bytes` (413).
#[utoipa::path(
    put,
    path = "/api/v1/datasets/{id}/data",
    tag = "publishing",
    params(("id" = String, Path, description = "Dataset id"), UploadParams),
    request_body(content = String, description = "The file", content_type = "text/csv"),
    responses(
        (status = 200, description = "Published (or validated, for a dry run)", body = UploadAnswer),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "The roles do not grant `publish`"),
        (status = 404, description = "No such dataset"),
        (status = 409, description = "Another upload of this dataset is running"),
        (status = 413, description = "Larger than `[publishing] max_upload_bytes`"),
        (status = 422, description = "Rows that do not fit the schema, or an unreadable file: the report says which"),
    )
)]
pub async fn upload_data(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    Extension(locks): Extension<UploadLocks>,
    DatasetId(id): DatasetId,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Json<UploadAnswer>> {
    let stored = stored_or_problem(&state, &id).await?;
    let definition = stored_definition(&stored)?;
    let target = Target::Dataset {
        dataset: dataset_of(&stored, &definition),
    };
    authorize(&state, &context, &target, Action::Publish)?;
    let Some(_slot) = locks.acquire(&id) else {
        return Err(upload_running(&id));
    };
    let received = receive(body.into_data_stream(), body_error).await?;
    let options = UploadOptions {
        format: params
            .format
            .clone()
            .or_else(|| format_of_content_type(&headers)),
        delimiter: params.delimiter.clone(),
        encoding: params.encoding.clone(),
    };
    let upload = Upload {
        path: received.file.path(),
        bytes: received.bytes,
        sha256: &received.sha256,
        file_name: params.file_name.as_deref(),
        options,
        dry_run: params.dry_run,
    };
    let answer = check_and_publish(
        &state,
        &context,
        &stored,
        &definition,
        upload,
        change_reason(&headers),
    )
    .await?;
    if !answer.report.is_clean() {
        return Err(invalid_upload(answer.report));
    }
    Ok(Json(answer))
}

/// 409 while another upload of dataset `id` runs.
pub fn upload_running(id: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "upload-running",
        "Upload running",
        format!("another upload of dataset `{id}` is running: try again when it ends"),
    )
    .with_header(header::RETRY_AFTER, "5")
}

/// 422 for a file that cannot be published, with its report.
pub fn invalid_upload(report: UploadReport) -> Problem {
    let detail = match &report.file_error {
        Some(reason) => format!("the file cannot be read: {reason}; nothing was published"),
        None => format!(
            "{} row(s) do not fit the schema; nothing was published",
            report.bad_rows
        ),
    };
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-upload",
        "Invalid upload",
        detail,
    )
    .with_extension("report", &report)
}

/// A received file, and how to read and treat it.
pub struct Upload<'a> {
    pub path: &'a std::path::Path,
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: &'a str,
    pub file_name: Option<&'a str>,
    pub options: UploadOptions,
    /// Validate and report; publish nothing.
    pub dry_run: bool,
}

/// Checks every row of a received file against the dataset's schema and,
/// unless it is a dry run or a row is bad, publishes it as a new version;
/// the facts (rows, bad rows, bytes, hash, version) and `reason` are noted
/// for the audit event, a refused file is recorded as a failed version. The
/// caller was authorised for `publish` and holds the dataset's upload slot.
/// A file with errors is an answer whose report is not clean (the API turns
/// it into a 422): the API's upload and the stewards' upload page both
/// publish here.
///
/// A file to publish is read once: it is imported while its rows are
/// checked, the import stopping (and nothing landing) at the first bad row.
/// Only then is the file read again, to count every bad row and report the
/// first ones. A dry run only checks.
pub async fn check_and_publish(
    state: &AppState,
    context: &RequestContext,
    stored: &StoredDataset,
    definition: &DatasetDefinition,
    upload: Upload<'_>,
    reason: Option<String>,
) -> Result<UploadAnswer, Problem> {
    let schema: Schema = serde_json::from_str(&stored.schema).map_err(Problem::internal)?;
    let id = stored.id.as_str();
    let path = upload.path.to_owned();
    let opened_definition = definition.clone();
    let options = upload.options.clone();
    let opened =
        tokio::task::spawn_blocking(move || open_upload(&opened_definition, &path, &options))
            .await
            .map_err(Problem::internal)?;
    let (report, published) = match opened {
        Err(reason) => (UploadReport::unreadable(reason), None),
        Ok(source) if upload.dry_run => (validate_off_workers(source, schema.clone()).await?, None),
        Ok(source) => {
            let new = NewVersion {
                id,
                schema: &schema,
                definition: &stored.definition,
                definition_hash: &stored.definition_hash,
                source_hash: upload.sha256,
                origin: &stored.origin,
            };
            let imported = match source.rows(&schema) {
                Ok(rows) => state.store.import_rows(new, rows, 1).await?,
                Err(_) => ImportOutcome::Rejected(Vec::new()),
            };
            match imported {
                ImportOutcome::Imported {
                    version,
                    table_name,
                    record_count,
                } => (
                    UploadReport::clean(u64::try_from(record_count).unwrap_or(0)),
                    Some((version, table_name)),
                ),
                ImportOutcome::Rejected(_) => {
                    let report = validate_off_workers(source, schema.clone()).await?;
                    if report.is_clean() {
                        return Err(Problem::internal(
                            "the import refused a file whose rows all fit the schema",
                        ));
                    }
                    (report, None)
                }
            }
        }
    };
    let by = actor(context);
    let facts = VersionFacts {
        dataset_id: id,
        created_by: Some(&by),
        rows: i64::try_from(report.valid_rows).unwrap_or(i64::MAX),
        bytes: Some(i64::try_from(upload.bytes).unwrap_or(i64::MAX)),
        sha256: Some(upload.sha256),
        file_name: upload.file_name,
    };
    let mut upload_facts = serde_json::json!({
        "dry_run": upload.dry_run,
        "rows": report.valid_rows,
        "bad_rows": report.bad_rows,
        "bytes": upload.bytes,
        "sha256": upload.sha256,
        "file_name": upload.file_name,
    });
    let answer = |version: Option<i64>, report: UploadReport| UploadAnswer {
        version,
        rows: report.valid_rows,
        bytes: upload.bytes,
        sha256: upload.sha256.to_owned(),
        dry_run: upload.dry_run,
        report,
    };
    let Some((version, table)) = published else {
        note_changes_because(context, reason, upload_facts);
        if !upload.dry_run {
            state.store.record_failed_version(&facts).await?;
        }
        return Ok(answer(None, report));
    };
    upload_facts["version"] = serde_json::json!(version);
    note_changes_because(context, reason, upload_facts);
    state
        .store
        .record_published_version(
            &facts,
            version,
            &table,
            state.settings.publishing.keep_versions,
        )
        .await?;
    state.refresh_catalog().await?;
    Ok(answer(Some(version), report))
}

/// [`validate`] on a blocking thread: parsing and checking every row is
/// CPU work, kept off the async workers.
async fn validate_off_workers(
    source: crate::catalog::ingest::Source,
    schema: Schema,
) -> Result<UploadReport, Problem> {
    tokio::task::spawn_blocking(move || validate(&source, &schema))
        .await
        .map_err(Problem::internal)
}

fn format_of_content_type(headers: &HeaderMap) -> Option<String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)?
        .to_str()
        .ok()?
        .to_ascii_lowercase();
    if content_type.contains("geo+json") || content_type.contains("application/json") {
        Some("geojson".into())
    } else if content_type.contains("csv") {
        Some("csv".into())
    } else {
        None
    }
}

/// A received file, written to a temporary file (removed when dropped).
pub struct Received {
    pub file: tempfile::NamedTempFile,
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// Streams a body (or a form's file field) to a temporary file, hashing
/// it; a read error becomes the problem `failed` makes of it (413 past the
/// body limit, 400 when the client breaks off).
pub async fn receive<E>(
    stream: impl futures::Stream<Item = Result<bytes::Bytes, E>>,
    failed: impl Fn(&E) -> Problem,
) -> Result<Received, Problem> {
    let file = tempfile::NamedTempFile::new().map_err(Problem::internal)?;
    let mut writer = tokio::fs::File::from_std(file.reopen().map_err(Problem::internal)?);
    let mut hasher = Sha256::new();
    let mut bytes: u64 = 0;
    let mut stream = std::pin::pin!(stream);
    loop {
        let chunk = match stream.try_next().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => return Err(failed(&error)),
        };
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        writer.write_all(&chunk).await.map_err(Problem::internal)?;
    }
    writer.flush().await.map_err(Problem::internal)?;
    drop(writer);
    Ok(Received {
        file,
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// The problem for a body that could not be read to its end.
pub fn body_error(error: &axum::Error) -> Problem {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    if text.contains("length limit exceeded") {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload-too-large",
            "Upload too large",
            "the file is larger than the gateway accepts (`[publishing] max_upload_bytes`)",
        )
    } else {
        Problem::bad_request(
            "upload-interrupted",
            "Upload interrupted",
            format!("the body could not be read to its end ({text}); nothing was published"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One upload per dataset at a time; the slot frees itself when dropped.
    #[test]
    fn one_upload_per_dataset() {
        let locks = UploadLocks::default();
        let first = locks.acquire("a").unwrap();
        assert!(locks.acquire("a").is_none());
        assert!(locks.acquire("b").is_some());
        drop(first);
        assert!(locks.acquire("a").is_some());
    }
}
