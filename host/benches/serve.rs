//! The gateway over real sockets, in process: `server::serve` in front of
//! the mock upstream, driven by one keep-alive client.
//!
//! - `http_round_trip`: one small chat request at a time, no plugins: what
//!   accepting and serving a connection adds per request (the connection
//!   loop, its timers and limits, the `x-sluice-*` stamping); `chat_small`
//!   with metrics recorded (the default), `chat_small_metrics_off` with
//!   `[server] metrics = "off"`, side by side.
//! - `observability`: the same request with metrics and traces off (no
//!   `tracing` subscriber at all, `metrics = "off"`: `bare`), on with the
//!   trace exporter off (`sluice serve`'s subscriber at `warn`, metrics
//!   on: `exporter_off`, what every gateway pays), and with the exporter
//!   on, every request sampled, to a local receiver (`exporter_on`). Each
//!   variant has its own runtime whose threads use its subscriber.
//! - `guarded_stream`: a 0.5 / 2 / 8 MB streamed answer through two output
//!   guardrails in 512-character windows. Each window carries the emitted
//!   text as context; with all of it the cost grows with the square of the
//!   answer, with a bounded tail (`stream.context-chars`) linearly.
//!
//! The guardrails are `tests/plugins/tagger` in length-check mode (always
//! passes), built like `plugin_call` does (`SLUICE_BENCH_GUEST` overrides).
//! `SLUICE_BENCH_STREAM_MB=0.5,2` picks the sizes, `SLUICE_BENCH_CONTEXT_CHARS`
//! sets `context-chars` (default: the config's default).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sluice::config::Config;
use sluice::pipeline::Gateway;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn guest() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_BENCH_GUEST").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let wasm = root().join("target/guests/wasm32-wasip2/guest/test_tagger.wasm");
    if !wasm.is_file() {
        let status =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(root())
                .args([
                    "build",
                    "--profile",
                    "guest",
                    "--target",
                    "wasm32-wasip2",
                    "--target-dir",
                    "target/guests",
                    "-p",
                    "test-tagger",
                ])
                .status()
                .expect("running cargo");
        assert!(status.success(), "building the bench guest failed");
    }
    wasm
}

/// The mock and a gateway in front of it; returns the gateway's URL and
/// its state directory (its own, so two gateways can run side by side).
async fn start(plugins: &Path, guarded: bool, server: &str) -> (String, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let mock = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", mock.local_addr().unwrap());
    tokio::spawn(sluice::mock::serve(
        mock,
        sluice::mock::MockConfig::default(),
    ));
    let context = std::env::var("SLUICE_BENCH_CONTEXT_CHARS")
        .map(|n| format!(", context-chars = {n}"))
        .unwrap_or_default();
    let guardrails = if guarded {
        format!(
            "output-guardrails = [\"a\", \"b\"]\nstream = {{ mode = \"chars\", chars = 512, max-hold-chars = 512{context} }}"
        )
    } else {
        String::new()
    };
    let toml = format!(
        "{server}\n[plugins]\ndir = '{}'\nwatch = false\n\n[[providers]]\nname = \"mock\"\nbase-url = \"{base}\"\n\n\
         [models.chat]\nroutes = [{{ provider = \"mock\", model = \"mock-small\" }}]\n{guardrails}\n\
         [state]\ndir = '{}'\n",
        plugins.display(),
        state.path().display(),
    );
    let config = Config::parse("bench.toml", &toml, &|_| None).unwrap();
    let gw = tokio::task::spawn_blocking(move || Gateway::start(config))
        .await
        .unwrap()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sluice::server::serve(
        listener,
        Arc::new(gw),
        std::future::pending(),
    ));
    (url, state)
}

/// `iters` chat requests in a row, each answered 200 and read whole: their
/// wall time.
async fn chats(client: &reqwest::Client, url: &str, body: &Value, iters: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        let res = client
            .post(format!("{url}/v1/chat/completions"))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
    }
    started.elapsed()
}

fn bench_round_trip(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let body = json!({"model": "chat", "messages": [{"role": "user",
        "content": "REPLY: Summarise our gateway for a customer in two sentences."}]});
    let mut g = c.benchmark_group("http_round_trip");
    for (name, server) in [
        ("chat_small", ""),
        ("chat_small_metrics_off", "[server]\nmetrics = \"off\"\n"),
    ] {
        let (url, _state) = rt.block_on(start(dir.path(), false, server));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| rt.block_on(chats(&client, &url, &body, iters)))
        });
    }
    g.finish();
}

fn bench_guarded_stream(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        std::fs::copy(guest(), dir.path().join(format!("{name}.wasm"))).unwrap();
        std::fs::write(
            dir.path().join(format!("{name}.toml")),
            "kind = \"guardrail\"\n[limits]\ndeadline-ms = 1000\n[config]\nmax-chars = 100000000\n",
        )
        .unwrap();
    }
    let (url, _state) = rt.block_on(start(dir.path(), true, ""));
    let client = reqwest::Client::new();
    let sizes: Vec<f64> = std::env::var("SLUICE_BENCH_STREAM_MB")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0.5, 2.0, 8.0]);
    let mut g = c.benchmark_group("guarded_stream");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    for mb in sizes {
        let bytes = (mb * 1_000_000.0) as usize;
        g.bench_function(format!("{mb}MB_2_guardrails"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let body = json!({"model": "chat", "stream": true, "mock_answer_bytes": bytes,
                            "messages": [{"role": "user", "content": "go"}]});
                        let res = client
                            .post(format!("{url}/v1/chat/completions"))
                            .json(&body)
                            .send()
                            .await
                            .unwrap();
                        let mut got = 0;
                        let mut stream = res.bytes_stream();
                        while let Some(chunk) = stream.next().await {
                            got += chunk.unwrap().len();
                        }
                        assert!(got > bytes, "the whole answer arrived: {got}");
                    }
                    started.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// A runtime whose threads (and the caller, while `f` runs) use `dispatch`.
fn with_subscriber<T>(dispatch: tracing::Dispatch, f: impl FnOnce(&Runtime) -> T) -> T {
    let on_workers = dispatch.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            // For the thread's life: the runtime owns its threads.
            std::mem::forget(tracing::dispatcher::set_default(&on_workers));
        })
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || f(&rt))
}

/// An OTLP endpoint that accepts every export (`/v1/traces`).
async fn receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(|| async { "" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn bench_observability(c: &mut Criterion) {
    use sluice::cli::{LogFormat, traced_subscriber};
    use sluice::telemetry::{Telemetry, TelemetryConfig};
    let dir = tempfile::tempdir().unwrap();
    let body = json!({"model": "chat", "messages": [{"role": "user",
        "content": "REPLY: Summarise our gateway for a customer in two sentences."}]});
    let mut g = c.benchmark_group("observability");
    for name in ["bare", "exporter_off", "exporter_on"] {
        // Pooled connections belong to the runtime that opened them.
        let client = reqwest::Client::new();
        let probe = Runtime::new().unwrap();
        let endpoint = probe.block_on(receiver());
        let telemetry = (name == "exporter_on").then(|| {
            let cfg = TelemetryConfig {
                endpoint: Some(endpoint),
                ..TelemetryConfig::default()
            };
            Telemetry::start(&cfg).unwrap().unwrap()
        });
        let dispatch = if name == "bare" {
            tracing::Dispatch::none()
        } else {
            let filter = tracing_subscriber::EnvFilter::new("warn");
            let s = traced_subscriber(
                LogFormat::Json,
                filter,
                false,
                std::io::sink,
                telemetry.as_ref(),
            );
            tracing::Dispatch::new(s)
        };
        let server = if name == "bare" {
            "[server]\nmetrics = \"off\"\n"
        } else {
            ""
        };
        with_subscriber(dispatch, |rt| {
            let (url, _state) = rt.block_on(start(dir.path(), false, server));
            g.bench_function(name, |b| {
                b.iter_custom(|iters| rt.block_on(chats(&client, &url, &body, iters)))
            });
        });
        if let Some(t) = telemetry {
            t.shutdown();
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_round_trip,
    bench_observability,
    bench_guarded_stream
);
criterion_main!(benches);
