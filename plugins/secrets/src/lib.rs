//! `secrets`: a guardrail that keeps credentials out of requests and answers.
//!
//! Known formats (OpenAI `sk-…`, AWS `AKIA…` ids and 40-character secret keys
//! next to an "aws"/"secret" mention, GitHub `ghp_…`/`github_pat_…`, Slack
//! `xox?-…`, PEM private key blocks) are recognised by shape; anything else
//! by Shannon entropy. The scan is one pass over whitespace-delimited tokens,
//! no regex engine, so it stays in the microseconds on a fresh instance.
//!
//! Input: the last user message (the one a transform can replace); default
//! reject. Output: default redact (`[REDACTED:<kind>]`). In a stream, a
//! private key block opened in already-emitted text is redacted up to its
//! END line in the following windows.
//!
//! Config: `input-action` (reject | redact | off), `output-action`
//! (redact | reject | off), `generic` (bool), `entropy-threshold` (bits per
//! char), `entropy-min-length`.

mod scan;

pub use scan::{Finding, Scanner};
use sluice_sdk::{ConfigError, Guardrail, OutputContext, RequestInfo, Verdict, config, config_or};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Reject,
    Redact,
    Off,
}

fn action(key: &str, default: Action) -> Action {
    match config(key).as_deref().map(str::trim) {
        None => default,
        Some("reject") => Action::Reject,
        Some("redact") => Action::Redact,
        Some("off") => Action::Off,
        Some(other) => ConfigError {
            key: key.into(),
            message: format!("expected reject, redact or off, got {other:?}"),
        }
        .trap(),
    }
}

fn scanner() -> Scanner {
    Scanner {
        generic: config_or("generic", true),
        entropy_threshold: config_or("entropy-threshold", 4.0),
        entropy_min_length: config_or("entropy-min-length", 24),
    }
}

fn judge(text: &str, open_pem: bool, act: Action) -> Verdict {
    if act == Action::Off {
        return Verdict::Pass;
    }
    let found = scanner().find(text, open_pem);
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

/// The exported guardrail.
pub struct Secrets;

impl Guardrail for Secrets {
    fn check_input(req: RequestInfo) -> Verdict {
        let act = action("input-action", Action::Reject);
        req.last_user_message()
            .map_or(Verdict::Pass, |text| judge(text, false, act))
    }

    fn check_output(_req: RequestInfo, output: String, ctx: OutputContext) -> Verdict {
        let act = action("output-action", Action::Redact);
        judge(&output, scan::pem_open_at_end(&ctx.emitted), act)
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
    fn stream_window_inside_open_private_key() {
        clear_config();
        let ctx = OutputContext::window("Here:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow", 1, false);
        let out = Secrets::output_with("IBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nDone.", ctx);
        assert_eq!(out, Verdict::transform("[REDACTED:private-key]\nDone."));
    }
}
