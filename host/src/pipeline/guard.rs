//! Guardrail chains for one request: which plugins, what they said.
//!
//! Plugin calls are synchronous and bounded by each plugin's deadline (tens
//! of µs for a typical guardrail), so they run inline on the tokio worker:
//! a `spawn_blocking` hop per call would cost more than the call itself
//! (see `plugin::blocking` for the guests that block).

use std::sync::Arc;

use crate::plugin::{self, ChainResult, OutputContext, Plugin, PluginSet, RequestInfo};

use super::Error;

/// The configured guardrails, resolved against the loaded plugin set and put
/// in chain order (manifest `order`, then name). A configured name that is
/// not loaded fails the request closed: skipping a check silently would let
/// unchecked text through.
pub fn resolve(set: &PluginSet, names: &[String]) -> Result<Vec<Arc<Plugin>>, Error> {
    if let Some(missing) = names
        .iter()
        .find(|n| set.guardrails().iter().all(|p| p.name() != n.as_str()))
    {
        return Err(Error::PluginUnavailable(missing.clone()));
    }
    Ok(set
        .guardrails()
        .iter()
        .filter(|p| names.iter().any(|n| n == p.name()))
        .cloned()
        .collect())
}

/// What each guardrail did to this request, for `x-sluice-guardrails` and
/// logs: `pii-redact:transform,secrets:pass`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardReport {
    entries: Vec<(String, Outcome)>,
}

/// Ordered by severity: a plugin's entry keeps the worst outcome over the
/// input and output phases (and every stream window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Pass,
    Transform,
    /// The plugin failed and its `open` failure mode let the text pass.
    FailOpen,
    Reject,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Transform => "transform",
            Outcome::FailOpen => "error",
            Outcome::Reject => "reject",
        }
    }
}

impl GuardReport {
    pub fn record(&mut self, chain: &ChainResult) {
        for name in &chain.ran {
            let outcome = if chain.rejected.as_ref().is_some_and(|(p, _)| p == name) {
                Outcome::Reject
            } else if chain.failures.iter().any(|(p, _)| p == name) {
                Outcome::FailOpen
            } else if chain.transformed.contains(name) {
                Outcome::Transform
            } else {
                Outcome::Pass
            };
            match self.entries.iter_mut().find(|(n, _)| n == name) {
                Some((_, o)) => *o = (*o).max(outcome),
                None => self.entries.push((name.clone(), outcome)),
            }
        }
    }

    pub fn header_value(&self) -> String {
        self.entries
            .iter()
            .map(|(n, o)| format!("{n}:{}", o.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Turn a chain's rejection into the pipeline error.
pub fn rejection(chain: &ChainResult) -> Option<Error> {
    chain
        .rejected
        .as_ref()
        .map(|(plugin, r)| Error::GuardrailRejected {
            plugin: plugin.clone(),
            reason: r.reason.clone(),
            code: r.code.clone(),
        })
}

/// Run the input chain; a transform rewrites the last user message.
pub fn check_input(
    plugins: &[Arc<Plugin>],
    info: &RequestInfo,
    report: &mut GuardReport,
) -> Result<Option<String>, Error> {
    if plugins.is_empty() {
        return Ok(None);
    }
    let chain = plugin::run_input_chain(plugins, info);
    log_failures(&info.id, &chain);
    report.record(&chain);
    if let Some(err) = rejection(&chain) {
        return Err(err);
    }
    Ok((!chain.transformed.is_empty()).then_some(chain.text))
}

/// Run the output chain on `text` (a whole answer or one stream window).
pub fn check_output(
    plugins: &[Arc<Plugin>],
    info: &RequestInfo,
    text: &str,
    ctx: &OutputContext,
) -> ChainResult {
    let chain = plugin::run_output_chain(plugins, info, text, ctx);
    log_failures(&info.id, &chain);
    chain
}

fn log_failures(request_id: &str, chain: &ChainResult) {
    for (plugin, failure) in &chain.failures {
        tracing::warn!(request_id, plugin, %failure, "guardrail failed; its failure mode decided");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(ran: &[&str], transformed: &[&str]) -> ChainResult {
        ChainResult {
            text: String::new(),
            rejected: None,
            ran: ran.iter().map(|s| s.to_string()).collect(),
            transformed: transformed.iter().map(|s| s.to_string()).collect(),
            failures: Vec::new(),
        }
    }

    #[test]
    fn report_keeps_the_worst_outcome_per_plugin() {
        let mut r = GuardReport::default();
        r.record(&chain(&["secrets", "pii-redact"], &[]));
        r.record(&chain(&["secrets", "pii-redact"], &["pii-redact"]));
        r.record(&chain(&["secrets", "pii-redact"], &[]));
        assert_eq!(r.header_value(), "secrets:pass,pii-redact:transform");
    }
}
