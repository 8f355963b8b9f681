//! A guardrail as a plugin author built it before `0.2.0`: wit-bindgen
//! straight against the frozen `wit/frozen/0.1.0` (no SDK), so the host's
//! `0.1` compatibility is tested with a real `0.1` component.
//!
//! - `check-input`: rejects (code `legacy`) when the last user message
//!   contains `legacy-echo`, with a reason describing the `request-info`
//!   record it received (`model=… stream=… messages=N last=…`), so a test
//!   can see the flattened record arrive; passes otherwise.
//! - `check-output`: rewrites every `secret` to `[legacy]`; rejects (code
//!   `legacy`) an output containing `REJECT-LEGACY`; logs the window index
//!   and finality through the `0.1` `host.log`.

wit_bindgen::generate!({
    path: "../../../wit/frozen/0.1.0",
    world: "guardrail-plugin",
});

use exports::sluice::plugin::guardrail::Guest;
use sluice::plugin::host;
use sluice::plugin::types::{LogLevel, OutputContext, Rejection, RequestInfo, Verdict};

#[allow(dead_code)] // only exported on wasm32
struct Legacy;

fn reject(reason: String) -> Verdict {
    Verdict::Reject(Rejection {
        reason,
        code: "legacy".into(),
    })
}

impl Guest for Legacy {
    fn check_input(req: RequestInfo) -> Verdict {
        let last = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.as_str())
            .unwrap_or("");
        if !last.contains("legacy-echo") {
            return Verdict::Pass;
        }
        reject(format!(
            "model={} stream={} messages={} last={last}",
            req.model,
            req.stream,
            req.messages.len()
        ))
    }

    fn check_output(_req: RequestInfo, output: String, ctx: OutputContext) -> Verdict {
        host::log(
            LogLevel::Debug,
            &format!("legacy window {} final={}", ctx.window_index, ctx.is_final),
        );
        if output.contains("REJECT-LEGACY") {
            return reject("the legacy guardrail refused it".into());
        }
        if output.contains("secret") {
            return Verdict::Transform(output.replace("secret", "[legacy]"));
        }
        Verdict::Pass
    }
}

// Export names like `sluice:plugin/guardrail@0.1.0#check-output` are only
// valid on wasm; a native `cargo test --workspace` build skips them.
#[cfg(target_arch = "wasm32")]
export!(Legacy);
