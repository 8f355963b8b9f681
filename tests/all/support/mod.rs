//! Helpers shared by the test modules, which import from here and never
//! from each other:
//!
//! - [`plugins`]: plugin directories from the built guests, a runtime over
//!   them, plugin-call inputs.
//! - [`gateway`]: the mock upstream and the gateway, in-process on real sockets.
//! - [`upstream`]: `Providers` against the mock with per-provider faults.
//! - [`http`]: reading answers: OpenAI-shaped errors, SSE events, streamed text.
//! - [`judge`]: a judge upstream whose answers the test scripts (eval runs).
//! - [`prompts`]: a two-version prompt file, `prompt` request bodies.
//! - [`process`]: the real `sluice` binary as a child process (signals,
//!   file limits, exit codes, its JSON log lines, kill -9 and restarts).
//! - [`prom`]: a strict reader of `/metrics` pages.
//! - [`canned`]: an upstream answering with scripted completions and chunks.
//! - [`raw`]: hand-rolled peers over raw TCP: misbehaving upstreams and
//!   clients.
//! - [`fixed`]: a server answering with fixed bodies (exact usage figures,
//!   webhook receivers) and recording what it got.
//! - [`state`]: requests whose accounting a test checks, and their ledger.
//! - [`otlp`]: an OTLP/HTTP trace receiver (what the exporter sent).

pub mod canned;
pub mod fixed;
pub mod gateway;
pub mod http;
pub mod judge;
pub mod logs;
pub mod otlp;
pub mod plugins;
pub mod process;
pub mod prom;
pub mod prompts;
pub mod raw;
pub mod state;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(sluice_guests::WORKSPACE).to_path_buf()
}

/// Polls `cond` until it holds or `timeout` passes; true if it held.
///
/// For state another thread changes without telling anyone (the reload
/// watcher, a pool filling in the background): the condition decides,
/// `timeout` only bounds a hang. The 10 ms between polls is a poll
/// interval, not a wait for something to happen.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Tests with wall-clock bounds hold this (shared) while they measure;
/// tests that load every core on purpose hold it exclusively
/// ([`loading_the_machine`], or as a group [`loading_the_machine_together`]),
/// so the two never overlap in one test run.
pub async fn timing_sensitive() -> tokio::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// See [`timing_sensitive`].
pub async fn loading_the_machine() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// Held by tests that load the machine as a side effect and may run beside
/// each other (guest builds, compiling large components): the first one
/// in takes [`loading_the_machine`] for the group, the last one out lets
/// it go. Timing-sensitive tests wait for the whole group.
pub async fn loading_the_machine_together() -> Together {
    let _one_joiner = JOINING.lock().await;
    {
        let mut group = GROUP.lock().unwrap_or_else(|e| e.into_inner());
        if group.0 > 0 {
            group.0 += 1;
            return Together;
        }
    }
    // Joiners after us wait on `JOINING` until the group holds the lock.
    let exclusive = loading_the_machine().await;
    let mut group = GROUP.lock().unwrap_or_else(|e| e.into_inner());
    *group = (1, Some(exclusive));
    Together
}

/// See [`loading_the_machine_together`]; leaves the group when dropped.
pub struct Together;

impl Drop for Together {
    fn drop(&mut self) {
        let mut group = GROUP.lock().unwrap_or_else(|e| e.into_inner());
        group.0 -= 1;
        if group.0 == 0 {
            group.1 = None;
        }
    }
}

type Group = (usize, Option<tokio::sync::RwLockWriteGuard<'static, ()>>);

static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
static JOINING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static GROUP: std::sync::Mutex<Group> = std::sync::Mutex::new((0, None));
