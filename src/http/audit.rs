//! The access log for auditors (`audit:read`): events with filters and cursor
//! pagination (JSON, or CSV streamed), statistics, and chain verification.
//! These reads are themselves recorded by the request middleware.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{
    AuditError, AuditQueryError, EventQuery, StatsQuery, event_csv_line, events_csv_header,
};
use crate::domain::client_text;
use crate::http::context::RequestContext;
use crate::http::guard::require;
use crate::http::problem::{AppResult, Problem};
use crate::http::state::AppState;
use crate::policy::Action;
use crate::store::StoreError;

/// Each route registered with its documentation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(stats))
        .routes(routes!(verify))
}

/// The query's pairs, strictly decoded: a filter value that is not UTF-8 or
/// holds a NUL would otherwise reach the audit store's SQL.
fn query_pairs(raw: Option<&str>) -> AppResult<Vec<(String, String)>> {
    Ok(client_text::query_pairs(raw)?)
}

impl From<AuditQueryError> for Problem {
    fn from(error: AuditQueryError) -> Problem {
        Problem::bad_request(
            "invalid-query",
            "Malformed query",
            format!("parameter `{}`: {}", error.parameter, error.message),
        )
    }
}

/// A log that cannot be read or written because of the store is a 503 like
/// any store outage; anything else a 500.
impl From<AuditError> for Problem {
    fn from(error: AuditError) -> Problem {
        match error {
            AuditError::Read(error) => StoreError::Sql(error).into(),
            AuditError::Unavailable(_) | AuditError::Stopped => {
                let request_id = crate::http::context::current_request()
                    .map(|request| request.request_id)
                    .unwrap_or_default();
                tracing::warn!(%request_id, %error, "audit log unavailable");
                Problem::unavailable("the access log cannot be used right now; try again shortly")
            }
        }
    }
}

/// Filters of the event list, for the API description.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EventParameters {
    subject: Option<String>,
    org: Option<String>,
    dataset: Option<String>,
    /// `allow` or `deny`.
    decision: Option<String>,
    /// The event's action: `read`, `export`, …, `publish`, `manage`,
    /// `classify` (every change of access level, visibility, personal data
    /// or views), `history`.
    action: Option<String>,
    status: Option<u16>,
    /// RFC 3339 time, inclusive.
    from: Option<String>,
    /// RFC 3339 time, exclusive.
    to: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<i64>,
    /// At most 1000 (default 100).
    limit: Option<u32>,
    /// `json` (default) or `csv` (streamed, every matching event).
    format: Option<String>,
}

/// Audit events, newest first, filtered; JSON pages or a streamed CSV.
#[utoipa::path(
    get,
    path = "/api/v1/audit/events",
    tag = "audit",
    params(EventParameters),
    responses(
        (status = 200, description = "A page of events (JSON) or every matching event (CSV)", body = crate::audit::EventPage),
        (status = 400, description = "Malformed filter"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "No audit:read permission"),
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> AppResult<Response> {
    require(&state, &context, Action::AuditRead)?;
    let mut pairs = query_pairs(raw_query.as_deref())?;
    let format = take(&mut pairs, "format");
    let csv = match format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(Problem::bad_request(
                "invalid-query",
                "Unsupported format",
                format!("format `{other}` is not `json` or `csv`"),
            ));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv")),
    };
    let query = EventQuery::from_params(&pairs)?;
    if !csv {
        let page = state.audit.list(&query).await?;
        return Ok(Json(page).into_response());
    }
    let header_line = events_csv_header();
    let events = state.audit.stream(query);
    let body = futures::stream::once(async move { Ok::<_, AuditError>(header_line.into_bytes()) })
        .chain(events.map(|event| event.map(|event| event_csv_line(&event).into_bytes())));
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"audit-events.csv\""),
    );
    Ok(response)
}

fn take(pairs: &mut Vec<(String, String)>, key: &str) -> Option<String> {
    let position = pairs.iter().position(|(name, _)| name == key)?;
    Some(pairs.remove(position).1)
}

/// Filters of the statistics, for the API description.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct StatsParameters {
    /// RFC 3339 time, inclusive.
    from: Option<String>,
    /// RFC 3339 time, exclusive.
    to: Option<String>,
    /// `true`: only the reads served of datasets holding personal data.
    personal_data: Option<bool>,
}

/// Counts of events by dataset, subject and organisation, decision, day,
/// organisation and purpose. With `personal_data=true`: only the reads
/// served of datasets holding personal data (what a DPO answers a data
/// subject or a supervisory authority with).
#[utoipa::path(
    get,
    path = "/api/v1/audit/stats",
    tag = "audit",
    params(StatsParameters),
    responses(
        (status = 200, description = "Request counts over the period", body = crate::audit::Stats),
        (status = 400, description = "Malformed time range"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "No audit:read permission"),
    ),
    security(("bearer" = []))
)]
pub async fn stats(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    RawQuery(raw_query): RawQuery,
) -> AppResult<Response> {
    require(&state, &context, Action::AuditRead)?;
    let mut query = StatsQuery::from_params(&query_pairs(raw_query.as_deref())?)?;
    if query.personal_data {
        // The datasets holding personal data now (the register says which).
        query.datasets = state
            .catalog
            .current()
            .entries()
            .iter()
            .filter(|entry| entry.definition.personal_data)
            .map(|entry| entry.id().to_owned())
            .collect();
    }
    Ok(Json(state.audit.stats(&query).await?).into_response())
}

/// Range of the verification, for the API description.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct VerifyParameters {
    /// First sequence number to check (default: the oldest kept).
    from: Option<i64>,
    /// Last sequence number to check (default: the head).
    to: Option<i64>,
}

/// Recomputes the hash chain and checks the signed checkpoints: the range
/// checked, the head, and the first broken entry with the reason.
#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    params(VerifyParameters),
    responses(
        (status = 200, description = "The verification report (`ok` false when the chain is broken)", body = crate::audit::Verification),
        (status = 400, description = "Malformed range"),
        (status = 401, description = "Not authenticated"),
        (status = 403, description = "No audit:read permission"),
    ),
    security(("bearer" = []))
)]
pub async fn verify(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    RawQuery(raw_query): RawQuery,
) -> AppResult<Response> {
    require(&state, &context, Action::AuditRead)?;
    let pairs = query_pairs(raw_query.as_deref())?;
    let bound = |key: &str| -> Result<Option<i64>, Problem> {
        match pairs.iter().find(|(name, _)| name == key) {
            None => Ok(None),
            Some((_, value)) => value.parse().map(Some).map_err(|_| {
                Problem::bad_request(
                    "invalid-query",
                    "Malformed query",
                    format!("parameter `{key}`: `{value}` is not a sequence number"),
                )
            }),
        }
    };
    let (from, to) = (bound("from")?, bound("to")?);
    if let Some((name, _)) = pairs
        .iter()
        .find(|(name, _)| name != "from" && name != "to")
    {
        return Err(Problem::bad_request(
            "invalid-query",
            "Malformed query",
            format!("unknown parameter `{name}`: use `from` and `to`"),
        ));
    }
    Ok(Json(state.audit.verify(from, to).await?).into_response())
}
