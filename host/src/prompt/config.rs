//! `[prompts]`: where the prompt registry reads its files and how it
//! follows changes. Every key with its default and its cost.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[prompts]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct PromptsConfig {
    /// Directory of prompt files (`ID.toml`, `ID.yaml` or `ID.yml`, one
    /// prompt each). Relative to the config file's directory. Default unset:
    /// no registry, and a request carrying a `prompt` extension gets a 400.
    pub dir: Option<PathBuf>,
    /// Watch `dir` and reload changed files. Default `true`. A reload parses
    /// and compiles only the directory's text files (microseconds per
    /// template), on the watcher's own thread.
    pub watch: bool,
    /// Quiet time after the last file event before reloading, in ms.
    /// Default `100`: coalesces an editor's write-rename-chmod burst.
    pub debounce_ms: u64,
    /// How often activation records (`sluice prompt activate`, made through
    /// another gateway or straight in a shared Redis state) are re-read, in
    /// ms. Activations made through this gateway's admin API apply at once.
    /// Default `2000`; each refresh is one prefix scan of the state's
    /// `prompts` namespace (off the request path).
    pub refresh_ms: u64,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            watch: true,
            debounce_ms: 100,
            refresh_ms: 2000,
        }
    }
}

impl PromptsConfig {
    /// Make a relative `dir` relative to `base` (the config file's directory).
    pub fn resolve_dir(&mut self, base: &Path) {
        if let Some(dir) = &mut self.dir
            && dir.is_relative()
        {
            *dir = base.join(&*dir);
        }
    }

    pub fn debounce(&self) -> Duration {
        Duration::from_millis(self.debounce_ms)
    }

    pub fn refresh(&self) -> Duration {
        Duration::from_millis(self.refresh_ms)
    }

    /// What `sluice serve` would refuse about `dir` (resolved against the
    /// config file's directory by then): it must be a directory.
    pub fn path_problem(&self) -> Option<String> {
        let dir = self.dir.as_ref()?;
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => None,
            Ok(_) => Some(format!("`{}` is not a directory", dir.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
                "prompt directory `{}` does not exist",
                dir.display()
            )),
            Err(e) => Some(format!("prompt directory `{}`: {e}", dir.display())),
        }
    }

    /// Problems as (key below `prompts`, message) for the config validator.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=60_000).contains(&self.debounce_ms) {
            out.push(("debounce-ms", "must be between 1 and 60000".into()));
        }
        if !(100..=3_600_000).contains(&self.refresh_ms) {
            out.push(("refresh-ms", "must be between 100 and 3600000".into()));
        }
        out
    }
}
