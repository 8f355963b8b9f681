//! The pipeline's seam to the response cache ([`crate::cache`]): plan and
//! look up after the budget reservation; the embeddings call of a semantic
//! lookup goes along `[cache] embeddings-model`'s routes.

use serde_json::Value;
use tracing::Instrument as _;

use super::accounting::Meter;
use super::{Gateway, RequestCtx};
use crate::cache::{Plan, Status};
use crate::config::RouteConfig;
use crate::openai::{ChatCompletion, ChatRequest, EmbeddingsRequest};
use crate::telemetry;

impl Gateway {
    /// The request's cache plan (None: its model does not cache) and the
    /// cached answer, if any. Records the decision in the metrics and on
    /// the ledger record.
    pub(super) async fn cache_lookup(
        &self,
        ctx: &RequestCtx,
        req: &ChatRequest,
        meter: &mut Meter,
    ) -> (Option<Plan>, Option<ChatCompletion>) {
        let Some(model) = self.config.models.get(&req.model) else {
            return (None, None);
        };
        let key = ctx.principal.key_id.as_deref();
        let Some(mut plan) = self
            .cache
            .plan(&model.cache, ctx.cache, &req.model, key, req)
        else {
            return (None, None);
        };
        let span = telemetry::spans::cache();
        let hit = self
            .cache
            .lookup(&mut plan, |text| self.embed_for_cache(text))
            .instrument(span.clone())
            .await;
        span.record("sluice.cache.hit", hit.is_some());
        let result = match (&hit, plan.status) {
            (Some(h), _) if h.similarity.is_some() => "hit_semantic",
            (Some(_), _) => "hit_exact",
            (None, Status::Miss) => "miss",
            (None, _) => "bypass",
        };
        self.metrics.cache(&req.model, result);
        meter.cache(Some(plan.status), hit.as_ref().map_or(0.0, |h| h.saved_usd));
        (Some(plan), hit.map(|h| h.completion))
    }

    /// The embedding of `text` by `[cache] embeddings-model`; None when it
    /// is not configured or the call fails (the lookup is then exact only).
    async fn embed_for_cache(&self, text: String) -> Option<Vec<f32>> {
        let name = self.config.cache.embeddings_model.as_deref()?;
        let model = self.config.models.get(name)?;
        let targets: Vec<_> = model.routes.iter().map(RouteConfig::target).collect();
        let req = EmbeddingsRequest {
            model: name.to_string(),
            input: Value::String(text),
            user: None,
            extra: Default::default(),
        };
        let limit = self.config.server.request_timeout();
        let outcome = match self
            .providers
            .embeddings(&targets, &req)
            .within(limit)
            .await
        {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = ?e, "cache: embedding the last user turn failed; exact lookup only");
                return None;
            }
        };
        let first = outcome.value.data.into_iter().next()?;
        serde_json::from_value::<Vec<f32>>(first.embedding).ok()
    }
}

/// A streamed answer as the client received it, assembled to be stored.
#[derive(Default)]
struct Assembled {
    head: Option<(String, u64, String)>,
    /// Per choice index: role, text, finish reason.
    choices: std::collections::BTreeMap<u32, (String, String, Option<String>)>,
    /// A delta the cache does not rebuild (tool calls, refusals, audio):
    /// such an answer is not stored.
    other: bool,
}

impl Assembled {
    fn add(&mut self, c: &crate::openai::ChatChunk) {
        self.head
            .get_or_insert_with(|| (c.id.clone(), c.created, c.model.clone()));
        for ch in &c.choices {
            let e = self.choices.entry(ch.index).or_default();
            if let Some(r) = &ch.delta.role {
                e.0.clone_from(r);
            }
            if let Some(t) = &ch.delta.content {
                e.1.push_str(t);
            }
            if ch.finish_reason.is_some() {
                e.2.clone_from(&ch.finish_reason);
            }
            self.other |= !ch.delta.extra.is_empty();
        }
    }

    fn completion(self, usage: Option<crate::openai::Usage>) -> Option<ChatCompletion> {
        let (id, created, model) = self.head?;
        if self.other || self.choices.is_empty() {
            return None;
        }
        let choices = self
            .choices
            .into_iter()
            .map(|(index, (role, text, finish))| crate::openai::Choice {
                index,
                message: crate::openai::ChatMessage::text(
                    if role.is_empty() { "assistant" } else { &role },
                    text,
                ),
                finish_reason: finish,
                extra: Default::default(),
            })
            .collect();
        Some(ChatCompletion {
            id,
            object: "chat.completion".into(),
            created,
            model,
            choices,
            usage,
            extra: Default::default(),
        })
    }
}

/// Store a streamed miss once it completed: the text the client received
/// (what passed the windows), with the upstream usage and cost the ledger
/// settled. Stored before `[DONE]` is sent, so a client that saw the end
/// of the stream finds the entry. Not stored: a stream that ended with an
/// error (a rejection, an upstream failure), one a guardrail flagged, one
/// the client left, and answers with tool calls or other non-text parts.
pub(super) fn store_stream(
    mut events: futures_util::stream::BoxStream<'static, super::StreamEvent>,
    cache: std::sync::Arc<crate::cache::ResponseCache>,
    plan: Plan,
    review: std::sync::Arc<super::review::StreamReview>,
    settled: std::sync::Arc<parking_lot::Mutex<Option<super::accounting::SettledStream>>>,
) -> futures_util::stream::BoxStream<'static, super::StreamEvent> {
    use futures_util::StreamExt;
    Box::pin(async_stream::stream! {
        let mut answer = Assembled::default();
        while let Some(e) = events.next().await {
            match &e {
                super::StreamEvent::Chunk(c) => answer.add(c),
                super::StreamEvent::Done => {
                    let done = settled.lock().take();
                    if let Some((usage, cost)) = done.filter(|_| !review.any_flag())
                        && let Some(c) = std::mem::take(&mut answer).completion(usage)
                    {
                        cache.store(&plan, &c, cost).await;
                    }
                }
                super::StreamEvent::Error(_) => {}
            }
            yield e;
        }
    })
}
