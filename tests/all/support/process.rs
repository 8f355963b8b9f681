//! The real `sluice` binary as a child process, for what only a process
//! shows: signals, the open-file limit, exit codes, stderr logs, `kill -9`
//! and restarts on one data directory, several gateways sharing one Redis,
//! the `usage` and `keys` commands. Logs are JSON lines
//! (`SLUICE_LOG_FORMAT=json`), collected as they come.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// The binary cargo built for these tests (`tests/bin/sluice.rs`).
pub const BIN: &str = env!("CARGO_BIN_EXE_sluice-e2e");

/// Log lines so far, whether stderr closed (the process is gone), and a
/// wake-up for each change.
#[derive(Default)]
struct Logs {
    lines: Mutex<Vec<Value>>,
    closed: AtomicBool,
    more: Notify,
}

/// A running `sluice serve`; killed when dropped.
pub struct Sluice {
    child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    logs: Arc<Logs>,
    _dir: Option<TempDir>,
}

impl Sluice {
    /// `sluice serve` with `config` (`listen` is set to an ephemeral port
    /// here; `[plugins] dir` defaults to an empty directory). With
    /// `nofile`, under `ulimit -n` of that many descriptors.
    pub async fn start(config: &str, nofile: Option<u32>) -> Sluice {
        Self::start_with_env(config, nofile, &[]).await
    }

    /// [`Sluice::start`] with extra environment variables for the process.
    pub async fn start_with_env(
        config: &str,
        nofile: Option<u32>,
        env: &[(&str, String)],
    ) -> Sluice {
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
        Self::spawn(&path, nofile, env, Some(dir)).await
    }

    /// `sluice serve --config PATH` on a config file the caller keeps (to
    /// restart on the same data directory); see [`config_file`].
    pub async fn serve(path: &Path) -> Sluice {
        Self::spawn(path, None, &[], None).await
    }

    async fn spawn(
        path: &Path,
        nofile: Option<u32>,
        env: &[(&str, String)],
        dir: Option<TempDir>,
    ) -> Sluice {
        let mut cmd = match nofile {
            // `ulimit -n` sets the soft and the hard limit.
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!(
                        "ulimit -n {n} && exec \"$0\" serve --config \"$1\""
                    ))
                    .arg(BIN)
                    .arg(path);
                c
            }
            None => {
                let mut c = Command::new(BIN);
                c.arg("serve").arg("--config").arg(path);
                c
            }
        };
        // The gateway honours the proxy variables (egress.rs): whatever the
        // test process carries must not send loopback upstreams elsewhere.
        // (`REQUEST_METHOD` marks a CGI environment, where the proxy
        // variables are ignored.)
        for var in ["ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"] {
            cmd.env_remove(var).env_remove(var.to_lowercase());
        }
        cmd.env_remove("REQUEST_METHOD");
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
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
            sink.closed.store(true, Ordering::Release);
            sink.more.notify_waiters();
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
        // `serve` listens first and compiles after; tests start from a
        // loaded gateway.
        s.wait_log(Duration::from_secs(120), |v| message(v) == "plugins ready")
            .await
            .unwrap_or_else(|| panic!("sluice did not load its plugins:\n{}", s.log_text()));
        s
    }

    pub fn v1(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.url)
    }

    pub fn admin(&self, path: &str) -> String {
        format!("{}/admin/{path}", self.url)
    }

    /// The directory holding the config file (`sluice.toml`), `plugins/`
    /// and the default state directory `data/` (for [`Sluice::start`]; none
    /// for [`Sluice::serve`], whose caller keeps its own).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(TempDir::path)
    }

    /// The first log line (JSON) matching `pred`, waiting up to `timeout`
    /// (None at once when the process is gone without it).
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
                if self.logs.closed.load(Ordering::Acquire) {
                    return None;
                }
                more.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
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

    /// SIGKILL: no flush, no shutdown, as a crash.
    pub async fn kill9(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, then the graceful exit; true if it exited 0.
    pub async fn stop(&mut self) -> bool {
        self.signal("TERM");
        let status = self
            .exit_within(Duration::from_secs(120))
            .await
            .expect("sluice did not exit after SIGTERM");
        status.success()
    }
}

/// A JSON log line's message.
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
/// listener on an ephemeral port unless it sets its own, for
/// [`Sluice::serve`].
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
