//! 40 MiB of zero-initialised static data: the component is small, but its
//! memory starts above the default `memory-mb = 32`, so it cannot even be
//! instantiated under that cap (only under a larger one).
use std::sync::atomic::{AtomicU8, Ordering};

use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

const SIZE: usize = 40 << 20;

/// Mutable (atomics), so it lands in the initial memory, not in the file.
static BIG: [AtomicU8; SIZE] = [const { AtomicU8::new(0) }; SIZE];

struct BigStatic;

impl Guardrail for BigStatic {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        let i = std::hint::black_box(output.len()) * 4099 % SIZE;
        BIG[i].fetch_add(1, Ordering::Relaxed);
        Verdict::transform(format!("byte {i} = {}", BIG[i].load(Ordering::Relaxed)))
    }
}

sluice_sdk::export_guardrail!(BigStatic);
