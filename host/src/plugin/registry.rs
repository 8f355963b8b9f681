//! The serving set and its owner: [`PluginRuntime`] loads the plugin
//! directory into an immutable [`PluginSet`], swaps it in atomically
//! (`arc-swap`; in-flight calls finish on the set they started with), and
//! keeps the status of every plugin, including ones that failed to load.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::capability::{Baseline, Grant};
use super::engine::{self, EngineSettings, SharedEngine};
use super::error::PluginError;
use super::instance::{CallStats, Plugin};
use super::loader::{self, LoadEnv, Sources};
use super::manifest::{FailureMode, PluginKind};
use super::watcher::Watcher;

/// The `[plugins]` section of the gateway config.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RuntimeConfig {
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
    /// long (measured at load); faster plugins instantiate inline on the
    /// calling thread. `0` pools every plugin. Default `250` µs.
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
    /// Refuse every import that the manifest does not grant, inert ones
    /// included: a plugin then loads only with `wasi:cli` / `wasi:io` and
    /// its grants (see `capability.rs`). Default `false`: clocks (1 ms),
    /// random, filesystem without preopens, sockets and http refusing every
    /// address are linked without a grant, so ordinary Python, JavaScript
    /// and C builds load. Costs nothing either way at run time; `true`
    /// means those languages need every such import granted (or stubbed
    /// out at build time, which makes their `print` / `console.log` trap).
    pub strict_imports: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
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
            strict_imports: false,
        }
    }
}

/// An immutable snapshot of the loaded plugins.
#[derive(Debug, Default)]
pub struct PluginSet {
    guardrails: Vec<Arc<Plugin>>,
    routers: Vec<Arc<Plugin>>,
    cost_policies: Vec<Arc<Plugin>>,
    by_name: BTreeMap<String, Arc<Plugin>>,
}

impl PluginSet {
    fn new(plugins: impl IntoIterator<Item = Arc<Plugin>>) -> Self {
        let mut set = PluginSet::default();
        for p in plugins {
            set.by_name.insert(p.name().to_owned(), p);
        }
        let mut all: Vec<_> = set.by_name.values().cloned().collect();
        all.sort_by(|a, b| (a.manifest().order, a.name()).cmp(&(b.manifest().order, b.name())));
        for p in all {
            match p.kind() {
                PluginKind::Guardrail => set.guardrails.push(p),
                PluginKind::Router => set.routers.push(p),
                PluginKind::CostPolicy => set.cost_policies.push(p),
            }
        }
        set
    }
    /// Guardrails ordered by `(order, name)`.
    pub fn guardrails(&self) -> &[Arc<Plugin>] {
        &self.guardrails
    }
    /// Routers ordered by `(order, name)`.
    pub fn routers(&self) -> &[Arc<Plugin>] {
        &self.routers
    }
    /// Cost policies ordered by `(order, name)`.
    pub fn cost_policies(&self) -> &[Arc<Plugin>] {
        &self.cost_policies
    }
    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.by_name.get(name)
    }
    pub fn len(&self) -> usize {
        self.by_name.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// State of one plugin as the operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum PluginState {
    /// Loaded and serving.
    Loaded,
    /// The latest files failed to load. `serving_previous`: an older version
    /// still serves.
    Failed {
        error: String,
        serving_previous: bool,
    },
}

/// One row of `sluice plugin list` / the admin API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PluginStatus {
    pub name: String,
    /// Kind of the serving version (none if nothing serves).
    pub kind: Option<PluginKind>,
    pub order: Option<i64>,
    pub failure_mode: Option<FailureMode>,
    #[serde(flatten)]
    pub state: PluginState,
    /// SHA-256 of the serving `.wasm`.
    pub sha256: Option<String>,
    pub grants: Vec<Grant>,
    pub stats: CallStats,
}

/// What one rescan did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReloadReport {
    /// Newly loaded or replaced plugins.
    pub loaded: Vec<String>,
    /// Of those, the ones whose wasm had to be compiled (not cached).
    pub compiled: Vec<String>,
    /// Same files as before: the existing plugin was kept as is.
    pub unchanged: Vec<String>,
    /// Failed to load, with the error; a previous version keeps serving.
    pub failed: Vec<(String, String)>,
    /// `NAME.wasm` disappeared: left the set.
    pub removed: Vec<String>,
    pub took_ms: u64,
}

struct Loaded {
    plugin: Arc<Plugin>,
    wasm_sha: [u8; 32],
    manifest_sha: [u8; 32],
}

#[derive(Default)]
struct Registry {
    loaded: BTreeMap<String, Loaded>,
}

/// The plugin runtime. Always used as `Arc<PluginRuntime>`.
pub struct PluginRuntime {
    cfg: RuntimeConfig,
    engine: Arc<SharedEngine>,
    set: ArcSwap<PluginSet>,
    /// Serialises reloads; never held by calls.
    registry: Mutex<Registry>,
    refill: Sender<Weak<Plugin>>,
    watcher: Mutex<Option<Watcher>>,
    last_reload: Mutex<ReloadReport>,
    /// Latest load error per plugin, published with the set so `statuses`
    /// never waits on a reload in progress.
    failed: ArcSwap<BTreeMap<String, String>>,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl PluginRuntime {
    /// Engine + epoch ticker + refill thread + initial load (+ watcher when
    /// `cfg.watch`). A plugin that fails to load is a status, not an error;
    /// only an unusable engine or directory is.
    pub fn start(cfg: RuntimeConfig) -> Result<Arc<Self>, PluginError> {
        if !cfg.dir.is_dir() {
            return Err(PluginError::Runtime(format!(
                "plugin directory `{}` does not exist",
                cfg.dir.display()
            )));
        }
        let engine = engine::shared(EngineSettings {
            fuel: cfg.fuel,
            max_instances: cfg.max_instances,
            max_memory_mb: cfg.max_memory_mb,
        })
        .map_err(PluginError::Runtime)?;
        let (tx, rx) = mpsc::channel::<Weak<Plugin>>();
        std::thread::Builder::new()
            .name("sluice-plugin-pool".into())
            .spawn(move || {
                for p in rx {
                    if let Some(p) = p.upgrade() {
                        p.fill_pool();
                    }
                }
            })
            .map_err(|e| PluginError::Runtime(format!("spawning the pool thread: {e}")))?;
        let rt = Arc::new(PluginRuntime {
            cfg,
            engine,
            set: ArcSwap::from_pointee(PluginSet::default()),
            registry: Mutex::new(Registry::default()),
            refill: tx,
            watcher: Mutex::new(None),
            last_reload: Mutex::default(),
            failed: ArcSwap::from_pointee(BTreeMap::new()),
        });
        rt.reload();
        if rt.cfg.watch {
            let w = Watcher::start(&rt)
                .map_err(|e| PluginError::Runtime(format!("watching plugins: {e}")))?;
            *rt.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(w);
        }
        Ok(rt)
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    /// Lock-free snapshot of the serving set.
    pub fn current(&self) -> Arc<PluginSet> {
        self.set.load_full()
    }

    /// Rescan the directory now and swap in the result. Unchanged plugins
    /// (same wasm and manifest hash) are kept as they are; one that fails
    /// keeps its previous version serving.
    pub fn reload(&self) -> ReloadReport {
        let start = Instant::now();
        let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let mut report = ReloadReport::default();
        let files = match loader::scan(&self.cfg.dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(dir = %self.cfg.dir.display(), "plugin directory unreadable, keeping the current set: {e}");
                report.failed.push(("*".into(), e.to_string()));
                return report;
            }
        };
        let env = LoadEnv {
            engine: &self.engine,
            cache_dir: self.cfg.cache_dir.as_deref(),
            max_memory_mb: self.cfg.max_memory_mb,
            pool_size: self.cfg.pool_size,
            pool_threshold: Duration::from_micros(self.cfg.pool_threshold_us),
            stdio_cap: self.cfg.log_capture_bytes,
            refill: Some(self.refill.clone()),
            baseline: Baseline::from_strict_imports(self.cfg.strict_imports),
        };
        let mut next: BTreeMap<String, Loaded> = BTreeMap::new();
        let mut failed = BTreeMap::new();
        for f in &files {
            let res = Sources::read(f).and_then(|src| {
                if let Some(old) = reg.loaded.get(&f.name)
                    && old.wasm_sha == src.wasm_sha
                    && old.manifest_sha == src.manifest_sha
                {
                    return Ok((None, src));
                }
                let (plugin, compiled) = loader::load(&env, f, &src)?;
                Ok((Some((plugin, compiled)), src))
            });
            match res {
                Ok((None, _)) => {
                    report.unchanged.push(f.name.clone());
                    let old = reg.loaded.remove(&f.name).expect("checked above");
                    next.insert(f.name.clone(), old);
                }
                Ok((Some((plugin, compiled)), src)) => {
                    // The old version (if any) is replaced, not removed.
                    reg.loaded.remove(&f.name);
                    tracing::info!(plugin = %f.name, sha256 = %plugin.sha256(), kind = %plugin.kind(), "plugin loaded");
                    report.loaded.push(f.name.clone());
                    if compiled {
                        report.compiled.push(f.name.clone());
                    }
                    next.insert(
                        f.name.clone(),
                        Loaded {
                            plugin,
                            wasm_sha: src.wasm_sha,
                            manifest_sha: src.manifest_sha,
                        },
                    );
                }
                Err(e) => {
                    let serving_previous = reg.loaded.contains_key(&f.name);
                    tracing::error!(plugin = %f.name, serving_previous, "{e}");
                    report.failed.push((f.name.clone(), e.to_string()));
                    failed.insert(f.name.clone(), e.to_string());
                    if let Some(old) = reg.loaded.remove(&f.name) {
                        next.insert(f.name.clone(), old);
                    }
                }
            }
        }
        for name in std::mem::take(&mut reg.loaded).into_keys() {
            tracing::info!(plugin = %name, "plugin removed");
            report.removed.push(name);
        }
        self.set.store(Arc::new(PluginSet::new(
            next.values().map(|l| l.plugin.clone()),
        )));
        for l in next.values() {
            if report.loaded.iter().any(|n| n == l.plugin.name()) {
                l.plugin.request_refill();
            }
        }
        reg.loaded = next;
        self.failed.store(Arc::new(failed));
        report.took_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()) = report.clone();
        report
    }

    /// What the most recent reload (initial load, watcher, or [`Self::reload`]) did.
    pub fn last_reload(&self) -> ReloadReport {
        self.last_reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every plugin in the directory: serving ones with their counters, and
    /// ones whose latest files failed to load.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        let set = self.current();
        let failed = self.failed.load();
        let mut names: Vec<&String> = set.by_name.keys().chain(failed.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let p = set.by_name.get(name);
                let state = match failed.get(name) {
                    Some(error) => PluginState::Failed {
                        error: error.clone(),
                        serving_previous: p.is_some(),
                    },
                    None => PluginState::Loaded,
                };
                PluginStatus {
                    name: name.clone(),
                    kind: p.map(|p| p.kind()),
                    order: p.map(|p| p.manifest().order),
                    failure_mode: p.map(|p| p.manifest().failure_mode),
                    state,
                    sha256: p.map(|p| p.sha256().to_owned()),
                    grants: p.map(|p| p.grants().to_vec()).unwrap_or_default(),
                    stats: p.map(|p| p.stats()).unwrap_or_default(),
                }
            })
            .collect()
    }
}
