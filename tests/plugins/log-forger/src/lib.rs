//! Tries to forge gateway log lines: every text it controls that the
//! gateway logs (a `host.log` line, stdout, stderr, its reject reason)
//! carries CR/LF, NUL and an ANSI escape followed by a fake "served" line.
use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

/// What a forged line says; tests look for it at the start of a log line.
const FAKE: &str =
    "2026-11-27T00:00:00.000000Z  INFO sluice::server::chat: served request_id=FORGED status=200";

struct Forger;

impl Guardrail for Forger {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }
    fn check_output(_req: &Request, _output: String, _ctx: OutputContext) -> Verdict {
        let forged = format!("ok\r\n{FAKE} via=log\0\x1b[2K\x1b[1A\u{85}");
        sluice_sdk::log::warn(&forged);
        println!("stdout\n{FAKE} via=stdout");
        eprintln!("stderr\r\n{FAKE} via=stderr");
        Verdict::reject("forged\r\ncode", format!("no\n{FAKE} via=reason"))
    }
}

sluice_sdk::export_guardrail!(Forger);
