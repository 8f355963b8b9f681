//! Errors, one variant per phase, each naming the plugin and the cause, so
//! an operator reads *which plugin, which phase, why*.

use serde::Serialize;

/// Why a plugin could not be put into service (load, validate, instantiate),
/// or why the runtime itself could not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginError {
    /// Reading or compiling `NAME.wasm` / parsing `NAME.toml` failed.
    #[error("plugin `{plugin}`: load failed: {reason}")]
    Load { plugin: String, reason: String },
    /// The component or manifest breaks a rule: refused import, wrong
    /// contract version, kind mismatch, limit out of range.
    #[error("plugin `{plugin}`: refused: {reason}")]
    Validate { plugin: String, reason: String },
    /// The smoke-test instantiation failed (missing import, start trap, ...).
    #[error("plugin `{plugin}`: instantiation failed: {reason}")]
    Instantiate { plugin: String, reason: String },
    /// The engine or plugin directory could not be set up.
    #[error("plugin runtime: {0}")]
    Runtime(String),
}

impl PluginError {
    /// The plugin the error is about, if any.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            PluginError::Load { plugin, .. }
            | PluginError::Validate { plugin, .. }
            | PluginError::Instantiate { plugin, .. } => Some(plugin),
            PluginError::Runtime(_) => None,
        }
    }
}

/// Why one call to a loaded plugin failed. The caller then answers with the
/// plugin's failure mode; the gateway keeps serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PluginFailure {
    /// The guest trapped (panic, unreachable, stack overflow, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The call ran past `limits.deadline-ms`.
    #[error("exceeded its deadline")]
    Deadline,
    /// The guest hit `limits.memory-mb`.
    #[error("exceeded its memory limit")]
    Memory,
    /// The guest ran out of `limits.fuel` (only with `[plugins] fuel = true`).
    #[error("ran out of fuel")]
    Fuel,
    /// The answer exceeded `limits.max-output-kb`.
    #[error("returned {got} bytes, more than its {limit}-byte output limit")]
    OutputTooLarge { limit: usize, got: usize },
    /// The answer's list (a router's routes) exceeded `limits.max-output-entries`.
    #[error("returned {got} list entries, more than its limit of {limit}")]
    TooManyEntries { limit: usize, got: usize },
    /// The answer is well-formed but unusable (e.g. a downgrade to a model
    /// the gateway does not have); found by the pipeline.
    #[error("returned an invalid answer: {0}")]
    InvalidAnswer(String),
    /// No instance could be created for the call (or the plugin has the
    /// wrong kind for the call made).
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
}

impl PluginFailure {
    /// Short stable label for counters, logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PluginFailure::Trap(_) => "trap",
            PluginFailure::Deadline => "deadline",
            PluginFailure::Memory => "memory",
            PluginFailure::Fuel => "fuel",
            PluginFailure::OutputTooLarge { .. } => "output_too_large",
            PluginFailure::TooManyEntries { .. } => "too_many_entries",
            PluginFailure::InvalidAnswer(_) => "invalid_answer",
            PluginFailure::Instantiate(_) => "instantiate",
        }
    }
}
