//! Spins forever in `check-output`: only the epoch deadline stops it.
use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct Loop;

impl Guardrail for Loop {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(output.len() as u64));
        }
    }
}

sluice_sdk::export_guardrail!(Loop);
