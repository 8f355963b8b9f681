//! Why a request failed inside the pipeline. What each failure looks like
//! on the wire (status, OpenAI error body, `Retry-After`) is the server's
//! decision (`crate::server::error`), made in one place for plain answers
//! and mid-stream error events alike.

use std::time::Duration;

use crate::plugin::PluginFailure;
use crate::provider::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter the gateway itself checks is invalid.
    #[error("{message}")]
    InvalidRequest { param: String, message: String },
    /// `model` is not a configured gateway model.
    #[error("The model `{0}` does not exist")]
    ModelNotFound(String),
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
