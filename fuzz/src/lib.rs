//! The gateway's parsers, compiled on their own for fuzzing.
//!
//! The modules are included by path rather than through the `sluice`
//! crate: both are `std` + `serde` only, and building all of `sluice`
//! (wasmtime, cranelift) with sanitizer instrumentation would take most of
//! a fuzzing session on a small machine. Keep these two files free of
//! other dependencies.

#[path = "../../host/src/openai.rs"]
pub mod openai;

#[path = "../../host/src/provider/sse.rs"]
pub mod sse;
