//! The WASM plugin runtime: guardrails, routers and cost policies as
//! sandboxed WebAssembly components (`sluice:plugin@0.1.0`, see `wit/`).
//!
//! - [`manifest`]: `NAME.toml`, every key with its default.
//! - [`capability`]: the grant vocabulary (baseline vs granted imports).
//! - `engine`: the one wasmtime engine (pooling, epoch ticker, compile cache).
//! - `sandbox`: per-call limits and failure classification.
//! - `instance`: [`Plugin`]: one call on a fresh instance, inline or from
//!   its `pool`, counted in `stats`.
//! - `loader`: files → validated, smoke-tested plugin.
//! - `registry`: [`PluginRuntime`] and the atomically swapped [`PluginSet`].
//! - `watcher`: debounced hot reload (rename-into-place convention).
//! - [`audit`]: `sluice plugin audit`.
//!
//! The runtime offers single plugin calls; what a chain of guardrails means
//! and what a failure means (the failure mode) is the pipeline's business.
//! Calls are synchronous and block the calling thread for at most the
//! plugin's deadline. They may be made from a tokio worker: guest code runs
//! right there, and moves under `block_in_place` for plugins that turn out
//! to make blocking WASI calls (see [`with_guests`]).

pub mod audit;
mod bindings;
mod blocking;
pub mod capability;
mod config;
mod engine;
mod error;
mod host_state;
mod instance;
mod loader;
pub mod manifest;
mod outbound;
mod pool;
mod registry;
mod sandbox;
mod stats;
mod stdio;
mod watcher;

use std::sync::Arc;

pub use bindings::types::{
    Candidate, Decision, Estimate, LogLevel, Message, OutputContext, Rejection, RequestInfo, Route,
    Spend, Verdict,
};
pub use bindings::{PACKAGE, PACKAGE_VERSION, speaks_version};
pub use blocking::HostPanic;
pub use config::PluginsConfig;
pub use engine::EPOCH_TICK;
pub use error::{PluginError, PluginFailure};
pub use instance::Plugin;
pub use loader::{ComponentInfo, inspect};
pub use manifest::{FailureMode, Manifest, ManifestError, PluginKind};
pub use registry::{PluginRuntime, PluginSet, PluginState, PluginStatus, ReloadReport};
pub use stats::CallStats;

/// Run `f`, which calls `plugins`, where their guest code may run: right
/// here when every one of them runs inline (each call still falls back on
/// its own), otherwise off the async worker once for the whole batch (one
/// `block_in_place` instead of one per call). A host-side panic inside `f`
/// is caught, so a request never takes the worker down.
pub fn with_guests<R: Send>(
    plugins: &[Arc<Plugin>],
    f: impl FnOnce() -> R + Send,
) -> Result<R, HostPanic> {
    if plugins.iter().all(|p| p.runs_inline()) {
        return Ok(f());
    }
    blocking::run(f)
}
