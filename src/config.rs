//! Configuration: safe defaults, then a TOML file (`--config`), then
//! `PASSERELLE_*` environment variables (`PASSERELLE_SERVER__LISTEN`, nested
//! keys joined with `__`), then `DATABASE_URL`. Settings that are unsafe in
//! production are refused unless `dev_mode` is on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::audit::{AuditConfig, Durability};
use crate::auth::AuthConfig;
use crate::catalog::definition::AccessLevel;
use crate::limits::LimitSettings;
use crate::query::QueryLimits;

/// Everything the gateway can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `sqlite:…` (default: `sqlite:data/passerelle.db`) or `postgres://…`.
    pub database_url: String,
    /// Connections of the main pool (reads, catalogue, identity).
    pub database_max_connections: u32,
    /// Longest wait for a store connection, in milliseconds: past it the
    /// request is refused with 503 and `Retry-After`, so a store that is down
    /// fails fast instead of holding every caller.
    pub database_acquire_timeout_ms: u64,
    /// How often the store is probed in the background, in milliseconds:
    /// readiness and the audit writer read the last answer without waiting.
    pub database_probe_interval_ms: u64,
    /// Longest wait for the probe's answer before the store counts as down.
    pub database_probe_timeout_ms: u64,
    /// Connections of the pool reserved for streamed exports (CSV, NDJSON,
    /// GeoJSON), so that slow downloads cannot take the connections other
    /// requests need. Default: a quarter of `database_max_connections`, at least 2.
    pub database_export_connections: Option<u32>,
    /// Connections reserved for the audit writer, which no read or export can take.
    pub database_audit_connections: u32,
    /// A PostgreSQL streaming replica (`postgres://…`) for dataset reads:
    /// rows, counts, aggregates and exports. Everything that writes (audit,
    /// publishing, clients, policy, sessions) stays on `database_url`. A read
    /// goes to the primary instead while the replica has not replayed the
    /// dataset version in force, or is down. Unset: every read on the primary.
    pub database_read_url: Option<String>,
    /// Folder of dataset definitions.
    pub catalog_dir: PathBuf,
    /// Folder of the casbin model and policy.
    pub policies_dir: PathBuf,
    /// Where the policy in force lives: `files` (`policies_dir`, watched)
    /// or `store` (versions in the store, replaced through the API; seeded
    /// from `policies_dir` when the store has none).
    pub policies_source: PoliciesSource,
    /// Development conveniences (`passerelle token`); never in production.
    pub dev_mode: bool,
    pub server: ServerSettings,
    /// Bounds on read queries (`select` items, conditions, `in` lists,
    /// `order` terms, bound values): beyond them a query is a 400 naming the
    /// limit, never a store error.
    pub query: QueryLimits,
    /// Identity: external issuers, the gateway's own tokens, partner clients.
    pub auth: AuthConfig,
    pub audit: AuditSettings,
    /// Streamed exports: their share per caller and how slow a reader may be.
    pub exports: ExportSettings,
    /// Request rates and daily quotas per kind of caller (and per client in
    /// the store), in memory or shared through Redis.
    pub limits: LimitSettings,
    /// The access decision's settings that are not in the policy files
    /// (the minimum group size of aggregate-only grants).
    pub policy: crate::policy::PolicySettings,
    /// Traces over OpenTelemetry (with the `otel` build feature).
    pub telemetry: crate::telemetry::TelemetrySettings,
    /// The pages: staff sign-in (OpenID Connect) and sessions.
    pub web: crate::web::settings::WebSettings,
    /// The publishing API: upload size, versions kept.
    pub publishing: PublishingSettings,
}

/// The publishing API (`PUT /datasets/{id}/data` and versions).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishingSettings {
    /// Largest upload, in bytes (413 beyond it). Uploads have no request
    /// timeout and their own body limit instead of `server.max_body_bytes`.
    pub max_upload_bytes: u64,
    /// The rows of this many latest versions are kept, for restores and
    /// `?version=n` reads; older ones are dropped.
    pub keep_versions: u32,
}

impl Default for PublishingSettings {
    fn default() -> Self {
        PublishingSettings {
            max_upload_bytes: 2 * 1024 * 1024 * 1024,
            keep_versions: 3,
        }
    }
}

/// Where the policy in force lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoliciesSource {
    /// `model.conf` and `policy.csv` in `policies_dir`, watched for changes.
    #[default]
    Files,
    /// The `policy_versions` table, replaced through `PUT /api/v1/policy`.
    Store,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// Group commit, checkpoints, IP hashing.
    pub log: AuditConfig,
    /// Serve open data even when the audit log cannot be written (default:
    /// refused like closed data).
    pub serve_open_data_without_audit: bool,
    /// Longest time a buffered event waits for its commit, in milliseconds:
    /// what a crash can lose of the buffered levels' events.
    pub buffer_ms: u64,
    /// Per access level, whether a read's event is committed before the
    /// response (`durable`) or within `buffer_ms` after it (`buffered`).
    pub durability: DurabilitySettings,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            log: AuditConfig::default(),
            serve_open_data_without_audit: false,
            buffer_ms: crate::audit::DEFAULT_BUFFER_MS,
            durability: DurabilitySettings::default(),
        }
    }
}

impl AuditSettings {
    /// The writer's settings, with `buffer_ms`.
    pub fn writer(&self) -> AuditConfig {
        AuditConfig {
            buffer_ms: self.buffer_ms,
            ..self.log.clone()
        }
    }
}

/// `[audit.durability]`: buffered for open data, durable for every other
/// level unless the operator says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DurabilitySettings {
    pub open: Durability,
    pub partners: Durability,
    pub internal: Durability,
    pub confidential: Durability,
    pub undecided: Durability,
}

impl Default for DurabilitySettings {
    fn default() -> Self {
        DurabilitySettings {
            open: Durability::Buffered,
            partners: Durability::Durable,
            internal: Durability::Durable,
            confidential: Durability::Durable,
            undecided: Durability::Durable,
        }
    }
}

impl DurabilitySettings {
    /// How the event of a read of a dataset at `level` is committed.
    pub fn of(&self, level: AccessLevel) -> Durability {
        match level {
            AccessLevel::Open => self.open,
            AccessLevel::Partners => self.partners,
            AccessLevel::Internal => self.internal,
            AccessLevel::Confidential => self.confidential,
            AccessLevel::Undecided => self.undecided,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Largest JSON page; exports are not capped.
    pub max_page_size: u64,
    /// Longest time a request may take before 503 (exports excepted).
    pub request_timeout_seconds: u64,
    /// Largest request body accepted (413 problem beyond).
    pub max_body_bytes: usize,
    /// Longest request target (path and query) accepted: 414 problem, audited,
    /// beyond. hyper's own limit (64 KiB, an empty 414) stays behind it.
    pub max_uri_bytes: usize,
    /// Most bytes of request headers accepted (names and values): 431
    /// problem, audited, beyond. hyper's own limits (about 400 KiB, 100
    /// headers, an empty 431) stay behind it.
    pub max_header_bytes: usize,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How often the catalogue is re-read from the store (other instances' imports).
    pub catalog_refresh_seconds: u64,
    /// Bytes of JSON pages kept in memory (0 disables the cache).
    pub page_cache_bytes: u64,
    /// How long the table of a replaced or removed version is kept before
    /// it is dropped, for other instances (which switch at their next
    /// catalogue refresh) and requests already under way. Never less than
    /// three catalogue refreshes, whatever is set here.
    pub retired_table_grace_seconds: u64,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish
    /// before the exports still open are cut.
    pub shutdown_grace_seconds: u64,
    /// Browser applications on other origins (`[server.cors]`).
    pub cors: CorsSettings,
    /// Compression of answers (`[server.compression]`).
    pub compression: CompressionSettings,
    /// HTTP caching of open data (`[server.caching]`).
    pub caching: CachingSettings,
}

/// Which web applications on other origins may read the API's answers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins (`https://app.example.org`) whose pages may read every
    /// answer, credentialed ones included. `*` lets any origin read answers
    /// to requests without credentials (open data, the catalogue, refusals);
    /// a request with `Authorization` or `X-API-Key` from an origin not
    /// listed gets no `Access-Control-Allow-Origin`. Empty: CORS off.
    pub allowed_origins: Vec<String>,
    /// Methods a cross-origin page may use.
    pub allowed_methods: Vec<String>,
    /// Response headers a cross-origin page may read, besides the safelisted ones.
    pub exposed_headers: Vec<String>,
    /// How long a browser may keep a preflight answer.
    pub max_age_seconds: u64,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings {
            allowed_origins: vec!["*".to_owned()],
            allowed_methods: ["GET", "HEAD", "POST"].map(str::to_owned).to_vec(),
            exposed_headers: [
                "Content-Range",
                "X-Request-Id",
                "X-Suppressed-Groups",
                "X-View",
                "ETag",
                "Preference-Applied",
                "RateLimit",
                "RateLimit-Policy",
                "Retry-After",
            ]
            .map(str::to_owned)
            .to_vec(),
            max_age_seconds: 600,
        }
    }
}

/// gzip, br and zstd, negotiated from `Accept-Encoding`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionSettings {
    pub enabled: bool,
    /// Answers of a known size under this many bytes go out uncompressed
    /// (compressing them costs more than it saves). Streamed exports, whose
    /// size is not known when they start, are always compressed.
    pub min_bytes: u64,
    /// How hard each encoder works: `fastest` (gzip 1, brotli 0, zstd 1:
    /// most of the size saved for a fraction of the CPU, the default for a
    /// gateway whose answers are fresh each time), `default` (each
    /// encoder's own default: gzip 6, brotli 11, zstd 3) or `best`.
    pub level: CompressionLevel,
}

/// How hard the encoders work (`[server.compression] level`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CompressionLevel {
    #[default]
    Fastest,
    Default,
    Best,
}

impl Default for CompressionSettings {
    fn default() -> Self {
        CompressionSettings {
            enabled: true,
            min_bytes: 1024,
            level: CompressionLevel::Fastest,
        }
    }
}

/// How long shared caches and browsers may keep open data.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CachingSettings {
    /// `Cache-Control: public, max-age=…` on open data read anonymously.
    pub max_age_seconds: u64,
}

impl Default for CachingSettings {
    fn default() -> Self {
        CachingSettings {
            max_age_seconds: 60,
        }
    }
}

impl ServerSettings {
    /// The grace of retired tables actually applied (see `retired_table_grace_seconds`).
    pub fn retired_table_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.retired_table_grace_seconds
                .max(3 * self.catalog_refresh_seconds.max(1)),
        )
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "sqlite:data/passerelle.db".to_owned(),
            database_max_connections: 16,
            database_acquire_timeout_ms: 1000,
            database_probe_interval_ms: 500,
            database_probe_timeout_ms: 1000,
            database_export_connections: None,
            database_audit_connections: 2,
            database_read_url: None,
            catalog_dir: PathBuf::from("catalog"),
            policies_dir: PathBuf::from("policies"),
            policies_source: PoliciesSource::Files,
            dev_mode: false,
            server: ServerSettings::default(),
            query: QueryLimits::default(),
            auth: AuthConfig::default(),
            audit: AuditSettings::default(),
            exports: ExportSettings::default(),
            limits: LimitSettings::default(),
            policy: crate::policy::PolicySettings::default(),
            telemetry: crate::telemetry::TelemetrySettings::default(),
            web: crate::web::settings::WebSettings::default(),
            publishing: PublishingSettings::default(),
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
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 32 * 1024,
            trusted_proxies: Vec::new(),
            catalog_refresh_seconds: 10,
            page_cache_bytes: 64 * 1024 * 1024,
            retired_table_grace_seconds: 120,
            shutdown_grace_seconds: 30,
            cors: CorsSettings::default(),
            compression: CompressionSettings::default(),
            caching: CachingSettings::default(),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Each wrong setting, named with where its value came from.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("unsafe configuration refused outside dev mode: {0}")]
    Unsafe(String),
    /// A value out of its range, in dev mode too.
    #[error("invalid configuration: {0}")]
    OutOfRange(String),
}

impl Settings {
    pub fn database_acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.database_acquire_timeout_ms)
    }

    pub fn database_probe_interval(&self) -> Duration {
        Duration::from_millis(self.database_probe_interval_ms)
    }

    pub fn database_probe_timeout(&self) -> Duration {
        Duration::from_millis(self.database_probe_timeout_ms)
    }

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
            .merge(
                Env::prefixed("PASSERELLE_")
                    // Read by the command line and the logs, not settings.
                    .ignore(&NOT_SETTINGS)
                    .split("__"),
            )
            .merge(Env::raw().only(&["DATABASE_URL"]));
        let settings: Settings = figment
            .extract()
            .map_err(|error| ConfigError::Invalid(describe(error)))?;
        settings.check()?;
        Ok(settings)
    }

    /// Refuses what would be unsafe in production.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.auth
            .check()
            .map_err(|error| ConfigError::Unsafe(format!("{error:#}")))?;
        // A query limit past a store's own limit turns queries into 500s.
        self.query.check().map_err(ConfigError::OutOfRange)?;
        self.limits.check().map_err(ConfigError::OutOfRange)?;
        if self.policy.min_group_size == 0 {
            return Err(ConfigError::OutOfRange(
                "policy.min_group_size must be at least 1 (1 suppresses nothing)".into(),
            ));
        }
        let is_postgres =
            |url: &str| url.starts_with("postgres:") || url.starts_with("postgresql:");
        if let Some(url) = &self.database_read_url
            && !(is_postgres(url) && is_postgres(&self.database_url))
        {
            return Err(ConfigError::OutOfRange(
                "database_read_url needs PostgreSQL for both database_url and the replica (postgres://…)"
                    .into(),
            ));
        }
        // A misspelt origin or method would silently lock browsers out.
        crate::http::cors::check(&self.server.cors).map_err(ConfigError::OutOfRange)?;
        self.web
            .check(&self.auth, self.dev_mode)
            .map_err(ConfigError::Unsafe)?;
        if self.dev_mode {
            return Ok(());
        }
        if self.database_acquire_timeout_ms == 0 || self.database_probe_interval_ms == 0 {
            return Err(ConfigError::Unsafe(
                "database_acquire_timeout_ms and database_probe_interval_ms must be at least 1"
                    .into(),
            ));
        }
        if self.server.max_page_size == 0 {
            return Err(ConfigError::Unsafe(
                "server.max_page_size must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// `PASSERELLE_*` variables that are not settings: `PASSERELLE_CONFIG`
/// (the `--config` file) and `PASSERELLE_LOG_FORMAT` (read by the logs).
const NOT_SETTINGS: [&str; 2] = ["config", "log_format"];

/// One line per wrong setting: its key as written in the TOML file
/// (`server.listen`, without figment's profile prefix), where the value came
/// from (the file, or the environment variable by its name), and what is
/// wrong with it.
fn describe(error: figment::Error) -> String {
    let lines: Vec<String> = error
        .into_iter()
        .map(|error| describe_one(&error))
        .collect();
    lines.join("\n")
}

fn describe_one(error: &figment::Error) -> String {
    let key = error.path.join(".");
    let origin = error
        .metadata
        .as_ref()
        .and_then(|metadata| match &metadata.source {
            Some(figment::Source::File(path)) => Some(format!("in {}", path.display())),
            _ if metadata.name.contains("`PASSERELLE_`") => Some(format!(
                "from the environment variable PASSERELLE_{}",
                error.path.join("__").to_ascii_uppercase()
            )),
            _ if metadata.name.contains("environment") => Some(format!(
                "from the environment variable {}",
                error.path.join("_").to_ascii_uppercase()
            )),
            _ => None,
        });
    match (key.is_empty(), origin) {
        (false, Some(origin)) => format!("`{key}` {origin}: {}", error.kind),
        (false, None) => format!("`{key}`: {}", error.kind),
        (true, Some(origin)) => format!("{origin}: {}", error.kind),
        (true, None) => error.kind.to_string(),
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

    /// A retired table outlives three catalogue refreshes whatever is set:
    /// every instance has switched before it is dropped.
    #[test]
    fn retired_tables_outlive_three_refreshes() {
        let mut server = ServerSettings::default();
        assert_eq!(server.retired_table_grace().as_secs(), 120);
        server.catalog_refresh_seconds = 60;
        assert_eq!(server.retired_table_grace().as_secs(), 180);
        server.retired_table_grace_seconds = 0;
        server.catalog_refresh_seconds = 0;
        assert_eq!(server.retired_table_grace().as_secs(), 3);
    }

    /// A read replica is PostgreSQL behind a PostgreSQL primary: a replica
    /// of SQLite, or of another engine, is refused at start.
    #[test]
    fn read_replica_needs_postgresql() {
        let mut settings = Settings {
            dev_mode: true,
            database_read_url: Some("postgres://reader@replica/passerelle".into()),
            ..Settings::default()
        };
        assert!(matches!(settings.check(), Err(ConfigError::OutOfRange(_))));
        settings.database_url = "postgresql://app@primary/passerelle".into();
        assert!(settings.check().is_ok());
        settings.database_read_url = Some("sqlite:replica.db".into());
        assert!(matches!(settings.check(), Err(ConfigError::OutOfRange(_))));
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

    /// A query limit past what a store accepts is refused, in dev mode too.
    #[test]
    fn query_limits_beyond_the_stores_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "p.toml",
                "dev_mode = true\n[query]\nmax_select_items = 2000\n",
            )?;
            let error = Settings::load(Some(Path::new("p.toml"))).unwrap_err();
            assert!(
                error.to_string().contains("query.max_select_items"),
                "{error}"
            );
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
                settings.database_acquire_timeout_ms,
                defaults.database_acquire_timeout_ms
            );
            assert_eq!(
                settings.database_probe_interval_ms,
                defaults.database_probe_interval_ms
            );
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
            assert_eq!(settings.audit.buffer_ms, defaults.audit.buffer_ms);
            assert_eq!(settings.audit.durability, defaults.audit.durability);
            assert_eq!(settings.query, defaults.query);
            assert_eq!(settings.server.cors, defaults.server.cors);
            assert_eq!(settings.server.compression, defaults.server.compression);
            assert_eq!(settings.server.caching, defaults.server.caching);
            assert_eq!(settings.limits.anonymous.requests, Some(50));
            assert_eq!(
                settings
                    .limits
                    .policy(crate::limits::policy::CallerClass::Partners, None),
                defaults
                    .limits
                    .policy(crate::limits::policy::CallerClass::Partners, None)
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

    /// A wrong value is named once, by its key and the file it is in,
    /// without figment's `default.` profile prefix.
    #[test]
    fn errors_name_the_setting_and_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("p.toml", "[server]\nmax_page_size = \"many\"\n")?;
            let error = Settings::load(Some(Path::new("p.toml")))
                .unwrap_err()
                .to_string();
            assert!(error.contains("`server.max_page_size`"), "{error}");
            assert!(error.contains("p.toml"), "{error}");
            assert!(!error.contains("default."), "{error}");
            assert_eq!(error.matches("max_page_size").count(), 1, "{error}");
            Ok(())
        });
    }

    /// `PASSERELLE_LOG_FORMAT` and `PASSERELLE_CONFIG` are not settings:
    /// the compose file sets the first, and an unknown key is an error.
    #[test]
    fn log_format_and_config_variables_are_not_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PASSERELLE_LOG_FORMAT", "json");
            jail.set_env("PASSERELLE_CONFIG", "elsewhere.toml");
            Settings::load(None).expect("valid");
            Ok(())
        });
    }

    /// A wrong environment variable is named as it was set.
    #[test]
    fn errors_name_the_environment_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PASSERELLE_SERVER__MAX_PAGE_SIZE", "many");
            let error = Settings::load(None).unwrap_err().to_string();
            assert!(
                error.contains("PASSERELLE_SERVER__MAX_PAGE_SIZE"),
                "{error}"
            );
            assert!(!error.contains("default."), "{error}");
            Ok(())
        });
    }
}
