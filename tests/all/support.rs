//! Shared helpers: build the guest components from source (once per test
//! process), lay out plugin directories, make requests.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sluice::plugin::{
    Message, OutputContext, PluginFailure, PluginRuntime, PluginsConfig, RequestInfo, Verdict,
};
use tempfile::TempDir;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn build_guests(pkgs: &[String]) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root()).args([
        "build",
        "--profile",
        "guest",
        "--target",
        "wasm32-wasip2",
        "--target-dir",
        "target/guests",
    ]);
    for p in pkgs {
        cmd.args(["-p", p]);
    }
    cmd.status().is_ok_and(|s| s.success())
}

/// Package names of every guest crate (first-party plugins and test guests).
fn guest_packages() -> Vec<String> {
    let mut pkgs = Vec::new();
    for dir in ["plugins", "tests/plugins"] {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(toml) = std::fs::read_to_string(e.path().join("Cargo.toml")) else {
                continue;
            };
            let name = toml.lines().find_map(|l| {
                let v = l.trim().strip_prefix("name")?.trim().strip_prefix('=')?;
                Some(v.trim().trim_matches('"').to_owned())
            });
            pkgs.extend(name);
        }
    }
    pkgs.sort();
    pkgs
}

/// The `.wasm` of guest package `pkg`, after building all guests once per
/// process (`--target-dir target/guests`, so it does not wait on the outer
/// cargo's lock).
pub fn guest_wasm(pkg: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let pkgs = guest_packages();
        if !build_guests(&pkgs) {
            // One broken crate must not take every test down: build the
            // rest one by one; `guest_wasm` then fails only for the broken one.
            eprintln!("building all guests failed; retrying package by package");
            for p in &pkgs {
                build_guests(std::slice::from_ref(p));
            }
        }
    });
    let path = root()
        .join("target/guests/wasm32-wasip2/guest")
        .join(format!("{}.wasm", pkg.replace('-', "_")));
    assert!(path.is_file(), "no guest component at {}", path.display());
    path
}

/// A directory with `PKG.wasm` + `PKG.toml` for each `(pkg, manifest)`.
pub fn plugin_dir(plugins: &[(&str, &str)]) -> TempDir {
    let named: Vec<(&str, &str, &str)> = plugins.iter().map(|(p, t)| (*p, *p, *t)).collect();
    plugin_dir_named(&named)
}

/// Like [`plugin_dir`] with an explicit plugin name: `(name, pkg, manifest)`.
pub fn plugin_dir_named(plugins: &[(&str, &str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, pkg, toml) in plugins {
        std::fs::copy(guest_wasm(pkg), dir.path().join(format!("{name}.wasm"))).unwrap();
        std::fs::write(dir.path().join(format!("{name}.toml")), toml).unwrap();
    }
    dir
}

/// A directory with the first-party plugins `names`, each with its
/// committed `plugins/NAME/NAME.toml`.
pub fn first_party_dir(names: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::copy(guest_wasm(name), dir.path().join(format!("{name}.wasm"))).unwrap();
        std::fs::copy(
            root()
                .join("plugins")
                .join(name)
                .join(format!("{name}.toml")),
            dir.path().join(format!("{name}.toml")),
        )
        .unwrap();
    }
    dir
}

/// A runtime over `dir` without the watcher.
pub fn runtime(dir: &Path) -> Arc<PluginRuntime> {
    PluginRuntime::start(PluginsConfig {
        dir: dir.to_path_buf(),
        watch: false,
        // Pool every plugin, so tests exercise pooled instances too.
        pool_size: 1,
        pool_threshold_us: 0,
        ..PluginsConfig::default()
    })
    .unwrap()
}

/// A chat request whose last user message is `text`.
pub fn request(text: &str) -> RequestInfo {
    RequestInfo {
        id: "req-test".into(),
        user: None,
        api_key_id: None,
        feature: None,
        tags: vec![],
        model: "test-model".into(),
        messages: vec![
            Message {
                role: "system".into(),
                content: "be nice".into(),
            },
            Message {
                role: "user".into(),
                content: text.into(),
            },
        ],
        max_tokens: None,
        temperature: None,
        stream: false,
    }
}

/// Context of a whole, non-streamed answer.
pub fn whole() -> OutputContext {
    OutputContext {
        emitted: String::new(),
        window_index: 0,
        is_final: true,
    }
}

/// Poll `cond` every 10 ms until it holds or `timeout` passes.
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

/// The verdict of a plugin call that must not fail.
pub fn verdict(r: Result<Verdict, PluginFailure>) -> Verdict {
    r.unwrap_or_else(|f| panic!("plugin call failed: {f}"))
}

/// Tests with wall-clock bounds hold this (shared) while they measure;
/// tests that load every core on purpose hold it exclusively
/// ([`loading_the_machine`]), so the two never overlap in one test run.
pub async fn timing_sensitive() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// See [`timing_sensitive`].
pub async fn loading_the_machine() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

static MACHINE: RwLock<()> = RwLock::const_new(());
