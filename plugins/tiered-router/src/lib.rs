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

use sluice_sdk::{Candidate, ConfigError, RequestInfo, Route, Router, config_json, config_list};

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

/// Complexity of `req` in 0..1 (see the crate docs for the weights).
pub fn complexity(req: &RequestInfo, keywords: &[String]) -> f64 {
    let last = req.last_user_message().unwrap_or("");
    let lower = last.to_lowercase();
    let length = (last.chars().count() as f64 / 4000.0).min(1.0) * 0.35;
    let hits = keywords.iter().filter(|k| contains_word(&lower, k)).count();
    let keyword = (hits as f64 * 0.12).min(0.4);
    let code = if last.contains("```") { 0.2 } else { 0.0 };
    let depth = (req.messages.len() as f64 / 20.0).min(1.0) * 0.15;
    let long_answer = if req.max_tokens.is_some_and(|m| m > 2000) {
        0.1
    } else {
        0.0
    };
    (length + keyword + code + depth + long_answer).min(1.0)
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
    fn route(req: RequestInfo, candidates: Vec<Candidate>) -> Vec<Route> {
        let trap = |e: ConfigError| -> ! { e.trap() };
        let tiers = config_list("tiers")
            .unwrap_or_else(|e| trap(e))
            .unwrap_or_else(|| vec!["cheap".into(), "mid".into(), "expensive".into()]);
        let thresholds: Vec<f64> = config_json("thresholds")
            .unwrap_or_else(|e| trap(e))
            .unwrap_or_else(|| vec![0.3, 0.6]);
        if thresholds.len() + 1 != tiers.len() || thresholds.windows(2).any(|w| w[0] > w[1]) {
            trap(ConfigError {
                key: "thresholds".into(),
                message: format!(
                    "need {} ascending values, one per tier after the first",
                    tiers.len().saturating_sub(1)
                ),
            });
        }
        let keywords = config_list("keywords")
            .unwrap_or_else(|e| trap(e))
            .unwrap_or_else(|| DEFAULT_KEYWORDS.iter().map(|k| k.to_string()).collect());

        let score = complexity(&req, &keywords);
        let forced = req
            .tags
            .iter()
            .find_map(|t| t.strip_prefix("tier:"))
            .and_then(|name| tiers.iter().position(|t| t == name));
        let chosen = forced.unwrap_or_else(|| tier_for(score, &thresholds));
        let chars: usize = req.messages.iter().map(|m| m.content.len()).sum();
        let needed = (chars / 4) as u32 + req.max_tokens.unwrap_or(0);
        sluice_sdk::log::debug(&format!("complexity {score:.2} -> tier {}", tiers[chosen]));
        order(&candidates, &tiers, chosen, needed)
    }
}

sluice_sdk::export_router!(TieredRouter);

#[cfg(test)]
mod tests {
    use super::*;
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
        let req = RequestInfo::chat("auto", &[("user", "What's the capital of France?")]);
        assert_eq!(
            models(&TieredRouter::route(req, cands())),
            ["nano", "mini", "mid", "big", "other"]
        );
    }

    #[test]
    fn hard_question_goes_expensive_then_down() {
        clear_config();
        let text = "Prove that the algorithm terminates and analyze its complexity:\n```rust\nfn f() {}\n```";
        let req = RequestInfo::chat("auto", &[("user", text)]);
        assert!(
            complexity(
                &req,
                &DEFAULT_KEYWORDS
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
            ) >= 0.6
        );
        assert_eq!(
            models(&TieredRouter::route(req, cands())),
            ["big", "mid", "nano", "mini", "other"]
        );
    }

    #[test]
    fn mid_goes_up_before_down() {
        clear_config();
        let req = RequestInfo::chat("auto", &[("user", "Please refactor and debug this design")]);
        assert_eq!(
            models(&TieredRouter::route(req, cands())),
            ["mid", "big", "nano", "mini", "other"]
        );
    }

    #[test]
    fn tag_forces_tier_and_context_window_filters() {
        clear_config();
        let mut req = RequestInfo::chat("auto", &[("user", &"x".repeat(80_000))]);
        req.tags = vec!["tier:cheap".into()];
        // 80k chars ~ 20k tokens: nano (16k) cannot hold it.
        assert_eq!(
            models(&TieredRouter::route(req, cands())),
            ["mini", "mid", "big", "other"]
        );
    }

    #[test]
    fn configured_tiers_and_thresholds() {
        set_config(&[
            ("tiers", r#"["cheap", "expensive"]"#),
            ("thresholds", "[0.0]"),
        ]);
        let req = RequestInfo::chat("auto", &[("user", "hi")]);
        assert_eq!(
            models(&TieredRouter::route(req.clone(), cands())),
            ["big", "nano", "mini", "other", "mid"],
            "mid is not a configured tier"
        );
        set_config(&[
            ("tiers", r#"["cheap", "expensive"]"#),
            ("thresholds", "[0.3, 0.6]"),
        ]);
        assert!(std::panic::catch_unwind(|| TieredRouter::route(req.clone(), cands())).is_err());
    }

    #[test]
    fn keyword_matching_is_by_word_start() {
        assert!(contains_word("we are designing it", "design"));
        assert!(!contains_word("a redesign", "design"));
        assert_eq!(tier_for(0.29, &[0.3, 0.6]), 0);
        assert_eq!(tier_for(0.6, &[0.3, 0.6]), 2);
    }
}
