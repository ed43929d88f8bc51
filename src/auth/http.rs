//! The identity endpoints: the OAuth2 client-credentials grant (RFC 6749
//! §4.4), the gateway's public keys (RFC 7517) and its authorization-server
//! metadata (RFC 8414). They answer in OAuth2's formats, not problem
//! documents. Every token answer carries `Cache-Control: no-store`, and the
//! token endpoint notes its outcome in the request's audit record like any
//! other handler.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authenticator::Authenticator;
use super::clients::{ClientRefusal, VerifiedClient};
use crate::audit;
use crate::domain::client_text::{form_value, query_pairs};
use crate::http::context::RequestContext;

/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/api/v1/auth/token";

/// Largest token request body.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// What came of a token request, for the audit (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TokenAttempt {
    /// The client id the request named, if any.
    client_id: Option<String>,
    /// `issued`, `wrong_secret`, `unknown_client`, `client_disabled`,
    /// `expired`, `rate_limited`, `invalid_request`, …
    outcome: &'static str,
}

/// `POST /api/v1/auth/token`, `GET /.well-known/jwks.json`,
/// `GET /.well-known/oauth-authorization-server`.
/// Each route registered with its documentation.
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Authenticator: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(jwks))
        .routes(routes!(metadata))
}

/// The OAuth2 formats these endpoints answer in, for the API description.
mod schema {
    #![allow(dead_code)]

    use serde::{Deserialize, Serialize};

    /// A client-credentials token request (form body; the client may
    /// authenticate with HTTP Basic instead of the two client fields).
    #[derive(Debug, Deserialize, utoipa::ToSchema)]
    pub struct TokenRequest {
        /// Always `client_credentials`.
        pub grant_type: String,
        pub client_id: Option<String>,
        pub client_secret: Option<String>,
    }

    /// A token issued by the gateway (ES256 JWT).
    #[derive(Debug, Serialize, utoipa::ToSchema)]
    pub struct TokenResponse {
        pub access_token: String,
        /// `Bearer`.
        pub token_type: String,
        /// Seconds until the token expires.
        pub expires_in: u64,
    }

    /// An OAuth2 error (RFC 6749 §5.2).
    #[derive(Debug, Serialize, utoipa::ToSchema)]
    pub struct OAuthError {
        /// `invalid_request`, `invalid_client`, `unsupported_grant_type`, …
        pub error: String,
        pub error_description: Option<String>,
    }
}

/// An OAuth2 error answer (RFC 6749 §5.2).
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    outcome: &'static str,
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
        outcome: &'static str,
    ) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            outcome,
            retry_after: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            description,
            "invalid_request",
        )
    }

    fn invalid_client(outcome: &'static str) -> Self {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
            outcome,
        )
    }

    /// The answer, and the attempt for the audit.
    fn refuse(self, client_id: Option<String>) -> (Response, TokenAttempt) {
        let attempt = TokenAttempt {
            client_id,
            outcome: self.outcome,
        };
        (self.into_response(), attempt)
    }

    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"passerelle\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The client's credentials and parameters, from the body and HTTP Basic.
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

/// The client's address as the HTTP edge resolved it (the peer, or the hop
/// before the trusted proxies): failed token requests are counted per this
/// address, never per a proxy's, which would lock every client behind it
/// out with one bad client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub std::net::IpAddr);

/// OAuth2 client-credentials grant (RFC 6749 §4.4) for partner clients.
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    tag = "auth",
    request_body(content = schema::TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A short-lived access token (RFC 6749 §5.1)", body = schema::TokenResponse),
        (status = 400, description = "Malformed request or unsupported grant", body = schema::OAuthError),
        (status = 401, description = "Unknown client, wrong secret, disabled client or ended agreement", body = schema::OAuthError),
        (status = 429, description = "Too many failed attempts: wait `Retry-After` seconds", body = schema::OAuthError),
    )
)]
async fn token(State(authenticator): State<Authenticator>, request: Request) -> Response {
    let context = request.extensions().get::<RequestContext>().cloned();
    let ip = match request.extensions().get::<ClientAddress>() {
        Some(ClientAddress(address)) => Some(address.to_string()),
        // Outside the application's middleware (unit tests): the peer.
        None => request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip().to_string()),
    };
    let (parts, body) = request.into_parts();
    let (response, attempt) = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Err(_) => OAuthError::invalid_request("the request body is too large").refuse(None),
        Ok(body) => {
            let parsed = parse_request(&parts.headers, &body);
            let client_id = parsed
                .as_ref()
                .ok()
                .and_then(|request| request.client_id.clone());
            match issue(&authenticator, parsed, ip).await {
                Ok(issued) => issued,
                Err(error) => error.refuse(client_id),
            }
        }
    };
    if let Some(context) = context {
        let issued = response.status().is_success();
        context.note(|record| {
            record.action = Some(audit::Action::Token);
            record.client_id = attempt.client_id;
            record.decision = Some(issued);
            record.rule = Some(attempt.outcome.to_owned());
            // A token opens closed data: none is issued unaudited.
            record.closed_data = true;
        });
    }
    response
}

async fn issue(
    authenticator: &Authenticator,
    request: Result<TokenRequest, OAuthError>,
    ip: Option<String>,
) -> Result<(Response, TokenAttempt), OAuthError> {
    let inner = &authenticator.inner;
    let mut limited = Vec::with_capacity(2);
    if let Some(ip) = &ip {
        limited.push(format!("ip:{ip}"));
    }
    if let Some(client_id) = request
        .as_ref()
        .ok()
        .and_then(|request| request.client_id.as_ref())
    {
        limited.push(format!("client:{client_id}"));
    }
    if let Some(seconds) = inner.failures.retry_after(&limited).await {
        let mut error = OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            format!("too many failed attempts; retry in {seconds} s"),
            "rate_limited",
        );
        error.retry_after = Some(seconds);
        return Err(error);
    }
    let result = check(authenticator, request).await;
    let (client, request) = match result {
        Ok(found) => found,
        Err(error) => {
            // Only failed client authentication counts: a malformed request guesses no secret.
            if error.status == StatusCode::UNAUTHORIZED {
                inner.failures.record_failure(&limited).await;
            }
            return Err(error);
        }
    };
    let roles = granted_roles(&client, request.scope.as_deref())?;
    let mut claims = Map::new();
    claims.insert("client_id".into(), json!(client.client_id));
    claims.insert("org".into(), json!(client.org));
    claims.insert("roles".into(), json!(roles));
    // Checked on every use: a client disabled or given a new secret raises it.
    claims.insert("gen".into(), json!(client.generation));
    if let Some(datasets) = &client.datasets {
        claims.insert("datasets".into(), json!(datasets));
    }
    let ttl = inner.config.token_ttl_seconds;
    let access_token = inner
        .keys
        .sign(&client.client_id, claims, ttl)
        .map_err(|error| {
            tracing::error!(%error, "cannot sign a token");
            OAuthError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the token cannot be issued right now",
                "server_error",
            )
        })?;
    let mut body = json!({"access_token": access_token, "token_type": "Bearer", "expires_in": ttl});
    if request.scope.is_some() {
        body["scope"] = json!(roles.join(" "));
    }
    let mut response = (StatusCode::OK, Json(body)).into_response();
    no_store(response.headers_mut());
    let attempt = TokenAttempt {
        client_id: Some(client.client_id),
        outcome: "issued",
    };
    Ok((response, attempt))
}

async fn check(
    authenticator: &Authenticator,
    request: Result<TokenRequest, OAuthError>,
) -> Result<(VerifiedClient, TokenRequest), OAuthError> {
    let request = request?;
    match request.grant_type.as_deref() {
        None => return Err(OAuthError::invalid_request("`grant_type` is required")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only the `client_credentials` grant is supported",
                "unsupported_grant_type",
            ));
        }
    }
    let (Some(client_id), Some(secret)) = (&request.client_id, &request.client_secret) else {
        return Err(OAuthError::invalid_client("no_credentials"));
    };
    match authenticator
        .inner
        .clients
        .verify_secret(client_id, secret)
        .await
    {
        Ok(client) => Ok((client, request)),
        Err(ClientRefusal::Store(error)) => {
            tracing::error!(%error, "cannot check a client");
            Err(OAuthError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "clients cannot be checked right now",
                "store_unavailable",
            ))
        }
        Err(refusal) => Err(OAuthError::invalid_client(refusal.reason())),
    }
}

/// The roles of the token: all the client's, or those the `scope` asks for
/// (each must be one of the client's roles).
fn granted_roles(client: &VerifiedClient, scope: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let Some(scope) = scope.filter(|scope| !scope.trim().is_empty()) else {
        return Ok(client.roles.clone());
    };
    let mut roles = Vec::new();
    for asked in scope.split_whitespace() {
        if !client.roles.iter().any(|role| role == asked) {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "the scope asks for a role this client does not have",
                "invalid_scope",
            ));
        }
        if !roles.iter().any(|role| role == asked) {
            roles.push(asked.to_owned());
        }
    }
    Ok(roles)
}

/// Reads the form body and HTTP Basic credentials (RFC 6749 §2.3.1, §4.4.2).
fn parse_request(headers: &HeaderMap, body: &Bytes) -> Result<TokenRequest, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    // Strictly decoded: a client id holding a NUL must not reach the clients' SQL.
    let body = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
    let pairs =
        query_pairs(Some(body)).map_err(|error| OAuthError::invalid_request(error.to_string()))?;
    let mut fields: HashMap<String, String> = HashMap::new();
    for (name, value) in pairs {
        if fields.insert(name.clone(), value).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{name}` is repeated"
            )));
        }
    }
    let basic = basic_credentials(headers)?;
    let mut client_id = fields.remove("client_id").filter(|id| !id.is_empty());
    let mut client_secret = fields
        .remove("client_secret")
        .filter(|secret| !secret.is_empty());
    if let Some((basic_id, basic_secret)) = basic {
        if client_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        if client_id.as_ref().is_some_and(|id| *id != basic_id) {
            return Err(OAuthError::invalid_request(
                "`client_id` differs from the HTTP Basic user",
            ));
        }
        client_id = Some(basic_id);
        client_secret = Some(basic_secret);
    }
    Ok(TokenRequest {
        grant_type: fields.remove("grant_type"),
        client_id,
        client_secret,
        scope: fields.remove("scope"),
    })
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?;
    let (scheme, encoded) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_request(
            "clients authenticate with HTTP Basic or the form body",
        ));
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| OAuthError::invalid_client("malformed_basic"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_client("malformed_basic"))?;
    let decode =
        |text: &str| form_value(text).map_err(|_| OAuthError::invalid_client("malformed_basic"));
    Ok(Some((decode(id)?, decode(secret)?)))
}

/// The gateway's public signing keys (RFC 7517), rotated keys included until
/// their tokens expire.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, description = "JSON Web Key Set", body = Object)))]
async fn jwks(State(authenticator): State<Authenticator>) -> Response {
    let mut response = Json(authenticator.keys().jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// Authorization server metadata (RFC 8414).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "auth", responses((status = 200, description = "Metadata", body = Object)))]
async fn metadata(State(authenticator): State<Authenticator>, headers: HeaderMap) -> Json<Value> {
    let config = authenticator.config();
    let base = match &config.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("http://{}", request_host(&headers)),
    };
    Json(json!({
        "issuer": config.issuer,
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "response_types_supported": ["token"],
        "scopes_supported": [],
    }))
}

/// The request's `Host` when it looks like a host name, else `localhost`.
fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host.len() <= 255
                && host
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte))
        })
        .unwrap_or("localhost")
        .to_owned()
}
