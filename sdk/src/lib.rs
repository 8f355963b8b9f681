//! `sluice-sdk`: write a Sluice plugin as a plain trait impl plus one export macro.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2` that targets
//! exactly one world of the `sluice:plugin@0.2.0` contract (see `wit/` in the
//! repository): a [`Guardrail`], a [`Router`] or a [`CostPolicy`]. Implement the
//! trait on a unit struct and export it with the matching macro. The host makes
//! a fresh instance for every call (unless the operator opts in to reuse with
//! `[limits] calls-per-instance`), so a plugin must keep no state between calls.
//!
//! The request is a [`Request`]: inside the gateway it stays on the host and
//! each method fetches one piece (read only what you need; a long
//! conversation is never copied into a call that does not ask for it).
//! Natively, in unit tests, it is plain data ([`RequestData`],
//! [`Request::chat`]).
//!
//! Every plugin may also say, once at load:
//! - `validate_config`: whether its `[config]` is acceptable. An error
//!   refuses the plugin (a previous version keeps serving) and its message
//!   is shown to the operator; check every key you read, and refuse keys you
//!   do not know ([`check_keys`]) so a typo is caught at load, not on the
//!   first request;
//! - `phases` (guardrails): which checks it implements. The host never calls
//!   the other one.
//!
//! ```
//! use sluice_sdk::{Guardrail, OutputContext, Phases, Request, Verdict};
//!
//! /// Refuses answers written entirely in capitals.
//! struct NoShouting;
//!
//! impl NoShouting {
//!     fn min_letters() -> Result<usize, sluice_sdk::ConfigError> {
//!         Ok(sluice_sdk::config_parsed("min-letters")?.unwrap_or(8))
//!     }
//! }
//!
//! impl Guardrail for NoShouting {
//!     fn phases() -> Phases {
//!         Phases::OUTPUT
//!     }
//!
//!     fn validate_config() -> Result<(), String> {
//!         sluice_sdk::check_keys(&["min-letters"]).map_err(|e| e.to_string())?;
//!         Self::min_letters().map(drop).map_err(|e| e.to_string())
//!     }
//!
//!     fn check_input(_req: &Request) -> Verdict {
//!         Verdict::Pass
//!     }
//!
//!     fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
//!         let min = Self::min_letters().unwrap_or_else(|e| e.trap());
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
//! assert_eq!(NoShouting::validate_config(), Ok(()));
//! let out = NoShouting::check_output(&Request::default(), "NO WAY".into(), OutputContext::whole());
//! assert_eq!(out, Verdict::reject("shouting", "the answer is all capitals"));
//!
//! sluice_sdk::testing::set_config(&[("min-leters", "3")]);
//! let refused = NoShouting::validate_config().unwrap_err();
//! assert!(refused.contains("min-leters"), "{refused}");
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
mod request;
pub mod testing;
mod types;

pub use config::{
    ConfigError, check_keys, config, config_json, config_keys, config_list, config_or,
    config_parsed,
};
pub use request::{Request, RequestData};
pub use types::*;

/// Generated bindings. Every world of the contract exports `lifecycle`
/// beside its kind's interface, and wit-bindgen names an interface's
/// export macro after the interface alone, so generating the three worlds
/// in one crate would define `lifecycle`'s macro three times. The SDK
/// therefore generates four worlds of its own, each exporting one contract
/// interface: `lifecycle` (owner of the shared `types` and `host`) and one
/// per kind. An export macro below exports two of them; wit-component
/// merges their type sections, so the component has exactly its kind's
/// contract world (host imported; lifecycle and the kind exported).
#[doc(hidden)]
pub mod __bindings {
    /// `lifecycle`, and the one set of `types` and `host` bindings.
    pub mod lifecycle {
        wit_bindgen::generate!({
            inline: "
                package sluice:sdk;
                world lifecycle {
                    import sluice:plugin/host@0.2.0;
                    export sluice:plugin/lifecycle@0.2.0;
                }
            ",
            path: "../wit",
            world: "sluice:sdk/lifecycle",
            pub_export_macro: true,
            generate_all,
            additional_derives: [PartialEq],
        });
    }

    /// A guardrail's own export.
    pub mod guardrail {
        wit_bindgen::generate!({
            inline: "
                package sluice:sdk;
                world guardrail {
                    import sluice:plugin/host@0.2.0;
                    export sluice:plugin/guardrail@0.2.0;
                }
            ",
            path: "../wit",
            world: "sluice:sdk/guardrail",
            pub_export_macro: true,
            with: {
                "sluice:plugin/types@0.2.0": crate::__bindings::lifecycle::sluice::plugin::types,
                "sluice:plugin/host@0.2.0": crate::__bindings::lifecycle::sluice::plugin::host,
            },
        });
    }

    /// A router's own export.
    pub mod router {
        wit_bindgen::generate!({
            inline: "
                package sluice:sdk;
                world router {
                    import sluice:plugin/host@0.2.0;
                    export sluice:plugin/router@0.2.0;
                }
            ",
            path: "../wit",
            world: "sluice:sdk/router",
            pub_export_macro: true,
            with: {
                "sluice:plugin/types@0.2.0": crate::__bindings::lifecycle::sluice::plugin::types,
                "sluice:plugin/host@0.2.0": crate::__bindings::lifecycle::sluice::plugin::host,
            },
        });
    }

    /// A cost policy's own export.
    pub mod cost_policy {
        wit_bindgen::generate!({
            inline: "
                package sluice:sdk;
                world cost-policy {
                    import sluice:plugin/host@0.2.0;
                    export sluice:plugin/cost-policy@0.2.0;
                }
            ",
            path: "../wit",
            world: "sluice:sdk/cost-policy",
            pub_export_macro: true,
            with: {
                "sluice:plugin/types@0.2.0": crate::__bindings::lifecycle::sluice::plugin::types,
                "sluice:plugin/host@0.2.0": crate::__bindings::lifecycle::sluice::plugin::host,
            },
        });
    }

    use crate::{
        Candidate, Decision, Estimate, OutputContext, Phases, Request, Route, Spend, Verdict,
    };
    use lifecycle::sluice::plugin::types::Request as Lent;

    /// Run `f` on the request the host lent to this call.
    fn with_request<R>(lent: &Lent, f: impl FnOnce(&Request) -> R) -> R {
        // SAFETY: `req` lives only inside this call, while `lent` is borrowed.
        let req = unsafe { Request::lent(lent) };
        f(&req)
    }

    impl<T: crate::Guardrail> guardrail::exports::sluice::plugin::guardrail::Guest for T {
        fn phases() -> Phases {
            <T as crate::Guardrail>::phases()
        }
        fn check_input(request: &Lent) -> Verdict {
            with_request(request, |r| <T as crate::Guardrail>::check_input(r))
        }
        fn check_output(request: &Lent, output: String, context: OutputContext) -> Verdict {
            with_request(request, |r| {
                <T as crate::Guardrail>::check_output(r, output, context)
            })
        }
    }

    impl<T: crate::Router> router::exports::sluice::plugin::router::Guest for T {
        fn route(request: &Lent, candidates: Vec<Candidate>) -> Vec<Route> {
            with_request(request, |r| <T as crate::Router>::route(r, candidates))
        }
    }

    impl<T: crate::CostPolicy> cost_policy::exports::sluice::plugin::cost_policy::Guest for T {
        fn decide(request: &Lent, estimate: Estimate, spends: Vec<Spend>) -> Decision {
            with_request(request, |r| {
                <T as crate::CostPolicy>::decide(r, estimate, spends)
            })
        }
    }
}

/// A guardrail checks what goes into a model (`check_input`) and what comes
/// out (`check_output`): pass, transform (replace the text), reject, or flag
/// for human review.
pub trait Guardrail {
    /// Check the request before it goes upstream (every message may matter:
    /// tool results and retrieved content carry indirect injection). A
    /// transform replaces the text of the last user message.
    fn check_input(req: &Request) -> Verdict;

    /// Check model output. `ctx.choice` and `ctx.part` say which text of the
    /// answer this is. Non-streamed: `output` is that text whole and
    /// `ctx.is_final` is true. Streamed: `output` is one window and
    /// `ctx.emitted` holds (the tail of) what the client already received.
    fn check_output(req: &Request, output: String, ctx: OutputContext) -> Verdict;

    /// Which of the two checks this guardrail implements (asked once at
    /// load; the host never calls the other). Default: both.
    fn phases() -> Phases {
        Phases::INPUT | Phases::OUTPUT
    }

    /// Check this plugin's `[config]` (asked once at load, and by `sluice
    /// plugin audit`). An error refuses the plugin with that message.
    /// Default: accept anything.
    fn validate_config() -> Result<(), String> {
        Ok(())
    }
}

/// A router orders the candidate routes for a request: first is tried first,
/// the rest are fallbacks. An empty list means "use the configured order".
pub trait Router {
    /// Pick and order routes among `candidates` (others are ignored by the host).
    fn route(req: &Request, candidates: Vec<Candidate>) -> Vec<Route>;

    /// See [`Guardrail::validate_config`].
    fn validate_config() -> Result<(), String> {
        Ok(())
    }
}

/// A cost policy decides whether a request may spend money, and how much.
pub trait CostPolicy {
    /// Called once per request before the upstream call with the worst-case
    /// estimate and the spend of every budget that applies (key, user,
    /// feature; day and month). [`Spend::tightest`] picks the one with the
    /// least left.
    fn decide(req: &Request, est: Estimate, spends: Vec<Spend>) -> Decision;

    /// See [`Guardrail::validate_config`].
    fn validate_config() -> Result<(), String> {
        Ok(())
    }
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
        $crate::__export_lifecycle!($ty, $crate::Guardrail);
        #[cfg(target_arch = "wasm32")]
        $crate::__export_guardrail_impl!($ty with_types_in $crate::__bindings::guardrail);
        const _: fn() = $crate::__assert_guardrail::<$ty>;
    };
}

/// Export a [`Router`] implementation as this component's `router-plugin`
/// world. Use once per crate: `export_router!(MyType);`
#[macro_export]
macro_rules! export_router {
    ($ty:ident) => {
        $crate::__export_lifecycle!($ty, $crate::Router);
        #[cfg(target_arch = "wasm32")]
        $crate::__export_router_impl!($ty with_types_in $crate::__bindings::router);
        const _: fn() = $crate::__assert_router::<$ty>;
    };
}

/// Export a [`CostPolicy`] implementation as this component's
/// `cost-policy-plugin` world. Use once per crate: `export_cost_policy!(MyType);`
#[macro_export]
macro_rules! export_cost_policy {
    ($ty:ident) => {
        $crate::__export_lifecycle!($ty, $crate::CostPolicy);
        #[cfg(target_arch = "wasm32")]
        $crate::__export_cost_policy_impl!($ty with_types_in $crate::__bindings::cost_policy);
        const _: fn() = $crate::__assert_cost_policy::<$ty>;
    };
}

/// `lifecycle` for `$ty`, forwarding to its kind trait `$kind`: implemented
/// here, in the plugin's crate, because the three kinds share one
/// `lifecycle::Guest` trait (a blanket impl per kind would overlap).
#[doc(hidden)]
#[macro_export]
macro_rules! __export_lifecycle {
    ($ty:ident, $kind:path) => {
        impl $crate::__bindings::lifecycle::exports::sluice::plugin::lifecycle::Guest for $ty {
            fn validate_config() -> ::core::result::Result<(), ::std::string::String> {
                <$ty as $kind>::validate_config()
            }
        }
        #[cfg(target_arch = "wasm32")]
        $crate::__export_lifecycle_impl!($ty with_types_in $crate::__bindings::lifecycle);
    };
}

#[doc(hidden)]
pub fn __assert_guardrail<T: Guardrail>() {}
#[doc(hidden)]
pub fn __assert_router<T: Router>() {}
#[doc(hidden)]
pub fn __assert_cost_policy<T: CostPolicy>() {}
