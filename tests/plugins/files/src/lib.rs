//! Reads the file whose guest path is the output text and returns its
//! content as a transform, or rejects with code `io_error`. It imports
//! `wasi:filesystem`, so it only loads with a `files` grant, and then it
//! can only reach what the grant preopens.
use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

struct Files;

impl Guardrail for Files {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        match std::fs::read_to_string(output.trim()) {
            Ok(text) => Verdict::transform(text),
            Err(e) => Verdict::reject("io_error", e.to_string()),
        }
    }
}

sluice_sdk::export_guardrail!(Files);
