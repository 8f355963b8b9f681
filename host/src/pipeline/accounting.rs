//! Accounting for one request: the budget reservation before the upstream
//! call, and after it one ledger record with the spend it adds
//! ([`State::finish`]), or the reservation given back.
//!
//! Which requests get a record: every one that reached an upstream and got
//! an answer to pay for: a success, an answer an output guardrail rejected,
//! a stream the client left mid-way, a stream the upstream broke mid-way.
//! A request refused before the call, or whose call failed without an
//! answer, releases its reservation and writes nothing (there is no usage
//! to pay for).
//!
//! Tokens come from the upstream's usage (cached-input and reasoning tokens
//! included, so they are priced apart); when it reports none they are
//! counted with the tokenizer and the record says `estimated`.
//!
//! When: the write is awaited before the answer completes (JSON: before the
//! response; streams: before the usage chunk and `[DONE]`), and it runs in a
//! task of its own, so a client leaving mid-write cannot cancel it. With
//! `[state] durability = "sync"` that await covers the fsync, and a failed
//! write fails the request: the client never holds an answer the ledger
//! lacks. In `group` mode a failed write is logged and the answer stands.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::RouteConfig;
use crate::metrics::Metrics;
use crate::openai::{ChatChunk, ChatCompletion, Usage};
use crate::plugin::Plugin;
use crate::state::{
    Durability, GuardrailOutcome, RecordStatus, Reservation, ReserveError, State, Subject,
    TokenUsage, UsageRecord, tokenizer,
};

use super::cost::{self, PromptTokens};
use super::guard::GuardReport;
use super::stream::{StreamEnd, StreamLedger};
use super::{Error, RequestCtx};

/// One request's accounting, from before the upstream call to its record.
pub(crate) struct Meter {
    state: State,
    metrics: Arc<Metrics>,
    /// Filled in as the request goes; written by [`Meter::settle`].
    record: UsageRecord,
    arrived: Instant,
    /// When the upstream call started.
    called: Option<Instant>,
    reservation: Option<Reservation>,
    /// Name and SHA-256 of each guardrail that may run on the request.
    plugins: Vec<(String, String)>,
}

/// What answered, for the record.
pub(crate) struct Answer<'a> {
    /// The route that answered (its prices); None = unknown, costs $0.
    pub route: Option<&'a RouteConfig>,
    pub provider: &'a str,
    pub model: &'a str,
    pub attempts: u32,
    pub usage: Option<Usage>,
    pub status: RecordStatus,
    pub guardrails: &'a GuardReport,
}

impl Meter {
    /// `gateway_model`: what the client asked for; `user`: the request's
    /// end user (the client's `user`, else the key's owner).
    pub(crate) fn new(
        state: &State,
        metrics: &Arc<Metrics>,
        ctx: &RequestCtx,
        gateway_model: &str,
        user: Option<&str>,
        stream: bool,
    ) -> Self {
        let arrived = ctx.arrived;
        let since = u64::try_from(arrived.elapsed().as_millis()).unwrap_or(0);
        let record = UsageRecord {
            request_id: ctx.id.clone(),
            time_ms: crate::state::now_ms().saturating_sub(since),
            key_id: ctx.principal.key_id.clone(),
            user: user.map(str::to_string),
            feature: ctx.feature.clone(),
            tags: ctx.tags.clone(),
            gateway_model: gateway_model.to_string(),
            stream,
            ..UsageRecord::default()
        };
        Self {
            state: state.clone(),
            metrics: metrics.clone(),
            record,
            arrived,
            called: None,
            reservation: None,
            plugins: Vec::new(),
        }
    }

    /// The guardrails whose verdicts the record names, with their builds.
    pub(crate) fn plugins<'a>(&mut self, plugins: impl IntoIterator<Item = &'a Arc<Plugin>>) {
        for p in plugins {
            if !self.plugins.iter().any(|(n, _)| n == p.name()) {
                self.plugins
                    .push((p.name().to_string(), p.sha256().to_string()));
            }
        }
    }

    /// What the response cache did; `saved_usd` on a hit.
    pub(crate) fn cache(&mut self, status: Option<crate::cache::Status>, saved_usd: f64) {
        use crate::cache::Status;
        use crate::state::CacheStatus;
        self.record.cache = match status {
            None => CacheStatus::None,
            Some(Status::Hit) => CacheStatus::Hit,
            Some(Status::Miss) => CacheStatus::Miss,
            Some(Status::Bypass) => CacheStatus::Bypass,
        };
        self.record.saved_usd = saved_usd;
    }

    /// The registry prompt version the request was rendered from, so cost
    /// is visible per version.
    pub(crate) fn prompt(&mut self, prompt: Option<&crate::prompt::PromptRef>) {
        self.record.prompt_id = prompt.map(|p| p.id.clone());
        self.record.prompt_version = prompt.map(|p| p.version.to_string());
    }

    /// Reserve `worst_case_usd` against every budget of `who` (no store
    /// call when none applies). Call it once, right before the upstream.
    pub(crate) async fn reserve(
        &mut self,
        who: &Subject<'_>,
        worst_case_usd: f64,
    ) -> Result<(), Error> {
        let r = self
            .state
            .reserve(who, &self.record.request_id, worst_case_usd)
            .await
            .map_err(|e| match e {
                ReserveError::Exceeded(b) => Error::BudgetExceeded(b),
                ReserveError::State(s) => Error::State(s),
            })?;
        self.reservation = Some(r);
        self.called = Some(Instant::now());
        Ok(())
    }

    /// No upstream answered: give the reservation back.
    pub(crate) async fn release(mut self) {
        if let Some(r) = self.reservation.take()
            && let Err(e) = self.state.release(r).await
        {
            tracing::warn!(request_id = self.record.request_id, error = %e, "releasing a budget reservation failed; it expires on its own");
        }
    }

    /// Write the record (and add its cost to every budget) for `answer`;
    /// `estimate` gives prompt and completion tokens when the upstream
    /// reported no usage. Returns the cost in USD.
    pub(crate) async fn settle(
        mut self,
        answer: Answer<'_>,
        estimate: impl FnOnce() -> (u32, u32),
    ) -> Result<f64, Error> {
        let r = &mut self.record;
        r.provider = answer.provider.to_string();
        r.upstream_model = answer.model.to_string();
        r.attempts = answer.attempts;
        r.status = answer.status;
        r.usage = match &answer.usage {
            Some(u) => TokenUsage::from(u),
            None => {
                let (prompt_tokens, completion_tokens) = estimate();
                r.estimated = true;
                TokenUsage {
                    prompt_tokens,
                    completion_tokens,
                    ..TokenUsage::default()
                }
            }
        };
        r.cost_usd = answer
            .route
            .map_or(0.0, |route| cost::usage_cost(route, &r.usage));
        r.guardrails = answer
            .guardrails
            .outcomes()
            .map(|(plugin, verdict)| GuardrailOutcome {
                plugin: plugin.to_string(),
                verdict: verdict.to_string(),
                sha256: self
                    .plugins
                    .iter()
                    .find(|(n, _)| n == plugin)
                    .map(|(_, sha)| sha.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let total = self.arrived.elapsed();
        let upstream = self.called.map_or(Duration::ZERO, |c| c.elapsed());
        r.upstream_ms = upstream.as_secs_f64() * 1e3;
        r.overhead_ms = total.saturating_sub(upstream).as_secs_f64() * 1e3;
        let cost = r.cost_usd;
        // Counted here, once per record, whether or not the write below
        // succeeds: the tokens were spent upstream either way.
        self.metrics.usage(
            &r.gateway_model,
            r.key_id.as_deref(),
            r.feature.as_deref(),
            (r.usage.prompt_tokens, r.usage.completion_tokens),
            cost,
        );
        // `reserve` runs before every upstream call, so there is always one.
        let Some(reservation) = self.reservation.take() else {
            tracing::error!(
                request_id = r.request_id,
                "no budget reservation to settle; record not written"
            );
            return Ok(cost);
        };
        let (state, record) = (self.state.clone(), std::mem::take(&mut self.record));
        // A task of its own: a client leaving mid-write cannot cancel it.
        let id = record.request_id.clone();
        let written = tokio::spawn(async move { state.finish(reservation, &record).await })
            .await
            .map_err(|e| crate::state::StateError::Corrupt(format!("ledger write task: {e}")))
            .and_then(|r| r);
        match written {
            Ok(_) => Ok(cost),
            Err(e) if self.state.config().durability == Durability::Sync => Err(Error::State(e)),
            Err(e) => {
                tracing::error!(request_id = id, error = %e, "writing the usage record failed; the answer is sent anyway (durability = \"group\")");
                Ok(cost)
            }
        }
    }
}

/// The completion text of an answer, every choice (for estimates).
pub(crate) fn completion_text(c: &ChatCompletion) -> String {
    c.choices
        .iter()
        .map(|ch| ch.message.content_text())
        .collect::<Vec<_>>()
        .concat()
}

/// A stream's accounting ([`StreamLedger`]): watches the upstream chunks
/// for text and usage, settles once at the end, or, if the client leaves
/// first (the stream is dropped), settles in the background as
/// `client-disconnected` with what arrived until then.
pub(crate) struct StreamMeter {
    meter: Option<Meter>,
    route: Option<RouteConfig>,
    provider: String,
    model: String,
    attempts: u32,
    usage: Option<Usage>,
    /// Completion text received, for an estimate when no usage comes.
    text: String,
    prompt: PromptTokens,
    /// (role, text) of the prompt while it is not counted yet.
    messages: Vec<(String, String)>,
    /// Input verdicts, then every window's; shared with the window checker.
    guardrails: Arc<Mutex<GuardReport>>,
    /// Where a complete stream's usage and cost go (the response cache
    /// stores the answer with them).
    settled: Option<Arc<Mutex<Option<SettledStream>>>>,
}

/// A complete stream's upstream usage and cost.
pub(crate) type SettledStream = (Option<Usage>, f64);

impl StreamMeter {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        meter: Meter,
        route: Option<RouteConfig>,
        provider: &str,
        model: &str,
        attempts: u32,
        prompt: PromptTokens,
        req: &crate::openai::ChatRequest,
        guardrails: Arc<Mutex<GuardReport>>,
    ) -> Self {
        let messages = if prompt.counted().is_some() {
            Vec::new()
        } else {
            req.messages
                .iter()
                .map(|m| (m.role.clone(), m.content_text()))
                .collect()
        };
        Self {
            meter: Some(meter),
            route,
            provider: provider.to_string(),
            model: model.to_string(),
            attempts,
            usage: None,
            text: String::new(),
            prompt,
            messages,
            guardrails,
            settled: None,
        }
    }

    /// Report a complete stream's usage and cost to `slot`.
    pub(crate) fn report_to(&mut self, slot: Arc<Mutex<Option<SettledStream>>>) {
        self.settled = Some(slot);
    }

    /// Take what settling needs, leaving `self` settled.
    fn take(
        &mut self,
        status: RecordStatus,
    ) -> Option<(Meter, impl FnOnce() -> (u32, u32) + Send + 'static, Settled)> {
        let meter = self.meter.take()?;
        let prompt = self.prompt.counted();
        let model = self.prompt.model().to_string();
        let messages = std::mem::take(&mut self.messages);
        let text = std::mem::take(&mut self.text);
        let upstream_model = self.model.clone();
        let estimate = move || {
            let p = prompt.unwrap_or_else(|| {
                tokenizer::count_chat(
                    &model,
                    messages.iter().map(|(r, c)| (r.as_str(), c.as_str())),
                )
            });
            (p, tokenizer::count(&upstream_model, &text))
        };
        let settled = Settled {
            route: self.route.take(),
            provider: std::mem::take(&mut self.provider),
            model: std::mem::take(&mut self.model),
            attempts: self.attempts,
            usage: self.usage,
            status,
            guardrails: self.guardrails.lock().clone(),
        };
        Some((meter, estimate, settled))
    }
}

/// The owned facts of a stream's answer.
struct Settled {
    route: Option<RouteConfig>,
    provider: String,
    model: String,
    attempts: u32,
    usage: Option<Usage>,
    status: RecordStatus,
    guardrails: GuardReport,
}

impl Settled {
    async fn write(
        self,
        meter: Meter,
        estimate: impl FnOnce() -> (u32, u32),
    ) -> Result<f64, Error> {
        let answer = Answer {
            route: self.route.as_ref(),
            provider: &self.provider,
            model: &self.model,
            attempts: self.attempts,
            usage: self.usage,
            status: self.status,
            guardrails: &self.guardrails,
        };
        meter.settle(answer, estimate).await
    }
}

impl StreamLedger for StreamMeter {
    fn observe(&mut self, chunk: &ChatChunk) {
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        for c in &chunk.choices {
            if let Some(t) = &c.delta.content {
                self.text.push_str(t);
            }
        }
    }

    async fn end(&mut self, end: StreamEnd) -> Option<Error> {
        let status = match end {
            StreamEnd::Complete => RecordStatus::Ok,
            StreamEnd::Rejected => RecordStatus::Rejected,
            StreamEnd::UpstreamFailed => RecordStatus::UpstreamError,
        };
        let usage = self.usage;
        let slot = self.settled.take();
        let (meter, estimate, settled) = self.take(status)?;
        match settled.write(meter, estimate).await {
            Ok(cost) => {
                if let Some(slot) = slot.filter(|_| status == RecordStatus::Ok) {
                    *slot.lock() = Some((usage, cost));
                }
                None
            }
            Err(e) => Some(e),
        }
    }
}

impl Drop for StreamMeter {
    fn drop(&mut self) {
        let Some((meter, estimate, settled)) = self.take(RecordStatus::ClientDisconnected) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return; // the reservation expires on its own
        };
        rt.spawn(async move {
            // Group mode logs its own failures; in sync mode there is no
            // client left to tell.
            if let Err(e) = settled.write(meter, estimate).await {
                tracing::error!(error = %e, "writing the usage record of a disconnected stream failed");
            }
        });
    }
}
