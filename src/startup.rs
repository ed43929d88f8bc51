//! Building the application from its settings: open the store, sync the
//! catalogue, load the policy, start the audit writer, then serve.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::audit::{AuditLog, CheckpointSigner};
use crate::auth::{Authenticator, KeyRing};
use crate::catalog::CatalogHandle;
use crate::catalog::sync::{SyncOptions, sync_folder_with};
use crate::config::{PoliciesSource, Settings};
use crate::http::data::exports::Exports;
use crate::http::lifecycle::Lifecycle;
use crate::http::state::{AppState, Services};
use crate::policy::PolicyEngine;
use crate::store::Store;
use crate::store::probe::StoreHealth;
use crate::store::replica::{ReadStores, Replica};
use crate::store::retired::TablesInUse;

/// Opens the store and syncs the catalogue folder into it (if the folder exists).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    if let Some(path) = settings.database_url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
            && path != ":memory:"
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the data folder {}", parent.display()))?;
        }
    }
    Ok(Store::open(
        &settings.database_url,
        settings.database_max_connections,
        settings.database_acquire_timeout(),
    )
    .await?)
}

/// Syncs `catalog_dir`, logs what happened, and drops the retired tables due.
pub async fn sync_catalog(
    store: &Store,
    settings: &Settings,
) -> anyhow::Result<crate::catalog::sync::SyncReport> {
    sync_catalog_with(store, settings, SyncOptions::default()).await
}

/// [`sync_catalog`] as `options` say (`--prune`).
pub async fn sync_catalog_with(
    store: &Store,
    settings: &Settings,
    options: SyncOptions,
) -> anyhow::Result<crate::catalog::sync::SyncReport> {
    let report = sync_folder_with(store, &settings.catalog_dir, options).await?;
    for (id, version) in &report.imported {
        tracing::info!(dataset = %id, version, "imported");
    }
    for (path, reason) in &report.failures {
        tracing::error!(%path, %reason, "catalogue file not synced");
    }
    // Tables retired long enough ago (by this sync or earlier); no read of
    // this process runs yet.
    drop_retired_tables(store, settings, &TablesInUse::default()).await;
    Ok(report)
}

/// Everything a running gateway needs.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let settings = Arc::new(settings);
    // Before anything counts (the first fetch of the identity providers' keys).
    crate::telemetry::metrics::install();
    let store = open_store(&settings).await?;
    // Started here rather than with the other background tasks: readiness and
    // the audit writer read it, in tests as in production.
    let store_health = StoreHealth::spawn(
        &store,
        settings.database_probe_interval(),
        settings.database_probe_timeout(),
    );
    if settings.catalog_dir.is_dir() {
        sync_catalog(&store, &settings).await?;
    } else {
        tracing::warn!(folder = %settings.catalog_dir.display(), "no catalogue folder: serving what the store holds");
    }
    let catalog = CatalogHandle::default();
    catalog.refresh(&store).await?;
    let levels = dataset_levels(&catalog);
    let policy = match settings.policies_source {
        PoliciesSource::Files => {
            PolicyEngine::load_with(&settings.policies_dir, &levels, settings.policy.clone())
                .await
                .with_context(|| {
                    format!(
                        "cannot load the policy in {}",
                        settings.policies_dir.display()
                    )
                })?
        }
        PoliciesSource::Store => load_stored_policy(&store, &settings, &levels).await?,
    };
    policy
        .set_catalogue(&levels, &dataset_publishers(&catalog))
        .await
        .context("cannot place the datasets in their publishers' policy groups")?;
    let authenticator = Authenticator::new(&settings.auth, store.clone())
        .await
        .context("cannot set up authentication")?;
    // Pools of their own: slow exports never take the connections of other
    // requests, and nothing takes the audit writer's.
    let export_connections = settings.export_connections();
    let export_store = store
        .sibling(
            &settings.database_url,
            export_connections,
            settings.database_acquire_timeout(),
        )
        .await?;
    let audit = {
        let (primary, url) = (store.clone(), settings.database_url.clone());
        let (connections, timeout) = (
            settings.database_audit_connections.max(1),
            settings.database_acquire_timeout(),
        );
        AuditLog::start_on_own_thread(
            move || async move { Ok(primary.sibling(&url, connections, timeout).await?) },
            store.clone(),
            settings.audit.writer(),
            checkpoint_signer(authenticator.keys()),
        )
        .await
        .context("cannot start the audit log")?
    };
    audit.follow_store_health(store_health.clone());
    // Dataset reads on the replica when it has replayed what they need.
    let replica = match &settings.database_read_url {
        None => None,
        Some(url) => {
            let replica = Replica::connect(
                url,
                settings.database_max_connections,
                export_connections,
                settings.database_acquire_timeout(),
                settings.database_probe_timeout(),
            )?;
            replica.spawn_probe();
            Some(replica)
        }
    };
    let reads = ReadStores::new(store.clone(), export_store.clone(), replica);
    let limits = crate::limits::Limits::new(&settings.limits, store.clone())
        .context("cannot set up the rate limits")?;
    Ok(AppState::new(Services {
        settings: settings.clone(),
        store,
        store_health,
        catalog,
        authenticator,
        policy,
        audit,
        pages: crate::http::data::cache::PageCache::new(settings.server.page_cache_bytes),
        exports: Exports::new(export_store, export_connections, settings.exports.clone()),
        reads,
        limits,
        lifecycle: Lifecycle::default(),
    }))
}

/// Signs audit checkpoints with the gateway's current ES256 key; verifies
/// with any key the ring still knows (rotated keys included).
pub fn checkpoint_signer(keys: &KeyRing) -> Arc<dyn CheckpointSigner> {
    Arc::new(KeyRingSigner(keys.clone()))
}

struct KeyRingSigner(KeyRing);

impl CheckpointSigner for KeyRingSigner {
    fn key_id(&self) -> String {
        self.0.signing_key().0
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        let (_, key) = self.0.signing_key();
        let signature: p256::ecdsa::Signature = key.sign(message);
        signature.to_bytes().to_vec()
    }

    fn verify(&self, key_id: &str, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        let Some(key) = self.0.verifying_key(key_id) else {
            return false;
        };
        p256::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|signature| key.verify(message, &signature).is_ok())
    }
}

/// Label of the policy kept in the store, in its validation errors
/// (`store/policy.csv:3: …`).
pub const STORED_POLICY_LABEL: &str = "store";

/// The store's current policy; an empty store is first seeded with the
/// policy files (validated before they are stored).
async fn load_stored_policy(
    store: &Store,
    settings: &Settings,
    levels: &[(String, crate::catalog::definition::AccessLevel)],
) -> anyhow::Result<PolicyEngine> {
    let label = std::path::Path::new(STORED_POLICY_LABEL);
    if crate::store::policies::current(store).await?.is_none() {
        let dir = &settings.policies_dir;
        let read = |name: &str| {
            let file = dir.join(name);
            std::fs::read_to_string(&file)
                .with_context(|| format!("cannot seed the store's policy from {}", file.display()))
        };
        let model = read(crate::policy::MODEL_FILE)?;
        let rules = read(crate::policy::POLICY_FILE)?;
        PolicyEngine::load_text(dir, &model, &rules, 1, levels, settings.policy.clone())
            .await
            .with_context(|| format!("cannot seed the store's policy from {}", dir.display()))?;
        if crate::store::policies::seed(store, &model, &rules).await? {
            tracing::info!(folder = %dir.display(), "the store's policy seeded from the files");
        }
    }
    // Seeded here or by another instance meanwhile.
    let current = crate::store::policies::current(store)
        .await?
        .context("the store holds no policy")?;
    PolicyEngine::load_text(
        label,
        &current.model,
        &current.rules,
        current.number,
        levels,
        settings.policy.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "cannot load version {} of the store's policy",
            current.number
        )
    })
}

/// (id, access level) of every dataset, for the policy's level groups.
pub fn dataset_levels(
    catalog: &CatalogHandle,
) -> Vec<(String, crate::catalog::definition::AccessLevel)> {
    catalog
        .current()
        .entries()
        .iter()
        .map(|entry| (entry.id().to_owned(), entry.definition.access))
        .collect()
}

/// Each dataset of the catalogue with its `publisher:<slug>` policy group.
pub fn dataset_publishers(catalog: &CatalogHandle) -> Vec<(String, String)> {
    catalog
        .current()
        .entries()
        .iter()
        .map(|entry| {
            (
                entry.id().to_owned(),
                crate::policy::publisher_group(&entry.definition.publisher),
            )
        })
        .collect()
}

/// Serves until Ctrl-C or SIGTERM, then stops within the grace period.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listen = settings.server.listen;
    if !settings.dev_mode
        && !listen.ip().is_loopback()
        && settings.database_url.starts_with("sqlite:")
    {
        tracing::warn!(
            "serving beyond loopback on the embedded SQLite store: fine for a trial, use PostgreSQL in production"
        );
    }
    let state = build_state(settings).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listen, "Passerelle is serving");
    spawn_background_tasks(&state);
    serve_until(listener, state, shutdown_signal()).await
}

/// Longest wait for cut streams to end and their events to be written.
const CUT_WAIT: Duration = Duration::from_secs(2);

/// Serves on `listener` until `stop` resolves, then stops in bounded time:
/// readiness answers 503 and the listener closes at once; requests in flight
/// have `shutdown_grace_seconds` to finish; exports still open are then cut,
/// each with its completion event; the audit queue is flushed last.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let lifecycle = state.lifecycle.clone();
    let audit = state.audit.clone();
    let grace = Duration::from_secs(state.settings.server.shutdown_grace_seconds);
    let app = crate::http::router(state);
    let draining = lifecycle.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        stop.await;
        tracing::info!("shutting down: draining requests in flight");
        draining.begin_drain();
    });
    let mut server = tokio::spawn(server.into_future());
    let served = tokio::select! {
        served = &mut server => Some(served),
        () = lifecycle.draining() => None,
    };
    let served = match served {
        Some(served) => served,
        None => match tokio::time::timeout(grace, &mut server).await {
            Ok(served) => served,
            Err(_) => {
                tracing::warn!("grace period over: cutting the exports still open");
                lifecycle.cut();
                match tokio::time::timeout(CUT_WAIT, &mut server).await {
                    Ok(served) => served,
                    Err(_) => {
                        // Connections stuck on clients that read nothing.
                        server.abort();
                        Ok(Ok(()))
                    }
                }
            }
        },
    };
    lifecycle.finish_open_exports().await;
    lifecycle.tasks().close();
    if tokio::time::timeout(CUT_WAIT, lifecycle.tasks().wait())
        .await
        .is_err()
    {
        tracing::error!("some completion events were not written before shutdown");
    }
    audit.shutdown().await;
    served
        .context("server task failed")?
        .context("server error")
}

/// Policy file watching, the change listener (PostgreSQL), catalogue
/// refresh (imports by other instances, the fallback of the listener) and
/// the cleanup of retired tables.
pub fn spawn_background_tasks(state: &AppState) {
    match state.settings.policies_source {
        PoliciesSource::Files => state.policy.spawn_watcher(Duration::from_secs(2)),
        // The fallback of the change listener (and the only way on SQLite).
        PoliciesSource::Store => {
            let polling = state.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(Duration::from_secs(2));
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let _ = polling.reload_policy().await;
                }
            });
        }
    }
    spawn_change_listener(state);
    let period = Duration::from_secs(state.settings.server.catalog_refresh_seconds.max(1));
    let refreshing = state.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Err(error) = refreshing.refresh_catalog().await {
                tracing::warn!(%error, "catalogue refresh failed");
            }
        }
    });
    let cleaning = state.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            drop_retired_tables(
                &cleaning.store,
                &cleaning.settings,
                cleaning.catalog.tables_in_use(),
            )
            .await;
        }
    });
}

/// On PostgreSQL, applies every change another instance announces as soon
/// as it is heard (see [`crate::store::changes`]). SQLite: polling only.
pub fn spawn_change_listener(state: &AppState) {
    let Store::Postgres(pool) = &state.store else {
        return;
    };
    let pool = pool.clone();
    let state = state.clone();
    tokio::spawn(async move {
        crate::store::changes::listen(&pool, |heard| state.apply(heard)).await;
    });
}

/// Drops the retired tables whose grace has passed and that no read of
/// this process uses; the others wait for a later pass.
pub async fn drop_retired_tables(store: &Store, settings: &Settings, in_use: &TablesInUse) {
    match store
        .drop_retired_tables(settings.server.retired_table_grace(), in_use)
        .await
    {
        Ok(cleanup) => {
            for table in &cleanup.dropped {
                tracing::info!(%table, "retired table dropped");
            }
        }
        Err(error) => tracing::warn!(%error, "retired tables not cleaned up"),
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
