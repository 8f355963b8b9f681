//! What a request costs: the shipped price table (`host/data/prices.toml`,
//! compiled in), per-route overrides, and usage -> USD.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::RouteConfig;

/// USD per million tokens of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Price {
    pub input: f64,
    pub cached_input: f64,
    pub cache_write: f64,
    pub output: f64,
    pub reasoning: f64,
}

/// Token counts in OpenAI's sense: `prompt_tokens` is the whole prompt
/// (cached and cache-written tokens included), `completion_tokens` the whole
/// completion (reasoning included). An Anthropic usage is converted to this
/// shape (`input + cache_read + cache_creation` prompt tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Part of `prompt_tokens` read from the provider's prompt cache.
    pub cached_input_tokens: u32,
    /// Part of `prompt_tokens` written to the provider's prompt cache.
    pub cache_write_tokens: u32,
    /// Part of `completion_tokens` spent reasoning.
    pub reasoning_tokens: u32,
}

impl From<&crate::openai::Usage> for TokenUsage {
    fn from(u: &crate::openai::Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_input_tokens: u.cached_tokens(),
            cache_write_tokens: 0,
            reasoning_tokens: u.reasoning_tokens(),
        }
    }
}

impl Price {
    /// USD for `usage`.
    pub fn cost(&self, u: &TokenUsage) -> f64 {
        let cached = u.cached_input_tokens.min(u.prompt_tokens);
        let written = u.cache_write_tokens.min(u.prompt_tokens - cached);
        let plain_in = u.prompt_tokens - cached - written;
        let reasoning = u.reasoning_tokens.min(u.completion_tokens);
        let plain_out = u.completion_tokens - reasoning;
        (f64::from(plain_in) * self.input
            + f64::from(cached) * self.cached_input
            + f64::from(written) * self.cache_write
            + f64::from(plain_out) * self.output
            + f64::from(reasoning) * self.reasoning)
            / 1e6
    }

    /// The most a request can cost before it is sent: the whole prompt at
    /// the full input price, every allowed completion token at the dearer
    /// of output and reasoning.
    pub fn worst_case(&self, prompt_tokens: u32, max_completion_tokens: u32) -> f64 {
        (f64::from(prompt_tokens) * self.input.max(self.cache_write)
            + f64::from(max_completion_tokens) * self.output.max(self.reasoning))
            / 1e6
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    taken: String,
    models: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Entry {
    input: f64,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
    output: f64,
    reasoning: Option<f64>,
}

/// Prices per upstream model name.
#[derive(Debug, Clone)]
pub struct PriceTable {
    /// The date the prices were taken (`YYYY-MM-DD`).
    pub taken: String,
    pub models: BTreeMap<String, Price>,
}

static BUILTIN: LazyLock<PriceTable> = LazyLock::new(|| {
    PriceTable::parse(include_str!("../../data/prices.toml"))
        .expect("host/data/prices.toml is valid (checked by a unit test)")
});

/// Models already warned about as unpriced (warn once each).
static UNPRICED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

impl PriceTable {
    /// The table shipped with this build.
    pub fn builtin() -> &'static PriceTable {
        &BUILTIN
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: TableFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut models = BTreeMap::new();
        for (name, e) in file.models {
            for v in [
                Some(e.input),
                e.cached_input,
                e.cache_write,
                Some(e.output),
                e.reasoning,
            ]
            .into_iter()
            .flatten()
            {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!(
                        "model `{name}`: price {v} is not a non-negative number"
                    ));
                }
            }
            let price = Price {
                input: e.input,
                cached_input: e.cached_input.unwrap_or(e.input),
                cache_write: e.cache_write.unwrap_or(e.input),
                output: e.output,
                reasoning: e.reasoning.unwrap_or(e.output),
            };
            models.insert(name.to_ascii_lowercase(), price);
        }
        Ok(Self {
            taken: file.taken,
            models,
        })
    }

    /// The price of an upstream model: its exact name, else the longest
    /// entry it extends with `-` (dated snapshots, `-latest`), ignoring a
    /// `vendor/` prefix and case.
    pub fn lookup(&self, model: &str) -> Option<&Price> {
        let name = model
            .rsplit('/')
            .next()
            .unwrap_or(model)
            .to_ascii_lowercase();
        if let Some(p) = self.models.get(&name) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(k, _)| name.len() > k.len() && name.starts_with(k.as_str()))
            .filter(|(k, _)| name.as_bytes()[k.len()] == b'-')
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| p)
    }

    /// The price on `route`: the route's own prices where set, else this
    /// table's entry for the upstream model, else $0 (warned once). When a
    /// route overrides `input` but not `cached-input`, cached input costs
    /// the route's input price (the table's discount may not apply to a
    /// negotiated price); likewise reasoning follows an overridden output.
    pub fn route_price(&self, route: &RouteConfig) -> Price {
        let base = self.lookup(&route.model).copied();
        if base.is_none()
            && (route.input_cost_per_mtok.is_none() || route.output_cost_per_mtok.is_none())
        {
            let mut warned = UNPRICED.lock();
            if warned.insert(route.model.clone()) {
                tracing::warn!(
                    provider = route.provider,
                    model = route.model,
                    "no price for this model in the price table or on its route: its usage costs $0"
                );
            }
        }
        let base = base.unwrap_or_default();
        let input = route.input_cost_per_mtok.unwrap_or(base.input);
        let output = route.output_cost_per_mtok.unwrap_or(base.output);
        let input_overridden = route.input_cost_per_mtok.is_some();
        Price {
            input,
            cached_input: route
                .cached_input_cost_per_mtok
                .unwrap_or(if input_overridden {
                    input
                } else {
                    base.cached_input
                }),
            cache_write: if input_overridden {
                input
            } else {
                base.cache_write
            },
            output,
            reasoning: if route.output_cost_per_mtok.is_some() {
                output
            } else {
                base.reasoning
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(model: &str) -> RouteConfig {
        toml::from_str(&format!("provider = \"p\"\nmodel = \"{model}\"")).unwrap()
    }

    #[test]
    fn the_shipped_table_parses_and_prices_the_common_models() {
        let t = PriceTable::builtin();
        assert!(
            t.taken.len() == 10 && t.taken.starts_with("20"),
            "{}",
            t.taken
        );
        for m in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "o3-mini",
            "claude-sonnet-4-5",
            "claude-3-5-haiku",
        ] {
            let p = t.lookup(m).unwrap_or_else(|| panic!("{m} missing"));
            assert!(
                p.input > 0.0 && p.output > p.input && p.cached_input < p.input,
                "{m}"
            );
        }
    }

    #[test]
    fn dated_and_prefixed_names_find_their_model() {
        let t = PriceTable::builtin();
        let mini = t.lookup("gpt-4o-mini").unwrap();
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18"), Some(mini));
        assert_eq!(t.lookup("openai/GPT-4o-mini"), Some(mini));
        assert_eq!(t.lookup("gpt-4o-2024-08-06"), t.lookup("gpt-4o"));
        assert_eq!(
            t.lookup("claude-sonnet-4-20250514"),
            t.lookup("claude-sonnet-4")
        );
        // The longest entry wins: Opus 4.5 is not priced as Opus 4.
        assert_eq!(t.lookup("claude-opus-4-5-20251101").unwrap().input, 5.0);
        assert_eq!(t.lookup("claude-opus-4-20250514").unwrap().input, 15.0);
        assert_eq!(t.lookup("gpt-4oz"), None);
        assert_eq!(t.lookup("mock-small"), None);
    }

    #[test]
    fn cached_and_reasoning_tokens_are_priced_apart() {
        // gpt-4o-mini: 0.15 in, 0.075 cached, 0.60 out.
        let p = *PriceTable::builtin().lookup("gpt-4o-mini").unwrap();
        let u = TokenUsage {
            prompt_tokens: 2_000_000,
            cached_input_tokens: 1_000_000,
            completion_tokens: 1_000_000,
            ..TokenUsage::default()
        };
        assert!((p.cost(&u) - (0.15 + 0.075 + 0.60)).abs() < 1e-9);
        // Anthropic: cache writes at their own price; reasoning as output.
        let s = *PriceTable::builtin().lookup("claude-sonnet-4-5").unwrap();
        let u = TokenUsage {
            prompt_tokens: 3_000_000,
            cached_input_tokens: 1_000_000,
            cache_write_tokens: 1_000_000,
            completion_tokens: 2_000_000,
            reasoning_tokens: 1_000_000,
        };
        assert!((s.cost(&u) - (3.0 + 0.30 + 3.75 + 15.0 + 15.0)).abs() < 1e-9);
        // Subsets larger than their totals are clamped, never negative.
        let odd = TokenUsage {
            prompt_tokens: 10,
            cached_input_tokens: 50,
            ..TokenUsage::default()
        };
        assert!((p.cost(&odd) - 10.0 * 0.075 / 1e6).abs() < 1e-15);
    }

    #[test]
    fn route_overrides_win_field_by_field() {
        let t = PriceTable::builtin();
        assert_eq!(
            t.route_price(&route("gpt-4o")),
            *t.lookup("gpt-4o").unwrap()
        );
        let mut r = route("gpt-4o");
        r.output_cost_per_mtok = Some(5.0);
        let p = t.route_price(&r);
        assert_eq!(
            (p.input, p.cached_input, p.output, p.reasoning),
            (2.5, 1.25, 5.0, 5.0)
        );
        let mut r = route("gpt-4o");
        r.input_cost_per_mtok = Some(1.0);
        assert_eq!(t.route_price(&r).cached_input, 1.0);
        r.cached_input_cost_per_mtok = Some(0.1);
        assert_eq!(t.route_price(&r).cached_input, 0.1);
        // Unknown model, no route price: free (and warned about).
        assert_eq!(t.route_price(&route("mock-small")), Price::default());
        let mut r = route("mock-small");
        r.input_cost_per_mtok = Some(0.15);
        r.output_cost_per_mtok = Some(0.6);
        let p = t.route_price(&r);
        assert!((p.worst_case(1_000_000, 1_000_000) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(
            PriceTable::parse("taken = \"x\"\n[models.a]\ninput = -1.0\noutput = 1.0").is_err()
        );
        assert!(PriceTable::parse("taken = \"x\"\n[models.a]\ninput = 1.0").is_err());
    }
}
