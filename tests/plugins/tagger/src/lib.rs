//! A well-behaved guardrail for runtime tests and the benchmark.
//!
//! - `check-input`: prefixes the last user message with config `tag`.
//! - `check-output`: with config `max-chars` set, a length check (reject
//!   `too_long` above it, pass otherwise), run `repeat` times (default 1) so
//!   the benchmark can separate guest work from instantiation; else
//!   prefixes config `tag` (default `tagged:`). Outputs containing `REJECT`
//!   are rejected.
//!
//! It reads nothing of the request but the last user message, so a long
//! conversation costs it nothing (the benchmark's point).
use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct Tagger;

impl Guardrail for Tagger {
    fn check_input(req: &Request) -> Verdict {
        let tag = sluice_sdk::config("tag").unwrap_or_else(|| "tagged:".into());
        match req.last_user_text() {
            Some(m) => Verdict::transform(format!("{tag}{m}")),
            None => Verdict::Pass,
        }
    }
    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        if let Some(max) = sluice_sdk::config("max-chars").and_then(|m| m.parse::<usize>().ok()) {
            let repeat: usize = sluice_sdk::config_or("repeat", 1);
            let mut count = 0;
            for _ in 0..repeat.max(1) {
                count = std::hint::black_box(&output).chars().count();
            }
            return if count > max {
                Verdict::reject("too_long", format!("longer than {max} characters"))
            } else {
                Verdict::Pass
            };
        }
        if output.contains("REJECT") {
            return Verdict::reject("tagger", "output asked to be rejected");
        }
        let tag = sluice_sdk::config("tag").unwrap_or_else(|| "tagged:".into());
        Verdict::transform(format!("{tag}{output}"))
    }
}

sluice_sdk::export_guardrail!(Tagger);
