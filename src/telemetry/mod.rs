//! What operators see: logs, metrics and (with the `otel` feature) traces.
//!
//! Logs go to standard error, human-readable by default, one JSON object a
//! line with `PASSERELLE_LOG_FORMAT=json`; colours only when standard error
//! is a terminal (never in a file, a pipe or a container log) and `NO_COLOR`
//! is unset. The level comes from `RUST_LOG` (default `info`). Every API
//! request is one line of the `passerelle::request` target (see
//! `http::observe`). Also process-wide setup that must happen once, before
//! any request.

pub mod metrics;
#[cfg(feature = "otel")]
pub mod otel;

use std::io::IsTerminal;

use serde::Deserialize;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// `[telemetry]`: where traces go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// OTLP/HTTP endpoint of an OpenTelemetry collector (e.g.
    /// `http://collector:4318`); traces are sent only when it is set and the
    /// gateway was built with the `otel` feature.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the traces (default `passerelle`).
    pub service_name: Option<String>,
}

/// Flushes what telemetry still holds when dropped (at the end of `main`).
#[must_use = "dropping the guard flushes and stops the trace exporter"]
pub struct TelemetryGuard {
    /// Writes what the log writer still holds when dropped.
    _logs: Option<tracing_appender::non_blocking::WorkerGuard>,
    #[cfg(feature = "otel")]
    _traces: Option<otel::Traces>,
}

/// For tests: logs only, through the test harness's capture (shown for a
/// failing test only), and the process-wide TLS provider.
pub fn init() {
    let _ = install(None, true);
}

/// Logs on standard error, and traces when the settings name a collector.
pub fn init_with(settings: &TelemetrySettings) -> TelemetryGuard {
    install(Some(settings), false)
}

fn install(settings: Option<&TelemetrySettings>, for_tests: bool) -> TelemetryGuard {
    // One TLS crypto provider for the whole process (JWKS fetches over HTTPS);
    // a second call finds it installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let json = std::env::var("PASSERELLE_LOG_FORMAT").as_deref() == Ok("json");
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt::layer().with_ansi(colour && !json && !for_tests);
    // Lines go to standard error from a thread of their own, gathered while
    // requests keep coming and written out as soon as none is waiting: one
    // `write` per burst instead of one per request on the request's thread
    // (the request line was 8 % of a cached read's CPU, perf). Never lossy:
    // a full queue makes the logging call wait.
    let (stderr, guard) = if for_tests {
        (None, None)
    } else {
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .thread_name("log-writer")
            .finish(std::io::BufWriter::new(std::io::stderr()));
        (Some(writer), Some(guard))
    };
    let logs = match (json, stderr) {
        (true, Some(stderr)) => logs.json().with_writer(stderr).boxed(),
        (false, Some(stderr)) => logs.with_writer(stderr).boxed(),
        (true, None) => logs.json().with_test_writer().boxed(),
        (false, None) => logs.with_test_writer().boxed(),
    };
    let logs = logs.with_filter(filter);
    #[cfg(feature = "otel")]
    {
        let traces = settings.and_then(otel::Traces::start);
        let layer = traces.as_ref().map(otel::Traces::layer);
        // A second init (tests) keeps the first subscriber.
        let _ = tracing_subscriber::registry()
            .with(logs)
            .with(layer)
            .try_init();
        TelemetryGuard {
            _logs: guard,
            _traces: traces,
        }
    }
    #[cfg(not(feature = "otel"))]
    {
        if settings.is_some_and(|settings| settings.otlp_endpoint.is_some()) {
            eprintln!(
                "warning: telemetry.otlp_endpoint is set but this build has no `otel` feature: no traces are sent"
            );
        }
        // A second init (tests) keeps the first subscriber.
        let _ = tracing_subscriber::registry().with(logs).try_init();
        TelemetryGuard { _logs: guard }
    }
}
