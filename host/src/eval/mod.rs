//! Evaluations that gate changes: run a suite of cases through the gateway,
//! score every answer, report, and compare two runs so CI can refuse a
//! prompt or model change that makes answers worse.
//!
//! - [`suite`]: YAML suites (cases, inputs, expectations, categories).
//! - [`scorer`]: exact, contains, regex, JSON Schema, numeric, length,
//!   guardrail verdict, judge, error.
//! - [`judge`]: the fixed rubric and the lenient parsing of a judge's answer.
//! - [`guardrail`]: guardrail scorers on the runner's own plugin runtime.
//! - [`client`]: the gateway's HTTP API with retries (the runner is an
//!   ordinary client).
//! - [`runner`]: bounded concurrency, repeats, the progress bar.
//! - [`run`]: what a run records; [`stats`]: the numbers.
//! - [`compare`]: per-case and per-category deltas, significance, the gate.
//! - [`report`]: JSON, Markdown and a self-contained HTML page.
//! - [`store`], [`admin`]: results kept in the state layer, per model and
//!   prompt version (`/admin/evals`).
//! - [`quality`]: the quality alert when a stored run is worse than the
//!   subject's previous one.

pub mod admin;
pub mod client;
pub mod compare;
pub mod config;
pub mod guardrail;
pub mod judge;
pub mod quality;
pub mod report;
pub mod run;
pub mod runner;
pub mod scorer;
pub mod stats;
pub mod store;
pub mod suite;

pub use client::Client;
pub use compare::{Comparison, Thresholds, compare};
pub use config::EvalsConfig;
pub use run::{Run, Summary};
pub use runner::Options;
pub use store::{EvalStore, RunRecord};
pub use suite::Suite;
