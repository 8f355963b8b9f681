//! `pii-redact`: a guardrail that masks personal data in model output.
//!
//! Detection is a single hand-written pass over the bytes (every pattern is
//! ASCII) rather than a regex set: instances are fresh per call, and building
//! a regex automaton on each call would cost more than the scan itself.
//! False positives are limited by validation: cards must pass Luhn, IBANs
//! mod-97, IP addresses must parse, SSNs must use assignable area/group/serial
//! numbers and phones must look like `+<8-15 digits>` or a grouped NANP number.
//!
//! Config: `entities` (list; default all), `mask` (`label` | `stars` |
//! `partial`), `check-input` (bool; also redact the last user message).

mod scan;

pub use scan::{Entity, Mask, Span, find, redact};
use sluice_sdk::{
    ConfigError, Guardrail, OutputContext, RequestInfo, Verdict, config, config_list,
};

/// Entities and mask style from config; a bad value traps (failure mode applies).
fn settings() -> (Vec<Entity>, Mask) {
    let entities = match config_list("entities") {
        Ok(None) => Entity::ALL.to_vec(),
        Ok(Some(names)) => names
            .iter()
            .map(|n| {
                Entity::parse(n).unwrap_or_else(|| {
                    ConfigError {
                        key: "entities".into(),
                        message: format!("unknown entity {n:?}"),
                    }
                    .trap()
                })
            })
            .collect(),
        Err(e) => e.trap(),
    };
    let mask = match config("mask").as_deref().map(str::trim) {
        None | Some("label") => Mask::Label,
        Some("stars") => Mask::Stars,
        Some("partial") => Mask::Partial,
        Some(other) => ConfigError {
            key: "mask".into(),
            message: format!("expected label, stars or partial, got {other:?}"),
        }
        .trap(),
    };
    (entities, mask)
}

fn verdict(text: &str) -> Verdict {
    let (entities, mask) = settings();
    match redact(text, &entities, mask) {
        Some(redacted) => Verdict::Transform(redacted),
        None => Verdict::Pass,
    }
}

/// The exported guardrail.
pub struct PiiRedact;

impl Guardrail for PiiRedact {
    fn check_input(req: RequestInfo) -> Verdict {
        if !sluice_sdk::config_or("check-input", false) {
            return Verdict::Pass;
        }
        req.last_user_message().map_or(Verdict::Pass, verdict)
    }

    fn check_output(_req: RequestInfo, output: String, _ctx: OutputContext) -> Verdict {
        verdict(&output)
    }
}

sluice_sdk::export_guardrail!(PiiRedact);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing::{GuardrailTest, clear_config, set_config};

    #[test]
    fn defaults_redact_every_entity_with_labels() {
        clear_config();
        let text = "Mail jane.doe+x@example.co.uk or call +44 20 7946 0958 / (415) 555-2671. \
                    SSN 123-45-6789, card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, \
                    hosts 192.168.0.17 and 2001:db8::8a2e:370:7334.";
        assert_eq!(
            PiiRedact::output(text),
            Verdict::transform(
                "Mail [EMAIL] or call [PHONE] / [PHONE]. \
                 SSN [SSN], card [CREDIT_CARD], IBAN [IBAN], \
                 hosts [IP_ADDRESS] and [IP_ADDRESS]."
            )
        );
    }

    #[test]
    fn clean_text_passes() {
        clear_config();
        assert_eq!(
            PiiRedact::output(
                "Version 1.2.3 shipped on 2024-01-15 at 12:30:45; order 12345678 costs $19.99."
            ),
            Verdict::Pass
        );
    }

    #[test]
    fn entity_list_and_masks_from_config() {
        set_config(&[("entities", r#"["email"]"#), ("mask", "partial")]);
        assert_eq!(
            PiiRedact::output("jane@example.com, 4111-1111-1111-1111"),
            Verdict::transform("j***@example.com, 4111-1111-1111-1111")
        );
        set_config(&[("entities", "credit-card, ssn"), ("mask", "partial")]);
        assert_eq!(
            PiiRedact::output("4111-1111-1111-1111"),
            Verdict::transform("****-****-****-1111")
        );
        set_config(&[("mask", "stars")]);
        assert_eq!(PiiRedact::output("a@b.io"), Verdict::transform("*@*.**"));
    }

    #[test]
    fn bad_config_traps() {
        set_config(&[("entities", r#"["email", "dna"]"#)]);
        assert!(std::panic::catch_unwind(|| PiiRedact::output("x")).is_err());
        set_config(&[("mask", "blur")]);
        assert!(std::panic::catch_unwind(|| PiiRedact::output("x")).is_err());
    }

    #[test]
    fn input_only_when_enabled() {
        let req = RequestInfo::chat("m", &[("user", "my mail is a@b.io"), ("assistant", "ok")]);
        clear_config();
        assert_eq!(PiiRedact::check_input(req.clone()), Verdict::Pass);
        set_config(&[("check-input", "true")]);
        assert_eq!(
            PiiRedact::check_input(req),
            Verdict::transform("my mail is [EMAIL]")
        );
    }
}
