//! The application state every handler shares: cheap to clone, no globals.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::audit::AuditLog;
use crate::auth::Authenticator;
use crate::catalog::CatalogHandle;
use crate::config::Settings;
use crate::policy::PolicyEngine;
use crate::store::changes::{Change, Heard};
use crate::store::probe::StoreHealth;
use crate::store::{Store, StoreError};

/// One pointer: every middleware layer and extractor clones the state for
/// each request, and cloning each service's handles (a dozen reference
/// counts, taken and dropped again) was 5 % of a cached read's CPU (perf).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Services {
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
    /// Where dataset reads run: the primary, or the read replica when it
    /// has replayed the version in force.
    pub reads: crate::store::replica::ReadStores,
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

    /// Applies what another instance changed, as soon as it is heard (see
    /// [`crate::store::changes`]). Polling still catches up on what failed here.
    pub async fn apply(&self, heard: Heard) {
        match heard {
            Heard::Change(Change::Catalog { dataset }) => {
                tracing::debug!(%dataset, "catalogue change heard");
                if let Err(error) = self.refresh_catalog().await {
                    tracing::warn!(%error, "catalogue not refreshed after a change: polling will");
                }
            }
            Heard::Change(Change::Policy) => {
                // A failed reload keeps the policy in force and says why.
                let _ = self.reload_policy().await;
            }
            Heard::Change(Change::Keys) => self.reload_keys().await,
            Heard::Change(Change::Client { client_id }) => {
                self.authenticator.forget_client(&client_id).await;
                self.limits.forget_client(&client_id).await;
            }
            Heard::Everything => {
                self.authenticator.forget_all_clients();
                self.limits.forget_all_clients();
                if let Err(error) = self.refresh_catalog().await {
                    tracing::warn!(%error, "catalogue not refreshed: polling will");
                }
                let _ = self.reload_policy().await;
                self.reload_keys().await;
            }
        }
    }

    /// Brings the policy in force up to its source: re-reads the files, or
    /// (`policies_source = "store"`) swaps in the store's current version
    /// when another is in force. On error the policy in force stays.
    pub async fn reload_policy(&self) -> anyhow::Result<()> {
        let Some(in_force) = self.policy.store_version() else {
            return Ok(self.policy.reload().await?);
        };
        let result = async {
            if crate::store::policies::current_number(&self.store).await? == Some(in_force) {
                return Ok(());
            }
            let Some(current) = crate::store::policies::current(&self.store).await? else {
                anyhow::bail!("the store holds no policy");
            };
            if current.number != in_force {
                self.policy
                    .replace_text(&current.model, &current.rules, current.number)
                    .await?;
            }
            Ok(())
        }
        .await;
        if let Err(error) = &result {
            tracing::warn!(%error, "stored policy not reloaded: keeping the policy in force");
        }
        result
    }

    async fn reload_keys(&self) {
        if let Err(error) = self.authenticator.keys().reload().await {
            tracing::warn!(%error, "signing keys not reloaded after a change");
        }
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
