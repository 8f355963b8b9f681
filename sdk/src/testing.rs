//! Running plugin code natively in unit tests (`cargo test -p <plugin>`).
//!
//! The `host` functions exist only inside the gateway, so off wasm32
//! [`crate::config`] reads a per-thread map set here and [`crate::log`]
//! records lines here. On wasm32 the host is always used and this map is
//! never consulted. Requests are built with [`Request::chat`] or from a
//! [`crate::RequestData`]. [`GuardrailTest`], [`code`] and [`models`] are
//! the small call-and-read helpers every plugin's tests would otherwise
//! write.

use crate::{Guardrail, LogLevel, OutputContext, Request, Route, Verdict};
use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    static CONFIG: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
    static LOGS: RefCell<Vec<(LogLevel, String)>> = const { RefCell::new(Vec::new()) };
}

/// Replace this thread's config with `pairs` (values as the host renders
/// them: strings verbatim, arrays and tables as JSON).
pub fn set_config(pairs: &[(&str, &str)]) {
    CONFIG.with(|c| {
        *c.borrow_mut() = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    });
}

/// Forget this thread's config (every key absent).
pub fn clear_config() {
    CONFIG.with(|c| c.borrow_mut().clear());
}

/// Take the lines logged on this thread so far.
pub fn take_logs() -> Vec<(LogLevel, String)> {
    LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn get(key: &str) -> Option<String> {
    CONFIG.with(|c| c.borrow().get(key).cloned())
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn keys() -> Vec<String> {
    // A BTreeMap: already sorted, as the host's list is.
    CONFIG.with(|c| c.borrow().keys().cloned().collect())
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn push_log(level: LogLevel, message: &str) {
    LOGS.with(|l| l.borrow_mut().push((level, message.to_string())));
}

/// Calls a [`Guardrail`] the way its unit tests do: on bare text, with a
/// default request. Implemented for every guardrail.
///
/// ```
/// use sluice_sdk::testing::{GuardrailTest, code};
/// use sluice_sdk::{Guardrail, OutputContext, Request, Verdict};
///
/// struct NoDigits;
/// impl Guardrail for NoDigits {
///     fn check_input(_: &Request) -> Verdict {
///         Verdict::Pass
///     }
///     fn check_output(_: &Request, text: String, _: OutputContext) -> Verdict {
///         if text.contains(|c: char| c.is_ascii_digit()) {
///             Verdict::reject("digits", "no digits please")
///         } else {
///             Verdict::Pass
///         }
///     }
/// }
///
/// assert_eq!(NoDigits::output("no numbers here"), Verdict::Pass);
/// assert_eq!(code(&NoDigits::output("call 555")), "digits");
/// assert_eq!(NoDigits::input(&[("user", "42")]), Verdict::Pass);
/// ```
pub trait GuardrailTest: Guardrail {
    /// `check_output` on a whole, non-streamed answer.
    fn output(text: &str) -> Verdict {
        Self::output_with(text, OutputContext::whole())
    }

    /// `check_output` in context `ctx` (a stream window, say).
    fn output_with(text: &str, ctx: OutputContext) -> Verdict {
        Self::check_output(&Request::default(), text.to_string(), ctx)
    }

    /// `check_input` on a request for model `test-model` carrying
    /// `(role, content)` messages.
    fn input(messages: &[(&str, &str)]) -> Verdict {
        Self::check_input(&Request::chat("test-model", messages))
    }
}

impl<G: Guardrail> GuardrailTest for G {}

/// A rejection's code; anything else as its `Debug` text, so a failed
/// `assert_eq!(code(&v), "too_long")` shows what came instead.
pub fn code(v: &Verdict) -> String {
    match v {
        Verdict::Reject(r) => r.code.clone(),
        other => format!("{other:?}"),
    }
}

/// The models of `routes`, in order: what a router test compares.
pub fn models(routes: &[Route]) -> Vec<&str> {
    routes.iter().map(|r| r.model.as_str()).collect()
}
