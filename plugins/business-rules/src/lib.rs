//! `business-rules`: an output guardrail refusing answers that contain
//! banned phrases or patterns, each rule with its own code and reason.
//!
//! Rules come from built-in defaults (refund promises, policy exceptions,
//! legal advice; `defaults = false` turns them off) plus the JSON array in
//! `rules`: `{"code", "reason", "phrases": [...], "regex": "..."}`.
//! Phrases are matched on normalised text (lowercase, whitespace collapsed,
//! curly apostrophes straightened) at word boundaries and skipped right after
//! a negation, so "we cannot make an exception" passes. Regexes are
//! ASCII case-insensitive and compiled per call, so the defaults use phrases only.
//!
//! Streams: the window is checked together with the last [`TAIL`] bytes of
//! the emitted text, and only matches that end inside the window count, so a
//! phrase split across windows is caught once.
//!
//! The config (`defaults`, `rules`) is checked at load: an unknown key, a
//! rule with unknown fields, neither phrases nor regex, or a regex that does
//! not compile refuses the plugin, naming the rule. Output only.

use regex_automata::nfa::thompson::{self, pikevm::PikeVM};
use regex_automata::util::syntax;
use serde::Deserialize;
use sluice_sdk::{
    ConfigError, Guardrail, OutputContext, Phases, Request, Verdict, check_keys, config_json,
    config_parsed,
};

/// The `[config]` keys this plugin reads.
const KEYS: &[&str] = &["defaults", "rules"];

/// How much already-emitted text is re-read for phrases spanning windows.
pub const TAIL: usize = 256;

/// One rule as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub code: String,
    pub reason: String,
    #[serde(default)]
    pub phrases: Vec<String>,
    #[serde(default)]
    pub regex: Option<String>,
}

/// A rule ready to match.
pub struct Rule {
    code: String,
    reason: String,
    phrases: Vec<String>,
    regex: Option<PikeVM>,
}

impl Rule {
    /// Normalise phrases and compile the regex.
    pub fn new(spec: RuleSpec) -> Result<Rule, String> {
        if spec.phrases.is_empty() && spec.regex.is_none() {
            return Err(format!(
                "rule {:?} has neither phrases nor regex",
                spec.code
            ));
        }
        let regex = match &spec.regex {
            Some(r) => Some(
                PikeVM::builder()
                    // ASCII semantics: Unicode classes and case tables make
                    // building the automaton ~10x slower, and it is built on
                    // every call. Matching runs on bytes, so `.` may match
                    // inside a multi-byte character (only positions are used).
                    .syntax(
                        syntax::Config::new()
                            .case_insensitive(true)
                            .unicode(false)
                            .utf8(false),
                    )
                    // Only match bounds are used: no capture groups to track.
                    .thompson(
                        thompson::Config::new()
                            .which_captures(thompson::WhichCaptures::Implicit)
                            .shrink(false),
                    )
                    .build(r)
                    .map_err(|e| format!("rule {:?}: bad regex: {e}", spec.code))?,
            ),
            None => None,
        };
        Ok(Rule {
            phrases: spec
                .phrases
                .iter()
                .map(|p| normalise(p))
                .filter(|p| !p.is_empty())
                .collect(),
            code: spec.code,
            reason: spec.reason,
            regex,
        })
    }
}

const DEFAULTS: &[(&str, &str, &[&str])] = &[
    (
        "refund_promise",
        "answers must not promise refunds; refunds are decided by the billing team",
        &[
            "guarantee a refund",
            "guarantee you a refund",
            "guaranteed refund",
            "full refund guaranteed",
            "we will refund",
            "we'll refund",
            "i will refund",
            "i'll refund",
            "you will get a full refund",
            "you'll get a full refund",
            "you will receive a full refund",
            "you'll receive a full refund",
            "i have issued a refund",
            "i've issued a refund",
            "i have processed your refund",
            "i've processed your refund",
            "i promise a refund",
            "we promise a refund",
        ],
    ),
    (
        "policy_exception",
        "answers must not grant exceptions to company policy",
        &[
            "make an exception",
            "waive the fee",
            "waive your fee",
            "i'll waive",
            "we'll waive",
            "i will waive",
            "we will waive",
            "bypass the policy",
            "override the policy",
            "exception to our policy",
            "exception to the policy",
            "outside of our policy",
            "ignore the policy",
        ],
    ),
    (
        "legal_advice",
        "answers must not give legal advice; refer the user to a qualified lawyer",
        &[
            "this is legal advice",
            "as your lawyer",
            "as your attorney",
            "you should sue",
            "you should file a lawsuit",
            "you will win the case",
            "you'll win the case",
            "you will win in court",
            "you'll win in court",
            "i guarantee you will win",
            "you have a strong legal case",
        ],
    ),
];

/// Built-in rules plus configured ones.
pub fn rules_from_config() -> Result<Vec<Rule>, ConfigError> {
    check_keys(KEYS)?;
    let mut specs: Vec<RuleSpec> = Vec::new();
    if config_parsed("defaults")?.unwrap_or(true) {
        specs.extend(DEFAULTS.iter().map(|(code, reason, phrases)| RuleSpec {
            code: code.to_string(),
            reason: reason.to_string(),
            phrases: phrases.iter().map(|p| p.to_string()).collect(),
            regex: None,
        }));
    }
    specs.extend(config_json::<Vec<RuleSpec>>("rules")?.unwrap_or_default());
    specs
        .into_iter()
        .map(|s| Rule::new(s).map_err(|message| ConfigError::new("rules", message)))
        .collect()
}

/// Lowercase, whitespace runs -> one space, `’` -> `'`. Causal (each output
/// byte depends only on input before it), so `normalise(a)` is a prefix of
/// `normalise(a + b)`.
pub fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
            continue;
        }
        space = false;
        match c {
            c if c.is_ascii() => out.push(c.to_ascii_lowercase()),
            '\u{2019}' | '\u{2018}' => out.push('\''),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

const NEGATIONS: &[&str] = &[
    "not", "cannot", "can't", "cant", "won't", "wont", "unable", "never", "no", "don't", "dont",
    "isn't", "aren't",
];

/// True when one of the three words before `at`, within the same clause
/// (punctuation ends the look-back: "Don't worry, we'll refund" is a promise),
/// is a negation.
fn negated(norm: &str, at: usize) -> bool {
    for w in norm[..at]
        .split(' ')
        .rev()
        .filter(|w| !w.is_empty())
        .take(3)
    {
        if w.ends_with(|c: char| c.is_ascii_punctuation() && c != '\'') {
            return false;
        }
        if NEGATIONS.contains(&w) {
            return true;
        }
    }
    false
}

fn word_char_at(s: &str, i: usize) -> bool {
    s[i..].chars().next().is_some_and(|c| c.is_alphanumeric())
}

fn word_char_before(s: &str, i: usize) -> bool {
    s[..i]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric())
}

/// The first rule matching `window` (with `emitted` before it), if any.
///
/// Phrases are found in one pass over word starts with a sorted phrase index
/// (keyed by the first two bytes) instead of one substring search per phrase
/// over the whole text.
pub fn first_violation<'r>(rules: &'r [Rule], emitted: &str, window: &str) -> Option<&'r Rule> {
    let tail = &emitted[emitted.ceil_char_boundary(emitted.len().saturating_sub(TAIL))..];
    let raw = format!("{tail}{window}");
    let norm = normalise(&raw);
    let norm_tail = normalise(tail).len();

    let mut index: Vec<(&[u8], usize)> = rules
        .iter()
        .enumerate()
        .flat_map(|(r, rule)| rule.phrases.iter().map(move |p| (p.as_bytes(), r)))
        .collect();
    index.sort_unstable();
    let bytes = norm.as_bytes();
    let mut best = usize::MAX;
    for at in 0..bytes.len() {
        if bytes[at] == b' ' || !norm.is_char_boundary(at) || word_char_before(&norm, at) {
            continue;
        }
        let key = &bytes[at..bytes.len().min(at + 2)];
        let from = index.partition_point(|(p, _)| &p[..p.len().min(key.len())] < key);
        for &(p, r) in index[from..].iter().take_while(|(p, _)| p.starts_with(key)) {
            let end = at + p.len();
            if r < best
                && bytes[at..].starts_with(p)
                && end > norm_tail
                && !word_char_at(&norm, end)
                && !negated(&norm, at)
            {
                best = r;
            }
        }
    }
    let regex_hit = rules[..best.min(rules.len())].iter().position(|rule| {
        rule.regex.as_ref().is_some_and(|re| {
            let mut cache = re.create_cache();
            re.find_iter(&mut cache, raw.as_bytes())
                .any(|m| m.end() > tail.len())
        })
    });
    rules.get(regex_hit.unwrap_or(best))
}

/// The exported guardrail.
pub struct BusinessRules;

impl Guardrail for BusinessRules {
    fn phases() -> Phases {
        Phases::OUTPUT
    }

    fn validate_config() -> Result<(), String> {
        rules_from_config().map(drop).map_err(|e| e.to_string())
    }

    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }

    fn check_output(_req: &Request, output: String, ctx: OutputContext) -> Verdict {
        // Validated at load: an error here cannot happen (it would trap).
        let rules = rules_from_config().unwrap_or_else(|e| e.trap());
        match first_violation(&rules, &ctx.emitted, &output) {
            Some(rule) => Verdict::reject(rule.code.clone(), rule.reason.clone()),
            None => Verdict::Pass,
        }
    }
}

sluice_sdk::export_guardrail!(BusinessRules);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing::{GuardrailTest, clear_config, code, set_config};

    #[test]
    fn defaults_catch_promises_exceptions_and_legal_advice() {
        clear_config();
        assert_eq!(
            code(&BusinessRules::output(
                "Don't worry, you’ll get a FULL\n refund by Friday."
            )),
            "refund_promise"
        );
        assert_eq!(
            code(&BusinessRules::output(
                "Sure, I can make an exception this once."
            )),
            "policy_exception"
        );
        assert_eq!(
            code(&BusinessRules::output("Honestly, you should sue them.")),
            "legal_advice"
        );
        assert_eq!(
            BusinessRules::output("We'll refund it."),
            Verdict::reject(
                "refund_promise",
                "answers must not promise refunds; refunds are decided by the billing team"
            )
        );
    }

    #[test]
    fn negations_and_partial_words_pass() {
        clear_config();
        for text in [
            "I'm sorry, but we cannot make an exception to the policy.",
            "We won't waive the fee, but here is how to appeal.",
            "Refunds are handled by billing; I can't promise anything.",
            "You should suet the pan before baking.",
        ] {
            assert_eq!(BusinessRules::output(text), Verdict::Pass, "{text}");
        }
    }

    #[test]
    fn configured_phrases_and_regexes() {
        set_config(&[
            ("defaults", "false"),
            (
                "rules",
                r#"[{"code":"promo","reason":"no codes","regex":"\\bpromo code:? [a-z0-9]{6,}"},
                          {"code":"rival","reason":"no rivals","phrases":["Acme Corp"]}]"#,
            ),
        ]);
        assert_eq!(
            code(&BusinessRules::output("Use PROMO CODE: SAVE2024 today")),
            "promo"
        );
        assert_eq!(
            code(&BusinessRules::output("Have you tried acme  corp?")),
            "rival"
        );
        assert_eq!(
            BusinessRules::output("I'll refund you."),
            Verdict::Pass,
            "defaults off"
        );
    }

    #[test]
    fn phrase_split_across_stream_windows() {
        clear_config();
        let ctx = OutputContext::window("Good news: I can make an ex", 1, false);
        assert_eq!(
            code(&BusinessRules::output_with("ception for you.", ctx)),
            "policy_exception"
        );
        // A match wholly inside emitted text was judged (and passed or not) before.
        set_config(&[
            ("defaults", "false"),
            (
                "rules",
                r#"[{"code":"x","reason":"x","phrases":["blue moon"]}]"#,
            ),
        ]);
        assert_eq!(
            BusinessRules::output_with(
                " and more",
                OutputContext::window("once in a blue moon", 1, false)
            ),
            Verdict::Pass
        );
    }

    #[test]
    fn bad_rules_are_refused_at_load() {
        for (rules, says) in [
            (
                r#"[{"code":"x","reason":"y"}]"#,
                "neither phrases nor regex",
            ),
            (r#"[{"code":"x","reason":"y","regex":"("}]"#, "bad regex"),
            (r#"{"#, "invalid JSON"),
            (r#"[{"code":"x","reason":"y","phrase":["a"]}]"#, "phrase"),
        ] {
            set_config(&[("rules", rules)]);
            let e = BusinessRules::validate_config().unwrap_err();
            assert!(e.contains("rules") && e.contains(says), "{rules}: {e}");
            assert!(
                std::panic::catch_unwind(|| BusinessRules::output("a")).is_err(),
                "{rules}"
            );
        }
        set_config(&[("defaults", "no")]);
        assert!(
            BusinessRules::validate_config()
                .unwrap_err()
                .contains("defaults")
        );
        set_config(&[("rule", "[]")]);
        assert!(
            BusinessRules::validate_config()
                .unwrap_err()
                .contains("`rule`")
        );
        clear_config();
        assert_eq!(BusinessRules::validate_config(), Ok(()));
        assert_eq!(BusinessRules::phases(), Phases::OUTPUT);
    }
}
