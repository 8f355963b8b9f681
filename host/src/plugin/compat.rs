//! Conversions between the current contract's types (`0.2`) and the frozen
//! `0.1.0` ones, so a guest built against `0.1.0` keeps loading. The
//! pipeline only ever sees current types; a call to a `0.1` guest converts
//! its arguments down and its answer up, here and nowhere else.
//!
//! What a `0.1` guest gets:
//! - **request**: the flattened `request-info` record, built per call (the
//!   whole conversation copied and lowered each time, as `0.1` always did).
//!   Messages keep `role` and `content`; a message's `name`, `tool-calls`
//!   and `tool-call-id` do not exist in `0.1` and are left out. The prompt
//!   reference is left out too.
//! - **output context**: `emitted`, `window-index` and `is-final`; `choice`
//!   and `part` are left out (a `0.1` guest is only asked about content).
//! - **spend**: one record, chosen by [`spend`]'s rule.
//! - **phases**: implicitly `input | output` (`0.1` has no `phases`), and
//!   no config validation (no `lifecycle` export).
//!
//! Their answers convert up losslessly: `0.1` verdicts and decisions are a
//! subset of the current ones.

use super::bindings::types::{
    BudgetPeriod, Candidate, Decision, Estimate, LogLevel, OutputContext, Rejection, Route, Spend,
    Verdict,
};
use super::bindings::v0_1::types as old;
use super::request::RequestInfo;

/// The `0.1` record of `req`.
pub fn request(req: &RequestInfo) -> old::RequestInfo {
    old::RequestInfo {
        id: req.id.clone(),
        user: req.user.clone(),
        api_key_id: req.api_key_id.clone(),
        feature: req.feature.clone(),
        tags: req.tags.clone(),
        model: req.model.clone(),
        messages: req
            .messages
            .iter()
            .map(|m| old::Message {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect(),
        max_tokens: req.max_tokens,
        temperature: req.temperature,
        stream: req.stream,
    }
}

/// The `0.1` output context: without `choice` and `part`.
pub fn output_context(ctx: &OutputContext) -> old::OutputContext {
    old::OutputContext {
        emitted: ctx.emitted.clone(),
        window_index: ctx.window_index,
        is_final: ctx.is_final,
    }
}

/// The one spend a `0.1` cost policy sees, out of every applicable one:
///
/// 1. among **monthly** spends with a budget, the **tightest**: the least
///    left after settled *and reserved* spend (ties: the first listed);
/// 2. with no monthly budget anywhere, the **key's** monthly spend (scope
///    `key:…`), without a budget;
/// 3. else the first monthly spend, else the first spend at all.
///
/// `spent-usd` is settled plus reserved spend: what a new request competes
/// with. `period` is the period's label (`2026-11`). Daily budgets are not
/// shown (the `0.1` record names one monthly period); the gateway still
/// enforces them when it reserves. With no spend at all the guest sees
/// `anonymous` with nothing spent and no budget.
pub fn spend(spends: &[Spend]) -> old::Spend {
    let monthly = || spends.iter().filter(|s| s.period == BudgetPeriod::Month);
    let left = |s: &Spend| s.budget_usd.map(|b| b - s.spent_usd - s.reserved_usd);
    let tightest = monthly()
        .filter(|s| s.budget_usd.is_some())
        .fold(None::<&Spend>, |best, s| match best {
            Some(b) if left(b) <= left(s) => Some(b),
            _ => Some(s),
        });
    let chosen = tightest
        .or_else(|| monthly().find(|s| s.scope.starts_with("key:")))
        .or_else(|| monthly().next())
        .or_else(|| spends.first());
    match chosen {
        Some(s) => old::Spend {
            scope: s.scope.clone(),
            spent_usd: s.spent_usd + s.reserved_usd,
            budget_usd: s.budget_usd,
            period: s.label.clone(),
        },
        None => old::Spend {
            scope: "anonymous".into(),
            spent_usd: 0.0,
            budget_usd: None,
            period: String::new(),
        },
    }
}

pub fn candidate(c: &Candidate) -> old::Candidate {
    old::Candidate {
        provider: c.provider.clone(),
        model: c.model.clone(),
        tier: c.tier.clone(),
        input_cost_per_mtok: c.input_cost_per_mtok,
        output_cost_per_mtok: c.output_cost_per_mtok,
        context_window: c.context_window,
    }
}

pub fn estimate(e: &Estimate) -> old::Estimate {
    old::Estimate {
        prompt_tokens: e.prompt_tokens,
        max_completion_tokens: e.max_completion_tokens,
        cost_usd: e.cost_usd,
    }
}

pub fn verdict(v: old::Verdict) -> Verdict {
    match v {
        old::Verdict::Pass => Verdict::Pass,
        old::Verdict::Transform(t) => Verdict::Transform(t),
        old::Verdict::Reject(r) => Verdict::Reject(Rejection {
            reason: r.reason,
            code: r.code,
        }),
    }
}

pub fn route(r: old::Route) -> Route {
    Route {
        provider: r.provider,
        model: r.model,
    }
}

pub fn decision(d: old::Decision) -> Decision {
    match d {
        old::Decision::Allow => Decision::Allow,
        old::Decision::Deny(why) => Decision::Deny(why),
        old::Decision::Downgrade(model) => Decision::Downgrade(model),
        old::Decision::CapTokens(n) => Decision::CapTokens(n),
    }
}

pub fn log_level(l: old::LogLevel) -> LogLevel {
    match l {
        old::LogLevel::Trace => LogLevel::Trace,
        old::LogLevel::Debug => LogLevel::Debug,
        old::LogLevel::Info => LogLevel::Info,
        old::LogLevel::Warn => LogLevel::Warn,
        old::LogLevel::Error => LogLevel::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{Message, OutputPart, ToolCall};

    fn s(
        scope: &str,
        period: BudgetPeriod,
        spent: f64,
        reserved: f64,
        budget: Option<f64>,
    ) -> Spend {
        Spend {
            scope: scope.into(),
            period,
            label: match period {
                BudgetPeriod::Day => "2026-11-27".into(),
                BudgetPeriod::Month => "2026-11".into(),
            },
            spent_usd: spent,
            reserved_usd: reserved,
            budget_usd: budget,
        }
    }

    #[test]
    fn the_tightest_monthly_budget_counts_reserved_spend() {
        use BudgetPeriod::{Day, Month};
        let spends = [
            s("key:k1", Day, 0.9, 0.0, Some(1.0)),
            s("key:k1", Month, 5.0, 0.0, Some(100.0)),
            s("user:alice", Month, 6.0, 3.0, Some(10.0)),
            s("feature:chat", Month, 1.0, 0.0, Some(5.0)),
        ];
        // user: 1.0 left (reserved counted), feature: 4.0, key: 95; the
        // day budget (0.1 left) is not a monthly one.
        let got = spend(&spends);
        assert_eq!(got.scope, "user:alice");
        assert_eq!(got.spent_usd, 9.0);
        assert_eq!(got.budget_usd, Some(10.0));
        assert_eq!(got.period, "2026-11");
    }

    #[test]
    fn without_a_monthly_budget_the_key_is_shown() {
        use BudgetPeriod::{Day, Month};
        let spends = [
            s("user:alice", Month, 2.0, 0.0, None),
            s("key:k1", Day, 1.0, 0.0, Some(3.0)),
            s("key:k1", Month, 4.0, 0.5, None),
        ];
        let got = spend(&spends);
        assert_eq!((got.scope.as_str(), got.spent_usd), ("key:k1", 4.5));
        assert_eq!(got.budget_usd, None);
        let got = spend(&spends[..1]);
        assert_eq!(got.scope, "user:alice");
        let got = spend(&[]);
        assert_eq!((got.scope.as_str(), got.budget_usd), ("anonymous", None));
    }

    #[test]
    fn the_request_record_flattens_and_contexts_drop_parts() {
        let req = RequestInfo {
            id: "r1".into(),
            model: "m".into(),
            messages: vec![Message {
                role: "assistant".into(),
                content: "calling".into(),
                name: Some("bot".into()),
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "lookup".into(),
                    arguments: "{}".into(),
                }],
                tool_call_id: None,
            }],
            stream: true,
            ..Default::default()
        };
        let old = request(&req);
        assert_eq!(old.id, "r1");
        assert!(old.stream);
        assert_eq!(old.messages.len(), 1);
        assert_eq!(old.messages[0].content, "calling");
        let ctx = OutputContext {
            emitted: "ab".into(),
            window_index: 2,
            is_final: false,
            choice: 1,
            part: OutputPart::ToolArguments(0),
        };
        let old = output_context(&ctx);
        assert_eq!(
            (old.emitted.as_str(), old.window_index, old.is_final),
            ("ab", 2, false)
        );
    }

    #[test]
    fn answers_convert_up() {
        assert_eq!(
            verdict(old::Verdict::Reject(old::Rejection {
                reason: "r".into(),
                code: "c".into()
            })),
            Verdict::Reject(Rejection {
                reason: "r".into(),
                code: "c".into()
            })
        );
        assert!(matches!(
            decision(old::Decision::CapTokens(7)),
            Decision::CapTokens(7)
        ));
    }
}
