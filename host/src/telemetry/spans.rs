//! The stage spans, one constructor each, so names and attributes live in
//! one place (the README's table mirrors this file). Fields left `Empty`
//! are recorded when the stage knows them. A disabled span (no exporter)
//! is `Span::none()`: recording into it does nothing.

use tracing::Span;
use tracing::field::Empty;

use super::TARGET;
use crate::pipeline::GuardReport;

/// The server span of one `/v1/*` request (kind server); the client's
/// `traceparent` becomes its parent ([`super::set_parent`]).
pub fn request(method: &str, path: &str, request_id: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "request",
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        url.path = path,
        http.response.status_code = Empty,
        sluice.request_id = request_id,
        gen_ai.request.model = Empty,
        sluice.provider = Empty,
        sluice.upstream_model = Empty,
        sluice.attempts = Empty,
        sluice.guardrails = Empty,
        sluice.prompt.id = Empty,
        sluice.prompt.version = Empty,
    )
}

/// Virtual-key lookup (state store).
pub fn auth() -> Span {
    tracing::info_span!(target: TARGET, "auth", sluice.outcome = Empty)
}

/// Rate limits (`sluice.limit = "rate_limit"`) or the budget
/// reservation (`"budget"`). A denial shows as the request's 429.
pub fn limits(kind: &'static str) -> Span {
    tracing::info_span!(target: TARGET, "limits", sluice.limit = kind)
}

/// One guardrail call: `phase` is `input` or `output`; `verdict` one of
/// pass, transform, flag, error (failed open), reject.
pub fn guardrail(plugin: &str, phase: &'static str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "guardrail",
        sluice.plugin = plugin,
        sluice.phase = phase,
        sluice.verdict = Empty,
    )
}

/// One output check: a whole answer's part, or one stream window
/// (`window`, counted from 1 per request). Its guardrail spans are its
/// children. A stream's windows run after the handler returned, so the
/// request span is passed in as `parent`.
pub fn output_window(parent: &Span, choice: u32, window: u64) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: parent,
        "output_guardrails",
        sluice.choice = choice,
        sluice.part = Empty,
        sluice.window = window,
        sluice.verdict = Empty,
    )
}

/// The cost policy plugin; `decision` is allow, deny or downgrade.
pub fn cost_policy(plugin: &str) -> Span {
    tracing::info_span!(target: TARGET, "cost_policy", sluice.plugin = plugin, sluice.decision = Empty)
}

/// The router plugin; `routes` is how many routes it ordered.
pub fn router(plugin: &str) -> Span {
    tracing::info_span!(target: TARGET, "router", sluice.plugin = plugin, sluice.routes = Empty)
}

/// The response cache lookup; `hit` is true or false.
pub fn cache() -> Span {
    tracing::info_span!(target: TARGET, "cache", sluice.cache.hit = Empty)
}

/// One HTTP attempt on an upstream (kind client). `attempt` counts every
/// attempt of the request, `try` those on this route; `retry`: an attempt
/// after a failure on the same route; `fallback`: this route is not the
/// first one tried. `status` is the HTTP status, or the failure
/// (`timeout`, `connect`, …) when there is none.
pub fn upstream(provider: &str, model: &str, attempt: u32, try_: u32, fallback: bool) -> Span {
    tracing::info_span!(
        target: TARGET,
        "upstream",
        otel.kind = "client",
        otel.status_code = Empty,
        sluice.provider = provider,
        gen_ai.request.model = model,
        sluice.attempt = attempt,
        sluice.try = try_,
        sluice.retry = try_ > 1,
        sluice.fallback = fallback,
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// What the request span learns at the end (`chat::finish`), recorded on
/// the current span: the request span, which the handler runs in.
pub fn record_request(
    model: &str,
    provider: Option<&str>,
    upstream_model: Option<&str>,
    attempts: u32,
    guardrails: &GuardReport,
    prompt: Option<(&str, u32)>,
) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    span.record("gen_ai.request.model", model);
    if let Some(p) = provider {
        span.record("sluice.provider", p);
    }
    if let Some(m) = upstream_model {
        span.record("sluice.upstream_model", m);
    }
    span.record("sluice.attempts", attempts);
    span.record("sluice.guardrails", guardrails.header_value());
    if let Some((id, version)) = prompt {
        span.record("sluice.prompt.id", id);
        span.record("sluice.prompt.version", version);
    }
}
