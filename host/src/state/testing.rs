//! A real `redis-server` for tests and benchmarks: started on a free
//! loopback port in its own temporary directory, killed by PID on drop.
//! Without `redis-server` installed it panics with the install command, so
//! Redis tests fail loudly instead of being skipped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Guards against a server that neither starts nor exits; a healthy start
/// takes milliseconds, this only stops a hung test.
const START_GUARD: Duration = Duration::from_secs(60);

pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Start a server (persistence off: tests want speed, not durability).
    pub fn start() -> RedisServer {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            panic!(
                "redis-server is not installed, and the Redis tests need a real one: \
                 `apt-get update && apt-get install -y redis-server` (scripts/test does this)"
            );
        }
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let mut last_error = String::new();
        // Another process may take the free port between our probe and the
        // server's bind: then the server exits and we try another port.
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir().join(format!(
                "sluice-redis-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("creating the redis temp dir");
            match spawn(port, &dir) {
                Ok(child) => return RedisServer { child, port, dir },
                Err(line) => last_error = line,
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("redis-server did not start; last log line: {last_error}");
    }

    /// Kill the server (SIGKILL to its PID), as an outage would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kill the server if it runs and start a fresh one on the same port:
    /// empty, as a server without persistence comes back.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.dir)
            .unwrap_or_else(|e| panic!("redis-server did not restart: {e}"));
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // `Child::kill` sends SIGKILL to this PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Start `redis-server` on `port` and wait until it accepts connections;
/// on failure, its last log line.
fn spawn(port: u16, dir: &std::path::Path) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning redis-server");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    // Reads the log until ready, then keeps draining it so the server never
    // blocks on a full pipe.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("Ready to accept connections")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(Ok(()));
            } else if let Some(tx) = &tx {
                let _ = tx.send(Err(line));
            }
        }
    });
    let mut last_error = String::new();
    loop {
        match rx.recv_timeout(START_GUARD) {
            Ok(Ok(())) => return Ok(child),
            Ok(Err(line)) => last_error = line,
            Err(_) => break, // exited (channel closed) or hung
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(last_error)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}
