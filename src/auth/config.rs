//! What the identity layer can be told: the gateway's own issuer, the
//! external identity providers it trusts, and the limits on failed attempts.
//!
//! Every field has a default that is safe and usable for development: no
//! external issuer is trusted until one is configured.

use serde::Deserialize;

/// Identity settings (`[auth]` in the configuration file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `iss` of the tokens the gateway signs itself.
    pub issuer: String,
    /// `aud` of the gateway's tokens, and the audience they must carry.
    pub audience: String,
    /// Lifetime of a token issued at `/api/v1/auth/token`.
    pub token_ttl_seconds: u64,
    /// Longest lifetime `KeyRing::mint` accepts; a retired signing key stays
    /// published this long, so no token outlives its key.
    pub max_token_ttl_seconds: u64,
    /// Role of a verified caller whose credentials carry no role.
    pub authenticated_role: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_seconds: u64,
    /// Timeout of one request to an identity provider.
    pub jwks_timeout_seconds: u64,
    /// Minimum time between two fetches of one provider's keys (unknown `kid`
    /// floods do not reach the provider more often than this).
    pub jwks_min_refresh_seconds: u64,
    /// Period of the background refresh of every provider's keys.
    pub jwks_refresh_seconds: u64,
    /// Failed token requests allowed per client id or IP within the window.
    pub failed_auth_limit: u32,
    /// Window of the failed-attempt counter; also the `Retry-After` bound.
    pub failed_auth_window_seconds: u64,
    /// How long an API key check is reused (a revoked key stops within this).
    pub api_key_cache_seconds: u64,
    /// How long a partner client's state (enabled, generation) is reused to
    /// check the tokens issued to it. On PostgreSQL every instance forgets
    /// it at once when the client changes (notified): this is the fallback
    /// when a notification is missed, and the delay on SQLite.
    pub client_state_cache_seconds: u64,
    /// Public base URL (`https://data.example.org`) for the OAuth2 metadata;
    /// when absent, it is derived from the request's `Host`.
    pub public_url: Option<String>,
    /// External identity providers whose tokens are accepted.
    pub issuers: Vec<IssuerConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "passerelle".to_owned(),
            audience: "passerelle".to_owned(),
            token_ttl_seconds: 900,
            max_token_ttl_seconds: 86_400,
            authenticated_role: "authenticated".to_owned(),
            leeway_seconds: 30,
            jwks_timeout_seconds: 5,
            jwks_min_refresh_seconds: 30,
            jwks_refresh_seconds: 300,
            failed_auth_limit: 5,
            failed_auth_window_seconds: 60,
            api_key_cache_seconds: 2,
            client_state_cache_seconds: 5,
            public_url: None,
            issuers: Vec::new(),
        }
    }
}

/// One trusted identity provider (`[[auth.issuers]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerConfig {
    /// Short name for logs and readiness.
    pub name: String,
    /// Exact `iss` value of its tokens.
    pub issuer: String,
    /// Accepted `aud` values; a token must carry one of them.
    pub audiences: Vec<String>,
    /// Accepted algorithms: `RS256`, `PS256`, `ES256`, `EdDSA`; `HS256` only
    /// together with `hs256_secret`.
    pub algorithms: Vec<String>,
    /// Where its JSON Web Key Set is published.
    pub jwks_url: Option<String>,
    /// OpenID discovery document whose `jwks_uri` gives the key set.
    pub discovery_url: Option<String>,
    /// Key set given inline (a JSON object or a JSON string).
    pub jwks: Option<serde_json::Value>,
    /// Shared secret for `HS256` (at least 32 bytes); never mixed with public keys.
    pub hs256_secret: Option<String>,
    /// Claim holding the subject.
    pub subject_claim: String,
    /// Claim holding the organisation, if any.
    pub org_claim: Option<String>,
    /// Dotted path of the roles (`roles`, `groups`, `realm_access.roles`): an
    /// array of strings or a space-separated string.
    pub roles_claim: String,
    /// When set, only roles starting with this prefix are kept, prefix removed
    /// (the provider's other roles never reach the policy).
    pub role_prefix: Option<String>,
    /// Clock skew for this provider (default: `leeway_seconds`).
    pub leeway_seconds: Option<u64>,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        IssuerConfig {
            name: String::new(),
            issuer: String::new(),
            audiences: Vec::new(),
            algorithms: vec!["RS256".to_owned(), "ES256".to_owned()],
            jwks_url: None,
            discovery_url: None,
            jwks: None,
            hs256_secret: None,
            subject_claim: "sub".to_owned(),
            org_claim: None,
            roles_claim: "roles".to_owned(),
            role_prefix: None,
            leeway_seconds: None,
        }
    }
}

impl AuthConfig {
    /// Refuses settings that cannot work or would weaken verification.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.issuer.is_empty(), "auth.issuer must not be empty");
        anyhow::ensure!(!self.audience.is_empty(), "auth.audience must not be empty");
        anyhow::ensure!(
            self.token_ttl_seconds > 0 && self.token_ttl_seconds <= self.max_token_ttl_seconds,
            "auth.token_ttl_seconds must be between 1 and auth.max_token_ttl_seconds"
        );
        anyhow::ensure!(
            !self.authenticated_role.is_empty() && self.authenticated_role != "anonymous",
            "auth.authenticated_role must be a role other than `anonymous`"
        );
        anyhow::ensure!(
            self.failed_auth_limit > 0,
            "auth.failed_auth_limit must be at least 1"
        );
        let mut names = std::collections::HashSet::new();
        for issuer in &self.issuers {
            issuer.check(&self.issuer)?;
            anyhow::ensure!(
                names.insert(issuer.issuer.as_str()),
                "issuer `{}` is configured twice",
                issuer.issuer
            );
        }
        Ok(())
    }
}

impl IssuerConfig {
    fn check(&self, gateway_issuer: &str) -> anyhow::Result<()> {
        let name = if self.name.is_empty() {
            &self.issuer
        } else {
            &self.name
        };
        anyhow::ensure!(
            !self.issuer.is_empty(),
            "an issuer needs `issuer` (its exact `iss`)"
        );
        anyhow::ensure!(
            self.issuer != gateway_issuer,
            "issuer `{name}` uses the gateway's own issuer name"
        );
        anyhow::ensure!(
            !self.audiences.is_empty(),
            "issuer `{name}` needs at least one audience"
        );
        anyhow::ensure!(
            !self.algorithms.is_empty(),
            "issuer `{name}` needs at least one algorithm"
        );
        for algorithm in &self.algorithms {
            match algorithm.as_str() {
                "RS256" | "PS256" | "ES256" | "EdDSA" => {}
                "HS256" => anyhow::ensure!(
                    self.hs256_secret
                        .as_ref()
                        .is_some_and(|secret| secret.len() >= 32),
                    "issuer `{name}` allows HS256 without an `hs256_secret` of at least 32 bytes"
                ),
                other => anyhow::bail!("issuer `{name}`: algorithm `{other}` is not accepted"),
            }
        }
        let sources = [
            self.jwks_url.is_some(),
            self.discovery_url.is_some(),
            self.jwks.is_some(),
        ]
        .iter()
        .filter(|present| **present)
        .count();
        let only_hs256 = self.algorithms.iter().all(|algorithm| algorithm == "HS256");
        anyhow::ensure!(
            sources == 1 || (sources == 0 && only_hs256),
            "issuer `{name}` needs exactly one of `jwks_url`, `discovery_url`, `jwks`"
        );
        anyhow::ensure!(
            !self.subject_claim.is_empty(),
            "issuer `{name}`: empty subject_claim"
        );
        Ok(())
    }

    /// The name used in logs and readiness.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.issuer
        } else {
            &self.name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are usable as they are and trust no external issuer.
    #[test]
    fn defaults_are_secure_and_valid() {
        let config = AuthConfig::default();
        config.check().expect("defaults are valid");
        assert!(config.issuers.is_empty());
        assert_eq!(config.token_ttl_seconds, 900);
        assert_eq!(config.issuer, "passerelle");
    }

    /// HS256 needs its own secret; unknown algorithms and missing audiences are refused.
    #[test]
    fn refuses_weak_issuers() {
        let issuer = |algorithms: &[&str], secret: Option<&str>, audiences: &[&str]| AuthConfig {
            issuers: vec![IssuerConfig {
                issuer: "https://idp.example".into(),
                audiences: audiences.iter().map(|a| a.to_string()).collect(),
                algorithms: algorithms.iter().map(|a| a.to_string()).collect(),
                jwks_url: Some("https://idp.example/jwks".into()),
                hs256_secret: secret.map(str::to_owned),
                ..IssuerConfig::default()
            }],
            ..AuthConfig::default()
        };
        assert!(issuer(&["RS256"], None, &["api"]).check().is_ok());
        assert!(issuer(&["HS256"], None, &["api"]).check().is_err());
        assert!(issuer(&["HS256"], Some("short"), &["api"]).check().is_err());
        assert!(
            issuer(&["HS256"], Some(&"s".repeat(32)), &["api"])
                .check()
                .is_ok()
        );
        assert!(issuer(&["none"], None, &["api"]).check().is_err());
        assert!(issuer(&["RS256"], None, &[]).check().is_err());
    }

    /// A misspelt key is an error.
    #[test]
    fn refuses_unknown_keys() {
        assert!(toml::from_str::<AuthConfig>("token_ttl = 5").is_err());
        let config: AuthConfig = toml::from_str(
            "[[issuers]]\nissuer = \"https://idp\"\naudiences = [\"api\"]\njwks = '{\"keys\": []}'\n",
        )
        .unwrap();
        assert_eq!(config.issuers[0].subject_claim, "sub");
    }
}
