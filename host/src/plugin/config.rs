//! `[plugins]`: the plugin runtime's settings, every key with its default
//! and what it costs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::capability::Baseline;
use super::engine::EngineSettings;

/// The `[plugins]` section of the gateway config.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct PluginsConfig {
    /// Directory of `NAME.wasm` + `NAME.toml` pairs. Default `plugins`.
    pub dir: PathBuf,
    /// Watch `dir` and hot-reload on change. Default `true`.
    pub watch: bool,
    /// Quiet time after the last file event before reloading, in ms.
    /// Default `100`: long enough to coalesce a copy, short enough that a
    /// new version serves well within half a second.
    pub debounce_ms: u64,
    /// Ready (pre-instantiated) instances kept for each *heavy* plugin (see
    /// `pool-threshold-us`), refilled in the background; `0` disables pools.
    /// Each costs one pooling-allocator slot and the guest's initial memory.
    /// Default `2`.
    pub pool_size: usize,
    /// A plugin gets a pool only when instantiating it takes at least this
    /// long (measured at load); faster plugins instantiate in the calling
    /// task. `0` pools every plugin. Default `250` µs.
    ///
    /// Why not pool everything: a small Rust guardrail instantiates in
    /// ~20 µs, cache-hot, on the thread that needs it, and that work scales
    /// with request concurrency. A pool only moves the same work to one
    /// refill thread, adds a wake-up per refill and hands over a cache-cold
    /// instance; measured on 2 cores it made such a call slower
    /// (bench/README.md). Interpreted guests (Python ~2 ms, JS ~150 µs+)
    /// are the opposite case: moving their start-up off the request path is
    /// worth the thread.
    pub pool_threshold_us: u64,
    /// Where compiled artifacts are cached by content hash, so restarts
    /// skip compilation. Default: none (compile on every start).
    pub cache_dir: Option<PathBuf>,
    /// Concurrent instances across all plugins (pooled + in use); sizes the
    /// pooling allocator's reserved address space. Default `1000`.
    pub max_instances: u32,
    /// The largest `limits.memory-mb` a manifest may ask for; sizes each
    /// memory slot. Default `512`.
    pub max_memory_mb: u64,
    /// Meter guest instructions so `limits.fuel` is enforced. Costs roughly
    /// 10-30 % guest speed, so off by default (the deadline still applies).
    pub fuel: bool,
    /// Bytes of each call's stdout and stderr kept for the log. Default `16384`.
    pub log_capture_bytes: usize,
    /// Largest `NAME.wasm` the loader reads, in MiB; a bigger file fails to
    /// load without being read. Each load holds the whole file in memory
    /// and hashes it. Default `128` (a componentize-py guest is ~40 MiB).
    pub max_component_mb: u64,
    /// Refuse every import that the manifest does not grant, inert ones
    /// included: a plugin then loads only with `wasi:cli` / `wasi:io` and
    /// its grants (see `capability.rs`). Default `false`: clocks (1 ms),
    /// random, filesystem without preopens, sockets and http refusing every
    /// address are linked without a grant, so ordinary Python, JavaScript
    /// and C builds load. Costs nothing either way at run time; `true`
    /// means those languages need every such import granted (or stubbed
    /// out at build time, which makes their `print` / `console.log` trap).
    pub strict_imports: bool,
    /// The gateway's own directories besides `dir` and `cache-dir` (the
    /// config file's directory, data directories), which no plugin's files
    /// grant may expose without `acknowledge-sensitive`. Not a config key:
    /// filled in by `Config::load`.
    #[serde(skip)]
    pub gateway_dirs: Vec<PathBuf>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: PathBuf::from("plugins"),
            watch: true,
            debounce_ms: 100,
            pool_size: 2,
            pool_threshold_us: 250,
            cache_dir: None,
            max_instances: 1000,
            max_memory_mb: 512,
            fuel: false,
            log_capture_bytes: 16 * 1024,
            max_component_mb: 128,
            strict_imports: false,
            gateway_dirs: Vec::new(),
        }
    }
}

impl PluginsConfig {
    /// Every directory of the gateway's own: the plugin directory, the
    /// compile cache and [`PluginsConfig::gateway_dirs`].
    pub fn protected_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.dir.clone()];
        dirs.extend(self.cache_dir.clone());
        dirs.extend(self.gateway_dirs.iter().cloned());
        dirs
    }

    /// Which interfaces load without a grant (`strict-imports`).
    pub fn baseline(&self) -> Baseline {
        Baseline::from_strict_imports(self.strict_imports)
    }

    /// `max-component-mb` in bytes.
    pub(crate) fn max_component_bytes(&self) -> u64 {
        self.max_component_mb.saturating_mul(1 << 20)
    }

    /// Problems with the values, each with its key (empty when fine). The
    /// file system is not looked at; see [`PluginsConfig::path_problems`].
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.max_instances == 0 {
            out.push(("max-instances", "must be at least 1".to_string()));
        }
        // A wasm32 memory cannot grow past 4 GiB.
        if !(1..=4096).contains(&self.max_memory_mb) {
            out.push(("max-memory-mb", "must be between 1 and 4096".to_string()));
        }
        if self.max_component_mb == 0 {
            out.push(("max-component-mb", "must be at least 1".to_string()));
        }
        out
    }

    /// What the plugin runtime would refuse about the paths: `dir` must be
    /// a readable directory, `cache-dir` a directory if it exists (it is
    /// created on first use otherwise). Relative paths are resolved against
    /// the working directory, as the runtime does.
    pub fn path_problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let shown = self.dir.display();
        match std::fs::metadata(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(("dir", format!("plugin directory `{shown}` does not exist")));
            }
            Err(e) => out.push(("dir", format!("plugin directory `{shown}`: {e}"))),
            Ok(m) if !m.is_dir() => out.push((
                "dir",
                format!("`{shown}` is {}, not a directory", file_kind(&m)),
            )),
            Ok(_) => {
                if let Err(e) = std::fs::read_dir(&self.dir) {
                    out.push((
                        "dir",
                        format!("plugin directory `{shown}` cannot be read: {e}"),
                    ));
                }
            }
        }
        if let Some(cache) = &self.cache_dir
            && let Ok(m) = std::fs::metadata(cache)
            && !m.is_dir()
        {
            out.push((
                "cache-dir",
                format!(
                    "`{}` is {}, not a directory",
                    cache.display(),
                    file_kind(&m)
                ),
            ));
        }
        out
    }

    /// What shapes the wasmtime engine (runtimes with equal settings share one).
    pub(crate) fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            fuel: self.fuel,
            max_instances: self.max_instances,
            max_memory_mb: self.max_memory_mb,
        }
    }
}

/// "a regular file", "a symbolic link"… for messages about a path.
fn file_kind(m: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        if t.is_socket() {
            return "a socket";
        }
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if m.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_imports_is_off_by_default_and_picks_the_baseline() {
        let default: PluginsConfig = toml::from_str("").unwrap();
        assert_eq!(default.baseline(), Baseline::WithInert);
        let strict: PluginsConfig = toml::from_str("strict-imports = true").unwrap();
        assert_eq!(strict.baseline(), Baseline::Strict);
    }
}
