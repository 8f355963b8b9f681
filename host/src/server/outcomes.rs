//! What the quality tracker ([`crate::state::quality`]) learns from each
//! answer: its outcome for the rolling rates, and guardrail rejections for
//! the dashboard's list (model, plugin, code, reason; never prompt text).

use crate::pipeline::{Error, Gateway};
use crate::state::quality::{Outcome, Rejection};

use super::error::ApiError;

/// Count an answer of `model`: `error` is the failure, if it failed.
/// Client-side refusals (bad request, rate limit, budget, cost policy)
/// say nothing about quality and are not counted.
pub(super) fn answered(gw: &Gateway, model: &str, request_id: &str, error: Option<&Error>) {
    let outcome = match error {
        None => Outcome::Ok,
        Some(e @ Error::GuardrailRejected { .. }) => {
            remember(gw, model, request_id, e, false);
            Outcome::Rejected
        }
        Some(e) if ApiError::from(e).status.is_server_error() => Outcome::Error,
        Some(_) => return,
    };
    gw.quality.record(model, outcome);
}

/// A stream answered 200 ended with `error`, a request already counted as
/// answered: a guardrail's refusal counts as a rejection, a server-side
/// failure (upstream broke off, deadline) as an error.
pub(super) fn stream_ended(gw: &Gateway, model: &str, request_id: &str, error: &Error) {
    if matches!(error, Error::GuardrailRejected { .. }) {
        remember(gw, model, request_id, error, true);
        gw.quality.rejected_late(model);
    } else if ApiError::from(error).status.is_server_error() {
        gw.quality.failed_late(model);
    }
}

fn remember(gw: &Gateway, model: &str, request_id: &str, e: &Error, stream: bool) {
    let Error::GuardrailRejected {
        plugin,
        reason,
        code,
    } = e
    else {
        return;
    };
    gw.quality.remember(Rejection {
        at_ms: crate::state::now_ms(),
        request_id: request_id.to_string(),
        model: model.to_string(),
        plugin: plugin.clone(),
        code: code.clone(),
        reason: reason.clone(),
        stream,
    });
}
