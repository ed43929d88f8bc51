//! Partner clients (OAuth2 client credentials) and their API keys.
//!
//! Secrets are random (32 bytes, base64url), shown once, and only their
//! hashes are stored: argon2id for client secrets, SHA-256 for API keys (a
//! high-entropy random secret needs no slow hash, and keys are checked on
//! every request). Comparisons are constant-time; an unknown client still
//! costs an argon2 verification, so timing does not tell which ids exist.

use std::sync::OnceLock;

use anyhow::Context;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::TryRng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::limits::LimitSet;
use crate::store::Store;
use crate::store::changes::{Announce, Change};

/// Runs `$body` (statements on `&mut *$transaction`) in a transaction that
/// also announces the client's change to every instance (see
/// [`crate::store::changes`]); yields the body's value.
macro_rules! announced {
    ($store:expr, $client_id:expr, $transaction:ident => $body:expr) => {
        with_pool!($store, pool => async {
            let mut $transaction = pool.begin().await?;
            let value = $body;
            $transaction
                .announce(&Change::Client { client_id: $client_id.to_owned() })
                .await?;
            $transaction.commit().await?;
            Ok::<_, sqlx::Error>(value)
        }
        .await)
    };
}

/// Prefix of every API key: `pk_<key id>_<secret>`.
pub const API_KEY_PREFIX: &str = "pk_";

/// Manages partner clients in the store.
#[derive(Clone)]
pub struct ClientRegistry {
    store: Store,
}

/// A client as listed (no hashes, no secrets).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientInfo {
    pub client_id: String,
    pub org: String,
    pub roles: Vec<String>,
    /// Datasets the client is restricted to (`None`: what its roles allow).
    pub datasets: Option<Vec<String>>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    /// End of the agreement: the client is refused afterwards.
    pub expires_at: Option<DateTime<Utc>>,
    /// The client's own limits (unset values: its class's, from the configuration).
    pub limits: LimitSet,
    pub api_keys: Vec<ApiKeyInfo>,
}

/// An API key as listed (no hash).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiKeyInfo {
    pub key_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A verified client, as the token endpoint and API keys use it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VerifiedClient {
    pub client_id: String,
    pub org: String,
    pub roles: Vec<String>,
    pub datasets: Option<Vec<String>>,
    /// Carried in the tokens issued to it (`gen`), see [`ClientState`].
    pub generation: i64,
}

/// What decides whether a token already issued to a client is still good:
/// the client exists, is enabled, its agreement runs, and its generation is
/// the token's (disabling the client or rotating its secret raises it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientState {
    pub enabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub generation: i64,
}

/// Why a client or API key was refused.
#[derive(Debug)]
pub(crate) enum ClientRefusal {
    Unknown,
    WrongSecret,
    Disabled,
    Expired,
    Revoked,
    Store(anyhow::Error),
}

impl ClientRefusal {
    /// Stable code for logs and the audit.
    pub fn reason(&self) -> &'static str {
        match self {
            ClientRefusal::Unknown => "unknown_client",
            ClientRefusal::WrongSecret => "wrong_secret",
            ClientRefusal::Disabled => "client_disabled",
            ClientRefusal::Expired => "expired",
            ClientRefusal::Revoked => "revoked",
            ClientRefusal::Store(_) => "store_unavailable",
        }
    }
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    org: String,
    roles: String,
    datasets: Option<String>,
    secret_hash: String,
    enabled: bool,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    generation: i64,
    #[sqlx(flatten)]
    limits: LimitsRow,
}

/// A client's own limits as stored (NULL: the configured value applies).
#[derive(sqlx::FromRow)]
struct LimitsRow {
    limit_requests: Option<i64>,
    limit_per_seconds: Option<i64>,
    limit_burst: Option<i64>,
    limit_daily_rows: Option<i64>,
    limit_daily_bytes: Option<i64>,
}

impl LimitsRow {
    fn limits(&self) -> LimitSet {
        let value = |stored: Option<i64>| stored.map(|value| u64::try_from(value).unwrap_or(0));
        LimitSet {
            requests: value(self.limit_requests),
            per_seconds: value(self.limit_per_seconds),
            burst: value(self.limit_burst),
            daily_rows: value(self.limit_daily_rows),
            daily_bytes: value(self.limit_daily_bytes),
        }
    }
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    client_id: String,
    key_hash: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl ClientRegistry {
    /// A registry on `store`.
    pub fn new(store: Store) -> Self {
        ClientRegistry { store }
    }

    /// Registers a client; returns its id and its secret (shown once).
    pub async fn create(
        &self,
        org: &str,
        roles: &[String],
        datasets: Option<&[String]>,
        expires_at: Option<DateTime<Utc>>,
    ) -> anyhow::Result<(String, String)> {
        anyhow::ensure!(!org.trim().is_empty(), "a client needs an organisation");
        anyhow::ensure!(
            roles
                .iter()
                .all(|role| !role.trim().is_empty() && role != "anonymous"),
            "roles must be non-empty names other than `anonymous`"
        );
        let client_id = format!("client_{}", uuid::Uuid::new_v4().simple());
        let secret = random_secret();
        let hash = hash_secret(secret.clone()).await?;
        let roles = serde_json::to_string(roles)?;
        let datasets = datasets.map(serde_json::to_string).transpose()?;
        with_pool!(&self.store, pool => sqlx::query(
            "INSERT INTO auth_clients (id, org, roles, datasets, secret_hash, enabled, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&client_id)
        .bind(org)
        .bind(&roles)
        .bind(&datasets)
        .bind(&hash)
        .bind(true)
        .bind(Utc::now())
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|_| ()))
        .context("cannot store the client")?;
        Ok((client_id, secret))
    }

    /// Issues an API key `pk_<key id>_<secret>` for a client (shown once).
    pub async fn create_api_key(
        &self,
        client_id: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> anyhow::Result<(String, String)> {
        self.find(client_id)
            .await?
            .with_context(|| format!("no client `{client_id}`"))?;
        let key_id = uuid::Uuid::new_v4().simple().to_string();
        let secret = random_secret();
        with_pool!(&self.store, pool => sqlx::query(
            "INSERT INTO auth_api_keys (id, client_id, key_hash, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&key_id)
        .bind(client_id)
        .bind(sha256_hex(&secret))
        .bind(Utc::now())
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|_| ()))
        .context("cannot store the API key")?;
        Ok((key_id.clone(), format!("{API_KEY_PREFIX}{key_id}_{secret}")))
    }

    /// Every client with its API keys.
    pub async fn list(&self) -> anyhow::Result<Vec<ClientInfo>> {
        let clients = with_pool!(&self.store, pool => sqlx::query_as::<_, ClientRow>(
            "SELECT id, org, roles, datasets, secret_hash, enabled, created_at, expires_at, generation, \
             limit_requests, limit_per_seconds, limit_burst, limit_daily_rows, limit_daily_bytes \
             FROM auth_clients ORDER BY created_at, id",
        )
        .fetch_all(pool)
        .await)?;
        let keys = with_pool!(&self.store, pool => sqlx::query_as::<_, ApiKeyRow>(
            "SELECT id, client_id, key_hash, created_at, expires_at, revoked_at FROM auth_api_keys ORDER BY created_at, id",
        )
        .fetch_all(pool)
        .await)?;

        clients
            .into_iter()
            .map(|row| {
                let api_keys = keys
                    .iter()
                    .filter(|key| key.client_id == row.id)
                    .map(|key| ApiKeyInfo {
                        key_id: key.id.clone(),
                        created_at: key.created_at,
                        expires_at: key.expires_at,
                        revoked_at: key.revoked_at,
                    })
                    .collect();
                Ok(ClientInfo {
                    roles: serde_json::from_str(&row.roles)?,
                    datasets: row
                        .datasets
                        .as_deref()
                        .map(serde_json::from_str)
                        .transpose()?,
                    client_id: row.id,
                    org: row.org,
                    enabled: row.enabled,
                    created_at: row.created_at,
                    expires_at: row.expires_at,
                    limits: row.limits.limits(),
                    api_keys,
                })
            })
            .collect()
    }

    /// The client's own limits (`None`: none set, or no such client).
    pub async fn limits(&self, id: &str) -> anyhow::Result<Option<LimitSet>> {
        let row = self.find(id).await?;
        Ok(row
            .map(|row| row.limits.limits())
            .filter(|limits| !limits.is_empty()))
    }

    /// Replaces the client's own limits (an empty set: its class's limits
    /// apply again). Every instance applies them at once on PostgreSQL
    /// (notified), within `limits.client_limits_cache_seconds` otherwise.
    pub async fn set_limits(&self, id: &str, limits: LimitSet) -> anyhow::Result<()> {
        let stored = |value: Option<u64>| -> anyhow::Result<Option<i64>> {
            value
                .map(|value| i64::try_from(value).context("a limit above 2^63"))
                .transpose()
        };
        anyhow::ensure!(
            limits.per_seconds != Some(0),
            "per-seconds must be at least 1"
        );
        anyhow::ensure!(limits.burst != Some(0), "burst must be at least 1");
        let values = [
            stored(limits.requests)?,
            stored(limits.per_seconds)?,
            stored(limits.burst)?,
            stored(limits.daily_rows)?,
            stored(limits.daily_bytes)?,
        ];
        let changed = announced!(&self.store, id, transaction => sqlx::query(
            "UPDATE auth_clients SET limit_requests = $1, limit_per_seconds = $2, limit_burst = $3, \
             limit_daily_rows = $4, limit_daily_bytes = $5 WHERE id = $6",
        )
        .bind(values[0])
        .bind(values[1])
        .bind(values[2])
        .bind(values[3])
        .bind(values[4])
        .bind(id)
        .execute(&mut *transaction)
        .await?
        .rows_affected())?;
        anyhow::ensure!(changed == 1, "no client `{id}`");
        Ok(())
    }

    /// Refuses the client from now on, tokens already issued included (its
    /// generation is raised).
    pub async fn disable(&self, id: &str) -> anyhow::Result<()> {
        self.set_enabled(id, false).await
    }

    /// Accepts a disabled client again.
    pub async fn enable(&self, id: &str) -> anyhow::Result<()> {
        self.set_enabled(id, true).await
    }

    /// Replaces the client's secret; returns the new one (shown once). The
    /// tokens issued before stop being accepted.
    pub async fn rotate_secret(&self, id: &str) -> anyhow::Result<String> {
        let secret = random_secret();
        let hash = hash_secret(secret.clone()).await?;
        // The tokens issued with the old secret end too.
        let changed = announced!(&self.store, id, transaction => sqlx::query(
            "UPDATE auth_clients SET secret_hash = $1, generation = generation + 1 WHERE id = $2",
        )
        .bind(&hash)
        .bind(id)
        .execute(&mut *transaction)
        .await?
        .rows_affected())?;
        anyhow::ensure!(changed == 1, "no client `{id}`");
        Ok(secret)
    }

    /// Removes the client and its API keys.
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        let deleted = announced!(&self.store, id, transaction => {
            sqlx::query("DELETE FROM auth_api_keys WHERE client_id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await?;
            sqlx::query("DELETE FROM auth_clients WHERE id = $1")
                .bind(id)
                .execute(&mut *transaction)
                .await?
                .rows_affected()
        })?;
        anyhow::ensure!(deleted == 1, "no client `{id}`");
        Ok(())
    }

    /// Revokes an API key: refused at once by every instance on PostgreSQL
    /// (notified), within `auth.api_key_cache_seconds` otherwise.
    pub async fn revoke_api_key(&self, key_id: &str) -> anyhow::Result<()> {
        let owner = with_pool!(&self.store, pool => sqlx::query_scalar::<_, String>(
            "SELECT client_id FROM auth_api_keys WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id)
        .fetch_optional(pool)
        .await)?
        .with_context(|| format!("no active API key `{key_id}`"))?;
        let changed = announced!(&self.store, &owner, transaction => sqlx::query(
            "UPDATE auth_api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(Utc::now())
        .bind(key_id)
        .execute(&mut *transaction)
        .await?
        .rows_affected())?;
        anyhow::ensure!(changed == 1, "no active API key `{key_id}`");
        Ok(())
    }

    /// What tokens already issued to the client are checked against
    /// (`None`: no such client).
    pub(crate) async fn state(&self, id: &str) -> anyhow::Result<Option<ClientState>> {
        let row = with_pool!(&self.store, pool => sqlx::query_as::<_, (bool, Option<DateTime<Utc>>, i64)>(
            "SELECT enabled, expires_at, generation FROM auth_clients WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)
        .context("cannot read the clients")?;
        Ok(row.map(|(enabled, expires_at, generation)| ClientState {
            enabled,
            expires_at,
            generation,
        }))
    }

    /// Checks a client's secret, then that it is enabled and its agreement runs.
    pub(crate) async fn verify_secret(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<VerifiedClient, ClientRefusal> {
        let row = self.find(client_id).await.map_err(ClientRefusal::Store)?;
        let hash = match &row {
            Some(row) => row.secret_hash.clone(),
            None => dummy_hash().to_owned(),
        };
        let matches = verify_hash(secret.to_owned(), hash).await;
        let Some(row) = row else {
            return Err(ClientRefusal::Unknown);
        };
        if !matches {
            return Err(ClientRefusal::WrongSecret);
        }
        usable(row)
    }

    /// Checks an API key (`pk_<key id>_<secret>`) and its client. A refusal
    /// names the client once the key's secret has matched.
    pub(crate) async fn verify_api_key(
        &self,
        key: &str,
    ) -> Result<(String, VerifiedClient), (ClientRefusal, Option<String>)> {
        let (key_id, secret) = split_api_key(key).ok_or((ClientRefusal::Unknown, None))?;
        let row = with_pool!(&self.store, pool => sqlx::query_as::<_, ApiKeyRow>(
            "SELECT id, client_id, key_hash, created_at, expires_at, revoked_at FROM auth_api_keys WHERE id = $1",
        )
        .bind(key_id)
        .fetch_optional(pool)
        .await)
        .map_err(|error| (ClientRefusal::Store(error.into()), None))?;
        let presented = sha256_hex(secret);
        let Some(row) = row else {
            // Same work as a known key.
            let _ = presented.as_bytes().ct_eq(sha256_hex("").as_bytes());
            return Err((ClientRefusal::Unknown, None));
        };
        if !bool::from(presented.as_bytes().ct_eq(row.key_hash.as_bytes())) {
            return Err((ClientRefusal::WrongSecret, None));
        }
        let owner = Some(row.client_id.clone());
        if row.revoked_at.is_some() {
            return Err((ClientRefusal::Revoked, owner));
        }
        if row.expires_at.is_some_and(|end| end <= Utc::now()) {
            return Err((ClientRefusal::Expired, owner));
        }
        let client = self
            .find(&row.client_id)
            .await
            .map_err(|error| (ClientRefusal::Store(error), owner.clone()))?
            .ok_or((ClientRefusal::Unknown, owner.clone()))?;
        let client = usable(client).map_err(|refusal| (refusal, owner))?;
        Ok((row.id, client))
    }

    async fn find(&self, id: &str) -> anyhow::Result<Option<ClientRow>> {
        let row = with_pool!(&self.store, pool => sqlx::query_as::<_, ClientRow>(
            "SELECT id, org, roles, datasets, secret_hash, enabled, created_at, expires_at, generation, \
             limit_requests, limit_per_seconds, limit_burst, limit_daily_rows, limit_daily_bytes \
             FROM auth_clients WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)
        .context("cannot read the clients")?;
        Ok(row)
    }

    async fn set_enabled(&self, id: &str, enabled: bool) -> anyhow::Result<()> {
        // Disabling raises the generation: the tokens issued before stay
        // refused even if the client is enabled again.
        let changed = announced!(&self.store, id, transaction => sqlx::query(
            "UPDATE auth_clients SET enabled = $1, \
             generation = CASE WHEN $1 THEN generation ELSE generation + 1 END WHERE id = $2",
        )
        .bind(enabled)
        .bind(id)
        .execute(&mut *transaction)
        .await?
        .rows_affected())?;
        anyhow::ensure!(changed == 1, "no client `{id}`");
        Ok(())
    }
}

fn usable(row: ClientRow) -> Result<VerifiedClient, ClientRefusal> {
    if !row.enabled {
        return Err(ClientRefusal::Disabled);
    }
    if row.expires_at.is_some_and(|end| end <= Utc::now()) {
        return Err(ClientRefusal::Expired);
    }
    let roles =
        serde_json::from_str(&row.roles).map_err(|error| ClientRefusal::Store(error.into()))?;
    let datasets = row
        .datasets
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|error| ClientRefusal::Store(error.into()))?;
    Ok(VerifiedClient {
        client_id: row.id,
        org: row.org,
        roles,
        datasets,
        generation: row.generation,
    })
}

/// `pk_<key id>_<secret>` → (key id, secret). The key id is hex, so the first
/// `_` after the prefix ends it (the secret may contain `_`).
pub(crate) fn split_api_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(API_KEY_PREFIX)?;
    let (key_id, secret) = rest.split_once('_')?;
    let well_formed = !key_id.is_empty()
        && key_id.len() <= 64
        && key_id.bytes().all(|byte| byte.is_ascii_hexdigit())
        && !secret.is_empty();
    well_formed.then_some((key_id, secret))
}

/// 32 random bytes, base64url without padding.
fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(os_random::<32>())
}

/// Bytes from the operating system's generator. Without one there is no
/// safe secret to make: the gateway stops rather than makes a weak one.
fn os_random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random generator");
    bytes
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Argon2id with the recommended parameters (19 MiB, 2 passes); unit tests
/// use cheaper ones because unoptimised builds are slow.
fn argon2() -> Argon2<'static> {
    let params = if cfg!(test) {
        Params::new(1024, 1, 1, None)
    } else {
        Params::new(19 * 1024, 2, 1, None)
    };
    Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params.expect("valid argon2 parameters"),
    )
}

async fn hash_secret(secret: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password_with_salt(secret.as_bytes(), &os_random::<16>())
            .map(|hash| hash.to_string())
            .map_err(|error| anyhow::anyhow!("cannot hash the secret: {error}"))
    })
    .await?
}

/// Verifies with the parameters stored in the hash (constant-time compare inside).
async fn verify_hash(secret: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|parsed| argon2().verify_password(secret.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random secret nobody knows, verified for unknown clients.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        argon2()
            .hash_password_with_salt(random_secret().as_bytes(), &os_random::<16>())
            .expect("argon2 hash")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support;

    async fn registry_lifecycle(store: Store) {
        let registry = ClientRegistry::new(store);
        let datasets = vec!["locations-velos".to_owned()];
        let (id, secret) = registry
            .create("Troyes", &["partenaire".to_owned()], Some(&datasets), None)
            .await
            .unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), 32);
        let client = registry.verify_secret(&id, &secret).await.unwrap();
        assert_eq!(client.org, "Troyes");
        assert_eq!(client.roles, vec!["partenaire"]);
        assert_eq!(client.datasets, Some(datasets.clone()));
        assert!(matches!(
            registry.verify_secret(&id, "nope").await,
            Err(ClientRefusal::WrongSecret)
        ));
        assert!(matches!(
            registry.verify_secret("client_x", &secret).await,
            Err(ClientRefusal::Unknown)
        ));

        // Listing never shows hashes or secrets.
        let listed = registry.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        let text = serde_json::to_string(&listed).unwrap();
        assert!(!text.contains("argon2") && !text.contains(&secret));

        // A client's own limits, value by value; an empty set removes them.
        assert_eq!(registry.limits(&id).await.unwrap(), None);
        let own = LimitSet {
            requests: Some(5),
            daily_rows: Some(0),
            ..LimitSet::default()
        };
        registry.set_limits(&id, own).await.unwrap();
        assert_eq!(registry.limits(&id).await.unwrap(), Some(own));
        assert_eq!(registry.list().await.unwrap()[0].limits, own);
        registry.set_limits(&id, LimitSet::default()).await.unwrap();
        assert_eq!(registry.limits(&id).await.unwrap(), None);
        assert!(registry.set_limits("client_x", own).await.is_err());

        let generation = |state: Option<ClientState>| state.expect("a client").generation;
        let first = registry
            .verify_secret(&id, &secret)
            .await
            .unwrap()
            .generation;
        assert_eq!(generation(registry.state(&id).await.unwrap()), first);
        let rotated = registry.rotate_secret(&id).await.unwrap();
        // A new secret: the tokens issued before carry an older generation.
        assert_eq!(generation(registry.state(&id).await.unwrap()), first + 1);
        assert_eq!(
            registry
                .verify_secret(&id, &rotated)
                .await
                .unwrap()
                .generation,
            first + 1
        );
        assert!(matches!(
            registry.verify_secret(&id, &secret).await,
            Err(ClientRefusal::WrongSecret)
        ));
        assert!(registry.verify_secret(&id, &rotated).await.is_ok());

        let (key_id, key) = registry.create_api_key(&id, None).await.unwrap();
        assert!(key.starts_with(&format!("pk_{key_id}_")));
        let (found_id, client) = registry.verify_api_key(&key).await.unwrap();
        assert_eq!(
            (found_id.as_str(), client.client_id.as_str()),
            (key_id.as_str(), id.as_str())
        );
        let wrong = format!("{}x", &key[..key.len() - 1]);
        assert!(matches!(
            registry.verify_api_key(&wrong).await,
            Err((ClientRefusal::WrongSecret, None))
        ));
        assert_eq!(registry.list().await.unwrap()[0].api_keys.len(), 1);

        registry.disable(&id).await.unwrap();
        assert!(matches!(
            registry.verify_secret(&id, &rotated).await,
            Err(ClientRefusal::Disabled)
        ));
        assert!(matches!(
            registry.verify_api_key(&key).await,
            Err((ClientRefusal::Disabled, Some(_)))
        ));
        // Disabled: a new generation, which enabling again keeps.
        let disabled = registry.state(&id).await.unwrap().expect("a client");
        assert_eq!((disabled.enabled, disabled.generation), (false, first + 2));
        registry.enable(&id).await.unwrap();
        let enabled = registry.state(&id).await.unwrap().expect("a client");
        assert_eq!((enabled.enabled, enabled.generation), (true, first + 2));
        registry.revoke_api_key(&key_id).await.unwrap();
        assert!(matches!(
            registry.verify_api_key(&key).await,
            Err((ClientRefusal::Revoked, Some(_)))
        ));
        assert!(
            registry.revoke_api_key(&key_id).await.is_err(),
            "already revoked"
        );

        let yesterday = Utc::now() - chrono::Duration::days(1);
        let (ended, ended_secret) = registry
            .create("ADEME", &[], None, Some(yesterday))
            .await
            .unwrap();
        assert!(matches!(
            registry.verify_secret(&ended, &ended_secret).await,
            Err(ClientRefusal::Expired)
        ));
        let (expired_key_id, expired_key) =
            registry.create_api_key(&id, Some(yesterday)).await.unwrap();
        assert!(!expired_key_id.is_empty());
        assert!(matches!(
            registry.verify_api_key(&expired_key).await,
            Err((ClientRefusal::Expired, Some(_)))
        ));

        registry.delete(&id).await.unwrap();
        assert_eq!(registry.state(&id).await.unwrap(), None);
        assert!(matches!(
            registry.verify_secret(&id, &rotated).await,
            Err(ClientRefusal::Unknown)
        ));
        assert!(registry.disable(&id).await.is_err());
        assert!(registry.create_api_key(&id, None).await.is_err());
    }

    /// Create, verify, rotate, disable, expire, revoke and delete on SQLite.
    #[tokio::test]
    async fn registry_on_sqlite() {
        let (store, _guard) = test_support::sqlite().await;
        registry_lifecycle(store).await;
    }

    /// The same on PostgreSQL.
    #[tokio::test]
    async fn registry_on_postgres() {
        let Some((store, _guard)) = test_support::postgres().await else {
            return;
        };
        registry_lifecycle(store).await;
    }

    /// API keys split at the first `_` after the hex key id.
    #[test]
    fn splits_api_keys() {
        assert_eq!(
            split_api_key("pk_abc123_se_cr-et"),
            Some(("abc123", "se_cr-et"))
        );
        assert_eq!(split_api_key("pk_abc123_"), None);
        assert_eq!(split_api_key("pk_xyz_secret"), None);
        assert_eq!(split_api_key("sk_abc_secret"), None);
    }
}
