//! The exported functions of every world, at every contract version: the
//! typed instance-pre ([`Pre`]) and instance ([`Exports`]) of a plugin,
//! dispatched by (kind, contract version), and one [`Export`] per function
//! that knows how to call it on each and how big its answer is.
//!
//! A `0.2` call lends the request to the guest as a `borrow<request>`
//! (`request::Lent`); a `0.1` call lowers the flattened record and converts
//! arguments and answers through `compat`. Callers see current types only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime::Store;

use super::bindings::types::{
    Candidate, Decision, Estimate, OutputContext, Phases, Route, Spend, Verdict,
};
use super::bindings::{Contract, v0_1, v0_2};
use super::compat;
use super::host_state::HostState;
use super::manifest::PluginKind;
use super::request::{Lent, RequestInfo};

/// The instance-pre of a plugin, typed by its world and contract version.
pub(crate) enum Pre {
    Guardrail(v0_2::guardrail::GuardrailPluginPre<HostState>),
    Router(v0_2::router::RouterPluginPre<HostState>),
    CostPolicy(v0_2::cost_policy::CostPolicyPluginPre<HostState>),
    GuardrailV01(v0_1::guardrail::GuardrailPluginPre<HostState>),
    RouterV01(v0_1::router::RouterPluginPre<HostState>),
    CostPolicyV01(v0_1::cost_policy::CostPolicyPluginPre<HostState>),
}

/// An instance's exports, typed like its [`Pre`].
pub(crate) enum Exports {
    Guardrail(v0_2::guardrail::GuardrailPlugin),
    Router(v0_2::router::RouterPlugin),
    CostPolicy(v0_2::cost_policy::CostPolicyPlugin),
    GuardrailV01(v0_1::guardrail::GuardrailPlugin),
    RouterV01(v0_1::router::RouterPlugin),
    CostPolicyV01(v0_1::cost_policy::CostPolicyPlugin),
}

impl Pre {
    /// Type-check `ipre` against the world of `kind` at `contract`: a
    /// missing or mistyped export fails here, before any call.
    pub fn new(
        kind: PluginKind,
        contract: Contract,
        ipre: wasmtime::component::InstancePre<HostState>,
    ) -> wasmtime::Result<Pre> {
        use {Contract as C, PluginKind as K};
        Ok(match (kind, contract) {
            (K::Guardrail, C::V0_2) => {
                Pre::Guardrail(v0_2::guardrail::GuardrailPluginPre::new(ipre)?)
            }
            (K::Router, C::V0_2) => Pre::Router(v0_2::router::RouterPluginPre::new(ipre)?),
            (K::CostPolicy, C::V0_2) => {
                Pre::CostPolicy(v0_2::cost_policy::CostPolicyPluginPre::new(ipre)?)
            }
            (K::Guardrail, C::V0_1) => {
                Pre::GuardrailV01(v0_1::guardrail::GuardrailPluginPre::new(ipre)?)
            }
            (K::Router, C::V0_1) => Pre::RouterV01(v0_1::router::RouterPluginPre::new(ipre)?),
            (K::CostPolicy, C::V0_1) => {
                Pre::CostPolicyV01(v0_1::cost_policy::CostPolicyPluginPre::new(ipre)?)
            }
        })
    }

    /// A new instance in `store`, running the guest's start code.
    pub async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Exports> {
        Ok(match self {
            Pre::Guardrail(p) => Exports::Guardrail(p.instantiate_async(store).await?),
            Pre::Router(p) => Exports::Router(p.instantiate_async(store).await?),
            Pre::CostPolicy(p) => Exports::CostPolicy(p.instantiate_async(store).await?),
            Pre::GuardrailV01(p) => Exports::GuardrailV01(p.instantiate_async(store).await?),
            Pre::RouterV01(p) => Exports::RouterV01(p.instantiate_async(store).await?),
            Pre::CostPolicyV01(p) => Exports::CostPolicyV01(p.instantiate_async(store).await?),
        })
    }
}

/// Lends `req` to the guest for one call (`$call`, which names the borrow
/// `$b`) and releases it whatever the call returned: a `0.2` guest must not
/// keep a borrow past its call.
macro_rules! lend {
    ($store:ident, $req:expr, |$b:ident| $call:expr) => {
        async {
            let lent = Lent::new($store.data_mut(), $req)?;
            let $b = lent.borrow();
            let out = $call.await;
            lent.release($store.data_mut());
            out
        }
        .await
    };
}

/// How big an answer is, for `limits.max-output-kb` and
/// `limits.max-output-entries`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Size {
    pub bytes: usize,
    pub entries: usize,
}

/// What [`Export::invoke`] returns: `None` when the plugin's world has no
/// such function. Boxed: an unboxed future here trips rustc's "Send is not
/// general enough" limitation (rust-lang/rust#100013) in the handlers.
pub(crate) type Invoked<'s, T> =
    Pin<Box<dyn Future<Output = Option<wasmtime::Result<T>>> + Send + 's>>;

/// One exported function, typed: how to call it on a world's exports (of
/// any contract version) and how big its answer is.
pub(crate) trait Export: Sync {
    type Output: Send + 'static;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Self::Output>;
    fn size(out: &Self::Output) -> Size;
}

// The arguments are owned: a call that outlives one epoch tick moves to
// the guest executor (`handoff`), which needs a `'static` future.
pub(crate) struct CheckInput(pub Arc<RequestInfo>);
pub(crate) struct CheckOutput(pub Arc<RequestInfo>, pub String, pub OutputContext);
pub(crate) struct RouteCall(pub Arc<RequestInfo>, pub Vec<Candidate>);
pub(crate) struct Decide(pub Arc<RequestInfo>, pub Estimate, pub Vec<Spend>);
/// `lifecycle.validate-config` (load time).
pub(crate) struct ValidateConfig;
/// `guardrail.phases` (load time).
pub(crate) struct PhasesCall;

impl Export for CheckInput {
    type Output = Verdict;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Verdict> {
        Box::pin(async move {
            match ex {
                Exports::Guardrail(g) => Some(lend!(store, &self.0, |b| g
                    .sluice_plugin_guardrail()
                    .call_check_input(&mut *store, b))),
                Exports::GuardrailV01(g) => Some(
                    g.sluice_plugin_guardrail()
                        .call_check_input(store, &compat::request(&self.0))
                        .await
                        .map(compat::verdict),
                ),
                _ => None,
            }
        })
    }
    fn size(v: &Verdict) -> Size {
        verdict_size(v)
    }
}

impl Export for CheckOutput {
    type Output = Verdict;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Verdict> {
        Box::pin(async move {
            let CheckOutput(req, output, ctx) = self;
            match ex {
                Exports::Guardrail(g) => Some(lend!(store, req, |b| g
                    .sluice_plugin_guardrail()
                    .call_check_output(&mut *store, b, output, ctx))),
                Exports::GuardrailV01(g) => Some(
                    g.sluice_plugin_guardrail()
                        .call_check_output(
                            store,
                            &compat::request(req),
                            output,
                            &compat::output_context(ctx),
                        )
                        .await
                        .map(compat::verdict),
                ),
                _ => None,
            }
        })
    }
    fn size(v: &Verdict) -> Size {
        verdict_size(v)
    }
}

impl Export for RouteCall {
    type Output = Vec<Route>;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Vec<Route>> {
        Box::pin(async move {
            let RouteCall(req, candidates) = self;
            match ex {
                Exports::Router(r) => Some(lend!(store, req, |b| r
                    .sluice_plugin_router()
                    .call_route(&mut *store, b, candidates))),
                Exports::RouterV01(r) => {
                    let old: Vec<_> = candidates.iter().map(compat::candidate).collect();
                    Some(
                        r.sluice_plugin_router()
                            .call_route(store, &compat::request(req), &old)
                            .await
                            .map(|routes| routes.into_iter().map(compat::route).collect()),
                    )
                }
                _ => None,
            }
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

impl Export for Decide {
    type Output = Decision;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Decision> {
        Box::pin(async move {
            let Decide(req, est, spends) = self;
            match ex {
                Exports::CostPolicy(c) => Some(lend!(store, req, |b| c
                    .sluice_plugin_cost_policy()
                    .call_decide(&mut *store, b, *est, spends))),
                Exports::CostPolicyV01(c) => Some(
                    c.sluice_plugin_cost_policy()
                        .call_decide(
                            store,
                            &compat::request(req),
                            compat::estimate(est),
                            &compat::spend(spends),
                        )
                        .await
                        .map(compat::decision),
                ),
                _ => None,
            }
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

impl Export for ValidateConfig {
    type Output = Result<(), String>;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Result<(), String>> {
        Box::pin(async move {
            Some(match ex {
                Exports::Guardrail(g) => {
                    g.sluice_plugin_lifecycle()
                        .call_validate_config(store)
                        .await
                }
                Exports::Router(r) => {
                    r.sluice_plugin_lifecycle()
                        .call_validate_config(store)
                        .await
                }
                Exports::CostPolicy(c) => {
                    c.sluice_plugin_lifecycle()
                        .call_validate_config(store)
                        .await
                }
                // `0.1` has no lifecycle: nothing to validate.
                Exports::GuardrailV01(_) | Exports::RouterV01(_) | Exports::CostPolicyV01(_) => {
                    Ok(Ok(()))
                }
            })
        })
    }
    fn size(r: &Result<(), String>) -> Size {
        Size {
            bytes: r.as_ref().err().map_or(0, String::len),
            entries: 0,
        }
    }
}

impl Export for PhasesCall {
    type Output = Phases;
    fn invoke<'s>(
        &'s self,
        store: &'s mut Store<HostState>,
        ex: &'s Exports,
    ) -> Invoked<'s, Phases> {
        Box::pin(async move {
            match ex {
                Exports::Guardrail(g) => Some(g.sluice_plugin_guardrail().call_phases(store).await),
                // `0.1` guardrails are asked about both.
                Exports::GuardrailV01(_) => Some(Ok(Phases::INPUT | Phases::OUTPUT)),
                _ => None,
            }
        })
    }
    fn size(_: &Phases) -> Size {
        Size::default()
    }
}

/// Bytes a verdict carries, for `limits.max-output-kb`.
fn verdict_size(v: &Verdict) -> Size {
    let bytes = match v {
        Verdict::Pass => 0,
        Verdict::Transform(t) => t.len(),
        Verdict::Reject(r) => r.reason.len() + r.code.len(),
        Verdict::Flag(f) => f.reason.len() + f.code.len(),
    };
    Size { bytes, entries: 0 }
}
