//! Configuration: safe defaults, then a TOML file (`--config`), then
//! `PASSERELLE_*` environment variables (`PASSERELLE_SERVER__LISTEN`, nested
//! keys joined with `__`), then `DATABASE_URL`. Settings that are unsafe in
//! production are refused unless `dev_mode` is on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::audit::AuditConfig;
use crate::auth::AuthConfig;

/// Everything the gateway can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `sqlite:…` (default: `sqlite:data/passerelle.db`) or `postgres://…`.
    pub database_url: String,
    /// Connections of the main pool (reads, catalogue, identity).
    pub database_max_connections: u32,
    /// Connections of the pool reserved for streamed exports (CSV, NDJSON,
    /// GeoJSON), so that slow downloads cannot take the connections other
    /// requests need. Default: a quarter of `database_max_connections`, at least 2.
    pub database_export_connections: Option<u32>,
    /// Connections reserved for the audit writer, which no read or export can take.
    pub database_audit_connections: u32,
    /// Folder of dataset definitions.
    pub catalog_dir: PathBuf,
    /// Folder of the casbin model and policy.
    pub policies_dir: PathBuf,
    /// Development conveniences (`passerelle token`); never in production.
    pub dev_mode: bool,
    pub server: ServerSettings,
    /// Identity: external issuers, the gateway's own tokens, partner clients.
    pub auth: AuthConfig,
    pub audit: AuditSettings,
    /// Streamed exports: their share per caller and how slow a reader may be.
    pub exports: ExportSettings,
}

/// Limits on streamed exports, which hold a database connection for as long
/// as the client takes to read them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportSettings {
    /// Exports one caller (subject, partner client, or IP when anonymous) may
    /// have open at once; the next one is refused with 429.
    pub max_per_caller: u32,
    /// How long a new export waits for a free export connection before it is
    /// refused with 503 and `Retry-After`.
    pub wait_ms: u64,
    /// A reader that takes nothing for this long, or reads slower than
    /// `min_bytes_per_second` over this long, is cut (its completion event
    /// says `complete: false`).
    pub stall_seconds: u64,
    /// The slowest reading rate accepted over `stall_seconds` (0: no minimum).
    pub min_bytes_per_second: u64,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            max_per_caller: 2,
            wait_ms: 500,
            stall_seconds: 30,
            min_bytes_per_second: 8 * 1024,
        }
    }
}

/// The access log and what happens when it cannot be written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Group commit, checkpoints, IP hashing.
    pub log: AuditConfig,
    /// Serve open data even when the audit log cannot be written (default:
    /// refused like closed data).
    pub serve_open_data_without_audit: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Largest JSON page; exports are not capped.
    pub max_page_size: u64,
    /// Longest time a request may take before 503 (exports excepted).
    pub request_timeout_seconds: u64,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How often the catalogue is re-read from the store (other instances' imports).
    pub catalog_refresh_seconds: u64,
    /// Bytes of JSON pages kept in memory (0 disables the cache).
    pub page_cache_bytes: u64,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish
    /// before the exports still open are cut.
    pub shutdown_grace_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "sqlite:data/passerelle.db".to_owned(),
            database_max_connections: 16,
            database_export_connections: None,
            database_audit_connections: 2,
            catalog_dir: PathBuf::from("catalog"),
            policies_dir: PathBuf::from("policies"),
            dev_mode: false,
            server: ServerSettings::default(),
            auth: AuthConfig::default(),
            audit: AuditSettings::default(),
            exports: ExportSettings::default(),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_page_size: 10_000,
            request_timeout_seconds: 30,
            max_body_bytes: 64 * 1024,
            trusted_proxies: Vec::new(),
            catalog_refresh_seconds: 10,
            page_cache_bytes: 64 * 1024 * 1024,
            shutdown_grace_seconds: 30,
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("unsafe configuration refused outside dev mode: {0}")]
    Unsafe(String),
}

impl Settings {
    /// Size of the export pool: the setting, else a quarter of the main pool, at least 2.
    pub fn export_connections(&self) -> u32 {
        self.database_export_connections
            .unwrap_or(self.database_max_connections / 4)
            .max(2)
    }

    /// Reads the layered configuration.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        // Missing keys take `Settings::default()` through `#[serde(default)]`.
        let mut figment = Figment::new();
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed("PASSERELLE_").split("__"))
            .merge(Env::raw().only(&["DATABASE_URL"]));
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.check()?;
        Ok(settings)
    }

    /// Refuses what would be unsafe in production.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.auth
            .check()
            .map_err(|error| ConfigError::Unsafe(format!("{error:#}")))?;
        if self.dev_mode {
            return Ok(());
        }
        if !self.server.listen.ip().is_loopback() && self.database_url.starts_with("sqlite:") {
            tracing::warn!(
                "serving beyond loopback on the embedded SQLite store: fine for a trial, use PostgreSQL in production"
            );
        }
        if self.server.max_page_size == 0 {
            return Err(ConfigError::Unsafe(
                "server.max_page_size must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defaults match the README: loopback 8080, SQLite under data/.
    #[test]
    fn defaults_are_safe() {
        let settings = Settings::default();
        assert_eq!(settings.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.database_url, "sqlite:data/passerelle.db");
        assert!(!settings.dev_mode);
        assert_eq!(settings.server.max_page_size, 10_000);
    }

    /// The file and the environment override the defaults, in that order.
    #[test]
    fn layers_file_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("p.toml", "dev_mode = true\n[server]\nmax_page_size = 50\n")?;
            jail.set_env("PASSERELLE_SERVER__MAX_PAGE_SIZE", "70");
            jail.set_env("DATABASE_URL", "postgres://x@localhost/y");
            let settings = Settings::load(Some(Path::new("p.toml"))).expect("valid");
            assert!(settings.dev_mode);
            assert_eq!(settings.server.max_page_size, 70);
            assert_eq!(settings.database_url, "postgres://x@localhost/y");
            Ok(())
        });
    }

    /// The example file in the repository is valid and holds the defaults.
    #[test]
    fn example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("passerelle.example.toml");
        figment::Jail::expect_with(|_| {
            let settings = Settings::load(Some(&path)).expect("the example loads");
            let defaults = Settings::default();
            assert_eq!(settings.server.listen, defaults.server.listen);
            assert_eq!(
                settings.server.page_cache_bytes,
                defaults.server.page_cache_bytes
            );
            assert_eq!(
                settings.auth.token_ttl_seconds,
                defaults.auth.token_ttl_seconds
            );
            assert_eq!(
                settings.audit.log.max_batch_size,
                defaults.audit.log.max_batch_size
            );
            Ok(())
        });
    }

    /// A misspelt key is an error, not silently ignored.
    #[test]
    fn refuses_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("p.toml", "[server]\nmax_pagesize = 5\n")?;
            assert!(Settings::load(Some(Path::new("p.toml"))).is_err());
            Ok(())
        });
    }
}
