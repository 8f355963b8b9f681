//! The WASM plugin runtime: guardrails, routers and cost policies as
//! sandboxed WebAssembly components.
//!
//! # The contract and its versions
//!
//! Plugins target one world of the WIT package `sluice:plugin` (`wit/`).
//! The host speaks two versions side by side (`bindings`):
//!
//! - **`0.2`** (current): the request is a host-owned `resource`, lent to
//!   each call as a `borrow<request>`; the guest pulls what it reads
//!   ([`RequestInfo`] is its host side, shared as an `Arc` by every call
//!   of one request). Guardrails may `flag` for review, see which choice
//!   and part of the answer they check, and declare their `phases`; cost
//!   policies see every applicable [`Spend`]; every plugin exports
//!   `lifecycle.validate-config`, called at load.
//! - **`0.1`** (frozen in `wit/frozen/0.1.0`): still loads. `compat`
//!   converts the current types down for the call and the answer up, so
//!   nothing outside this module knows which version a plugin speaks.
//!
//! A component built against any other version is refused at load with a
//! message naming its version and the ones spoken.
//!
//! # Modules
//!
//! - [`manifest`]: `NAME.toml`, every key with its default.
//! - [`capability`]: the grant vocabulary (baseline vs granted imports).
//! - `engine`: the one wasmtime engine (pooling, epoch ticker, compile cache).
//! - `cache`: the on-disk compile cache and how its bytes are validated.
//! - `sandbox`: per-call limits and failure classification.
//! - `request`: [`RequestInfo`] and the `request` resource's methods.
//! - `exports`: each exported function at each version; `compat`: `0.1`.
//! - `instance`: [`Plugin`]: one call on a fresh instance (made in the
//!   calling task, or taken from its `pool`), counted in `stats`.
//! - [`log`]: escaping plugin-controlled text for the gateway log.
//! - `loader`: files → validated, smoke-tested plugin (its config accepted
//!   by the guest, its phases known).
//! - `registry`: [`PluginRuntime`] and the atomically swapped [`PluginSet`].
//! - `watcher`: debounced hot reload (rename-into-place convention).
//! - [`audit`]: `sluice plugin audit`.
//!
//! The runtime offers single plugin calls; what a chain of guardrails means
//! and what a failure means (the failure mode) is the pipeline's business.
//! Calls are `async` and end within the plugin's wall-clock deadline: guest
//! code runs on a wasmtime fiber in the calling task and yields to the
//! runtime at every epoch tick, and WASI host calls are futures that the
//! deadline cancels. A slow guest therefore never holds a tokio worker for
//! more than a tick, and a blocking host call never holds a thread.

pub mod audit;
mod bindings;
mod cache;
pub mod capability;
mod compat;
mod config;
mod engine;
mod error;
mod exports;
mod handoff;
pub mod history;
mod host_state;
mod instance;
mod loader;
pub mod log;
pub mod manifest;
mod outbound;
mod pool;
mod registry;
mod request;
mod sandbox;
mod stats;
mod stdio;
mod watcher;

pub use bindings::types::{
    BudgetPeriod, Candidate, Decision, Estimate, Flag, LogLevel, Message, OutputContext,
    OutputPart, Phases, PromptRef, Rejection, Route, Spend, ToolCall, Verdict,
};
pub use bindings::{Contract, PACKAGE, PACKAGE_VERSION, phase_names, speaks_version};
pub use config::PluginsConfig;
pub use engine::EPOCH_TICK;
pub use error::{PluginError, PluginFailure};
pub use history::{ReloadEvent, ReloadTrigger};
pub use instance::Plugin;
/// Also reads prompt files (`crate::prompt`), with the same guarantees.
pub(crate) use loader::read_regular;
pub use loader::{ComponentInfo, inspect};
pub use manifest::{FailureMode, Isolation, Manifest, ManifestError, PluginKind};
pub use registry::{PluginRuntime, PluginSet, PluginState, PluginStatus, ReloadReport};
pub use request::RequestInfo;
pub use stats::{CallStats, VerdictKind};
