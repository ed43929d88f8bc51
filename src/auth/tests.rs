//! Identity end to end: simulated identity providers (RS256 and ES256 keys
//! generated here, JWKS served over real HTTP), one test per refusal, and the
//! client-credentials flow through `routes()`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::http::context::RequestContext;
use crate::store::{Store, test_support};

const AUDIENCE: &str = "passerelle-api";

// ---------------------------------------------------------------- keys

/// An RSA key pair made once for all tests (key generation is slow unoptimised).
struct RsaKey {
    private_pem: String,
    public_pem: String,
    n: String,
    e: String,
}

fn rsa_key() -> &'static RsaKey {
    static KEY: OnceLock<RsaKey> = OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::Generate;
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
        use rsa::traits::PublicKeyParts;
        let private = rsa::PrivateKey::generate();
        let public = private.to_public_key();
        RsaKey {
            private_pem: private
                .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap()
                .to_string(),
            public_pem: public
                .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap(),
            n: URL_SAFE_NO_PAD.encode(public.n_bytes()),
            e: URL_SAFE_NO_PAD.encode(public.e_bytes()),
        }
    })
}

fn rsa_jwk(kid: &str) -> Value {
    let key = rsa_key();
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": key.n, "e": key.e})
}

fn rsa_signer() -> EncodingKey {
    EncodingKey::from_rsa_pem(rsa_key().private_pem.as_bytes()).unwrap()
}

/// A fresh P-256 key: (signing key for tokens, its public JWK).
fn ec_key(kid: &str) -> (EncodingKey, Value) {
    let signing = p256::ecdsa::SigningKey::generate();
    let pem = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
    let jwk = keys::public_jwk(kid, signing.verifying_key());
    (EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(), jwk)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Standard claims of a valid token from `issuer`.
fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "aud": AUDIENCE, "sub": "alice", "exp": now() + 300, "iat": now(),
        "nbf": now() - 5, "jti": "token-1", "org": "Troyes",
        "realm_access": {"roles": ["passerelle-agent", "offline_access"]}
    })
}

fn sign(algorithm: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A token with a hand-made header (for headers `jsonwebtoken` would not write).
fn sign_with_header(
    header: &Value,
    claims: &Value,
    key: &EncodingKey,
    algorithm: Algorithm,
) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, algorithm).unwrap();
    format!("{message}.{signature}")
}

// ---------------------------------------------------------------- identity provider

/// A simulated identity provider: serves a JWKS and a discovery document, and
/// counts the requests it receives.
struct Idp {
    base: String,
    jwks: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
}

impl Idp {
    async fn start(jwks: Value) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        Idp::serve(listener, base, jwks).await
    }

    async fn serve(listener: tokio::net::TcpListener, base: String, jwks: Value) -> Idp {
        let jwks = Arc::new(Mutex::new(jwks));
        let hits = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (jwks.clone(), hits.clone());
        let discovery = json!({"issuer": base, "jwks_uri": format!("{base}/jwks")});
        let (discovery_hits, jwks_hits) = (hits.clone(), counted.clone());
        let app = Router::new()
            .route(
                "/jwks",
                get(move || {
                    jwks_hits.fetch_add(1, Ordering::SeqCst);
                    let document = served.lock().unwrap().clone();
                    async move { axum::Json(document) }
                }),
            )
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    discovery_hits.fetch_add(1, Ordering::SeqCst);
                    let document = discovery.clone();
                    async move { axum::Json(document) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Idp { base, jwks, hits }
    }

    fn set_keys(&self, keys: Vec<Value>) {
        *self.jwks.lock().unwrap() = json!({ "keys": keys });
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn issuer_config(issuer: &str) -> IssuerConfig {
    IssuerConfig {
        name: "idp".into(),
        issuer: issuer.into(),
        audiences: vec![AUDIENCE.into()],
        algorithms: vec!["RS256".into(), "ES256".into()],
        org_claim: Some("org".into()),
        roles_claim: "realm_access.roles".into(),
        role_prefix: Some("passerelle-".into()),
        ..IssuerConfig::default()
    }
}

async fn authenticator(config: AuthConfig) -> (Authenticator, Store, test_support::TestDatabase) {
    let (store, guard) = test_support::sqlite().await;
    let authenticator = Authenticator::new(&config, store.clone())
        .await
        .expect("authenticator");
    (authenticator, store, guard)
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

async fn refusal(authenticator: &Authenticator, token: &str) -> AuthFailure {
    let failure = authenticator
        .authenticate(&bearer(token))
        .await
        .expect_err("refused");
    assert!(
        !failure.detail.contains(token),
        "the detail never echoes the token"
    );
    failure
}

/// An authenticator trusting the RS256 key inline (no network), for refusals.
async fn rs256_inline() -> (Authenticator, test_support::TestDatabase) {
    let issuer = "https://idp.example";
    let config = AuthConfig {
        issuers: vec![IssuerConfig {
            jwks: Some(json!({"keys": [rsa_jwk("rsa-1")]})),
            algorithms: vec!["RS256".into()],
            ..issuer_config(issuer)
        }],
        ..AuthConfig::default()
    };
    let (authenticator, _, guard) = authenticator(config).await;
    (authenticator, guard)
}

const INLINE_ISSUER: &str = "https://idp.example";

// ---------------------------------------------------------------- providers

/// Tokens of an RS256 provider (JWKS over HTTP) are verified and their claims mapped.
#[tokio::test]
async fn rs256_provider_over_http() {
    let idp = Idp::start(json!({"keys": [rsa_jwk("rsa-1")]})).await;
    let config = AuthConfig {
        issuers: vec![IssuerConfig {
            jwks_url: Some(format!("{}/jwks", idp.base)),
            ..issuer_config(&idp.base)
        }],
        ..AuthConfig::default()
    };
    let (authenticator, _, _guard) = authenticator(config).await;
    assert_eq!(authenticator.readiness(), vec![("idp".to_owned(), Ok(()))]);

    let token = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims(&idp.base),
        &rsa_signer(),
    );
    let caller = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect("valid token");
    assert_eq!(caller.subject, "alice");
    assert_eq!(caller.org.as_deref(), Some("Troyes"));
    assert_eq!(
        caller.roles,
        vec!["anonymous", "agent"],
        "prefix filtered and removed"
    );
    assert_eq!(caller.auth_method, AuthMethod::ExternalJwt);
    assert_eq!(caller.token_id.as_deref(), Some("token-1"));
    assert_eq!(caller.claim("org").as_deref(), Some("Troyes"));

    // A token without roles gets the authenticated role.
    let mut plain = claims(&idp.base);
    plain.as_object_mut().unwrap().remove("realm_access");
    let token = sign(Algorithm::RS256, Some("rsa-1"), &plain, &rsa_signer());
    let caller = authenticator.authenticate(&bearer(&token)).await.unwrap();
    assert_eq!(caller.roles, vec!["anonymous", "authenticated"]);
}

/// An ES256 provider found by OIDC discovery; a rotated key (new kid) is picked
/// up on first use, and the background refresh drops the old one.
#[tokio::test]
async fn es256_provider_with_discovery_and_rotation() {
    let (first, first_jwk) = ec_key("ec-1");
    let idp = Idp::start(json!({"keys": [first_jwk]})).await;
    let config = AuthConfig {
        jwks_min_refresh_seconds: 1,
        jwks_refresh_seconds: 1,
        issuers: vec![IssuerConfig {
            discovery_url: Some(format!("{}/.well-known/openid-configuration", idp.base)),
            algorithms: vec!["ES256".into()],
            ..issuer_config(&idp.base)
        }],
        ..AuthConfig::default()
    };
    let (authenticator, _, _guard) = authenticator(config).await;
    let token = sign(Algorithm::ES256, Some("ec-1"), &claims(&idp.base), &first);
    assert!(authenticator.authenticate(&bearer(&token)).await.is_ok());

    // The provider rotates: ec-2 signs, ec-1 is withdrawn.
    let (second, second_jwk) = ec_key("ec-2");
    idp.set_keys(vec![second_jwk]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut fresh = claims(&idp.base);
    fresh["jti"] = json!("token-2");
    let rotated = sign(Algorithm::ES256, Some("ec-2"), &fresh, &second);
    let caller = authenticator
        .authenticate(&bearer(&rotated))
        .await
        .expect("new kid picked up");
    assert_eq!(caller.token_id.as_deref(), Some("token-2"));

    // A new token from the withdrawn key is refused once the set is refreshed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut later = claims(&idp.base);
    later["jti"] = json!("token-3");
    let old = sign(Algorithm::ES256, Some("ec-1"), &later, &first);
    assert_eq!(refusal(&authenticator, &old).await.reason, "unknown_kid");
}

/// Random kids do not hammer the provider: at most one refetch per minimum interval.
#[tokio::test]
async fn unknown_kid_flood_is_rate_limited() {
    let (key, jwk) = ec_key("ec-1");
    let idp = Idp::start(json!({"keys": [jwk]})).await;
    let config = AuthConfig {
        jwks_min_refresh_seconds: 30,
        issuers: vec![IssuerConfig {
            jwks_url: Some(format!("{}/jwks", idp.base)),
            ..issuer_config(&idp.base)
        }],
        ..AuthConfig::default()
    };
    let (authenticator, _, _guard) = authenticator(config).await;
    let initial = idp.hits();
    assert_eq!(initial, 1);
    for index in 0..50 {
        let token = sign(
            Algorithm::ES256,
            Some(&format!("random-{index}")),
            &claims(&idp.base),
            &key,
        );
        assert_eq!(refusal(&authenticator, &token).await.reason, "unknown_kid");
    }
    assert_eq!(
        idp.hits(),
        initial,
        "the initial fetch is less than 30 s old: no refetch"
    );
}

/// A provider down at start: the gateway starts, says why it is not ready,
/// refuses its tokens, and accepts them once the provider is back.
#[tokio::test]
async fn provider_down_at_start() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let base = format!("http://{address}");
    let config = AuthConfig {
        jwks_min_refresh_seconds: 1,
        issuers: vec![IssuerConfig {
            jwks_url: Some(format!("{base}/jwks")),
            ..issuer_config(&base)
        }],
        ..AuthConfig::default()
    };
    let (authenticator, _, _guard) = authenticator(config).await;
    let readiness = authenticator.readiness();
    assert_eq!(readiness[0].0, "idp");
    let why = readiness[0].1.clone().unwrap_err();
    assert!(why.contains("keys unavailable"), "{why}");

    let token = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims(&base),
        &rsa_signer(),
    );
    let failure = refusal(&authenticator, &token).await;
    assert_eq!(failure.reason, "keys_unavailable");
    assert!(failure.detail.contains("keys are unavailable"));

    // The provider comes up on the same address.
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let _idp = Idp::serve(listener, base.clone(), json!({"keys": [rsa_jwk("rsa-1")]})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(authenticator.authenticate(&bearer(&token)).await.is_ok());
    assert_eq!(authenticator.readiness()[0].1, Ok(()));
}

/// A discovery document naming another issuer is not trusted.
#[tokio::test]
async fn discovery_must_name_the_issuer() {
    let idp = Idp::start(json!({"keys": [rsa_jwk("rsa-1")]})).await;
    let config = AuthConfig {
        issuers: vec![IssuerConfig {
            discovery_url: Some(format!("{}/.well-known/openid-configuration", idp.base)),
            ..issuer_config("https://someone-else.example")
        }],
        ..AuthConfig::default()
    };
    let (authenticator, _, _guard) = authenticator(config).await;
    let why = authenticator.readiness()[0].1.clone().unwrap_err();
    assert!(why.contains("names issuer"), "{why}");
}

// ---------------------------------------------------------------- anonymous and schemes

/// No credentials: anonymous. Basic (token endpoint) is not an identity; other schemes are refused.
#[tokio::test]
async fn no_credentials_is_anonymous() {
    let (authenticator, _guard) = rs256_inline().await;
    assert_eq!(
        authenticator.authenticate(&HeaderMap::new()).await.unwrap(),
        Caller::anonymous()
    );
    let mut basic = HeaderMap::new();
    basic.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic YTpi"),
    );
    assert!(
        authenticator
            .authenticate(&basic)
            .await
            .unwrap()
            .is_anonymous()
    );
    let mut digest = HeaderMap::new();
    digest.insert(header::AUTHORIZATION, HeaderValue::from_static("Digest x"));
    assert_eq!(
        authenticator
            .authenticate(&digest)
            .await
            .unwrap_err()
            .reason,
        "unsupported_scheme"
    );
    assert_eq!(
        authenticator
            .authenticate(&bearer(""))
            .await
            .unwrap_err()
            .reason,
        "malformed"
    );
}

// ---------------------------------------------------------------- one test per refusal

/// `alg: none` is refused.
#[tokio::test]
async fn refuses_alg_none() {
    let (authenticator, _guard) = rs256_inline().await;
    let token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "rsa-1"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(INLINE_ISSUER).to_string())
    );
    assert_eq!(refusal(&authenticator, &token).await.reason, "alg_none");
}

/// An algorithm the issuer does not list is refused, even with a valid key.
#[tokio::test]
async fn refuses_alg_not_allowed() {
    let (authenticator, _guard) = rs256_inline().await;
    let token = sign(
        Algorithm::PS256,
        Some("rsa-1"),
        &claims(INLINE_ISSUER),
        &rsa_signer(),
    );
    assert_eq!(
        refusal(&authenticator, &token).await.reason,
        "alg_not_allowed"
    );
}

/// HS256 signed with the issuer's public key (algorithm confusion) is refused.
#[tokio::test]
async fn refuses_hs256_with_public_key() {
    let (authenticator, _guard) = rs256_inline().await;
    let public_as_secret = EncodingKey::from_secret(rsa_key().public_pem.as_bytes()).unwrap();
    let token = sign(
        Algorithm::HS256,
        Some("rsa-1"),
        &claims(INLINE_ISSUER),
        &public_as_secret,
    );
    let failure = refusal(&authenticator, &token).await;
    assert_eq!(failure.reason, "alg_confusion");
    // The same against the gateway's own issuer.
    let mut gateway = claims("passerelle");
    gateway["aud"] = json!("passerelle");
    let token = sign(Algorithm::HS256, None, &gateway, &public_as_secret);
    assert_eq!(
        refusal(&authenticator, &token).await.reason,
        "alg_confusion"
    );
}

/// An expired token is refused (beyond the leeway).
#[tokio::test]
async fn refuses_expired() {
    let (authenticator, _guard) = rs256_inline().await;
    let mut expired = claims(INLINE_ISSUER);
    expired["exp"] = json!(now() - 120);
    let token = sign(Algorithm::RS256, Some("rsa-1"), &expired, &rsa_signer());
    assert_eq!(refusal(&authenticator, &token).await.reason, "expired");
    // Within the 30 s leeway it passes.
    expired["exp"] = json!(now() - 10);
    let token = sign(Algorithm::RS256, Some("rsa-1"), &expired, &rsa_signer());
    assert!(authenticator.authenticate(&bearer(&token)).await.is_ok());
}

/// A token not valid yet (`nbf` in the future) is refused.
#[tokio::test]
async fn refuses_not_yet_valid() {
    let (authenticator, _guard) = rs256_inline().await;
    let mut early = claims(INLINE_ISSUER);
    early["nbf"] = json!(now() + 600);
    let token = sign(Algorithm::RS256, Some("rsa-1"), &early, &rsa_signer());
    assert_eq!(
        refusal(&authenticator, &token).await.reason,
        "not_yet_valid"
    );
}

/// A token from an untrusted issuer, or without `iss`, is refused.
#[tokio::test]
async fn refuses_wrong_issuer() {
    let (authenticator, _guard) = rs256_inline().await;
    let token = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims("https://evil.example"),
        &rsa_signer(),
    );
    assert_eq!(refusal(&authenticator, &token).await.reason, "wrong_issuer");
    let mut no_issuer = claims(INLINE_ISSUER);
    no_issuer.as_object_mut().unwrap().remove("iss");
    let token = sign(Algorithm::RS256, Some("rsa-1"), &no_issuer, &rsa_signer());
    assert_eq!(refusal(&authenticator, &token).await.reason, "wrong_issuer");
}

/// A token for another audience, or without `aud`, is refused.
#[tokio::test]
async fn refuses_wrong_audience() {
    let (authenticator, _guard) = rs256_inline().await;
    let mut other = claims(INLINE_ISSUER);
    other["aud"] = json!(["another-api"]);
    let token = sign(Algorithm::RS256, Some("rsa-1"), &other, &rsa_signer());
    assert_eq!(
        refusal(&authenticator, &token).await.reason,
        "wrong_audience"
    );
    other.as_object_mut().unwrap().remove("aud");
    let token = sign(Algorithm::RS256, Some("rsa-1"), &other, &rsa_signer());
    let failure = refusal(&authenticator, &token).await;
    assert_eq!(failure.reason, "missing_claim");
    assert!(failure.detail.contains("aud"));
}

/// A key id the issuer never published is refused.
#[tokio::test]
async fn refuses_unknown_kid() {
    let (authenticator, _guard) = rs256_inline().await;
    let token = sign(
        Algorithm::RS256,
        Some("rsa-404"),
        &claims(INLINE_ISSUER),
        &rsa_signer(),
    );
    assert_eq!(refusal(&authenticator, &token).await.reason, "unknown_kid");
}

/// A signature by another key (under the real kid), or a tampered payload, is refused.
#[tokio::test]
async fn refuses_bad_signature() {
    let issuer = "https://ec.example";
    let (real, jwk) = ec_key("ec-1");
    let config = AuthConfig {
        issuers: vec![IssuerConfig {
            jwks: Some(json!({"keys": [jwk]})),
            ..issuer_config(issuer)
        }],
        ..AuthConfig::default()
    };
    let (authenticator, _, _guard) = authenticator(config).await;
    let (forger, _) = ec_key("ec-1");
    let forged = sign(Algorithm::ES256, Some("ec-1"), &claims(issuer), &forger);
    assert_eq!(
        refusal(&authenticator, &forged).await.reason,
        "bad_signature"
    );

    let genuine = sign(Algorithm::ES256, Some("ec-1"), &claims(issuer), &real);
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut elevated = claims(issuer);
    elevated["realm_access"] = json!({"roles": ["passerelle-admin"]});
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(elevated.to_string()),
        parts[2]
    );
    assert_eq!(
        refusal(&authenticator, &tampered).await.reason,
        "bad_signature"
    );
    assert!(authenticator.authenticate(&bearer(&genuine)).await.is_ok());
}

/// Truncated tokens and garbage are refused as malformed.
#[tokio::test]
async fn refuses_truncated_and_garbage() {
    let (authenticator, _guard) = rs256_inline().await;
    let token = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims(INLINE_ISSUER),
        &rsa_signer(),
    );
    for bad in [
        "garbage",
        "a.b.c",
        "...",
        &token[..token.len() / 2],
        &token[..token.rfind('.').unwrap()],
    ] {
        let failure = refusal(&authenticator, bad).await;
        assert!(
            ["malformed", "bad_signature"].contains(&failure.reason),
            "{bad}: {failure}"
        );
    }
    assert_eq!(refusal(&authenticator, "garbage").await.reason, "malformed");
    // Cut before the signature: no third part, malformed whatever the key.
    let payload_end = token.rfind('.').unwrap();
    assert_eq!(
        refusal(&authenticator, &token[..payload_end / 2])
            .await
            .reason,
        "malformed"
    );
    // A signature cut short is refused whichever check sees it first.
    let cut = refusal(&authenticator, &token[..token.len() - 10]).await;
    assert!(
        ["malformed", "bad_signature"].contains(&cut.reason),
        "{cut}"
    );
}

/// A header larger than 8 KiB is refused before anything else.
#[tokio::test]
async fn refuses_oversized_header() {
    let (authenticator, _guard) = rs256_inline().await;
    let header = json!({"alg": "RS256", "kid": "rsa-1", "padding": "x".repeat(9000)});
    let token = sign_with_header(
        &header,
        &claims(INLINE_ISSUER),
        &rsa_signer(),
        Algorithm::RS256,
    );
    assert_eq!(
        refusal(&authenticator, &token).await.reason,
        "header_too_large"
    );
}

/// `jku`, `x5u` and `jwk` headers are never followed: the key comes from the
/// issuer's set, and the attacker's server is never contacted.
#[tokio::test]
async fn ignores_key_location_headers() {
    let (authenticator, _guard) = rs256_inline().await;
    let (attacker_key, attacker_jwk) = ec_key("evil");
    let attacker = Idp::start(json!({"keys": [attacker_jwk.clone()]})).await;
    let jwks_url = format!("{}/jwks", attacker.base);
    let mut attacker_rsa = attacker_jwk.clone();
    attacker_rsa["kid"] = json!("rsa-1");
    for (kid, extra) in [
        ("evil", json!({"jku": jwks_url})),
        ("evil", json!({"x5u": jwks_url})),
        ("evil", json!({"jwk": attacker_jwk})),
        ("rsa-1", json!({"jku": jwks_url, "jwk": attacker_rsa})),
    ] {
        let mut header = json!({"alg": "ES256", "kid": kid});
        header
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let token = sign_with_header(
            &header,
            &claims(INLINE_ISSUER),
            &attacker_key,
            Algorithm::ES256,
        );
        let failure = refusal(&authenticator, &token).await;
        // ES256 is not accepted for this RS256-only issuer: refused on the algorithm first.
        assert_eq!(failure.reason, "alg_not_allowed", "{header}");
    }
    // With ES256 allowed, the embedded key still is not used.
    let issuer = "https://ec.example";
    let (_, real_jwk) = ec_key("ec-1");
    let config = AuthConfig {
        issuers: vec![IssuerConfig {
            jwks: Some(json!({"keys": [real_jwk]})),
            ..issuer_config(issuer)
        }],
        ..AuthConfig::default()
    };
    let (ec_authenticator, _, _guard2) = self::authenticator(config).await;
    let mut embedded = attacker_jwk.clone();
    embedded["kid"] = json!("ec-1");
    for (kid, expected) in [("evil", "unknown_kid"), ("ec-1", "bad_signature")] {
        let header =
            json!({"alg": "ES256", "kid": kid, "jku": jwks_url, "x5u": jwks_url, "jwk": embedded});
        let token = sign_with_header(&header, &claims(issuer), &attacker_key, Algorithm::ES256);
        assert_eq!(refusal(&ec_authenticator, &token).await.reason, expected);
    }
    assert_eq!(
        attacker.hits(),
        0,
        "the attacker's server was never contacted"
    );
}

/// An issuer with a shared secret accepts HS256 with that secret only.
#[tokio::test]
async fn hs256_only_with_the_configured_secret() {
    let issuer = "https://hs.example";
    let secret = "0123456789abcdef0123456789abcdef";
    let config = AuthConfig {
        issuers: vec![IssuerConfig {
            algorithms: vec!["HS256".into()],
            hs256_secret: Some(secret.into()),
            ..issuer_config(issuer)
        }],
        ..AuthConfig::default()
    };
    let (authenticator, _, _guard) = authenticator(config).await;
    let good = sign(
        Algorithm::HS256,
        None,
        &claims(issuer),
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    );
    assert!(authenticator.authenticate(&bearer(&good)).await.is_ok());
    let other = EncodingKey::from_secret(b"another secret of thirty-two bytes!").unwrap();
    let bad = sign(Algorithm::HS256, None, &claims(issuer), &other);
    assert_eq!(refusal(&authenticator, &bad).await.reason, "bad_signature");
    let rs = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims(issuer),
        &rsa_signer(),
    );
    assert_eq!(refusal(&authenticator, &rs).await.reason, "alg_not_allowed");
}

// ---------------------------------------------------------------- gateway tokens

/// Tokens minted with the gateway's key are accepted; another gateway's key is unknown.
#[tokio::test]
async fn gateway_tokens() {
    let (authenticator, store, _guard) = authenticator(AuthConfig::default()).await;
    let keys = KeyRing::load(&store, &AuthConfig::default()).await.unwrap();
    let token = keys
        .mint("bob", Some("Troyes"), &["agent".to_owned()], 60)
        .await
        .unwrap();
    let caller = authenticator.authenticate(&bearer(&token)).await.unwrap();
    assert_eq!(caller.subject, "bob");
    assert_eq!(caller.roles, vec!["anonymous", "agent"]);
    assert_eq!(caller.auth_method, AuthMethod::GatewayToken);
    assert!(caller.token_id.is_some());
    assert_eq!(caller.allowed_datasets, None);

    // Rotated by another instance: the new key is found in the store.
    keys.rotate().await.unwrap();
    let token = keys.mint("carol", None, &[], 60).await.unwrap();
    let caller = authenticator.authenticate(&bearer(&token)).await.unwrap();
    assert_eq!(caller.roles, vec!["anonymous", "authenticated"]);

    let (other_store, _other_guard) = test_support::sqlite().await;
    let foreign = KeyRing::load(&other_store, &AuthConfig::default())
        .await
        .unwrap();
    let token = foreign
        .mint("mallory", None, &["admin".to_owned()], 60)
        .await
        .unwrap();
    assert_eq!(refusal(&authenticator, &token).await.reason, "unknown_kid");
}

// ---------------------------------------------------------------- HTTP

/// What the token endpoint noted in the request's audit record.
#[derive(Debug, PartialEq)]
struct TokenAttempt {
    client_id: Option<String>,
    outcome: String,
}

async fn call(
    app: &Router,
    mut request: Request<Body>,
) -> (StatusCode, HeaderMap, Option<TokenAttempt>, Value) {
    let context = RequestContext::new("test", Caller::anonymous());
    request.extensions_mut().insert(context.clone());
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let record = context.record();
    let attempt = record.rule.map(|outcome| TokenAttempt {
        client_id: record.client_id,
        outcome,
    });
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, attempt, body)
}

fn token_request(form: &[(&str, &str)]) -> Request<Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    Request::post(http::TOKEN_PATH)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

fn credentials<'a>(client_id: &'a str, secret: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
    ]
}

async fn client_credentials_flow(store: Store) {
    let config = AuthConfig {
        api_key_cache_seconds: 1,
        ..AuthConfig::default()
    };
    let authenticator = Authenticator::new(&config, store.clone()).await.unwrap();
    let app: Router = routes::<Authenticator>()
        .with_state(authenticator.clone())
        .into();
    let registry = ClientRegistry::new(store);
    let month = chrono::Utc::now() + chrono::Duration::days(30);
    let datasets = vec!["locations-velos".to_owned()];
    let (client_id, secret) = registry
        .create(
            "Troyes",
            &["partenaire".to_owned(), "lecteur".to_owned()],
            Some(&datasets),
            Some(month),
        )
        .await
        .unwrap();

    // Success with the form body.
    let (status, headers, attempt, body) =
        call(&app, token_request(&credentials(&client_id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(
        attempt,
        Some(TokenAttempt {
            client_id: Some(client_id.clone()),
            outcome: "issued".to_owned()
        })
    );
    let token = body["access_token"].as_str().unwrap();
    let caller = authenticator.authenticate(&bearer(token)).await.unwrap();
    assert_eq!(caller.subject, client_id);
    assert_eq!(caller.client_id.as_deref(), Some(client_id.as_str()));
    assert_eq!(caller.org.as_deref(), Some("Troyes"));
    assert_eq!(caller.roles, vec!["anonymous", "partenaire", "lecteur"]);
    assert_eq!(caller.allowed_datasets, Some(datasets.clone()));
    assert_eq!(caller.auth_method, AuthMethod::GatewayToken);
    for claim in ["iss", "aud", "jti", "iat", "exp", "nbf"] {
        assert!(caller.claims.contains_key(claim), "{claim}");
    }

    // HTTP Basic, and a scope narrowing the roles.
    let basic = STANDARD.encode(format!("{client_id}:{secret}"));
    let request = Request::post(http::TOKEN_PATH)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Body::from("grant_type=client_credentials&scope=lecteur"))
        .unwrap();
    let (status, _, _, body) = call(&app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "lecteur");
    let caller = authenticator
        .authenticate(&bearer(body["access_token"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(caller.roles, vec!["anonymous", "lecteur"]);

    // Malformed requests (RFC 6749 §5.2).
    let mut wrong_grant = credentials(&client_id, &secret);
    wrong_grant[0].1 = "password";
    let (status, _, attempt, body) = call(&app, token_request(&wrong_grant)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    assert_eq!(attempt.unwrap().outcome, "unsupported_grant_type");
    let (status, _, _, body) =
        call(&app, token_request(&credentials(&client_id, &secret)[1..])).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let mut scoped = credentials(&client_id, &secret);
    scoped.push(("scope", "admin"));
    let (status, _, _, body) = call(&app, token_request(&scoped)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    let json_body = Request::post(http::TOKEN_PATH)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(call(&app, json_body).await.0, StatusCode::BAD_REQUEST);

    // Disabled client and ended agreement.
    let (disabled, disabled_secret) = registry
        .create("Sainte-Savine", &[], None, None)
        .await
        .unwrap();
    registry.disable(&disabled).await.unwrap();
    let (status, headers, attempt, body) = call(
        &app,
        token_request(&credentials(&disabled, &disabled_secret)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert!(
        headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(attempt.unwrap().outcome, "client_disabled");
    let yesterday = chrono::Utc::now() - chrono::Duration::days(1);
    let (ended, ended_secret) = registry
        .create("ADEME", &[], None, Some(yesterday))
        .await
        .unwrap();
    let (status, _, attempt, _) =
        call(&app, token_request(&credentials(&ended, &ended_secret))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(attempt.unwrap().outcome, "expired");

    // Wrong secrets: 401 until the limit, then 429 even with the right secret.
    for _ in 0..5 {
        let (status, _, attempt, body) = call(
            &app,
            token_request(&credentials(&client_id, "not-the-secret")),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client"))
        );
        let attempt = attempt.unwrap();
        assert_eq!(
            (attempt.client_id.as_deref(), attempt.outcome.as_str()),
            (Some(client_id.as_str()), "wrong_secret")
        );
        assert!(!body.to_string().contains("not-the-secret"));
    }
    let (status, headers, attempt, _) =
        call(&app, token_request(&credentials(&client_id, &secret))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(attempt.unwrap().outcome, "rate_limited");

    // API keys, as a bearer token and in X-API-Key, until revoked.
    let (key_id, key) = registry.create_api_key(&client_id, None).await.unwrap();
    let caller = authenticator.authenticate(&bearer(&key)).await.unwrap();
    assert_eq!(caller.auth_method, AuthMethod::ApiKey);
    assert_eq!(caller.token_id.as_deref(), Some(key_id.as_str()));
    assert_eq!(caller.allowed_datasets, Some(datasets));
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_str(&key).unwrap());
    assert_eq!(
        authenticator
            .authenticate(&headers)
            .await
            .unwrap()
            .client_id,
        Some(client_id.clone())
    );
    let mut both = bearer(&key);
    both.insert("x-api-key", HeaderValue::from_str(&key).unwrap());
    assert_eq!(
        authenticator.authenticate(&both).await.unwrap_err().reason,
        "ambiguous_credentials"
    );
    registry.revoke_api_key(&key_id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let failure = authenticator.authenticate(&headers).await.unwrap_err();
    assert_eq!(failure.reason, "revoked");
    assert_eq!(failure.client_id.as_deref(), Some(client_id.as_str()));
    assert!(!failure.detail.contains(&key));
    let forged = format!("pk_{key_id}_{}", "A".repeat(43));
    assert_eq!(
        authenticator
            .authenticate(&bearer(&forged))
            .await
            .unwrap_err()
            .reason,
        "wrong_secret"
    );

    // Published keys and metadata.
    let request = Request::get("/.well-known/jwks.json")
        .body(Body::empty())
        .unwrap();
    let (status, _, _, jwks) = call(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|key| key["kty"] == "EC" && key.get("d").is_none())
    );
    let request = Request::get("/.well-known/oauth-authorization-server")
        .header(header::HOST, "data.example.org")
        .body(Body::empty())
        .unwrap();
    let (_, _, _, metadata) = call(&app, request).await;
    assert_eq!(
        metadata["token_endpoint"],
        "http://data.example.org/api/v1/auth/token"
    );
    assert_eq!(
        metadata["jwks_uri"],
        "http://data.example.org/.well-known/jwks.json"
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["client_credentials"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
}

/// Client credentials and API keys through `routes()` on SQLite.
#[tokio::test]
async fn client_credentials_on_sqlite() {
    let (store, _guard) = test_support::sqlite().await;
    client_credentials_flow(store).await;
}

/// The same on PostgreSQL.
#[tokio::test]
async fn client_credentials_on_postgres() {
    let Some((store, _guard)) = test_support::postgres().await else {
        return;
    };
    client_credentials_flow(store).await;
}

/// Failures are also counted per IP (from `ConnectInfo`), across client ids.
#[tokio::test]
async fn failed_attempts_are_limited_per_ip() {
    let (authenticator, _, _guard) = authenticator(AuthConfig::default()).await;
    let app: Router = routes::<Authenticator>().with_state(authenticator).into();
    let address: std::net::SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let mut last = StatusCode::OK;
    for index in 0..6 {
        let mut request = token_request(&credentials(&format!("client_{index}"), "guess"));
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(address));
        last = call(&app, request).await.0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // Another IP is not affected.
    let mut request = token_request(&credentials("client_9", "guess"));
    request.extensions_mut().insert(axum::extract::ConnectInfo(
        "192.0.2.8:4000".parse::<std::net::SocketAddr>().unwrap(),
    ));
    assert_eq!(call(&app, request).await.0, StatusCode::UNAUTHORIZED);
}

/// An EdDSA (Ed25519) provider's keys work like the others.
#[tokio::test]
async fn eddsa_provider() {
    use rand::TryRng;
    let mut seed = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut seed).unwrap();
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    // PKCS#8 v1 of an Ed25519 private key: a fixed prefix, then the seed.
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(&seed);
    let signer = EncodingKey::from_ed_der(&der);
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": URL_SAFE_NO_PAD.encode(public.as_bytes())});
    let issuer = "https://ed.example";
    let config = AuthConfig {
        issuers: vec![IssuerConfig {
            jwks: Some(json!({"keys": [jwk]})),
            algorithms: vec!["EdDSA".into()],
            ..issuer_config(issuer)
        }],
        ..AuthConfig::default()
    };
    let (authenticator, _, _guard) = authenticator(config).await;
    let token = sign(Algorithm::EdDSA, Some("ed-1"), &claims(issuer), &signer);
    let caller = authenticator
        .authenticate(&bearer(&token))
        .await
        .expect("EdDSA token");
    assert_eq!(caller.roles, vec!["anonymous", "agent"]);
    let (ec, _) = ec_key("ed-1");
    let wrong_family = sign(Algorithm::ES256, Some("ed-1"), &claims(issuer), &ec);
    assert_eq!(
        refusal(&authenticator, &wrong_family).await.reason,
        "alg_not_allowed"
    );
}
