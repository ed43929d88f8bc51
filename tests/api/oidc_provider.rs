//! A small OpenID Connect provider for the sign-in tests: discovery,
//! authorization (a page listing its test users, each a link that approves
//! the sign-in as that user), token endpoint (code + PKCE S256 checked) and
//! JWKS, ID tokens signed with a fresh P-256 key. Started on a random port
//! beside the gateway; `spawn_app_with_sign_in` configures the gateway to
//! trust it (`[[auth.issuers]]` and `[web.oidc]`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{StoreKind, TestApp, spawn_app_at};

/// The gateway's client id at the provider.
pub const CLIENT_ID: &str = "passerelle-pages";
const KID: &str = "test-idp-1";

/// The provider's test users: subject, organisation, roles.
pub const USERS: [(&str, &str, &[&str]); 4] = [
    ("agent.dupont", "Troyes Champagne Métropole", &["agent"]),
    (
        "auditrice.martin",
        "Troyes Champagne Métropole",
        &["auditor"],
    ),
    (
        "gestionnaire.leroy",
        "Troyes Champagne Métropole",
        &["steward"],
    ),
    // Manages and publishes the metropole's datasets (the stewards' forms).
    (
        "redactrice.bernard",
        "Troyes Champagne Métropole",
        &["steward", "steward-tcm"],
    ),
];

struct Grant {
    subject: String,
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct Inner {
    issuer: String,
    signer: EncodingKey,
    jwk: Value,
    codes: Mutex<HashMap<String, Grant>>,
    /// When set, ID tokens carry another nonce (a replayed token).
    wrong_nonce: AtomicBool,
}

/// A running provider.
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

impl Provider {
    pub async fn start() -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let signing = p256::ecdsa::SigningKey::generate();
        let pem = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
        let provider = Provider {
            inner: Arc::new(Inner {
                jwk: passerelle::auth::keys::public_jwk(KID, signing.verifying_key()),
                signer: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
                issuer,
                codes: Mutex::default(),
                wrong_nonce: AtomicBool::new(false),
            }),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(provider.clone());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        provider
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// From now on, ID tokens carry a nonce the gateway never sent.
    pub fn send_wrong_nonce(&self) {
        self.inner.wrong_nonce.store(true, Ordering::SeqCst);
    }

    /// Makes the gateway's settings trust this provider for the sign-in.
    pub fn configure(&self, settings: &mut passerelle::config::Settings, gateway: &str) {
        settings.auth.issuers.push(
            serde_json::from_value(json!({
                "name": "test-idp",
                "issuer": self.issuer(),
                // API tokens of this provider would carry another audience.
                "audiences": ["passerelle-api"],
                "algorithms": ["ES256"],
                "jwks": {"keys": [self.inner.jwk.clone()]},
                "org_claim": "org",
                "roles_claim": "roles",
            }))
            .unwrap(),
        );
        settings.web.oidc = Some(
            serde_json::from_value(json!({
                "issuer": self.issuer(),
                "client_id": CLIENT_ID,
                "redirect_url": format!("{gateway}/login/callback"),
                "scopes": ["openid", "profile"],
            }))
            .unwrap(),
        );
    }
}

async fn discovery(State(provider): State<Provider>) -> Json<Value> {
    let issuer = provider.issuer();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn jwks(State(provider): State<Provider>) -> Json<Value> {
    Json(json!({"keys": [provider.inner.jwk.clone()]}))
}

/// Without `user`: a page of links, one per test user. With it: approved,
/// back to the gateway with a code.
async fn authorize(
    State(provider): State<Provider>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| params.get(name).cloned().unwrap_or_default();
    if param("response_type") != "code"
        || param("client_id") != CLIENT_ID
        || param("code_challenge_method") != "S256"
        || param("code_challenge").is_empty()
        || param("state").is_empty()
        || param("nonce").is_empty()
        || !param("scope").split(' ').any(|scope| scope == "openid")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let Some(user) = params.get("user") else {
        let mut links = String::new();
        for (subject, _, _) in USERS {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (key, value) in &params {
                query.append_pair(key, value);
            }
            query.append_pair("user", subject);
            links.push_str(&format!(
                "<li><a href=\"/authorize?{}\">{subject}</a></li>",
                query.finish().replace('&', "&amp;")
            ));
        }
        return Html(format!(
            "<!doctype html><html lang=\"en\"><head><title>Test provider</title><link rel=\"icon\" href=\"data:,\"></head>\
             <body><main><h1>Sign in as</h1><ul>{links}</ul></main></body></html>"
        ))
        .into_response();
    };
    if !USERS.iter().any(|(subject, _, _)| subject == user) {
        return (StatusCode::BAD_REQUEST, "unknown user").into_response();
    }
    let code = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{}{}", param("state"), user)));
    provider.inner.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            subject: user.clone(),
            nonce: param("nonce"),
            challenge: param("code_challenge"),
            redirect_uri: param("redirect_uri"),
        },
    );
    let back = format!(
        "{}?{}",
        param("redirect_uri"),
        form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &param("state"))
            .finish()
    );
    (StatusCode::SEE_OTHER, [(header::LOCATION, back)]).into_response()
}

/// The code for an ID token, once, with the PKCE verifier of its challenge.
async fn token(
    State(provider): State<Provider>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let refuse =
        |error: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response();
    if field("grant_type") != "authorization_code" || field("client_id") != CLIENT_ID {
        return refuse("invalid_request");
    }
    if headers
        .get(header::CONTENT_TYPE)
        .is_none_or(|value| value != "application/x-www-form-urlencoded")
    {
        return refuse("invalid_request");
    }
    let Some(grant) = provider.inner.codes.lock().unwrap().remove(&field("code")) else {
        return refuse("invalid_grant");
    };
    let verifier = field("code_verifier");
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if challenge != grant.challenge || field("redirect_uri") != grant.redirect_uri {
        return refuse("invalid_grant");
    }
    let (subject, org, roles) = USERS
        .iter()
        .find(|(subject, _, _)| *subject == grant.subject)
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let nonce = if provider.inner.wrong_nonce.load(Ordering::SeqCst) {
        "another-nonce".to_owned()
    } else {
        grant.nonce
    };
    let claims = json!({
        "iss": provider.issuer(), "aud": CLIENT_ID, "sub": subject, "org": org,
        "roles": roles, "nonce": nonce, "iat": now, "exp": now + 300,
        "name": subject,
    });
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(KID.to_owned());
    let id_token = jsonwebtoken::encode(&header, &claims, &provider.inner.signer).unwrap();
    Json(json!({
        "access_token": "opaque", "token_type": "Bearer", "expires_in": 300, "id_token": id_token,
    }))
    .into_response()
}

/// A gateway whose pages sign staff in with a fresh test provider.
pub async fn spawn_app_with_sign_in(kind: StoreKind) -> Option<(TestApp, Provider)> {
    let provider = Provider::start().await;
    let app = spawn_app_at(kind, |settings, gateway| {
        provider.configure(settings, gateway)
    })
    .await?;
    Some((app, provider))
}
