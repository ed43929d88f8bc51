//! Staff sign-in: OpenID Connect authorization code flow with PKCE (S256)
//! against the issuer of `[web.oidc]`, found by its discovery document.
//!
//! `GET /login` remembers a random state, nonce and PKCE verifier (in the
//! store, the state only as a hash, and in a short-lived cookie that binds
//! the sign-in to this browser) and sends the browser to the provider.
//! `GET /login/callback` checks the state against the cookie and the store
//! (used once, within `login_timeout_seconds`), exchanges the code with the
//! verifier, verifies the ID token with the same code as API tokens
//! (`Authenticator::id_token`: keys, algorithm, issuer, audience = client
//! id, expiry) and its nonce, then opens a session. `POST /logout` ends it,
//! with the session's CSRF token. Every sign-in, refusal and sign-out is an
//! audit event (action `sign-in` / `sign-out`, the reason as its rule).

use std::sync::OnceLock;
use std::time::Duration;

use axum::Extension;
use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::page::{Site, error_page, pairs_of};
use super::session::{self, LOGIN_COOKIE, PendingLogin, SESSION_COOKIE};
use super::settings::OidcSettings;
use crate::audit::Action;
use crate::http::context::RequestContext;
use crate::http::state::AppState;

/// Largest discovery document or token answer read from the provider.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The client that talks to the provider (discovery and token endpoint).
fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("passerelle/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client")
    })
}

/// The provider's endpoints, from its discovery document.
struct Provider {
    authorization_endpoint: String,
    token_endpoint: String,
}

async fn read_json(response: reqwest::Response, what: &str) -> Result<Value, String> {
    let status = response.status();
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("{what}: {error}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("{what}: answer larger than 256 KiB"));
        }
    }
    if !status.is_success() {
        return Err(format!("{what}: status {status}"));
    }
    serde_json::from_slice(&body).map_err(|_| format!("{what}: not JSON"))
}

async fn discover(oidc: &OidcSettings) -> Result<Provider, String> {
    let url = oidc.discovery_url();
    let response = http()
        .get(&url)
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|error| format!("discovery document: {error}"))?;
    let document = read_json(response, "discovery document").await?;
    let text = |name: &str| {
        document
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("the discovery document has no `{name}`"))
    };
    let issuer = text("issuer")?;
    if issuer != oidc.issuer {
        return Err(format!(
            "the discovery document names issuer `{issuer}`, not `{}`",
            oidc.issuer
        ));
    }
    if let Some(methods) = document
        .get("code_challenge_methods_supported")
        .and_then(Value::as_array)
        && !methods.iter().any(|method| method == "S256")
    {
        return Err("the provider does not support PKCE with S256".to_owned());
    }
    Ok(Provider {
        authorization_endpoint: text("authorization_endpoint")?,
        token_endpoint: text("token_endpoint")?,
    })
}

/// `return_to` when it is a path of this site, else `/`.
fn local_path(candidate: Option<&str>) -> String {
    match candidate {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A redirection (303) with extra headers.
fn see_other(location: &str, cookies: &[HeaderValue]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie.clone());
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page that says sign-in failed, and the audit note that says why.
fn refused(
    context: &RequestContext,
    site: Site,
    status: StatusCode,
    reason: &str,
    clear_login: Option<HeaderValue>,
) -> Response {
    context.note(|record| {
        record.action = Some(Action::SignIn);
        record.decision = Some(false);
        record.rule = Some(format!("sign-in refused: {reason}"));
    });
    let texts = site.texts();
    let mut response = error_page(
        site,
        status,
        texts.sign_in_failed,
        texts.sign_in_failed_detail,
        "/login",
        &[],
    );
    if let Some(cookie) = clear_login {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /login`: to the provider's authorization endpoint.
pub async fn login(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let pairs = match pairs_of(raw_query.as_deref(), &headers) {
        Ok(pairs) => pairs,
        Err(page) => return page,
    };
    let site = Site::of(&pairs, &headers);
    let Some(oidc) = &state.settings.web.oidc else {
        return refused(
            &context,
            site,
            StatusCode::NOT_FOUND,
            "not_configured",
            None,
        );
    };
    let provider = match discover(oidc).await {
        Ok(provider) => provider,
        Err(error) => {
            tracing::warn!(%error, "the sign-in provider cannot be reached");
            return refused(
                &context,
                site,
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                None,
            );
        }
    };
    let return_to = local_path(
        pairs
            .iter()
            .find(|(key, _)| key == "return_to")
            .map(|(_, value)| value.as_str()),
    );
    let state_token = session::random_token();
    let login = PendingLogin {
        nonce: session::random_token(),
        code_verifier: session::random_token(),
        return_to,
        created_at: chrono::Utc::now().timestamp(),
    };
    if let Err(error) = session::begin_login(
        &state.store,
        &state.settings.web.session,
        &state_token,
        &login,
    )
    .await
    {
        tracing::error!(%error, "cannot start a sign-in");
        return refused(
            &context,
            site,
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            None,
        );
    }
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(login.code_verifier.as_bytes()));
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &oidc.client_id)
        .append_pair("redirect_uri", &oidc.redirect_url)
        .append_pair("scope", &oidc.scope())
        .append_pair("state", &state_token)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let separator = if provider.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    context.note(|record| {
        record.action = Some(Action::SignIn);
        record.rule = Some("sign-in started".to_owned());
    });
    let secure = session::secure(&state.settings);
    see_other(
        &format!("{}{separator}{query}", provider.authorization_endpoint),
        &[session::set_cookie(
            LOGIN_COOKIE,
            &state_token,
            "/login",
            state.settings.web.session.login_timeout_seconds,
            secure,
        )],
    )
}

/// `GET /login/callback`: the provider's answer.
pub async fn callback(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let pairs = match pairs_of(raw_query.as_deref(), &headers) {
        Ok(pairs) => pairs,
        Err(page) => return page,
    };
    let site = Site::of(&pairs, &headers);
    let Some(oidc) = &state.settings.web.oidc else {
        return refused(
            &context,
            site,
            StatusCode::NOT_FOUND,
            "not_configured",
            None,
        );
    };
    let settings = &state.settings;
    let secure = session::secure(settings);
    let clear_login = Some(session::set_cookie(LOGIN_COOKIE, "", "/login", 0, secure));
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    // The state must be the one this browser was given, and known to the store.
    let sent = param("state").unwrap_or_default();
    let bound = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if sent.is_empty() || !bool::from(sent.as_bytes().ct_eq(bound.as_bytes())) {
        return refused(
            &context,
            site,
            StatusCode::BAD_REQUEST,
            "bad_state",
            clear_login,
        );
    }
    let login = match session::take_login(&state.store, &settings.web.session, sent).await {
        Ok(Some(login)) => login,
        Ok(None) => {
            return refused(
                &context,
                site,
                StatusCode::BAD_REQUEST,
                "bad_state",
                clear_login,
            );
        }
        Err(error) => {
            tracing::error!(%error, "cannot finish a sign-in");
            return refused(
                &context,
                site,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                clear_login,
            );
        }
    };
    if let Some(error) = param("error") {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return refused(
            &context,
            site,
            StatusCode::BAD_REQUEST,
            &format!("provider_error {error}"),
            clear_login,
        );
    }
    let Some(code) = param("code").filter(|code| !code.is_empty()) else {
        return refused(
            &context,
            site,
            StatusCode::BAD_REQUEST,
            "no_code",
            clear_login,
        );
    };
    let id_token = match exchange(oidc, code, &login.code_verifier).await {
        Ok(token) => token,
        Err(error) => {
            tracing::warn!(%error, "the sign-in's code exchange failed");
            return refused(
                &context,
                site,
                StatusCode::BAD_GATEWAY,
                "token_exchange_failed",
                clear_login,
            );
        }
    };
    let caller = match state
        .authenticator
        .id_token(&id_token, &oidc.issuer, &oidc.client_id)
        .await
    {
        Ok(caller) => caller,
        Err(failure) => {
            return refused(
                &context,
                site,
                StatusCode::BAD_REQUEST,
                &format!("id_token {}", failure.reason),
                clear_login,
            );
        }
    };
    let nonce = caller
        .claims
        .get("nonce")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !bool::from(nonce.as_bytes().ct_eq(login.nonce.as_bytes())) {
        return refused(
            &context,
            site,
            StatusCode::BAD_REQUEST,
            "bad_nonce",
            clear_login,
        );
    }
    let id = match session::open(&state.store, &settings.web.session, &caller).await {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, "cannot open a session");
            return refused(
                &context,
                site,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                clear_login,
            );
        }
    };
    context.note(|record| {
        record.action = Some(Action::SignIn);
        record.decision = Some(true);
        record.rule = Some("signed in".to_owned());
        record.signed_in = Some(caller.clone());
    });
    see_other(
        &login.return_to,
        &[
            session::set_cookie(
                SESSION_COOKIE,
                &id,
                "/",
                settings.web.session.absolute_timeout_seconds,
                secure,
            ),
            session::set_cookie(LOGIN_COOKIE, "", "/login", 0, secure),
        ],
    )
}

/// The code for tokens at the provider's token endpoint; the ID token.
async fn exchange(oidc: &OidcSettings, code: &str, verifier: &str) -> Result<String, String> {
    let provider = discover(oidc).await?;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &oidc.redirect_url)
        .append_pair("client_id", &oidc.client_id)
        .append_pair("code_verifier", verifier)
        .finish();
    let mut request = http()
        .post(&provider.token_endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(form);
    if let Some(secret) = &oidc.client_secret {
        // client_secret_basic (RFC 6749 §2.3.1): both parts form-encoded.
        let encode =
            |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        request = request.basic_auth(encode(&oidc.client_id), Some(encode(secret)));
    }
    let response = request
        .send()
        .await
        .map_err(|error| format!("token endpoint: {error}"))?;
    let answer = read_json(response, "token endpoint").await?;
    answer
        .get("id_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the token endpoint's answer has no `id_token`".to_owned())
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the session (the form's CSRF token must be the session's).
pub async fn logout(
    State(state): State<AppState>,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let site = Site::of(&[], &headers);
    let texts = site.texts();
    let id = session::cookie(&headers, SESSION_COOKIE);
    let valid = id.is_some_and(|id| session::csrf_matches(id, &form.csrf));
    context.note(|record| record.action = Some(Action::SignOut));
    if !valid || context.caller.is_anonymous() {
        context.note(|record| {
            record.decision = Some(false);
            record.rule = Some("sign-out refused: bad_csrf".to_owned());
        });
        return error_page(
            site,
            StatusCode::FORBIDDEN,
            texts.error_forbidden,
            texts.error_csrf,
            "/",
            &[],
        );
    }
    if let Some(id) = id
        && let Err(error) = session::close(&state.store, id).await
    {
        tracing::error!(%error, "cannot end a session");
        return error_page(
            site,
            StatusCode::SERVICE_UNAVAILABLE,
            texts.error_unavailable,
            texts.error_unavailable_detail,
            "/",
            &[],
        );
    }
    context.note(|record| {
        record.decision = Some(true);
        record.rule = Some("signed out".to_owned());
    });
    let secure = session::secure(&state.settings);
    see_other(
        "/",
        &[session::set_cookie(SESSION_COOKIE, "", "/", 0, secure)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only this site's paths are followed after signing in.
    #[test]
    fn returns_only_to_local_paths() {
        assert_eq!(local_path(Some("/datasets?q=a")), "/datasets?q=a");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }
}
