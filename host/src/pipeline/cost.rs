//! Cost before the call: token and price estimates (the rate limit's token
//! charge, the cost policy's estimate, the budget reservation's worst case)
//! and the spend the cost policy is shown. What a call did cost is settled
//! after it by [`super::accounting`].
//!
//! Tokens are counted with the tokenizer ([`crate::state::tokenizer`]),
//! once per request and only when something needs the count (a token rate
//! limit, a budget, a cost policy, or an upstream that reported no usage):
//! most requests never pay for it. Prices are the shipped table with the
//! route's overrides ([`PriceTable::route_price`]).

use serde_json::Value;

use crate::config::RouteConfig;
use crate::openai::ChatRequest;
use crate::plugin::{Estimate, Spend};
use crate::state::{PriceTable, SpendSnapshot, State, Subject, TokenUsage, tokenizer};

use super::Error;

/// Completion tokens assumed when the client sets no `max_tokens`, so a
/// policy, a token rate limit and a budget reservation still see a
/// plausible worst case. The request is sent as the client wrote it, so an
/// answer may run longer: a budget's bound then holds only for requests
/// that set `max_tokens` (what the budget-policy plugin's cap does).
pub const DEFAULT_COMPLETION_ESTIMATE: u32 = 1024;

/// A chat prompt's token count, counted on first need and kept.
#[derive(Debug, Clone)]
pub struct PromptTokens {
    /// The upstream model whose encoding counts (the first route's).
    model: String,
    count: Option<u32>,
}

impl PromptTokens {
    pub fn new(upstream_model: &str) -> Self {
        Self {
            model: upstream_model.to_string(),
            count: None,
        }
    }

    /// The count for `req` (the request this was made for).
    pub fn get(&mut self, req: &ChatRequest) -> u32 {
        *self
            .count
            .get_or_insert_with(|| count_chat(&self.model, req))
    }

    /// The count if it was already needed.
    pub fn counted(&self) -> Option<u32> {
        self.count
    }

    /// The upstream model whose encoding counts.
    pub fn model(&self) -> &str {
        &self.model
    }
}

fn count_chat(model: &str, req: &ChatRequest) -> u32 {
    let texts: Vec<String> = req.messages.iter().map(|m| m.content_text()).collect();
    tokenizer::count_chat(
        model,
        req.messages
            .iter()
            .zip(&texts)
            .map(|(m, t)| (m.role.as_str(), t.as_str())),
    )
}

/// Tokens of an embeddings `input` (a string, strings, or token arrays,
/// which count one per number).
pub fn count_input(model: &str, input: &Value) -> u32 {
    match input {
        Value::String(s) => tokenizer::count(model, s),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Number(_) => 1,
                other => count_input(model, other),
            })
            .fold(0u32, u32::saturating_add),
        _ => 0,
    }
}

/// The completion tokens a request may produce: its cap, else the default.
pub fn max_completion(req: &ChatRequest) -> u32 {
    req.max_output_tokens()
        .unwrap_or(DEFAULT_COMPLETION_ESTIMATE)
}

/// The most a request can cost on any of `routes` (fallback may reach the
/// dearest): what is reserved against its budgets.
pub fn worst_case(routes: &[RouteConfig], prompt: u32, completion: u32) -> f64 {
    let table = PriceTable::builtin();
    routes
        .iter()
        .map(|r| table.route_price(r).worst_case(prompt, completion))
        .fold(0.0, f64::max)
}

/// The cost policy's estimate on `route`.
pub fn estimate(route: &RouteConfig, prompt_tokens: u32, max_completion_tokens: u32) -> Estimate {
    Estimate {
        prompt_tokens,
        max_completion_tokens,
        cost_usd: PriceTable::builtin()
            .route_price(route)
            .worst_case(prompt_tokens, max_completion_tokens),
    }
}

/// USD that `usage` cost on `route`.
pub fn usage_cost(route: &RouteConfig, usage: &TokenUsage) -> f64 {
    PriceTable::builtin().route_price(route).cost(usage)
}

/// Every spend the cost policy is shown, from the state layer: each scope
/// the request is accounted to (key, user, feature), each per UTC day and
/// month, budgeted or not, with what requests in flight reserved kept
/// apart. A `0.1.0` guest is shown one of them (the plugin layer's
/// `compat::spend` picks the tightest monthly budget).
pub(super) async fn policy_spends(state: &State, who: &Subject<'_>) -> Result<Vec<Spend>, Error> {
    let all = state.spend(who).await?;
    Ok(all.iter().map(SpendSnapshot::to_plugin).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_case_is_the_dearest_route() {
        let route = |model: &str| -> RouteConfig {
            toml::from_str(&format!("provider = \"p\"\nmodel = \"{model}\"")).unwrap()
        };
        let routes = [route("gpt-4o-mini"), route("gpt-4o")];
        let dear = PriceTable::builtin()
            .lookup("gpt-4o")
            .unwrap()
            .worst_case(1000, 100);
        assert!((worst_case(&routes, 1000, 100) - dear).abs() < 1e-12);
        assert_eq!(worst_case(&[], 1000, 100), 0.0);
        let e = estimate(&routes[0], 1000, 100);
        assert!(e.cost_usd > 0.0 && e.cost_usd < dear);
    }

    #[test]
    fn embeddings_inputs_are_counted() {
        assert_eq!(
            count_input("text-embedding-3-small", &serde_json::json!("hello world")),
            2
        );
        assert_eq!(
            count_input("m", &serde_json::json!(["hello world", [1, 2, 3]])),
            5
        );
        assert_eq!(count_input("m", &Value::Null), 0);
    }
}
