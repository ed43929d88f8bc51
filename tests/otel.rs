//! Traces (feature `otel`): one read's spans reach the OpenTelemetry SDK,
//! each carrying the request id. Run with
//! `cargo test --features otel-testing --test otel`.

#![cfg(feature = "otel-testing")]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use passerelle::config::Settings;
use passerelle::store::test_support;
use passerelle::telemetry::otel::Traces;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn repository_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A JSON read produces the spans of authentication, policy, SQL, encoding
/// and audit commit under the request's span, all with its request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_is_traced_with_its_request_id() {
    let exporter = InMemorySpanExporter::default();
    let traces = Traces::with_provider(
        SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build(),
    );
    tracing_subscriber::registry()
        .with(traces.layer())
        .try_init()
        .expect("the only subscriber of this test binary");
    let _ = rustls::crypto::ring::default_provider().install_default();

    let (url, _database) = test_support::sqlite_url();
    let mut settings = Settings {
        database_url: url,
        catalog_dir: repository_path("catalog"),
        policies_dir: repository_path("policies"),
        dev_mode: true,
        ..Settings::default()
    };
    // The read waits for its audit commit (open data is buffered by default:
    // its event is committed by the writer after the answer, outside the
    // request's trace).
    settings.audit.durability.open = passerelle::audit::Durability::Durable;
    let state = passerelle::startup::build_state(settings)
        .await
        .expect("gateway starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = passerelle::http::router(state);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let response = reqwest::Client::new()
        .get(format!(
            "http://{address}/api/v1/data/consommations-energie-batiments?limit=2"
        ))
        .header("X-Request-Id", "trace-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();

    let expected = [
        "request",
        "authenticate",
        "policy",
        "sql",
        "encode",
        "audit_commit",
    ];
    let mut names = Vec::new();
    for _ in 0..50 {
        traces.flush();
        let spans = exporter.get_finished_spans().unwrap();
        names = spans
            .iter()
            .filter(|span| {
                span.attributes.iter().any(|attribute| {
                    attribute.key.as_str() == "request_id"
                        && attribute.value == Value::from("trace-me-1")
                })
            })
            .map(|span| span.name.to_string())
            .collect::<Vec<_>>();
        if expected
            .iter()
            .all(|name| names.iter().any(|seen| seen == name))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in expected {
        assert!(
            names.iter().any(|seen| seen == name),
            "span `{name}` with the request id, in {names:?}"
        );
    }
    // One trace: every span of the request shares the request span's trace id.
    let spans = exporter.get_finished_spans().unwrap();
    let request = spans
        .iter()
        .find(|span| span.name == "request")
        .expect("request span");
    let trace_id = request.span_context.trace_id();
    for span in spans
        .iter()
        .filter(|span| expected.contains(&span.name.as_ref()))
    {
        assert_eq!(span.span_context.trace_id(), trace_id, "{}", span.name);
    }
}
