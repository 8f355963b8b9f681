//! Host-side bindings for the `sluice:plugin@0.1.0` worlds, generated from
//! `wit/` at build time.
//!
//! The guardrail world is generated first; the router and cost-policy worlds
//! reuse its `types` and `host` modules through `with:` so there is exactly
//! one Rust type per WIT type, whatever kind of plugin produced it.
//!
//! Exports are called with `call_async` (guest code runs on a fiber, see
//! `sandbox`); the contract's own imports (`log`, `config`) never block and
//! stay plain functions.

/// The `guardrail-plugin` world; owner of the shared `types` and `host` modules.
pub mod guardrail {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "guardrail-plugin",
        additional_derives: [PartialEq],
        exports: { default: async },
    });
}

/// The `router-plugin` world.
pub mod router {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "router-plugin",
        exports: { default: async },
        with: {
            "sluice:plugin/types": super::guardrail::sluice::plugin::types,
            "sluice:plugin/host": super::guardrail::sluice::plugin::host,
        },
    });
}

/// The `cost-policy-plugin` world.
pub mod cost_policy {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "cost-policy-plugin",
        exports: { default: async },
        with: {
            "sluice:plugin/types": super::guardrail::sluice::plugin::types,
            "sluice:plugin/host": super::guardrail::sluice::plugin::host,
        },
    });
}

pub use guardrail::sluice::plugin::{host, types};

/// The WIT package every plugin is built against, as the host speaks it.
pub const PACKAGE: &str = "sluice:plugin";
/// The contract version this host implements.
pub const PACKAGE_VERSION: &str = "0.1.0";

/// Whether a guest built against contract version `v` loads here: the same
/// `major.minor` as [`PACKAGE_VERSION`] (patch releases only add).
pub fn speaks_version(v: &str) -> bool {
    let minor = |v: &str| v.rsplit_once('.').map(|(mm, _)| mm.to_owned());
    minor(v).is_some_and(|mm| Some(mm) == minor(PACKAGE_VERSION))
}
