//! Cost: estimates before the call (for the cost policy) and the spend
//! ledger after it.
//!
//! [`SpendSource`] is the seam where the persistent ledger (sled / Redis,
//! shared by several gateways) plugs in later; [`InMemorySpend`] is the
//! single-process implementation used until then. It is real, not a fake:
//! spend recorded by completed requests is what the next policy call sees.
//!
//! The cost policy sees every budget that applies to a request
//! ([`SpendSource::spends`]). Today that is one: the principal's monthly
//! spend. The state layer (`crate::state::budget::Budgets::spend`) knows
//! all of them (key, user and feature, each per day and month, with what
//! requests in flight reserved); wiring it in means implementing
//! `spends` with it (`SpendSnapshot::to_plugin` converts each).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::config::RouteConfig;
use crate::openai::{ChatRequest, Usage};
use crate::plugin::{BudgetPeriod, Estimate, Spend};

use super::Principal;

/// Completion tokens assumed when the client sets no `max_tokens`, so a
/// policy still sees a plausible worst case.
pub const DEFAULT_COMPLETION_ESTIMATE: u32 = 1024;

/// Where spend per principal and budget period comes from and goes to.
pub trait SpendSource: Send + Sync {
    /// Spend so far for `scope` in the current month.
    fn spend(&self, scope: &str, budget_usd: Option<f64>) -> Spend;

    /// Every budget that applies to a request from `principal` for
    /// `request_user`: what the cost policy is shown. By default the
    /// principal's monthly spend alone (all a `SpendSource` records); a
    /// source that knows more (the state layer's budgets: key, user and
    /// feature × day and month) lists them all.
    fn spends(&self, principal: &Principal, request_user: Option<&str>) -> Vec<Spend> {
        vec![self.spend(&principal.scope(request_user), principal.budget_usd)]
    }

    /// Add a completed request's cost to `scope`'s current period.
    fn record(&self, scope: &str, cost_usd: f64);
}

/// Process-local spend per (scope, calendar month). Lost on restart.
#[derive(Default)]
pub struct InMemorySpend {
    spent: Mutex<HashMap<(String, String), f64>>,
}

impl SpendSource for InMemorySpend {
    fn spend(&self, scope: &str, budget_usd: Option<f64>) -> Spend {
        let label = current_period();
        let spent_usd = self
            .spent
            .lock()
            .get(&(scope.to_string(), label.clone()))
            .copied()
            .unwrap_or(0.0);
        Spend {
            scope: scope.to_string(),
            period: BudgetPeriod::Month,
            label,
            spent_usd,
            // Nothing is reserved in flight here: spend is added when a
            // request completes.
            reserved_usd: 0.0,
            budget_usd,
        }
    }

    fn record(&self, scope: &str, cost_usd: f64) {
        if cost_usd > 0.0 {
            *self
                .spent
                .lock()
                .entry((scope.to_string(), current_period()))
                .or_default() += cost_usd;
        }
    }
}

/// Rough prompt size: ~4 characters per token plus per-message framing.
/// Good enough for a worst-case budget check; exact counts come back in usage.
pub fn estimate(req: &ChatRequest, route: &RouteConfig) -> Estimate {
    let chars: usize = req
        .messages
        .iter()
        .map(|m| m.content_text().len() + m.role.len())
        .sum();
    let prompt_tokens = u32::try_from(chars / 4 + 4 * req.messages.len()).unwrap_or(u32::MAX);
    let max_completion_tokens = req
        .max_output_tokens()
        .unwrap_or(DEFAULT_COMPLETION_ESTIMATE);
    Estimate {
        prompt_tokens,
        max_completion_tokens,
        cost_usd: price(route, prompt_tokens, max_completion_tokens),
    }
}

/// USD cost of a request's usage on `route`.
pub fn usage_cost(route: &RouteConfig, usage: &Usage) -> f64 {
    price(route, usage.prompt_tokens, usage.completion_tokens)
}

fn price(route: &RouteConfig, prompt: u32, completion: u32) -> f64 {
    (f64::from(prompt) * route.input_cost_per_mtok.unwrap_or(0.0)
        + f64::from(completion) * route.output_cost_per_mtok.unwrap_or(0.0))
        / 1e6
}

/// Budget period label: the UTC calendar month, `YYYY-MM`.
pub fn current_period() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let (y, m) = year_month(days as i64);
    format!("{y:04}-{m:02}")
}

/// Civil year and month of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn year_month(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_from_day_counts() {
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(20_783), (2026, 11)); // 2026-11-26
        assert_eq!(year_month(11_016), (2000, 2)); // 2000-02-29
    }

    #[test]
    fn recorded_spend_is_seen_by_the_next_lookup() {
        let s = InMemorySpend::default();
        s.record("key:a", 0.25);
        s.record("key:a", 0.5);
        s.record("key:b", 1.0);
        let spend = s.spend("key:a", Some(10.0));
        assert!((spend.spent_usd - 0.75).abs() < 1e-9);
        assert_eq!(spend.budget_usd, Some(10.0));
        assert_eq!(spend.label, current_period());
        assert_eq!(spend.period, BudgetPeriod::Month);
        let principal = Principal {
            key_id: Some("a".into()),
            user: None,
            budget_usd: Some(10.0),
        };
        let all = s.spends(&principal, Some("bob"));
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].scope.as_str(), all[0].budget_usd),
            ("key:a", Some(10.0))
        );
    }
}
