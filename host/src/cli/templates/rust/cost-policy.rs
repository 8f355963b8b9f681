//! {{name}}: a Sluice cost policy in Rust.
//!
//! Denies a request whose worst-case cost would take any of its budgets
//! (key, user, feature; day and month) over, and caps completions longer
//! than `max-completion-tokens` (`[config]`, a whole number; 0 = no cap);
//! allows everything else. The config is checked once at load.

wit_bindgen::generate!({ world: "cost-policy-plugin", path: "wit" });

use exports::sluice::plugin::cost_policy::Guest as CostPolicy;
use exports::sluice::plugin::lifecycle::Guest as Lifecycle;
use sluice::plugin::host::{config, config_keys, log};
use sluice::plugin::types::{Decision, Estimate, LogLevel, Request, Spend};

/// The `[config]` keys this plugin reads.
const KEYS: &[&str] = &["max-completion-tokens"];

/// `max-completion-tokens`, 0 when absent.
fn max_completion_tokens() -> Result<u32, String> {
    match config("max-completion-tokens") {
        None => Ok(0),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| format!("config `max-completion-tokens`: {v:?} is not a whole number: {e}")),
    }
}

struct Plugin;

impl Lifecycle for Plugin {
    fn validate_config() -> Result<(), String> {
        if let Some(key) = config_keys().into_iter().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("config `{key}`: unknown key (known: {})", KEYS.join(", ")));
        }
        max_completion_tokens().map(drop)
    }
}

impl CostPolicy for Plugin {
    fn decide(_request: &Request, estimate: Estimate, spends: Vec<Spend>) -> Decision {
        // Requests in flight hold their worst case (`reserved_usd`) too.
        for s in &spends {
            if let Some(budget) = s.budget_usd
                && s.spent_usd + s.reserved_usd + estimate.cost_usd > budget
            {
                log(LogLevel::Info, &format!("{} ({}) would exceed its budget", s.scope, s.label));
                return Decision::Deny(format!(
                    "over budget: {:.2} of {budget:.2} USD spent ({} {})",
                    s.spent_usd, s.scope, s.label
                ));
            }
        }
        // Validated at load; should it fail here anyway, trap: the
        // manifest's failure mode answers and the log says why.
        let cap = max_completion_tokens().unwrap_or_else(|why| panic!("{why}"));
        if cap > 0 && estimate.max_completion_tokens > cap {
            return Decision::CapTokens(cap);
        }
        Decision::Allow
    }
}

export!(Plugin);
