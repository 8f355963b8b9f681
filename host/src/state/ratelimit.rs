//! Requests and tokens per minute, per key and per user, with separate
//! limits for the interactive and batch tiers; GCRA on both backends
//! (`governor` in process, the same algorithm as a Lua script on Redis).
//!
//! Token charging: before the call, a request is charged its prompt
//! estimate plus its completion cap (`max_tokens`, or the default
//! completion estimate), the way OpenAI counts a request against its own
//! TPM limits, so a gateway limit set to an upstream's quota holds it. It is
//! not corrected after the call: GCRA cells cannot be handed back in
//! `governor`, and both backends behave the same.
//!
//! Order: the user's limits before the key's, requests before tokens;
//! checking stops at the first denial, and limits before it keep their
//! charge. A user who floods a shared key is stopped by their own limit
//! before touching the key's, so they cannot use up the key for everyone.

use std::time::Duration;

use serde::Serialize;

use super::budget::Subject;
use super::config::{RateLimit, Tier};
use super::store::{RateCheck, RateResult};
use super::{State, StateError};

/// Which kind of limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitKind {
    Requests,
    Tokens,
}

/// The state of one limit after a check, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateStatus {
    pub limit: u32,
    pub remaining: u32,
    /// Until the limit is back at its full burst.
    pub reset: Duration,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateDenied {
    /// `key:ID` or `user:NAME`.
    pub scope: String,
    pub kind: LimitKind,
    pub tier: Tier,
    pub limit: u32,
    /// What the request asked for (1 request, or its tokens).
    pub requested: u32,
    /// None when the request can never fit (more tokens than the per-minute
    /// limit): retrying is pointless.
    pub retry_after: Option<Duration>,
}

/// The answer to [`State::check_rate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct RateDecision {
    /// The tightest request limit checked (least remaining), if any.
    pub requests: Option<RateStatus>,
    /// The tightest token limit checked, if any.
    pub tokens: Option<RateStatus>,
    pub denied: Option<RateDenied>,
}

impl RateDecision {
    pub fn allowed(&self) -> bool {
        self.denied.is_none()
    }

    /// OpenAI's headers: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
    /// for the limits checked, plus `retry-after` (whole seconds, rounded up)
    /// on a denial that can be retried.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(s) = self.requests {
            h.push(("x-ratelimit-limit-requests", s.limit.to_string()));
            h.push(("x-ratelimit-remaining-requests", s.remaining.to_string()));
            h.push(("x-ratelimit-reset-requests", format_reset(s.reset)));
        }
        if let Some(s) = self.tokens {
            h.push(("x-ratelimit-limit-tokens", s.limit.to_string()));
            h.push(("x-ratelimit-remaining-tokens", s.remaining.to_string()));
            h.push(("x-ratelimit-reset-tokens", format_reset(s.reset)));
        }
        if let Some(retry) = self.denied.as_ref().and_then(|d| d.retry_after) {
            let secs = retry.as_secs() + u64::from(retry.subsec_nanos() > 0);
            h.push(("retry-after", secs.max(1).to_string()));
        }
        h
    }
}

/// A duration as OpenAI writes it: `250ms`, `1s`, `6m0s`, `1h2m3s`
/// (seconds rounded up: a client that waits that long finds the reset done).
pub fn format_reset(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
        return format!("{ms}ms");
    }
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, m, sec) => format!("{h}h{m}m{sec}s"),
    }
}

struct Planned {
    scope: String,
    kind: LimitKind,
    limit: u32,
    cost: u32,
}

impl State {
    /// Whether a tokens-per-minute limit applies to `who` in `tier` (config
    /// and key only, no store call): without one, callers need not count
    /// the prompt's tokens for [`State::check_rate`].
    pub fn limits_tokens(&self, who: &Subject<'_>, tier: Tier) -> bool {
        let defaults = &self.config.rate_limits;
        let user = who.user.is_some() && defaults.user.get(tier).tpm.is_some();
        let key = who
            .key
            .is_some_and(|k| k.limits.get(tier).or(defaults.key.get(tier)).tpm.is_some());
        user || key
    }

    /// Check and charge the rate limits that apply to `who` in `tier`: one
    /// request and `tokens` tokens. A zero `tokens` skips token limits.
    pub async fn check_rate(
        &self,
        who: &Subject<'_>,
        tier: Tier,
        tokens: u32,
    ) -> Result<RateDecision, StateError> {
        let defaults = &self.config.rate_limits;
        let mut subjects: Vec<(String, RateLimit)> = Vec::with_capacity(2);
        if let Some(u) = who.user {
            subjects.push((format!("user:{u}"), defaults.user.get(tier)));
        }
        if let Some(k) = who.key {
            let limits = k.limits.get(tier).or(defaults.key.get(tier));
            subjects.push((format!("key:{}", k.id), limits));
        }
        let mut plan = Vec::new();
        for (scope, l) in subjects {
            if let Some(rpm) = l.rpm {
                plan.push(Planned {
                    scope: scope.clone(),
                    kind: LimitKind::Requests,
                    limit: rpm,
                    cost: 1,
                });
            }
            if let (Some(tpm), true) = (l.tpm, tokens > 0) {
                plan.push(Planned {
                    scope,
                    kind: LimitKind::Tokens,
                    limit: tpm,
                    cost: tokens,
                });
            }
        }
        if plan.is_empty() {
            return Ok(RateDecision::default());
        }
        let checks: Vec<RateCheck> = plan
            .iter()
            .map(|p| RateCheck {
                key: format!(
                    "{}:{}:{}",
                    tier.as_str(),
                    match p.kind {
                        LimitKind::Requests => "rpm",
                        LimitKind::Tokens => "tpm",
                    },
                    p.scope
                ),
                limit: p.limit,
                cost: p.cost,
            })
            .collect();
        let results = self.store.rate(&checks).await?;
        Ok(decide(&plan, &results, tier))
    }
}

fn decide(plan: &[Planned], results: &[RateResult], tier: Tier) -> RateDecision {
    let mut d = RateDecision::default();
    for (p, r) in plan.iter().zip(results) {
        let status = RateStatus {
            limit: p.limit,
            remaining: r.remaining,
            reset: r.reset,
        };
        let slot = match p.kind {
            LimitKind::Requests => &mut d.requests,
            LimitKind::Tokens => &mut d.tokens,
        };
        // A denied limit always wins the headers; else the least remaining.
        if !r.allowed || slot.is_none_or(|s| status.remaining < s.remaining) {
            *slot = Some(status);
        }
        if !r.allowed {
            d.denied = Some(RateDenied {
                scope: p.scope.clone(),
                kind: p.kind,
                tier,
                limit: p.limit,
                requested: p.cost,
                retry_after: if r.too_large { None } else { r.retry_after },
            });
            break;
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_like_openais() {
        assert_eq!(format_reset(Duration::from_millis(250)), "250ms");
        assert_eq!(format_reset(Duration::from_micros(1500)), "2ms");
        assert_eq!(format_reset(Duration::from_secs(1)), "1s");
        assert_eq!(format_reset(Duration::from_millis(1001)), "2s");
        assert_eq!(format_reset(Duration::from_secs(360)), "6m0s");
        assert_eq!(format_reset(Duration::from_secs(3723)), "1h2m3s");
    }

    #[test]
    fn headers_name_the_tightest_limit_and_retry_after() {
        let plan = [
            Planned {
                scope: "user:a".into(),
                kind: LimitKind::Requests,
                limit: 10,
                cost: 1,
            },
            Planned {
                scope: "key:k".into(),
                kind: LimitKind::Requests,
                limit: 100,
                cost: 1,
            },
            Planned {
                scope: "key:k".into(),
                kind: LimitKind::Tokens,
                limit: 1000,
                cost: 900,
            },
        ];
        let ok = |remaining, reset| RateResult {
            allowed: true,
            too_large: false,
            remaining,
            reset: Duration::from_secs(reset),
            retry_after: None,
        };
        let denied = RateResult {
            allowed: false,
            too_large: false,
            remaining: 0,
            reset: Duration::from_secs(59),
            retry_after: Some(Duration::from_millis(2500)),
        };
        let d = decide(&plan, &[ok(9, 6), ok(99, 1), denied], Tier::Batch);
        assert_eq!(d.requests.unwrap().limit, 10);
        assert!(!d.allowed());
        let h = d.headers();
        let get = |k| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("x-ratelimit-remaining-requests"), Some("9"));
        assert_eq!(get("x-ratelimit-reset-requests"), Some("6s"));
        assert_eq!(get("x-ratelimit-limit-tokens"), Some("1000"));
        assert_eq!(get("x-ratelimit-remaining-tokens"), Some("0"));
        assert_eq!(get("retry-after"), Some("3"));
        let denial = d.denied.unwrap();
        assert_eq!(
            (denial.scope.as_str(), denial.kind, denial.tier),
            ("key:k", LimitKind::Tokens, Tier::Batch)
        );
    }
}
