//! A loaded plugin and how one call to it runs: a fresh instance (from the
//! plugin's [`InstancePool`] or instantiated in the calling task), the
//! sandbox armed for exactly that call, the answer size-checked, the call
//! counted. What a failed call *means* (the failure mode) is not decided
//! here: every call returns the [`PluginFailure`] and the pipeline applies
//! the mode.
//!
//! Calls are `async`: guest code runs on a wasmtime fiber inside the calling
//! task. Pure compute yields to the runtime at every epoch tick (`sandbox`),
//! and every WASI host call is a future, so one `tokio::time::timeout` at
//! the plugin's deadline bounds the whole call, host calls included (a
//! clock sleep or a socket read is cancelled, not waited out).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use wasmtime::Store;

use super::bindings::cost_policy::{CostPolicyPlugin, CostPolicyPluginPre};
use super::bindings::guardrail::{GuardrailPlugin, GuardrailPluginPre};
use super::bindings::router::{RouterPlugin, RouterPluginPre};
use super::bindings::types::{
    Candidate, Decision, Estimate, OutputContext, RequestInfo, Route, Spend, Verdict,
};
use super::capability::Grant;
use super::engine::SharedEngine;
use super::error::PluginFailure;
use super::host_state::{HostState, PluginContext};
use super::log::escaped;
use super::manifest::{Manifest, PluginKind};
use super::pool::InstancePool;
use super::sandbox;
use super::stats::{CallCounters, CallStats};
use super::stdio::CapturedOutput;

/// The instance-pre of a plugin, typed by its world.
pub(crate) enum Pre {
    Guardrail(GuardrailPluginPre<HostState>),
    Router(RouterPluginPre<HostState>),
    CostPolicy(CostPolicyPluginPre<HostState>),
}

pub(crate) enum Exports {
    Guardrail(GuardrailPlugin),
    Router(RouterPlugin),
    CostPolicy(CostPolicyPlugin),
}

/// A store with an instance in it, ready for exactly one call.
pub(crate) struct Ready {
    store: Store<HostState>,
    exports: Exports,
}

/// A loaded, validated plugin. Cheap to share (`Arc<Plugin>`); every call
/// is a future that finishes within the plugin's deadline (instantiation
/// included) and never panics. Calls need a tokio runtime with time
/// enabled (the deadline is a tokio timer).
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

/// How big an answer is, for `limits.max-output-kb` and
/// `limits.max-output-entries`.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    bytes: usize,
    entries: usize,
}

/// What [`Export::invoke`] returns: `None` when the plugin's world has no
/// such function. Boxed: an unboxed future here trips rustc's "Send is not
/// general enough" limitation (rust-lang/rust#100013) in the handlers.
type Invoked<'s, T> = Pin<Box<dyn Future<Output = Option<wasmtime::Result<T>>> + Send + 's>>;

/// One exported function, typed: how to call it on a world's exports and
/// how big its answer is.
trait Export: Sync {
    type Output: Send + 'static;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Self::Output>;
    fn size(out: &Self::Output) -> Size;
}

struct CheckInput<'a>(&'a RequestInfo);
struct CheckOutput<'a>(&'a RequestInfo, &'a str, &'a OutputContext);
struct RouteCall<'a>(&'a RequestInfo, &'a [Candidate]);
struct Decide<'a>(&'a RequestInfo, &'a Estimate, &'a Spend);

impl Export for CheckInput<'_> {
    type Output = Verdict;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Verdict> {
        Box::pin(async move {
            let Exports::Guardrail(g) = ex else {
                return None;
            };
            Some(
                g.sluice_plugin_guardrail()
                    .call_check_input(store, self.0)
                    .await,
            )
        })
    }
    fn size(v: &Verdict) -> Size {
        verdict_size(v)
    }
}

impl Export for CheckOutput<'_> {
    type Output = Verdict;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Verdict> {
        Box::pin(async move {
            let Exports::Guardrail(g) = ex else {
                return None;
            };
            let CheckOutput(req, output, ctx) = *self;
            Some(
                g.sluice_plugin_guardrail()
                    .call_check_output(store, req, output, ctx)
                    .await,
            )
        })
    }
    fn size(v: &Verdict) -> Size {
        verdict_size(v)
    }
}

impl Export for RouteCall<'_> {
    type Output = Vec<Route>;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Vec<Route>> {
        Box::pin(async move {
            let Exports::Router(r) = ex else {
                return None;
            };
            Some(
                r.sluice_plugin_router()
                    .call_route(store, self.0, self.1)
                    .await,
            )
        })
    }
    fn size(routes: &Vec<Route>) -> Size {
        Size {
            bytes: routes
                .iter()
                .map(|r| r.provider.len() + r.model.len())
                .sum(),
            entries: routes.len(),
        }
    }
}

impl Export for Decide<'_> {
    type Output = Decision;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Decision> {
        Box::pin(async move {
            let Exports::CostPolicy(c) = ex else {
                return None;
            };
            let Decide(req, est, spend) = *self;
            Some(
                c.sluice_plugin_cost_policy()
                    .call_decide(store, req, *est, spend)
                    .await,
            )
        })
    }
    fn size(d: &Decision) -> Size {
        let bytes = match d {
            Decision::Deny(s) | Decision::Downgrade(s) => s.len(),
            Decision::Allow | Decision::CapTokens(_) => 0,
        };
        Size { bytes, entries: 0 }
    }
}

impl Plugin {
    pub(crate) fn new(p: PluginParts) -> Arc<Plugin> {
        Arc::new_cyclic(|me| Plugin {
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
    pub async fn check_input(&self, req: &RequestInfo) -> Result<Verdict, PluginFailure> {
        self.call(CheckInput(req)).await
    }

    /// Run the guardrail's `check-output` on `output`.
    pub async fn check_output(
        &self,
        req: &RequestInfo,
        output: &str,
        ctx: &OutputContext,
    ) -> Result<Verdict, PluginFailure> {
        self.call(CheckOutput(req, output, ctx)).await
    }

    /// Run the router.
    pub async fn route(
        &self,
        req: &RequestInfo,
        cands: &[Candidate],
    ) -> Result<Vec<Route>, PluginFailure> {
        self.call(RouteCall(req, cands)).await
    }

    /// Run the cost policy.
    pub async fn decide(
        &self,
        req: &RequestInfo,
        est: &Estimate,
        spend: &Spend,
    ) -> Result<Decision, PluginFailure> {
        self.call(Decide(req, est, spend)).await
    }

    /// The caller found this plugin's answer unusable (e.g. a downgrade to a
    /// model the gateway does not have): count the failure and return it,
    /// for the caller to apply the failure mode to.
    pub fn invalid_answer(&self, why: String) -> PluginFailure {
        let f = PluginFailure::InvalidAnswer(why);
        self.counters.failed(&f);
        f
    }

    fn deadline(&self) -> Duration {
        Duration::from_millis(self.ctx.manifest.limits.deadline_ms)
    }

    /// One call, bounded by the plugin's deadline as a whole: instantiation,
    /// guest code and host calls. The answer's size is checked and the call
    /// counted. A panic on the host side (in a WASI implementation, say) is
    /// caught and reported as a trap, so a call never takes its task down.
    async fn call<E: Export>(&self, export: E) -> Result<E::Output, PluginFailure> {
        let started = Instant::now();
        let deadline = started + self.deadline();
        let run = AssertUnwindSafe(self.run(export, deadline)).catch_unwind();
        let res = match tokio::time::timeout_at(deadline.into(), run).await {
            Ok(Ok(res)) => res,
            Ok(Err(panic)) => Err(PluginFailure::Trap(format!(
                "host panicked: {}",
                panic_message(&*panic)
            ))),
            // Cancelled while waiting in a host call (guest compute is
            // interrupted by the epoch callback instead).
            Err(_elapsed) => Err(PluginFailure::Deadline),
        }
        .and_then(|out| self.limit(E::size(&out)).map(|()| out));
        self.counters.record(started.elapsed(), res.as_ref().err());
        res
    }

    /// Take a ready instance (or make one), arm the sandbox, run `export`,
    /// classify any error.
    async fn run<E: Export>(
        &self,
        export: E,
        deadline: Instant,
    ) -> Result<E::Output, PluginFailure> {
        let _running = self.engine.running();
        let mut ready = match self.pool.take() {
            Some(r) => r,
            None => self.instantiate(deadline).await?,
        };
        self.request_refill();
        let _stdio = ForwardStdio::new(&self.ctx.name, ready.store.data());
        sandbox::arm(&mut ready.store, deadline, self.engine.settings.fuel);
        match export.invoke(&mut ready.store, &ready.exports).await {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(sandbox::classify(&e, ready.store.data())),
            None => Err(PluginFailure::Instantiate(format!(
                "`{}` is a {} plugin and has no such function",
                self.ctx.name,
                self.kind()
            ))),
        }
    }

    /// A new store + instance with the plugin's limits. Instantiation runs
    /// the guest's start code under `deadline` (a call's, or a fresh one for
    /// the pool and the smoke test).
    async fn instantiate(&self, deadline: Instant) -> Result<Ready, PluginFailure> {
        let state =
            HostState::new(&self.ctx).map_err(|e| PluginFailure::Instantiate(format!("{e:#}")))?;
        let _running = self.engine.running();
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|s| &mut s.limiter);
        sandbox::install_deadline(&mut store);
        sandbox::arm(&mut store, deadline, self.engine.settings.fuel);
        let res = match &self.pre {
            Pre::Guardrail(p) => p
                .instantiate_async(&mut store)
                .await
                .map(Exports::Guardrail),
            Pre::Router(p) => p.instantiate_async(&mut store).await.map(Exports::Router),
            Pre::CostPolicy(p) => p
                .instantiate_async(&mut store)
                .await
                .map(Exports::CostPolicy),
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
    pub(crate) async fn smoke_test(&self) -> Result<Duration, PluginFailure> {
        let mut best = Duration::MAX;
        for _ in 0..2 {
            let start = Instant::now();
            let deadline = start + self.deadline();
            let ready = tokio::time::timeout_at(deadline.into(), self.instantiate(deadline))
                .await
                .unwrap_or(Err(PluginFailure::Deadline))?;
            best = best.min(start.elapsed());
            drop(ForwardStdio::new(&self.ctx.name, ready.store.data()));
        }
        Ok(best)
    }

    /// Keep ready instances from now on (the registry asks for the first
    /// fill once the plugin is swapped in).
    pub(crate) fn enable_pool(&self) {
        self.pool.enable();
    }

    /// Top the pool up to its target. Runs on the refill thread's runtime.
    pub(crate) async fn fill_pool(&self) {
        for _ in 0..self.pool.start_fill() {
            let deadline = Instant::now() + self.deadline();
            let made = tokio::time::timeout_at(deadline.into(), self.instantiate(deadline))
                .await
                .unwrap_or(Err(PluginFailure::Deadline));
            match made {
                Ok(ready) => {
                    if !self.pool.put(ready) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(plugin = %self.ctx.name, phase = "instantiate", cause = %escaped(&e), "pool refill failed");
                    return;
                }
            }
        }
    }

    /// Ask the refill thread to top the pool up (see [`InstancePool::request_refill`]).
    pub(crate) fn request_refill(&self) {
        self.pool.request_refill(|| self.me.clone());
    }

    fn limit(&self, size: Size) -> Result<(), PluginFailure> {
        let entries = self.ctx.manifest.max_output_entries();
        if size.entries > entries {
            return Err(PluginFailure::TooManyEntries {
                limit: entries,
                got: size.entries,
            });
        }
        let bytes = self.ctx.manifest.max_output_bytes();
        if size.bytes > bytes {
            return Err(PluginFailure::OutputTooLarge {
                limit: bytes,
                got: size.bytes,
            });
        }
        Ok(())
    }
}

/// Forwards what a call's guest wrote to stdout / stderr to the log when
/// dropped: after the call, and also when the deadline cancels it midway.
struct ForwardStdio<'a> {
    plugin: &'a str,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

impl<'a> ForwardStdio<'a> {
    fn new(plugin: &'a str, state: &HostState) -> Self {
        ForwardStdio {
            plugin,
            stdout: state.stdout.clone(),
            stderr: state.stderr.clone(),
        }
    }
}

impl Drop for ForwardStdio<'_> {
    fn drop(&mut self) {
        self.stdout.forward(self.plugin, "stdout");
        self.stderr.forward(self.plugin, "stderr");
    }
}

/// Bytes a verdict carries, for `limits.max-output-kb`.
fn verdict_size(v: &Verdict) -> Size {
    let bytes = match v {
        Verdict::Pass => 0,
        Verdict::Transform(t) => t.len(),
        Verdict::Reject(r) => r.reason.len() + r.code.len(),
    };
    Size { bytes, entries: 0 }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
