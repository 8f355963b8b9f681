//! Rejects requests and answers containing the phrase set in the manifest's
//! `[config] phrase` (ASCII case-insensitive); see
//! `examples/guardrails/cases.yaml`. The phrase is checked at load
//! (`validate_config`): a missing or empty phrase, or any other key, refuses
//! the plugin instead of letting everything through.

use sluice_sdk::{ConfigError, Guardrail, OutputContext, Phases, Request, Verdict};

/// The configured phrase, lower-cased.
fn phrase() -> Result<String, ConfigError> {
    match sluice_sdk::config("phrase") {
        Some(p) if !p.trim().is_empty() => Ok(p.to_ascii_lowercase()),
        Some(_) => Err(ConfigError::new(
            "phrase",
            "is empty: it would match every text",
        )),
        None => Err(ConfigError::new(
            "phrase",
            "missing: set the phrase to refuse",
        )),
    }
}

/// The phrase of a plugin that passed `validate_config`; a trap otherwise
/// (the manifest's failure mode answers, and the log says why).
fn validated_phrase() -> String {
    phrase().unwrap_or_else(|e| e.trap())
}

fn contains(text: &str, phrase: &str) -> bool {
    text.to_ascii_lowercase().contains(phrase)
}

struct BannedPhrase;

impl Guardrail for BannedPhrase {
    fn phases() -> Phases {
        Phases::INPUT | Phases::OUTPUT
    }

    fn validate_config() -> Result<(), String> {
        sluice_sdk::check_keys(&["phrase"])
            .and_then(|()| phrase())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn check_input(req: &Request) -> Verdict {
        let Some(text) = req.last_user_text() else {
            return Verdict::Pass;
        };
        if contains(&text, &validated_phrase()) {
            sluice_sdk::log::info("banned phrase in the request");
            return Verdict::reject("banned_phrase", "the request contains a banned phrase");
        }
        Verdict::Pass
    }

    fn check_output(_req: &Request, output: String, ctx: OutputContext) -> Verdict {
        // A phrase split across stream windows is caught in the later one.
        if contains(&(ctx.emitted + &output), &validated_phrase()) {
            sluice_sdk::log::info("banned phrase in the answer");
            return Verdict::reject("banned_phrase", "the answer contains a banned phrase");
        }
        Verdict::Pass
    }
}

sluice_sdk::export_guardrail!(BannedPhrase);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing::{GuardrailTest, code, set_config};

    #[test]
    fn the_phrase_is_required_and_alone() {
        set_config(&[("phrase", "launch codes")]);
        assert_eq!(BannedPhrase::validate_config(), Ok(()));
        let refused: [&[(&str, &str)]; 3] =
            [&[], &[("phrase", " ")], &[("phrase", "x"), ("phrse", "y")]];
        for bad in refused {
            set_config(bad);
            let why = BannedPhrase::validate_config().unwrap_err();
            assert!(why.starts_with("config `phr"), "{why}");
        }
    }

    #[test]
    fn rejects_the_phrase_in_any_case_and_across_windows() {
        set_config(&[("phrase", "Launch Codes")]);
        assert_eq!(
            code(&BannedPhrase::input(&[("user", "the LAUNCH codes")])),
            "banned_phrase"
        );
        assert_eq!(
            BannedPhrase::input(&[("user", "launch, codes")]),
            Verdict::Pass
        );
        let ctx = OutputContext::window("the launch c", 1, false);
        assert_eq!(
            code(&BannedPhrase::output_with("odes", ctx)),
            "banned_phrase"
        );
    }
}
