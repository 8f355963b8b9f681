//! `budget-policy`: allow, deny, downgrade or cap a request against every
//! budget that applies to it (the key's, the user's, the feature's; per day
//! and per month), each counting settled spend plus what requests in flight
//! reserved.
//!
//! Order of checks: no budget anywhere -> allow; the tightest budget (least
//! left, [`Spend::tightest`]) exhausted -> deny; any budget's share used at
//! or above `downgrade-at` with `downgrade-to` set (and not already that
//! model) -> downgrade; worst-case cost above what the tightest budget has
//! left -> cap max tokens; otherwise allow.
//!
//! Capping: the estimate carries one worst-case cost for `prompt-tokens +
//! max-completion-tokens`, not separate prices, so the cap assumes that cost
//! is spread evenly over those tokens: the prompt's share is paid first and
//! the rest of the remaining budget buys completion tokens. Where output
//! tokens cost more than input ones this can overshoot by part of one
//! request, within the gateway's "overspend at most one request" bound.
//!
//! Config (checked at load): `downgrade-at` (share in 0..=1, default 0.8),
//! `downgrade-to` (model; none = never downgrade), `min-tokens` (at least 1,
//! default 16).

use sluice_sdk::{
    BudgetPeriod, ConfigError, CostPolicy, Decision, Estimate, Request, Spend, check_keys, config,
    config_parsed,
};

/// The `[config]` keys this plugin reads.
const KEYS: &[&str] = &["downgrade-at", "downgrade-to", "min-tokens"];

/// Policy settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub downgrade_at: f64,
    pub downgrade_to: Option<String>,
    pub min_tokens: u32,
}

impl Policy {
    /// Read and check the config.
    pub fn from_config() -> Result<Self, ConfigError> {
        check_keys(KEYS)?;
        let downgrade_at: f64 = config_parsed("downgrade-at")?.unwrap_or(0.8);
        if !(0.0..=1.0).contains(&downgrade_at) {
            return Err(ConfigError::new(
                "downgrade-at",
                format!("{downgrade_at} is not a share of the budget in 0..=1"),
            ));
        }
        let downgrade_to = match config("downgrade-to") {
            None => None,
            Some(m) if m.trim().is_empty() => {
                return Err(ConfigError::new(
                    "downgrade-to",
                    "empty model name (omit the key to never downgrade)",
                ));
            }
            Some(m) => Some(m.trim().to_string()),
        };
        let min_tokens: u32 = config_parsed("min-tokens")?.unwrap_or(16);
        if min_tokens == 0 {
            return Err(ConfigError::new(
                "min-tokens",
                "must be at least 1 (a request capped at 0 tokens has no answer)",
            ));
        }
        Ok(Policy {
            downgrade_at,
            downgrade_to,
            min_tokens,
        })
    }

    /// The decision for one request.
    pub fn decide(&self, model: &str, est: &Estimate, spends: &[Spend]) -> Decision {
        let Some(tight) = Spend::tightest(spends) else {
            return Decision::Allow;
        };
        let (budget, left) = match (tight.budget_usd, tight.left_usd()) {
            (Some(b), Some(l)) => (b, l),
            _ => return Decision::Allow,
        };
        let period = match tight.period {
            BudgetPeriod::Day => "on",
            BudgetPeriod::Month => "in",
        };
        if left <= 0.0 {
            return Decision::deny(format!(
                "budget exhausted for {}: spent ${:.2} of ${:.2} {period} {}",
                tight.scope,
                tight.used_usd(),
                budget,
                tight.label
            ));
        }
        let fullest = spends
            .iter()
            .filter_map(Spend::share)
            .fold(0.0_f64, f64::max);
        if let Some(target) = &self.downgrade_to
            && fullest >= self.downgrade_at
            && model != target
        {
            return Decision::Downgrade(target.clone());
        }
        if est.cost_usd <= left {
            return Decision::Allow;
        }
        let tokens = f64::from(est.prompt_tokens) + f64::from(est.max_completion_tokens);
        let per_token = if tokens > 0.0 {
            est.cost_usd / tokens
        } else {
            0.0
        };
        let affordable = if per_token > 0.0 {
            ((left - f64::from(est.prompt_tokens) * per_token) / per_token).floor()
        } else {
            f64::from(est.max_completion_tokens)
        };
        if affordable < f64::from(self.min_tokens) {
            return Decision::deny(format!(
                "budget nearly exhausted for {}: ${left:.4} left of ${budget:.2} {period} {}, not enough for this request",
                tight.scope, tight.label
            ));
        }
        Decision::CapTokens((affordable as u32).min(est.max_completion_tokens))
    }
}

/// The exported cost policy.
pub struct BudgetPolicy;

impl CostPolicy for BudgetPolicy {
    fn validate_config() -> Result<(), String> {
        Policy::from_config().map(drop).map_err(|e| e.to_string())
    }

    fn decide(req: &Request, est: Estimate, spends: Vec<Spend>) -> Decision {
        // Validated at load: an error here cannot happen (it would trap).
        let policy = Policy::from_config().unwrap_or_else(|e| e.trap());
        policy.decide(&req.model(), &est, &spends)
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
            period: BudgetPeriod::Month,
            label: "2026-11".into(),
            spent_usd: spent,
            reserved_usd: 0.0,
            budget_usd: budget,
        }
    }

    fn est(prompt: u32, completion: u32, cost: f64) -> Estimate {
        Estimate {
            prompt_tokens: prompt,
            max_completion_tokens: completion,
            cost_usd: cost,
        }
    }

    fn decide(model: &str, e: Estimate, spends: Vec<Spend>) -> Decision {
        BudgetPolicy::decide(&Request::chat(model, &[("user", "hi")]), e, spends)
    }

    #[test]
    fn no_budget_allows() {
        clear_config();
        assert_eq!(
            decide("gpt-4o", est(10, 10, 1e9), vec![spend(1e9, None)]),
            Decision::Allow
        );
        assert_eq!(decide("gpt-4o", est(10, 10, 1e9), vec![]), Decision::Allow);
    }

    #[test]
    fn exhausted_budget_denies() {
        clear_config();
        assert_eq!(
            decide("gpt-4o", est(10, 10, 0.01), vec![spend(10.0, Some(10.0))]),
            Decision::deny("budget exhausted for user:alice: spent $10.00 of $10.00 in 2026-11")
        );
    }

    #[test]
    fn reserved_spend_counts_and_the_tightest_budget_decides() {
        clear_config();
        let day = Spend {
            scope: "key:k1".into(),
            period: BudgetPeriod::Day,
            label: "2026-11-27".into(),
            spent_usd: 0.5,
            reserved_usd: 0.5,
            budget_usd: Some(1.0),
        };
        let roomy = spend(1.0, Some(100.0));
        assert_eq!(
            decide("m", est(10, 10, 0.01), vec![roomy.clone(), day.clone()]),
            Decision::deny("budget exhausted for key:k1: spent $1.00 of $1.00 on 2026-11-27")
        );
        // $0.25 left of the day's budget: $2 worth of tokens is capped to it.
        let day = Spend {
            reserved_usd: 0.25,
            ..day
        };
        assert_eq!(
            decide("m", est(100, 1900, 2.0), vec![roomy, day]),
            Decision::CapTokens(150)
        );
    }

    #[test]
    fn downgrade_above_share_only_when_configured() {
        set_config(&[("downgrade-at", "0.8"), ("downgrade-to", "gpt-4o-mini")]);
        assert_eq!(
            decide("gpt-4o", est(10, 10, 0.01), vec![spend(8.0, Some(10.0))]),
            Decision::Downgrade("gpt-4o-mini".into())
        );
        assert_eq!(
            decide("gpt-4o", est(10, 10, 0.01), vec![spend(7.9, Some(10.0))]),
            Decision::Allow
        );
        // Any budget past the share downgrades, not only the tightest.
        assert_eq!(
            decide(
                "gpt-4o",
                est(10, 10, 0.01),
                vec![spend(85.0, Some(100.0)), spend(1.0, Some(5.0))]
            ),
            Decision::Downgrade("gpt-4o-mini".into())
        );
        // Already on the cheap model: no downgrade loop.
        assert_eq!(
            decide(
                "gpt-4o-mini",
                est(10, 10, 0.01),
                vec![spend(8.0, Some(10.0))]
            ),
            Decision::Allow
        );
        clear_config();
        assert_eq!(
            decide("gpt-4o", est(10, 10, 0.01), vec![spend(9.0, Some(10.0))]),
            Decision::Allow
        );
    }

    #[test]
    fn caps_tokens_to_remaining_budget() {
        clear_config();
        // 1000 + 1000 tokens for $2 => $0.001/token; $1 left: prompt $1 => nothing left.
        assert!(matches!(
            decide("m", est(1000, 1000, 2.0), vec![spend(9.0, Some(10.0))]),
            Decision::Deny(_)
        ));
        // $1.5 left: $1 for the prompt, $0.5 buys 500 tokens.
        assert_eq!(
            decide("m", est(1000, 1000, 2.0), vec![spend(8.5, Some(10.0))]),
            Decision::CapTokens(500)
        );
        // Fits: allow.
        assert_eq!(
            decide("m", est(1000, 1000, 2.0), vec![spend(7.0, Some(10.0))]),
            Decision::Allow
        );
        set_config(&[("min-tokens", "600")]);
        assert!(matches!(
            decide("m", est(1000, 1000, 2.0), vec![spend(8.5, Some(10.0))]),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn zero_budget_denies() {
        clear_config();
        assert!(matches!(
            decide("m", est(1, 1, 0.0), vec![spend(0.0, Some(0.0))]),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn config_is_checked_at_load() {
        set_config(&[
            ("downgrade-at", "0.8"),
            ("downgrade-to", "gpt-4o-mini"),
            ("min-tokens", "16"),
        ]);
        assert_eq!(BudgetPolicy::validate_config(), Ok(()));
        for (key, value, says) in [
            ("downgrade-at", "1.5", "0..=1"),
            ("downgrade-at", "most", "cannot parse"),
            ("downgrade-to", " ", "empty"),
            ("min-tokens", "0", "at least 1"),
            ("min-tokens", "-3", "cannot parse"),
            ("downgrade_at", "0.5", "unknown"),
        ] {
            set_config(&[(key, value)]);
            let e = BudgetPolicy::validate_config().unwrap_err();
            assert!(e.contains(key) && e.contains(says), "{key}={value}: {e}");
        }
    }
}
