//! Hot reload of the plugin directory (the watch thread is [`crate::watch`]):
//! after `debounce-ms` of quiet it calls [`PluginRuntime::reload`], which
//! compiles and validates off the request path and swaps atomically.
//!
//! Convention for replacing a plugin: write the new file under a hidden or
//! temporary name in the same directory (`.NAME.wasm.tmp`) and `rename` it to
//! `NAME.wasm`; the rename is atomic, so the loader never sees half a file.
//! Editors and `cp` that write in place are coped with: a half-written file
//! fails to compile, the old version keeps serving, and the write's last
//! event (or the retry below) triggers a reload that picks up the full file.
//! `NAME.wasm` is what makes a plugin exist: deleting it removes the plugin
//! from every chain (a leftover `NAME.toml` is ignored). Install a new
//! plugin's `NAME.toml` before its `NAME.wasm`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::loader::plugin_name;
use super::registry::PluginRuntime;
use crate::watch::{self, DirWatch, Spec};

pub(crate) fn start(rt: &Arc<PluginRuntime>) -> notify::Result<DirWatch> {
    let spec = Spec {
        dir: &rt.config().dir,
        name: "plugin",
        debounce: Duration::from_millis(rt.config().debounce_ms),
        relevant: |p: &Path| plugin_name(p).is_some(),
    };
    watch::start(rt, spec, |rt| {
        let report = rt.reload_by(super::history::ReloadTrigger::Watcher).0;
        tracing::info!(
            loaded = ?report.loaded,
            failed = report.failed.len(),
            removed = ?report.removed,
            took_ms = report.took_ms,
            "plugins reloaded"
        );
        !report.failed.is_empty()
    })
}
