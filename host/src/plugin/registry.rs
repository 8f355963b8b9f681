//! The serving set and its owner: [`PluginRuntime`] loads the plugin
//! directory into an immutable [`PluginSet`], swaps it in atomically
//! (`arc-swap`; in-flight calls finish on the set they started with), and
//! keeps the status of every plugin, including ones that failed to load.
//!
//! The first load can be deferred ([`PluginRuntime::new`] then
//! [`PluginRuntime::initial_load`]) so the server answers `/healthz` and a
//! not-ready `/readyz` while plugins compile. Every load compiles the
//! plugins that changed in parallel, one per core ([`load_all`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;

use tokio::sync::watch;

use super::bindings::phase_names;
use super::cache::DiskCache;
use super::capability::Grant;
use super::config::PluginsConfig;
use super::engine::{self, SharedEngine};
use super::error::PluginError;
use super::history::{History, ReloadEvent, ReloadTrigger};
use super::instance::Plugin;
use super::loader::{self, LoadEnv, PluginFiles, Sources};
use super::log::escaped;
use super::manifest::{FailureMode, Isolation, PluginKind};
use super::stats::CallStats;
use super::watcher;
use crate::watch::DirWatch;

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
    /// Every plugin, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.by_name.values()
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
    /// `fresh` (an instance per call) or `reused` (weakened isolation:
    /// `limits.calls-per-instance` > 1) for the serving version.
    pub isolation: Option<Isolation>,
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
    watcher: Mutex<Option<DirWatch>>,
    last_reload: Mutex<ReloadReport>,
    /// Latest load error per plugin, published with the set so `statuses`
    /// never waits on a reload in progress.
    failed: ArcSwap<BTreeMap<String, String>>,
    /// `cache-dir`, once checked (none: unset, or unusable and said so).
    disk: Option<DiskCache>,
    /// Whether the initial load has finished.
    ready: watch::Sender<bool>,
    /// Plugin versions loaded and plugin loads failed, over every rescan.
    reloads: [AtomicU64; 2],
    /// The latest rescans (admin API, dashboard).
    history: History,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl PluginRuntime {
    /// [`Self::new`] then [`Self::initial_load`]: returns once every
    /// plugin in the directory has been loaded or has failed to. A plugin
    /// that fails to load is a status, not an error; only an unusable
    /// engine or directory is.
    pub fn start(cfg: PluginsConfig) -> Result<Arc<Self>, PluginError> {
        let rt = Self::new(cfg)?;
        rt.initial_load()?;
        Ok(rt)
    }

    /// Engine + epoch ticker + refill thread + the compile cache directory
    /// (created `0700`; an unusable one is logged and skipped), with no
    /// plugin loaded yet and [`Self::is_ready`] false.
    pub fn new(cfg: PluginsConfig) -> Result<Arc<Self>, PluginError> {
        if !cfg.dir.is_dir() {
            return Err(PluginError::Runtime(format!(
                "plugin directory `{}` does not exist",
                cfg.dir.display()
            )));
        }
        let engine = engine::shared(cfg.engine_settings()).map_err(PluginError::Runtime)?;
        let disk = cfg.cache_dir.as_deref().and_then(|d| {
            DiskCache::open(d)
                .inspect_err(|e| {
                    tracing::warn!("compile cache disabled, every start compiles: {e}");
                })
                .ok()
        });
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
        Ok(Arc::new(PluginRuntime {
            cfg,
            engine,
            set: ArcSwap::from_pointee(PluginSet::default()),
            registry: Mutex::new(Registry::default()),
            refill: tx,
            watcher: Mutex::new(None),
            last_reload: Mutex::default(),
            failed: ArcSwap::from_pointee(BTreeMap::new()),
            disk,
            ready: watch::Sender::new(false),
            reloads: Default::default(),
            history: History::default(),
        }))
    }

    /// Watch the directory (when `watch`), load it, and mark the runtime
    /// ready. CPU-bound (compiles): run it off the async workers. The
    /// watcher starts first so a file that changes during a long compile
    /// is reloaded afterwards, not missed.
    pub fn initial_load(self: &Arc<Self>) -> Result<ReloadReport, PluginError> {
        if self.cfg.watch {
            let w = watcher::start(self)
                .map_err(|e| PluginError::Runtime(format!("watching plugins: {e}")))?;
            *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(w);
        }
        let report = self.reload_by(ReloadTrigger::Initial).0;
        // Ready before the log line says so: whoever reads it may probe.
        self.ready.send_replace(true);
        tracing::info!(
            loaded = report.loaded.len(),
            compiled = report.compiled.len(),
            failed = report.failed.len(),
            took_ms = report.took_ms,
            "plugins ready"
        );
        Ok(report)
    }

    /// Whether the initial load has finished (failed plugins included).
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once the initial load has finished.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        // Err only if the sender is gone, and `self` holds it.
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// The compile cache directory in use, if any.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.disk.as_ref().map(DiskCache::dir)
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
        self.reload_by(ReloadTrigger::Api).0
    }

    /// [`Self::reload`], recorded in the history as started by `trigger`;
    /// also returns that history entry (what changed).
    pub fn reload_by(&self, trigger: ReloadTrigger) -> (ReloadReport, ReloadEvent) {
        let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let before: BTreeSet<String> = reg.loaded.keys().cloned().collect();
        let report = self.rescan(&mut reg);
        let event = self
            .history
            .push(ReloadEvent::new(trigger, &before, &report));
        (report, event)
    }

    /// The latest reloads, newest first (at most [`super::history::KEEP`]).
    pub fn reload_history(&self) -> Vec<ReloadEvent> {
        self.history.list()
    }

    /// The latest reload's sequence number (0 before any), changing with
    /// every reload: wait on it instead of polling.
    pub fn reload_events(&self) -> watch::Receiver<u64> {
        self.history.subscribe()
    }

    fn rescan(&self, reg: &mut Registry) -> ReloadReport {
        let start = Instant::now();
        let mut report = ReloadReport::default();
        let files = match loader::scan(&self.cfg.dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(dir = %self.cfg.dir.display(), "plugin directory unreadable, keeping the current set: {e}");
                report.failed.push(("*".into(), e.to_string()));
                self.reloads[1].fetch_add(1, Ordering::Relaxed);
                return report;
            }
        };
        let env = LoadEnv {
            engine: &self.engine,
            disk: self.disk.as_ref(),
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
        let previous = &reg.loaded;
        let results = load_all(&files, |f| {
            Sources::read(f, max_wasm).and_then(|src| {
                if let Some(old) = previous.get(&f.name)
                    && old.wasm_sha == src.wasm_sha
                    && old.manifest_sha == src.manifest_sha
                {
                    return Ok((None, src));
                }
                let (plugin, compiled) = loader::load(&env, f, &src)?;
                Ok((Some((plugin, compiled)), src))
            })
        });
        for (f, res) in files.iter().zip(results) {
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
        self.reloads[0].fetch_add(report.loaded.len() as u64, Ordering::Relaxed);
        self.reloads[1].fetch_add(report.failed.len() as u64, Ordering::Relaxed);
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()) = report.clone();
        report
    }

    /// `(loaded, failed)`: plugin versions swapped in and plugin loads that
    /// failed, over every rescan since start (the initial load included).
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads[0].load(Ordering::Relaxed),
            self.reloads[1].load(Ordering::Relaxed),
        )
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
                    isolation: p.map(|p| p.manifest().isolation()),
                    stats: p.map(|p| p.stats()).unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// `load` over every file, on up to one thread per core (compiling is
/// CPU-bound; wasmtime also spreads each component's functions over its
/// own thread pool, so this mostly overlaps the serial parts: parsing,
/// deserializing cached artifacts, smoke tests). Results in `files` order.
/// Peak memory grows with the number of components compiled at once.
fn load_all<R: Send>(files: &[PluginFiles], load: impl Fn(&PluginFiles) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(files.len());
    if workers <= 1 {
        return files.iter().map(&load).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(f) = files.get(i) else { break };
                        done.push((i, load(f)));
                    }
                    done
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}
