//! The grant vocabulary: the ONE place that says which component imports
//! are always linked (the contract and the deny-by-default baseline), which
//! are linked inert without a grant, and how each group is linked. The
//! loader's import check, the per-plugin linker and `sluice plugin audit`
//! all use it.
//!
//! | manifest key            | links                                               | without the key                  |
//! |-------------------------|-----------------------------------------------------|----------------------------------|
//! | (contract, always)      | `sluice:plugin/host`, `sluice:plugin/types` @0.2.x and @0.1.x |                |
//! | (baseline, always)      | `wasi:cli/{environment,exit,stdin,stdout,stderr,terminal-*}`, `wasi:io/{error,poll,streams}`: empty env, no args, empty stdin, captured stdout/stderr | |
//! | `clocks = true`         | `wasi:clocks/{wall-clock,monotonic-clock}`, full resolution | inert: both clocks read in whole milliseconds |
//! | `random = true`         | `wasi:random/{random,insecure,insecure-seed}`       | inert: the same randomness       |
//! | `env = ["NAME"]`        | nothing new: fills the baseline environment         | empty environment                |
//! | `files = [...]`         | `wasi:filesystem/{types,preopens}` + clocks, with the listed preopens | inert: no preopened directory |
//! | `http = ["host"]`       | `wasi:http/{types,outgoing-handler}` + clocks, requests to listed hosts | inert: every request refused |
//! | `sockets = ["ip:port"]` | `wasi:sockets/*` + clocks (TCP connect to listed addresses only) | inert: TCP, UDP and name lookup off, every address refused |
//!
//! "Inert" interfaces are linked without a grant because, linked that way,
//! they grant nothing: ordinary builds of Python, JavaScript and C import
//! them whether or not the code uses them, and refusing them made no
//! default build of those languages load. `[plugins] strict-imports = true`
//! ([`Baseline::Strict`]) links only the contract and `wasi:cli` / `wasi:io`
//! without a grant, as before.
//!
//! Files, http and sockets imply clocks because their WASI types use clock
//! types (timestamps, timeouts); a guest using them imports the clocks too.
//!
//! Clock resolution: without a clock grant both clocks are floored to
//! [`INERT_CLOCK_RESOLUTION`] (1 ms) and report that resolution. A guest has
//! no threads, so the clocks are its only timer; a sub-microsecond timer is
//! what cache-timing and Spectre-style probes need, and no guardrail
//! decision needs one. 1 ms is also the epoch tick that enforces deadlines,
//! so nothing a guest can observe about its own time budget gets coarser.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::{HasData, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
use wasmtime_wasi::p2::bindings as wasi;
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};

use super::bindings::{self, Contract, v0_1, v0_2};
use super::host_state::HostState;
use super::manifest::Capabilities;

/// A capability that must be granted by name in `[capabilities]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grant {
    Clocks,
    Random,
    Files,
    Http,
    Sockets,
}

/// Resolution of the clocks of a plugin without a clock grant.
pub const INERT_CLOCK_RESOLUTION: Duration = Duration::from_millis(1);

/// Which interfaces are linked without a grant: the `[plugins]
/// strict-imports` switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// The contract, `wasi:cli` / `wasi:io`, and the inert interfaces
    /// (clocks, random, filesystem, sockets, http; see the module docs).
    #[default]
    WithInert,
    /// Only the contract and `wasi:cli` / `wasi:io`; every other interface
    /// needs its grant.
    Strict,
}

impl Baseline {
    /// The baseline for `[plugins] strict-imports = strict`.
    pub fn from_strict_imports(strict: bool) -> Self {
        if strict {
            Baseline::Strict
        } else {
            Baseline::WithInert
        }
    }
}

impl Grant {
    /// Every group, in linking order.
    pub const ALL: [Grant; 5] = [
        Grant::Clocks,
        Grant::Random,
        Grant::Files,
        Grant::Http,
        Grant::Sockets,
    ];

    /// Why the group grants nothing when linked without its key.
    pub fn inert_reason(self) -> &'static str {
        match self {
            Grant::Clocks => "time only, in whole milliseconds",
            Grant::Random => "random bytes grant no authority",
            Grant::Files => "no preopened directory, so nothing to open",
            Grant::Http => "every outbound request refused (no `http` hosts)",
            Grant::Sockets => "TCP, UDP and name lookup off; every address refused",
        }
    }

    /// The manifest key that grants it.
    pub fn key(self) -> &'static str {
        match self {
            Grant::Clocks => "clocks",
            Grant::Random => "random",
            Grant::Files => "files",
            Grant::Http => "http",
            Grant::Sockets => "sockets",
        }
    }
}

/// Why an import may or may not be linked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Access {
    /// The plugin contract itself (`sluice:plugin/host`, `types`), at a
    /// version the host speaks.
    Contract,
    /// Needed by any std-built guest; linked deny-by-default.
    Baseline,
    /// Linked without a grant because, linked that way, it grants nothing.
    Inert { reason: &'static str },
    /// Linked because the manifest grants it.
    Granted { grant: Grant },
    /// Not linked: the load is refused.
    Refused { reason: String },
}

impl Access {
    pub fn is_refused(&self) -> bool {
        matches!(self, Access::Refused { .. })
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Contract => f.write_str("contract"),
            Access::Baseline => f.write_str("baseline"),
            Access::Inert { reason } => write!(f, "baseline (inert): {reason}"),
            Access::Granted { grant } => write!(f, "granted ({})", grant.key()),
            Access::Refused { reason } => write!(f, "REFUSED ({reason})"),
        }
    }
}

enum Class {
    Contract,
    Baseline,
    /// Inert without its grant, refused without it under [`Baseline::Strict`].
    Needs(Grant),
}

/// Every interface the host can link, by `namespace:package/interface`.
const INTERFACES: &[(&str, Class)] = &[
    ("sluice:plugin/host", Class::Contract),
    ("sluice:plugin/types", Class::Contract),
    ("wasi:cli/environment", Class::Baseline),
    ("wasi:cli/exit", Class::Baseline),
    ("wasi:cli/stdin", Class::Baseline),
    ("wasi:cli/stdout", Class::Baseline),
    ("wasi:cli/stderr", Class::Baseline),
    ("wasi:cli/terminal-input", Class::Baseline),
    ("wasi:cli/terminal-output", Class::Baseline),
    ("wasi:cli/terminal-stdin", Class::Baseline),
    ("wasi:cli/terminal-stdout", Class::Baseline),
    ("wasi:cli/terminal-stderr", Class::Baseline),
    ("wasi:io/error", Class::Baseline),
    ("wasi:io/poll", Class::Baseline),
    ("wasi:io/streams", Class::Baseline),
    ("wasi:clocks/wall-clock", Class::Needs(Grant::Clocks)),
    ("wasi:clocks/monotonic-clock", Class::Needs(Grant::Clocks)),
    ("wasi:random/random", Class::Needs(Grant::Random)),
    ("wasi:random/insecure", Class::Needs(Grant::Random)),
    ("wasi:random/insecure-seed", Class::Needs(Grant::Random)),
    ("wasi:filesystem/types", Class::Needs(Grant::Files)),
    ("wasi:filesystem/preopens", Class::Needs(Grant::Files)),
    ("wasi:http/types", Class::Needs(Grant::Http)),
    ("wasi:http/outgoing-handler", Class::Needs(Grant::Http)),
    ("wasi:sockets/network", Class::Needs(Grant::Sockets)),
    (
        "wasi:sockets/instance-network",
        Class::Needs(Grant::Sockets),
    ),
    ("wasi:sockets/tcp", Class::Needs(Grant::Sockets)),
    (
        "wasi:sockets/tcp-create-socket",
        Class::Needs(Grant::Sockets),
    ),
    ("wasi:sockets/udp", Class::Needs(Grant::Sockets)),
    (
        "wasi:sockets/udp-create-socket",
        Class::Needs(Grant::Sockets),
    ),
    ("wasi:sockets/ip-name-lookup", Class::Needs(Grant::Sockets)),
];

/// The grants a manifest gives, implied clocks included.
pub fn granted(caps: &Capabilities) -> Vec<Grant> {
    let mut g = Vec::new();
    let needs_clocks =
        caps.clocks || !caps.files.is_empty() || !caps.http.is_empty() || !caps.sockets.is_empty();
    if needs_clocks {
        g.push(Grant::Clocks);
    }
    if caps.random {
        g.push(Grant::Random);
    }
    if !caps.files.is_empty() {
        g.push(Grant::Files);
    }
    if !caps.http.is_empty() {
        g.push(Grant::Http);
    }
    if !caps.sockets.is_empty() {
        g.push(Grant::Sockets);
    }
    g
}

/// Split `ns:pkg/iface@1.2.3` into (`ns:pkg/iface`, Some(`1.2.3`)).
pub fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (name, None),
    }
}

/// Decide one import of a component, given the grants of its manifest and
/// the operator's [`Baseline`].
pub fn classify(import: &str, grants: &[Grant], baseline: Baseline) -> Access {
    let (iface, version) = split_version(import);
    let Some((_, class)) = INTERFACES.iter().find(|(n, _)| *n == iface) else {
        return Access::Refused {
            reason: "not an interface the host provides".into(),
        };
    };
    let version = version.unwrap_or("");
    if let Class::Contract = class {
        return if bindings::speaks_version(version) {
            Access::Contract
        } else {
            Access::Refused {
                reason: format!(
                    "built against {}@{version}, this host speaks {}",
                    bindings::PACKAGE,
                    Contract::spoken()
                ),
            }
        };
    }
    if !version.starts_with("0.2.") {
        return Access::Refused {
            reason: format!("WASI version `{version}` unsupported, the host links WASI 0.2.x"),
        };
    }
    match class {
        Class::Contract => unreachable!("handled above"),
        Class::Baseline => Access::Baseline,
        Class::Needs(g) if grants.contains(g) => Access::Granted { grant: *g },
        Class::Needs(g) => match baseline {
            Baseline::WithInert => Access::Inert {
                reason: g.inert_reason(),
            },
            Baseline::Strict => Access::Refused {
                reason: format!(
                    "not granted; needs `{}` in [capabilities] ([plugins] strict-imports is on)",
                    g.key()
                ),
            },
        },
    }
}

/// The linker for one plugin: contract (every version spoken: their
/// interfaces have distinct versioned names) + baseline + its grants, and
/// the other groups too unless `baseline` is strict. A group is linked the
/// same way granted or inert: what it can reach is decided by the plugin's
/// context (`host_state`), built from the same manifest. WASI functions that
/// may wait (streams, poll, files, sockets, http) are the async variants:
/// the call's deadline cancels them (`instance`).
pub(crate) fn linker(
    engine: &Engine,
    grants: &[Grant],
    baseline: Baseline,
) -> wasmtime::Result<Linker<HostState>> {
    let mut l = Linker::new(engine);
    // Every world of a version imports the same `host` + `types`, so one
    // world's imports link them all.
    v0_2::guardrail::GuardrailPlugin::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut l,
        |s| s,
    )?;
    v0_1::guardrail::GuardrailPlugin::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut l,
        |s| s,
    )?;
    link_baseline(&mut l)?;
    for g in Grant::ALL {
        if grants.contains(&g) || baseline == Baseline::WithInert {
            link_grant(&mut l, g)?;
        }
    }
    Ok(l)
}

struct HasIo;
impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

fn link_baseline(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    type T = HostState;
    wasi::cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    wasi::cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    wasi::cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    wasi::cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    wasi::cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    wasi::cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    wasi::cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    wasi::cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    wasi::cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    wasi::cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    wasi::io::error::add_to_linker::<T, HasIo>(l, |t| &mut t.table)?;
    wasi::io::poll::add_to_linker::<T, HasIo>(l, |t| &mut t.table)?;
    wasi::io::streams::add_to_linker::<T, HasIo>(l, |t| &mut t.table)?;
    Ok(())
}

fn link_grant(l: &mut Linker<HostState>, grant: Grant) -> wasmtime::Result<()> {
    type T = HostState;
    match grant {
        Grant::Clocks => {
            wasi::clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
            wasi::clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
        }
        Grant::Random => {
            wasi::random::random::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.random())?;
            wasi::random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.random())?;
            wasi::random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.random())?;
        }
        Grant::Files => {
            wasi::filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
            wasi::filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
        }
        Grant::Http => wasmtime_wasi_http::p2::add_only_http_to_linker_async(l)?,
        Grant::Sockets => {
            let opts = wasi::LinkOptions::default();
            wasi::sockets::network::add_to_linker::<T, WasiSockets>(
                l,
                &(&opts).into(),
                T::sockets,
            )?;
            wasi::sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
            wasi::sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
            wasi::sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
            wasi::sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
            wasi::sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
            wasi::sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INERT: Baseline = Baseline::WithInert;
    const STRICT: Baseline = Baseline::Strict;

    #[test]
    fn baseline_and_contract_need_no_grant() {
        for b in [INERT, STRICT] {
            assert_eq!(
                classify("wasi:cli/environment@0.2.3", &[], b),
                Access::Baseline
            );
            assert_eq!(classify("wasi:io/streams@0.2.0", &[], b), Access::Baseline);
            for contract in [
                "sluice:plugin/host@0.1.0",
                "sluice:plugin/types@0.1.4",
                "sluice:plugin/host@0.2.0",
                "sluice:plugin/types@0.2.1",
            ] {
                assert_eq!(classify(contract, &[], b), Access::Contract, "{contract}");
            }
        }
    }

    #[test]
    fn inert_interfaces_load_without_a_grant_and_say_why() {
        for (import, why) in [
            ("wasi:filesystem/preopens@0.2.9", "no preopened directory"),
            ("wasi:sockets/tcp@0.2.0", "every address refused"),
            ("wasi:sockets/ip-name-lookup@0.2.12", "name lookup off"),
            ("wasi:random/insecure-seed@0.2.12", "no authority"),
            ("wasi:clocks/monotonic-clock@0.2.3", "whole milliseconds"),
            (
                "wasi:http/outgoing-handler@0.2.10",
                "every outbound request refused",
            ),
        ] {
            let access = classify(import, &[], INERT);
            assert!(matches!(access, Access::Inert { .. }), "{import}: {access}");
            let text = access.to_string();
            assert!(
                text.starts_with("baseline (inert)") && text.contains(why),
                "{import}: {text}"
            );
        }
    }

    #[test]
    fn grants_still_show_as_granted() {
        assert_eq!(
            classify("wasi:filesystem/preopens@0.2.3", &[Grant::Files], INERT),
            Access::Granted {
                grant: Grant::Files
            }
        );
        assert_eq!(
            classify("wasi:clocks/wall-clock@0.2.3", &[Grant::Clocks], STRICT),
            Access::Granted {
                grant: Grant::Clocks
            }
        );
    }

    #[test]
    fn strict_imports_refuse_what_is_not_granted() {
        let r = classify("wasi:filesystem/types@0.2.3", &[], STRICT);
        let text = r.to_string();
        assert!(
            text.contains("needs `files`") && text.contains("strict-imports"),
            "{text}"
        );
        assert!(classify("wasi:sockets/tcp@0.2.0", &[Grant::Http], STRICT).is_refused());
        assert!(classify("wasi:random/random@0.2.0", &[Grant::Clocks], STRICT).is_refused());
        assert!(classify("wasi:http/types@0.2.0", &[], STRICT).is_refused());
    }

    #[test]
    fn unknown_imports_and_other_versions_are_refused() {
        for b in [INERT, STRICT] {
            assert!(classify("acme:evil/backdoor@1.0.0", &[], b).is_refused());
            assert!(classify("log", &[], b).is_refused());
            assert!(classify("wasi:cli/environment@0.3.0", &[], b).is_refused());
            assert!(classify("wasi:filesystem/types@0.3.0", &[], b).is_refused());
            let r = classify("sluice:plugin/host@0.3.0", &[], b);
            let text = r.to_string();
            assert!(
                text.contains("0.3.0") && text.contains("0.2.x") && text.contains("0.1.x"),
                "{text}"
            );
        }
    }

    #[test]
    fn io_grants_imply_clocks() {
        let caps = Capabilities {
            http: vec!["a.example".into()],
            ..Default::default()
        };
        assert_eq!(granted(&caps), vec![Grant::Clocks, Grant::Http]);
        assert!(granted(&Capabilities::default()).is_empty());
        let caps = Capabilities {
            env: vec!["HOME".into()],
            ..Default::default()
        };
        assert!(granted(&caps).is_empty());
    }

    #[test]
    fn every_grant_links() {
        let engine = Engine::default();
        linker(&engine, &Grant::ALL, STRICT).unwrap();
        linker(&engine, &[], INERT).unwrap();
    }
}
