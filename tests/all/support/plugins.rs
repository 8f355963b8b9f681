//! Plugin directories laid out from the built guests ([`sluice_guests`]),
//! a runtime over them, and the inputs of a plugin call.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::path::Path;
use std::sync::Arc;

use sluice::plugin::{
    Message, OutputContext, OutputPart, Plugin, PluginFailure, PluginRuntime, PluginsConfig,
    RequestInfo, Verdict,
};
use sluice_guests::Guest;
use tempfile::TempDir;

/// A directory with `PKG.wasm` + `PKG.toml` for each `(guest, manifest)`,
/// the plugin named after the guest's package.
pub fn plugin_dir(plugins: &[(Guest, &str)]) -> TempDir {
    let named: Vec<(&str, Guest, &str)> =
        plugins.iter().map(|(g, t)| (g.package, *g, *t)).collect();
    plugin_dir_named(&named)
}

/// Like [`plugin_dir`] with an explicit plugin name: `(name, guest, manifest)`.
pub fn plugin_dir_named(plugins: &[(&str, Guest, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, guest, toml) in plugins {
        std::fs::copy(guest.wasm, dir.path().join(format!("{name}.wasm"))).unwrap();
        std::fs::write(dir.path().join(format!("{name}.toml")), toml).unwrap();
    }
    dir
}

/// A directory with the first-party plugins `guests`, each with its
/// committed manifest `plugins/NAME/NAME.toml`.
pub fn first_party_dir(guests: &[Guest]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for g in guests {
        let manifest = g
            .manifest
            .unwrap_or_else(|| panic!("{} is not a first-party plugin", g.package));
        std::fs::copy(g.wasm, dir.path().join(format!("{}.wasm", g.package))).unwrap();
        std::fs::copy(manifest, dir.path().join(format!("{}.toml", g.package))).unwrap();
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

/// A plugin with its runtime and directory (keep all three alive).
pub type Loaded = (TempDir, Arc<PluginRuntime>, Arc<Plugin>);

/// `guest` alone in a runtime, loaded with `manifest`.
pub fn load(guest: Guest, manifest: &str) -> Loaded {
    loaded(plugin_dir(&[(guest, manifest)]), guest.package)
}

/// First-party `guest` alone in a runtime, with its committed manifest.
pub fn load_first_party(guest: Guest) -> Loaded {
    loaded(first_party_dir(&[guest]), guest.package)
}

fn loaded(dir: TempDir, name: &str) -> Loaded {
    let rt = runtime(dir.path());
    let p = rt
        .current()
        .get(name)
        .unwrap_or_else(|| panic!("{name} not loaded: {:?}", rt.statuses()))
        .clone();
    (dir, rt, p)
}

/// A plain text message.
pub fn message(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
        name: None,
        tool_calls: vec![],
        tool_call_id: None,
    }
}

/// A chat request for `test-model` whose last user message is `text`.
pub fn request(text: &str) -> Arc<RequestInfo> {
    Arc::new(request_info(text))
}

/// [`request`] before it is shared, to change a field.
pub fn request_info(text: &str) -> RequestInfo {
    RequestInfo {
        id: "req-test".into(),
        model: "test-model".into(),
        messages: vec![message("system", "be nice"), message("user", text)],
        ..RequestInfo::default()
    }
}

/// Context of a whole, non-streamed answer (choice 0's content).
pub fn whole() -> OutputContext {
    window("", 0, true)
}

/// Context of stream window `index` of choice 0's content.
pub fn window(emitted: &str, index: u32, is_final: bool) -> OutputContext {
    OutputContext {
        emitted: emitted.into(),
        window_index: index,
        is_final,
        choice: 0,
        part: OutputPart::Content,
    }
}

/// The rejection code of `v` (empty unless it rejects).
pub fn code(v: &Verdict) -> &str {
    match v {
        Verdict::Reject(r) => &r.code,
        _ => "",
    }
}

/// The verdict of a plugin call that must not fail.
pub fn verdict(r: Result<Verdict, PluginFailure>) -> Verdict {
    r.unwrap_or_else(|f| panic!("plugin call failed: {f}"))
}
