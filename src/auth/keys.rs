//! The gateway's own signing keys: ES256 (P-256), kept in the store so every
//! instance signs and verifies with the same keys.
//!
//! The newest key that is not retired signs. After a rotation the previous
//! key is retired but stays published (JWKS) and accepted for
//! `max_token_ttl_seconds`, so no token outlives the key that verifies it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::config::AuthConfig;
use crate::store::Store;
use crate::store::changes::Change;

/// Shortest time between two reloads of the keys from the store when a token
/// names a key this instance does not know (another instance rotated).
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The gateway's signing keys. Cheap to clone.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<KeyRingInner>,
}

struct KeyRingInner {
    store: Store,
    issuer: String,
    audience: String,
    max_ttl_seconds: u64,
    keys: ArcSwap<KeySet>,
    last_reload: tokio::sync::Mutex<Option<Instant>>,
}

struct KeySet {
    /// Newest first; the first key that is not retired signs.
    keys: Vec<GatewayKey>,
}

struct GatewayKey {
    kid: String,
    signing: SigningKey,
    encoding: EncodingKey,
    decoding: DecodingKey,
    retired_at: Option<DateTime<Utc>>,
    /// Still in the JWKS and accepted for tokens.
    published: bool,
}

/// A signing key as `passerelle keys list` shows it (no private part).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeyInfo {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    /// The key that signs new tokens.
    pub current: bool,
    /// Published at `/.well-known/jwks.json` and accepted on tokens.
    pub published: bool,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    kid: String,
    private_key_pem: String,
    created_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
}

impl KeyRing {
    /// Loads the keys from the store, generating the first one on first start.
    pub async fn load(store: &Store, config: &AuthConfig) -> anyhow::Result<KeyRing> {
        let ring = KeyRing::empty(store, config);
        if !ring
            .read_rows()
            .await?
            .iter()
            .any(|row| row.retired_at.is_none())
        {
            ring.insert_new_key().await?;
        }
        ring.reload().await?;
        Ok(ring)
    }

    /// The keys as stored, without creating one when there is none: for
    /// commands that only read (`passerelle audit verify`, `audit export`),
    /// which verify signatures and never sign.
    pub async fn load_read_only(store: &Store, config: &AuthConfig) -> anyhow::Result<KeyRing> {
        let ring = KeyRing::empty(store, config);
        let keys = ring.read_keys().await?;
        ring.inner.keys.store(Arc::new(KeySet { keys }));
        Ok(ring)
    }

    fn empty(store: &Store, config: &AuthConfig) -> KeyRing {
        let inner = KeyRingInner {
            store: store.clone(),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            max_ttl_seconds: config.max_token_ttl_seconds,
            keys: ArcSwap::from_pointee(KeySet { keys: Vec::new() }),
            last_reload: tokio::sync::Mutex::new(None),
        };
        KeyRing {
            inner: Arc::new(inner),
        }
    }

    /// Signs a token for `subject` with the current key (`ttl_seconds` at most
    /// `max_token_ttl_seconds`).
    pub async fn mint(
        &self,
        subject: &str,
        org: Option<&str>,
        roles: &[String],
        ttl_seconds: u64,
    ) -> anyhow::Result<String> {
        let mut claims = Map::new();
        claims.insert("roles".into(), json!(roles));
        if let Some(org) = org {
            claims.insert("org".into(), json!(org));
        }
        self.sign(subject, claims, ttl_seconds)
    }

    /// Signs a token with the standard claims (`iss`, `aud`, `sub`, `jti`,
    /// `iat`, `nbf`, `exp`) added to `claims`.
    pub(crate) fn sign(
        &self,
        subject: &str,
        mut claims: Map<String, Value>,
        ttl_seconds: u64,
    ) -> anyhow::Result<String> {
        anyhow::ensure!(
            ttl_seconds > 0 && ttl_seconds <= self.inner.max_ttl_seconds,
            "a token lives between 1 and {} seconds (auth.max_token_ttl_seconds)",
            self.inner.max_ttl_seconds
        );
        let now = Utc::now().timestamp();
        claims.insert("iss".into(), json!(self.inner.issuer));
        claims.insert("aud".into(), json!(self.inner.audience));
        claims.insert("sub".into(), json!(subject));
        claims.insert("jti".into(), json!(uuid::Uuid::new_v4().to_string()));
        claims.insert("iat".into(), json!(now));
        claims.insert("nbf".into(), json!(now));
        claims.insert("exp".into(), json!(now + ttl_seconds as i64));
        let keys = self.inner.keys.load();
        let key = current(&keys).context("no current signing key")?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, &claims, &key.encoding).context("cannot sign the token")
    }

    /// Makes a new current key; the previous ones are retired (still published
    /// until their tokens have expired). Returns the new key's id.
    pub async fn rotate(&self) -> anyhow::Result<String> {
        let kid = self.insert_new_key().await?;
        let now = Utc::now();
        with_pool!(&self.inner.store, pool => sqlx::query(
            "UPDATE auth_signing_keys SET retired_at = $1 WHERE retired_at IS NULL AND kid <> $2",
        )
        .bind(now)
        .bind(&kid)
        .execute(pool)
        .await
        .map(|_| ()))?;
        self.reload().await?;
        // The other instances sign with the new key at once, not at their
        // next start (PostgreSQL; a missed notice is caught up on reconnect).
        if let Err(error) = self.inner.store.announce(&Change::Keys).await {
            tracing::warn!(%error, "key rotation not announced to the other instances");
        }
        Ok(kid)
    }

    /// Every key in the store, newest first.
    pub async fn list(&self) -> anyhow::Result<Vec<KeyInfo>> {
        let rows = self.read_rows().await?;
        let current_kid = rows
            .iter()
            .find(|row| row.retired_at.is_none())
            .map(|row| row.kid.clone());
        let now = Utc::now();
        Ok(rows
            .into_iter()
            .map(|row| KeyInfo {
                current: Some(&row.kid) == current_kid.as_ref(),
                published: self.is_published(row.retired_at, now),
                kid: row.kid,
                created_at: row.created_at,
                retired_at: row.retired_at,
            })
            .collect())
    }

    /// The current key and its id (signs audit checkpoints).
    pub fn signing_key(&self) -> (String, SigningKey) {
        let keys = self.inner.keys.load();
        let key = current(&keys).expect("a loaded key ring always has a current key");
        (key.kid.clone(), key.signing.clone())
    }

    /// The public key `kid`, retired ones included (verifies old checkpoints).
    pub fn verifying_key(&self, kid: &str) -> Option<VerifyingKey> {
        let keys = self.inner.keys.load();
        keys.keys
            .iter()
            .find(|key| key.kid == kid)
            .map(|key| *key.signing.verifying_key())
    }

    /// The published keys as a JSON Web Key Set (public parts only).
    pub fn jwks(&self) -> Value {
        let keys = self.inner.keys.load();
        let published: Vec<Value> = keys
            .keys
            .iter()
            .filter(|key| key.published && self.is_published(key.retired_at, Utc::now()))
            .map(|key| public_jwk(&key.kid, key.signing.verifying_key()))
            .collect();
        json!({ "keys": published })
    }

    /// The issuer the gateway's tokens carry.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The audience the gateway's tokens carry.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// The verification key `kid` if it is published; reloads from the store
    /// (at most once a second) when the key is unknown here.
    pub(crate) async fn decoding_key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.published_decoding_key(kid) {
            return Some(key);
        }
        {
            let mut last = self.inner.last_reload.lock().await;
            if last.is_some_and(|at| at.elapsed() < RELOAD_INTERVAL) {
                return None;
            }
            *last = Some(Instant::now());
        }
        if let Err(error) = self.reload().await {
            tracing::warn!(%error, "cannot reload the gateway's signing keys");
        }
        self.published_decoding_key(kid)
    }

    fn published_decoding_key(&self, kid: &str) -> Option<DecodingKey> {
        let keys = self.inner.keys.load();
        let now = Utc::now();
        keys.keys
            .iter()
            .find(|key| key.kid == kid && self.is_published(key.retired_at, now))
            .map(|key| key.decoding.clone())
    }

    fn is_published(&self, retired_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match retired_at {
            None => true,
            Some(retired) => {
                now < retired + chrono::Duration::seconds(self.inner.max_ttl_seconds as i64)
            }
        }
    }

    /// Reads the keys from the store again (another instance rotated them).
    pub(crate) async fn reload(&self) -> anyhow::Result<()> {
        let keys = self.read_keys().await?;
        anyhow::ensure!(
            keys.iter().any(|key| key.retired_at.is_none()),
            "the store holds no current signing key"
        );
        self.inner.keys.store(Arc::new(KeySet { keys }));
        Ok(())
    }

    /// Every stored key, decoded.
    async fn read_keys(&self) -> anyhow::Result<Vec<GatewayKey>> {
        let rows = self.read_rows().await?;
        let now = Utc::now();
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let signing = SigningKey::from_pkcs8_pem(&row.private_key_pem).map_err(|error| {
                anyhow::anyhow!("signing key {} cannot be read: {error}", row.kid)
            })?;
            let (encoding, decoding) = jwt_keys(&row.private_key_pem, signing.verifying_key())?;
            keys.push(GatewayKey {
                published: self.is_published(row.retired_at, now),
                kid: row.kid,
                signing,
                encoding,
                decoding,
                retired_at: row.retired_at,
            });
        }
        Ok(keys)
    }

    async fn read_rows(&self) -> anyhow::Result<Vec<KeyRow>> {
        let rows = with_pool!(&self.inner.store, pool => sqlx::query_as::<_, KeyRow>(
            "SELECT kid, private_key_pem, created_at, retired_at FROM auth_signing_keys \
             ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(pool)
        .await)
        .context("cannot read the signing keys")?;
        Ok(rows)
    }

    async fn insert_new_key(&self) -> anyhow::Result<String> {
        let signing = SigningKey::generate();
        let pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|error| anyhow::anyhow!("cannot encode a new signing key: {error}"))?;
        let kid = uuid::Uuid::now_v7().simple().to_string();
        with_pool!(&self.inner.store, pool => sqlx::query(
            "INSERT INTO auth_signing_keys (kid, private_key_pem, created_at, retired_at) VALUES ($1, $2, $3, NULL)",
        )
        .bind(&kid)
        .bind(pem.as_str())
        .bind(Utc::now())
        .execute(pool)
        .await
        .map(|_| ()))
        .context("cannot store a new signing key")?;
        tracing::info!(%kid, "new signing key");
        Ok(kid)
    }
}

fn current(keys: &KeySet) -> Option<&GatewayKey> {
    keys.keys.iter().find(|key| key.retired_at.is_none())
}

fn jwt_keys(pem: &str, public: &VerifyingKey) -> anyhow::Result<(EncodingKey, DecodingKey)> {
    let encoding =
        EncodingKey::from_ec_pem(pem.as_bytes()).context("signing key unusable for JWT")?;
    let (x, y) = coordinates(public);
    let decoding =
        DecodingKey::from_ec_components(&x, &y).context("verifying key unusable for JWT")?;
    Ok((encoding, decoding))
}

/// Base64url `x` and `y` of a P-256 public key.
fn coordinates(public: &VerifyingKey) -> (String, String) {
    let point = public.to_sec1_point(false);
    let x = point
        .x()
        .map(|x| URL_SAFE_NO_PAD.encode(x))
        .unwrap_or_default();
    let y = point
        .y()
        .map(|y| URL_SAFE_NO_PAD.encode(y))
        .unwrap_or_default();
    (x, y)
}

/// The public JWK of a P-256 key.
pub fn public_jwk(kid: &str, public: &VerifyingKey) -> Value {
    let (x, y) = coordinates(public);
    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support;

    fn decode(token: &str, key: &DecodingKey) -> Map<String, Value> {
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&["passerelle"]);
        validation.set_issuer(&["passerelle"]);
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .expect("valid token")
            .claims
    }

    async fn key_ring_lifecycle(store: Store) {
        let config = AuthConfig::default();
        let ring = KeyRing::load(&store, &config).await.unwrap();
        let (first_kid, _) = ring.signing_key();
        // A second load (another instance) finds the same key.
        let again = KeyRing::load(&store, &config).await.unwrap();
        assert_eq!(again.signing_key().0, first_kid);

        let token = ring
            .mint("alice", Some("Troyes"), &["agent".to_owned()], 60)
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(first_kid.as_str()));
        let claims = decode(&token, &ring.decoding_key(&first_kid).await.unwrap());
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["org"], "Troyes");
        assert_eq!(claims["roles"], json!(["agent"]));
        assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() == 60);
        assert!(
            ring.mint("alice", None, &[], config.max_token_ttl_seconds + 1)
                .await
                .is_err()
        );

        let new_kid = ring.rotate().await.unwrap();
        assert_ne!(new_kid, first_kid);
        assert_eq!(ring.signing_key().0, new_kid);
        // The old key stays published and accepted; the other instance learns the new one.
        let jwks = ring.jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, vec![new_kid.as_str(), first_kid.as_str()]);
        assert!(
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k.get("d").is_none() && k["kty"] == "EC")
        );
        assert!(again.decoding_key(&new_kid).await.is_some());
        assert!(again.verifying_key(&new_kid).is_some());
        let listed = ring.list().await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed[0].current && listed[0].published && listed[0].retired_at.is_none());
        assert!(!listed[1].current && listed[1].published && listed[1].retired_at.is_some());
    }

    /// Keys are generated once, shared by instances, rotated, and published publicly (SQLite).
    #[tokio::test]
    async fn key_ring_on_sqlite() {
        let (store, _guard) = test_support::sqlite().await;
        key_ring_lifecycle(store).await;
    }

    /// The same on PostgreSQL.
    #[tokio::test]
    async fn key_ring_on_postgres() {
        let Some((store, _guard)) = test_support::postgres().await else {
            return;
        };
        key_ring_lifecycle(store).await;
    }

    /// A key retired longer ago than the longest token lifetime is no longer published.
    #[tokio::test]
    async fn long_retired_keys_leave_the_jwks() {
        let (store, _guard) = test_support::sqlite().await;
        let config = AuthConfig {
            max_token_ttl_seconds: 1,
            token_ttl_seconds: 1,
            ..AuthConfig::default()
        };
        let ring = KeyRing::load(&store, &config).await.unwrap();
        let (old_kid, _) = ring.signing_key();
        ring.rotate().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(ring.jwks()["keys"].as_array().unwrap().len(), 1);
        assert!(ring.published_decoding_key(&old_kid).is_none());
        // Still known for old audit checkpoints.
        assert!(ring.verifying_key(&old_kid).is_some());
    }
}
