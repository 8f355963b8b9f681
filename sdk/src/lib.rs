//! `sluice-sdk`: write a Sluice plugin as a plain trait impl plus one export macro.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2` that targets
//! exactly one world of the `sluice:plugin@0.1.0` contract (see `wit/` in the
//! repository): a [`Guardrail`], a [`Router`] or a [`CostPolicy`]. Implement the
//! trait on a unit struct and export it with the matching macro. The host makes
//! a fresh instance for every call, so a plugin keeps no state between calls.
//!
//! ```
//! use sluice_sdk::{Guardrail, OutputContext, RequestInfo, Verdict};
//!
//! /// Refuses answers written entirely in capitals.
//! struct NoShouting;
//!
//! impl Guardrail for NoShouting {
//!     fn check_input(_req: RequestInfo) -> Verdict {
//!         Verdict::Pass
//!     }
//!
//!     fn check_output(_req: RequestInfo, output: String, _ctx: OutputContext) -> Verdict {
//!         let min: usize = sluice_sdk::config_or("min-letters", 8);
//!         let letters: Vec<char> = output.chars().filter(|c| c.is_alphabetic()).collect();
//!         if letters.len() >= min && letters.iter().all(|c| c.is_uppercase()) {
//!             sluice_sdk::log::info("shouting refused");
//!             return Verdict::reject("shouting", "the answer is all capitals");
//!         }
//!         Verdict::Pass
//!     }
//! }
//!
//! sluice_sdk::export_guardrail!(NoShouting);
//!
//! // Natively (unit tests) the host's `config` is served from a test map.
//! sluice_sdk::testing::set_config(&[("min-letters", "3")]);
//! let out = NoShouting::check_output(RequestInfo::default(), "NO WAY".into(), OutputContext::whole());
//! assert_eq!(out, Verdict::reject("shouting", "the answer is all capitals"));
//! ```
//!
//! Build: `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` plus a `NAME.toml` manifest is a plugin.
//!
//! Keep guests small: they import only the `host` interface and the std
//! baseline (`wasi:cli/*`, `wasi:io/*`). Anything else (for example
//! `std::collections::HashMap::new()`, which seeds from `wasi:random`) must be
//! granted in the manifest or the gateway refuses the plugin at load.

mod config;
pub mod log;
pub mod testing;
mod types;

pub use config::{ConfigError, config, config_json, config_list, config_or, config_parsed};
pub use types::*;

/// Generated bindings, one module per world. The `types` and `host`
/// interfaces are generated once (in `guardrail`) and reused by the others,
/// so all three worlds share one set of Rust types.
#[doc(hidden)]
pub mod __bindings {
    /// The `guardrail-plugin` world (owner of the shared types).
    pub mod guardrail {
        wit_bindgen::generate!({
            world: "guardrail-plugin",
            path: "../wit",
            pub_export_macro: true,
            additional_derives: [PartialEq],
        });
    }

    /// The `router-plugin` world.
    pub mod router {
        wit_bindgen::generate!({
            world: "router-plugin",
            path: "../wit",
            pub_export_macro: true,
            with: {
                "sluice:plugin/types@0.1.0": crate::__bindings::guardrail::sluice::plugin::types,
                "sluice:plugin/host@0.1.0": crate::__bindings::guardrail::sluice::plugin::host,
            },
        });
    }

    /// The `cost-policy-plugin` world.
    pub mod cost_policy {
        wit_bindgen::generate!({
            world: "cost-policy-plugin",
            path: "../wit",
            pub_export_macro: true,
            with: {
                "sluice:plugin/types@0.1.0": crate::__bindings::guardrail::sluice::plugin::types,
                "sluice:plugin/host@0.1.0": crate::__bindings::guardrail::sluice::plugin::host,
            },
        });
    }

    use crate::{Candidate, Decision, Estimate, OutputContext, RequestInfo, Route, Spend, Verdict};
    use cost_policy::exports::sluice::plugin::cost_policy as c;
    use guardrail::exports::sluice::plugin::guardrail as g;
    use router::exports::sluice::plugin::router as r;

    impl<T: crate::Guardrail> g::Guest for T {
        fn check_input(request: RequestInfo) -> Verdict {
            <T as crate::Guardrail>::check_input(request)
        }
        fn check_output(request: RequestInfo, output: String, context: OutputContext) -> Verdict {
            <T as crate::Guardrail>::check_output(request, output, context)
        }
    }

    impl<T: crate::Router> r::Guest for T {
        fn route(request: RequestInfo, candidates: Vec<Candidate>) -> Vec<Route> {
            <T as crate::Router>::route(request, candidates)
        }
    }

    impl<T: crate::CostPolicy> c::Guest for T {
        fn decide(request: RequestInfo, estimate: Estimate, spend: Spend) -> Decision {
            <T as crate::CostPolicy>::decide(request, estimate, spend)
        }
    }
}

/// A guardrail checks what goes into a model (`check_input`) and what comes
/// out (`check_output`): pass, transform (replace the text) or reject.
pub trait Guardrail {
    /// Check the request before it goes upstream. A transform replaces the
    /// text of the last user message. Return [`Verdict::Pass`] when only
    /// outputs matter.
    fn check_input(req: RequestInfo) -> Verdict;

    /// Check model output. Non-streamed: `output` is the whole answer and
    /// `ctx.is_final` is true. Streamed: `output` is one window and
    /// `ctx.emitted` holds what the client already received.
    fn check_output(req: RequestInfo, output: String, ctx: OutputContext) -> Verdict;
}

/// A router orders the candidate routes for a request: first is tried first,
/// the rest are fallbacks. An empty list means "use the configured order".
pub trait Router {
    /// Pick and order routes among `candidates` (others are ignored by the host).
    fn route(req: RequestInfo, candidates: Vec<Candidate>) -> Vec<Route>;
}

/// A cost policy decides whether a request may spend money, and how much.
pub trait CostPolicy {
    /// Called once per request before the upstream call with the worst-case
    /// estimate and the principal's spend in the current period.
    fn decide(req: RequestInfo, est: Estimate, spend: Spend) -> Decision;
}

/// Export a [`Guardrail`] implementation as this component's
/// `guardrail-plugin` world. Use once per crate: `export_guardrail!(MyType);`
///
/// Natively (unit tests) it only checks the trait bound: there is no
/// component to export into, and the export symbol names are not valid for
/// native linkers.
#[macro_export]
macro_rules! export_guardrail {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::__export_guardrail_plugin_impl!($ty with_types_in $crate::__bindings::guardrail);
        const _: fn() = $crate::__assert_guardrail::<$ty>;
    };
}

/// Export a [`Router`] implementation as this component's `router-plugin`
/// world. Use once per crate: `export_router!(MyType);`
#[macro_export]
macro_rules! export_router {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::__export_router_plugin_impl!($ty with_types_in $crate::__bindings::router);
        const _: fn() = $crate::__assert_router::<$ty>;
    };
}

/// Export a [`CostPolicy`] implementation as this component's
/// `cost-policy-plugin` world. Use once per crate: `export_cost_policy!(MyType);`
#[macro_export]
macro_rules! export_cost_policy {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::__export_cost_policy_plugin_impl!($ty with_types_in $crate::__bindings::cost_policy);
        const _: fn() = $crate::__assert_cost_policy::<$ty>;
    };
}

#[doc(hidden)]
pub fn __assert_guardrail<T: Guardrail>() {}
#[doc(hidden)]
pub fn __assert_router<T: Router>() {}
#[doc(hidden)]
pub fn __assert_cost_policy<T: CostPolicy>() {}
