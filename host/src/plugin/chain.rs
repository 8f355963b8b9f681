//! Guardrail chains: each guardrail sees the previous one's transform, and
//! the chain stops at the first reject (a failed closed-mode guardrail
//! rejects with code `plugin_failure`; a failed open-mode one passes).

use std::sync::Arc;

use super::bindings::types::{OutputContext, Rejection, RequestInfo, Verdict};
use super::blocking;
use super::error::PluginFailure;
use super::instance::Plugin;

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
    /// Plugins whose call failed (their failure mode answered).
    pub failures: Vec<(String, PluginFailure)>,
}

/// Run `check-input` through `plugins`. A transform replaces the text of the
/// last `user` message for the plugins after it (with no user message the
/// request is left as is); `text` is that message's final text.
pub fn run_input_chain(plugins: &[Arc<Plugin>], req: &RequestInfo) -> ChainResult {
    blocking_chain(plugins, || input_chain(plugins, req))
}

fn input_chain(plugins: &[Arc<Plugin>], req: &RequestInfo) -> ChainResult {
    let mut req = req.clone();
    let idx = req.messages.iter().rposition(|m| m.role == "user");
    let mut res = ChainResult {
        text: idx
            .map(|i| req.messages[i].content.clone())
            .unwrap_or_default(),
        ..Default::default()
    };
    for p in plugins {
        let checked = p.check_input(&req);
        if step(&mut res, p, checked.verdict, checked.failure) {
            break;
        }
        if let Some(i) = idx {
            req.messages[i].content.clone_from(&res.text);
        }
    }
    res
}

/// Run `check-output` on `text` through `plugins`; each sees the previous
/// one's transform.
pub fn run_output_chain(
    plugins: &[Arc<Plugin>],
    req: &RequestInfo,
    text: &str,
    ctx: &OutputContext,
) -> ChainResult {
    blocking_chain(plugins, || output_chain(plugins, req, text, ctx))
}

fn output_chain(
    plugins: &[Arc<Plugin>],
    req: &RequestInfo,
    text: &str,
    ctx: &OutputContext,
) -> ChainResult {
    let mut res = ChainResult {
        text: text.to_owned(),
        ..Default::default()
    };
    for p in plugins {
        let checked = p.check_output(req, &res.text, ctx);
        if step(&mut res, p, checked.verdict, checked.failure) {
            break;
        }
    }
    res
}

/// Inline when every plugin runs inline (each call still falls back on its
/// own); otherwise one `block_in_place` for the whole chain instead of one
/// per plugin.
fn blocking_chain(plugins: &[Arc<Plugin>], f: impl FnOnce() -> ChainResult + Send) -> ChainResult {
    if plugins.iter().all(|p| p.runs_inline()) {
        return f();
    }
    blocking::run(f).unwrap_or_else(|panic| ChainResult {
        rejected: Some((
            "(chain)".into(),
            Rejection {
                reason: format!("guardrail chain failed: {panic}"),
                code: "plugin_failure".into(),
            },
        )),
        ..Default::default()
    })
}

/// Apply one verdict; true when the chain must stop.
fn step(
    res: &mut ChainResult,
    p: &Plugin,
    verdict: Verdict,
    failure: Option<PluginFailure>,
) -> bool {
    res.ran.push(p.name().to_owned());
    if let Some(f) = failure {
        res.failures.push((p.name().to_owned(), f));
    }
    match verdict {
        Verdict::Pass => false,
        Verdict::Transform(t) => {
            res.text = t;
            res.transformed.push(p.name().to_owned());
            false
        }
        Verdict::Reject(r) => {
            res.rejected = Some((p.name().to_owned(), r));
            true
        }
    }
}
