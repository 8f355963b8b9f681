//! Answers every output with a 1 MiB transform, far above the default
//! 256 KiB `max-output-kb`.
use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct Huge;

impl Guardrail for Huge {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, _output: String, _ctx: OutputContext) -> Verdict {
        Verdict::transform("x".repeat(1 << 20))
    }
}

sluice_sdk::export_guardrail!(Huge);
