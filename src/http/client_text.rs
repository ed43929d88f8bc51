//! How client text that cannot be read is reported: a 400 problem naming
//! the query parameter or the header (the decoding itself is
//! [`crate::domain::client_text`]).

use axum::http::StatusCode;

use crate::domain::client_text::{InvalidParameter, TextDefect};
use crate::http::problem::Problem;

impl From<InvalidParameter> for Problem {
    fn from(error: InvalidParameter) -> Problem {
        Problem::bad_request("invalid-parameter", "Invalid parameter", error.to_string())
            .with_code("PGRST100")
            .with_hint("percent-encoded bytes must spell UTF-8 text without control characters")
    }
}

/// A 400 naming a header whose value cannot be read as text.
pub fn invalid_header(name: &str, defect: &TextDefect) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-header",
        "Invalid header",
        format!("header `{name}` {}", defect.describe()),
    )
    .with_hint(format!(
        "send UTF-8 text, or the RFC 8187 form: `{name}: UTF-8''suivi%20pr%C3%A9carit%C3%A9`"
    ))
}
