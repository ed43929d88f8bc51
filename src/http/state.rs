//! The application state every handler shares: cheap to clone, no globals.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::audit::AuditLog;
use crate::auth::Authenticator;
use crate::catalog::CatalogHandle;
use crate::config::Settings;
use crate::policy::PolicyEngine;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub catalog: CatalogHandle,
    pub authenticator: Authenticator,
    pub policy: PolicyEngine,
    pub audit: AuditLog,
    /// JSON pages by dataset version, plan and view.
    pub pages: crate::http::data::cache::PageCache,
    /// The export pool and each caller's share of it.
    pub exports: crate::http::data::exports::Exports,
    /// Draining and cutting at shutdown.
    pub lifecycle: crate::http::lifecycle::Lifecycle,
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Authenticator {
        state.authenticator.clone()
    }
}

impl FromRef<AppState> for PolicyEngine {
    fn from_ref(state: &AppState) -> PolicyEngine {
        state.policy.clone()
    }
}

impl FromRef<AppState> for AuditLog {
    fn from_ref(state: &AppState) -> AuditLog {
        state.audit.clone()
    }
}
