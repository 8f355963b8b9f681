//! `budget-policy`: allow, deny, downgrade or cap a request against the
//! principal's budget for the period.
//!
//! Order of checks: no budget -> allow; spent >= budget -> deny; spend share
//! >= `downgrade-at` with `downgrade-to` set (and not already that model) ->
//! > downgrade; worst-case cost above the remaining budget -> cap max tokens;
//! > otherwise allow.
//!
//! Capping: the estimate carries one worst-case cost for `prompt-tokens +
//! max-completion-tokens`, not separate prices, so the cap assumes that cost
//! is spread evenly over those tokens: the prompt's share is paid first and
//! the rest of the remaining budget buys completion tokens. Where output
//! tokens cost more than input ones this can overshoot by part of one
//! request, within the gateway's "overspend at most one request" bound.
//!
//! Config: `downgrade-at` (share 0..1, default 0.8), `downgrade-to` (model;
//! none = never downgrade), `min-tokens` (default 16).

use sluice_sdk::{CostPolicy, Decision, Estimate, RequestInfo, Spend, config, config_or};

/// Policy settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub downgrade_at: f64,
    pub downgrade_to: Option<String>,
    pub min_tokens: u32,
}

impl Policy {
    /// Read from config.
    pub fn from_config() -> Self {
        Policy {
            downgrade_at: config_or("downgrade-at", 0.8),
            downgrade_to: config("downgrade-to")
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty()),
            min_tokens: config_or("min-tokens", 16),
        }
    }

    /// The decision for one request.
    pub fn decide(&self, req: &RequestInfo, est: &Estimate, spend: &Spend) -> Decision {
        let Some(budget) = spend.budget_usd else {
            return Decision::Allow;
        };
        if spend.spent_usd >= budget {
            return Decision::deny(format!(
                "budget exhausted for {}: spent ${:.2} of ${:.2} in {}",
                spend.scope, spend.spent_usd, budget, spend.period
            ));
        }
        let share = spend.spent_usd / budget;
        if let Some(model) = &self.downgrade_to
            && share >= self.downgrade_at
            && req.model != *model
        {
            return Decision::Downgrade(model.clone());
        }
        let remaining = budget - spend.spent_usd;
        if est.cost_usd <= remaining {
            return Decision::Allow;
        }
        let tokens = f64::from(est.prompt_tokens) + f64::from(est.max_completion_tokens);
        let per_token = if tokens > 0.0 {
            est.cost_usd / tokens
        } else {
            0.0
        };
        let affordable = if per_token > 0.0 {
            ((remaining - f64::from(est.prompt_tokens) * per_token) / per_token).floor()
        } else {
            f64::from(est.max_completion_tokens)
        };
        if affordable < f64::from(self.min_tokens) {
            return Decision::deny(format!(
                "budget nearly exhausted for {}: ${:.4} left of ${:.2} in {}, not enough for this request",
                spend.scope, remaining, budget, spend.period
            ));
        }
        Decision::CapTokens((affordable as u32).min(est.max_completion_tokens))
    }
}

/// The exported cost policy.
pub struct BudgetPolicy;

impl CostPolicy for BudgetPolicy {
    fn decide(req: RequestInfo, est: Estimate, spend: Spend) -> Decision {
        Policy::from_config().decide(&req, &est, &spend)
    }
}

sluice_sdk::export_cost_policy!(BudgetPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing::{clear_config, set_config};

    fn spend(spent: f64, budget: Option<f64>) -> Spend {
        Spend {
            scope: "user:alice".into(),
            spent_usd: spent,
            budget_usd: budget,
            period: "2026-11".into(),
        }
    }

    fn est(prompt: u32, completion: u32, cost: f64) -> Estimate {
        Estimate {
            prompt_tokens: prompt,
            max_completion_tokens: completion,
            cost_usd: cost,
        }
    }

    fn decide(model: &str, e: Estimate, s: Spend) -> Decision {
        BudgetPolicy::decide(RequestInfo::chat(model, &[("user", "hi")]), e, s)
    }

    #[test]
    fn no_budget_allows() {
        clear_config();
        assert_eq!(
            decide("gpt-4o", est(10, 10, 1e9), spend(1e9, None)),
            Decision::Allow
        );
    }

    #[test]
    fn exhausted_budget_denies() {
        clear_config();
        assert_eq!(
            decide("gpt-4o", est(10, 10, 0.01), spend(10.0, Some(10.0))),
            Decision::deny("budget exhausted for user:alice: spent $10.00 of $10.00 in 2026-11")
        );
    }

    #[test]
    fn downgrade_above_share_only_when_configured() {
        set_config(&[("downgrade-at", "0.8"), ("downgrade-to", "gpt-4o-mini")]);
        assert_eq!(
            decide("gpt-4o", est(10, 10, 0.01), spend(8.0, Some(10.0))),
            Decision::Downgrade("gpt-4o-mini".into())
        );
        assert_eq!(
            decide("gpt-4o", est(10, 10, 0.01), spend(7.9, Some(10.0))),
            Decision::Allow
        );
        // Already on the cheap model: no downgrade loop.
        assert_eq!(
            decide("gpt-4o-mini", est(10, 10, 0.01), spend(8.0, Some(10.0))),
            Decision::Allow
        );
        clear_config();
        assert_eq!(
            decide("gpt-4o", est(10, 10, 0.01), spend(9.0, Some(10.0))),
            Decision::Allow
        );
    }

    #[test]
    fn caps_tokens_to_remaining_budget() {
        clear_config();
        // 1000 + 1000 tokens for $2 => $0.001/token; $1 left: prompt $1 => nothing left.
        assert!(matches!(
            decide("m", est(1000, 1000, 2.0), spend(9.0, Some(10.0))),
            Decision::Deny(_)
        ));
        // $1.5 left: $1 for the prompt, $0.5 buys 500 tokens.
        assert_eq!(
            decide("m", est(1000, 1000, 2.0), spend(8.5, Some(10.0))),
            Decision::CapTokens(500)
        );
        // Fits: allow.
        assert_eq!(
            decide("m", est(1000, 1000, 2.0), spend(7.0, Some(10.0))),
            Decision::Allow
        );
        set_config(&[("min-tokens", "600")]);
        assert!(matches!(
            decide("m", est(1000, 1000, 2.0), spend(8.5, Some(10.0))),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn zero_budget_denies() {
        clear_config();
        assert!(matches!(
            decide("m", est(1, 1, 0.0), spend(0.0, Some(0.0))),
            Decision::Deny(_)
        ));
    }
}
