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
        let body = serde_json::to_vec(&document).unwrap_or_default();
        let mut response = (self.status, body).into_response();
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
}
