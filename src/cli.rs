//! The command-line operations besides serving: importing a file, partner
//! clients, keys, development tokens, policy checks and the audit log.
//! Each opens the store from the same settings as the server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::audit::{AuditLog, AuditReader};
use crate::auth::{ClientRegistry, KeyRing};
use crate::catalog::sync::read_definition;
use crate::config::Settings;
use crate::policy::{Action, DatasetRef, PolicyEngine};
use crate::startup::{dataset_levels, open_store};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a partner; prints its secret once.
    Create {
        /// The partner organisation (its `org` claim).
        #[arg(long)]
        org: String,
        /// Comma-separated roles the client's tokens carry.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Restrict the client to these datasets.
        #[arg(long, value_delimiter = ',')]
        datasets: Option<Vec<String>>,
        /// End of the data-sharing agreement (YYYY-MM-DD): access stops by itself.
        #[arg(long)]
        expires: Option<chrono::NaiveDate>,
        /// Also issue an API key.
        #[arg(long)]
        api_key: bool,
    },
    /// List the clients (never their secrets), one JSON object a line.
    List,
    /// Refuse the client from now on, the tokens already issued included.
    Disable {
        /// The client's id, as `clients create` printed it.
        client_id: String,
    },
    /// Issue a new secret; the old one stops working. Prints it once.
    RotateSecret {
        /// The client's id, as `clients create` printed it.
        client_id: String,
    },
    /// Delete the client and its API keys.
    Delete {
        /// The client's id, as `clients create` printed it.
        client_id: String,
    },
    /// Revoke an API key by its visible id.
    RevokeKey {
        /// The key's visible id (`api_key_id`, not the key itself).
        key_id: String,
    },
    /// Set a client's own rate limit and daily quota, over its class's
    /// (`[limits.partners]`). Values not given keep their current setting;
    /// 0 lifts a limit; --reset returns to the configured limits.
    SetLimit {
        /// The partner client whose limits to set (as printed by `clients create`).
        client_id: String,
        /// Requests per --per-seconds in the long run (0: no rate limit).
        #[arg(long)]
        requests: Option<u64>,
        /// The period of --requests, in seconds.
        #[arg(long)]
        per_seconds: Option<u64>,
        /// Requests that may arrive at once.
        #[arg(long)]
        burst: Option<u64>,
        /// Rows of data sent per UTC day (0: no quota).
        #[arg(long)]
        daily_rows: Option<u64>,
        /// Bytes of data sent per UTC day (0: no quota).
        #[arg(long)]
        daily_bytes: Option<u64>,
        /// Forget the client's own limits: the configured ones apply.
        #[arg(long, conflicts_with_all = ["requests", "per_seconds", "burst", "daily_rows", "daily_bytes"])]
        reset: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new signing key; old keys stay published until their tokens expire.
    Rotate,
    /// List the signing keys (public parts only), one JSON object a line.
    List,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// May these roles do this action on this dataset, and which rule decides?
    Check {
        /// Comma-separated roles of the caller (`anonymous` is always added).
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// The action: read, export, aggregate, metadata…
        #[arg(long, default_value = "read")]
        action: String,
        /// The dataset id.
        #[arg(long)]
        dataset: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; exit code 1 when it is broken.
    Verify,
    /// Export events of a time range as CSV or NDJSON on standard output.
    Export {
        /// First instant included (RFC 3339, e.g. 2026-01-01T00:00:00Z).
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// First instant excluded (RFC 3339).
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// `csv` or `ndjson`.
        #[arg(long, default_value = "csv")]
        format: String,
    },
    /// Remove events older than a time, keeping the rest verifiable.
    Purge {
        /// Events before this instant are removed (RFC 3339).
        #[arg(long)]
        before: chrono::DateTime<chrono::Utc>,
    },
}

/// `passerelle health`: exit 0 when the gateway at `url` (default: the
/// configured listen address, on loopback when it listens on every address)
/// answers `GET /health/ready` with a success, 1 otherwise. It reads no
/// store: a container's health check runs it every few seconds.
pub async fn health(
    settings: &Settings,
    url: Option<&str>,
    timeout_seconds: u64,
) -> anyhow::Result<ExitCode> {
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("http://{}", local_address(settings.server.listen)),
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout_seconds.max(1)))
        .build()?;
    let target = format!("{base}/health/ready");
    match client.get(&target).send().await {
        Ok(response) if response.status().is_success() => {
            println!("ready: {target}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            eprintln!("not ready: {target} answered {status}: {body}");
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            eprintln!("not ready: {target}: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Where to reach a server listening on `listen` from the same host.
fn local_address(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, listen.port())
}

/// `passerelle datasets …`: the publishing API's definition operations,
/// for an operator's scripts (run on the gateway's host, with its store).
#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// Create a dataset from a definition file (YAML, JSON), served through
    /// the store (`catalog sync` leaves it alone). It starts empty: `passerelle
    /// import ID FILE` fills it.
    Create {
        /// The definition file.
        file: PathBuf,
    },
    /// Replace a dataset's definition with a file's (the same id).
    Update {
        /// The definition file.
        file: PathBuf,
    },
    /// Retire a dataset: no more data served, metadata kept as a tombstone.
    Retire {
        /// Dataset id.
        id: String,
        /// Who retires it (recorded in the tombstone); the operator's
        /// audit subject (`cli:$USER`) by default.
        #[arg(long)]
        by: Option<String>,
    },
}

/// Reads and checks a definition file for `datasets create|update`.
fn definition_file(file: &Path) -> anyhow::Result<crate::catalog::definition::DatasetDefinition> {
    use crate::catalog::publish::{DefinitionFormat, check_definition, parse_body};
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let format = match file.extension().and_then(|extension| extension.to_str()) {
        Some("json") => DefinitionFormat::Json,
        _ => DefinitionFormat::Yaml,
    };
    let value = parse_body(&bytes, format)
        .map_err(|error| anyhow::anyhow!("{}: {}", file.display(), error.reason))?;
    check_definition(&value).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|error| format!("  {}: {}", error.field, error.reason))
            .collect();
        anyhow::anyhow!(
            "{}: invalid definition\n{}",
            file.display(),
            lines.join("\n")
        )
    })
}

/// `passerelle datasets create|update|retire`. Each change is an audit
/// event in the API's chain (subject `cli:$USER`), with the action the API
/// would record: `classify` when it classifies the dataset, else `manage`.
pub async fn datasets(settings: &Settings, command: DatasetsCommand) -> anyhow::Result<ExitCode> {
    use crate::audit::{Action, operator_event, operator_subject};
    use crate::catalog::definition::AccessLevel;
    use crate::catalog::publish::{
        changed_fields, classifies, create_dataset, created_fields, replace_definition,
    };
    let started = std::time::Instant::now();
    let store = open_store(settings).await?;
    // Started first: no change is made that could not be audited.
    let log = writing_audit_log(settings, store.clone()).await?;
    let event = match command {
        DatasetsCommand::Create { file } => {
            let definition = definition_file(&file)?;
            if store.stored_dataset(&definition.id).await?.is_some() {
                anyhow::bail!("there is already a dataset `{}`", definition.id);
            }
            if create_dataset(&store, &definition).await?.is_none() {
                anyhow::bail!("there is already a dataset `{}`", definition.id);
            }
            println!("created `{}` (empty: import its rows)", definition.id);
            let action =
                if definition.access != AccessLevel::Undecided || !definition.views.is_empty() {
                    Action::Classify
                } else {
                    Action::Manage
                };
            let changes =
                serde_json::json!({"created": true, "fields": created_fields(&definition)});
            operator_event(
                "passerelle datasets create",
                &definition.id,
                action,
                201,
                started,
                &changes,
            )
        }
        DatasetsCommand::Update { file } => {
            let definition = definition_file(&file)?;
            let stored = store
                .stored_dataset(&definition.id)
                .await?
                .filter(|stored| !stored.is_retired())
                .with_context(|| format!("no dataset `{}`", definition.id))?;
            let current: crate::catalog::definition::DatasetDefinition =
                serde_json::from_str(&stored.definition)?;
            if let Err(errors) = replace_definition(&store, &stored, &definition).await? {
                let lines: Vec<String> = errors
                    .iter()
                    .map(|error| format!("  {}: {}", error.field, error.reason))
                    .collect();
                anyhow::bail!("`{}` not updated:\n{}", definition.id, lines.join("\n"));
            }
            println!("updated `{}`", definition.id);
            let changes = changed_fields(&current, &definition);
            let action = if classifies(&changes) {
                Action::Classify
            } else {
                Action::Manage
            };
            operator_event(
                "passerelle datasets update",
                &definition.id,
                action,
                200,
                started,
                &serde_json::json!({"fields": changes}),
            )
        }
        DatasetsCommand::Retire { id, by } => {
            let by = by.unwrap_or_else(operator_subject);
            if !store.retire_dataset(&id, &by).await? {
                anyhow::bail!("no dataset `{id}`, or it is retired already");
            }
            println!("retired `{id}`");
            let changes = serde_json::json!({"retired": true, "purged": false, "by": by});
            operator_event(
                "passerelle datasets retire",
                &id,
                Action::Manage,
                204,
                started,
                &changes,
            )
        }
    };
    record_operator_event(log, event).await?;
    Ok(ExitCode::SUCCESS)
}

/// Records an operator's change in the audit chain and stops the writer.
async fn record_operator_event(log: AuditLog, event: crate::audit::Event) -> anyhow::Result<()> {
    let recorded = log.record(event).await;
    log.shutdown().await;
    recorded.context("the change was made, but its audit event could not be written")?;
    Ok(())
}

/// The definition of `id`: its file in the catalogue folder, else the store's.
async fn definition_of(
    settings: &Settings,
    store: &Store,
    id: &str,
) -> anyhow::Result<crate::catalog::definition::DatasetDefinition> {
    let file = ["yaml", "yml", "toml"]
        .iter()
        .map(|extension| settings.catalog_dir.join(format!("{id}.{extension}")))
        .find(|path| path.is_file());
    if let Some(path) = file {
        return read_definition(&path)
            .map_err(|reason| anyhow::anyhow!("{}: {reason}", path.display()));
    }
    let stored = store
        .stored_dataset(id)
        .await?
        .filter(|stored| !stored.is_retired())
        .with_context(|| {
            format!(
                "no definition for `{id}` in {} nor in the store",
                settings.catalog_dir.display()
            )
        })?;
    Ok(serde_json::from_str(&stored.definition)?)
}

/// `passerelle import ID FILE [--dry-run]`, with progress lines on stderr.
pub async fn import(
    settings: &Settings,
    id: &str,
    file: &Path,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    let definition = definition_of(settings, &store, id).await?;
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    if dry_run {
        use crate::catalog::publish::{UploadOptions, open_upload, validate};
        let source = open_upload(&definition, file, &UploadOptions::default())
            .map_err(|reason| anyhow::anyhow!("{}: {reason}", file.display()))?;
        let schema = match &definition.schema {
            Some(schema) => schema.clone(),
            None => source.infer_schema()?,
        };
        let report = validate(&source, &schema);
        println!(
            "{} valid row(s), {} bad row(s) in {} bytes; nothing imported (dry run)",
            report.valid_rows, report.bad_rows, size
        );
        if let Some(reason) = &report.file_error {
            println!("  the file cannot be read: {reason}");
        }
        for error in &report.errors {
            println!(
                "  line {}{}: {}",
                error.line,
                error
                    .column
                    .as_deref()
                    .map(|column| format!(", column `{column}`"))
                    .unwrap_or_default(),
                error.reason
            );
        }
        return Ok(if report.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let format = definition.source.format.clone().or_else(|| {
        file.extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase)
    });
    let options = crate::catalog::publish::UploadOptions {
        format,
        ..Default::default()
    };
    let source = crate::catalog::publish::open_upload(&definition, file, &options)
        .map_err(|reason| anyhow::anyhow!("{}: {reason}", file.display()))?;
    let schema = match &definition.schema {
        Some(schema) => schema.clone(),
        None => source.infer_schema()?,
    };
    definition
        .check_schema(&schema)
        .map_err(|reason| anyhow::anyhow!("{}: {reason}", file.display()))?;
    let sha256 = crate::catalog::sync::file_hash(file)?;
    // Started first: no version is published that could not be audited.
    let log = writing_audit_log(settings, store.clone()).await?;
    let stored = store.stored_dataset(id).await?;
    let origin = stored
        .as_ref()
        .map_or(crate::store::datasets::ORIGIN_FILE.to_owned(), |stored| {
            stored.origin.clone()
        });
    let (definition_json, definition_hash) = crate::catalog::publish::definition_text(&definition);
    let new = crate::store::datasets::NewVersion {
        id,
        schema: &schema,
        definition: &definition_json,
        definition_hash: &definition_hash,
        source_hash: &sha256,
        origin: &origin,
    };
    let started = std::time::Instant::now();
    eprintln!("importing {} ({size} bytes) into `{id}`", file.display());
    let progress = Progress::new(started, size);
    let rows = source
        .rows(&schema)?
        .inspect(|_| progress.row(|| source.bytes_read()));
    let outcome = store.import_rows(new, rows, 50).await?;
    let (version, table, count) = match outcome {
        crate::store::datasets::ImportOutcome::Imported {
            version,
            table_name,
            record_count,
        } => (version, table_name, record_count),
        crate::store::datasets::ImportOutcome::Rejected(problems) => {
            eprintln!(
                "import refused, nothing changed: {} invalid row(s):",
                problems.len()
            );
            for problem in problems {
                eprintln!("  {problem}");
            }
            log.shutdown().await;
            return Ok(ExitCode::FAILURE);
        }
    };
    let operator = crate::audit::operator_subject();
    let file_name = file.file_name().and_then(|name| name.to_str());
    let facts = crate::store::publishing::VersionFacts {
        dataset_id: id,
        created_by: Some(&operator),
        rows: count,
        bytes: i64::try_from(size).ok(),
        sha256: Some(&sha256),
        file_name,
    };
    store
        .record_published_version(&facts, version, &table, settings.publishing.keep_versions)
        .await?;
    // The facts the API records for an upload.
    let changes = serde_json::json!({
        "dry_run": false,
        "rows": count,
        "bad_rows": 0,
        "bytes": size,
        "sha256": sha256,
        "file_name": file_name,
        "version": version,
    });
    let event = crate::audit::operator_event(
        "passerelle import",
        id,
        crate::audit::Action::Publish,
        200,
        started,
        &changes,
    );
    record_operator_event(log, event).await?;
    // Tables this import (or an earlier one) retired long enough ago.
    crate::startup::drop_retired_tables(
        &store,
        settings,
        &crate::store::retired::TablesInUse::default(),
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "imported {count} rows ({size} bytes) into `{id}` version {version} in {seconds:.2} s ({:.0} rows/s)",
        count as f64 / seconds.max(0.001)
    );
    Ok(ExitCode::SUCCESS)
}

/// Progress of an import on stderr, at most once a second: rows, rows/s,
/// bytes read of the file's size and the time left at that pace (when the
/// source tells how far it has read), rewritten in place on a terminal,
/// one line each time otherwise.
struct Progress {
    started: std::time::Instant,
    size: u64,
    rows: std::cell::Cell<u64>,
    shown: std::cell::Cell<u64>,
    terminal: bool,
}

impl Progress {
    fn new(started: std::time::Instant, size: u64) -> Progress {
        use std::io::IsTerminal;
        Progress {
            started,
            size,
            rows: std::cell::Cell::new(0),
            shown: std::cell::Cell::new(0),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Counts a row; `bytes_read` is asked only when a line is shown.
    fn row(&self, bytes_read: impl FnOnce() -> Option<u64>) {
        let rows = self.rows.get() + 1;
        self.rows.set(rows);
        if !rows.is_multiple_of(10_000) {
            return;
        }
        let seconds = self.started.elapsed().as_secs();
        if seconds <= self.shown.get() {
            return;
        }
        self.shown.set(seconds);
        let line = progress_line(rows, bytes_read(), self.size, self.started.elapsed());
        if self.terminal {
            eprint!("\r  {line}   ");
        } else {
            eprintln!("  {line}");
        }
    }
}

/// `120000 rows read, 85000 rows/s, 9.1 of 77.2 MB (12 %), about 13 s left`.
fn progress_line(
    rows: u64,
    bytes_read: Option<u64>,
    size: u64,
    elapsed: std::time::Duration,
) -> String {
    let seconds = elapsed.as_secs_f64().max(0.001);
    let mut line = format!("{rows} rows read, {:.0} rows/s", rows as f64 / seconds);
    if let Some(read) = bytes_read.filter(|&read| read > 0 && size > 0) {
        let read = read.min(size);
        let left = (size - read) as f64 / (read as f64 / seconds);
        line.push_str(&format!(
            ", {:.1} of {:.1} MB ({} %), about {:.0} s left",
            read as f64 / 1e6,
            size as f64 / 1e6,
            read * 100 / size,
            left.ceil()
        ));
    }
    line
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.terminal && self.shown.get() > 0 {
            eprintln!();
        }
    }
}

/// `passerelle register …`.
#[derive(Debug, Subcommand)]
pub enum RegisterCommand {
    /// Bootstrap or update register entries from an inventory spreadsheet
    /// (CSV with `;`, UTF-8 or Windows-1252, French or English headers).
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

/// `passerelle register import FILE`: every bad line reported with its
/// number and reason; exit 1 when any line was left out.
pub async fn register(settings: &Settings, command: RegisterCommand) -> anyhow::Result<ExitCode> {
    let RegisterCommand::Import { file } = command;
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let store = open_store(settings).await?;
    let report = match crate::catalog::register_import::import_register(&store, &bytes).await {
        Ok(report) => report,
        Err(reason) => {
            eprintln!("{}: {reason}; nothing imported", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    for (line, reason) in &report.rejected {
        eprintln!("{}: line {line}: {reason}", file.display());
    }
    println!(
        "register: {} created, {} updated, {} unchanged, {} line(s) rejected",
        report.created.len(),
        report.updated.len(),
        report.unchanged.len(),
        report.rejected.len()
    );
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `passerelle token`: refused outside dev mode unless explicitly allowed.
pub async fn token(
    settings: &Settings,
    subject: &str,
    roles: &[String],
    org: Option<&str>,
    ttl: u64,
    allow_in_production: bool,
) -> anyhow::Result<ExitCode> {
    if !settings.dev_mode && !allow_in_production {
        bail!(
            "`passerelle token` mints tokens without any client: it needs dev mode (PASSERELLE_DEV_MODE=true) or --allow-in-production"
        );
    }
    let store = open_store(settings).await?;
    let keys = KeyRing::load(&store, &settings.auth).await?;
    let token = keys.mint(subject, org, roles, ttl).await?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

pub async fn clients(settings: &Settings, command: ClientsCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    let registry = ClientRegistry::new(store);
    match command {
        ClientsCommand::Create {
            org,
            roles,
            datasets,
            expires,
            api_key,
        } => {
            let expires_at =
                expires.map(|date| date.and_hms_opt(23, 59, 59).unwrap_or_default().and_utc());
            let (client_id, secret) = registry
                .create(&org, &roles, datasets.as_deref(), expires_at)
                .await?;
            println!(
                "client_id: {client_id}\nclient_secret: {secret}\n(the secret is shown once; store it now)"
            );
            if api_key {
                let (key_id, key) = registry.create_api_key(&client_id, expires_at).await?;
                println!("api_key_id: {key_id}\napi_key: {key}");
            }
        }
        ClientsCommand::List => {
            for client in registry.list().await? {
                println!("{}", serde_json::to_string(&client)?);
            }
        }
        ClientsCommand::Disable { client_id } => registry.disable(&client_id).await?,
        ClientsCommand::RotateSecret { client_id } => {
            let secret = registry.rotate_secret(&client_id).await?;
            println!("client_secret: {secret}");
        }
        ClientsCommand::Delete { client_id } => registry.delete(&client_id).await?,
        ClientsCommand::RevokeKey { key_id } => registry.revoke_api_key(&key_id).await?,
        ClientsCommand::SetLimit {
            client_id,
            requests,
            per_seconds,
            burst,
            daily_rows,
            daily_bytes,
            reset,
        } => {
            let given = crate::limits::LimitSet {
                requests,
                per_seconds,
                burst,
                daily_rows,
                daily_bytes,
            };
            let limits = if reset {
                crate::limits::LimitSet::default()
            } else {
                let current = registry.limits(&client_id).await?.unwrap_or_default();
                given.over(current)
            };
            registry.set_limits(&client_id, limits).await?;
            println!("{}", serde_json::to_string(&limits)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn keys(settings: &Settings, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    let keys = KeyRing::load(&store, &settings.auth).await?;
    match command {
        KeysCommand::Rotate => {
            let kid = keys.rotate().await?;
            println!("new signing key: {kid}");
        }
        KeysCommand::List => {
            for key in keys.list().await? {
                println!("{}", serde_json::to_string(&key)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn policy(settings: &Settings, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Check {
        roles,
        action,
        dataset,
    } = command;
    let store = open_store(settings).await?;
    let catalog = crate::catalog::CatalogHandle::default();
    catalog.refresh(&store).await?;
    let engine = PolicyEngine::load_with(
        &settings.policies_dir,
        &dataset_levels(&catalog),
        settings.policy.clone(),
    )
    .await?;
    let action = Action::parse(&action).with_context(|| format!("unknown action `{action}`"))?;
    let current = catalog.current();
    let entry = current
        .get(&dataset)
        .with_context(|| format!("no dataset `{dataset}` in the store"))?;
    let mut roles = roles;
    if !roles.iter().any(|role| role == "anonymous") {
        roles.push("anonymous".to_owned());
    }
    let decision = engine.decide(
        &roles,
        &DatasetRef {
            id: entry.id(),
            access: entry.definition.access,
            metadata_visibility: entry.definition.metadata_visibility,
        },
        action,
    );
    println!(
        "{}",
        serde_json::json!({"allowed": decision.allowed, "rule": decision.rule, "view": decision.view})
    );
    Ok(if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

pub async fn audit(settings: &Settings, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    if let AuditCommand::Purge { before } = command {
        // The only audit command that writes: it starts the writer (which
        // signs a checkpoint when it stops).
        let log = writing_audit_log(settings, store).await?;
        let report = log.purge(before).await;
        log.shutdown().await;
        println!("{}", serde_json::to_string(&report?)?);
        return Ok(ExitCode::SUCCESS);
    }
    // Verify and export only read: no writer, no checkpoint, no new key.
    let keys = KeyRing::load_read_only(&store, &settings.auth).await?;
    let reader = AuditReader::new(store, crate::startup::checkpoint_signer(&keys));
    match command {
        AuditCommand::Verify => {
            let verification = reader.verify(None, None).await?;
            println!("{}", serde_json::to_string_pretty(&verification)?);
            Ok(if verification.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Export { from, to, format } => {
            let mut stdout = std::io::stdout();
            reader.export(from, to, &format, &mut stdout).await?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Purge { .. } => unreachable!("handled above"),
    }
}

/// The audit log with its writer, signing checkpoints with the gateway's key.
async fn writing_audit_log(settings: &Settings, store: Store) -> anyhow::Result<AuditLog> {
    let keys = KeyRing::load(&store, &settings.auth).await?;
    AuditLog::start(
        store,
        settings.audit.writer(),
        crate::startup::checkpoint_signer(&keys),
    )
    .await
}

/// `passerelle bench-audit`: sustained durable audit events per second, with
/// `concurrency` tasks recording at once (the benchmark's scenario 6).
pub async fn bench_audit(
    settings: &Settings,
    events: u64,
    concurrency: u64,
) -> anyhow::Result<ExitCode> {
    let store = open_store(settings).await?;
    let log = writing_audit_log(settings, store).await?;
    let concurrency = concurrency.max(1);
    let per_task = events.div_ceil(concurrency);
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let log = log.clone();
        tasks.spawn(async move {
            for index in 0..per_task {
                log.record(bench_event(task, index)).await?;
            }
            Ok::<_, crate::audit::AuditError>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = per_task * concurrency;
    log.shutdown().await;
    println!(
        "events={total} seconds={elapsed:.3} events_per_second={:.0}",
        total as f64 / elapsed
    );
    Ok(ExitCode::SUCCESS)
}

fn bench_event(task: u64, index: u64) -> crate::audit::Event {
    use crate::audit::{Action, Decision, Event};
    Event {
        time: chrono::Utc::now(),
        request_id: format!("bench-{task}-{index}"),
        roles: vec!["anonymous".to_owned()],
        ip: Some("127.0.0.1".to_owned()),
        user_agent: Some("passerelle bench-audit".to_owned()),
        method: "GET".to_owned(),
        path: "/api/v1/data/bench".to_owned(),
        query: Some("commune=eq.Troyes&limit=100".to_owned()),
        dataset: Some("bench".to_owned()),
        action: Action::Read,
        decision: Decision::Allow,
        rule: Some("bench".to_owned()),
        status: 200,
        rows: Some(100),
        duration_ms: 1.0,
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gateway listening on every address is asked on loopback.
    #[test]
    fn health_asks_wildcard_listeners_on_loopback() {
        let local = |listen: &str| local_address(listen.parse().unwrap()).to_string();
        assert_eq!(local("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(local("[::]:9000"), "[::1]:9000");
        assert_eq!(local("10.1.2.3:8080"), "10.1.2.3:8080");
    }

    /// Rows and pace always; bytes and the time left once the source says
    /// how far it has read.
    #[test]
    fn progress_tells_bytes_and_time_left() {
        let ten = std::time::Duration::from_secs(10);
        assert_eq!(
            progress_line(200_000, Some(20_000_000), 80_000_000, ten),
            "200000 rows read, 20000 rows/s, 20.0 of 80.0 MB (25 %), about 30 s left"
        );
        assert_eq!(
            progress_line(200_000, None, 80_000_000, ten),
            "200000 rows read, 20000 rows/s"
        );
        assert_eq!(
            progress_line(10, Some(0), 80_000_000, ten),
            "10 rows read, 1 rows/s"
        );
    }
}
