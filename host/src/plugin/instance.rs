//! A loaded plugin and how one call to it runs: a fresh instance (from the
//! plugin's [`InstancePool`] or instantiated inline), the sandbox armed for
//! exactly that call, the answer size-checked, the call counted. What a
//! failed call *means* (the failure mode) is not decided here: every call
//! returns the [`PluginFailure`] and the pipeline applies the mode.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::bindings::cost_policy::{CostPolicyPlugin, CostPolicyPluginPre};
use super::bindings::guardrail::{GuardrailPlugin, GuardrailPluginPre};
use super::bindings::router::{RouterPlugin, RouterPluginPre};
use super::bindings::types::{
    Candidate, Decision, Estimate, OutputContext, RequestInfo, Route, Spend, Verdict,
};
use super::blocking::{self, InlineState};
use super::capability::Grant;
use super::engine::SharedEngine;
use super::error::PluginFailure;
use super::host_state::{HostState, PluginContext};
use super::manifest::{Manifest, PluginKind};
use super::pool::InstancePool;
use super::sandbox;
use super::stats::{CallCounters, CallStats};

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
pub(crate) struct Ready {
    store: Store<HostState>,
    exports: Exports,
}

/// A loaded, validated plugin. Cheap to share (`Arc<Plugin>`); every method
/// is synchronous, blocks at most the plugin's deadline (plus instantiation
/// when no ready instance is pooled) and never panics.
///
/// Calls may come from any thread, tokio workers included (see `blocking`).
pub struct Plugin {
    pub(crate) ctx: Arc<PluginContext>,
    sha256: String,
    grants: Vec<Grant>,
    pre: Pre,
    engine: Arc<SharedEngine>,
    pool: InstancePool<Ready, Weak<Plugin>>,
    /// This plugin, for refill requests (the refill thread holds no strong
    /// reference, so a replaced version is dropped with its pool).
    me: Weak<Plugin>,
    counters: CallCounters,
    inline: InlineState,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.ctx.name)
            .field("kind", &self.kind())
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
    pub pool: InstancePool<Ready, Weak<Plugin>>,
}

impl Plugin {
    pub(crate) fn new(p: PluginParts) -> Arc<Plugin> {
        // A retried inline attempt must have had no effect outside its store.
        let side_effects = p
            .grants
            .iter()
            .any(|g| matches!(g, Grant::Files | Grant::Http | Grant::Sockets));
        Arc::new_cyclic(|me| Plugin {
            inline: InlineState::new(!side_effects),
            ctx: p.ctx,
            sha256: p.sha256,
            grants: p.grants,
            pre: p.pre,
            engine: p.engine,
            pool: p.pool,
            me: me.clone(),
            counters: CallCounters::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.ctx.name
    }
    pub fn kind(&self) -> PluginKind {
        self.ctx.manifest.kind
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

    /// Whether this plugin keeps ready instances.
    pub fn is_pooled(&self) -> bool {
        self.pool.is_enabled()
    }

    /// Counters since this version was loaded.
    pub fn stats(&self) -> CallStats {
        self.counters.snapshot()
    }

    /// Run the guardrail's `check-input`.
    pub fn check_input(&self, req: &RequestInfo) -> Result<Verdict, PluginFailure> {
        self.call(
            |store, ex| match ex {
                Exports::Guardrail(g) => {
                    Ok(g.sluice_plugin_guardrail().call_check_input(store, req))
                }
                _ => Err(()),
            },
            verdict_size,
        )
    }

    /// Run the guardrail's `check-output` on `output`.
    pub fn check_output(
        &self,
        req: &RequestInfo,
        output: &str,
        ctx: &OutputContext,
    ) -> Result<Verdict, PluginFailure> {
        self.call(
            |store, ex| match ex {
                Exports::Guardrail(g) => Ok(g
                    .sluice_plugin_guardrail()
                    .call_check_output(store, req, output, ctx)),
                _ => Err(()),
            },
            verdict_size,
        )
    }

    /// Run the router.
    pub fn route(
        &self,
        req: &RequestInfo,
        cands: &[Candidate],
    ) -> Result<Vec<Route>, PluginFailure> {
        self.call(
            |store, ex| match ex {
                Exports::Router(r) => Ok(r.sluice_plugin_router().call_route(store, req, cands)),
                _ => Err(()),
            },
            |routes: &Vec<Route>| {
                routes
                    .iter()
                    .map(|r| r.provider.len() + r.model.len())
                    .sum()
            },
        )
    }

    /// Run the cost policy.
    pub fn decide(
        &self,
        req: &RequestInfo,
        est: &Estimate,
        spend: &Spend,
    ) -> Result<Decision, PluginFailure> {
        self.call(
            |store, ex| match ex {
                Exports::CostPolicy(c) => Ok(c
                    .sluice_plugin_cost_policy()
                    .call_decide(store, req, *est, spend)),
                _ => Err(()),
            },
            |d: &Decision| match d {
                Decision::Deny(s) | Decision::Downgrade(s) => s.len(),
                Decision::Allow | Decision::CapTokens(_) => 0,
            },
        )
    }

    /// Take a ready instance (or make one), arm the sandbox, run `f`, check
    /// the answer's size, classify any error, count the call. `f` returns
    /// `Err(())` when the plugin's world does not have the function being
    /// called. `f` runs once, or twice when an inline attempt blocked (see
    /// `blocking`): each time in a fresh instance.
    fn call<R: Send>(
        &self,
        f: impl Fn(&mut Store<HostState>, &Exports) -> Result<wasmtime::Result<R>, ()> + Send + Sync,
        size: impl Fn(&R) -> usize,
    ) -> Result<R, PluginFailure> {
        let run = || {
            let _running = self.engine.running();
            let mut ready = match self.pool.take() {
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
                    self.ctx.name,
                    self.kind()
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
            .unwrap_or_else(|panic| Err(PluginFailure::Trap(panic.to_string())))
            .and_then(|v| self.limit(size(&v)).map(|()| v));
        let elapsed = started.elapsed();
        let hit_limit = matches!(res, Err(PluginFailure::Deadline | PluginFailure::Fuel));
        if was_inline && self.inline.record(elapsed, hit_limit) {
            tracing::info!(
                plugin = %self.ctx.name,
                elapsed_ms = elapsed.as_secs_f64() * 1e3,
                "plugin call ran long; its calls now run off the async worker"
            );
        }
        self.counters.record(elapsed, res.as_ref().err());
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
        .unwrap_or_else(|panic| Err(PluginFailure::Instantiate(panic.to_string())))
    }

    /// Keep ready instances from now on (the registry asks for the first
    /// fill once the plugin is swapped in).
    pub(crate) fn enable_pool(&self) {
        self.pool.enable();
    }

    /// Top the pool up to its target. Runs on the refill thread.
    pub(crate) fn fill_pool(&self) {
        if let Err(e) = self.pool.fill(|| self.instantiate()) {
            tracing::warn!(plugin = %self.ctx.name, phase = "instantiate", cause = %e, "pool refill failed");
        }
    }

    /// Ask the refill thread to top the pool up (see [`InstancePool::request_refill`]).
    pub(crate) fn request_refill(&self) {
        self.pool.request_refill(|| self.me.clone());
    }

    fn limit(&self, got: usize) -> Result<(), PluginFailure> {
        let limit = self.ctx.manifest.max_output_bytes();
        if got > limit {
            return Err(PluginFailure::OutputTooLarge { limit, got });
        }
        Ok(())
    }

    fn forward_stdio(&self, state: &HostState) {
        for (stream, out) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
            let (text, dropped) = out.take();
            if !text.is_empty() {
                tracing::info!(plugin = %self.ctx.name, stream, dropped, "{}", text.trim_end());
            }
        }
    }
}

/// Bytes a verdict carries, for `limits.max-output-kb`.
fn verdict_size(v: &Verdict) -> usize {
    match v {
        Verdict::Pass => 0,
        Verdict::Transform(t) => t.len(),
        Verdict::Reject(r) => r.reason.len() + r.code.len(),
    }
}
