//! Browser applications on other origins (CORS), with tower-http's
//! `CorsLayer` in front of everything else: a preflight (`OPTIONS`) is
//! answered here, 204 on every route, before the request id, the audit or
//! the router see it, so it is never audited as a data access and never 405.
//!
//! Who may read an answer (`Access-Control-Allow-Origin`):
//! - an origin listed by name in `allowed_origins` may read every answer;
//! - with `*` in `allowed_origins`, any other origin may read the answers to
//!   requests without credentials. Anonymous requests only ever reach open
//!   data, the catalogue and refusals, so `*` never opens closed data: a
//!   request carrying `Authorization` or `X-API-Key` (or a preflight asking
//!   to send one) from an origin not listed gets no
//!   `Access-Control-Allow-Origin`, and the browser keeps the answer from
//!   the page (the preflight fails, so the request is not even sent).
//!
//! The origin is echoed rather than `*` (with `Vary: Origin`), and
//! `Access-Control-Allow-Credentials` is never sent: the API takes no
//! cookies, a bearer token or API key is an ordinary request header.

use std::time::Duration;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsSettings;

/// Request headers a page may send: credentials, the declared purpose,
/// PostgREST's (`Prefer`, `Range`, profiles) and what postgrest-js adds.
const ALLOWED_HEADERS: [&str; 14] = [
    "accept",
    "accept-profile",
    "authorization",
    "content-profile",
    "content-type",
    "if-modified-since",
    "if-none-match",
    "prefer",
    "range",
    "range-unit",
    "x-api-key",
    "x-client-info",
    "x-purpose",
    "x-request-id",
];

/// Request headers that carry credentials.
const CREDENTIAL_HEADERS: [&str; 2] = ["authorization", "x-api-key"];

/// The CORS layer for these settings (checked by [`check`] at start).
pub fn layer(settings: &CorsSettings) -> CorsLayer {
    let listed: Vec<HeaderValue> = settings
        .allowed_origins
        .iter()
        .filter(|origin| origin.as_str() != "*")
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    let any = settings.allowed_origins.iter().any(|origin| origin == "*");
    let methods: Vec<Method> = settings
        .allowed_methods
        .iter()
        .filter_map(|method| Method::from_bytes(method.as_bytes()).ok())
        .collect();
    let exposed: Vec<HeaderName> = settings
        .exposed_headers
        .iter()
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, parts| {
            listed.contains(origin) || (any && !carries_credentials(parts))
        }))
        .allow_methods(methods)
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(exposed)
        .max_age(Duration::from_secs(settings.max_age_seconds))
}

/// Whether the request carries credentials, or (a preflight) asks to send them.
fn carries_credentials(parts: &Parts) -> bool {
    if CREDENTIAL_HEADERS
        .iter()
        .any(|name| parts.headers.contains_key(*name))
    {
        return true;
    }
    parts
        .headers
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|name| {
            CREDENTIAL_HEADERS
                .iter()
                .any(|credential| name.trim().eq_ignore_ascii_case(credential))
        })
}

/// The CORS layer answers every `OPTIONS` itself, with 200: a preflight's
/// answer is 204 No Content.
pub async fn preflight_no_content(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS;
    let mut response = next.run(request).await;
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// Refuses settings that would silently lock browsers out: an origin must
/// be `*` or `scheme://host[:port]` (no path, no trailing slash), as
/// browsers send it.
pub fn check(settings: &CorsSettings) -> Result<(), String> {
    for origin in &settings.allowed_origins {
        if origin == "*" {
            continue;
        }
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let valid = rest.is_some_and(|host| {
            !host.is_empty()
                && !host.contains('/')
                && host
                    .bytes()
                    .all(|byte| byte.is_ascii_graphic() && byte != b',' && byte != b'*')
        });
        if !valid {
            return Err(format!(
                "server.cors.allowed_origins: `{origin}` is not `*` or an origin such as `https://app.example.org` (scheme, host, optional port, no path)"
            ));
        }
    }
    for method in &settings.allowed_methods {
        if Method::from_bytes(method.as_bytes()).is_err() || method.to_ascii_uppercase() != *method
        {
            return Err(format!(
                "server.cors.allowed_methods: `{method}` is not an HTTP method in capitals"
            ));
        }
    }
    for name in &settings.exposed_headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!(
                "server.cors.exposed_headers: `{name}` is not a header name"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut builder = axum::http::Request::builder();
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    /// A bearer token, an API key, or a preflight announcing one, is a credentialed request.
    #[test]
    fn recognises_credentials() {
        assert!(!carries_credentials(&parts(&[("prefer", "count=exact")])));
        assert!(carries_credentials(&parts(&[(
            "authorization",
            "Bearer x"
        )])));
        assert!(carries_credentials(&parts(&[("x-api-key", "k")])));
        assert!(carries_credentials(&parts(&[(
            "access-control-request-headers",
            "prefer, Authorization"
        )])));
        assert!(!carries_credentials(&parts(&[(
            "access-control-request-headers",
            "prefer,x-client-info"
        )])));
    }

    /// Origins as browsers send them; methods in capitals; header names.
    #[test]
    fn checks_settings() {
        let with = |origins: &[&str]| CorsSettings {
            allowed_origins: origins.iter().map(|origin| origin.to_string()).collect(),
            ..CorsSettings::default()
        };
        assert!(check(&CorsSettings::default()).is_ok());
        assert!(check(&with(&["https://app.example.org", "http://localhost:3000"])).is_ok());
        for bad in [
            "app.example.org",
            "https://app.example.org/",
            "https://*.example.org",
            "ftp://x",
            "https://",
        ] {
            let error = check(&with(&[bad])).unwrap_err();
            assert!(
                error.contains("server.cors.allowed_origins"),
                "{bad}: {error}"
            );
        }
        let methods = CorsSettings {
            allowed_methods: vec!["get".to_owned()],
            ..CorsSettings::default()
        };
        assert!(check(&methods).is_err());
        let exposed = CorsSettings {
            exposed_headers: vec!["Content Range".to_owned()],
            ..CorsSettings::default()
        };
        assert!(check(&exposed).is_err());
    }
}
