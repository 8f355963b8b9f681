//! `[cache]` (gateway-wide) and `[models.NAME.cache]` (per model).

use std::time::Duration;

use serde::Deserialize;

/// How a model's answers are cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Never looked up, never stored.
    #[default]
    Off,
    /// Identical requests (see [`super::key`]) get the stored answer.
    Exact,
    /// Exact, then the nearest stored question by meaning within the same
    /// conversation prefix.
    Semantic,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "off" => Self::Off,
            "exact" => Self::Exact,
            "semantic" => Self::Semantic,
            _ => return None,
        })
    }
}

/// Whether entries are shared between virtual keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Each key sees only the answers its own requests stored (default):
    /// one tenant's answer, possibly about its own data, never reaches
    /// another.
    #[default]
    Key,
    /// Every key shares every entry: more hits, for gateways whose keys
    /// all belong to one tenant.
    Shared,
}

/// `[cache]`: the store bound, tenancy and the semantic index. Nothing is
/// cached unless a model turns it on (`[models.NAME.cache] mode`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct CacheConfig {
    /// Most entries kept on sled; the least recently used go first. Each
    /// entry is the answer's JSON (plus its vector for semantic entries,
    /// 4 bytes per dimension). Default 10000. On Redis the bound is
    /// Redis's own: set `maxmemory` with `maxmemory-policy volatile-lru`
    /// (every cache entry has a TTL, budgets and keys do not, so only
    /// cache entries are evicted).
    pub max_entries: usize,
    /// Who shares entries (`key` default, or `shared`).
    pub scope: Scope,
    /// The gateway model (`[models.NAME]`, whose routes serve
    /// `/v1/embeddings`) that embeds the last user turn for semantic
    /// lookups. Required when any model uses `mode = "semantic"`. Each
    /// semantic lookup costs one embeddings call (not in the ledger).
    pub embeddings_model: Option<String>,
    /// Entries per partition below which the nearest neighbour is found by
    /// an exact scan (a dot product over every stored vector); from this
    /// size on an HNSW graph answers instead. Default 20000 (the scan's
    /// p50 at 10k x 256 dims is ~0.3 ms; see bench/README.md).
    pub exact_search_below: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            scope: Scope::Key,
            embeddings_model: None,
            exact_search_below: 20_000,
        }
    }
}

/// `[models.NAME.cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ModelCacheConfig {
    /// `off` (default), `exact` or `semantic`. A request may lower it
    /// (`x-sluice-cache`), never raise it.
    pub mode: Mode,
    /// How long an entry answers, seconds. Default 3600.
    pub ttl_secs: u64,
    /// Cache only requests that ask for a repeatable answer (temperature 0
    /// or a `seed`). Default true: a sampled answer replayed would hide the
    /// variety the client asked for.
    pub deterministic_only: bool,
    /// Cosine similarity a semantic hit needs, 0..=1. Default 0.95.
    pub similarity: f32,
    /// Semantic lookups only for conversations with at most this many user
    /// turns (longer ones use exact matching only). Default 1: in
    /// multi-turn traffic the last turn ("and in Python?") means little
    /// without the rest, which must then match exactly anyway.
    pub semantic_max_turns: usize,
    /// Semantic lookups also for requests with tools. Default false:
    /// agentic answers (tool calls) depend on details a paraphrase loses.
    pub semantic_with_tools: bool,
}

impl Default for ModelCacheConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            ttl_secs: 3600,
            deterministic_only: true,
            similarity: 0.95,
            semantic_max_turns: 1,
            semantic_with_tools: false,
        }
    }
}

impl ModelCacheConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }
}
