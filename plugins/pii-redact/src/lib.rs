//! `pii-redact`: a guardrail that masks personal data in model output.
//!
//! Detection is `sluice_redact::pii` (shared with the gateway's request
//! log): a single hand-written pass over the bytes rather than a regex set,
//! since instances are fresh per call and building a regex automaton on
//! each call would cost more than the scan itself. False positives are
//! limited by validation: cards must pass Luhn, IBANs mod-97, IP addresses
//! must parse, SSNs must use assignable area/group/serial numbers and phones
//! must look like `+<8-15 digits>` or a grouped NANP number.
//!
//! Config: `entities` (list; default all), `mask` (`label` | `stars` |
//! `partial`), `check-input` (bool; also redact the last user message).
//! Checked at load: an unknown key, entity or mask refuses the plugin. The
//! host only asks about input when `check-input` is on.

pub use sluice_redact::pii::{Entity, Mask, Span, find, redact};
use sluice_sdk::{
    ConfigError, Guardrail, OutputContext, Phases, Request, Verdict, check_keys, config,
    config_list, config_parsed,
};

/// The `[config]` keys this plugin reads.
const KEYS: &[&str] = &["entities", "mask", "check-input"];

/// What the config says.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub entities: Vec<Entity>,
    pub mask: Mask,
    pub check_input: bool,
}

impl Settings {
    /// Read and check the config.
    pub fn from_config() -> Result<Self, ConfigError> {
        check_keys(KEYS)?;
        let entities = match config_list("entities")? {
            None => Entity::ALL.to_vec(),
            Some(names) => names
                .iter()
                .map(|n| {
                    Entity::parse(n).ok_or_else(|| {
                        ConfigError::new(
                            "entities",
                            format!(
                                "unknown entity {n:?} (known: email, phone, ssn, credit-card, iban, ipv4, ipv6)"
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let mask = match config("mask").as_deref().map(str::trim) {
            None | Some("label") => Mask::Label,
            Some("stars") => Mask::Stars,
            Some("partial") => Mask::Partial,
            Some(other) => {
                return Err(ConfigError::new(
                    "mask",
                    format!("expected label, stars or partial, got {other:?}"),
                ));
            }
        };
        let check_input = config_parsed("check-input")?.unwrap_or(false);
        Ok(Settings {
            entities,
            mask,
            check_input,
        })
    }

    /// Validated at load, so an error here cannot happen (it would trap:
    /// the failure mode applies).
    fn loaded() -> Self {
        Self::from_config().unwrap_or_else(|e| e.trap())
    }

    fn verdict(&self, text: &str) -> Verdict {
        match redact(text, &self.entities, self.mask) {
            Some(redacted) => Verdict::Transform(redacted),
            None => Verdict::Pass,
        }
    }
}

/// The exported guardrail.
pub struct PiiRedact;

impl Guardrail for PiiRedact {
    fn phases() -> Phases {
        match Settings::from_config() {
            Ok(s) if s.check_input => Phases::INPUT | Phases::OUTPUT,
            _ => Phases::OUTPUT,
        }
    }

    fn validate_config() -> Result<(), String> {
        Settings::from_config().map(drop).map_err(|e| e.to_string())
    }

    fn check_input(req: &Request) -> Verdict {
        let s = Settings::loaded();
        if !s.check_input {
            return Verdict::Pass;
        }
        req.last_user_text()
            .map_or(Verdict::Pass, |t| s.verdict(&t))
    }

    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        Settings::loaded().verdict(&output)
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
    fn bad_config_is_refused_at_load() {
        for (key, value, says) in [
            ("entities", r#"["email", "dna"]"#, "dna"),
            ("mask", "blur", "blur"),
            ("check-input", "maybe", "check-input"),
            ("mask-style", "label", "mask-style"),
        ] {
            set_config(&[(key, value)]);
            let e = PiiRedact::validate_config().unwrap_err();
            assert!(e.contains(says), "{e}");
            // Were a call to happen anyway, it would trap, not guess.
            assert!(std::panic::catch_unwind(|| PiiRedact::output("x")).is_err());
        }
        set_config(&[
            ("entities", r#"["email"]"#),
            ("mask", "stars"),
            ("check-input", "true"),
        ]);
        assert_eq!(PiiRedact::validate_config(), Ok(()));
    }

    #[test]
    fn input_only_when_enabled() {
        let req = Request::chat("m", &[("user", "my mail is a@b.io"), ("assistant", "ok")]);
        clear_config();
        assert_eq!(PiiRedact::phases(), Phases::OUTPUT);
        assert_eq!(PiiRedact::check_input(&req), Verdict::Pass);
        set_config(&[("check-input", "true")]);
        assert_eq!(PiiRedact::phases(), Phases::INPUT | Phases::OUTPUT);
        assert_eq!(
            PiiRedact::check_input(&req),
            Verdict::transform("my mail is [EMAIL]")
        );
    }
}
