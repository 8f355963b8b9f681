//! What a failed plugin call means for the request: the one place a
//! [`PluginFailure`] meets the plugin's `failure-mode`, and the one log
//! line about it (the runtime only counts failures).

use crate::plugin::log::escaped;
use crate::plugin::{FailureMode, Plugin, PluginFailure, VerdictKind};

/// `open`: the call is treated as if it answered `open_answer` (a guardrail
/// passes, a router leaves the configured order, a cost policy allows);
/// `closed`: the failure stands and the caller fails the request.
pub(super) fn answer<T>(
    plugin: &Plugin,
    failure: PluginFailure,
    request_id: &str,
    open_answer: T,
) -> Result<T, PluginFailure> {
    let mode = plugin.manifest().failure_mode;
    tracing::warn!(
        request_id,
        plugin = plugin.name(),
        failure = failure.label(),
        failure_mode = ?mode,
        cause = %escaped(&failure),
        "plugin call failed; its failure mode decides"
    );
    match mode {
        FailureMode::Open => {
            plugin.count_verdict(VerdictKind::FailOpen);
            Ok(open_answer)
        }
        FailureMode::Closed => {
            plugin.count_verdict(VerdictKind::FailClosed);
            Err(failure)
        }
    }
}
