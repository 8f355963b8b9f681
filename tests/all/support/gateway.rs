//! The mock upstream and the gateway, both in-process on ephemeral ports,
//! talking over real sockets.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use sluice::config::Config;
use sluice::mock::MockConfig;
use sluice::pipeline::Gateway;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use super::upstream::Mock;

/// The mock upstream with its default config.
pub async fn mock() -> Mock {
    Mock::start(MockConfig::default()).await
}

/// A running gateway; shuts down gracefully when dropped.
pub struct TestGateway {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub gateway: Arc<Gateway>,
    stop: Option<oneshot::Sender<()>>,
    /// The sled directory when the config names none of its own.
    _state_dir: Option<tempfile::TempDir>,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestGateway {
    pub fn v1(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.url)
    }

    /// POST a chat request (no auth).
    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.v1("chat/completions"))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// Validate `config_toml`, start the gateway on `127.0.0.1:0`. A relative
/// `[state] dir` (the default `data`) becomes a fresh temporary directory,
/// so gateways never share one by accident.
pub async fn start(config_toml: &str) -> TestGateway {
    open(config_toml, false, true).await
}

/// As [`start`], with the prompt registry (`[prompts]`) and eval results
/// attached, as `sluice serve` does.
pub async fn start_with_state(config_toml: &str) -> TestGateway {
    open(config_toml, true, true).await
}

/// Like [`start`], but serving before any plugin is loaded (what `sluice
/// serve` does): the test runs `gateway.plugins.initial_load()` itself.
pub async fn start_unloaded(config_toml: &str) -> TestGateway {
    open(config_toml, false, false).await
}

async fn open(config_toml: &str, prompts: bool, load_plugins: bool) -> TestGateway {
    let mut config = Config::parse("test.toml", config_toml, &|k| std::env::var(k).ok())
        .unwrap_or_else(|e| panic!("{e}\n{config_toml}"));
    let state_dir = config.state.dir.is_relative().then(|| {
        let dir = tempfile::tempdir().unwrap();
        config.state.dir = dir.path().to_path_buf();
        dir
    });
    let mut gateway = tokio::task::spawn_blocking(move || {
        if load_plugins {
            Gateway::start(config)
        } else {
            Gateway::starting(config)
        }
    })
    .await
    .unwrap()
    .unwrap();
    if prompts {
        gateway = sluice::cli::prompt::attach(gateway).await.unwrap();
    }
    listen(gateway, state_dir).await
}

async fn listen(gateway: Gateway, state_dir: Option<tempfile::TempDir>) -> TestGateway {
    let gateway = Arc::new(gateway);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let gw = gateway.clone();
    tokio::spawn(async move {
        sluice::server::serve(listener, gw, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestGateway {
        url,
        gateway,
        stop: Some(tx),
        _state_dir: state_dir,
    }
}

/// A config with `[plugins] dir = plugins`, providers `mock` and `backup`
/// (both the mock, so per-request faults hit both), fast retries, and `rest`
/// (models, keys, overrides) appended.
pub fn config(mock: &Mock, plugins: &Path, rest: &str) -> String {
    format!(
        r#"
[plugins]
dir = '{dir}'
watch = false
pool-size = 1

[[providers]]
name = "mock"
base-url = "{base}"

[[providers]]
name = "backup"
base-url = "{base}"

[retry]
max-attempts = 2
initial-backoff-ms = 1
max-backoff-ms = 5
max-retry-after-ms = 50

{rest}
"#,
        dir = plugins.display(),
        base = mock.base(),
    )
}

/// A chat body whose answer is exactly `reply` (the mock's `REPLY:` control).
pub fn reply_body(model: &str, reply: &str) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": format!("REPLY: {reply}")}],
    })
}
