//! Reports what it can see through the baseline `wasi:cli/environment`:
//! every env var and the argument count, as a transform
//! (`args=N;K=V;...`). Under the baseline that is `args=0;`.
use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct Env;

impl Guardrail for Env {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, _output: String, _ctx: OutputContext) -> Verdict {
        let mut seen = format!("args={};", std::env::args().count());
        for (k, v) in std::env::vars() {
            seen.push_str(&format!("{k}={v};"));
        }
        Verdict::transform(seen)
    }
}

sluice_sdk::export_guardrail!(Env);
