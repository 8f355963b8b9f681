//! The contract's data types (generated from `wit/types.wit`, documented
//! there) plus small constructors and helpers that make plugin code and
//! tests read well.

pub use crate::__bindings::lifecycle::sluice::plugin::types::{
    BudgetPeriod, Candidate, Decision, Estimate, Flag, LogLevel, Message, OutputContext,
    OutputPart, Phases, PromptRef, Rejection, Route, Spend, ToolCall, Verdict,
};

impl Verdict {
    /// `Reject` with a machine-readable `code` (e.g. `pii`) and a reason shown
    /// to the client.
    pub fn reject(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Verdict::Reject(Rejection {
            reason: reason.into(),
            code: code.into(),
        })
    }

    /// `Flag` for human review: a machine-readable `code`, a `reason` for
    /// the reviewer (not the client) and the plugin's confidence that
    /// something is wrong, clamped to 0.0..=1.0 (NaN counts as 1.0: unsure
    /// how sure means look). The text passes unchanged.
    pub fn flag(code: impl Into<String>, reason: impl Into<String>, score: f32) -> Self {
        Verdict::Flag(Flag {
            reason: reason.into(),
            code: code.into(),
            score: if score.is_nan() {
                1.0
            } else {
                score.clamp(0.0, 1.0)
            },
        })
    }

    /// `Transform`: replace the checked text with `text`.
    pub fn transform(text: impl Into<String>) -> Self {
        Verdict::Transform(text.into())
    }

    /// True for [`Verdict::Pass`].
    pub fn is_pass(&self) -> bool {
        matches!(self, Verdict::Pass)
    }
}

impl Decision {
    /// `Deny` with a reason shown to the client.
    pub fn deny(reason: impl Into<String>) -> Self {
        Decision::Deny(reason.into())
    }
}

impl OutputContext {
    /// The context of a whole, non-streamed answer's content (nothing
    /// emitted, final, first choice).
    pub fn whole() -> Self {
        Self::window(String::new(), 0, true)
    }

    /// The context of stream window `index` of the first choice's content,
    /// after `emitted` was sent.
    pub fn window(emitted: impl Into<String>, index: u32, is_final: bool) -> Self {
        OutputContext {
            emitted: emitted.into(),
            window_index: index,
            is_final,
            choice: 0,
            part: OutputPart::Content,
        }
    }
}

impl Default for OutputContext {
    fn default() -> Self {
        Self::whole()
    }
}

impl Message {
    /// A plain text message (no name, no tool calls).
    pub fn text(role: &str, content: &str) -> Self {
        Message {
            role: role.to_string(),
            content: content.to_string(),
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

impl Spend {
    /// What counts against the budget: settled plus reserved (in flight).
    pub fn used_usd(&self) -> f64 {
        self.spent_usd + self.reserved_usd
    }

    /// What is left of the budget after settled and reserved spend (may be
    /// negative); `None` when the scope has no budget for this period.
    pub fn left_usd(&self) -> Option<f64> {
        self.budget_usd.map(|b| b - self.used_usd())
    }

    /// The share of the budget used (`used / budget`; infinite for a zero
    /// budget); `None` without a budget.
    pub fn share(&self) -> Option<f64> {
        self.budget_usd.map(|b| {
            if b > 0.0 {
                self.used_usd() / b
            } else {
                f64::INFINITY
            }
        })
    }

    /// The budget with the least left among `spends` (ties: the first
    /// listed); `None` when no scope has a budget.
    pub fn tightest(spends: &[Spend]) -> Option<&Spend> {
        spends
            .iter()
            .filter_map(|s| Some((s, s.left_usd()?)))
            .fold(None, |best: Option<(&Spend, f64)>, (s, left)| match best {
                Some((_, b)) if b <= left => best,
                _ => Some((s, left)),
            })
            .map(|(s, _)| s)
    }
}

impl From<&Candidate> for Route {
    fn from(c: &Candidate) -> Self {
        Route {
            provider: c.provider.clone(),
            model: c.model.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(
        scope: &str,
        period: BudgetPeriod,
        spent: f64,
        reserved: f64,
        budget: Option<f64>,
    ) -> Spend {
        Spend {
            scope: scope.into(),
            period,
            label: "2026-11".into(),
            spent_usd: spent,
            reserved_usd: reserved,
            budget_usd: budget,
        }
    }

    #[test]
    fn the_tightest_budget_counts_reserved_spend() {
        let spends = [
            spend("key:k1", BudgetPeriod::Month, 10.0, 0.0, Some(100.0)),
            spend("user:a", BudgetPeriod::Day, 1.0, 2.5, Some(5.0)),
            spend("feature:f", BudgetPeriod::Month, 50.0, 0.0, None),
            spend("user:a", BudgetPeriod::Month, 8.0, 0.0, Some(10.0)),
        ];
        let t = Spend::tightest(&spends).unwrap();
        assert_eq!((t.scope.as_str(), t.period), ("user:a", BudgetPeriod::Day));
        assert_eq!(t.left_usd(), Some(1.5));
        assert_eq!(spends[3].share(), Some(0.8));
        assert_eq!(spends[2].left_usd(), None);
        assert!(Spend::tightest(&spends[2..3]).is_none());
    }

    #[test]
    fn flags_clamp_their_score() {
        let Verdict::Flag(f) = Verdict::flag("x", "why", 3.0) else {
            panic!()
        };
        assert_eq!((f.code.as_str(), f.score), ("x", 1.0));
        let Verdict::Flag(f) = Verdict::flag("x", "why", f32::NAN) else {
            panic!()
        };
        assert_eq!(f.score, 1.0);
    }
}
