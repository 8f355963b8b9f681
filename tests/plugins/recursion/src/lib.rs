//! Recurses without bound in `check-output`: a wasm stack overflow.
use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct Recursion;

#[inline(never)]
#[expect(unconditional_recursion, reason = "the point: overflow the wasm stack")]
fn descend(depth: u64) -> u64 {
    std::hint::black_box(descend(depth + 1)) ^ depth
}

impl Guardrail for Recursion {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        let n = descend(output.len() as u64);
        Verdict::transform(n.to_string())
    }
}

sluice_sdk::export_guardrail!(Recursion);
