//! The outermost layer, in front of every route. It gives each request its
//! id (the `X-Request-Id` of every response, the `request_id` of every
//! problem document and audit event); refuses what is too large before
//! anything reads it, with a problem document and an audit event (a target
//! longer than `server.max_uri_bytes`: 414; headers over
//! `server.max_header_bytes`: 431; a declared body over
//! `server.max_body_bytes`: 413); and turns the plain-text or empty error
//! answers of the framework and the layers inside (an extractor's rejection,
//! a chunked body read past its limit, a timeout) into problem documents.
//!
//! hyper's own limits stay behind these as a backstop: a target over 64 KiB,
//! headers over about 400 KiB or more than 100 headers are answered by hyper
//! itself, an empty 414 or 431, before any of this runs (no request id, no
//! audit event, since no request was handed over).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::context::{self, RequestInfo};
use super::observe::{self, RequestEnd, RequestSummary};
use super::problem::Problem;
use super::request::refusal_event;
use super::state::AppState;
use crate::config::ServerSettings;
use crate::domain::text;

/// Largest plain-text error body quoted in the problem that replaces it.
const MAX_QUOTED_BYTES: usize = 2048;

/// The middleware in front of every route.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Counted while answered: the audit writer waits for the events of
    // requests on their way when many are.
    let _in_flight = state.audit.request_started();
    let settings = &state.settings.server;
    let request_id = context::request_id_from(request.headers());
    let path = request.uri().path();
    let info = RequestInfo {
        request_id: request_id.clone(),
        // A refused path can be long: the problem quotes what fits the limit.
        path: text::cut(path, settings.max_uri_bytes).to_owned(),
    };
    request.extensions_mut().insert(info.clone());
    let mut response = context::scope(info, async {
        let body_limit =
            if super::publishing::upload::is_upload(&request) || crate::web::is_upload(&request) {
                state.settings.publishing.max_upload_bytes
            } else {
                u64::try_from(settings.max_body_bytes).unwrap_or(u64::MAX)
            };
        match oversize(&request, settings, body_limit) {
            Some((problem, rule)) => {
                let method = request.method().as_str().to_owned();
                let event =
                    refusal_event(&state, &request, &request_id, problem.status, rule, started);
                drop(request);
                // The refusal is answered even if the event cannot be
                // written: it serves no data.
                if let Err(error) = state.audit.record(event).await {
                    tracing::error!(%request_id, %error, "audit log unavailable");
                }
                let summary = RequestSummary {
                    method,
                    route: observe::UNMATCHED.to_owned(),
                    request_id: request_id.clone(),
                    started,
                };
                let end = RequestEnd {
                    status: problem.status.as_u16(),
                    subject: crate::auth::Caller::anonymous().subject,
                    ..RequestEnd::default()
                };
                observe::finish(&summary, &end);
                problem.into_response()
            }
            None => as_problem(next.run(request).await).await,
        }
    })
    .await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The problem and the audit rule for a request over one of the limits.
fn oversize(
    request: &Request,
    settings: &ServerSettings,
    body_limit: u64,
) -> Option<(Problem, String)> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > settings.max_uri_bytes {
        let limit = settings.max_uri_bytes;
        return Some((
            Problem::new(
                StatusCode::URI_TOO_LONG,
                "uri-too-long",
                "URI too long",
                format!(
                    "the path and query string take {target} bytes, more than the {limit} accepted"
                ),
            )
            .with_hint("send fewer or shorter parameters"),
            format!("server.max_uri_bytes: target of {target} bytes over {limit}"),
        ));
    }
    let headers: usize = request
        .headers()
        .iter()
        // As on the wire: `name: value` and the line end.
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers > settings.max_header_bytes {
        let limit = settings.max_header_bytes;
        return Some((
            Problem::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request header fields too large",
                format!("the request headers take {headers} bytes, more than the {limit} accepted"),
            ),
            format!("server.max_header_bytes: headers of {headers} bytes over {limit}"),
        ));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(0);
    // Uploads of dataset versions have a limit of their own.
    let limit = body_limit;
    if declared > limit {
        return Some((
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Content too large",
                format!("the request body takes {declared} bytes, more than the {limit} accepted"),
            ),
            format!(
                "body of {declared} bytes over the limit of {limit} (server.max_body_bytes, or publishing.max_upload_bytes for uploads)"
            ),
        ));
    }
    None
}

/// An error answer in plain text or without a body becomes a problem
/// document with the same status and headers; its text, if any, becomes the
/// detail (except for server errors, whose text is logged, never shown).
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|value| value.as_bytes().starts_with(b"text/plain"));
    if !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let quoted = axum::body::to_bytes(body, MAX_QUOTED_BYTES)
        .await
        .map(|bytes| text::from_bytes(&bytes, MAX_QUOTED_BYTES))
        .unwrap_or_default();
    let quoted = quoted.trim();
    let (slug, generic) = kind_of(status);
    let detail = if quoted.is_empty() || status.is_server_error() {
        if !quoted.is_empty() {
            tracing::error!(%status, error = %quoted, "error answer replaced by a problem document");
        }
        generic.to_owned()
    } else {
        quoted.to_owned()
    };
    let mut problem = Problem::new(
        status,
        slug,
        status.canonical_reason().unwrap_or("Error"),
        detail,
    );
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers.push((name.clone(), value.clone()));
        }
    }
    problem.into_response()
}

/// The problem type and a generic detail for an error status.
fn kind_of(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("bad-request", "the request is malformed"),
        StatusCode::NOT_FOUND => ("not-found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "this method is not allowed on this resource",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("body-too-large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported-media-type",
            "the request body is not of a type this resource accepts",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ("unprocessable", "the request body cannot be used"),
        StatusCode::SERVICE_UNAVAILABLE => (
            "service-unavailable",
            "the gateway cannot answer right now; try again shortly",
        ),
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => {
            ("timeout", "the request took too long")
        }
        status if status.is_server_error() => (
            "internal-error",
            "the gateway could not answer; the incident is logged with this request id",
        ),
        _ => ("client-error", "the request cannot be served"),
    }
}
