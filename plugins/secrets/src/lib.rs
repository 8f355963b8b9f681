//! `secrets`: a guardrail that keeps credentials out of requests and answers.
//!
//! Known formats (OpenAI `sk-…`, AWS `AKIA…` ids and 40-character secret keys
//! next to an "aws"/"secret" mention, GitHub `ghp_…`/`github_pat_…`, Slack
//! `xox?-…`, PEM private key blocks) are recognised by shape; anything else
//! by Shannon entropy. The scan (`sluice_redact::secrets`, shared with the
//! gateway's request log) is one pass over tokens, no regex engine, so it stays in the microseconds on a fresh instance.
//!
//! Input: the last user message (the one a transform can replace); default
//! reject. Output: default redact (`[REDACTED:<kind>]`). In a stream, a
//! private key block opened in already-emitted text is redacted up to its
//! END line in the following windows.
//!
//! Config: `input-action` (reject | redact | off), `output-action`
//! (redact | reject | off), `generic` (bool), `entropy-threshold` (bits per
//! char, above 0 and at most 8), `entropy-min-length` (8 to 4096). Checked
//! at load; an action set to `off` takes that phase out of the host's
//! chains (`phases`), so it costs nothing.

use sluice_redact::secrets as scan;
pub use sluice_redact::secrets::{Finding, Scanner};
use sluice_sdk::{
    ConfigError, Guardrail, OutputContext, Phases, Request, Verdict, check_keys, config,
    config_parsed,
};

/// The `[config]` keys this plugin reads.
const KEYS: &[&str] = &[
    "input-action",
    "output-action",
    "generic",
    "entropy-threshold",
    "entropy-min-length",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Reject,
    Redact,
    Off,
}

fn action(key: &str, default: Action) -> Result<Action, ConfigError> {
    Ok(match config(key).as_deref().map(str::trim) {
        None => default,
        Some("reject") => Action::Reject,
        Some("redact") => Action::Redact,
        Some("off") => Action::Off,
        Some(other) => {
            return Err(ConfigError::new(
                key,
                format!("expected reject, redact or off, got {other:?}"),
            ));
        }
    })
}

/// What the config says.
#[derive(Debug, Clone)]
struct Settings {
    input: Action,
    output: Action,
    scanner: Scanner,
}

impl Settings {
    fn from_config() -> Result<Self, ConfigError> {
        check_keys(KEYS)?;
        let d = Scanner::default();
        let scanner = Scanner {
            generic: config_parsed("generic")?.unwrap_or(d.generic),
            entropy_threshold: config_parsed("entropy-threshold")?.unwrap_or(d.entropy_threshold),
            entropy_min_length: config_parsed("entropy-min-length")?
                .unwrap_or(d.entropy_min_length),
        };
        // Shannon entropy of a character is at most 8 bits (a byte).
        if !(scanner.entropy_threshold > 0.0 && scanner.entropy_threshold <= 8.0) {
            return Err(ConfigError::new(
                "entropy-threshold",
                format!(
                    "{} is not a bits-per-character value in (0, 8]",
                    scanner.entropy_threshold
                ),
            ));
        }
        if !(8..=4096).contains(&scanner.entropy_min_length) {
            return Err(ConfigError::new(
                "entropy-min-length",
                format!(
                    "{} is outside 8..=4096 (shorter tokens are mostly words)",
                    scanner.entropy_min_length
                ),
            ));
        }
        Ok(Settings {
            input: action("input-action", Action::Reject)?,
            output: action("output-action", Action::Redact)?,
            scanner,
        })
    }

    /// Validated at load, so an error here cannot happen (it would trap:
    /// the failure mode applies).
    fn loaded() -> Self {
        Self::from_config().unwrap_or_else(|e| e.trap())
    }

    fn judge(&self, text: &str, open_pem: bool, act: Action) -> Verdict {
        if act == Action::Off {
            return Verdict::Pass;
        }
        let found = self.scanner.find(text, open_pem);
        let Some(first) = found.first() else {
            return Verdict::Pass;
        };
        match act {
            Action::Reject => Verdict::reject(
                "secret",
                format!("text contains a credential ({}); remove it", first.kind),
            ),
            _ => Verdict::Transform(scan::redact(text, &found)),
        }
    }
}

/// The exported guardrail.
pub struct Secrets;

impl Guardrail for Secrets {
    fn phases() -> Phases {
        let Ok(s) = Settings::from_config() else {
            return Phases::all();
        };
        let mut p = Phases::empty();
        p.set(Phases::INPUT, s.input != Action::Off);
        p.set(Phases::OUTPUT, s.output != Action::Off);
        p
    }

    fn validate_config() -> Result<(), String> {
        Settings::from_config().map(drop).map_err(|e| e.to_string())
    }

    fn check_input(req: &Request) -> Verdict {
        let s = Settings::loaded();
        req.last_user_text()
            .map_or(Verdict::Pass, |text| s.judge(&text, false, s.input))
    }

    fn check_output(_req: &Request, output: String, ctx: OutputContext) -> Verdict {
        let s = Settings::loaded();
        s.judge(&output, scan::pem_open_at_end(&ctx.emitted), s.output)
    }
}

sluice_sdk::export_guardrail!(Secrets);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing::{GuardrailTest, clear_config, code, set_config};

    const OPENAI: &str = "sk-proj-4fT9xQ2mZ7vL1pR8sK3nB6wY0cD5eH";

    #[test]
    fn input_rejects_by_default() {
        clear_config();
        assert_eq!(
            Secrets::input(&[("user", &format!("use key {OPENAI} please"))]),
            Verdict::reject(
                "secret",
                "text contains a credential (openai-key); remove it"
            )
        );
        assert_eq!(
            Secrets::input(&[("user", "what is an API key?")]),
            Verdict::Pass
        );
    }

    #[test]
    fn input_redact_and_off() {
        let req = [("user", "id AKIAIOSFODNN7EXAMPLE")];
        set_config(&[("input-action", "redact")]);
        assert_eq!(
            Secrets::input(&req),
            Verdict::transform("id [REDACTED:aws-access-key-id]")
        );
        set_config(&[("input-action", "off")]);
        assert_eq!(Secrets::input(&req), Verdict::Pass);
    }

    #[test]
    fn output_redacts_or_rejects() {
        clear_config();
        let text = format!("Set OPENAI_API_KEY={OPENAI} and go.");
        assert_eq!(
            Secrets::output(&text),
            Verdict::transform("Set OPENAI_API_KEY=[REDACTED:openai-key] and go.")
        );
        set_config(&[("output-action", "reject")]);
        assert_eq!(code(&Secrets::output(&text)), "secret");
        set_config(&[("output-action", "shred")]);
        assert!(std::panic::catch_unwind(|| Secrets::output(&text)).is_err());
    }

    #[test]
    fn config_is_checked_at_load_and_off_drops_a_phase() {
        clear_config();
        assert_eq!(Secrets::validate_config(), Ok(()));
        assert_eq!(Secrets::phases(), Phases::INPUT | Phases::OUTPUT);
        set_config(&[("input-action", "off")]);
        assert_eq!(Secrets::phases(), Phases::OUTPUT);
        set_config(&[("input-action", "off"), ("output-action", "off")]);
        assert_eq!(Secrets::phases(), Phases::empty());
        for (key, value) in [
            ("output-action", "shred"),
            ("generic", "yes"),
            ("entropy-threshold", "9"),
            ("entropy-threshold", "0"),
            ("entropy-min-length", "2"),
            ("entropy-treshold", "4.0"),
        ] {
            set_config(&[(key, value)]);
            let e = Secrets::validate_config().unwrap_err();
            assert!(e.contains(key), "{key}={value}: {e}");
        }
    }

    #[test]
    fn stream_window_inside_open_private_key() {
        clear_config();
        let ctx = OutputContext::window("Here:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow", 1, false);
        let out = Secrets::output_with("IBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nDone.", ctx);
        assert_eq!(out, Verdict::transform("[REDACTED:private-key]\nDone."));
    }
}
