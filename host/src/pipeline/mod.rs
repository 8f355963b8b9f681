//! One request's way through the gateway:
//!
//! ```text
//! (auth: server layer) -> prompt render (`prompt` extension, [`crate::prompt`])
//!   -> model lookup (and the key's allowed models)
//!   -> rate limit -> input guardrails -> cost policy -> router
//!   -> budget reservation -> cache lookup (a hit skips the providers)
//!   -> providers (retries, fallback, breakers)
//!   -> output guardrails (whole answer, or windows of a stream)
//!   -> usage ledger (settles the reservation) -> cache store -> response
//! ```
//!
//! Stages with state ([`crate::state`]) live in their own modules:
//! [`rate_limit`] (RPM / TPM per key and user), [`cost`] (estimates and the
//! cost policy's spend), [`accounting`] (reservation, ledger record),
//! `cache` (the seam to [`crate::cache`]).
//!
//! The HTTP layer ([`crate::server`]) only parses, authenticates and renders;
//! every decision about a request is made here, so the same rules apply to a
//! plain answer and a stream. How a decision looks on the wire (status,
//! error body) is the server's. Plugin calls are awaited in the request's
//! task; each ends within its plugin's deadline (see [`crate::plugin`]).

mod accounting;
mod cache;
pub mod config;
pub mod cost;
mod error;
mod failure;
pub mod guard;
pub mod output;
mod rate_limit;
mod request;
pub mod review;
mod route;
pub mod stream;
mod stream_choice;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use serde_json::Value;

use crate::cache::ResponseCache;
use crate::config::{Config, ModelConfig, RouteConfig, StreamWindowConfig};
use crate::eval::EvalStore;
use crate::metrics::Metrics;
use crate::openai::{ChatCompletion, ChatRequest, EmbeddingsRequest, EmbeddingsResponse};
use crate::plugin::{OutputContext, Phases, Plugin, PluginRuntime, Rejection, RequestInfo};
use crate::prompt::{PromptRef, Prompts};
use crate::provider::{Failure, Outcome, Providers};
use crate::server::config::MetricsAccess;
use crate::state::review::FlagEntry;
use crate::state::{RateDecision, RecordStatus, ReviewQueue, State, Subject, Tier, VirtualKey};
use crate::telemetry;
use tracing::Instrument as _;

use accounting::{Answer, Meter, StreamMeter};
use cost::PromptTokens;
pub use error::Error;
pub use guard::GuardReport;
use review::StreamReview;
pub use review::{ReviewConfig, Reviewed};
pub use stream::StreamEvent;

/// Who is calling, as established by the auth layer.
#[derive(Debug, Clone, Default)]
pub struct Principal {
    /// The virtual key (its budgets, limits, allowed models); None when
    /// auth is off (no key exists anywhere).
    pub key: Option<Arc<VirtualKey>>,
    /// The key's id (plugins' `api-key-id`, logs, the ledger).
    pub key_id: Option<String>,
    /// The key's owner: the request's user when the client names none.
    pub user: Option<String>,
    /// The request's service tier (rate limits are per tier): the key's,
    /// or the one `x-sluice-tier` picks if the key allows it.
    pub tier: Tier,
}

impl Principal {
    pub fn new(key: VirtualKey, tier: Tier) -> Self {
        Self {
            key_id: Some(key.id.clone()),
            user: key.user.clone(),
            key: Some(Arc::new(key)),
            tier,
        }
    }

    /// Whether the caller may use gateway model `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.key.as_ref().is_none_or(|k| k.allows_model(model))
    }
}

/// Per-request facts the server layer collects.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub id: String,
    /// When the request arrived (overhead and the ledger's time count from
    /// here).
    pub arrived: Instant,
    pub principal: Principal,
    /// `x-sluice-feature`.
    pub feature: Option<String>,
    /// `x-sluice-tags: a,b`.
    pub tags: Vec<String>,
    /// Filled in as the request goes; what the server reports when it fails.
    pub progress: Progress,
    /// `Cache-Control` / `x-sluice-cache` (see [`crate::cache`]).
    pub cache: crate::cache::Directive,
}

/// How far a request got: which route it last tried, how many attempts,
/// what the guardrails did. A success reports this in [`Served`]; a
/// failure leaves it here for the error response's `x-sluice-*` headers.
#[derive(Debug, Default)]
pub struct Progress(parking_lot::Mutex<Tried>);

/// A snapshot of [`Progress`].
#[derive(Debug, Clone, Default)]
pub struct Tried {
    /// The last route attempted (none before the upstream phase).
    pub provider: Option<String>,
    pub model: Option<String>,
    pub attempts: u32,
    /// Time spent in the providers layer.
    pub upstream: Duration,
    pub guardrails: GuardReport,
    /// The registry prompt version the request was rendered from.
    pub prompt: Option<PromptRef>,
}

impl Clone for Progress {
    fn clone(&self) -> Self {
        Progress(parking_lot::Mutex::new(self.get()))
    }
}

impl Progress {
    pub fn get(&self) -> Tried {
        self.0.lock().clone()
    }

    fn prompt(&self, prompt: Option<&PromptRef>) {
        self.0.lock().prompt = prompt.cloned();
    }

    fn guardrails(&self, report: &GuardReport) {
        self.0.lock().guardrails = report.clone();
    }

    fn upstream(&self, provider: Option<&str>, model: Option<&str>, attempts: u32, took: Duration) {
        let mut t = self.0.lock();
        t.provider = provider.map(str::to_string);
        t.model = model.map(str::to_string);
        t.attempts = attempts;
        t.upstream = took;
    }

    /// Record a route walk's result; a failure becomes the pipeline's error
    /// (the gateway's own deadline is [`Error::Timeout`]).
    fn walked<T>(
        &self,
        r: Result<Outcome<T>, Failure>,
        limit: Duration,
    ) -> Result<Outcome<T>, Error> {
        match r {
            Ok(o) => {
                self.upstream(Some(&o.provider), Some(&o.model), o.attempts, o.elapsed);
                Ok(o)
            }
            Err(f) => {
                self.upstream(
                    f.provider.as_deref(),
                    f.model.as_deref(),
                    f.attempts,
                    f.elapsed,
                );
                Err(if f.deadline_exceeded {
                    Error::Timeout(limit)
                } else {
                    Error::Upstream(f.error)
                })
            }
        }
    }
}

/// Which upstream served a request and what the guardrails did: the
/// `x-sluice-*` response headers.
#[derive(Debug, Clone)]
pub struct Served {
    pub provider: String,
    pub model: String,
    pub attempts: u32,
    /// Time spent in the providers layer (for streams: until the first chunk).
    pub upstream: Duration,
    /// For streams, the input side only: output windows are checked after
    /// the headers are sent.
    pub guardrails: GuardReport,
    /// The registry prompt version the request was rendered from.
    pub prompt: Option<PromptRef>,
    /// The rate limits checked (`x-ratelimit-*`).
    pub rate: RateDecision,
    /// What the request cost (`x-sluice-cost-usd`); None for streams,
    /// whose cost is known only after the headers are sent (the ledger
    /// has it).
    pub cost_usd: Option<f64>,
    /// What the response cache did (`x-sluice-cache`) and a semantic hit's
    /// similarity; None when the model does not cache.
    pub cache: Option<(crate::cache::Status, Option<f32>)>,
}

impl Served {
    fn new<T>(outcome: &Outcome<T>, guardrails: GuardReport) -> Self {
        Served {
            provider: outcome.provider.clone(),
            model: outcome.model.clone(),
            attempts: outcome.attempts,
            upstream: outcome.elapsed,
            guardrails,
            prompt: None,
            rate: RateDecision::default(),
            cost_usd: None,
            cache: None,
        }
    }
}

pub struct ChatResponse {
    pub completion: ChatCompletion,
    pub served: Served,
    /// Set when a guardrail flagged the answer (`x-sluice-review`).
    pub review: Option<Reviewed>,
}

pub struct StreamResponse {
    pub served: Served,
    pub events: BoxStream<'static, StreamEvent>,
}

pub struct EmbeddingsServed {
    pub response: EmbeddingsResponse,
    pub served: Served,
}

/// Everything a request needs, built once at startup.
pub struct Gateway {
    pub config: Arc<Config>,
    pub providers: Providers,
    pub plugins: Arc<PluginRuntime>,
    /// Keys, budgets, rate limits and the usage ledger.
    pub state: State,
    /// The response cache ([`crate::cache`]); models opt in.
    pub cache: Arc<ResponseCache>,
    review: Option<ReviewQueue>,
    /// The prompt registry (`[prompts]`); None: the `prompt` extension is refused.
    pub prompts: Option<Arc<Prompts>>,
    /// Where eval results sent to `/admin/evals` are kept.
    pub evals: Option<EvalStore>,
    /// What `/metrics` reports (see [`crate::metrics`]).
    pub metrics: Arc<Metrics>,
    /// Rolling error and reject rates per model, their alerts, and the
    /// latest guardrail rejections (see [`crate::state::quality`]).
    pub quality: Arc<crate::state::Quality>,
    /// `[request-log]` (see [`crate::reqlog`]); off until `starting` opens it.
    pub reqlog: crate::reqlog::RequestLog,
}

/// What `prepare` decided for one chat request.
struct Plan {
    /// Built once, shared by every plugin call of the request.
    info: Arc<RequestInfo>,
    routes: Vec<RouteConfig>,
    output: Vec<Arc<Plugin>>,
    window: StreamWindowConfig,
    report: GuardReport,
    rate: RateDecision,
    prompt: PromptTokens,
    /// Holds the budget reservation; settled after the call.
    meter: Meter,
    review: ReviewConfig,
    /// Flags the input chain raised.
    flags: Vec<FlagEntry>,
    /// The registry prompt version the request was rendered from.
    prompt_ref: Option<PromptRef>,
}

impl Gateway {
    /// [`Gateway::starting`], then the initial plugin load (it compiles
    /// every plugin). Call it on a blocking thread of a tokio runtime
    /// (`spawn_blocking`).
    pub fn start(config: Config) -> anyhow::Result<Self> {
        let gw = Self::starting(config)?;
        gw.plugins
            .initial_load()
            .map_err(|e| anyhow::anyhow!("loading plugins: {e}"))?;
        Ok(gw)
    }

    /// Open the state (`[state]`; config keys seeded into it), create the
    /// plugin runtime with nothing loaded yet and the provider clients: the
    /// caller runs `plugins.initial_load()` (off the async workers) while
    /// the server already answers `/healthz`, and `/readyz` says not ready
    /// until it has finished. Call it on a blocking thread of a tokio
    /// runtime: the state is opened on the runtime.
    pub fn starting(config: Config) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("the gateway starts inside a tokio runtime"))?;
        let state = rt.block_on(open_state(&config))?;
        let plugins = PluginRuntime::new(config.plugins.clone())
            .map_err(|e| anyhow::anyhow!("starting the plugin runtime: {e}"))?;
        let providers = Providers::new(&config.providers, &config.retry, &config.breaker)?;
        let reqlog = crate::reqlog::RequestLog::start(&config.request_log, &config.state.dir)
            .map_err(|e| anyhow::anyhow!("opening the request log: {e}"))?;
        let mut gw = Self::new(config, providers, plugins, state);
        gw.reqlog = reqlog;
        Ok(gw)
    }

    pub fn new(
        config: Config,
        providers: Providers,
        plugins: Arc<PluginRuntime>,
        state: State,
    ) -> Self {
        // The queue lives in the gateway's own store (a sled directory has
        // one owner, so it cannot be opened a second time).
        let review = Some(ReviewQueue::new(state.store().clone()));
        let metrics = Arc::new(Metrics::new(
            config.server.metrics != MetricsAccess::Off,
            config.server.metrics_label_limit,
        ));
        let cache = Arc::new(ResponseCache::new(
            state.store().clone(),
            config.cache.clone(),
        ));
        let quality = Arc::new(crate::state::Quality::new(
            &config.state.quality_alerts,
            config.models.keys(),
            state.alerts().clone(),
            std::time::Instant::now(),
        ));
        Self {
            metrics,
            quality,
            config: Arc::new(config),
            providers,
            plugins,
            state,
            cache,
            review,
            prompts: None,
            evals: None,
            reqlog: crate::reqlog::RequestLog::off(),
        }
    }

    /// Install the prompt registry (see [`crate::prompt`]).
    pub fn with_prompts(mut self, prompts: Arc<Prompts>) -> Self {
        self.prompts = Some(prompts);
        self
    }

    /// Keep eval results sent to `/admin/evals` in `store`.
    pub fn with_evals(mut self, store: EvalStore) -> Self {
        self.evals = Some(store);
        self
    }

    /// Queue flagged answers in `queue` instead of the state store's (see
    /// [`review`]).
    pub fn with_review(mut self, queue: ReviewQueue) -> Self {
        self.review = Some(queue);
        self
    }

    /// The review queue, when one is installed.
    pub fn review_queue(&self) -> Option<&ReviewQueue> {
        self.review.as_ref()
    }

    /// Plugin names the config references that are not loaded (empty and
    /// the initial load done = ready).
    pub fn missing_plugins(&self) -> Vec<String> {
        let set = self.plugins.current();
        self.config
            .referenced_plugins()
            .into_iter()
            .filter(|n| set.get(n).is_none())
            .collect()
    }

    /// The gateway model `name`, if it exists and the caller may use it
    /// (both failures answer alike: [`Error::ModelNotFound`]).
    fn model(&self, ctx: &RequestCtx, name: &str) -> Result<&ModelConfig, Error> {
        self.config
            .models
            .get(name)
            .filter(|_| ctx.principal.allows_model(name))
            .ok_or_else(|| Error::ModelNotFound(name.to_string()))
    }

    /// Non-streaming chat: the whole answer passes the output chain before
    /// the client sees any of it.
    pub async fn chat(
        &self,
        ctx: &RequestCtx,
        mut req: ChatRequest,
    ) -> Result<ChatResponse, Error> {
        let mut plan = self.prepare(ctx, &mut req).await?;
        let (mut cached, hit) = self.cache_lookup(ctx, &req, &mut plan.meter).await;
        let outcome = match hit {
            // From here on a hit takes the upstream answer's way: the
            // current output guardrails, review, the ledger (at $0).
            Some(completion) => cache_outcome(completion),
            None => {
                let targets: Vec<_> = plan.routes.iter().map(RouteConfig::target).collect();
                let limit = self.config.server.request_timeout();
                let walked = self.providers.chat(&targets, &req).within(limit).await;
                match ctx.progress.walked(walked, limit) {
                    Ok(o) => o,
                    Err(e) => {
                        plan.meter.release().await;
                        return Err(e);
                    }
                }
            }
        };

        let mut served = Served::new(&outcome, GuardReport::default());
        served.cache = cached.as_ref().map(|p| (p.status, p.similarity));
        let mut completion = outcome.value;
        let mut report = plan.report;
        let mut flags = plan.flags;
        // Every text of every choice (`n` > 1) passes the chain on its own.
        let checked = output::check_completion(
            &plan.output,
            &plan.info,
            &mut completion,
            &mut report,
            &mut flags,
        )
        .await;
        if checked.is_err() {
            ctx.progress.guardrails(&report);
        }
        // The answer was paid for whether or not the client gets it.
        let answer = Answer {
            route: find_route(&plan.routes, &outcome.provider, &outcome.model),
            provider: &outcome.provider,
            model: &outcome.model,
            attempts: outcome.attempts,
            usage: completion.usage,
            status: if checked.is_err() {
                RecordStatus::Rejected
            } else {
                RecordStatus::Ok
            },
            guardrails: &report,
        };
        let prompt = &mut plan.prompt;
        let cost = plan
            .meter
            .settle(answer, || {
                let text = accounting::completion_text(&completion);
                (
                    prompt.get(&req),
                    crate::state::tokenizer::count(&outcome.model, &text),
                )
            })
            .await?;
        checked?;
        let review = if flags.is_empty() {
            None
        } else {
            let queue = self.review.as_ref();
            Some(review::settle(queue, &plan.review, ctx, &req, &mut completion, flags).await)
        };
        // A flagged answer is not cached: a reviewer has yet to pass it.
        if let Some(p) = cached.as_mut().filter(|_| review.is_none()) {
            self.cache.store(p, &completion, cost).await;
        }
        let served = Served {
            guardrails: report,
            prompt: plan.prompt_ref,
            rate: plan.rate,
            cost_usd: Some(cost),
            ..served
        };
        Ok(ChatResponse {
            completion,
            served,
            review,
        })
    }

    /// Streaming chat: the upstream stream wrapped in guardrail windows
    /// ([`stream`]). Usage is always requested upstream for the ledger and
    /// forwarded only when the client asked (`stream_options.include_usage`).
    pub async fn chat_stream(
        &self,
        ctx: &RequestCtx,
        mut req: ChatRequest,
    ) -> Result<StreamResponse, Error> {
        let mut plan = self.prepare(ctx, &mut req).await?;
        let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        req.stream_options
            .get_or_insert_with(Default::default)
            .include_usage = true;
        let (cached, hit) = self.cache_lookup(ctx, &req, &mut plan.meter).await;
        let hit_header = cached.as_ref().map(|p| (p.status, p.similarity));
        let outcome = match hit {
            // Replayed through the same windows as a live stream.
            Some(completion) => {
                let o = cache_outcome(completion);
                Outcome {
                    value: crate::cache::replay::stream(&o.value),
                    provider: o.provider,
                    model: o.model,
                    attempts: 0,
                    elapsed: Duration::ZERO,
                }
            }
            None => {
                let targets: Vec<_> = plan.routes.iter().map(RouteConfig::target).collect();
                let limit = self.config.server.request_timeout();
                let walked = self
                    .providers
                    .chat_stream(&targets, &req)
                    .within(limit)
                    .await;
                match ctx.progress.walked(walked, limit) {
                    Ok(o) => o,
                    Err(e) => {
                        plan.meter.release().await;
                        return Err(e);
                    }
                }
            }
        };

        // Input verdicts, then each window's: what the ledger records.
        let verdicts = Arc::new(parking_lot::Mutex::new(plan.report.clone()));
        let mut ledger = StreamMeter::new(
            plan.meter,
            find_route(&plan.routes, &outcome.provider, &outcome.model).cloned(),
            &outcome.provider,
            &outcome.model,
            outcome.attempts,
            plan.prompt,
            &req,
            verdicts.clone(),
        );
        // A miss to store: the meter hands over usage and cost at the end.
        let to_store = cached
            .filter(|p| p.status != crate::cache::Status::Hit)
            .map(|p| {
                let slot = Arc::new(parking_lot::Mutex::new(None));
                ledger.report_to(slot.clone());
                (p, slot)
            });
        // Nothing to check: forward each token as it comes instead of
        // paying the window's latency for nothing.
        let window = if plan.output.is_empty() {
            StreamWindowConfig::PASSTHROUGH
        } else {
            plan.window
        };
        // Nothing can flag an answer no guardrail sees: such a stream is
        // not watched (the watch keeps a copy of the text sent).
        let can_flag = !plan.output.is_empty() || !plan.flags.is_empty();
        let review = StreamReview::new(plan.review, plan.flags);
        let checker = ChainChecker {
            plugins: plan.output,
            info: plan.info,
            verdicts,
            review: review.clone(),
            span: tracing::Span::current(),
            windows: 0,
        };
        let mut served = Served::new(&outcome, plan.report);
        served.rate = plan.rate;
        served.prompt = plan.prompt_ref;
        served.cache = hit_header;
        let mut events = stream::guarded(outcome.value, checker, window, include_usage, ledger);
        if let Some((p, slot)) = to_store {
            events = cache::store_stream(events, self.cache.clone(), p, review.clone(), slot);
        }
        if can_flag {
            events = review::watch(events, review, self.review.clone(), ctx.clone(), req);
        }
        Ok(StreamResponse { served, events })
    }

    /// Embeddings along the model's configured routes (no guardrails: the
    /// answer is vectors, not text). Rate limits, budgets and the ledger
    /// apply as for chat.
    pub async fn embeddings(
        &self,
        ctx: &RequestCtx,
        req: EmbeddingsRequest,
    ) -> Result<EmbeddingsServed, Error> {
        let model = self.model(ctx, &req.model)?;
        let user = req.user.as_deref().or(ctx.principal.user.as_deref());
        let who = subject(ctx, user);
        let counted = model.routes.first().map_or("", |r| r.model.as_str());
        let mut tokens = None;
        let mut count = || *tokens.get_or_insert_with(|| cost::count_input(counted, &req.input));
        let rate = rate_limit::check(&self.state, &who, ctx.principal.tier, &mut count)
            .instrument(telemetry::spans::limits("rate_limit"))
            .await?;
        let mut meter = Meter::new(&self.state, &self.metrics, ctx, &req.model, user, false);
        let worst = if self.state.budgeted(&who) {
            cost::worst_case(&model.routes, count(), 0)
        } else {
            0.0
        };
        meter
            .reserve(&who, worst)
            .instrument(telemetry::spans::limits("budget"))
            .await?;
        let targets: Vec<_> = model.routes.iter().map(RouteConfig::target).collect();
        let limit = self.config.server.request_timeout();
        let walked = self
            .providers
            .embeddings(&targets, &req)
            .within(limit)
            .await;
        let outcome = match ctx.progress.walked(walked, limit) {
            Ok(o) => o,
            Err(e) => {
                meter.release().await;
                return Err(e);
            }
        };
        let guardrails = GuardReport::default();
        let answer = Answer {
            route: find_route(&model.routes, &outcome.provider, &outcome.model),
            provider: &outcome.provider,
            model: &outcome.model,
            attempts: outcome.attempts,
            usage: outcome.value.usage,
            status: RecordStatus::Ok,
            guardrails: &guardrails,
        };
        let cost = meter.settle(answer, || (count(), 0)).await?;
        let mut served = Served::new(&outcome, guardrails);
        served.rate = rate;
        served.cost_usd = Some(cost);
        Ok(EmbeddingsServed {
            served,
            response: outcome.value,
        })
    }

    /// Everything before the upstream call: prompt rendering, validation,
    /// the model (and whether the key may use it), rate limits, input
    /// guardrails, cost policy, routing, and the budget reservation for the
    /// worst case.
    async fn prepare(&self, ctx: &RequestCtx, req: &mut ChatRequest) -> Result<Plan, Error> {
        let applied = crate::prompt::apply(self.prompts.as_deref(), req).inspect_err(|e| {
            ctx.progress.prompt(e.prompt_ref().as_ref());
        })?;
        ctx.progress.prompt(applied.as_ref().map(|a| &a.prompt));
        validate(req, self.config.server.max_n)?;
        let model = self.model(ctx, &req.model)?;
        let user = req.user.clone().or_else(|| ctx.principal.user.clone());
        let who = subject(ctx, user.as_deref());
        let mut prompt = PromptTokens::new(model.routes.first().map_or("", |r| r.model.as_str()));
        let completion = cost::max_completion(req);
        let rate = rate_limit::check(&self.state, &who, ctx.principal.tier, || {
            prompt.get(req).saturating_add(completion)
        })
        .instrument(telemetry::spans::limits("rate_limit"))
        .await?;
        let set = self.plugins.current();
        let input = guard::resolve(&set, model.input_guardrails(), Phases::INPUT)?;
        let output = match &applied {
            Some(a) => guard::resolve(
                &set,
                &a.output_guardrails(model.output_guardrails()),
                Phases::OUTPUT,
            )?,
            None => guard::resolve(&set, model.output_guardrails(), Phases::OUTPUT)?,
        };
        let mut meter = Meter::new(
            &self.state,
            &self.metrics,
            ctx,
            &req.model,
            user.as_deref(),
            req.stream,
        );
        meter.plugins(input.iter().chain(&output));
        meter.prompt(applied.as_ref().map(|a| &a.prompt));
        if !output.is_empty() {
            output::drop_logprobs_request(req);
        }
        let mut info = request::request_info(ctx, req);
        info.prompt = applied.as_ref().map(|a| crate::plugin::PromptRef {
            id: a.prompt.id.clone(),
            version: a.prompt.version,
        });
        let mut info = Arc::new(info);
        let mut report = GuardReport::default();
        let mut flagged = Vec::new();
        let checked =
            guard::check_input_flagged(&input, &mut info, &mut report, &mut flagged).await;
        ctx.progress.guardrails(&report);
        if let Some(text) = checked? {
            guard::apply_input(req, text);
        }
        let mut routed = model;
        if let (Some(policy), Some(first)) = (&model.cost_policy, model.routes.first()) {
            let spends = cost::policy_spends(&self.state, &who).await?;
            let estimate = cost::estimate(first, prompt.get(req), completion);
            routed = route::apply_cost_policy(
                &set,
                policy,
                &self.config,
                model,
                &estimate,
                &spends,
                &info,
                req,
            )
            .await?;
            // The calls that saw the request are over: no copy is made.
            Arc::make_mut(&mut info).max_tokens = req.max_output_tokens();
        }
        let routes = route::order(&set, routed, &info).await?;
        let worst = if self.state.budgeted(&who) {
            cost::worst_case(&routes, prompt.get(req), cost::max_completion(req))
        } else {
            0.0
        };
        meter
            .reserve(&who, worst)
            .instrument(telemetry::spans::limits("budget"))
            .await?;
        Ok(Plan {
            info,
            routes,
            output,
            window: model.stream,
            report,
            rate,
            prompt,
            meter,
            review: model.review.clone(),
            flags: review::entries(&flagged, 0, "input"),
            prompt_ref: applied.map(|a| a.prompt),
        })
    }
}

/// A cached answer as the providers layer's outcome.
fn cache_outcome(completion: ChatCompletion) -> Outcome<ChatCompletion> {
    Outcome {
        provider: CACHE_PROVIDER.into(),
        model: completion.model.clone(),
        value: completion,
        attempts: 0,
        elapsed: Duration::ZERO,
    }
}

/// The provider name a cache hit reports (`x-sluice-provider`, ledger).
pub const CACHE_PROVIDER: &str = "cache";

/// Open `[state]` and seed the config's `[[keys]]` into it.
async fn open_state(config: &Config) -> anyhow::Result<State> {
    let state = State::open(&config.state)
        .await
        .map_err(|e| anyhow::anyhow!("opening the state: {e}"))?;
    state
        .seed_keys(&config.keys)
        .await
        .map_err(|e| anyhow::anyhow!("seeding [[keys]] into the state: {e}"))?;
    let keys = state
        .has_keys()
        .await
        .map_err(|e| anyhow::anyhow!("reading keys from the state: {e}"))?;
    if !keys {
        tracing::warn!(
            "no virtual key in [[keys]] or the state store: authentication is OFF (every caller is anonymous) until one is created"
        );
    }
    Ok(state)
}

/// Who a request is accounted to: its key, its end user, its feature.
fn subject<'a>(ctx: &'a RequestCtx, user: Option<&'a str>) -> Subject<'a> {
    Subject {
        key: ctx.principal.key.as_deref(),
        user,
        feature: ctx.feature.as_deref(),
    }
}

/// The output chain over the sandboxed plugins, for stream windows.
struct ChainChecker {
    plugins: Vec<Arc<Plugin>>,
    info: Arc<RequestInfo>,
    /// Every window's verdicts, for the ledger.
    verdicts: Arc<parking_lot::Mutex<GuardReport>>,
    review: Arc<StreamReview>,
    /// The request span: windows are checked while the body streams, after
    /// the handler (and its span scope) returned.
    span: tracing::Span,
    /// Windows checked so far.
    windows: u64,
}

impl stream::WindowChecker for ChainChecker {
    async fn check(
        &mut self,
        text: &str,
        ctx: &OutputContext,
    ) -> Result<String, (String, Rejection)> {
        self.windows += 1;
        let chain = guard::check_output_traced(
            &self.span,
            self.windows,
            &self.plugins,
            &self.info,
            text,
            ctx,
        )
        .await;
        self.verdicts.lock().record(&chain);
        if let Some(rejected) = chain.rejected {
            return Err(rejected);
        }
        let part = review::part_name(&ctx.part);
        // When this holds the answer, the stream withholds the text
        // (`stream::run_check`).
        self.review
            .flagged(review::entries(&chain.flagged, ctx.choice, &part));
        Ok(if chain.transformed.is_empty() {
            text.to_string()
        } else {
            chain.text
        })
    }

    fn held(&self) -> Option<String> {
        self.review.held()
    }

    fn withhold(&mut self, choice: u32, text: &str) {
        self.review.withhold(choice, text);
    }

    fn is_free(&self) -> bool {
        self.plugins.is_empty()
    }
}

/// Checks the gateway itself needs (the upstream validates the rest); the
/// message names the field, as OpenAI's does. `n` is bounded by
/// `server.max-n`: each choice costs upstream tokens and a guardrail pass.
fn validate(req: &ChatRequest, max_n: u32) -> Result<(), Error> {
    let invalid = |param: &str, message: String| {
        Err(Error::InvalidRequest {
            param: param.into(),
            message,
        })
    };
    if req.model.trim().is_empty() {
        return invalid("model", "`model` must not be empty".into());
    }
    if req.messages.is_empty() {
        return invalid(
            "messages",
            "`messages` must contain at least one message".into(),
        );
    }
    if let Some(t) = req.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return invalid(
            "temperature",
            format!("`temperature` must be between 0 and 2, got {t}"),
        );
    }
    if req.max_output_tokens() == Some(0) {
        return invalid("max_tokens", "`max_tokens` must be at least 1".into());
    }
    match req.extra.get("n") {
        None | Some(Value::Null) => {}
        Some(n) => match n.as_u64() {
            Some(n) if (1..=u64::from(max_n)).contains(&n) => {}
            _ => {
                return invalid(
                    "n",
                    format!("`n` must be an integer between 1 and {max_n} (server.max-n), got {n}"),
                );
            }
        },
    }
    Ok(())
}

fn find_route<'a>(
    routes: &'a [RouteConfig],
    provider: &str,
    model: &str,
) -> Option<&'a RouteConfig> {
    routes
        .iter()
        .find(|r| r.provider == provider && r.model == model)
}

#[cfg(test)]
mod tests;
