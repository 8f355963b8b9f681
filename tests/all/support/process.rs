//! The real `sluice` binary as a child process, for what only a process
//! shows: signals, the open-file limit, exit codes, stderr logs. Logs are
//! JSON lines (`SLUICE_LOG_FORMAT=json`), collected as they come.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// Log lines so far, and a wake-up for each new one.
#[derive(Default)]
struct Logs {
    lines: Mutex<Vec<Value>>,
    more: Notify,
}

/// A running `sluice serve`; killed when dropped.
pub struct Sluice {
    child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    logs: Arc<Logs>,
    _dir: TempDir,
}

impl Sluice {
    /// `sluice serve` with `config` (`listen` is set to an ephemeral port
    /// here; `[plugins] dir` defaults to an empty directory). With
    /// `nofile`, under `ulimit -n` of that many descriptors.
    pub async fn start(config: &str, nofile: Option<u32>) -> Sluice {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        let server = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}",
            config.replace("[server]\n", "")
        );
        let config = if server.contains("[plugins]") {
            server
        } else {
            format!(
                "[plugins]\ndir = '{}'\nwatch = false\n\n{server}",
                plugins.display()
            )
        };
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, &config).unwrap();
        let bin = env!("CARGO_BIN_EXE_sluice-e2e");
        let mut cmd = match nofile {
            // `ulimit -n` sets the soft and the hard limit.
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!(
                        "ulimit -n {n} && exec \"$0\" serve --config \"$1\""
                    ))
                    .arg(bin)
                    .arg(&path);
                c
            }
            None => {
                let mut c = Command::new(bin);
                c.arg("serve").arg("--config").arg(&path);
                c
            }
        };
        let mut child = cmd
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
        });
        let mut s = Sluice {
            child,
            pid,
            url: String::new(),
            logs,
            _dir: dir,
        };
        let listening = s
            .wait_log(Duration::from_secs(60), |v| {
                message(v) == "sluice listening"
            })
            .await
            .unwrap_or_else(|| panic!("sluice did not start:\n{}", s.log_text()));
        s.url = format!("http://{}", listening["fields"]["addr"].as_str().unwrap());
        s
    }

    /// The first log line (JSON) matching `pred`, waiting up to `timeout`.
    pub async fn wait_log(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let wait = async {
            loop {
                let more = self.logs.more.notified();
                if let Some(v) = self.logs.lines.lock().unwrap().iter().find(|v| pred(v)) {
                    return v.clone();
                }
                more.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<Value> {
        self.logs.lines.lock().unwrap().clone()
    }

    /// Every log line so far, one per line, for assertion messages.
    pub fn log_text(&self) -> String {
        self.log_lines()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Send `signal` (`TERM`, `INT`) to the process.
    pub fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{signal} {}", self.pid);
    }

    /// The exit status, if the process ends within `timeout`.
    pub async fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .map(Result::unwrap)
    }
}

/// A JSON log line's message.
pub fn message(v: &Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or("")
}
