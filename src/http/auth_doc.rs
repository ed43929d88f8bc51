//! The API description of the identity endpoints served by
//! [`crate::auth::routes`]: they answer in OAuth2's own formats (RFC 6749,
//! RFC 7517, RFC 8414), not problem documents, so they are described here.

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

/// OAuth2 client-credentials grant (RFC 6749 §4.4) for partner clients.
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A short-lived access token (RFC 6749 §5.1)", body = TokenResponse),
        (status = 400, description = "Malformed request or unsupported grant", body = OAuthError),
        (status = 401, description = "Unknown client, wrong secret, disabled client or ended agreement", body = OAuthError),
        (status = 429, description = "Too many failed attempts: wait `Retry-After` seconds", body = OAuthError),
    )
)]
pub fn token() {}

/// The gateway's public signing keys (RFC 7517), rotated keys included until
/// their tokens expire.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, description = "JSON Web Key Set", body = Object)))]
pub fn jwks() {}

/// Authorization server metadata (RFC 8414).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "auth", responses((status = 200, description = "Metadata", body = Object)))]
pub fn authorization_server_metadata() {}
