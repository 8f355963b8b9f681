//! The pipeline's seam to the response cache ([`crate::cache`]): plan and
//! look up after the budget reservation; the embeddings call of a semantic
//! lookup goes along `[cache] embeddings-model`'s routes.

use serde_json::Value;

use super::accounting::Meter;
use super::{Gateway, RequestCtx};
use crate::cache::{Plan, Status};
use crate::config::RouteConfig;
use crate::openai::{ChatCompletion, ChatRequest, EmbeddingsRequest};

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
        let hit = self
            .cache
            .lookup(&mut plan, |text| self.embed_for_cache(text))
            .await;
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
