//! Guardrail chains for one request: which plugins run and in what order,
//! what a transform or a failure means, and what each plugin did.
//!
//! Chain semantics: each guardrail sees the previous one's transform; the
//! chain stops at the first reject. A `flag` lets the text through unchanged
//! and is recorded; what it does to the answer is [`super::review`]'s. A failed call answers
//! with the plugin's failure mode ([`super::failure`]): `closed` rejects
//! with code `plugin_failure`, `open` passes. On the input side a transform
//! rewrites the last user message ([`last_user`]), for the guardrails after
//! it and for the upstream. A guardrail is only in the chains of the phases
//! it implements (its `phases`, asked at load).
//!
//! Plugin calls are awaited one after the other in the request's task; each
//! ends within its plugin's deadline and yields to the runtime while it
//! runs long (see [`crate::plugin`]).

use std::sync::Arc;

use serde_json::Value;
use tracing::Instrument as _;

use crate::openai::ChatRequest;
use crate::plugin::log::escaped;
use crate::plugin::{
    self, Contract, Flag, OutputContext, OutputPart, Phases, Plugin, PluginSet, Rejection,
    RequestInfo, Verdict, VerdictKind,
};
use crate::telemetry;

use super::{Error, failure};

/// The configured guardrails of the chain for `phase` (input or output),
/// resolved against the loaded plugin set and put in chain order (manifest
/// `order`, then name). A configured name that is not loaded fails the
/// request closed: skipping a check silently would let unchecked text
/// through. A loaded guardrail that does not implement `phase` is left out:
/// it has nothing to say there.
pub fn resolve(
    set: &PluginSet,
    names: &[String],
    phase: Phases,
) -> Result<Vec<Arc<Plugin>>, Error> {
    if let Some(missing) = names
        .iter()
        .find(|n| set.guardrails().iter().all(|p| p.name() != n.as_str()))
    {
        return Err(Error::PluginUnavailable(missing.clone()));
    }
    Ok(set
        .guardrails()
        .iter()
        .filter(|p| names.iter().any(|n| n == p.name()) && p.phases().contains(phase))
        .cloned()
        .collect())
}

/// The message an input transform rewrites: the last one with role `user`.
pub fn last_user<T>(messages: &[T], role: impl Fn(&T) -> &str) -> Option<usize> {
    messages.iter().rposition(|m| role(m) == "user")
}

/// What a chain decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChainResult {
    /// The text after all transforms (input chain: the last user message).
    pub text: String,
    /// The first reject: plugin name and its rejection.
    pub rejected: Option<(String, Rejection)>,
    /// Plugins that ran, in order.
    pub ran: Vec<String>,
    /// Plugins whose verdict was a transform.
    pub transformed: Vec<String>,
    /// Plugins whose call failed and whose `open` failure mode passed.
    pub failed_open: Vec<String>,
    /// Plugins that flagged the text for review, with their flag (the text
    /// passed on unchanged).
    pub flagged: Vec<(String, Flag)>,
}

impl ChainResult {
    /// Apply one plugin's answer; true when the chain must stop.
    fn step(
        &mut self,
        p: &Plugin,
        answer: Result<Verdict, plugin::PluginFailure>,
        id: &str,
    ) -> bool {
        self.ran.push(p.name().to_owned());
        let (verdict, failed_open) = answered(p, answer, id);
        if failed_open {
            self.failed_open.push(p.name().to_owned());
        }
        match verdict {
            Verdict::Pass => false,
            Verdict::Transform(t) => {
                self.text = t;
                self.transformed.push(p.name().to_owned());
                false
            }
            Verdict::Reject(r) => {
                self.rejected = Some((p.name().to_owned(), r));
                true
            }
            Verdict::Flag(f) => {
                tracing::warn!(
                    request_id = id,
                    plugin = p.name(),
                    code = %escaped(&f.code),
                    score = f.score,
                    reason = %escaped(&f.reason),
                    "guardrail flagged the text for review"
                );
                self.flagged.push((p.name().to_owned(), f));
                false
            }
        }
    }

    /// The chain's rejection as the pipeline error.
    pub fn rejection(&self) -> Option<Error> {
        self.rejected
            .as_ref()
            .map(|(plugin, r)| Error::GuardrailRejected {
                plugin: plugin.clone(),
                reason: r.reason.clone(),
                code: r.code.clone(),
            })
    }
}

/// The verdict a guardrail's answer stands for in a chain: its own, or on a
/// failure its failure mode's (`closed`: reject with code
/// `plugin_failure`; `open`: pass, and `true` for "failed open").
/// `sluice plugin test` judges cases by this too.
pub fn answered(
    p: &Plugin,
    answer: Result<Verdict, plugin::PluginFailure>,
    request_id: &str,
) -> (Verdict, bool) {
    match answer {
        Ok(v) => {
            p.count_verdict(match &v {
                Verdict::Pass => VerdictKind::Pass,
                Verdict::Transform(_) => VerdictKind::Transform,
                Verdict::Reject(_) => VerdictKind::Reject,
                Verdict::Flag(_) => VerdictKind::Flag,
            });
            (v, false)
        }
        Err(f) => match failure::answer(p, f, request_id, Verdict::Pass) {
            Ok(pass) => (pass, true),
            Err(f) => (
                Verdict::Reject(Rejection {
                    reason: format!("guardrail `{}` failed: {f}", p.name()),
                    code: "plugin_failure".into(),
                }),
                false,
            ),
        },
    }
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
    /// The plugin flagged the text for review; it passed unchanged.
    Flag,
    /// The plugin failed and its `open` failure mode let the text pass.
    FailOpen,
    Reject,
}

impl Outcome {
    /// What `name` did in `chain` (it ran there).
    fn of(chain: &ChainResult, name: &str) -> Self {
        if chain.rejected.as_ref().is_some_and(|(p, _)| p == name) {
            Outcome::Reject
        } else if chain.failed_open.iter().any(|p| p == name) {
            Outcome::FailOpen
        } else if chain.flagged.iter().any(|(p, _)| p == name) {
            Outcome::Flag
        } else if chain.transformed.iter().any(|p| p == name) {
            Outcome::Transform
        } else {
            Outcome::Pass
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Transform => "transform",
            Outcome::Flag => "flag",
            Outcome::FailOpen => "error",
            Outcome::Reject => "reject",
        }
    }
}

impl GuardReport {
    pub fn record(&mut self, chain: &ChainResult) {
        for name in &chain.ran {
            let outcome = Outcome::of(chain, name);
            match self.entries.iter_mut().find(|(n, _)| n == name) {
                Some((_, o)) => *o = (*o).max(outcome),
                None => self.entries.push((name.clone(), outcome)),
            }
        }
    }

    /// Each plugin and its worst outcome (`pass`, `transform`, `error`,
    /// `reject`), in the order they first ran.
    pub fn outcomes(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.entries.iter().map(|(n, o)| (n.as_str(), o.as_str()))
    }

    pub fn header_value(&self) -> String {
        self.entries
            .iter()
            .map(|(n, o)| format!("{n}:{}", o.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Run `check-input` through `plugins`. A transform replaces the last user
/// message in `info` for the plugins after it (with no user message the
/// request is left as is). Returns that message's new text when any plugin
/// changed it.
pub async fn check_input(
    plugins: &[Arc<Plugin>],
    info: &mut Arc<RequestInfo>,
    report: &mut GuardReport,
) -> Result<Option<String>, Error> {
    check_input_flagged(plugins, info, report, &mut Vec::new()).await
}

/// [`check_input`], adding the chain's flags (plugin, flag) to `flagged`.
pub async fn check_input_flagged(
    plugins: &[Arc<Plugin>],
    info: &mut Arc<RequestInfo>,
    report: &mut GuardReport,
    flagged: &mut Vec<(String, Flag)>,
) -> Result<Option<String>, Error> {
    if plugins.is_empty() {
        return Ok(None);
    }
    let idx = info.last_user();
    let mut chain = ChainResult {
        text: info.last_user_text().unwrap_or_default().to_owned(),
        ..Default::default()
    };
    let id = info.id.clone();
    for p in plugins {
        let span = telemetry::spans::guardrail(p.name(), "input");
        let answer = p.check_input(info).instrument(span.clone()).await;
        let transformed = chain.transformed.len();
        let stop = chain.step(p, answer, &id);
        record_verdict(&span, &chain, p.name());
        if stop {
            break;
        }
        if let Some(i) = idx
            && chain.transformed.len() > transformed
        {
            // Copied only if a call still holds the request (none does once
            // it returned).
            Arc::make_mut(info).messages[i]
                .content
                .clone_from(&chain.text);
        }
    }
    report.record(&chain);
    if let Some(err) = chain.rejection() {
        return Err(err);
    }
    flagged.append(&mut chain.flagged);
    Ok((!chain.transformed.is_empty()).then_some(chain.text))
}

/// [`check_output`] in an `output_guardrails` span, the child of `parent`
/// (the request span), numbered `window`, with the chain's worst verdict.
pub async fn check_output_traced(
    parent: &tracing::Span,
    window: u64,
    plugins: &[Arc<Plugin>],
    info: &Arc<RequestInfo>,
    text: &str,
    ctx: &OutputContext,
) -> ChainResult {
    let span = telemetry::spans::output_window(parent, ctx.choice, window);
    if !span.is_disabled() {
        span.record("sluice.part", super::review::part_name(&ctx.part));
    }
    let chain = check_output(plugins, info, text, ctx)
        .instrument(span.clone())
        .await;
    if !span.is_disabled() {
        let worst = chain.ran.iter().map(|n| Outcome::of(&chain, n)).max();
        span.record("sluice.verdict", worst.unwrap_or(Outcome::Pass).as_str());
    }
    chain
}

/// The guardrail span's `sluice.verdict`, as `x-sluice-guardrails` names it.
fn record_verdict(span: &tracing::Span, chain: &ChainResult, plugin: &str) {
    if !span.is_disabled() {
        span.record("sluice.verdict", Outcome::of(chain, plugin).as_str());
    }
}

/// Put an input transform's text into the request: the last user message
/// (multimodal parts are replaced by the checked text, which is what the
/// guardrails saw, flattened).
pub fn apply_input(req: &mut ChatRequest, text: String) {
    if let Some(i) = last_user(&req.messages, |m| &m.role) {
        req.messages[i].content = Value::String(text);
    }
}

/// Run `check-output` on `text` (a whole part of an answer or one stream
/// window); each plugin sees the previous one's transform.
pub async fn check_output(
    plugins: &[Arc<Plugin>],
    info: &Arc<RequestInfo>,
    text: &str,
    ctx: &OutputContext,
) -> ChainResult {
    let mut res = ChainResult {
        text: text.to_owned(),
        ..Default::default()
    };
    for p in plugins {
        // A `0.1` guest predates output parts: it is asked about the
        // answer's `content` only (what `0.1` promised it), never about a
        // refusal or a tool call it could not tell apart from content.
        if ctx.part != OutputPart::Content && p.contract() == Contract::V0_1 {
            continue;
        }
        // Tool-call arguments are JSON the client's code parses: a
        // transform that breaks them is refused as that plugin's reject.
        let json_args = matches!(ctx.part, OutputPart::ToolArguments(_)) && is_json(&res.text);
        let transformed = res.transformed.len();
        let span = telemetry::spans::guardrail(p.name(), "output");
        let answer = p
            .check_output(info, &res.text, ctx)
            .instrument(span.clone())
            .await;
        let stop = res.step(p, answer, &info.id);
        if stop {
            record_verdict(&span, &res, p.name());
            break;
        }
        if json_args && res.transformed.len() > transformed && !is_json(&res.text) {
            res.rejected = Some((
                p.name().to_owned(),
                Rejection {
                    reason: "its transform of tool-call arguments is not valid JSON".into(),
                    code: "invalid_tool_arguments".into(),
                },
            ));
            record_verdict(&span, &res, p.name());
            break;
        }
        record_verdict(&span, &res, p.name());
    }
    res
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
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
            failed_open: Vec::new(),
            flagged: Vec::new(),
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

    #[test]
    fn a_flag_ranks_between_transform_and_fail_open() {
        let flag = Flag {
            reason: "unsure".into(),
            code: "possible_injection".into(),
            score: 0.6,
        };
        let mut flagged = chain(&["a", "b", "c"], &["a"]);
        flagged.flagged.push(("b".into(), flag.clone()));
        flagged.flagged.push(("a".into(), flag));
        flagged.failed_open.push("c".into());
        let mut r = GuardReport::default();
        r.record(&flagged);
        assert_eq!(r.header_value(), "a:flag,b:flag,c:error");
        r.record(&chain(&["b"], &["b"]));
        assert_eq!(r.header_value(), "a:flag,b:flag,c:error");
        assert!(Outcome::Transform < Outcome::Flag && Outcome::Flag < Outcome::FailOpen);
    }

    #[test]
    fn the_last_user_message_is_the_one_rewritten() {
        let roles = ["system", "user", "assistant", "user", "tool"];
        assert_eq!(last_user(&roles, |r| r), Some(3));
        assert_eq!(last_user(&["system"], |r| r), None);
    }
}
