//! Logs: human-readable by default, JSON with `PASSERELLE_LOG_FORMAT=json`;
//! the level from `RUST_LOG` (default `info`). Also process-wide setup that
//! must happen once, before any request.

use tracing_subscriber::EnvFilter;

pub fn init() {
    // One TLS crypto provider for the whole process (JWKS fetches over HTTPS);
    // a second call finds it installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::env::var("PASSERELLE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
