//! Reports the wall clock in nanoseconds since the epoch and the monotonic
//! clock's nanoseconds across a short busy loop, as a transform
//! (`wall=N;spin=N;`). It imports `wasi:clocks`: inert (1 ms resolution)
//! without a grant, full resolution with `clocks = true`.
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct Clocks;

impl Guardrail for Clocks {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, _output: String, _ctx: OutputContext) -> Verdict {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let start = Instant::now();
        let mut x = 0u64;
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let spin = start.elapsed().as_nanos();
        Verdict::transform(format!("wall={wall};spin={spin};"))
    }
}

sluice_sdk::export_guardrail!(Clocks);
