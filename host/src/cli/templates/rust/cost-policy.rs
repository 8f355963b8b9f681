//! {{name}}: a Sluice cost policy in Rust.
//!
//! Denies a request whose worst-case cost would take its principal over
//! budget, and caps completions longer than `max-completion-tokens`
//! (`[config]`); allows everything else.

wit_bindgen::generate!({ world: "cost-policy-plugin", path: "wit" });

use exports::sluice::plugin::cost_policy::Guest;
use sluice::plugin::host::{config, log};
use sluice::plugin::types::{Decision, Estimate, LogLevel, RequestInfo, Spend};

struct Plugin;

impl Guest for Plugin {
    fn decide(_request: RequestInfo, estimate: Estimate, spend: Spend) -> Decision {
        if let Some(budget) = spend.budget_usd
            && spend.spent_usd + estimate.cost_usd > budget
        {
            log(LogLevel::Info, &format!("{} would exceed its budget", spend.scope));
            return Decision::Deny(format!(
                "over budget: {:.2} of {budget:.2} USD spent",
                spend.spent_usd
            ));
        }
        let cap: u32 = config("max-completion-tokens")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if cap > 0 && estimate.max_completion_tokens > cap {
            return Decision::CapTokens(cap);
        }
        Decision::Allow
    }
}

export!(Plugin);
