//! What the stage spans of one request cost on the request path: the
//! spans a served chat request with two guardrails makes (request, auth,
//! rate limit and budget, two input guardrails, one upstream attempt and
//! its `traceparent`, one output window with two guardrails, the request's
//! attributes), with:
//!
//! - `no_subscriber`: no `tracing` subscriber at all (nothing traced);
//! - `exporter_off`: `sluice serve`'s subscriber (log at `warn`) and no
//!   `[telemetry] endpoint`, what every gateway pays;
//! - `exporter_on`: the same with the OTLP exporter, every trace sampled,
//!   batching to a local receiver that accepts everything.
//!
//! `--bench serve` (`observability`) has the same comparison over sockets.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::cli::{LogFormat, traced_subscriber};
use sluice::pipeline::GuardReport;
use sluice::telemetry::{self, Telemetry, TelemetryConfig, spans};

fn one_request() {
    let request = spans::request("POST", "/v1/chat/completions", "req_0123456789abcdef");
    request.in_scope(|| {
        spans::auth().in_scope(|| black_box(1));
        spans::limits("rate_limit").in_scope(|| black_box(2));
        for plugin in ["pii-redact", "secrets"] {
            let g = spans::guardrail(plugin, "input");
            g.in_scope(|| black_box(3));
            g.record("sluice.verdict", "pass");
        }
        spans::limits("budget").in_scope(|| black_box(4));
        let up = spans::upstream("openai", "gpt-4o-mini", 1, 1, false);
        up.in_scope(|| black_box(telemetry::upstream_headers()));
        up.record("http.response.status_code", 200);
        let window = spans::output_window(&request, 0, 1);
        window.in_scope(|| {
            for plugin in ["pii-redact", "length-check"] {
                let g = spans::guardrail(plugin, "output");
                g.in_scope(|| black_box(5));
                g.record("sluice.verdict", "pass");
            }
        });
        spans::record_request(
            "chat",
            Some("openai"),
            Some("gpt-4o-mini"),
            1,
            &GuardReport::default(),
            None,
        );
    });
    request.record("http.response.status_code", 200);
}

/// An OTLP endpoint accepting every export, on its own thread.
fn receiver() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
            tx.send(url).unwrap();
            let app = axum::Router::new().route("/v1/traces", axum::routing::post(|| async { "" }));
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("stage_spans_per_request");
    let endpoint = receiver();
    for name in ["no_subscriber", "exporter_off", "exporter_on"] {
        let telemetry = (name == "exporter_on").then(|| {
            let cfg = TelemetryConfig {
                endpoint: Some(endpoint.clone()),
                batch_delay_ms: 100,
                ..TelemetryConfig::default()
            };
            Telemetry::start(&cfg).unwrap().unwrap()
        });
        let dispatch = if name == "no_subscriber" {
            tracing::Dispatch::none()
        } else {
            let filter = tracing_subscriber::EnvFilter::new("warn");
            tracing::Dispatch::new(traced_subscriber(
                LogFormat::Json,
                filter,
                false,
                std::io::sink,
                telemetry.as_ref(),
            ))
        };
        tracing::dispatcher::with_default(&dispatch, || {
            g.bench_function(name, |b| b.iter(one_request));
        });
        if let Some(t) = telemetry {
            t.shutdown();
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
