//! A cost policy that answers what the last user message asks for:
//! `cap=N` caps the completion at N tokens (any u32, 0 and u32::MAX
//! included), `downgrade=NAME` downgrades to NAME (the rest of the message,
//! control characters and all, whether or not such a model exists);
//! anything else is allowed.
use sluice_sdk::{CostPolicy, Decision, Estimate, Request, Spend};

struct Edges;

impl CostPolicy for Edges {
    fn decide(req: &Request, _est: Estimate, _spends: Vec<Spend>) -> Decision {
        let last = req.last_user_text().unwrap_or_default();
        if let Some((_, n)) = last.split_once("cap=") {
            let n = n.split_whitespace().next().unwrap_or("");
            return Decision::CapTokens(n.parse().unwrap_or(0));
        }
        if let Some((_, name)) = last.split_once("downgrade=") {
            return Decision::Downgrade(name.to_string());
        }
        Decision::Allow
    }
}

sluice_sdk::export_cost_policy!(Edges);
