//! `DatasetId`: the `{id}` segment of a route, percent-decoded and checked
//! once for every route that names a dataset. An id that is not UTF-8 or
//! holds a control character (a NUL byte, say) can name no dataset: it is
//! refused with a 400 problem naming the `id` parameter, and the audit event
//! records it escaped, as sent.

use std::borrow::Cow;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use percent_encoding::percent_decode_str;

use super::context::RequestContext;
use super::problem::Problem;
use crate::domain::text;

/// Longest id quoted in a refusal and its audit event, in characters.
const MAX_QUOTED_CHARS: usize = 256;

/// A dataset id from the path: UTF-8, without control characters. It may
/// still name no dataset (404 is the handler's call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for DatasetId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<DatasetId, Problem> {
        let raw = raw_id(parts).ok_or_else(|| {
            Problem::internal("DatasetId used on a route without an `{id}` segment")
        })?;
        let bytes: Cow<'_, [u8]> = percent_decode_str(raw).into();
        let context = parts.extensions.get::<RequestContext>();
        match std::str::from_utf8(&bytes) {
            Ok(id) if !id.chars().any(char::is_control) => Ok(DatasetId(id.to_owned())),
            Ok(id) => Err(refuse(
                context,
                text::from_bytes(id.as_bytes(), MAX_QUOTED_CHARS),
                "holds a control character",
            )),
            Err(_) => Err(refuse(
                context,
                text::from_bytes(&bytes, MAX_QUOTED_CHARS),
                "is not valid UTF-8",
            )),
        }
    }
}

/// The dataset id a request path names (`/api/v1/data/{id}`,
/// `/api/v1/datasets/{id}` and their sub-paths), percent-decoded and quoted
/// as sent, for the audit event of a request that never reached a handler
/// (bad credentials, a wrong method, a refusal at the edge).
pub fn dataset_in_path(path: &str) -> Option<String> {
    let rest = path
        .strip_prefix("/api/v1/data/")
        .or_else(|| path.strip_prefix("/api/v1/datasets/"))?;
    let segment = rest
        .split('/')
        .next()
        .filter(|segment| !segment.is_empty())?;
    let bytes: Cow<'_, [u8]> = percent_decode_str(segment).into();
    Some(text::from_bytes(&bytes, MAX_QUOTED_CHARS))
}

/// The `{id}` segment of the request path, still percent-encoded.
fn raw_id(parts: &Parts) -> Option<&str> {
    let route = parts.extensions.get::<MatchedPath>()?.as_str();
    let position = route.split('/').position(|segment| segment == "{id}")?;
    parts.uri.path().split('/').nth(position)
}

/// Notes the refusal for the audit event (the id as sent, escaped where the
/// event is built) and builds the problem.
fn refuse(context: Option<&RequestContext>, id: String, reason: &str) -> Problem {
    if let Some(context) = context {
        context.note(|record| {
            record.dataset = Some(id.clone());
            record.decision = Some(false);
            record.rule = Some(format!("invalid dataset id: {reason}"));
        });
    }
    Problem::bad_request(
        "invalid-parameter",
        "Invalid parameter",
        format!("the path parameter `id` {reason}: `{id}`"),
    )
    .with_code("PGRST100")
    .with_hint("a dataset id is UTF-8 text without control characters")
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn answer(path: &str) -> (StatusCode, String) {
        let app = Router::new().route(
            "/api/v1/data/{id}",
            get(|DatasetId(id): DatasetId| async move { id }),
        );
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// The audit names the dataset of any path that has one, decoded.
    #[test]
    fn finds_the_dataset_a_path_names() {
        assert_eq!(
            dataset_in_path("/api/v1/data/a%20b").as_deref(),
            Some("a b")
        );
        assert_eq!(
            dataset_in_path("/api/v1/datasets/x/y").as_deref(),
            Some("x")
        );
        assert_eq!(
            dataset_in_path("/api/v1/data/%FF").as_deref(),
            Some("\\x{ff}")
        );
        assert_eq!(dataset_in_path("/api/v1/data/"), None);
        assert_eq!(dataset_in_path("/api/v1/datasets"), None);
        assert_eq!(dataset_in_path("/api/v1/audit/events"), None);
    }

    /// Ids are percent-decoded; invisible characters pass (they name no
    /// dataset); NUL, controls and invalid UTF-8 are refused naming `id`.
    #[tokio::test]
    async fn decodes_and_checks_ids() {
        assert_eq!(
            answer("/api/v1/data/energie%20%C3%A9t%C3%A9").await,
            (StatusCode::OK, "energie été".to_owned())
        );
        assert_eq!(
            answer("/api/v1/data/a%E2%80%AEb").await,
            (StatusCode::OK, "a\u{202e}b".to_owned())
        );
        for (path, quoted) in [
            ("/api/v1/data/%00", "`\\\\u{0}`"),
            ("/api/v1/data/a%0Ab", "`a\\\\u{a}b`"),
            ("/api/v1/data/%FF", "`\\\\x{ff}`"),
            ("/api/v1/data/%C3%28", "`\\\\x{c3}(`"),
        ] {
            let (status, body) = answer(path).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
            assert!(
                body.contains("/problems/invalid-parameter") && body.contains("`id`"),
                "{path}: {body}"
            );
            assert!(body.contains(quoted), "{path}: {body}");
        }
    }
}
