//! Prompts as code: a versioned registry of prompt templates, rendered into
//! chat requests, hot-reloaded from files, rolled back without editing them.
//!
//! - [`file`]: the prompt file (`ID.toml` / `ID.yaml`), one prompt, every
//!   version: template, model, temperature, max tokens, output guardrails,
//!   required variables and defaults.
//! - `template`: Handlebars (strict, unescaped), checked at load against the
//!   declared variables.
//! - `loaded`: [`Prompt`], a validated file; rendering names every missing
//!   variable.
//! - `registry`: [`Prompts`], the atomically swapped [`PromptSet`], file
//!   statuses, and which version serves (activation record, else the file).
//! - `watcher`: debounced hot reload; a broken edit keeps the previous
//!   version serving and says why.
//! - [`activation`]: who pinned which version when, in the state layer.
//! - [`apply`]: the `prompt` extension of `/v1/chat/completions`.
//! - [`admin`]: the `/admin/prompts` endpoints.
//!
//! A request rendered from the registry carries its [`PromptRef`] to the
//! response (`x-sluice-prompt: id@version`), the log line and the ledger,
//! so cost and quality are visible per version.

pub mod activation;
pub mod admin;
pub mod apply;
pub mod config;
mod error;
pub mod file;
mod loaded;
mod registry;
mod template;
mod watcher;

pub use activation::Activation;
pub use apply::{Applied, PromptRef, apply};
pub use config::PromptsConfig;
pub use error::PromptError;
pub use loaded::{Prompt, Version};
pub use registry::{
    ActivateError, ActiveSource, PromptReload, PromptSet, PromptStatus, Prompts, Resolved,
    StartError,
};
