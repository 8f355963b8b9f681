//! Hot reload of prompt files (the watch thread is [`crate::watch`]): after
//! `debounce-ms` of quiet it calls [`Prompts::reload`], which parses and
//! validates every changed file and swaps the set atomically; a broken file
//! keeps its previous version serving.
//!
//! Safe edits: write `.ID.toml.tmp` (hidden files are ignored) and rename
//! it to `ID.toml`. Editors that write in place are coped with: a
//! half-written file fails to parse, the old version keeps serving, and the
//! write's last event (or the retry below) reloads the whole file.

use std::path::Path;
use std::sync::Arc;

use super::file::prompt_id;
use super::registry::Prompts;
use crate::watch::{self, DirWatch, Spec};

pub(crate) fn start(p: &Arc<Prompts>) -> notify::Result<DirWatch> {
    let spec = Spec {
        dir: p.dir(),
        name: "prompt",
        debounce: p.config().debounce(),
        relevant: |path: &Path| prompt_id(path).is_some(),
    };
    watch::start(p, spec, |p| {
        let report = p.reload();
        tracing::info!(
            loaded = ?report.loaded,
            failed = report.failed.len(),
            removed = ?report.removed,
            took_ms = report.took_ms,
            "prompts reloaded"
        );
        !report.failed.is_empty()
    })
}
