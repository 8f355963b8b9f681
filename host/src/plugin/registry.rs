//! The serving set and its owner: [`PluginRuntime`] loads the plugin
//! directory into an immutable [`PluginSet`], swaps it in atomically
//! (`arc-swap`; in-flight calls finish on the set they started with), and
//! keeps the status of every plugin, including ones that failed to load.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;

use super::bindings::phase_names;
use super::capability::Grant;
use super::config::PluginsConfig;
use super::engine::{self, SharedEngine};
use super::error::PluginError;
use super::instance::Plugin;
use super::loader::{self, LoadEnv, Sources};
use super::log::escaped;
use super::manifest::{FailureMode, PluginKind};
use super::stats::CallStats;
use super::watcher::Watcher;

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
    /// Contract version of the serving guest's export (`0.2.0`, `0.1.0`).
    pub contract: Option<String>,
    /// The checks a serving guardrail implements (`input`, `output`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<Vec<&'static str>>,
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
    cfg: PluginsConfig,
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
    pub fn start(cfg: PluginsConfig) -> Result<Arc<Self>, PluginError> {
        if !cfg.dir.is_dir() {
            return Err(PluginError::Runtime(format!(
                "plugin directory `{}` does not exist",
                cfg.dir.display()
            )));
        }
        let engine = engine::shared(cfg.engine_settings()).map_err(PluginError::Runtime)?;
        let (tx, rx) = mpsc::channel::<Weak<Plugin>>();
        // Instantiation is async (guest start code runs on a fiber), so the
        // refill thread drives its own small runtime.
        let pool_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PluginError::Runtime(format!("starting the pool runtime: {e}")))?;
        std::thread::Builder::new()
            .name("sluice-plugin-pool".into())
            .spawn(move || {
                for p in rx {
                    if let Some(p) = p.upgrade() {
                        pool_rt.block_on(p.fill_pool());
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

    pub fn config(&self) -> &PluginsConfig {
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
            protected: self.cfg.protected_dirs(),
            baseline: self.cfg.baseline(),
        };
        let max_wasm = self.cfg.max_component_bytes();
        let mut next: BTreeMap<String, Loaded> = BTreeMap::new();
        let mut failed = BTreeMap::new();
        for f in &files {
            let res = Sources::read(f, max_wasm).and_then(|src| {
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
                    tracing::info!(plugin = %f.name, sha256 = %plugin.sha256(), kind = %plugin.kind(), contract = plugin.contract_version(), "plugin loaded");
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
                    tracing::error!(plugin = %f.name, serving_previous, "{}", escaped(&e));
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
                    contract: p.map(|p| p.contract_version().to_owned()),
                    phases: p
                        .filter(|p| p.kind() == PluginKind::Guardrail)
                        .map(|p| phase_names(p.phases())),
                    grants: p.map(|p| p.grants().to_vec()).unwrap_or_default(),
                    stats: p.map(|p| p.stats()).unwrap_or_default(),
                }
            })
            .collect()
    }
}
