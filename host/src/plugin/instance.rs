//! A loaded plugin and how it is called: a fresh instance per call, taken
//! from a small pool of pre-instantiated stores that a background thread
//! refills (or instantiated inline when the pool is empty), with the sandbox
//! armed for exactly that call, the answer size-checked, and per-plugin
//! counters kept for status and metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use serde::Serialize;
use wasmtime::Store;

use super::bindings::cost_policy::{CostPolicyPlugin, CostPolicyPluginPre};
use super::bindings::guardrail::{GuardrailPlugin, GuardrailPluginPre};
use super::bindings::router::{RouterPlugin, RouterPluginPre};
use super::bindings::types::{
    Candidate, Decision, Estimate, OutputContext, Rejection, RequestInfo, Route, Spend, Verdict,
};
use super::blocking::{self, InlineState};
use super::capability::Grant;
use super::engine::SharedEngine;
use super::error::PluginFailure;
use super::host_state::{HostState, PluginContext};
use super::manifest::{FailureMode, Manifest, PluginKind};
use super::sandbox;

/// The instance-pre of a plugin, typed by its world.
pub(crate) enum Pre {
    Guardrail(GuardrailPluginPre<HostState>),
    Router(RouterPluginPre<HostState>),
    CostPolicy(CostPolicyPluginPre<HostState>),
}

enum Exports {
    Guardrail(GuardrailPlugin),
    Router(RouterPlugin),
    CostPolicy(CostPolicyPlugin),
}

/// A store with an instance in it, ready for exactly one call.
struct Ready {
    store: Store<HostState>,
    exports: Exports,
}

/// Result of a guardrail check.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The guest's verdict, or the failure mode's answer when `failure` is set
    /// (`closed` => `Reject { code: "plugin_failure" }`, `open` => `Pass`).
    pub verdict: Verdict,
    pub failure: Option<PluginFailure>,
    /// Wall time of the call, instantiation included.
    pub elapsed: Duration,
}

/// Call counters of one plugin version (a reload starts from zero).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CallStats {
    pub calls: u64,
    pub failures: u64,
    pub traps: u64,
    pub deadlines: u64,
    pub memory: u64,
    pub fuel: u64,
    pub output_too_large: u64,
    pub instantiate: u64,
    /// Sum of call wall times, in microseconds.
    pub total_time_us: u64,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    by_kind: [AtomicU64; 6],
    total_ns: AtomicU64,
}

/// A loaded, validated plugin. Cheap to share (`Arc<Plugin>`); every method
/// is synchronous, blocks at most the plugin's deadline (plus instantiation
/// when the pool is empty) and never panics.
///
/// Calls may come from any thread, tokio workers included (see `blocking`).
pub struct Plugin {
    pub(crate) ctx: Arc<PluginContext>,
    kind: PluginKind,
    sha256: String,
    grants: Vec<Grant>,
    pre: Pre,
    engine: Arc<SharedEngine>,
    pool: ArrayQueue<Ready>,
    /// Ready instances to keep: 0 (inline instantiation) until the loader
    /// finds the guest heavy enough to pool (`enable_pool`).
    pool_target: AtomicUsize,
    pool_size: usize,
    refill: Option<Sender<Weak<Plugin>>>,
    refill_pending: AtomicBool,
    me: Weak<Plugin>,
    counters: Counters,
    inline: InlineState,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.ctx.name)
            .field("kind", &self.kind)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// What the loader hands over to build a [`Plugin`].
pub(crate) struct PluginParts {
    pub ctx: Arc<PluginContext>,
    pub sha256: String,
    pub grants: Vec<Grant>,
    pub pre: Pre,
    pub engine: Arc<SharedEngine>,
    pub pool_size: usize,
    pub refill: Option<Sender<Weak<Plugin>>>,
}

impl Plugin {
    pub(crate) fn new(p: PluginParts) -> Arc<Plugin> {
        let kind = p.ctx.manifest.kind;
        // A retried inline attempt must have had no effect outside its store.
        let side_effects = p
            .grants
            .iter()
            .any(|g| matches!(g, Grant::Files | Grant::Http | Grant::Sockets));
        Arc::new_cyclic(|me| Plugin {
            inline: InlineState::new(!side_effects),
            ctx: p.ctx,
            kind,
            sha256: p.sha256,
            grants: p.grants,
            pre: p.pre,
            engine: p.engine,
            pool: ArrayQueue::new(p.pool_size.max(1)),
            pool_target: AtomicUsize::new(0),
            pool_size: p.pool_size,
            refill: p.refill,
            refill_pending: AtomicBool::new(false),
            me: me.clone(),
            counters: Counters::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.ctx.name
    }
    pub fn kind(&self) -> PluginKind {
        self.kind
    }
    pub fn manifest(&self) -> &Manifest {
        &self.ctx.manifest
    }
    /// Hex SHA-256 of the `.wasm` file this version was loaded from.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// Capabilities linked for this plugin (implied clocks included).
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }
    /// Whether calls made on an async worker run right there. False for
    /// plugins granted files, http or sockets, and once a call made a
    /// blocking WASI call or ran long (see `blocking`): from then on calls
    /// run off the worker.
    pub fn runs_inline(&self) -> bool {
        self.inline.inline()
    }

    /// Ready instances currently pooled.
    pub fn pooled(&self) -> usize {
        self.pool.len()
    }

    /// Counters since this version was loaded.
    pub fn stats(&self) -> CallStats {
        let c = &self.counters;
        let k = |i: usize| c.by_kind[i].load(Ordering::Relaxed);
        CallStats {
            calls: c.calls.load(Ordering::Relaxed),
            failures: (0..6).map(k).sum(),
            traps: k(0),
            deadlines: k(1),
            memory: k(2),
            fuel: k(3),
            output_too_large: k(4),
            instantiate: k(5),
            total_time_us: c.total_ns.load(Ordering::Relaxed) / 1000,
        }
    }

    /// Run the guardrail's `check-input`.
    pub fn check_input(&self, req: &RequestInfo) -> Checked {
        let start = Instant::now();
        let res = self.call(|store, ex| match ex {
            Exports::Guardrail(g) => Ok(g.sluice_plugin_guardrail().call_check_input(store, req)),
            _ => Err(()),
        });
        self.checked(res.and_then(|v| self.limit_verdict(v)), start)
    }

    /// Run the guardrail's `check-output` on `output`.
    pub fn check_output(&self, req: &RequestInfo, output: &str, ctx: &OutputContext) -> Checked {
        let start = Instant::now();
        let res = self.call(|store, ex| match ex {
            Exports::Guardrail(g) => Ok(g
                .sluice_plugin_guardrail()
                .call_check_output(store, req, output, ctx)),
            _ => Err(()),
        });
        self.checked(res.and_then(|v| self.limit_verdict(v)), start)
    }

    /// Run the router. On failure: `open` => `Ok(vec![])` (empty = use the
    /// configured order), `closed` => `Err`.
    pub fn route(
        &self,
        req: &RequestInfo,
        cands: &[Candidate],
    ) -> Result<Vec<Route>, PluginFailure> {
        let start = Instant::now();
        let res = self
            .call(|store, ex| match ex {
                Exports::Router(r) => Ok(r.sluice_plugin_router().call_route(store, req, cands)),
                _ => Err(()),
            })
            .and_then(|routes| {
                let size = routes
                    .iter()
                    .map(|r| r.provider.len() + r.model.len())
                    .sum();
                self.limit(size).map(|()| routes)
            });
        self.finish(&res, start);
        match res {
            Err(_) if self.ctx.manifest.failure_mode == FailureMode::Open => Ok(Vec::new()),
            other => other,
        }
    }

    /// Run the cost policy. On failure: `open` => `Ok(Allow)`, `closed` => `Err`.
    pub fn decide(
        &self,
        req: &RequestInfo,
        est: &Estimate,
        spend: &Spend,
    ) -> Result<Decision, PluginFailure> {
        let start = Instant::now();
        let res = self
            .call(|store, ex| match ex {
                Exports::CostPolicy(c) => Ok(c
                    .sluice_plugin_cost_policy()
                    .call_decide(store, req, *est, spend)),
                _ => Err(()),
            })
            .and_then(|d| {
                let size = match &d {
                    Decision::Deny(s) | Decision::Downgrade(s) => s.len(),
                    Decision::Allow | Decision::CapTokens(_) => 0,
                };
                self.limit(size).map(|()| d)
            });
        self.finish(&res, start);
        match res {
            Err(_) if self.ctx.manifest.failure_mode == FailureMode::Open => Ok(Decision::Allow),
            other => other,
        }
    }

    /// Take a ready instance (or make one), arm the sandbox, run `f`,
    /// classify any error. `f` returns `Err(())` when the plugin's world
    /// does not have the function being called. `f` runs once, or twice
    /// when an inline attempt blocked (see `blocking`): each time in a
    /// fresh instance.
    fn call<R: Send>(
        &self,
        f: impl Fn(&mut Store<HostState>, &Exports) -> Result<wasmtime::Result<R>, ()> + Send + Sync,
    ) -> Result<R, PluginFailure> {
        let run = || {
            let _running = self.engine.running();
            let mut ready = match self.pool.pop() {
                Some(r) => r,
                None => self.instantiate()?,
            };
            self.request_refill();
            sandbox::arm(&mut ready.store, self.engine.settings.fuel);
            let out = match f(&mut ready.store, &ready.exports) {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(sandbox::classify(&e, ready.store.data())),
                Err(()) => Err(PluginFailure::Instantiate(format!(
                    "`{}` is a {} plugin and has no such function",
                    self.ctx.name, self.kind
                ))),
            };
            self.forward_stdio(ready.store.data());
            out
        };
        let fallback = || {
            tracing::info!(
                plugin = %self.ctx.name,
                "plugin makes blocking WASI calls (stdout, stderr, sleep...); its calls now run off the async worker"
            );
        };
        let started = Instant::now();
        let was_inline = self.inline.inline() && blocking::on_async_worker();
        let res = blocking::run_inline_first(&self.inline, run, fallback)
            .unwrap_or_else(|panic| Err(PluginFailure::Trap(format!("host panicked: {panic}"))));
        let hit_limit = matches!(res, Err(PluginFailure::Deadline | PluginFailure::Fuel));
        if was_inline && self.inline.record(started.elapsed(), hit_limit) {
            tracing::info!(
                plugin = %self.ctx.name,
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "plugin call ran long; its calls now run off the async worker"
            );
        }
        res
    }

    /// A new store + instance with the plugin's limits. Instantiation runs
    /// the guest's start code under the same deadline as a call.
    fn instantiate(&self) -> Result<Ready, PluginFailure> {
        let state =
            HostState::new(&self.ctx).map_err(|e| PluginFailure::Instantiate(format!("{e:#}")))?;
        let _running = self.engine.running();
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|s| &mut s.limiter);
        sandbox::arm(&mut store, self.engine.settings.fuel);
        let res = match &self.pre {
            Pre::Guardrail(p) => p.instantiate(&mut store).map(Exports::Guardrail),
            Pre::Router(p) => p.instantiate(&mut store).map(Exports::Router),
            Pre::CostPolicy(p) => p.instantiate(&mut store).map(Exports::CostPolicy),
        };
        match res {
            Ok(exports) => Ok(Ready { store, exports }),
            Err(e) => Err(match sandbox::classify(&e, store.data()) {
                PluginFailure::Trap(why) => PluginFailure::Instantiate(why),
                other => other,
            }),
        }
    }

    /// Instantiate and drop, twice: the loader's smoke test. Returns the
    /// faster instantiation time (the first pays one-off warm-up costs),
    /// which decides whether the plugin gets a pool.
    pub(crate) fn smoke_test(&self) -> Result<Duration, PluginFailure> {
        blocking::run(|| {
            let mut best = Duration::MAX;
            for _ in 0..2 {
                let start = Instant::now();
                let ready = self.instantiate()?;
                best = best.min(start.elapsed());
                self.forward_stdio(ready.store.data());
            }
            Ok(best)
        })
        .unwrap_or_else(|panic| {
            Err(PluginFailure::Instantiate(format!(
                "host panicked: {panic}"
            )))
        })
    }

    /// Keep `pool-size` ready instances from now on (the registry asks for
    /// the first fill once the plugin is swapped in).
    pub(crate) fn enable_pool(&self) {
        self.pool_target.store(self.pool_size, Ordering::Release);
    }

    /// Whether this plugin keeps ready instances.
    pub fn is_pooled(&self) -> bool {
        self.pool_target.load(Ordering::Acquire) > 0
    }

    /// Top the pool up to its target. Runs on the refill thread.
    pub(crate) fn fill_pool(&self) {
        self.refill_pending.store(false, Ordering::Release);
        let target = self.pool_target.load(Ordering::Acquire);
        while self.pool.len() < target {
            match self.instantiate() {
                Ok(r) => {
                    if self.pool.push(r).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(plugin = %self.ctx.name, phase = "instantiate", cause = %e, "pool refill failed");
                    break;
                }
            }
        }
    }

    /// Ask the refill thread to top the pool up (no-op with `pool-size = 0`)
    /// once the pool is at or below half full. Waking the thread costs a
    /// futex round trip and, on a small machine, a core the request path
    /// wanted; batching refills means one wake-up per `pool-size / 2` calls
    /// instead of one per call (from `pool-size = 4` on). The pool is filled
    /// completely on load (see `fill_pool`).
    pub(crate) fn request_refill(&self) {
        let target = self.pool_target.load(Ordering::Acquire);
        if target == 0 || self.pool.len() > target / 2 {
            return;
        }
        if self.refill_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(tx) = &self.refill
            && tx.send(self.me.clone()).is_err()
        {
            self.refill_pending.store(false, Ordering::Release);
        }
    }

    fn limit(&self, got: usize) -> Result<(), PluginFailure> {
        let limit = self.ctx.manifest.max_output_bytes();
        if got > limit {
            return Err(PluginFailure::OutputTooLarge { limit, got });
        }
        Ok(())
    }

    fn limit_verdict(&self, v: Verdict) -> Result<Verdict, PluginFailure> {
        let size = match &v {
            Verdict::Pass => 0,
            Verdict::Transform(t) => t.len(),
            Verdict::Reject(r) => r.reason.len() + r.code.len(),
        };
        self.limit(size).map(|()| v)
    }

    fn checked(&self, res: Result<Verdict, PluginFailure>, start: Instant) -> Checked {
        self.finish(&res, start);
        let elapsed = start.elapsed();
        match res {
            Ok(verdict) => Checked {
                verdict,
                failure: None,
                elapsed,
            },
            Err(f) => Checked {
                verdict: self.failure_verdict(&f),
                failure: Some(f),
                elapsed,
            },
        }
    }

    /// The failure mode's answer for a guardrail.
    fn failure_verdict(&self, f: &PluginFailure) -> Verdict {
        match self.ctx.manifest.failure_mode {
            FailureMode::Open => Verdict::Pass,
            FailureMode::Closed => Verdict::Reject(Rejection {
                reason: format!("guardrail `{}` failed: {f}", self.ctx.name),
                code: "plugin_failure".into(),
            }),
        }
    }

    fn finish<R>(&self, res: &Result<R, PluginFailure>, start: Instant) {
        let c = &self.counters;
        c.calls.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        c.total_ns.fetch_add(ns, Ordering::Relaxed);
        if let Err(f) = res {
            let i = match f {
                PluginFailure::Trap(_) => 0,
                PluginFailure::Deadline => 1,
                PluginFailure::Memory => 2,
                PluginFailure::Fuel => 3,
                PluginFailure::OutputTooLarge { .. } => 4,
                PluginFailure::Instantiate(_) => 5,
            };
            c.by_kind[i].fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                plugin = %self.ctx.name,
                phase = "call",
                failure = f.label(),
                failure_mode = ?self.ctx.manifest.failure_mode,
                cause = %f,
                "plugin call failed"
            );
        }
    }

    fn forward_stdio(&self, state: &HostState) {
        state.stdout.forward(&self.ctx.name, "stdout");
        state.stderr.forward(&self.ctx.name, "stderr");
    }
}
