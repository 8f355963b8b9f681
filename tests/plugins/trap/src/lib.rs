//! Panics in `check-output` (a Rust panic is a wasm trap); `check-input` passes,
//! so tests can show the plugin keeps serving the calls that do not trap.
use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct Trap;

impl Guardrail for Trap {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        if output.contains("safe") {
            return Verdict::Pass;
        }
        panic!("hostile guest panicked on purpose");
    }
}

sluice_sdk::export_guardrail!(Trap);
