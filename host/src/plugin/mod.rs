//! The WASM plugin runtime: guardrails, routers and cost policies as
//! sandboxed WebAssembly components (`sluice:plugin@0.1.0`, see `wit/`).
//!
//! - [`manifest`]: `NAME.toml`, every key with its default.
//! - [`capability`]: the grant vocabulary (baseline vs granted imports).
//! - `engine`: the one wasmtime engine (pooling, epoch ticker, compile cache).
//! - `sandbox`: per-call limits and failure classification.
//! - `instance`: [`Plugin`]: one call on a fresh instance (made in the
//!   calling task, or taken from its `pool`), counted in `stats`.
//! - [`log`]: escaping plugin-controlled text for the gateway log.
//! - `loader`: files → validated, smoke-tested plugin.
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
pub mod capability;
mod config;
mod engine;
mod error;
mod host_state;
mod instance;
mod loader;
pub mod log;
pub mod manifest;
mod outbound;
mod pool;
mod registry;
mod sandbox;
mod stats;
mod stdio;
mod watcher;

pub use bindings::types::{
    Candidate, Decision, Estimate, LogLevel, Message, OutputContext, Rejection, RequestInfo, Route,
    Spend, Verdict,
};
pub use bindings::{PACKAGE, PACKAGE_VERSION, speaks_version};
pub use config::PluginsConfig;
pub use engine::EPOCH_TICK;
pub use error::{PluginError, PluginFailure};
pub use instance::Plugin;
pub use loader::{ComponentInfo, inspect};
/// Also reads prompt files (`crate::prompt`), with the same guarantees.
pub(crate) use loader::read_regular;
pub use manifest::{FailureMode, Manifest, ManifestError, PluginKind};
pub use registry::{PluginRuntime, PluginSet, PluginState, PluginStatus, ReloadReport};
pub use stats::CallStats;
