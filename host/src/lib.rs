//! Sluice: an LLM gateway whose guardrails, routers and cost policies are
//! WebAssembly components.
//!
//! Where things live:
//! - [`plugin`]: the WASM component runtime (engine, manifests, capabilities,
//!   sandbox limits, instance pools, hot reload, audit).
//! - [`pipeline`]: one request's way through the gateway (guardrails, routing,
//!   cost policy, streaming windows).
//! - [`provider`]: upstream clients (OpenAI-compatible, Anthropic), retries,
//!   fallback, circuit breakers.
//! - [`server`]: the axum HTTP API and OpenAI-shaped errors.
//! - [`openai`]: OpenAI wire types shared by server, providers and mock.
//! - [`mock`]: `sluice mock-upstream`, a deterministic upstream with fault injection.
//! - [`state`]: usage ledger, budgets, virtual keys and rate limits on sled
//!   or Redis, and the price table.
//! - [`prompt`]: the versioned prompt registry and the `prompt` request extension.
//! - [`eval`]: the evaluation runner: suites, scorers, judge, reports, gates.
//! - [`reqlog`]: the request log (JSON lines, redacted, rotated).
//! - [`config`]: the TOML config file, its defaults and validation.
//! - [`cli`]: the `sluice` command line.

pub mod cache;
pub mod cli;
pub mod config;
pub mod eval;
pub mod metrics;
pub mod mock;
pub mod openai;
pub mod pipeline;
pub mod plugin;
pub mod prompt;
pub mod provider;
pub mod reqlog;
pub mod server;
pub mod state;
pub mod telemetry;
mod watch;
