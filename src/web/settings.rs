//! What the pages can be told (`[web]`): the staff sign-in (`[web.oidc]`,
//! OpenID Connect against the authority's identity provider) and the
//! lifetime of a signed-in session (`[web.session]`). Without `[web.oidc]`
//! nobody signs in: every page is seen as an anonymous visitor sees it.

use serde::Deserialize;

use crate::auth::AuthConfig;

/// `[web]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// The identity provider staff sign in with; none by default.
    pub oidc: Option<OidcSettings>,
    pub session: SessionSettings,
}

/// `[web.oidc]`: an OpenID Connect provider, used with the authorization
/// code flow and PKCE. Its ID tokens are verified like API tokens, with the
/// keys and claim mapping of the `[[auth.issuers]]` entry of the same issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The provider's issuer; its discovery document is
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The gateway's client id at the provider (the ID token's audience).
    pub client_id: String,
    /// For a confidential client; a public client relies on PKCE alone.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back: `{public URL}/login/callback`.
    pub redirect_url: String,
    /// Scopes asked for; `openid` is always among them.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec![
        "openid".to_owned(),
        "profile".to_owned(),
        "email".to_owned(),
    ]
}

/// `[web.session]`: how long a sign-in lasts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// A session unused this long ends.
    pub idle_timeout_seconds: u64,
    /// A session ends this long after the sign-in, used or not.
    pub absolute_timeout_seconds: u64,
    /// How long the provider may take between `/login` and the callback.
    pub login_timeout_seconds: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_timeout_seconds: 30 * 60,
            absolute_timeout_seconds: 8 * 3600,
            login_timeout_seconds: 10 * 60,
        }
    }
}

impl WebSettings {
    /// Refuses a sign-in that could not work or would not be verified.
    pub fn check(&self, auth: &AuthConfig, dev_mode: bool) -> Result<(), String> {
        let session = &self.session;
        if session.idle_timeout_seconds == 0
            || session.login_timeout_seconds == 0
            || session.idle_timeout_seconds > session.absolute_timeout_seconds
        {
            return Err("web.session: the timeouts must be at least 1 second, \
                 and idle_timeout_seconds at most absolute_timeout_seconds"
                .to_owned());
        }
        let Some(oidc) = &self.oidc else {
            return Ok(());
        };
        if oidc.issuer.is_empty() || oidc.client_id.is_empty() {
            return Err("web.oidc needs `issuer` and `client_id`".to_owned());
        }
        if !auth
            .issuers
            .iter()
            .any(|issuer| issuer.issuer == oidc.issuer)
        {
            return Err(format!(
                "web.oidc.issuer `{}` must also be an [[auth.issuers]] entry: its keys and \
                 claim mapping verify the ID tokens",
                oidc.issuer
            ));
        }
        let redirect = oidc.redirect_url.as_str();
        let https = redirect.starts_with("https://");
        if !(https || dev_mode && redirect.starts_with("http://")) {
            return Err(
                "web.oidc.redirect_url must be an https:// URL (http:// only in dev mode)"
                    .to_owned(),
            );
        }
        if !oidc.issuer.starts_with("https://") && !dev_mode {
            return Err("web.oidc.issuer must be an https:// URL outside dev mode".to_owned());
        }
        Ok(())
    }
}

impl OidcSettings {
    /// The scopes to ask for, `openid` first and once.
    pub fn scope(&self) -> String {
        let mut scopes = vec!["openid"];
        scopes.extend(
            self.scopes
                .iter()
                .map(String::as_str)
                .filter(|scope| *scope != "openid" && !scope.is_empty()),
        );
        scopes.join(" ")
    }

    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::IssuerConfig;

    fn oidc(issuer: &str, redirect: &str) -> WebSettings {
        WebSettings {
            oidc: Some(OidcSettings {
                issuer: issuer.to_owned(),
                client_id: "passerelle-pages".to_owned(),
                client_secret: None,
                redirect_url: redirect.to_owned(),
                scopes: vec!["profile".to_owned(), "openid".to_owned()],
            }),
            session: SessionSettings::default(),
        }
    }

    /// The sign-in's issuer must be trusted for tokens too; plain HTTP only in dev mode.
    #[test]
    fn checks_the_sign_in() {
        let auth = AuthConfig {
            issuers: vec![IssuerConfig {
                issuer: "https://idp.example".to_owned(),
                audiences: vec!["api".to_owned()],
                jwks_url: Some("https://idp.example/jwks".to_owned()),
                ..IssuerConfig::default()
            }],
            ..AuthConfig::default()
        };
        let good = oidc("https://idp.example", "https://data.example/login/callback");
        assert_eq!(good.check(&auth, false), Ok(()));
        assert_eq!(good.oidc.as_ref().unwrap().scope(), "openid profile");
        assert!(
            oidc(
                "https://other.example",
                "https://data.example/login/callback"
            )
            .check(&auth, false)
            .unwrap_err()
            .contains("[[auth.issuers]]")
        );
        let plain = oidc("https://idp.example", "http://data.example/login/callback");
        assert!(plain.check(&auth, false).is_err());
        assert_eq!(plain.check(&auth, true), Ok(()));
        let mut short = WebSettings::default();
        short.session.idle_timeout_seconds = short.session.absolute_timeout_seconds + 1;
        assert!(short.check(&auth, true).is_err());
        assert_eq!(WebSettings::default().check(&auth, false), Ok(()));
    }
}
