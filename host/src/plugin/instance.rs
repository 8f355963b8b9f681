//! A loaded plugin and how one call to it runs: a fresh instance (from the
//! plugin's [`InstancePool`] or instantiated in the calling task; or, only
//! when the manifest opts in with `limits.calls-per-instance`, one that
//! answered earlier calls cleanly and has calls left), the
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

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use futures_util::FutureExt as _;
use wasmtime::Store;

use super::bindings::Contract;
use super::bindings::types::{
    Candidate, Decision, Estimate, OutputContext, Phases, Route, Spend, Verdict,
};
use super::capability::Grant;
use super::engine::SharedEngine;
use super::error::PluginFailure;
use super::exports::{
    CheckInput, CheckOutput, Decide, Export, Exports, PhasesCall, Pre, RouteCall, Size,
    ValidateConfig,
};
use super::handoff::{self, Guests};
use super::host_state::{HostState, PluginContext};
use super::log::escaped;
use super::manifest::{Manifest, PluginKind};
use super::pool::InstancePool;
use super::request::RequestInfo;
use super::sandbox;
use super::stats::{CallCounters, CallStats};
use super::stdio::CapturedOutput;

/// Idle instances kept for reuse per plugin (`limits.calls-per-instance` >
/// 1); more concurrent calls than this instantiate (or take from the pool)
/// and their instances are dropped when the queue is full. Each one holds a
/// pooling-allocator slot and its resident heap (a Python guest: ~20 MiB).
const IDLE_REUSABLE: usize = 4;

/// A store with an instance in it, ready for one call (and, with
/// `limits.calls-per-instance` > 1, for more until `calls` reaches it).
pub(crate) struct Ready {
    store: Store<HostState>,
    exports: Exports,
    /// Calls this instance has answered.
    calls: u32,
}

/// A loaded, validated plugin. Cheap to share (`Arc<Plugin>`); every call
/// is a future that finishes within the plugin's deadline (instantiation
/// included) and never panics. Calls need a tokio runtime with time
/// enabled (the deadline is a tokio timer). Callers use the current
/// contract's types whatever version the guest was built against.
pub struct Plugin {
    pub(crate) ctx: Arc<PluginContext>,
    sha256: String,
    grants: Vec<Grant>,
    contract: Contract,
    /// The exact version of the guest's export (`0.1.0`, `0.2.0`).
    version: String,
    /// Asked once at load ([`Plugin::load_checks`]).
    phases: OnceLock<Phases>,
    pre: Pre,
    engine: Arc<SharedEngine>,
    pool: InstancePool<Ready, Weak<Plugin>>,
    /// Instances that answered cleanly and have calls left; only used when
    /// the manifest opts in to reuse. Popping one gives a call sole use.
    idle: ArrayQueue<Ready>,
    /// This plugin, for refill requests (the refill thread holds no strong
    /// reference, so a replaced version is dropped with its pool).
    me: Weak<Plugin>,
    counters: CallCounters,
    guests: Guests,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.ctx.name)
            .field("kind", &self.kind())
            .field("contract", &self.version)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// What the loader hands over to build a [`Plugin`].
pub(crate) struct PluginParts {
    pub ctx: Arc<PluginContext>,
    pub sha256: String,
    pub grants: Vec<Grant>,
    pub contract: Contract,
    pub version: String,
    pub pre: Pre,
    pub engine: Arc<SharedEngine>,
    pub pool: InstancePool<Ready, Weak<Plugin>>,
}

/// Why [`Plugin::load_checks`] refused a plugin.
#[derive(Debug)]
pub(crate) enum LoadCheck {
    /// `validate-config` returned this error.
    Refused(String),
    /// A load-time call failed (`which` export).
    Failed(&'static str, PluginFailure),
}

impl Plugin {
    pub(crate) fn new(p: PluginParts) -> Arc<Plugin> {
        Arc::new_cyclic(|me| Plugin {
            ctx: p.ctx,
            sha256: p.sha256,
            grants: p.grants,
            contract: p.contract,
            version: p.version,
            phases: OnceLock::new(),
            pre: p.pre,
            engine: p.engine,
            pool: p.pool,
            idle: ArrayQueue::new(IDLE_REUSABLE),
            me: me.clone(),
            counters: CallCounters::default(),
            guests: Guests::default(),
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

    /// The contract version the guest speaks.
    pub fn contract(&self) -> Contract {
        self.contract
    }

    /// The exact contract version of the guest's export (`0.1.0`).
    pub fn contract_version(&self) -> &str {
        &self.version
    }

    /// The checks a guardrail implements (asked once at load; `0.1`
    /// guardrails: both). Empty for routers and cost policies.
    pub fn phases(&self) -> Phases {
        match self.phases.get() {
            Some(p) => *p,
            None if self.kind() == PluginKind::Guardrail => Phases::all(),
            None => Phases::empty(),
        }
    }

    /// Ready instances currently pooled.
    pub fn pooled(&self) -> usize {
        self.pool.len()
    }

    /// Instances kept for reuse right now (`limits.calls-per-instance` > 1).
    pub fn idle_reusable(&self) -> usize {
        self.idle.len()
    }

    /// Whether this plugin keeps ready instances.
    pub fn is_pooled(&self) -> bool {
        self.pool.is_enabled()
    }

    /// Counters since this version was loaded.
    pub fn stats(&self) -> CallStats {
        self.counters.snapshot()
    }

    /// Count what a call came to (the pipeline decides: a verdict, or the
    /// failure mode's answer).
    pub fn count_verdict(&self, v: super::stats::VerdictKind) {
        self.counters.verdict(v);
    }

    /// Calls whose guest code is still running (or waiting in a host call),
    /// including calls whose caller was already answered at the deadline.
    pub fn guests_running(&self) -> usize {
        self.guests.running()
    }

    /// The longest a call's guest code ran past its deadline (0 when none
    /// did) since this version was loaded: what a runaway guest cost after
    /// its caller was answered.
    pub fn max_guest_overrun(&self) -> Duration {
        self.guests.max_overrun()
    }

    /// Call wall times since this version was loaded.
    pub fn call_durations(&self) -> crate::metrics::histogram::Snapshot {
        self.counters.durations()
    }

    /// Run the guardrail's `check-input`. A guardrail whose `phases` leave
    /// out input is not called: it passes.
    pub async fn check_input(&self, req: &Arc<RequestInfo>) -> Result<Verdict, PluginFailure> {
        if !self.phases().contains(Phases::INPUT) {
            return Ok(Verdict::Pass);
        }
        self.call(CheckInput(req.clone())).await
    }

    /// Run the guardrail's `check-output` on `output`. A guardrail whose
    /// `phases` leave out output is not called: it passes.
    pub async fn check_output(
        &self,
        req: &Arc<RequestInfo>,
        output: &str,
        ctx: &OutputContext,
    ) -> Result<Verdict, PluginFailure> {
        if !self.phases().contains(Phases::OUTPUT) {
            return Ok(Verdict::Pass);
        }
        self.call(CheckOutput(req.clone(), output.to_owned(), ctx.clone()))
            .await
    }

    /// Run the router.
    pub async fn route(
        &self,
        req: &Arc<RequestInfo>,
        cands: &[Candidate],
    ) -> Result<Vec<Route>, PluginFailure> {
        self.call(RouteCall(req.clone(), cands.to_vec())).await
    }

    /// Run the cost policy with every spend that applies to the request.
    pub async fn decide(
        &self,
        req: &Arc<RequestInfo>,
        est: &Estimate,
        spends: &[Spend],
    ) -> Result<Decision, PluginFailure> {
        self.call(Decide(req.clone(), *est, spends.to_vec())).await
    }

    /// The load-time calls, each on a fresh instance under the manifest's
    /// limits and not counted in [`Plugin::stats`]: `validate-config` (an
    /// error refuses the plugin) and a guardrail's `phases`, kept for
    /// [`Plugin::phases`]. A `0.1` guest has neither export: its config is
    /// not validated and a guardrail implements both phases.
    pub(crate) async fn load_checks(&self) -> Result<(), LoadCheck> {
        let guardrail = self.kind() == PluginKind::Guardrail;
        let phases = match self.contract {
            Contract::V0_1 if guardrail => Phases::INPUT | Phases::OUTPUT,
            Contract::V0_1 => Phases::empty(),
            Contract::V0_2 => {
                match self.bounded(ValidateConfig, false).await {
                    Ok(Ok(())) => {}
                    Ok(Err(why)) => return Err(LoadCheck::Refused(why)),
                    Err(f) => return Err(LoadCheck::Failed("validate-config", f)),
                }
                if guardrail {
                    self.bounded(PhasesCall, false)
                        .await
                        .map_err(|f| LoadCheck::Failed("phases", f))?
                } else {
                    Phases::empty()
                }
            }
        };
        // Only the loader calls this, once, before anyone else sees the plugin.
        let _ = self.phases.set(phases);
        Ok(())
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

    /// One call, counted in [`Plugin::stats`].
    async fn call<E: Export + Send + 'static>(
        &self,
        export: E,
    ) -> Result<E::Output, PluginFailure> {
        let started = Instant::now();
        let res = self.bounded(export, true).await;
        self.counters.record(started.elapsed(), res.as_ref().err());
        res
    }

    /// One call, bounded by the plugin's deadline as a whole: instantiation,
    /// guest code and host calls. The answer's size is checked (in `run`). A panic on
    /// the host side (in a WASI implementation, say) is caught and reported
    /// as a trap, so a call never takes its task down. A call that outlives
    /// a tick finishes on the guest executor (`handoff`), so the caller is
    /// answered at the deadline even while the guest's thread waits for a
    /// core. `reusable`: the instance may serve later calls
    /// (`limits.calls-per-instance`); the load-time calls' instances never do.
    async fn bounded<E: Export + Send + 'static>(
        &self,
        export: E,
        reusable: bool,
    ) -> Result<E::Output, PluginFailure> {
        let deadline = Instant::now() + self.deadline();
        // Only fails while the plugin is being dropped: no caller then.
        let me = self.me.upgrade().ok_or_else(|| {
            PluginFailure::Instantiate(format!("`{}` is being unloaded", self.ctx.name))
        })?;
        let call = Box::pin(async move {
            match AssertUnwindSafe(me.run(export, deadline, reusable))
                .catch_unwind()
                .await
            {
                Ok(res) => res,
                Err(panic) => Err(PluginFailure::Trap(format!(
                    "host panicked: {}",
                    panic_message(&*panic)
                ))),
            }
        });
        handoff::bounded(call, deadline).await
    }

    /// Take an instance (a reusable one if the manifest opts in, else a
    /// pooled or new one), arm the sandbox, run `export`, classify any
    /// error. An instance goes back for reuse only after a clean answer
    /// within the limits: a trap, a cancelled call (the deadline drops this
    /// future and the instance with it) or a refused answer drops it.
    async fn run<E: Export>(
        &self,
        export: E,
        deadline: Instant,
        reusable: bool,
    ) -> Result<E::Output, PluginFailure> {
        let _running = self.engine.running();
        let _guest = self.guests.enter(deadline);
        let mut ready = match self.idle.pop().or_else(|| self.pool.take()) {
            Some(r) => r,
            None => self.instantiate(deadline).await?,
        };
        if ready.calls > 0 {
            self.counters.reused();
        }
        self.request_refill();
        let stdio = ForwardStdio::new(&self.ctx.name, ready.store.data());
        ready.store.data_mut().start_call();
        sandbox::arm(&mut ready.store, deadline, self.engine.settings.fuel);
        match export.invoke(&mut ready.store, &ready.exports).await {
            Some(Ok(v)) => {
                self.limit(E::size(&v))?;
                ready.calls += 1;
                if reusable && ready.calls < self.ctx.manifest.limits.calls_per_instance {
                    // This call's output first: once queued, the instance
                    // may already be running another call.
                    drop(stdio);
                    // Full: dropped, like any instance past its last call.
                    let _ = self.idle.push(ready);
                }
                Ok(v)
            }
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
        let res = self.pre.instantiate(&mut store).await;
        match res {
            Ok(exports) => Ok(Ready {
                store,
                exports,
                calls: 0,
            }),
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

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
