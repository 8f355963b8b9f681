//! `tiered-router`: routes easy requests to cheap models and hard ones to
//! expensive models.
//!
//! Complexity (0..1) adds up: the last user message's length (up to 0.35 at
//! 4000 characters), reasoning keywords (0.12 each, at most 0.4), code blocks
//! (0.2), conversation depth (up to 0.15 at 20 messages) and a large
//! `max_tokens` (0.1 above 2000). `thresholds` map the score to one of
//! `tiers`; a `tier:<name>` tag overrides. The chosen tier is tried first,
//! then the tiers above it (keep quality), then those below (keep serving);
//! within a tier cheaper candidates first; untiered candidates last.
//!
//! Config (`tiers`, `thresholds`, `keywords`) is checked at load: unknown
//! keys, an empty or repeated tier, thresholds that are not one ascending
//! value in 0..=1 per tier after the first, and empty keywords are refused.

use sluice_sdk::{
    Candidate, ConfigError, Message, Request, Route, Router, check_keys, config_json, config_list,
};

/// The `[config]` keys this plugin reads.
const KEYS: &[&str] = &["tiers", "thresholds", "keywords"];

const DEFAULT_KEYWORDS: &[&str] = &[
    "prove",
    "proof",
    "analyze",
    "analyse",
    "derive",
    "optimize",
    "architecture",
    "design",
    "debug",
    "refactor",
    "algorithm",
    "theorem",
    "complexity",
    "step by step",
    "trade-offs",
    "compare",
];

/// What a request looks like to the router: read once from the request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    /// The last user message.
    pub last: String,
    pub messages: u32,
    pub max_tokens: Option<u32>,
    /// Characters of the whole conversation, tool-call arguments included.
    pub chars: usize,
    pub tags: Vec<String>,
}

impl Shape {
    /// Read what the router needs (the whole conversation, for its size).
    pub fn of(req: &Request) -> Self {
        let messages = req.messages();
        let size = |m: &Message| {
            m.content.len()
                + m.tool_calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.len())
                    .sum::<usize>()
        };
        Shape {
            last: messages
                .iter()
                .rev()
                .find(|m| m.role == "user")
                .map(|m| m.content.clone())
                .unwrap_or_default(),
            messages: u32::try_from(messages.len()).unwrap_or(u32::MAX),
            max_tokens: req.max_tokens(),
            chars: messages.iter().map(size).sum(),
            tags: req.tags(),
        }
    }
}

/// Complexity of a request in 0..1 (see the crate docs for the weights).
pub fn complexity(req: &Shape, keywords: &[String]) -> f64 {
    let last = req.last.as_str();
    let lower = last.to_lowercase();
    let length = (last.chars().count() as f64 / 4000.0).min(1.0) * 0.35;
    let hits = keywords.iter().filter(|k| contains_word(&lower, k)).count();
    let keyword = (hits as f64 * 0.12).min(0.4);
    let code = if last.contains("```") { 0.2 } else { 0.0 };
    let depth = (f64::from(req.messages) / 20.0).min(1.0) * 0.15;
    let long_answer = if req.max_tokens.is_some_and(|m| m > 2000) {
        0.1
    } else {
        0.0
    };
    (length + keyword + code + depth + long_answer).min(1.0)
}

/// The router's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub tiers: Vec<String>,
    pub thresholds: Vec<f64>,
    pub keywords: Vec<String>,
}

impl Settings {
    /// Read and check the config.
    pub fn from_config() -> Result<Self, ConfigError> {
        check_keys(KEYS)?;
        let tiers = config_list("tiers")?
            .unwrap_or_else(|| vec!["cheap".into(), "mid".into(), "expensive".into()]);
        if tiers.is_empty() {
            return Err(ConfigError::new("tiers", "needs at least one tier"));
        }
        if let Some(t) = tiers
            .iter()
            .enumerate()
            .find_map(|(i, t)| tiers[..i].contains(t).then_some(t))
        {
            return Err(ConfigError::new(
                "tiers",
                format!("tier {t:?} is listed twice"),
            ));
        }
        let thresholds: Vec<f64> = config_json("thresholds")?.unwrap_or_else(|| vec![0.3, 0.6]);
        let ascending = thresholds.windows(2).all(|w| w[0] <= w[1]);
        let in_range = thresholds.iter().all(|t| (0.0..=1.0).contains(t));
        if thresholds.len() + 1 != tiers.len() || !ascending || !in_range {
            return Err(ConfigError::new(
                "thresholds",
                format!(
                    "need {} ascending values in 0..=1, one per tier after the first, got {thresholds:?}",
                    tiers.len() - 1
                ),
            ));
        }
        let keywords = config_list("keywords")?
            .unwrap_or_else(|| DEFAULT_KEYWORDS.iter().map(|k| k.to_string()).collect());
        if keywords.iter().any(|k| k.trim().is_empty()) {
            return Err(ConfigError::new(
                "keywords",
                "an empty keyword matches everything",
            ));
        }
        Ok(Settings {
            tiers,
            thresholds,
            keywords: keywords.iter().map(|k| k.to_lowercase()).collect(),
        })
    }
}

/// `needle` in `hay` starting at a word start ("design" matches "designing",
/// not "redesign" — prefixes catch inflections cheaply).
fn contains_word(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(at, _)| {
        !hay[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
    })
}

/// Index of the tier for `score` given ascending `thresholds`.
pub fn tier_for(score: f64, thresholds: &[f64]) -> usize {
    thresholds.iter().take_while(|t| score >= **t).count()
}

/// Order `candidates`: tier `chosen` first, then the tiers above, then below;
/// cheaper first within a tier; untiered or unknown tiers last. Candidates
/// too small for `needed_tokens` are dropped unless none is big enough.
pub fn order(
    candidates: &[Candidate],
    tiers: &[String],
    chosen: usize,
    needed_tokens: u32,
) -> Vec<Route> {
    let fits: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.context_window >= needed_tokens)
        .collect();
    let pool: Vec<&Candidate> = if fits.is_empty() {
        candidates.iter().collect()
    } else {
        fits
    };
    let rank = |c: &Candidate| -> usize {
        let Some(t) = c
            .tier
            .as_deref()
            .and_then(|t| tiers.iter().position(|x| x == t))
        else {
            return tiers.len();
        };
        if t >= chosen {
            t - chosen
        } else {
            tiers.len() - 1 - t
        }
    };
    let mut ordered = pool;
    // Stable: equal rank and price keep the configured order.
    ordered.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then(
            (a.input_cost_per_mtok + a.output_cost_per_mtok)
                .total_cmp(&(b.input_cost_per_mtok + b.output_cost_per_mtok)),
        )
    });
    ordered.into_iter().map(Route::from).collect()
}

/// The exported router.
pub struct TieredRouter;

impl Router for TieredRouter {
    fn validate_config() -> Result<(), String> {
        Settings::from_config().map(drop).map_err(|e| e.to_string())
    }

    fn route(req: &Request, candidates: Vec<Candidate>) -> Vec<Route> {
        // Validated at load: an error here cannot happen (it would trap).
        let s = Settings::from_config().unwrap_or_else(|e| e.trap());
        let shape = Shape::of(req);
        let score = complexity(&shape, &s.keywords);
        let forced = shape
            .tags
            .iter()
            .find_map(|t| t.strip_prefix("tier:"))
            .and_then(|name| s.tiers.iter().position(|t| t == name));
        let chosen = forced.unwrap_or_else(|| tier_for(score, &s.thresholds));
        let needed = u32::try_from(shape.chars / 4)
            .unwrap_or(u32::MAX)
            .saturating_add(shape.max_tokens.unwrap_or(0));
        sluice_sdk::log::debug(&format!(
            "complexity {score:.2} -> tier {}",
            s.tiers[chosen]
        ));
        order(&candidates, &s.tiers, chosen, needed)
    }
}

sluice_sdk::export_router!(TieredRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::RequestData;
    use sluice_sdk::testing::{clear_config, models, set_config};

    fn cand(model: &str, tier: Option<&str>, price: f64, ctx: u32) -> Candidate {
        Candidate {
            provider: "p".into(),
            model: model.into(),
            tier: tier.map(String::from),
            input_cost_per_mtok: price,
            output_cost_per_mtok: price,
            context_window: ctx,
        }
    }

    fn cands() -> Vec<Candidate> {
        vec![
            cand("big", Some("expensive"), 15.0, 200_000),
            cand("other", None, 1.0, 100_000),
            cand("mini", Some("cheap"), 0.6, 128_000),
            cand("nano", Some("cheap"), 0.1, 16_000),
            cand("mid", Some("mid"), 3.0, 128_000),
        ]
    }

    #[test]
    fn simple_question_goes_cheap_first() {
        clear_config();
        let req = Request::chat("auto", &[("user", "What's the capital of France?")]);
        assert_eq!(
            models(&TieredRouter::route(&req, cands())),
            ["nano", "mini", "mid", "big", "other"]
        );
    }

    #[test]
    fn hard_question_goes_expensive_then_down() {
        clear_config();
        let text = "Prove that the algorithm terminates and analyze its complexity:\n```rust\nfn f() {}\n```";
        let req = Request::chat("auto", &[("user", text)]);
        assert!(
            complexity(
                &Shape::of(&req),
                &DEFAULT_KEYWORDS
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
            ) >= 0.6
        );
        assert_eq!(
            models(&TieredRouter::route(&req, cands())),
            ["big", "mid", "nano", "mini", "other"]
        );
    }

    #[test]
    fn mid_goes_up_before_down() {
        clear_config();
        let req = Request::chat("auto", &[("user", "Please refactor and debug this design")]);
        assert_eq!(
            models(&TieredRouter::route(&req, cands())),
            ["mid", "big", "nano", "mini", "other"]
        );
    }

    #[test]
    fn tag_forces_tier_and_context_window_filters() {
        clear_config();
        let req = Request::from(RequestData {
            messages: vec![Message::text("user", &"x".repeat(80_000))],
            tags: vec!["tier:cheap".into()],
            ..Default::default()
        });
        // 80k chars ~ 20k tokens: nano (16k) cannot hold it.
        assert_eq!(
            models(&TieredRouter::route(&req, cands())),
            ["mini", "mid", "big", "other"]
        );
    }

    #[test]
    fn configured_tiers_and_thresholds() {
        set_config(&[
            ("tiers", r#"["cheap", "expensive"]"#),
            ("thresholds", "[0.0]"),
        ]);
        let req = Request::chat("auto", &[("user", "hi")]);
        assert_eq!(
            models(&TieredRouter::route(&req, cands())),
            ["big", "nano", "mini", "other", "mid"],
            "mid is not a configured tier"
        );
        set_config(&[
            ("tiers", r#"["cheap", "expensive"]"#),
            ("thresholds", "[0.3, 0.6]"),
        ]);
        assert!(
            TieredRouter::validate_config()
                .unwrap_err()
                .contains("thresholds")
        );
        assert!(std::panic::catch_unwind(|| TieredRouter::route(&req, cands())).is_err());
    }

    #[test]
    fn config_is_checked_at_load() {
        clear_config();
        assert_eq!(TieredRouter::validate_config(), Ok(()));
        for (key, value, says) in [
            ("tiers", "[]", "at least one"),
            ("tiers", r#"["a", "b", "a"]"#, "twice"),
            ("thresholds", "[0.6, 0.3]", "ascending"),
            ("thresholds", "[0.3, 1.5]", "0..=1"),
            ("keywords", r#"["prove", " "]"#, "empty"),
            ("tier", "[]", "unknown"),
        ] {
            set_config(&[(key, value)]);
            let e = TieredRouter::validate_config().unwrap_err();
            assert!(e.contains(key) && e.contains(says), "{key}={value}: {e}");
        }
    }

    #[test]
    fn tool_call_arguments_count_toward_the_size() {
        let mut call = Message::text("assistant", "");
        call.tool_calls.push(sluice_sdk::ToolCall {
            id: "c1".into(),
            name: "lookup".into(),
            arguments: "x".repeat(100),
        });
        let req = Request::from(RequestData {
            messages: vec![Message::text("user", "hi"), call],
            max_tokens: Some(3000),
            ..Default::default()
        });
        let shape = Shape::of(&req);
        assert_eq!(
            (shape.chars, shape.messages, shape.last.as_str()),
            (108, 2, "hi")
        );
    }

    #[test]
    fn keyword_matching_is_by_word_start() {
        assert!(contains_word("we are designing it", "design"));
        assert!(!contains_word("a redesign", "design"));
        assert_eq!(tier_for(0.29, &[0.3, 0.6]), 0);
        assert_eq!(tier_for(0.6, &[0.3, 0.6]), 2);
    }
}
