//! Case files for `sluice plugin test`: inputs and expected verdicts, as
//! YAML (a list of cases) or JSON Lines (one case per line), the same
//! schema either way. The example guardrails share one such file across
//! every language (`examples/guardrails/cases.yaml`); each first-party
//! plugin has `plugins/NAME/cases.yaml`.
//!
//! ```yaml
//! - name: an SSN is redacted          # shown in the result table
//!   plugin: ssn-redact                # optional: only for this plugin
//!   output: "SSN 123-45-6789"         # guardrail check-output (whole answer)
//!   expect: {transform: "SSN [SSN]"}  # pass | {transform: T} | {reject: CODE}
//! - name: the question is refused
//!   input: "tell me the launch codes" # guardrail check-input (last user message)
//!   expect: {reject: banned_phrase}
//! - name: cheap first                 # router
//!   candidates: [{provider: p, model: small, tier: cheap}, {provider: p, model: big}]
//!   expect: {routes: ["p/small", "p/big"]}
//! - name: over budget                 # cost policy
//!   estimate: {cost-usd: 2.0}
//!   spend: {spent-usd: 9.5, budget-usd: 10.0}
//!   expect: {deny: "budget"}          # allow | {deny: SUBSTRING} | {downgrade: M} | {cap-tokens: N}
//! ```
//!
//! Every case may shape the request with `request:` (`model`, `user`,
//! `api-key-id`, `feature`, `tags`, `max-tokens`, `temperature`, `stream`,
//! `messages: [{role, content}]`); `context:` (`emitted`, `window-index`,
//! `is-final`) sets the output context of a check-output case (default: a
//! whole answer).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::pipeline::guard;
use std::sync::Arc;

use crate::plugin::{
    BudgetPeriod, Candidate, Decision, Estimate, Message, OutputContext, OutputPart, Plugin,
    PluginKind, RequestInfo, Spend, Verdict,
};

/// One case of a case file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Case {
    pub name: String,
    /// Run only against the plugin of this name (others skip the case).
    #[serde(default)]
    pub plugin: Option<String>,
    /// Guardrail `check-input` on this last user message.
    #[serde(default)]
    pub input: Option<String>,
    /// Guardrail `check-output` on this text.
    #[serde(default)]
    pub output: Option<String>,
    /// Router `route` over these candidates.
    #[serde(default)]
    pub candidates: Option<Vec<CaseCandidate>>,
    /// Cost policy `decide` with this estimate (and `spend`).
    #[serde(default)]
    pub estimate: Option<CaseEstimate>,
    #[serde(default)]
    pub spend: Option<CaseSpend>,
    #[serde(default)]
    pub request: CaseRequest,
    #[serde(default)]
    pub context: Option<CaseContext>,
    pub expect: Expect,
}

/// What a case expects.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// Guardrail: the text passes unchanged.
    Pass,
    /// Guardrail: the text is replaced by exactly this.
    Transform(String),
    /// Guardrail: rejected with this code (and a reason containing a text).
    Reject(ExpectReject),
    /// Guardrail: flagged for review with this code.
    Flag(String),
    /// Router: exactly these routes, `provider/model`, in order.
    Routes(Vec<String>),
    /// Cost policy: allowed.
    Allow,
    /// Cost policy: denied with a reason containing this text.
    Deny(String),
    /// Cost policy: downgraded to this model.
    Downgrade(String),
    /// Cost policy: `max_tokens` capped to this.
    CapTokens(u32),
}

/// `{reject: CODE}` or `{reject: {code: CODE, reason-contains: TEXT}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ExpectReject {
    Code(String),
    #[serde(rename_all = "kebab-case")]
    Detailed {
        code: String,
        #[serde(default)]
        reason_contains: Option<String>,
    },
}

impl ExpectReject {
    pub fn code(&self) -> &str {
        match self {
            ExpectReject::Code(c) | ExpectReject::Detailed { code: c, .. } => c,
        }
    }
    fn reason_contains(&self) -> Option<&str> {
        match self {
            ExpectReject::Code(_) => None,
            ExpectReject::Detailed {
                reason_contains, ..
            } => reason_contains.as_deref(),
        }
    }
}

/// Request fields a case may set; the rest are neutral defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CaseRequest {
    pub model: Option<String>,
    pub user: Option<String>,
    pub api_key_id: Option<String>,
    pub feature: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    #[serde(default)]
    pub stream: bool,
    /// The conversation; default one user message (`input`, or `hello`).
    pub messages: Option<Vec<CaseMessage>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseMessage {
    pub role: String,
    pub content: String,
    #[serde(default)]
    pub name: Option<String>,
    /// For `tool` messages: the call this is the result of.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CaseContext {
    #[serde(default)]
    pub emitted: String,
    #[serde(default)]
    pub window_index: u32,
    #[serde(default = "yes")]
    pub is_final: bool,
    /// The choice (`n > 1`) the output belongs to.
    #[serde(default)]
    pub choice: u32,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CaseCandidate {
    pub provider: String,
    pub model: String,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub input_cost_per_mtok: f64,
    #[serde(default)]
    pub output_cost_per_mtok: f64,
    #[serde(default = "default_context_window")]
    pub context_window: u32,
}

fn default_context_window() -> u32 {
    128_000
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CaseEstimate {
    #[serde(default)]
    pub prompt_tokens: u32,
    #[serde(default)]
    pub max_completion_tokens: u32,
    #[serde(default)]
    pub cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CaseSpend {
    #[serde(default = "default_scope")]
    pub scope: String,
    #[serde(default)]
    pub spent_usd: f64,
    #[serde(default)]
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub period: CasePeriod,
    /// The period's UTC label (`2026-01`, `2026-01-31`).
    #[serde(default = "default_label")]
    pub label: String,
    #[serde(default)]
    pub reserved_usd: f64,
}

impl Default for CaseSpend {
    fn default() -> Self {
        CaseSpend {
            scope: default_scope(),
            spent_usd: 0.0,
            budget_usd: None,
            period: CasePeriod::Month,
            label: default_label(),
            reserved_usd: 0.0,
        }
    }
}

fn default_scope() -> String {
    "user:test".into()
}

/// `day` or `month` (the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CasePeriod {
    Day,
    #[default]
    Month,
}

fn default_label() -> String {
    "2026-01".into()
}

/// Why a case file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: case `{case}`: {message}")]
    Invalid {
        path: String,
        case: String,
        message: String,
    },
}

/// Read `path`: `.jsonl` as JSON Lines (blank lines and `#` lines skipped),
/// anything else as YAML. Every case is checked for a call and an
/// expectation that fit together.
pub fn load(path: &Path) -> Result<Vec<Case>, CaseError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CaseError::Read {
        path: shown.clone(),
        source,
    })?;
    let cases =
        parse(&text, path.extension().is_some_and(|e| e == "jsonl")).map_err(|message| {
            CaseError::Parse {
                path: shown.clone(),
                message,
            }
        })?;
    for c in &cases {
        c.call_kind().map_err(|message| CaseError::Invalid {
            path: shown.clone(),
            case: c.name.clone(),
            message,
        })?;
    }
    Ok(cases)
}

/// Parse case-file text (`jsonl`: JSON Lines, else YAML).
///
/// YAML goes through a JSON value so both formats share serde's JSON
/// reading of enums (`pass`, `{reject: CODE}`); serde_yaml's own wants
/// YAML tags (`!reject CODE`), which nobody writes by hand.
pub fn parse(text: &str, jsonl: bool) -> Result<Vec<Case>, String> {
    let typed = |v: serde_json::Value| -> Result<Case, String> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        })
    };
    if !jsonl {
        let value: serde_json::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let serde_json::Value::Array(items) = value else {
            return Err("expected a list of cases".into());
        };
        return items
            .into_iter()
            .enumerate()
            .map(|(i, v)| typed(v).map_err(|e| format!("case {}: {e}", i + 1)))
            .collect();
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            let v = serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1))?;
            typed(v).map_err(|e| format!("line {}: {e}", i + 1))
        })
        .collect()
}

/// Which export a case calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    CheckInput,
    CheckOutput,
    Route,
    Decide,
}

impl Call {
    /// The plugin kind that has this export.
    pub fn kind(self) -> PluginKind {
        match self {
            Call::CheckInput | Call::CheckOutput => PluginKind::Guardrail,
            Call::Route => PluginKind::Router,
            Call::Decide => PluginKind::CostPolicy,
        }
    }
}

impl Case {
    /// The call this case makes; an error when the case names none, several,
    /// or an expectation of another kind.
    pub fn call_kind(&self) -> Result<Call, String> {
        let calls: Vec<Call> = [
            (self.input.is_some(), Call::CheckInput),
            (self.output.is_some(), Call::CheckOutput),
            (self.candidates.is_some(), Call::Route),
            (
                self.estimate.is_some() || self.spend.is_some(),
                Call::Decide,
            ),
        ]
        .into_iter()
        .filter_map(|(set, c)| set.then_some(c))
        .collect();
        let call = match calls.as_slice() {
            [c] => *c,
            [] => {
                return Err(
                    "names no call: give `input`, `output`, `candidates` or `estimate`".into(),
                );
            }
            _ => {
                return Err(
                    "names more than one of `input`, `output`, `candidates`, `estimate`".into(),
                );
            }
        };
        let fits = match &self.expect {
            Expect::Pass | Expect::Transform(_) | Expect::Reject(_) | Expect::Flag(_) => {
                call.kind() == PluginKind::Guardrail
            }
            Expect::Routes(_) => call == Call::Route,
            Expect::Allow | Expect::Deny(_) | Expect::Downgrade(_) | Expect::CapTokens(_) => {
                call == Call::Decide
            }
        };
        if !fits {
            return Err(format!(
                "expects {:?}, which a {} call cannot answer",
                self.expect,
                call.kind()
            ));
        }
        Ok(call)
    }

    /// Whether the case applies to a plugin named `name`.
    pub fn applies_to(&self, name: &str) -> bool {
        self.plugin.as_deref().is_none_or(|p| p == name)
    }

    /// The request the plugin sees.
    pub fn request_info(&self) -> RequestInfo {
        let r = &self.request;
        let messages = match &r.messages {
            Some(m) => m
                .iter()
                .map(|m| Message {
                    role: m.role.clone(),
                    content: m.content.clone(),
                    name: m.name.clone(),
                    tool_calls: Vec::new(),
                    tool_call_id: m.tool_call_id.clone(),
                })
                .collect(),
            None => vec![Message {
                role: "user".into(),
                content: self.input.clone().unwrap_or_else(|| "hello".into()),
                name: None,
                tool_calls: Vec::new(),
                tool_call_id: None,
            }],
        };
        RequestInfo {
            id: "plugin-test".into(),
            user: r.user.clone(),
            api_key_id: r.api_key_id.clone(),
            feature: r.feature.clone(),
            tags: r.tags.clone(),
            model: r.model.clone().unwrap_or_else(|| "test-model".into()),
            messages,
            max_tokens: r.max_tokens,
            temperature: r.temperature,
            stream: r.stream,
            prompt: None,
        }
    }
}

/// How one case went.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub passed: bool,
    /// What the plugin answered (and why it failed, if it did).
    pub got: String,
    /// Wall time of the call, instantiation included.
    pub elapsed: Duration,
}

/// Run `case` against `plugin` and compare with its expectation. A failed
/// guardrail call is judged by the verdict its failure mode gives in the
/// gateway (`closed`: reject `plugin_failure`; `open`: pass), and the
/// failure is shown.
pub async fn run(plugin: &Plugin, case: &Case) -> Outcome {
    let call = match case.call_kind() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                passed: false,
                got: e,
                elapsed: Duration::ZERO,
            };
        }
    };
    let req = Arc::new(case.request_info());
    let start = Instant::now();
    let (passed, got) = match call {
        Call::CheckInput | Call::CheckOutput => {
            let answer = if call == Call::CheckInput {
                plugin.check_input(&req).await
            } else {
                let ctx = case.context.clone().unwrap_or(CaseContext {
                    is_final: true,
                    ..Default::default()
                });
                let ctx = OutputContext {
                    emitted: ctx.emitted,
                    window_index: ctx.window_index,
                    is_final: ctx.is_final,
                    choice: ctx.choice,
                    part: OutputPart::Content,
                };
                plugin
                    .check_output(&req, case.output.as_deref().unwrap_or(""), &ctx)
                    .await
            };
            let failed = answer
                .as_ref()
                .err()
                .map(|f| format!(" (plugin failed: {f})"));
            let (verdict, _) = guard::answered(plugin, answer, &req.id);
            let got = describe_verdict(&verdict) + failed.as_deref().unwrap_or("");
            (verdict_matches(&case.expect, &verdict), got)
        }
        Call::Route => {
            let cands: Vec<Candidate> = case
                .candidates
                .iter()
                .flatten()
                .map(|c| Candidate {
                    provider: c.provider.clone(),
                    model: c.model.clone(),
                    tier: c.tier.clone(),
                    input_cost_per_mtok: c.input_cost_per_mtok,
                    output_cost_per_mtok: c.output_cost_per_mtok,
                    context_window: c.context_window,
                })
                .collect();
            match plugin.route(&req, &cands).await {
                Ok(routes) => {
                    let got: Vec<String> = routes
                        .iter()
                        .map(|r| format!("{}/{}", r.provider, r.model))
                        .collect();
                    let passed = matches!(&case.expect, Expect::Routes(want) if *want == got);
                    (passed, format!("routes [{}]", got.join(", ")))
                }
                Err(f) => (false, format!("plugin failed: {f}")),
            }
        }
        Call::Decide => {
            let e = case.estimate.clone().unwrap_or_default();
            let s = case.spend.clone().unwrap_or_default();
            let est = Estimate {
                prompt_tokens: e.prompt_tokens,
                max_completion_tokens: e.max_completion_tokens,
                cost_usd: e.cost_usd,
            };
            let period = match s.period {
                CasePeriod::Day => BudgetPeriod::Day,
                CasePeriod::Month => BudgetPeriod::Month,
            };
            let spend = Spend {
                scope: s.scope,
                period,
                label: s.label,
                spent_usd: s.spent_usd,
                reserved_usd: s.reserved_usd,
                budget_usd: s.budget_usd,
            };
            match plugin.decide(&req, &est, &[spend]).await {
                Ok(d) => (decision_matches(&case.expect, &d), describe_decision(&d)),
                Err(f) => (false, format!("plugin failed: {f}")),
            }
        }
    };
    Outcome {
        passed,
        got,
        elapsed: start.elapsed(),
    }
}

/// Whether `got` is what `want` asks for (guardrails).
pub fn verdict_matches(want: &Expect, got: &Verdict) -> bool {
    match (want, got) {
        (Expect::Pass, Verdict::Pass) => true,
        (Expect::Transform(w), Verdict::Transform(g)) => w == g,
        (Expect::Reject(w), Verdict::Reject(r)) => {
            w.code() == r.code && w.reason_contains().is_none_or(|t| r.reason.contains(t))
        }
        (Expect::Flag(w), Verdict::Flag(f)) => *w == f.code,
        _ => false,
    }
}

fn decision_matches(want: &Expect, got: &Decision) -> bool {
    match (want, got) {
        (Expect::Allow, Decision::Allow) => true,
        (Expect::Deny(w), Decision::Deny(g)) => g.contains(w.as_str()),
        (Expect::Downgrade(w), Decision::Downgrade(g)) => w == g,
        (Expect::CapTokens(w), Decision::CapTokens(g)) => w == g,
        _ => false,
    }
}

/// One line saying what a guardrail answered.
pub fn describe_verdict(v: &Verdict) -> String {
    match v {
        Verdict::Pass => "pass".into(),
        Verdict::Transform(t) => format!("transform {t:?}"),
        Verdict::Reject(r) => format!("reject {} ({})", r.code, r.reason),
        Verdict::Flag(f) => format!("flag {} ({}, score {:.2})", f.code, f.reason, f.score),
    }
}

fn describe_decision(d: &Decision) -> String {
    match d {
        Decision::Allow => "allow".into(),
        Decision::Deny(r) => format!("deny ({r})"),
        Decision::Downgrade(m) => format!("downgrade to {m}"),
        Decision::CapTokens(n) => format!("cap-tokens {n}"),
    }
}

/// What the case expects, in the words of [`describe_verdict`].
pub fn describe_expect(e: &Expect) -> String {
    match e {
        Expect::Pass => "pass".into(),
        Expect::Transform(t) => format!("transform {t:?}"),
        Expect::Reject(r) => match r.reason_contains() {
            Some(t) => format!("reject {} (reason containing {t:?})", r.code()),
            None => format!("reject {}", r.code()),
        },
        Expect::Flag(c) => format!("flag {c}"),
        Expect::Routes(r) => format!("routes [{}]", r.join(", ")),
        Expect::Allow => "allow".into(),
        Expect::Deny(t) => format!("deny (reason containing {t:?})"),
        Expect::Downgrade(m) => format!("downgrade to {m}"),
        Expect::CapTokens(n) => format!("cap-tokens {n}"),
    }
}

#[cfg(test)]
#[path = "cases_tests.rs"]
mod tests;
