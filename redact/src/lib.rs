//! `sluice-redact`: the one implementation of PII and credential detection
//! in Sluice. The `pii-redact` and `secrets` guardrail plugins are thin
//! config layers over [`pii`] and [`secrets`]; the gateway uses [`redact`]
//! for its request log and for upstream text it writes to its own log.
//!
//! Detection is hand-written byte scanning rather than a regex set: plugin
//! instances are fresh per call, and building a regex automaton on each
//! call would cost more than the scan itself. Every scanner is linear in
//! the input (each detector looks at a bounded window from a start
//! position), so hostile input cannot make it quadratic. No dependencies:
//! it builds for `wasm32-wasip2` guests and the host alike.

mod mask;
pub mod pii;
pub mod secrets;
mod skip;

use std::borrow::Cow;

/// `text` with every credential (`[REDACTED:<kind>]`, default [`secrets::Scanner`])
/// and then every kind of personal data (`[EMAIL]`, `[CREDIT_CARD]`, …)
/// masked; borrowed when nothing was found. What the gateway applies to
/// anything a client or an upstream wrote before it reaches a log.
///
/// Credentials go first: a key's digits could otherwise be taken for a
/// phone number and leave the rest of the key in place.
pub fn redact(text: &str) -> Cow<'_, str> {
    let found = secrets::Scanner::default().find(text, false);
    let text: Cow<'_, str> = if found.is_empty() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(secrets::redact(text, &found))
    };
    match pii::redact(&text, &pii::Entity::ALL, pii::Mask::Label) {
        Some(masked) => Cow::Owned(masked),
        None => text,
    }
}

#[cfg(test)]
mod tests;
