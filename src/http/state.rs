//! The application state every handler shares: cheap to clone, no globals.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::audit::AuditLog;
use crate::auth::Authenticator;
use crate::catalog::CatalogHandle;
use crate::config::Settings;
use crate::policy::PolicyEngine;
use crate::store::probe::StoreHealth;
use crate::store::{Store, StoreError};

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
    /// The export pool and each caller's share of it.
    pub exports: crate::http::data::exports::Exports,
    /// Request rates and daily quotas.
    pub limits: crate::limits::Limits,
    /// Draining and cutting at shutdown.
    pub lifecycle: crate::http::lifecycle::Lifecycle,
}

impl AppState {
    /// Re-reads the catalogue; when a dataset came, went or changed, the
    /// policy learns the datasets' access levels again.
    pub async fn refresh_catalog(&self) -> Result<(), StoreError> {
        let before = self.catalog.current().fingerprint();
        self.catalog.refresh(&self.store).await?;
        let catalog = self.catalog.current();
        if catalog.fingerprint() != before {
            let levels: Vec<_> = catalog
                .entries()
                .iter()
                .map(|entry| (entry.id().to_owned(), entry.definition.access))
                .collect();
            let publishers: Vec<_> = catalog
                .entries()
                .iter()
                .map(|entry| {
                    (
                        entry.id().to_owned(),
                        crate::policy::publisher_group(&entry.definition.publisher),
                    )
                })
                .collect();
            if let Err(error) = self.policy.set_catalogue(&levels, &publishers).await {
                tracing::error!(%error, "policy not updated for the new catalogue");
            }
        }
        Ok(())
    }
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
