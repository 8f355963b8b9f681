//! Rejects requests and answers containing the phrase set in the manifest's
//! `[config] phrase` (ASCII case-insensitive); see
//! `examples/guardrails/cases.yaml`.

use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};

/// The configured phrase, lower-cased; `None` (and a warning) when unset.
fn phrase() -> Option<String> {
    match sluice_sdk::config("phrase") {
        Some(p) if !p.is_empty() => Some(p.to_ascii_lowercase()),
        _ => {
            sluice_sdk::log::warn("no `phrase` in [config]: passing everything");
            None
        }
    }
}

fn contains(text: &str, phrase: &str) -> bool {
    text.to_ascii_lowercase().contains(phrase)
}

struct BannedPhrase;

impl Guardrail for BannedPhrase {
    fn check_input(req: &Request) -> Verdict {
        let (Some(phrase), Some(text)) = (phrase(), req.last_user_text()) else {
            return Verdict::Pass;
        };
        if contains(&text, &phrase) {
            sluice_sdk::log::info("banned phrase in the request");
            return Verdict::reject("banned_phrase", "the request contains a banned phrase");
        }
        Verdict::Pass
    }

    fn check_output(_req: &Request, output: String, ctx: OutputContext) -> Verdict {
        let Some(phrase) = phrase() else {
            return Verdict::Pass;
        };
        // A phrase split across stream windows is caught in the later one.
        if contains(&(ctx.emitted + &output), &phrase) {
            sluice_sdk::log::info("banned phrase in the answer");
            return Verdict::reject("banned_phrase", "the answer contains a banned phrase");
        }
        Verdict::Pass
    }
}

sluice_sdk::export_guardrail!(BannedPhrase);
