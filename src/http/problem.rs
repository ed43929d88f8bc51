//! The one error type of the HTTP edge: RFC 9457 problem documents, with the
//! members PostgREST clients display (`code`, `message`, `details`, `hint`)
//! and the request id. Anything unexpected becomes a logged 500 that reveals
//! nothing.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::context::current_request;
use crate::domain::text;
use crate::query::QueryError;
use crate::store::StoreError;

/// The body of an `application/problem+json` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemDocument {
    /// A URI reference naming the kind of problem (`/problems/<kind>`).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request path.
    pub instance: String,
    pub request_id: String,
    /// PostgREST's error code (`42703`, `PGRST100`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// PostgREST's message: the same text as `detail`.
    pub message: String,
    pub details: Option<String>,
    pub hint: Option<String>,
}

/// The kind of problem a response carries (a response extension), so that
/// the audit event of a refusal can name it when no layer noted a reason.
#[derive(Debug, Clone, Copy)]
pub struct ProblemKind(pub &'static str);

/// A refusal or failure, rendered as a problem document.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: String,
    pub detail: String,
    pub code: Option<String>,
    pub details: Option<String>,
    pub hint: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Extension members (RFC 9457 §3.2) added to the document, e.g. the
    /// invalid fields of a definition or the report of a refused upload.
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// What handlers return.
pub type AppResult<T> = Result<T, Problem>;

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            status,
            slug,
            title: title.into(),
            detail: detail.into(),
            code: None,
            details: None,
            hint: None,
            headers: Vec::new(),
            extensions: serde_json::Map::new(),
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Problem {
        self.code = Some(code.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }

    /// Adds an extension member; the standard members keep their values.
    pub fn with_extension(mut self, name: &str, value: impl Serialize) -> Problem {
        if let Ok(value) = serde_json::to_value(value) {
            self.extensions.insert(name.to_owned(), value);
        }
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: &str) -> Problem {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// 404 that says no more than "no such dataset" (used for datasets the
    /// caller may not know about too).
    pub fn dataset_not_found(id: &str) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "dataset-not-found",
            "Dataset not found",
            format!("there is no dataset `{id}`"),
        )
        .with_code("PGRST205")
    }

    /// 401 for a dataset that needs an identity the request does not carry.
    pub fn authentication_required(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "authentication-required",
            "Authentication required",
            detail,
        )
        .with_header(header::WWW_AUTHENTICATE, "Bearer")
    }

    /// 403 for an identity the policy does not allow.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail).with_code("42501")
    }

    pub fn bad_request(slug: &'static str, title: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, slug, title, detail)
    }

    /// A 500 that reveals nothing; the cause is logged with the request id.
    pub fn internal(error: impl std::fmt::Display) -> Problem {
        let request_id = current_request()
            .map(|request| request.request_id)
            .unwrap_or_default();
        tracing::error!(%request_id, %error, "internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal error",
            "the gateway could not answer; the incident is logged with this request id",
        )
    }

    /// 503 for a store that cannot serve right now (down, unreachable, its
    /// pool exhausted): worth retrying shortly. The cause is logged with the
    /// request id. `code` is PostgREST's for the same condition.
    pub fn store_unavailable(code: &str, error: impl std::fmt::Display) -> Problem {
        let request_id = current_request()
            .map(|request| request.request_id)
            .unwrap_or_default();
        tracing::warn!(%request_id, %error, "store unavailable");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "Service unavailable",
            "the data store does not answer right now; try again shortly",
        )
        .with_code(code)
        .with_header(header::RETRY_AFTER, "1")
    }

    /// 503 when the service cannot answer safely (audit log down).
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Service unavailable",
            detail,
        )
        .with_header(header::RETRY_AFTER, "5")
    }
}

impl From<QueryError> for Problem {
    fn from(error: QueryError) -> Problem {
        let mut problem = Problem::bad_request(error.kind_slug(), error.title(), error.to_string())
            .with_code(error.postgrest_code());
        problem.hint = error.hint();
        problem
    }
}

/// Store errors by type: a store that cannot serve right now is a 503 worth
/// retrying, anything else a 500 that reveals nothing. Either way the error
/// and its causes are logged once, with the request id.
impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Problem {
        let chain = error_chain(&error);
        match &error {
            StoreError::Sql(sqlx::Error::PoolTimedOut) => {
                crate::telemetry::metrics::pool_timeout("main");
                Problem::store_unavailable("PGRST003", chain)
            }
            _ if error.is_unavailable() => Problem::store_unavailable("PGRST000", chain),
            _ => Problem::internal(chain),
        }
    }
}

/// An error and its causes on one line, skipping a cause whose text the
/// message already quotes (sqlx repeats its source in its own message).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !chain.contains(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = cause.source();
    }
    chain
}

impl IntoResponse for Problem {
    /// Texts often quote what the client sent: control, bidirectional and
    /// zero-width characters in them are escaped here, once for every
    /// problem, so that a quoted value cannot reorder or hide the text
    /// around it wherever the document is displayed.
    fn into_response(self) -> Response {
        let request = current_request();
        let detail = text::escape_owned(self.detail);
        let document = ProblemDocument {
            kind: format!("/problems/{}", self.slug),
            title: text::escape_owned(self.title),
            status: self.status.as_u16(),
            message: detail.clone(),
            detail,
            instance: request
                .as_ref()
                .map(|request| text::escape_owned(request.path.clone()))
                .unwrap_or_default(),
            request_id: request
                .map(|request| request.request_id)
                .unwrap_or_default(),
            code: self.code,
            details: self.details.map(text::escape_owned),
            hint: self.hint.map(text::escape_owned),
        };
        let body = if self.extensions.is_empty() {
            serde_json::to_vec(&document).unwrap_or_default()
        } else {
            let mut value = serde_json::to_value(&document).unwrap_or_default();
            if let Some(members) = value.as_object_mut() {
                for (name, extension) in self.extensions {
                    members.entry(name).or_insert(extension);
                }
            }
            serde_json::to_vec(&value).unwrap_or_default()
        };
        let mut response = (self.status, body).into_response();
        response.extensions_mut().insert(ProblemKind(self.slug));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts quoting client input are escaped where the document is
    /// rendered: control, bidirectional and zero-width characters never
    /// reach the client raw.
    #[tokio::test]
    async fn renders_hidden_characters_escaped() {
        let problem = Problem::new(
            StatusCode::NOT_FOUND,
            "dataset-not-found",
            "Dataset not found",
            "there is no dataset `abc\u{202e}txt.exe\0`",
        )
        .with_hint("zero\u{200b}width");
        let response = problem.into_response();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let document: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            document["detail"],
            "there is no dataset `abc\\u{202e}txt.exe\\u{0}`"
        );
        assert_eq!(document["message"], document["detail"]);
        assert_eq!(document["hint"], "zero\\u{200b}width");
    }

    fn retry_after(problem: &Problem) -> Option<&HeaderValue> {
        problem
            .headers
            .iter()
            .find(|(name, _)| name == header::RETRY_AFTER)
            .map(|(_, value)| value)
    }

    /// A pool timeout or a lost connection is a 503 worth retrying, never a 500.
    #[test]
    fn store_outages_are_503_with_retry_after() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        for (error, code) in [
            (sqlx::Error::PoolTimedOut, "PGRST003"),
            (sqlx::Error::Io(reset), "PGRST000"),
            (sqlx::Error::PoolClosed, "PGRST000"),
        ] {
            let problem = Problem::from(StoreError::Sql(error));
            assert_eq!(problem.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(problem.code.as_deref(), Some(code));
            assert!(retry_after(&problem).is_some());
        }
    }

    /// Any other store error is a 500 that reveals nothing.
    #[test]
    fn other_store_errors_are_500() {
        let problem = Problem::from(StoreError::Sql(sqlx::Error::ColumnNotFound(
            "secret_column".into(),
        )));
        assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(retry_after(&problem).is_none());
        assert!(!problem.detail.contains("secret_column"));
    }

    /// The logged chain names each cause once.
    #[test]
    fn error_chain_skips_repeated_causes() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let chain = error_chain(&StoreError::Sql(sqlx::Error::Io(reset)));
        assert_eq!(chain.matches("reset by peer").count(), 1, "{chain}");
    }
}
