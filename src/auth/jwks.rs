//! Keys of the external identity providers: fetched from a JWKS URL or an
//! OpenID discovery document, or given inline; cached, refreshed in the
//! background, and refetched when a token names an unknown `kid` — at most
//! once per `jwks_min_refresh_seconds`, so a flood of random `kid`s cannot
//! hammer the provider.
//!
//! A provider that is down never stops the gateway: its tokens are refused
//! ("keys unavailable") and readiness says why until a fetch succeeds.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;

use super::config::IssuerConfig;
use crate::telemetry::metrics;

/// Largest key set or discovery document read from a provider.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// One usable public key of a provider.
#[derive(Clone)]
pub(crate) struct ProviderKey {
    pub family: AlgorithmFamily,
    /// The key's own `alg`, when the JWK declares one.
    pub algorithm: Option<Algorithm>,
    pub key: DecodingKey,
}

/// What is known of a provider's keys right now.
#[derive(Default)]
pub(crate) struct KeySnapshot {
    /// Keys by `kid`; keys published without `kid` are under "".
    pub keys: HashMap<String, Vec<ProviderKey>>,
    /// Why the last fetch failed (keys from an earlier fetch stay usable).
    pub error: Option<String>,
    pub loaded: bool,
}

/// The key source of one provider.
pub(crate) enum KeySource {
    Inline(Value),
    Url(String),
    Discovery(String),
    /// HS256 only: no public keys.
    None,
}

/// The cached keys of one external provider.
pub(crate) struct ProviderKeys {
    pub name: String,
    issuer: String,
    source: KeySource,
    http: reqwest::Client,
    min_refresh: Duration,
    snapshot: ArcSwap<KeySnapshot>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl ProviderKeys {
    pub fn new(
        config: &IssuerConfig,
        http: reqwest::Client,
        min_refresh: Duration,
    ) -> ProviderKeys {
        let source = match (&config.jwks, &config.jwks_url, &config.discovery_url) {
            (Some(inline), _, _) => KeySource::Inline(inline.clone()),
            (None, Some(url), _) => KeySource::Url(url.clone()),
            (None, None, Some(url)) => KeySource::Discovery(url.clone()),
            (None, None, None) => KeySource::None,
        };
        ProviderKeys {
            name: config.display_name().to_owned(),
            issuer: config.issuer.clone(),
            source,
            http,
            min_refresh,
            snapshot: ArcSwap::from_pointee(KeySnapshot::default()),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// The keys as last fetched.
    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        self.snapshot.load_full()
    }

    /// True when the keys come from the network (and may change).
    pub fn is_remote(&self) -> bool {
        matches!(self.source, KeySource::Url(_) | KeySource::Discovery(_))
    }

    /// `Ok` when keys are loaded, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        let snapshot = self.snapshot.load();
        match (&self.source, snapshot.loaded, &snapshot.error) {
            (KeySource::None, _, _) => Ok(()),
            (_, true, None) => Ok(()),
            (_, true, Some(error)) => {
                Err(format!("last refresh failed (older keys in use): {error}"))
            }
            (_, false, Some(error)) => Err(format!("keys unavailable: {error}")),
            (_, false, None) => Err("keys not fetched yet".to_owned()),
        }
    }

    /// Fetches the keys unless a fetch happened less than the minimum interval
    /// ago. Returns whether a fetch was made.
    pub async fn refresh_if_due(&self) -> bool {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return false;
        }
        *last = Some(Instant::now());
        self.refresh().await;
        true
    }

    /// Fetches the keys now (the caller holds the fetch lock or is starting).
    async fn refresh(&self) {
        let result = match &self.source {
            KeySource::None => return,
            KeySource::Inline(value) => parse_inline(value),
            KeySource::Url(url) => self
                .fetch_json(url)
                .await
                .and_then(|document| parse_key_set(&document)),
            KeySource::Discovery(url) => self.fetch_from_discovery(url).await,
        };
        if self.is_remote() {
            metrics::jwks_fetch(&self.name, result.is_ok());
        }
        let previous = self.snapshot.load();
        let next = match result {
            Ok(keys) => {
                tracing::debug!(provider = %self.name, keys = keys.len(), "identity provider keys loaded");
                KeySnapshot {
                    keys,
                    error: None,
                    loaded: true,
                }
            }
            Err(error) => {
                let error = format!("{error:#}");
                tracing::warn!(provider = %self.name, %error, "cannot fetch the identity provider's keys");
                KeySnapshot {
                    keys: previous.keys.clone(),
                    error: Some(error),
                    loaded: previous.loaded,
                }
            }
        };
        self.snapshot.store(Arc::new(next));
    }

    async fn fetch_from_discovery(
        &self,
        url: &str,
    ) -> anyhow::Result<HashMap<String, Vec<ProviderKey>>> {
        let discovery = self.fetch_json(url).await?;
        let issuer = discovery
            .get("issuer")
            .and_then(Value::as_str)
            .unwrap_or_default();
        anyhow::ensure!(
            issuer == self.issuer,
            "the discovery document names issuer `{issuer}`, not the configured `{}`",
            self.issuer
        );
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .context("the discovery document has no `jwks_uri`")?;
        let document = self.fetch_json(jwks_uri).await?;
        parse_key_set(&document)
    }

    async fn fetch_json(&self, url: &str) -> anyhow::Result<Value> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET {url}: status {}",
            response.status()
        );
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("GET {url}"))?
        {
            body.extend_from_slice(&chunk);
            anyhow::ensure!(
                body.len() <= MAX_DOCUMENT_BYTES,
                "GET {url}: document larger than 1 MiB"
            );
        }
        serde_json::from_slice(&body).with_context(|| format!("GET {url}: not JSON"))
    }
}

/// Refreshes every remote provider periodically while the providers live.
/// Providers without keys are retried at the minimum interval.
pub(crate) fn spawn_refresher(
    providers: Vec<Weak<ProviderKeys>>,
    period: Duration,
    min_refresh: Duration,
) {
    if providers.is_empty() {
        return;
    }
    let tick = min_refresh
        .max(Duration::from_secs(1))
        .min(period.max(Duration::from_secs(1)));
    tokio::spawn(async move {
        let mut last_full = Instant::now();
        loop {
            tokio::time::sleep(tick).await;
            let full = last_full.elapsed() >= period;
            if full {
                last_full = Instant::now();
            }
            let mut alive = false;
            for provider in &providers {
                let Some(provider) = provider.upgrade() else {
                    continue;
                };
                alive = true;
                if provider.is_remote()
                    && (full || !provider.snapshot().loaded || provider.snapshot().error.is_some())
                {
                    provider.refresh_if_due().await;
                }
            }
            if !alive {
                break;
            }
        }
    });
}

fn parse_inline(value: &Value) -> anyhow::Result<HashMap<String, Vec<ProviderKey>>> {
    match value {
        Value::String(text) => {
            let document: Value =
                serde_json::from_str(text).context("inline `jwks` is not JSON")?;
            parse_key_set(&document)
        }
        document => parse_key_set(document),
    }
}

/// Reads the usable public keys of a JWKS. Symmetric (`oct`) keys, encryption
/// keys and keys this build cannot use are skipped: a key set never brings an
/// HMAC key.
pub(crate) fn parse_key_set(document: &Value) -> anyhow::Result<HashMap<String, Vec<ProviderKey>>> {
    let entries = document
        .get("keys")
        .and_then(Value::as_array)
        .context("the key set has no `keys` array")?;
    let mut keys: HashMap<String, Vec<ProviderKey>> = HashMap::new();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
            AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
            AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
            _ => continue,
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        // A key declared for another use (say `RSA-OAEP`) is not a signing key.
        let algorithm = match jwk.common.key_algorithm {
            None => None,
            Some(declared) => match Algorithm::try_from(declared) {
                Ok(algorithm) => Some(algorithm),
                Err(_) => continue,
            },
        };
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        keys.entry(kid).or_default().push(ProviderKey {
            family,
            algorithm,
            key,
        });
    }
    anyhow::ensure!(!keys.is_empty(), "the key set holds no usable signing key");
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only public signing keys are kept: `oct` and encryption keys are skipped.
    #[test]
    fn parses_only_public_signing_keys() {
        let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let ec = crate::auth::keys::public_jwk("ec-1", signing.verifying_key());
        let mut encryption = ec.clone();
        encryption["kid"] = "enc".into();
        encryption["use"] = "enc".into();
        let document = serde_json::json!({"keys": [
            ec,
            encryption,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "weird", "kid": "x"}
        ]});
        let keys = parse_key_set(&document).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ec-1"]);
        assert_eq!(keys["ec-1"][0].family, AlgorithmFamily::Ec);
        assert_eq!(keys["ec-1"][0].algorithm, Some(Algorithm::ES256));
        assert!(
            parse_key_set(&serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).is_err()
        );
        assert!(parse_key_set(&serde_json::json!({"nokeys": []})).is_err());
        assert!(parse_inline(&Value::String(document.to_string())).is_ok());
    }
}
