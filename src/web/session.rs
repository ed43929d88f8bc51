//! Signed-in sessions of the pages: a server-side record in the store
//! behind an `HttpOnly`, `SameSite=Lax` cookie (`Secure` behind HTTPS),
//! ended by an idle and an absolute timeout or by signing out.
//!
//! The cookie holds 32 random bytes; the store holds only their SHA-256, so
//! reading the table opens no session. The CSRF token of a session's forms
//! is derived from the cookie's value (another SHA-256, with its own
//! prefix): the store does not hold it either, and another site cannot read
//! it. Sessions open pages only: the API never reads cookies.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::settings::SessionSettings;
use crate::auth::{AuthMethod, Caller};
use crate::config::Settings;
use crate::store::{Store, StoreError};

/// The session cookie.
pub const SESSION_COOKIE: &str = "passerelle_session";
/// The cookie that binds a sign-in under way to the browser that started it.
pub const LOGIN_COOKIE: &str = "passerelle_login";
/// `last_seen_at` is written at most this often (seconds).
const TOUCH_EVERY: i64 = 60;

/// Who is signed in on the page being rendered, for the layout.
#[derive(Debug, Clone)]
pub struct Account {
    pub subject: String,
    /// The CSRF token every form of the session carries.
    pub csrf: String,
    /// Whether the policy lets them read the access log (the header links it).
    pub can_audit: bool,
    /// Whether the policy lets them read the inventory (the header links it).
    pub can_inventory: bool,
}

/// What the layout needs to know about signing in.
#[derive(Debug, Clone, Default)]
pub struct PageIdentity {
    pub account: Option<Account>,
    /// Whether a sign-in is configured (`[web.oidc]`).
    pub sign_in: bool,
}

tokio::task_local! {
    static IDENTITY: PageIdentity;
}

/// The identity of the page being served (anonymous outside a page request).
pub fn current() -> PageIdentity {
    IDENTITY.try_with(Clone::clone).unwrap_or_default()
}

/// Runs a page handler with `identity` as the page's identity.
pub async fn scope<F: std::future::Future>(identity: PageIdentity, future: F) -> F::Output {
    IDENTITY.scope(identity, future).await
}

/// 32 bytes from the operating system's generator, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random generator");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The CSRF token of the session whose cookie value is `session_id`.
pub fn csrf_token(session_id: &str) -> String {
    sha256_hex(&format!("passerelle-csrf:{session_id}"))
}

/// Whether `sent` is the session's CSRF token (constant time).
pub fn csrf_matches(session_id: &str, sent: &str) -> bool {
    bool::from(csrf_token(session_id).as_bytes().ct_eq(sent.as_bytes()))
}

/// The value of cookie `name` in the request (the first one).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// Whether cookies must be `Secure`: the public URL (or the sign-in's
/// return address) is HTTPS.
pub fn secure(settings: &Settings) -> bool {
    let https = |url: &str| url.starts_with("https://");
    settings.auth.public_url.as_deref().is_some_and(https)
        || settings
            .web
            .oidc
            .as_ref()
            .is_some_and(|oidc| https(&oidc.redirect_url))
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, for `path`, kept
/// `max_age` seconds (0 removes the cookie).
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("cookie values are base64url")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Runs the same SQL on whichever pool backs the store.
macro_rules! on_store {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

/// Opens a session for `caller` (just signed in); returns the cookie's value.
pub async fn open(
    store: &Store,
    timeouts: &SessionSettings,
    caller: &Caller,
) -> Result<String, StoreError> {
    let id = random_token();
    let now = now();
    let expires =
        now.saturating_add(i64::try_from(timeouts.absolute_timeout_seconds).unwrap_or(i64::MAX));
    let roles = serde_json::to_string(&caller.roles).unwrap_or_else(|_| "[]".to_owned());
    let claims = Value::Object(caller.claims.clone()).to_string();
    on_store!(store, pool => sqlx::query(
        "INSERT INTO web_sessions (id_hash, subject, org, roles, claims, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(sha256_hex(&id))
    .bind(&caller.subject)
    .bind(caller.org.as_deref())
    .bind(roles)
    .bind(claims)
    .bind(now)
    .bind(now)
    .bind(expires)
    .execute(pool)
    .await
    .map(|_| ()))?;
    // Ended sessions are removed as new ones start.
    let idle_since = now.saturating_sub(i64::try_from(timeouts.idle_timeout_seconds).unwrap_or(0));
    on_store!(store, pool => sqlx::query(
        "DELETE FROM web_sessions WHERE expires_at <= $1 OR last_seen_at <= $2",
    )
    .bind(now)
    .bind(idle_since)
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    subject: String,
    org: Option<String>,
    roles: String,
    claims: String,
    last_seen_at: i64,
    expires_at: i64,
}

/// The caller of a live session (`None`: unknown, ended, or timed out);
/// marks it as used.
pub async fn caller(
    store: &Store,
    timeouts: &SessionSettings,
    id: &str,
) -> Result<Option<Caller>, StoreError> {
    let id_hash = sha256_hex(id);
    let row = on_store!(store, pool => sqlx::query_as::<_, SessionRow>(
        "SELECT subject, org, roles, claims, last_seen_at, expires_at FROM web_sessions WHERE id_hash = $1",
    )
    .bind(&id_hash)
    .fetch_optional(pool)
    .await)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let now = now();
    let idle = i64::try_from(timeouts.idle_timeout_seconds).unwrap_or(i64::MAX);
    if now >= row.expires_at || now.saturating_sub(row.last_seen_at) >= idle {
        close(store, id).await?;
        return Ok(None);
    }
    if now - row.last_seen_at >= TOUCH_EVERY {
        on_store!(store, pool => sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(&id_hash)
            .execute(pool)
            .await
            .map(|_| ()))?;
    }
    let mut roles: Vec<String> = serde_json::from_str(&row.roles).unwrap_or_default();
    // The roles were mapped at sign-in; every caller has `anonymous`.
    if !roles
        .iter()
        .any(|role| role == crate::auth::caller::ANONYMOUS)
    {
        roles.insert(0, crate::auth::caller::ANONYMOUS.to_owned());
    }
    let claims = match serde_json::from_str::<Value>(&row.claims) {
        Ok(Value::Object(claims)) => claims,
        _ => Map::new(),
    };
    Ok(Some(Caller {
        subject: row.subject,
        org: row.org,
        roles,
        auth_method: AuthMethod::ExternalJwt,
        client_id: None,
        // Links the session's events in the audit log without revealing it.
        token_id: Some(format!("session:{}", &id_hash[..16])),
        allowed_datasets: None,
        claims,
    }))
}

/// Ends a session (signing out, or timed out).
pub async fn close(store: &Store, id: &str) -> Result<(), StoreError> {
    on_store!(store, pool => sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
        .bind(sha256_hex(id))
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A sign-in under way.
#[derive(Debug, sqlx::FromRow)]
pub struct PendingLogin {
    pub nonce: String,
    pub code_verifier: String,
    pub return_to: String,
    pub created_at: i64,
}

/// Remembers a sign-in started with `state` until the provider's callback.
pub async fn begin_login(
    store: &Store,
    timeouts: &SessionSettings,
    state: &str,
    login: &PendingLogin,
) -> Result<(), StoreError> {
    let stale = now().saturating_sub(i64::try_from(timeouts.login_timeout_seconds).unwrap_or(0));
    on_store!(store, pool => sqlx::query("DELETE FROM web_logins WHERE created_at <= $1")
        .bind(stale)
        .execute(pool)
        .await
        .map(|_| ()))?;
    on_store!(store, pool => sqlx::query(
        "INSERT INTO web_logins (state_hash, nonce, code_verifier, return_to, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(sha256_hex(state))
    .bind(&login.nonce)
    .bind(&login.code_verifier)
    .bind(&login.return_to)
    .bind(login.created_at)
    .execute(pool)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// The sign-in started with `state`, removed (a state is used once);
/// `None` when unknown or older than the login timeout.
pub async fn take_login(
    store: &Store,
    timeouts: &SessionSettings,
    state: &str,
) -> Result<Option<PendingLogin>, StoreError> {
    let state_hash = sha256_hex(state);
    let login = on_store!(store, pool => sqlx::query_as::<_, PendingLogin>(
        "DELETE FROM web_logins WHERE state_hash = $1 \
         RETURNING nonce, code_verifier, return_to, created_at",
    )
    .bind(&state_hash)
    .fetch_optional(pool)
    .await)?;
    let timeout = i64::try_from(timeouts.login_timeout_seconds).unwrap_or(i64::MAX);
    Ok(login.filter(|login| now().saturating_sub(login.created_at) < timeout))
}

/// Who a page request is from: the session its cookie names, if live.
/// A store that cannot answer makes the visitor anonymous (less access, never more).
pub async fn identify(
    settings: &Settings,
    store: &Store,
    headers: &HeaderMap,
) -> Option<(Caller, Account)> {
    settings.web.oidc.as_ref()?;
    let id = cookie(headers, SESSION_COOKIE)?;
    // Our ids are 43 base64url characters; anything else is not looked up.
    if id.len() != 43
        || !id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return None;
    }
    match caller(store, &settings.web.session, id).await {
        Ok(Some(caller)) => {
            let account = Account {
                subject: caller.subject.clone(),
                csrf: csrf_token(id),
                can_audit: false,
                can_inventory: false,
            };
            Some((caller, account))
        }
        Ok(None) => None,
        Err(error) => {
            tracing::error!(%error, "cannot read a page session: the visitor is anonymous");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cookies are read by exact name; CSRF tokens are bound to their session.
    #[test]
    fn cookies_and_csrf() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; passerelle_session=abc; x=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "passerelle"), None);
        let token = csrf_token("abc");
        assert!(csrf_matches("abc", &token));
        assert!(!csrf_matches("abd", &token));
        assert!(!csrf_matches("abc", ""));
        assert_ne!(
            token,
            sha256_hex("abc"),
            "the stored hash is not the CSRF token"
        );
        assert_eq!(random_token().len(), 43);
        let cookie = set_cookie(SESSION_COOKIE, "v", "/", 60, true);
        assert_eq!(
            cookie.to_str().unwrap(),
            "passerelle_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
    }

    /// Sessions end on sign-out, when idle too long, and at the absolute timeout.
    #[tokio::test]
    async fn sessions_time_out() {
        let (store, _database) = crate::store::test_support::sqlite().await;
        let timeouts = SessionSettings::default();
        let mut caller = Caller::anonymous();
        caller.subject = "alice".to_owned();
        caller.roles = vec!["anonymous".to_owned(), "staff".to_owned()];
        caller.auth_method = AuthMethod::ExternalJwt;
        let id = open(&store, &timeouts, &caller).await.unwrap();
        let found = super::caller(&store, &timeouts, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.subject.as_str(), found.roles.clone()),
            ("alice", caller.roles.clone())
        );
        assert!(
            super::caller(&store, &timeouts, "not-a-session")
                .await
                .unwrap()
                .is_none()
        );
        close(&store, &id).await.unwrap();
        assert!(
            super::caller(&store, &timeouts, &id)
                .await
                .unwrap()
                .is_none()
        );

        let idle = open(&store, &timeouts, &caller).await.unwrap();
        let Store::Sqlite(pool) = &store else {
            unreachable!()
        };
        sqlx::query("UPDATE web_sessions SET last_seen_at = last_seen_at - 1801")
            .execute(pool)
            .await
            .unwrap();
        assert!(
            super::caller(&store, &timeouts, &idle)
                .await
                .unwrap()
                .is_none()
        );
        let old = open(&store, &timeouts, &caller).await.unwrap();
        sqlx::query("UPDATE web_sessions SET expires_at = 0")
            .execute(pool)
            .await
            .unwrap();
        assert!(
            super::caller(&store, &timeouts, &old)
                .await
                .unwrap()
                .is_none()
        );
    }
}
