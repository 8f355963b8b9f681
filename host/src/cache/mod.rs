//! The response cache: answers already paid for, served again without an
//! upstream call, exact or by meaning, on the state layer (sled, or Redis
//! shared by several gateways).
//!
//! Where it sits in a request ([`crate::pipeline`]): looked up after the
//! input guardrails, the cost policy, routing and the budget reservation;
//! a hit then goes through the same output path as an upstream answer (the
//! **current** output guardrails, a stream's windows, the review queue), so
//! a guardrail swapped in since the answer was stored applies to it. Stored
//! after the output guardrails passed a complete answer: never an answer a
//! guardrail rejected or flagged, never an error or a partial stream.
//!
//! - [`key`]: what makes two requests the same (exact key, semantic
//!   partition).
//! - [`exact`]: answers in the store, TTL, the size bound.
//! - [`semantic`]: the vector index, persisted per partition.
//! - [`replay`]: a cached answer as a stream.
//! - [`config`]: `[cache]` and `[models.NAME.cache]`.
//!
//! **Tenancy**: by default (`[cache] scope = "key"`) an entry is only
//! served to the virtual key whose request stored it; `scope = "shared"`
//! shares entries between keys (one tenant per gateway).
//!
//! **Per request**: `Cache-Control: no-cache` skips the lookup but stores
//! the fresh answer; `no-store` does neither; `x-sluice-cache: off | exact
//! | semantic` lowers the model's mode for this request (never raises it).
//! Responses carry `x-sluice-cache: hit | miss | bypass` (none when the
//! model does not cache) and `x-sluice-cache-similarity` on semantic hits.

pub mod config;
pub mod exact;
pub mod key;
pub mod replay;
pub mod semantic;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::openai::{ChatCompletion, ChatRequest};
use crate::state::store::{Result, Store};

pub use config::{CacheConfig, Mode, ModelCacheConfig, Scope};
use exact::{Answers, Entry};
use semantic::Index;

/// The namespace naming each partition's log and model (for purges).
const PARTS_NS: &str = "cache-parts";

/// The response header.
pub const HEADER: &str = "x-sluice-cache";
/// The response header of a semantic hit's cosine similarity.
pub const SIMILARITY_HEADER: &str = "x-sluice-cache-similarity";

/// What a request's headers ask of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directive {
    /// `Cache-Control: no-cache`: skip the lookup, store the answer.
    pub no_cache: bool,
    /// `Cache-Control: no-store`: neither look up nor store.
    pub no_store: bool,
    /// `x-sluice-cache`: at most this mode.
    pub mode: Option<Mode>,
}

impl Directive {
    /// From `Cache-Control` and `x-sluice-cache` (unknown values ignored).
    pub fn from_headers(cache_control: Option<&str>, mode: Option<&str>) -> Self {
        let mut d = Directive {
            mode: mode.and_then(Mode::parse),
            ..Directive::default()
        };
        for token in cache_control.unwrap_or("").split(',') {
            match token.trim().to_ascii_lowercase().as_str() {
                "no-cache" => d.no_cache = true,
                "no-store" => d.no_store = true,
                _ => {}
            }
        }
        d
    }
}

/// What the cache did for a request (`x-sluice-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Hit,
    Miss,
    /// The model caches, but not this request (not deterministic, a
    /// directive, or the store failed).
    Bypass,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Hit => "hit",
            Status::Miss => "miss",
            Status::Bypass => "bypass",
        }
    }
}

/// The cache's time: the system clock, which tests may move forward
/// (entry expiry is checked against it, not only by the store's TTL).
#[derive(Debug, Default)]
pub struct Clock {
    skew_ms: AtomicU64,
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        crate::state::now_ms().saturating_add(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Move this cache's time forward by `d` (tests of expiry).
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.skew_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// One request's cache decisions, from [`ResponseCache::plan`] to the
/// store after the answer.
#[derive(Debug)]
pub struct Plan {
    model: String,
    lookup: bool,
    store: bool,
    ttl: Duration,
    exact_key: String,
    semantic: Option<SemanticPlan>,
    /// What the header says (final after [`ResponseCache::lookup`]).
    pub status: Status,
    /// Set on a semantic hit.
    pub similarity: Option<f32>,
}

#[derive(Debug)]
struct SemanticPlan {
    log: String,
    text: String,
    threshold: f32,
    /// The embedded last turn, kept from the lookup for the store.
    vector: Option<Vec<f32>>,
}

impl Plan {
    /// The semantic lookup's text (the last user turn), if any.
    pub fn semantic_text(&self) -> Option<&str> {
        self.semantic.as_ref().map(|s| s.text.as_str())
    }
}

/// A cached answer found for a request.
#[derive(Debug)]
pub struct Hit {
    pub completion: ChatCompletion,
    /// What the original upstream call cost.
    pub saved_usd: f64,
    pub similarity: Option<f32>,
}

/// Counters since start (`sluice cache stats`, `/admin/cache`).
#[derive(Debug, Default)]
struct Counters {
    exact_hits: AtomicU64,
    semantic_hits: AtomicU64,
    misses: AtomicU64,
    bypasses: AtomicU64,
    stores: AtomicU64,
    saved_nusd: AtomicU64,
}

/// What `sluice cache stats` and `GET /admin/cache` report.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Stats {
    pub backend: String,
    /// Live entries (sled: exact; Redis: a `SCAN` of the namespace).
    pub entries: u64,
    pub max_entries: usize,
    /// Vectors this gateway holds in memory (partitions it searched).
    pub vectors: u64,
    /// Since this gateway started (the ledger has the history).
    pub exact_hits: u64,
    pub semantic_hits: u64,
    pub misses: u64,
    pub bypasses: u64,
    pub stores: u64,
    pub saved_usd: f64,
}

/// The response cache over the gateway's state store.
pub struct ResponseCache {
    config: CacheConfig,
    store: Arc<dyn Store>,
    answers: Answers,
    index: Index,
    clock: Clock,
    counters: Counters,
}

impl ResponseCache {
    pub fn new(store: Arc<dyn Store>, config: CacheConfig) -> Self {
        Self {
            answers: Answers::new(store.clone(), config.max_entries),
            index: Index::new(store.clone(), config.exact_search_below),
            store,
            config,
            clock: Clock::default(),
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// What to do for `req` (after the pipeline's rewrites) to gateway
    /// model `model` from key `key_id`; None when the model does not cache
    /// (no header either).
    pub fn plan(
        &self,
        cfg: &ModelCacheConfig,
        directive: Directive,
        model: &str,
        key_id: Option<&str>,
        req: &ChatRequest,
    ) -> Option<Plan> {
        if cfg.mode == Mode::Off {
            return None;
        }
        let mode = directive.mode.map_or(cfg.mode, |m| m.min(cfg.mode));
        let eligible = mode != Mode::Off
            && !directive.no_store
            && (!cfg.deterministic_only || key::deterministic(req));
        let scope = match self.config.scope {
            Scope::Shared => "*".to_string(),
            Scope::Key => key_id.unwrap_or("-").to_string(),
        };
        let semantic = (eligible
            && mode == Mode::Semantic
            && self.config.embeddings_model.is_some()
            && key::user_turns(req) <= cfg.semantic_max_turns
            && (cfg.semantic_with_tools || !key::has_tools(req)))
        .then(|| key::partition(model, req))
        .flatten()
        .map(|(partition, text)| SemanticPlan {
            log: semantic::log_name(&scope, &partition),
            text,
            threshold: cfg.similarity,
            vector: None,
        });
        let lookup = eligible && !directive.no_cache;
        Some(Plan {
            model: model.to_string(),
            exact_key: exact::store_key(model, &scope, &key::exact(model, req)),
            lookup,
            store: eligible,
            ttl: cfg.ttl(),
            semantic,
            status: if lookup { Status::Miss } else { Status::Bypass },
            similarity: None,
        })
    }

    /// Look `plan` up: the exact key, then (semantic mode) the nearest
    /// stored question of the partition, embedded by `embed`. A store
    /// failure is a bypass, never the request's failure.
    pub async fn lookup<F, Fut>(&self, plan: &mut Plan, embed: F) -> Option<Hit>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Option<Vec<f32>>>,
    {
        if !plan.lookup {
            self.counters.bypasses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let found = self.find(plan, embed).await;
        let hit = match found {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "cache lookup failed; calling the upstream");
                plan.status = Status::Bypass;
                self.counters.bypasses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let c = &self.counters;
        match &hit {
            Some(h) => {
                plan.status = Status::Hit;
                plan.similarity = h.similarity;
                let n = if h.similarity.is_some() {
                    &c.semantic_hits
                } else {
                    &c.exact_hits
                };
                n.fetch_add(1, Ordering::Relaxed);
                let nusd = crate::state::store::to_nanos(h.saved_usd);
                c.saved_nusd
                    .fetch_add(u64::try_from(nusd).unwrap_or(0), Ordering::Relaxed);
            }
            None => {
                c.misses.fetch_add(1, Ordering::Relaxed);
            }
        }
        hit
    }

    async fn find<F, Fut>(&self, plan: &mut Plan, embed: F) -> Result<Option<Hit>>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Option<Vec<f32>>>,
    {
        let now = self.clock.now_ms();
        if let Some(e) = self.answers.get(&plan.exact_key, now).await? {
            return Ok(Some(Hit {
                completion: e.completion,
                saved_usd: e.cost_usd,
                similarity: None,
            }));
        }
        let Some(sem) = plan.semantic.as_mut() else {
            return Ok(None);
        };
        let Some(v) = embed(sem.text.clone()).await.and_then(semantic::normalise) else {
            return Ok(None);
        };
        let nearest = self.index.nearest(&sem.log, &v, now).await?;
        sem.vector = Some(v);
        let Some((key, similarity)) = nearest.filter(|(_, s)| *s >= sem.threshold) else {
            return Ok(None);
        };
        match self.answers.get(&key, now).await? {
            Some(e) => Ok(Some(Hit {
                completion: e.completion,
                saved_usd: e.cost_usd,
                similarity: Some(similarity),
            })),
            None => {
                self.index.forget(&sem.log, &key).await;
                Ok(None)
            }
        }
    }

    /// Store a complete answer that passed the output guardrails (and was
    /// not flagged), which cost `cost_usd` upstream. Failures are logged.
    pub async fn store(&self, plan: &Plan, completion: &ChatCompletion, cost_usd: f64) {
        if !plan.store || plan.status == Status::Hit {
            return;
        }
        if let Err(e) = self.put(plan, completion, cost_usd).await {
            tracing::warn!(error = %e, "storing an answer in the cache failed");
        }
    }

    async fn put(&self, plan: &Plan, completion: &ChatCompletion, cost_usd: f64) -> Result<()> {
        let now = self.clock.now_ms();
        let ttl_ms = u64::try_from(plan.ttl.as_millis()).unwrap_or(u64::MAX);
        let entry = Entry {
            completion: completion.clone(),
            cost_usd,
            created_ms: now,
            expires_ms: now.saturating_add(ttl_ms),
        };
        self.answers.put(&plan.exact_key, &entry, now).await?;
        self.counters.stores.fetch_add(1, Ordering::Relaxed);
        if let Some(sem) = &plan.semantic
            && let Some(v) = &sem.vector
        {
            self.store
                .put(PARTS_NS, &sem.log, plan.model.as_bytes(), Some(plan.ttl))
                .await?;
            self.index
                .add(&sem.log, &plan.exact_key, entry.expires_ms, v, now)
                .await?;
        }
        Ok(())
    }

    /// Delete entries of gateway model `model` and/or virtual key `key`
    /// (None: all); how many answers went. Vectors of the partitions
    /// concerned go too.
    pub async fn purge(&self, model: Option<&str>, key: Option<&str>) -> Result<u64> {
        let n = self.answers.purge(model, key).await?;
        let scope = key.map(|k| format!("cache-vec|{}|", exact::escape(k)));
        let logs: Vec<String> = self
            .store
            .scan(PARTS_NS, "", 100_000)
            .await?
            .into_iter()
            .filter(|(log, m)| {
                model.is_none_or(|x| x.as_bytes() == m.as_slice())
                    && scope.as_deref().is_none_or(|s| log.starts_with(s))
            })
            .map(|(log, _)| log)
            .collect();
        self.index.purge(&logs).await?;
        for log in &logs {
            self.store.delete(PARTS_NS, log).await?;
        }
        Ok(n)
    }

    pub async fn stats(&self) -> Result<Stats> {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Ok(Stats {
            backend: self.store.backend().to_string(),
            entries: self.answers.count().await?,
            max_entries: self.config.max_entries,
            vectors: self.index.vectors().await as u64,
            exact_hits: get(&c.exact_hits),
            semantic_hits: get(&c.semantic_hits),
            misses: get(&c.misses),
            bypasses: get(&c.bypasses),
            stores: get(&c.stores),
            saved_usd: crate::state::store::to_usd(get(&c.saved_nusd) as i64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_read_cache_control_and_the_mode_header() {
        let d = Directive::from_headers(Some("max-age=0, No-Cache"), Some("exact"));
        assert!(d.no_cache && !d.no_store);
        assert_eq!(d.mode, Some(Mode::Exact));
        let d = Directive::from_headers(Some("no-store"), Some("bogus"));
        assert!(d.no_store && d.mode.is_none());
    }

    async fn sled(dir: &std::path::Path, config: CacheConfig) -> ResponseCache {
        let state = crate::state::State::open(&crate::state::StateConfig {
            dir: dir.to_path_buf(),
            warm_tokenizer: false,
            ..Default::default()
        })
        .await
        .unwrap();
        ResponseCache::new(state.store().clone(), config)
    }

    fn chat(text: &str) -> ChatRequest {
        serde_json::from_value(serde_json::json!({
            "model": "m", "temperature": 0, "messages": [{"role": "user", "content": text}]
        }))
        .unwrap()
    }

    fn answer(text: &str) -> ChatCompletion {
        serde_json::from_value(serde_json::json!({
            "id": "c1", "model": "up", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text}}]
        }))
        .unwrap()
    }

    async fn no_embedding(_: String) -> Option<Vec<f32>> {
        None
    }

    #[tokio::test]
    async fn entries_expire_on_the_cache_clock_and_the_lru_bound_holds() {
        let dir = tempfile::tempdir().unwrap();
        let config = CacheConfig {
            max_entries: 2,
            ..CacheConfig::default()
        };
        let cache = sled(dir.path(), config).await;
        let cfg = ModelCacheConfig {
            mode: Mode::Exact,
            ttl_secs: 60,
            ..ModelCacheConfig::default()
        };
        let plan = |t: &str| {
            cache
                .plan(&cfg, Directive::default(), "m", None, &chat(t))
                .unwrap()
        };
        let mut p = plan("a");
        assert!(cache.lookup(&mut p, no_embedding).await.is_none());
        assert_eq!(p.status, Status::Miss);
        cache.store(&p, &answer("A"), 0.25).await;
        let mut p = plan("a");
        let hit = cache.lookup(&mut p, no_embedding).await.unwrap();
        assert_eq!(p.status, Status::Hit);
        assert_eq!(hit.completion.choices[0].message.content_text(), "A");
        assert_eq!(hit.saved_usd, 0.25);

        // b and c pass the bound of 2: a (touched before b) is not the
        // least recently used, b is... until a is touched again.
        cache.store(&plan("b"), &answer("B"), 0.0).await;
        let mut p = plan("a");
        assert!(cache.lookup(&mut p, no_embedding).await.is_some());
        cache.store(&plan("c"), &answer("C"), 0.0).await;
        assert_eq!(cache.stats().await.unwrap().entries, 2);
        assert!(
            cache.lookup(&mut plan("b"), no_embedding).await.is_none(),
            "evicted"
        );
        assert!(cache.lookup(&mut plan("a"), no_embedding).await.is_some());

        cache.clock().advance(Duration::from_secs(60));
        assert!(
            cache.lookup(&mut plan("a"), no_embedding).await.is_none(),
            "expired"
        );
        let s = cache.stats().await.unwrap();
        assert_eq!((s.exact_hits, s.misses, s.stores), (3, 3, 3));
    }

    #[tokio::test]
    async fn a_request_lowers_the_mode_but_never_raises_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = sled(dir.path(), CacheConfig::default()).await;
        let req = chat("hi");
        let exact = ModelCacheConfig {
            mode: Mode::Exact,
            ..ModelCacheConfig::default()
        };
        let semantic = Directive {
            mode: Some(Mode::Semantic),
            ..Directive::default()
        };
        let p = cache.plan(&exact, semantic, "m", None, &req).unwrap();
        assert!(p.lookup && p.semantic.is_none(), "exact stays exact");
        let off = Directive {
            mode: Some(Mode::Off),
            ..Directive::default()
        };
        let p = cache.plan(&exact, off, "m", None, &req).unwrap();
        assert_eq!(p.status, Status::Bypass);
        assert!(!p.store);
        assert!(
            cache
                .plan(&ModelCacheConfig::default(), semantic, "m", None, &req)
                .is_none(),
            "a model that does not cache"
        );
        let sampled: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}]
        }))
        .unwrap();
        let p = cache
            .plan(&exact, Directive::default(), "m", None, &sampled)
            .unwrap();
        assert_eq!(p.status, Status::Bypass, "deterministic-only");
        let a = cache
            .plan(&exact, Directive::default(), "m", Some("k1"), &req)
            .unwrap();
        let b = cache
            .plan(&exact, Directive::default(), "m", Some("k2"), &req)
            .unwrap();
        assert_ne!(a.exact_key, b.exact_key, "scoped by key by default");
    }
}
