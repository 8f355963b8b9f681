//! Host-side bindings for every contract version the host speaks, generated
//! at build time: the current `sluice:plugin@0.2.0` from `wit/` and the
//! released `0.1.0` from `wit/frozen/0.1.0/` (never edited). A guest built
//! against either loads; `compat` converts between the two.
//!
//! Within one version the guardrail world is generated first; the router
//! and cost-policy worlds reuse its `types` and `host` modules through
//! `with:` so there is exactly one Rust type per WIT type of that version,
//! whatever kind of plugin produced it.
//!
//! Exports are called with `call_async` (guest code runs on a fiber, see
//! `sandbox`); the contract's own imports (`log`, `config`, the `request`
//! methods) never block and stay plain functions. The `request` methods are
//! `trappable`: a handle missing from the store's resource table (a guest
//! forging one) traps the call instead of panicking the host.

use std::fmt;

use serde::Serialize;

/// The router and cost-policy worlds of the contract at `$path`, reusing
/// the `types` and `host` modules of the same version's guardrail world.
macro_rules! other_worlds {
    ($path:tt) => {
        /// The `router-plugin` world.
        pub mod router {
            wasmtime::component::bindgen!({
                path: $path,
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
                path: $path,
                world: "cost-policy-plugin",
                exports: { default: async },
                with: {
                    "sluice:plugin/types": super::guardrail::sluice::plugin::types,
                    "sluice:plugin/host": super::guardrail::sluice::plugin::host,
                },
            });
        }
    };
}

/// `sluice:plugin@0.2.0`, the current contract (`wit/`).
pub mod v0_2 {
    /// The `guardrail-plugin` world; owner of the shared `types` and `host` modules.
    pub mod guardrail {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "guardrail-plugin",
            additional_derives: [PartialEq],
            exports: { default: async },
            imports: { "sluice:plugin/types": trappable },
            with: {
                "sluice:plugin/types.request": crate::plugin::request::SharedRequest,
            },
        });
    }

    other_worlds!("../wit");

    pub use guardrail::sluice::plugin::{host, types};
}

/// `sluice:plugin@0.1.0`, frozen (`wit/frozen/0.1.0`).
pub mod v0_1 {
    /// The `guardrail-plugin` world; owner of the shared `types` and `host` modules.
    pub mod guardrail {
        wasmtime::component::bindgen!({
            path: "../wit/frozen/0.1.0",
            world: "guardrail-plugin",
            exports: { default: async },
        });
    }

    other_worlds!("../wit/frozen/0.1.0");

    pub use guardrail::sluice::plugin::{host, types};
}

pub use v0_2::{host, types};

/// The WIT package every plugin is built against.
pub const PACKAGE: &str = "sluice:plugin";
/// The current contract version (`wit/`): what new plugins are built against.
pub const PACKAGE_VERSION: &str = Contract::CURRENT.version();

/// A contract version this host speaks. A guest's `major.minor` picks it
/// (patch releases only add).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Contract {
    /// `0.1.x`: the request as one record, no flag verdict, one spend, no
    /// `lifecycle` (see `compat`).
    #[serde(rename = "0.1")]
    V0_1,
    /// `0.2.x`: the request as a host resource, flags, every spend,
    /// `validate-config` and guardrail `phases`.
    #[serde(rename = "0.2")]
    V0_2,
}

impl Contract {
    /// The version `wit/` describes.
    pub const CURRENT: Contract = Contract::V0_2;
    /// Every version spoken, newest first.
    pub const ALL: [Contract; 2] = [Contract::V0_2, Contract::V0_1];

    /// The version a guest built against `v` (e.g. `0.1.3`) gets, if any.
    pub fn of(v: &str) -> Option<Contract> {
        let (major_minor, _patch) = v.rsplit_once('.')?;
        Self::ALL
            .into_iter()
            .find(|c| c.version().rsplit_once('.').map(|(mm, _)| mm) == Some(major_minor))
    }

    /// The full version the host's bindings were generated from.
    pub const fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    /// `sluice:plugin@0.2.x and sluice:plugin@0.1.x`, for refusals.
    pub fn spoken() -> String {
        Self::ALL
            .iter()
            .map(|c| format!("{PACKAGE}@{c}.x"))
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

impl fmt::Display for Contract {
    /// `major.minor`: `0.2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.version();
        f.write_str(v.rsplit_once('.').map_or(v, |(mm, _)| mm))
    }
}

/// `["input", "output"]`: a guardrail's phases as the operator reads them.
pub fn phase_names(p: types::Phases) -> Vec<&'static str> {
    [
        (types::Phases::INPUT, "input"),
        (types::Phases::OUTPUT, "output"),
    ]
    .into_iter()
    .filter(|(f, _)| p.contains(*f))
    .map(|(_, n)| n)
    .collect()
}

/// Whether a guest built against contract version `v` loads here.
pub fn speaks_version(v: &str) -> bool {
    Contract::of(v).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_by_major_minor() {
        assert_eq!(Contract::of("0.1.0"), Some(Contract::V0_1));
        assert_eq!(Contract::of("0.1.7"), Some(Contract::V0_1));
        assert_eq!(Contract::of("0.2.0"), Some(Contract::V0_2));
        assert_eq!(Contract::of("0.3.0"), None);
        assert_eq!(Contract::of("1.2.0"), None);
        assert_eq!(Contract::of(""), None);
        assert_eq!(PACKAGE_VERSION, "0.2.0");
        assert_eq!(
            Contract::spoken(),
            "sluice:plugin@0.2.x and sluice:plugin@0.1.x"
        );
    }
}
