//! The WASM plugin runtime: guardrails, routers and cost policies as
//! sandboxed WebAssembly components (`sluice:plugin@0.1.0`, see `wit/`).
//!
//! - [`manifest`]: `NAME.toml`, every key with its default.
//! - [`capability`]: the grant vocabulary (baseline vs granted imports).
//! - `engine`: the one wasmtime engine (pooling, epoch ticker, compile cache).
//! - `sandbox`: per-call limits and failure classification.
//! - `instance`: [`Plugin`]: fresh instance per call, inline or from a refilled pool.
//! - `loader`: files → validated, smoke-tested plugin.
//! - `registry`: [`PluginRuntime`] and the atomically swapped [`PluginSet`].
//! - `watcher`: debounced hot reload (rename-into-place convention).
//! - [`audit`]: `sluice plugin audit`.
//! - `chain`: guardrail chains.
//!
//! Calls are synchronous and block the calling thread for at most the
//! plugin's deadline. They may be made from a tokio worker: guest code runs
//! right there, and moves under `block_in_place` for plugins that turn out
//! to make blocking WASI calls (see `blocking`).

pub mod audit;
mod bindings;
mod blocking;
pub mod capability;
mod chain;
mod engine;
mod error;
mod host_state;
mod instance;
mod loader;
pub mod manifest;
mod outbound;
mod registry;
mod sandbox;
mod stdio;
mod watcher;

pub use bindings::types::{
    Candidate, Decision, Estimate, LogLevel, Message, OutputContext, Rejection, RequestInfo, Route,
    Spend, Verdict,
};
pub use bindings::{PACKAGE, PACKAGE_VERSION};
pub use chain::{ChainResult, run_input_chain, run_output_chain};
pub use engine::EPOCH_TICK;
pub use error::{PluginError, PluginFailure};
pub use instance::{CallStats, Checked, Plugin};
pub use loader::{ComponentInfo, inspect};
pub use manifest::{FailureMode, Manifest, PluginKind};
pub use registry::{
    PluginRuntime, PluginSet, PluginState, PluginStatus, ReloadReport, RuntimeConfig,
};
pub use stdio::escape_control;
