//! Turns a request's credentials into a [`Caller`]: a bearer JWT (from an
//! external provider or from the gateway), an API key, or nothing at all
//! (anonymous). Present but invalid credentials are refused, never treated
//! as anonymous.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use moka::future::Cache;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::caller::{AuthFailure, AuthMethod, Caller, caller_roles};
use super::clients::{API_KEY_PREFIX, ClientRefusal, ClientRegistry, ClientState};
use super::config::{AuthConfig, IssuerConfig};
use super::jwks::{ProviderKeys, spawn_refresher};
use super::jwt::{self, Expectations, Unverified};
use super::keys::KeyRing;
use super::limiter::FailedAttempts;
use crate::store::Store;

/// How long a verified token is reused without checking its signature again.
const VERIFIED_TOKEN_TTL: Duration = Duration::from_secs(60);

/// Verifies credentials. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: AuthConfig,
    pub keys: KeyRing,
    pub clients: ClientRegistry,
    pub failures: FailedAttempts,
    issuers: Vec<ExternalIssuer>,
    /// Verified tokens by SHA-256, until min(exp, 60 s).
    verified: Cache<[u8; 32], VerifiedToken>,
    /// Verified API keys by SHA-256, for `api_key_cache_seconds`.
    api_keys: Cache<[u8; 32], Arc<Caller>>,
    /// Partner clients' state (`None`: no such client), for
    /// `client_state_cache_seconds` or until a change is heard.
    client_states: Cache<String, Option<ClientState>>,
}

#[derive(Clone)]
struct VerifiedToken {
    caller: Arc<Caller>,
    until: Instant,
}

struct ExternalIssuer {
    config: IssuerConfig,
    algorithms: Vec<Algorithm>,
    hs256: Option<DecodingKey>,
    keys: Arc<ProviderKeys>,
    leeway_seconds: u64,
}

impl Authenticator {
    /// Loads the gateway's keys and fetches every provider's keys once. A
    /// provider that is down does not make this fail: its tokens are refused
    /// and [`Authenticator::readiness`] says why until its keys arrive.
    pub async fn new(config: &AuthConfig, store: Store) -> anyhow::Result<Authenticator> {
        config.check()?;
        // reqwest is built without a TLS provider: install ring's (once per process).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.jwks_timeout_seconds.max(1)))
            .connect_timeout(Duration::from_secs(config.jwks_timeout_seconds.max(1)))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("passerelle/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let keys = KeyRing::load(&store, config).await?;
        let min_refresh = Duration::from_secs(config.jwks_min_refresh_seconds);
        let mut issuers = Vec::with_capacity(config.issuers.len());
        for issuer in &config.issuers {
            let algorithms = issuer
                .algorithms
                .iter()
                .map(|name| name.parse::<Algorithm>())
                .collect::<Result<Vec<_>, _>>()?;
            let hs256 = issuer
                .hs256_secret
                .as_ref()
                .filter(|_| algorithms.contains(&Algorithm::HS256))
                .map(|secret| DecodingKey::from_secret(secret.as_bytes()))
                .transpose()?;
            issuers.push(ExternalIssuer {
                algorithms,
                hs256,
                keys: Arc::new(ProviderKeys::new(issuer, http.clone(), min_refresh)),
                leeway_seconds: issuer.leeway_seconds.unwrap_or(config.leeway_seconds),
                config: issuer.clone(),
            });
        }
        futures::future::join_all(issuers.iter().map(|issuer| issuer.keys.refresh_if_due())).await;
        spawn_refresher(
            issuers
                .iter()
                .map(|issuer| Arc::downgrade(&issuer.keys))
                .collect(),
            Duration::from_secs(config.jwks_refresh_seconds),
            min_refresh,
        );
        let inner = Inner {
            failures: FailedAttempts::new(
                config.failed_auth_limit,
                Duration::from_secs(config.failed_auth_window_seconds.max(1)),
            ),
            clients: ClientRegistry::new(store),
            keys,
            issuers,
            verified: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(VERIFIED_TOKEN_TTL)
                .build(),
            api_keys: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(config.api_key_cache_seconds.max(1)))
                .build(),
            client_states: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(
                    config.client_state_cache_seconds.max(1),
                ))
                .build(),
            config: config.clone(),
        };
        Ok(Authenticator {
            inner: Arc::new(inner),
        })
    }

    /// Who is asking. No `Authorization` (or only HTTP Basic, used by the
    /// token endpoint) and no `X-API-Key`: the anonymous caller.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthFailure> {
        let authorization = single_header(headers, AUTHORIZATION.as_str())?;
        let api_key = single_header(headers, "x-api-key")?;
        let bearer = match authorization {
            None => None,
            Some(value) => {
                let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
                if scheme.eq_ignore_ascii_case("bearer") {
                    Some(credentials.trim())
                } else if scheme.eq_ignore_ascii_case("basic") {
                    // Client authentication at the token endpoint, not an identity.
                    None
                } else {
                    return Err(AuthFailure::new(
                        "unsupported_scheme",
                        "the Authorization scheme is not supported (use Bearer)",
                    ));
                }
            }
        };
        match (bearer, api_key) {
            (None, None) => Ok(Caller::anonymous()),
            (Some(_), Some(_)) => Err(AuthFailure::new(
                "ambiguous_credentials",
                "send either a bearer token or an X-API-Key, not both",
            )),
            (Some(""), None) => Err(AuthFailure::new("malformed", "the bearer token is empty")),
            (Some(token), None) if token.starts_with(API_KEY_PREFIX) => self.api_key(token).await,
            (Some(token), None) => self.token(token).await,
            (None, Some(key)) if key.starts_with(API_KEY_PREFIX) => self.api_key(key.trim()).await,
            (None, Some(_)) => Err(AuthFailure::new(
                "malformed",
                "an API key starts with `pk_`",
            )),
        }
    }

    /// Per external issuer: `Ok` when its keys are loaded, else why not.
    pub fn readiness(&self) -> Vec<(String, Result<(), String>)> {
        self.inner
            .issuers
            .iter()
            .map(|issuer| (issuer.keys.name.clone(), issuer.keys.readiness()))
            .collect()
    }

    /// The gateway's own signing keys.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The partner client registry on the same store.
    pub fn clients(&self) -> &ClientRegistry {
        &self.inner.clients
    }

    /// The identity settings in use.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// The person an OpenID Connect ID token names, verified by the same
    /// code as API tokens: the configured issuer `issuer` (one of
    /// `[[auth.issuers]]`: its keys, algorithms and claim mapping), but the
    /// audience is the pages' client id (`client_id`), as OpenID Connect
    /// requires. The caller's nonce is checked by the sign-in, not here.
    pub async fn id_token(
        &self,
        token: &str,
        issuer: &str,
        client_id: &str,
    ) -> Result<Caller, AuthFailure> {
        let unverified = jwt::inspect(token)?;
        if unverified.issuer.as_deref() != Some(issuer) {
            return Err(AuthFailure::new(
                "wrong_issuer",
                "the ID token's issuer (`iss`) is not the sign-in's issuer",
            ));
        }
        let external = self
            .inner
            .issuers
            .iter()
            .find(|candidate| candidate.config.issuer == issuer)
            .ok_or_else(|| {
                AuthFailure::new("wrong_issuer", "the sign-in's issuer is not trusted")
            })?;
        self.external_token(token, &unverified, external, &[client_id.to_owned()])
            .await
    }

    /// A partner client changed (disabled, deleted, new secret, an API key
    /// revoked): what is known of it is read again at its next request.
    pub async fn forget_client(&self, client_id: &str) {
        self.inner.client_states.invalidate(client_id).await;
        // API keys are cached by their hash, not by client: all of them are
        // checked again (client changes are rare).
        self.inner.api_keys.invalidate_all();
    }

    /// Changes may have been missed: every client is read again.
    pub fn forget_all_clients(&self) {
        self.inner.client_states.invalidate_all();
        self.inner.api_keys.invalidate_all();
    }

    /// Refuses a token the gateway issued to a partner client that has been
    /// disabled, deleted or given a new secret since, or whose agreement has
    /// ended; fails closed when the client's state cannot be read.
    async fn check_client_token(&self, caller: &Caller) -> Result<(), AuthFailure> {
        let Some(client_id) = &caller.client_id else {
            return Ok(());
        };
        let refuse = |reason, detail: &str| AuthFailure {
            client_id: Some(client_id.clone()),
            ..AuthFailure::new(reason, detail)
        };
        let clients = &self.inner.clients;
        let state = self
            .inner
            .client_states
            .try_get_with(client_id.clone(), async { clients.state(client_id).await })
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot check a client's token");
                refuse(
                    "store_unavailable",
                    "the token's client cannot be checked right now",
                )
            })?;
        // Tokens issued before generations existed carry none: generation 0.
        let generation = caller
            .claims
            .get("gen")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        match state {
            None => Err(refuse(
                "token_revoked",
                "the token's client no longer exists",
            )),
            Some(state) if !state.enabled => {
                Err(refuse("client_disabled", "the token's client is disabled"))
            }
            Some(state)
                if state
                    .expires_at
                    .is_some_and(|end| end <= chrono::Utc::now()) =>
            {
                Err(refuse(
                    "expired",
                    "the token's client agreement has expired",
                ))
            }
            Some(state) if state.generation != generation => Err(refuse(
                "token_revoked",
                "the token was revoked (its client's secret was rotated or the client disabled)",
            )),
            Some(_) => Ok(()),
        }
    }

    async fn token(&self, token: &str) -> Result<Caller, AuthFailure> {
        let fingerprint: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(verified) = self.inner.verified.get(&fingerprint).await {
            if verified.until > Instant::now() {
                // The signature holds; the client may have been revoked since.
                if verified.caller.auth_method == AuthMethod::GatewayToken {
                    self.check_client_token(&verified.caller).await?;
                }
                return Ok(Caller::clone(&verified.caller));
            }
            self.inner.verified.invalidate(&fingerprint).await;
        }
        let unverified = jwt::inspect(token)?;
        let issuer = unverified
            .issuer
            .clone()
            .ok_or_else(|| AuthFailure::new("wrong_issuer", "the token has no `iss` claim"))?;
        let caller = if issuer == self.inner.config.issuer {
            let caller = self.gateway_token(token, &unverified).await?;
            self.check_client_token(&caller).await?;
            caller
        } else {
            let external = self
                .inner
                .issuers
                .iter()
                .find(|candidate| candidate.config.issuer == issuer)
                .ok_or_else(|| {
                    AuthFailure::new("wrong_issuer", "the token's issuer (`iss`) is not trusted")
                })?;
            self.external_token(token, &unverified, external, &external.config.audiences)
                .await?
        };
        let lifetime = caller
            .claims
            .get("exp")
            .and_then(Value::as_i64)
            .map(|exp| (exp - chrono::Utc::now().timestamp()).max(0) as u64)
            .unwrap_or(0);
        let keep = VERIFIED_TOKEN_TTL.min(Duration::from_secs(lifetime));
        if !keep.is_zero() {
            let caller = Arc::new(caller.clone());
            self.inner
                .verified
                .insert(
                    fingerprint,
                    VerifiedToken {
                        caller,
                        until: Instant::now() + keep,
                    },
                )
                .await;
        }
        Ok(caller)
    }

    async fn gateway_token(
        &self,
        token: &str,
        unverified: &Unverified,
    ) -> Result<Caller, AuthFailure> {
        let algorithm = unverified.header.alg;
        if algorithm != Algorithm::ES256 {
            return Err(refuse_algorithm(algorithm, false));
        }
        let kid = unverified
            .header
            .kid
            .as_deref()
            .ok_or_else(|| AuthFailure::new("unknown_kid", "the token names no key (`kid`)"))?;
        let key = self.inner.keys.decoding_key(kid).await.ok_or_else(|| {
            AuthFailure::new(
                "unknown_kid",
                "the token's key (`kid`) is not one of the gateway's keys",
            )
        })?;
        let config = &self.inner.config;
        let audiences = [config.audience.clone()];
        let claims = jwt::verify(
            token,
            &[key],
            &Expectations {
                algorithm,
                issuer: &config.issuer,
                audiences: &audiences,
                leeway_seconds: config.leeway_seconds,
            },
        )?;
        let subject = jwt::text_claim(&claims, "sub")
            .ok_or_else(|| AuthFailure::new("missing_claim", "the token has no `sub` claim"))?;
        Ok(Caller {
            subject,
            org: jwt::text_claim(&claims, "org"),
            roles: caller_roles(
                jwt::roles_at(&claims, "roles", None),
                &config.authenticated_role,
            ),
            auth_method: AuthMethod::GatewayToken,
            client_id: jwt::text_claim(&claims, "client_id"),
            token_id: jwt::text_claim(&claims, "jti"),
            allowed_datasets: jwt::string_list(&claims, "datasets"),
            claims,
        })
    }

    async fn external_token(
        &self,
        token: &str,
        unverified: &Unverified,
        issuer: &ExternalIssuer,
        audiences: &[String],
    ) -> Result<Caller, AuthFailure> {
        let algorithm = unverified.header.alg;
        if !issuer.algorithms.contains(&algorithm) {
            return Err(refuse_algorithm(algorithm, issuer.hs256.is_some()));
        }
        let keys = if algorithm.family() == AlgorithmFamily::Hmac {
            // Only the configured shared secret, never a published key.
            issuer.hs256.iter().cloned().collect()
        } else {
            self.provider_keys(issuer, unverified.header.kid.as_deref(), algorithm)
                .await?
        };
        let claims = jwt::verify(
            token,
            &keys,
            &Expectations {
                algorithm,
                issuer: &issuer.config.issuer,
                audiences,
                leeway_seconds: issuer.leeway_seconds,
            },
        )?;
        let config = &issuer.config;
        let subject = jwt::text_claim(&claims, &config.subject_claim).ok_or_else(|| {
            AuthFailure::new(
                "missing_claim",
                format!("the token has no `{}` claim", config.subject_claim),
            )
        })?;
        let roles = jwt::roles_at(&claims, &config.roles_claim, config.role_prefix.as_deref());
        Ok(Caller {
            subject,
            org: config
                .org_claim
                .as_deref()
                .and_then(|claim| jwt::text_claim(&claims, claim)),
            roles: caller_roles(roles, &self.inner.config.authenticated_role),
            auth_method: AuthMethod::ExternalJwt,
            client_id: None,
            token_id: jwt::text_claim(&claims, "jti"),
            allowed_datasets: None,
            claims,
        })
    }

    /// The provider's keys that may verify this token: by `kid` (refetching
    /// the set, rate-limited, when the `kid` is unknown), or all keys of the
    /// algorithm's family when the token names none.
    async fn provider_keys(
        &self,
        issuer: &ExternalIssuer,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Vec<DecodingKey>, AuthFailure> {
        let provider = &issuer.keys;
        let mut snapshot = provider.snapshot();
        if !snapshot.loaded {
            provider.refresh_if_due().await;
            snapshot = provider.snapshot();
            if !snapshot.loaded {
                return Err(AuthFailure::new(
                    "keys_unavailable",
                    "the identity provider's keys are unavailable right now",
                ));
            }
        }
        let mut candidates = match kid {
            Some(kid) => snapshot.keys.get(kid).cloned(),
            None => Some(snapshot.keys.values().flatten().cloned().collect()),
        };
        if candidates.is_none() && provider.refresh_if_due().await {
            snapshot = provider.snapshot();
            candidates = kid.and_then(|kid| snapshot.keys.get(kid).cloned());
        }
        let candidates = candidates.ok_or_else(|| {
            AuthFailure::new(
                "unknown_kid",
                "the token's key (`kid`) is not among the identity provider's keys",
            )
        })?;
        let usable: Vec<DecodingKey> = candidates
            .into_iter()
            .filter(|key| {
                key.family == algorithm.family()
                    && key.algorithm.is_none_or(|declared| declared == algorithm)
            })
            .map(|key| key.key)
            .collect();
        if usable.is_empty() {
            return Err(AuthFailure::new(
                "key_mismatch",
                "the token's algorithm does not fit the identity provider's key",
            ));
        }
        Ok(usable)
    }

    async fn api_key(&self, key: &str) -> Result<Caller, AuthFailure> {
        let fingerprint: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if let Some(caller) = self.inner.api_keys.get(&fingerprint).await {
            return Ok(Caller::clone(&caller));
        }
        let (key_id, client) =
            self.inner
                .clients
                .verify_api_key(key)
                .await
                .map_err(|(refusal, client_id)| {
                    let detail = match &refusal {
                        ClientRefusal::Revoked => "the API key has been revoked",
                        ClientRefusal::Expired => {
                            "the API key or its client's agreement has expired"
                        }
                        ClientRefusal::Disabled => "the API key's client is disabled",
                        ClientRefusal::Store(error) => {
                            tracing::error!(%error, "cannot check an API key");
                            "API keys cannot be checked right now"
                        }
                        ClientRefusal::Unknown | ClientRefusal::WrongSecret => "unknown API key",
                    };
                    AuthFailure {
                        client_id,
                        ..AuthFailure::new(refusal.reason(), detail)
                    }
                })?;
        let caller = Caller {
            subject: client.client_id.clone(),
            org: Some(client.org),
            roles: caller_roles(client.roles, &self.inner.config.authenticated_role),
            auth_method: AuthMethod::ApiKey,
            client_id: Some(client.client_id),
            token_id: Some(key_id),
            allowed_datasets: client.datasets,
            claims: Map::new(),
        };
        if self.inner.config.api_key_cache_seconds > 0 {
            self.inner
                .api_keys
                .insert(fingerprint, Arc::new(caller.clone()))
                .await;
        }
        Ok(caller)
    }
}

/// The refusal for an algorithm the issuer does not accept: an HMAC token
/// for an issuer with public keys is the algorithm-confusion attack.
fn refuse_algorithm(algorithm: Algorithm, issuer_has_secret: bool) -> AuthFailure {
    if algorithm.family() == AlgorithmFamily::Hmac && !issuer_has_secret {
        AuthFailure::new(
            "alg_confusion",
            format!(
                "{algorithm:?} is refused for an issuer whose keys are public (algorithm confusion)"
            ),
        )
    } else {
        AuthFailure::new(
            "alg_not_allowed",
            format!("{algorithm:?} is not accepted for this issuer"),
        )
    }
}

/// The one value of a header; several values are refused.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthFailure> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthFailure::new(
            "malformed",
            format!("several `{name}` headers"),
        ));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| AuthFailure::new("malformed", format!("the `{name}` header is not ASCII")))
}
