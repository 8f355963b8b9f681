//! The real `sluice` binary as a child process, for what only processes
//! show: `kill -9` and restarts on one data directory, several gateways
//! sharing one Redis, the `usage` and `keys` commands. Logs are JSON lines
//! (`SLUICE_LOG_FORMAT=json`), collected as they come.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// The binary cargo built for these tests (`tests/bin/sluice.rs`).
pub const BIN: &str = env!("CARGO_BIN_EXE_sluice-e2e");

/// Bounds a start that hangs; a healthy start takes well under a second.
const START_GUARD: Duration = Duration::from_secs(120);

/// A running `sluice serve`; killed (SIGKILL) when dropped.
pub struct Sluice {
    child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    logs: Arc<Logs>,
}

/// Log lines so far, whether stderr closed (the process is gone), and a
/// wake-up for each change.
#[derive(Default)]
struct Logs {
    lines: Mutex<Vec<Value>>,
    closed: std::sync::atomic::AtomicBool,
    more: Notify,
}

impl Sluice {
    /// `sluice serve --config CONFIG`; the config should listen on
    /// `127.0.0.1:0` (the port is read from the start log line).
    pub async fn start(config: &Path) -> Sluice {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("SLUICE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the sluice binary");
        let pid = child.id().unwrap();
        let logs = Arc::new(Logs::default());
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.lines.lock().unwrap().push(v);
                sink.more.notify_waiters();
            }
            sink.closed
                .store(true, std::sync::atomic::Ordering::Release);
            sink.more.notify_waiters();
        });
        let mut s = Sluice {
            child,
            pid,
            url: String::new(),
            logs,
        };
        let listening = s
            .wait_log(START_GUARD, |v| message(v) == "sluice listening")
            .await
            .unwrap_or_else(|| panic!("sluice did not start:\n{}", s.log_text()));
        s.url = format!("http://{}", listening["fields"]["addr"].as_str().unwrap());
        s
    }

    pub fn v1(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.url)
    }

    pub fn admin(&self, path: &str) -> String {
        format!("{}/admin/{path}", self.url)
    }

    /// The first log line matching `pred`, waiting up to `timeout` (None
    /// at once if the process is gone without it).
    pub async fn wait_log(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let wait = async {
            loop {
                let more = self.logs.more.notified();
                if let Some(v) = self.logs.lines.lock().unwrap().iter().find(|v| pred(v)) {
                    return Some(v.clone());
                }
                if self.logs.closed.load(std::sync::atomic::Ordering::Acquire) {
                    return None;
                }
                more.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    pub fn log_text(&self) -> String {
        self.logs
            .lines
            .lock()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGKILL: no flush, no shutdown, as a crash.
    pub async fn kill9(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, then wait for the graceful exit; true if it exited 0.
    pub async fn stop(&mut self) -> bool {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await
            .unwrap();
        assert!(sent.success(), "kill -TERM {}", self.pid);
        let status = tokio::time::timeout(START_GUARD, self.child.wait())
            .await
            .expect("sluice did not exit after SIGTERM")
            .unwrap();
        status.success()
    }
}

/// A log line's message.
pub fn message(v: &Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or("")
}

/// `sluice ARGS...` to completion: (success, stdout, stderr).
pub async fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running the sluice binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Write `toml` to `dir/sluice.toml`, with an empty plugin directory and a
/// listener on an ephemeral port unless it sets its own.
pub fn config_file(dir: &Path, toml: &str) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let mut text = String::new();
    if !toml.contains("[server]") {
        text.push_str("[server]\nlisten = \"127.0.0.1:0\"\n\n");
    }
    if !toml.contains("[plugins]") {
        text.push_str(&format!(
            "[plugins]\ndir = '{}'\nwatch = false\n\n",
            plugins.display()
        ));
    }
    text.push_str(toml);
    let path = dir.join("sluice.toml");
    std::fs::write(&path, text).unwrap();
    path
}
