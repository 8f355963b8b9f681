//! Cost policy for the runtime's failure-mode and spend tests: traps when
//! the request's model is `trap`; when the last user message says `spends`,
//! denies with a description of every spend it was shown (`scope period
//! label spent reserved budget`, `;`-separated) so a test can read them;
//! otherwise denies when any budget's settled plus reserved spend plus the
//! estimate exceeds it, and allows.
use sluice_sdk::{BudgetPeriod, CostPolicy, Decision, Estimate, Request, Spend};

struct Budget;

fn describe(s: &Spend) -> String {
    let period = match s.period {
        BudgetPeriod::Day => "day",
        BudgetPeriod::Month => "month",
    };
    let budget = s.budget_usd.map_or("none".to_string(), |b| b.to_string());
    format!(
        "{} {period} {} {} {} {budget}",
        s.scope, s.label, s.spent_usd, s.reserved_usd
    )
}

impl CostPolicy for Budget {
    fn decide(req: &Request, est: Estimate, spends: Vec<Spend>) -> Decision {
        assert!(req.model() != "trap", "cost policy asked to trap");
        if req.last_user_text().is_some_and(|t| t.contains("spends")) {
            let all: Vec<String> = spends.iter().map(describe).collect();
            return Decision::deny(format!("spends: {}", all.join("; ")));
        }
        match Spend::tightest(&spends).and_then(Spend::left_usd) {
            Some(left) if est.cost_usd > left => Decision::deny("over budget"),
            _ => Decision::Allow,
        }
    }
}

sluice_sdk::export_cost_policy!(Budget);
