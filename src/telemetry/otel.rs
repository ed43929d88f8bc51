//! Traces over OpenTelemetry (cargo feature `otel`, off by default): the
//! spans of a request (`request`, `authenticate`, `policy`, `sql`, `encode`,
//! `audit_commit`, each with the `request_id` attribute) are exported over
//! OTLP/HTTP (protobuf) to `telemetry.otlp_endpoint`, in batches from a
//! thread of the exporter's own, so a slow collector never holds a request.
//!
//! The spans are at DEBUG level on the `passerelle` target: without this
//! layer they are disabled and cost next to nothing, and the log filter
//! (`RUST_LOG`) does not decide which spans are exported.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

use super::TelemetrySettings;

/// The path of the traces on an OTLP/HTTP collector.
const TRACES_PATH: &str = "/v1/traces";

/// The trace pipeline; flushed and stopped when dropped.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Starts exporting to the configured collector; `None` when none is set
    /// or the exporter cannot be built (said on standard error: logging is
    /// not up yet).
    pub fn start(settings: &TelemetrySettings) -> Option<Traces> {
        let endpoint = settings.otlp_endpoint.as_deref()?.trim_end_matches('/');
        let endpoint = if endpoint.ends_with(TRACES_PATH) {
            endpoint.to_owned()
        } else {
            format!("{endpoint}{TRACES_PATH}")
        };
        let exporter = match SpanExporter::builder()
            .with_http()
            .with_endpoint(&endpoint)
            .build()
        {
            Ok(exporter) => exporter,
            Err(error) => {
                eprintln!("warning: no traces: cannot export to {endpoint}: {error}");
                return None;
            }
        };
        let service = settings.service_name.as_deref().unwrap_or("passerelle");
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(service.to_owned())
                    .build(),
            )
            .build();
        Some(Traces { provider })
    }

    /// Traces sent to `provider` (tests give one with an in-memory exporter).
    pub fn with_provider(provider: SdkTracerProvider) -> Traces {
        Traces { provider }
    }

    /// The layer that turns the gateway's spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + use<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        let tracer = self.provider.tracer("passerelle");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(Targets::new().with_target("passerelle", tracing::Level::DEBUG))
    }

    /// Sends the spans that are still waiting.
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}
