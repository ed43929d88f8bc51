//! Who is asking: the identity every later step (policy, query, audit) sees.
//!
//! Invariant: `roles` always contains `anonymous`, so any valid identity may
//! read what an anonymous caller may read.

use serde_json::{Map, Value};

/// The role every caller has.
pub const ANONYMOUS: &str = "anonymous";

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// No credentials.
    Anonymous,
    /// A JWT from an external identity provider.
    ExternalJwt,
    /// A token the gateway issued (client-credentials grant or `passerelle token`).
    GatewayToken,
    /// A partner's API key.
    ApiKey,
}

impl AuthMethod {
    /// The name used in the audit log.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::ExternalJwt => "jwt",
            AuthMethod::GatewayToken => "client_credentials",
            AuthMethod::ApiKey => "api_key",
        }
    }
}

/// A verified identity (or the anonymous one).
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// Subject; `anonymous` when no credentials were given.
    pub subject: String,
    /// Organisation, from the token's org claim or the partner client.
    pub org: Option<String>,
    /// Roles for the policy; always contains `anonymous`.
    pub roles: Vec<String>,
    pub auth_method: AuthMethod,
    /// Partner client, for gateway tokens and API keys.
    pub client_id: Option<String>,
    /// `jti` of the token, or the API key's id.
    pub token_id: Option<String>,
    /// Datasets a partner client is restricted to (`None`: no restriction).
    pub allowed_datasets: Option<Vec<String>>,
    /// Verified claims of the token (empty for anonymous callers and API keys).
    pub claims: Map<String, Value>,
}

impl Caller {
    /// The caller without credentials.
    pub fn anonymous() -> Caller {
        Caller {
            subject: ANONYMOUS.to_owned(),
            org: None,
            roles: vec![ANONYMOUS.to_owned()],
            auth_method: AuthMethod::Anonymous,
            client_id: None,
            token_id: None,
            allowed_datasets: None,
            claims: Map::new(),
        }
    }

    /// True when no credentials were given.
    pub fn is_anonymous(&self) -> bool {
        self.auth_method == AuthMethod::Anonymous
    }

    /// A claim for row filters: `org` is the caller's organisation; otherwise a
    /// top-level string or number claim. Arrays and objects give `None`.
    pub fn claim(&self, name: &str) -> Option<String> {
        if name == "org" {
            return self.org.clone();
        }
        if name == "sub" {
            return (!self.is_anonymous()).then(|| self.subject.clone());
        }
        match self.claims.get(name)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }
}

/// Builds the role list of an authenticated caller: `anonymous`, then the
/// mapped roles, or `authenticated_role` when there are none.
pub(crate) fn caller_roles(mapped: Vec<String>, authenticated_role: &str) -> Vec<String> {
    let mut roles = vec![ANONYMOUS.to_owned()];
    for role in mapped {
        if !role.is_empty() && !roles.contains(&role) {
            roles.push(role);
        }
    }
    if roles.len() == 1 {
        roles.push(authenticated_role.to_owned());
    }
    roles
}

/// Why credentials were refused. `detail` names the failed check and never
/// repeats the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// Stable code: `expired`, `bad_signature`, `unknown_kid`, …
    pub reason: &'static str,
    /// For humans: which check failed.
    pub detail: String,
    /// The partner client concerned, when known.
    pub client_id: Option<String>,
}

impl AuthFailure {
    pub(crate) fn new(reason: &'static str, detail: impl Into<String>) -> AuthFailure {
        AuthFailure {
            reason,
            detail: detail.into(),
            client_id: None,
        }
    }
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} ({})", self.detail, self.reason)
    }
}

impl std::error::Error for AuthFailure {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The anonymous caller has only the anonymous role and no claims.
    #[test]
    fn anonymous_caller() {
        let caller = Caller::anonymous();
        assert!(caller.is_anonymous());
        assert_eq!(caller.roles, vec!["anonymous"]);
        assert_eq!(caller.claim("org"), None);
        assert_eq!(caller.claim("sub"), None);
        assert_eq!(caller.auth_method.as_str(), "anonymous");
    }

    /// `org` comes from the caller, other claims from the token's top level.
    #[test]
    fn claims_for_row_filters() {
        let mut caller = Caller::anonymous();
        caller.auth_method = AuthMethod::ExternalJwt;
        caller.subject = "alice".into();
        caller.org = Some("Troyes".into());
        caller.claims.insert("org".into(), Value::from("ignored"));
        caller.claims.insert("insee".into(), Value::from(10387));
        caller.claims.insert("unit".into(), Value::from("voirie"));
        caller
            .claims
            .insert("groups".into(), serde_json::json!(["a"]));
        assert_eq!(caller.claim("org").as_deref(), Some("Troyes"));
        assert_eq!(caller.claim("insee").as_deref(), Some("10387"));
        assert_eq!(caller.claim("unit").as_deref(), Some("voirie"));
        assert_eq!(caller.claim("sub").as_deref(), Some("alice"));
        assert_eq!(caller.claim("groups"), None);
        assert_eq!(caller.claim("missing"), None);
    }

    /// Authenticated callers keep `anonymous` and get the default role only when they have none.
    #[test]
    fn roles_always_include_anonymous() {
        assert_eq!(
            caller_roles(vec![], "authenticated"),
            vec!["anonymous", "authenticated"]
        );
        assert_eq!(
            caller_roles(
                vec!["agent".into(), "agent".into(), "".into()],
                "authenticated"
            ),
            vec!["anonymous", "agent"]
        );
        assert_eq!(
            caller_roles(vec!["anonymous".into()], "authenticated"),
            vec!["anonymous", "authenticated"]
        );
    }
}
