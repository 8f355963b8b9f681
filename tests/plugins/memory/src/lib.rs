//! Allocates (and touches) 1 MiB blocks forever in `check-output`: the
//! host's memory cap must stop it.
use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct Memory;

impl Guardrail for Memory {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, _output: String, _ctx: OutputContext) -> Verdict {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xAB; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

sluice_sdk::export_guardrail!(Memory);
