//! Rewrites every US social security number in model output to `[SSN]`
//! (see `examples/guardrails/cases.yaml` for the exact rule). An
//! output-only guardrail that takes no settings.

use sluice_sdk::{Guardrail, OutputContext, Phases, Request, Verdict};

/// Byte ranges of the SSNs in `text`: `ddd-dd-dddd` with no ASCII digit
/// right before or after.
fn find_ssns(text: &str) -> Vec<(usize, usize)> {
    const SHAPE: &[u8] = b"ddd-dd-dddd";
    let b = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i + SHAPE.len() <= b.len() {
        let fits = SHAPE.iter().zip(&b[i..]).all(|(s, c)| match s {
            b'd' => c.is_ascii_digit(),
            _ => *c == b'-',
        });
        let end = i + SHAPE.len();
        let bounded =
            (i == 0 || !b[i - 1].is_ascii_digit()) && (end == b.len() || !b[end].is_ascii_digit());
        if fits && bounded {
            found.push((i, end));
            i = end;
        } else {
            i += 1;
        }
    }
    found
}

struct SsnRedact;

impl Guardrail for SsnRedact {
    /// Only answers are checked: the host never calls `check_input`.
    fn phases() -> Phases {
        Phases::OUTPUT
    }

    /// Any `[config]` key is a mistake (this guardrail reads none).
    fn validate_config() -> Result<(), String> {
        sluice_sdk::check_keys(&[]).map_err(|e| e.to_string())
    }

    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }

    fn check_output(_req: &Request, output: String, _ctx: OutputContext) -> Verdict {
        let found = find_ssns(&output);
        if found.is_empty() {
            return Verdict::Pass;
        }
        let mut out = String::with_capacity(output.len());
        let mut last = 0;
        for (start, end) in &found {
            out.push_str(&output[last..*start]);
            out.push_str("[SSN]");
            last = *end;
        }
        out.push_str(&output[last..]);
        // Both reach the gateway log tagged with the plugin name: stdout
        // through the captured stdio, the other through `host.log`.
        println!("redacted {} SSN(s)", found.len());
        sluice_sdk::log::info(&format!("redacted {} SSN(s)", found.len()));
        Verdict::transform(out)
    }
}

sluice_sdk::export_guardrail!(SsnRedact);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bounded_ssns_only() {
        assert_eq!(find_ssns("a 123-45-6789 b"), vec![(2, 13)]);
        assert!(find_ssns("9123-45-6789").is_empty());
        assert!(find_ssns("123-45-67890").is_empty());
        assert_eq!(find_ssns("111-22-3333").len(), 1);
    }

    #[test]
    fn takes_no_settings() {
        sluice_sdk::testing::set_config(&[]);
        assert_eq!(SsnRedact::validate_config(), Ok(()));
        sluice_sdk::testing::set_config(&[("phrase", "x")]);
        assert!(
            SsnRedact::validate_config()
                .unwrap_err()
                .contains("no settings")
        );
    }
}
