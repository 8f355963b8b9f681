//! A `0.2` guardrail that shows what it sees, for the contract's tests.
//!
//! Config (checked at load: other keys and values are refused):
//! - `phases`: `input`, `output` or `both` (default): what it declares.
//! - `read`: `last-user-text` (default) or `messages`: how much of the
//!   request it pulls from the host.
//!
//! - `check-input`: flags (code `probe_input`, score 0.25) a last user
//!   message containing `FLAG`; passes otherwise.
//! - `check-output`: an output containing `REPORT` is replaced by a report
//!   of the request as read (`last=…`, or `messages=N chars=C tool-calls=T
//!   ids=… names=… last=…`), the context (`choice=… part=…`) and the
//!   registry prompt when there is one (`prompt=ID@VERSION`); one
//!   containing `FLAG` is flagged (code `probe_output`, score 0.75) and
//!   passes unchanged; one containing `CALLS` is replaced by
//!   `calls=N`, the `check-output` calls this instance has answered, this
//!   one included (1 on a fresh instance; more only when the manifest's
//!   `limits.calls-per-instance` lets instances serve several calls);
//!   anything else passes.
use std::sync::atomic::{AtomicU32, Ordering};

use sluice_sdk::{
    ConfigError, Guardrail, OutputContext, OutputPart, Phases, Request, Verdict, check_keys, config,
};

struct Probe;

/// `check-output` calls this instance has answered: state a fresh instance
/// per call never lets one call see.
static CALLS: AtomicU32 = AtomicU32::new(0);

fn phases() -> Result<Phases, ConfigError> {
    Ok(match config("phases").as_deref() {
        None | Some("both") => Phases::INPUT | Phases::OUTPUT,
        Some("input") => Phases::INPUT,
        Some("output") => Phases::OUTPUT,
        Some(other) => {
            return Err(ConfigError::new(
                "phases",
                format!("expected input, output or both, got {other:?}"),
            ));
        }
    })
}

fn reads_messages() -> Result<bool, ConfigError> {
    match config("read").as_deref() {
        None | Some("last-user-text") => Ok(false),
        Some("messages") => Ok(true),
        Some(other) => Err(ConfigError::new(
            "read",
            format!("expected last-user-text or messages, got {other:?}"),
        )),
    }
}

fn report(req: &Request) -> String {
    if !reads_messages().unwrap_or_else(|e| e.trap()) {
        return format!("last={}", req.last_user_text().unwrap_or_default());
    }
    let messages = req.messages();
    let chars: usize = messages.iter().map(|m| m.content.chars().count()).sum();
    let calls: Vec<_> = messages.iter().flat_map(|m| &m.tool_calls).collect();
    let ids: Vec<&str> = messages
        .iter()
        .filter_map(|m| m.tool_call_id.as_deref())
        .collect();
    let names: Vec<&str> = messages.iter().filter_map(|m| m.name.as_deref()).collect();
    let args: Vec<&str> = calls.iter().map(|c| c.arguments.as_str()).collect();
    let last = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map_or("", |m| m.content.as_str());
    format!(
        "messages={} chars={chars} tool-calls={} args={} ids={} names={} last={last}",
        messages.len(),
        calls.len(),
        args.join("|"),
        ids.join("|"),
        names.join("|"),
    )
}

impl Guardrail for Probe {
    fn phases() -> Phases {
        phases().unwrap_or(Phases::INPUT | Phases::OUTPUT)
    }

    fn validate_config() -> Result<(), String> {
        let check = || -> Result<(), ConfigError> {
            check_keys(&["phases", "read"])?;
            phases()?;
            reads_messages()?;
            Ok(())
        };
        check().map_err(|e| e.to_string())
    }

    fn check_input(req: &Request) -> Verdict {
        match req.last_user_text() {
            Some(t) if t.contains("FLAG") => {
                Verdict::flag("probe_input", "the probe flags FLAG in input", 0.25)
            }
            _ => Verdict::Pass,
        }
    }

    fn check_output(req: &Request, output: String, ctx: OutputContext) -> Verdict {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        if output.contains("CALLS") {
            return Verdict::transform(format!("calls={calls}"));
        }
        if output.contains("REPORT") {
            let part = match ctx.part {
                OutputPart::Content => "content".to_string(),
                other => format!("{other:?}"),
            };
            // The registry prompt, when the request was rendered from one.
            let prompt = req
                .prompt()
                .map(|p| format!(" prompt={}@{}", p.id, p.version))
                .unwrap_or_default();
            return Verdict::transform(format!(
                "{} choice={} part={part}{prompt}",
                report(req),
                ctx.choice
            ));
        }
        if output.contains("FLAG") {
            return Verdict::flag("probe_output", "the probe flags FLAG in output", 0.75);
        }
        Verdict::Pass
    }
}

sluice_sdk::export_guardrail!(Probe);
