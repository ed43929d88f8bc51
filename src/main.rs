//! The `passerelle` command: serve the gateway (default), sync the catalogue,
//! import a file, manage partner clients and keys, mint development tokens,
//! check policies and verify the audit log.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use passerelle::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "passerelle",
    version,
    about = "One REST gateway for every dataset of a public body"
)]
struct Cli {
    /// Configuration file (TOML); `PASSERELLE_*` variables override it.
    #[arg(long, global = true, env = "PASSERELLE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Catalogue operations.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Import a CSV or GeoJSON file as the new version of a catalogued dataset.
    Import {
        /// Dataset id (its definition must be in the catalogue folder).
        id: String,
        /// The file to import.
        file: PathBuf,
    },
    /// Mint a token with the gateway's key (dev mode or --allow-in-production only).
    Token {
        #[arg(long)]
        sub: String,
        /// Comma-separated roles.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long)]
        org: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 900)]
        ttl: u64,
        /// Mint even outside dev mode (for an operator who knows why).
        #[arg(long)]
        allow_in_production: bool,
    },
    /// Partner clients (OAuth2 client credentials and API keys).
    #[command(subcommand)]
    Clients(passerelle::cli::ClientsCommand),
    /// The gateway's signing keys.
    #[command(subcommand)]
    Keys(passerelle::cli::KeysCommand),
    /// Policy checks.
    #[command(subcommand)]
    Policy(passerelle::cli::PolicyCommand),
    /// Audit log operations.
    #[command(subcommand)]
    Audit(passerelle::cli::AuditCommand),
    /// Print the OpenAPI description.
    Openapi,
    /// Measure the audit writer: durable events per second (benchmark).
    #[command(hide = true)]
    BenchAudit {
        #[arg(long, default_value_t = 50_000)]
        events: u64,
        #[arg(long, default_value_t = 64)]
        concurrency: u64,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Sync the catalogue folder into the store.
    Sync,
}

fn main() -> ExitCode {
    passerelle::telemetry::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::Openapi) = cli.command {
        print!("{}", passerelle::http::openapi::document_json());
        return Ok(ExitCode::SUCCESS);
    }
    let settings = Settings::load(cli.config.as_deref()).context("configuration")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => passerelle::startup::serve(settings)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Catalog(CatalogCommand::Sync) => {
            let store = passerelle::startup::open_store(&settings).await?;
            let report = passerelle::startup::sync_catalog(&store, &settings).await?;
            println!(
                "imported {}, updated {}, unchanged {}, removed {}, failed {}",
                report.imported.len(),
                report.updated.len(),
                report.unchanged.len(),
                report.removed.len(),
                report.failures.len()
            );
            for (path, reason) in &report.failures {
                println!("  {path}: {reason}");
            }
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Import { id, file } => passerelle::cli::import(&settings, &id, &file).await,
        Command::Token {
            sub,
            roles,
            org,
            ttl,
            allow_in_production,
        } => {
            passerelle::cli::token(
                &settings,
                &sub,
                &roles,
                org.as_deref(),
                ttl,
                allow_in_production,
            )
            .await
        }
        Command::Clients(command) => passerelle::cli::clients(&settings, command).await,
        Command::Keys(command) => passerelle::cli::keys(&settings, command).await,
        Command::Policy(command) => passerelle::cli::policy(&settings, command).await,
        Command::Audit(command) => passerelle::cli::audit(&settings, command).await,
        Command::BenchAudit {
            events,
            concurrency,
        } => passerelle::cli::bench_audit(&settings, events, concurrency).await,
        Command::Openapi => unreachable!("handled before loading settings"),
    }
}
