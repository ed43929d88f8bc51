//! Identity: who is asking.
//!
//! A request's credentials become a [`Caller`]: a JWT from an external
//! identity provider (keys from its JWKS), a token the gateway issued to a
//! partner client (ES256, keys in the store), an API key, or nothing
//! (anonymous). Invalid credentials are refused with a specific reason, never
//! downgraded to anonymous. The gateway is also an OAuth2 authorization
//! server for partner clients (client-credentials grant).
//!
//! - `config`: settings; `caller`: the resulting identity;
//! - `authenticator`: header → caller; `jwt`: token checks; `jwks`: provider keys;
//! - `keys`: the gateway's signing keys; `clients`: partner clients and API keys;
//! - `http`: the token endpoint, JWKS and metadata; `limiter`: failed attempts.

/// Runs the same SQL on whichever pool backs the store.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}

mod authenticator;
pub mod caller;
pub mod clients;
pub mod config;
pub mod http;
mod jwks;
mod jwt;
pub mod keys;
mod limiter;

#[cfg(test)]
mod tests;

pub use authenticator::Authenticator;
pub use caller::{AuthFailure, AuthMethod, Caller};
pub use clients::{ApiKeyInfo, ClientInfo, ClientRegistry};
pub use config::{AuthConfig, IssuerConfig};
pub use http::{ClientAddress, routes};
pub use keys::{KeyInfo, KeyRing};
