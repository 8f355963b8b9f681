//! `length-check`: a guardrail that refuses answers outside configured
//! length bounds, in characters (Unicode scalar values) and/or words.
//!
//! Config: `min-chars`, `max-chars`, `min-words`, `max-words` (absent or 0 =
//! no bound); checked at load (unknown keys, non-numbers, a minimum above
//! its maximum are refused). An output-only guardrail: the host never asks
//! it about input. A stream is measured as emitted text plus the current
//! window: the maximum is enforced on every window, so an over-long answer
//! stops as soon as it crosses the line, while the minimum is only judged on
//! the final window because earlier windows are short by nature. The host
//! passes the tail of the emitted text (the model's `stream.context-chars`,
//! default 20000), so a stream maximum is exact when it is no larger than
//! that.

use sluice_sdk::{
    ConfigError, Guardrail, OutputContext, OutputPart, Phases, Request, Verdict, check_keys,
    config_parsed,
};

/// The `[config]` keys this plugin reads.
const KEYS: &[&str] = &["min-chars", "max-chars", "min-words", "max-words"];

/// Length bounds read from config; `None` means unbounded.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Bounds {
    pub min_chars: Option<usize>,
    pub max_chars: Option<usize>,
    pub min_words: Option<usize>,
    pub max_words: Option<usize>,
}

impl Bounds {
    /// Read bounds from the plugin config; 0 disables a bound. Unknown
    /// keys, values that are not whole numbers and a minimum above its
    /// maximum are errors.
    pub fn from_config() -> Result<Self, ConfigError> {
        check_keys(KEYS)?;
        let get = |k| -> Result<Option<usize>, ConfigError> {
            Ok(config_parsed::<usize>(k)?.filter(|n| *n > 0))
        };
        let b = Bounds {
            min_chars: get("min-chars")?,
            max_chars: get("max-chars")?,
            min_words: get("min-words")?,
            max_words: get("max-words")?,
        };
        for (min, max, key) in [
            (b.min_chars, b.max_chars, "min-chars"),
            (b.min_words, b.max_words, "min-words"),
        ] {
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                return Err(ConfigError::new(
                    key,
                    format!("{min} is above the maximum {max}: no answer could pass"),
                ));
            }
        }
        Ok(b)
    }

    /// Judge `emitted + window`; minimums only when `is_final`.
    pub fn judge(&self, emitted: &str, window: &str, is_final: bool) -> Verdict {
        let counting_words = self.min_words.is_some() || self.max_words.is_some();
        let (chars, words) = measure(emitted, window, counting_words);
        if let Some(max) = self.max_chars.filter(|m| chars > *m) {
            return too_long(chars, max, "characters");
        }
        if let Some(max) = self.max_words.filter(|m| words > *m) {
            return too_long(words, max, "words");
        }
        if is_final {
            if let Some(min) = self.min_chars.filter(|m| chars < *m) {
                return too_short(chars, min, "characters");
            }
            if let Some(min) = self.min_words.filter(|m| words < *m) {
                return too_short(words, min, "words");
            }
        }
        Verdict::Pass
    }
}

fn too_long(got: usize, max: usize, unit: &str) -> Verdict {
    Verdict::reject(
        "too_long",
        format!("answer has {got} {unit}, more than the maximum of {max}"),
    )
}

fn too_short(got: usize, min: usize, unit: &str) -> Verdict {
    Verdict::reject(
        "too_short",
        format!("answer has {got} {unit}, fewer than the minimum of {min}"),
    )
}

/// Characters and (if asked) words of `a + b` without concatenating; a word
/// split across the boundary counts once.
fn measure(a: &str, b: &str, words: bool) -> (usize, usize) {
    if !words {
        return (a.chars().count() + b.chars().count(), 0);
    }
    let (mut chars, mut count, mut in_word) = (0, 0, false);
    for c in a.chars().chain(b.chars()) {
        chars += 1;
        let ws = c.is_whitespace();
        if !ws && !in_word {
            count += 1;
        }
        in_word = !ws;
    }
    (chars, count)
}

/// The exported guardrail.
pub struct LengthCheck;

impl Guardrail for LengthCheck {
    fn phases() -> Phases {
        Phases::OUTPUT
    }

    fn validate_config() -> Result<(), String> {
        Bounds::from_config().map(drop).map_err(|e| e.to_string())
    }

    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }

    fn check_output(_req: &Request, output: String, ctx: OutputContext) -> Verdict {
        // The bounds are on the answer's text: a refusal or a tool call is
        // not measured (a tool-call-only answer has no text to be short).
        if ctx.part != OutputPart::Content {
            return Verdict::Pass;
        }
        // Validated at load: an error here cannot happen, and would trap.
        let bounds = Bounds::from_config().unwrap_or_else(|e| e.trap());
        bounds.judge(&ctx.emitted, &output, ctx.is_final)
    }
}

sluice_sdk::export_guardrail!(LengthCheck);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing::{GuardrailTest, code, set_config};

    #[test]
    fn chars_bounds_on_whole_answer() {
        set_config(&[("min-chars", "3"), ("max-chars", "5")]);
        assert_eq!(LengthCheck::output("abcd"), Verdict::Pass);
        assert_eq!(code(&LengthCheck::output("ab")), "too_short");
        let v = LengthCheck::output("abcdef");
        assert_eq!(
            v,
            Verdict::reject(
                "too_long",
                "answer has 6 characters, more than the maximum of 5"
            )
        );
        // Unicode scalar values, not bytes.
        assert_eq!(LengthCheck::output("ééééé"), Verdict::Pass);
    }

    #[test]
    fn words_bounds() {
        set_config(&[("min-words", "2"), ("max-words", "3")]);
        assert_eq!(LengthCheck::output("  one   two "), Verdict::Pass);
        assert_eq!(code(&LengthCheck::output("one")), "too_short");
        assert_eq!(code(&LengthCheck::output("a b c d")), "too_long");
    }

    #[test]
    fn stream_minimum_waits_for_final_window() {
        set_config(&[("min-words", "4"), ("max-chars", "40")]);
        assert_eq!(
            LengthCheck::output_with("Hi", OutputContext::window("", 0, false)),
            Verdict::Pass
        );
        assert_eq!(
            LengthCheck::output_with(" there", OutputContext::window("Hi", 1, false)),
            Verdict::Pass
        );
        // "Hi there" + "friend" = 3 words (a word split across the boundary counts once).
        assert_eq!(
            code(&LengthCheck::output_with(
                "e friend",
                OutputContext::window("Hi ther", 2, true)
            )),
            "too_short"
        );
        assert_eq!(
            LengthCheck::output_with(" you all", OutputContext::window("Hi there", 2, true)),
            Verdict::Pass
        );
    }

    #[test]
    fn stream_maximum_counts_emitted_text() {
        set_config(&[("max-chars", "10")]);
        let emitted = "0123456789";
        assert_eq!(
            code(&LengthCheck::output_with(
                "x",
                OutputContext::window(emitted, 3, false)
            )),
            "too_long"
        );
    }

    #[test]
    fn config_is_checked_at_load() {
        set_config(&[("min-chars", "1"), ("max-chars", "20000")]);
        assert_eq!(LengthCheck::validate_config(), Ok(()));
        set_config(&[("max-char", "100")]);
        let e = LengthCheck::validate_config().unwrap_err();
        assert!(e.contains("`max-char`") && e.contains("unknown"), "{e}");
        set_config(&[("max-chars", "-5")]);
        assert!(
            LengthCheck::validate_config()
                .unwrap_err()
                .contains("max-chars")
        );
        set_config(&[("max-words", "many")]);
        assert!(
            LengthCheck::validate_config()
                .unwrap_err()
                .contains("max-words")
        );
        set_config(&[("min-chars", "10"), ("max-chars", "5")]);
        let e = LengthCheck::validate_config().unwrap_err();
        assert!(e.contains("min-chars") && e.contains("above"), "{e}");
        assert_eq!(LengthCheck::phases(), Phases::OUTPUT);
    }

    #[test]
    fn zero_or_absent_bounds_disable() {
        set_config(&[("max-chars", "0")]);
        assert_eq!(LengthCheck::output(&"x".repeat(100_000)), Verdict::Pass);
        assert_eq!(LengthCheck::output(""), Verdict::Pass);
    }
}
