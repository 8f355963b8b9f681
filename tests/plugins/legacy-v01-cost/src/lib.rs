//! A cost policy built with wit-bindgen against the frozen `0.1.0` (no
//! SDK): it sees one `spend` record, the host's pick among every budget
//! (`host/src/plugin/compat.rs`). When the last user message contains
//! `legacy-spend` it denies with that record spelled out (`scope=…
//! spent=… budget=… period=…`); otherwise it denies when spend plus the
//! estimate passes the budget, and allows.

wit_bindgen::generate!({
    path: "../../../wit/frozen/0.1.0",
    world: "cost-policy-plugin",
});

use exports::sluice::plugin::cost_policy::Guest;
use sluice::plugin::types::{Decision, Estimate, RequestInfo, Spend};

#[allow(dead_code)] // only exported on wasm32
struct LegacyCost;

impl Guest for LegacyCost {
    fn decide(req: RequestInfo, est: Estimate, spend: Spend) -> Decision {
        let asks = req
            .messages
            .iter()
            .any(|m| m.role == "user" && m.content.contains("legacy-spend"));
        if asks {
            let budget = spend.budget_usd.map_or("none".into(), |b| b.to_string());
            return Decision::Deny(format!(
                "scope={} spent={} budget={budget} period={}",
                spend.scope, spend.spent_usd, spend.period
            ));
        }
        match spend.budget_usd {
            Some(b) if spend.spent_usd + est.cost_usd > b => Decision::Deny("over budget".into()),
            _ => Decision::Allow,
        }
    }
}

#[cfg(target_arch = "wasm32")]
export!(LegacyCost);
