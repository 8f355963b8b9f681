//! Cost policy for the runtime's failure-mode tests: traps when the
//! request's model is `trap`, denies when spend plus the estimate exceeds
//! the budget, allows otherwise.
use sluice_sdk::{CostPolicy, Decision, Estimate, RequestInfo, Spend};

struct Budget;

impl CostPolicy for Budget {
    fn decide(req: RequestInfo, est: Estimate, spend: Spend) -> Decision {
        assert!(req.model != "trap", "cost policy asked to trap");
        match spend.budget_usd {
            Some(b) if spend.spent_usd + est.cost_usd > b => Decision::deny("over budget"),
            _ => Decision::Allow,
        }
    }
}

sluice_sdk::export_cost_policy!(Budget);
