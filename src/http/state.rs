//! The application state every handler shares: cheap to clone, no globals.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::audit::AuditLog;
use crate::auth::Authenticator;
use crate::catalog::CatalogHandle;
use crate::config::Settings;
use crate::policy::PolicyEngine;
use crate::store::Store;
use crate::store::probe::StoreHealth;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    /// The store's last probed state (readiness reads it without waiting).
    pub store_health: StoreHealth,
    pub catalog: CatalogHandle,
    pub authenticator: Authenticator,
    pub policy: PolicyEngine,
    pub audit: AuditLog,
    /// JSON pages by dataset version, plan and view.
    pub pages: crate::http::data::cache::PageCache,
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
