//! Does in `check-output` what the output text says, then passes:
//!
//! - `work N`: N ms of legal compute, timed with the monotonic clock (a slow
//!   but well-behaved plugin; its host calls are instant);
//! - `sleep N`: one N ms `wasi:clocks` sleep, a host call that only the
//!   deadline can cut short;
//! - `spin`: an endless loop that never calls the host.
//!
//! Imports `wasi:clocks`, so it loads only with `clocks = true`.
use std::time::{Duration, Instant};

use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct Slow;

fn millis(arg: Option<&str>) -> u64 {
    arg.and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

impl Guardrail for Slow {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        let mut words = output.split_whitespace();
        match words.next() {
            Some("work") => {
                let until = Instant::now() + Duration::from_millis(millis(words.next()));
                let mut n: u64 = 0;
                while Instant::now() < until {
                    for _ in 0..1000 {
                        n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
                    }
                }
            }
            Some("sleep") => std::thread::sleep(Duration::from_millis(millis(words.next()))),
            Some("spin") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(output.len() as u64));
                }
            }
            _ => {}
        }
        Verdict::Pass
    }
}

sluice_sdk::export_guardrail!(Slow);
