//! Why a request failed inside the pipeline. What each failure looks like
//! on the wire (status, OpenAI error body, `Retry-After`) is the server's
//! decision (`crate::server::error`), made in one place for plain answers
//! and mid-stream error events alike.

use std::time::Duration;

use crate::plugin::PluginFailure;
use crate::provider::UpstreamError;
use crate::state::{BudgetExceeded, LimitKind, RateDecision, StateError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter the gateway itself checks is invalid.
    #[error("{message}")]
    InvalidRequest { param: String, message: String },
    /// `model` is not a configured gateway model, or the caller's key may
    /// not use it: the two answer alike (as OpenAI's do), so a restricted
    /// key cannot probe which models exist.
    #[error("The model `{0}` does not exist or you do not have access to it")]
    ModelNotFound(String),
    /// A rate limit of the key or user has no room for the request.
    #[error("{}", rate_message(.0))]
    RateLimited(RateDecision),
    /// A budget has no room for the request's worst case.
    #[error("{0}")]
    BudgetExceeded(#[from] BudgetExceeded),
    /// The state store (keys, budgets, limits, ledger) failed.
    #[error("the gateway's state store failed: {0}")]
    State(#[from] StateError),
    /// A guardrail refused the input or (part of) the output.
    #[error("Request blocked by guardrail `{plugin}`: {reason}")]
    GuardrailRejected {
        plugin: String,
        reason: String,
        code: String,
    },
    /// A plugin the model needs is not loaded (failed or missing), so the
    /// request fails closed rather than skipping the check.
    #[error("plugin `{0}` required by this model is not loaded")]
    PluginUnavailable(String),
    /// A router or cost-policy plugin failed and its failure mode is `closed`.
    #[error("plugin `{plugin}` failed: {failure}")]
    PluginFailed {
        plugin: String,
        failure: PluginFailure,
    },
    /// The cost policy denied the request.
    #[error("Request denied by cost policy `{plugin}`: {reason}")]
    CostDenied { plugin: String, reason: String },
    /// The whole upstream phase exceeded `server.request-timeout-ms`.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The request's `prompt` extension could not be rendered.
    #[error("{0}")]
    Prompt(#[from] crate::prompt::PromptError),
    /// The providers gave up (after retries and fallbacks).
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
}

fn rate_message(d: &RateDecision) -> String {
    let Some(denied) = &d.denied else {
        return "Rate limit reached".into();
    };
    let kind = match denied.kind {
        LimitKind::Requests => "requests per minute (RPM)",
        LimitKind::Tokens => "tokens per minute (TPM)",
    };
    let mut msg = format!(
        "Rate limit reached for {} ({} tier) on {kind}: limit {}, requested {}.",
        denied.scope,
        denied.tier.as_str(),
        denied.limit,
        denied.requested
    );
    match denied.retry_after {
        Some(after) => msg.push_str(&format!(
            " Please try again in {}.",
            crate::state::ratelimit::format_reset(after)
        )),
        None => msg.push_str(
            " The request is larger than the limit allows in a minute; it can never pass.",
        ),
    }
    msg
}

impl Error {
    /// `plugin` rejected the text with `r`.
    pub fn rejected(plugin: String, r: crate::plugin::Rejection) -> Self {
        Error::GuardrailRejected {
            plugin,
            reason: r.reason,
            code: r.code,
        }
    }
}
