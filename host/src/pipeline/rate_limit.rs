//! The rate-limit stage: requests and tokens per minute, per key and per
//! user, for the request's tier (GCRA in [`crate::state::ratelimit`]).
//!
//! It runs as soon as the request is parsed and its model resolved, before
//! any plugin: a client over its limit costs one state call and no
//! guardrail CPU. The token charge needs the parsed request: the prompt's
//! tokens plus the completion cap, as OpenAI counts its own TPM limits,
//! counted only when a token limit applies. The decision travels with the
//! request, so successful answers carry the `x-ratelimit-*` headers too.

use crate::state::{RateDecision, State, Subject, Tier};

use super::Error;

/// Check and charge `who`'s limits in `tier`; `tokens` is asked for only
/// when a tokens-per-minute limit applies.
pub(super) async fn check(
    state: &State,
    who: &Subject<'_>,
    tier: Tier,
    tokens: impl FnOnce() -> u32,
) -> Result<RateDecision, Error> {
    let tokens = if state.limits_tokens(who, tier) {
        tokens().max(1)
    } else {
        0
    };
    let decision = state.check_rate(who, tier, tokens).await?;
    if decision.allowed() {
        Ok(decision)
    } else {
        Err(Error::RateLimited(decision))
    }
}
