//! `[models.NAME]`: what a gateway model name means for a request (routes,
//! guardrails, router, cost policy, stream windows).

use std::time::Duration;

use serde::Deserialize;

/// `[models.NAME]`: what a client-facing model name maps to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelConfig {
    /// Ordered upstream routes: the first is tried first, the rest are
    /// fallbacks (unless a `router` plugin reorders them). Required, non-empty.
    pub routes: Vec<RouteConfig>,
    /// Guardrail plugins for both directions: each runs `check-input` before
    /// the upstream call and `check-output` on the answer (a plugin that only
    /// cares about one side passes the other). Run in the plugins' manifest
    /// `order`. Default empty.
    #[serde(default)]
    pub guardrails: Vec<String>,
    /// Overrides `guardrails` for the input side only. Default: `guardrails`.
    pub input_guardrails: Option<Vec<String>>,
    /// Overrides `guardrails` for the output side only. Default: `guardrails`.
    pub output_guardrails: Option<Vec<String>>,
    /// Router plugin that orders `routes` per request. Default unset: the
    /// configured order.
    pub router: Option<String>,
    /// Cost-policy plugin consulted before the upstream call with the
    /// principal's spend. Default unset: no policy.
    pub cost_policy: Option<String>,
    /// How a streamed answer is windowed for the output guardrails.
    #[serde(default)]
    pub stream: StreamWindowConfig,
    /// What an answer a guardrail flagged does: served and queued for
    /// review (default), or held. See [`super::review::ReviewConfig`].
    #[serde(default)]
    pub review: super::review::ReviewConfig,
    /// `[models.NAME.cache]`: whether and how answers are cached (default
    /// off); keys documented on [`crate::cache::ModelCacheConfig`].
    #[serde(default)]
    pub cache: crate::cache::ModelCacheConfig,
}

impl ModelConfig {
    pub fn input_guardrails(&self) -> &[String] {
        self.input_guardrails.as_deref().unwrap_or(&self.guardrails)
    }

    pub fn output_guardrails(&self) -> &[String] {
        self.output_guardrails
            .as_deref()
            .unwrap_or(&self.guardrails)
    }

    /// Every plugin name this model depends on (for readiness).
    pub fn plugin_names(&self) -> impl Iterator<Item = &str> {
        self.input_guardrails()
            .iter()
            .chain(self.output_guardrails())
            .map(String::as_str)
            .chain(self.router.as_deref())
            .chain(self.cost_policy.as_deref())
    }
}

/// One `{ provider, model, … }` entry of `routes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteConfig {
    /// Name of a `[[providers]]` entry. Required.
    pub provider: String,
    /// The model name sent upstream. Required.
    pub model: String,
    /// Per-attempt timeout in ms. Default: the provider's.
    pub timeout_ms: Option<u64>,
    /// Streams only: time-to-first-byte timeout in ms. Default: the provider's.
    pub ttfb_timeout_ms: Option<u64>,
    /// Streams only: the longest the stream may last, in ms. Default: the
    /// provider's `max-stream-duration-ms`.
    pub max_stream_duration_ms: Option<u64>,
    /// Tier label (`cheap`, `mid`, `expensive`) handed to router plugins.
    pub tier: Option<String>,
    /// USD per million prompt tokens, for cost estimates and the ledger.
    /// Default: the upstream model's price in the shipped price table
    /// (`host/data/prices.toml`), else 0.
    pub input_cost_per_mtok: Option<f64>,
    /// USD per million prompt tokens read from the provider's prompt cache.
    /// Default: the table's, or `input-cost-per-mtok` when that is set here.
    pub cached_input_cost_per_mtok: Option<f64>,
    /// USD per million completion tokens (reasoning tokens included).
    /// Default: the table's price, else 0.
    pub output_cost_per_mtok: Option<f64>,
    /// Context window in tokens, handed to router plugins. Default 128000.
    #[serde(default = "default_context_window")]
    pub context_window: u32,
}

fn default_context_window() -> u32 {
    128_000
}

impl RouteConfig {
    /// The provider-layer view of this route.
    pub fn target(&self) -> crate::provider::RouteTarget {
        crate::provider::RouteTarget {
            provider: self.provider.clone(),
            model: self.model.clone(),
            timeout: self.timeout_ms.map(Duration::from_millis),
            ttfb_timeout: self.ttfb_timeout_ms.map(Duration::from_millis),
            max_stream_duration: self.max_stream_duration_ms.map(Duration::from_millis),
        }
    }
}

/// `[models.NAME.stream]`: the guardrail window for streamed answers.
///
/// Latency trade-off: the client sees nothing of a window until the whole
/// window has arrived and passed the chain, so a bigger window means later
/// (burstier) tokens but fewer plugin calls and more context per check.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct StreamWindowConfig {
    /// `sentence` (default): close a window at the last sentence end
    /// (`.`/`!`/`?` followed by whitespace, or a newline). `chars`: close it
    /// once it holds `chars` characters.
    pub mode: WindowMode,
    /// Window size for `chars` mode. Default 64. The window is cut after
    /// the last whitespace (the partial word waits for the next window),
    /// unless that word is itself longer than half the size.
    pub chars: usize,
    /// Upper bound on held-back text in either mode: a window closes at this
    /// many characters even without a sentence end, cut at whitespace as in
    /// `chars` mode. Default 512.
    pub max_hold_chars: usize,
    /// How much already-emitted text each window carries as context
    /// (`output-context.emitted`): its last `context-chars` characters.
    /// Every output guardrail receives this context on every window, so a
    /// whole-answer context made a long stream's cost quadratic (each
    /// window re-sent everything before it); the tail keeps it linear.
    /// Default 20000: what length-check's default `max-chars` needs to
    /// measure a stream exactly (a guardrail judging the whole answer sees
    /// at most this much of it, so keep it at least as high as such a
    /// limit); below it, the context is the whole emitted text, as before.
    pub context_chars: usize,
    /// How many characters at the end of the text already sent are checked
    /// again at the start of the next window (the seam overlap), so an
    /// entity split across two windows (a card number written in groups,
    /// a name and a phone number) is seen whole. The overlap starts at a
    /// word boundary inside these last characters. Default 64; 0 turns it
    /// off. Cost: each window check handles up to this many more
    /// characters. See [`crate::pipeline::stream`] for what a transform of
    /// the overlap does.
    pub overlap_chars: usize,
}

impl StreamWindowConfig {
    /// Forward every piece as it comes: for a stream with no output
    /// guardrail (nothing to check, so no reason to hold text back).
    pub const PASSTHROUGH: Self = Self {
        mode: WindowMode::Chars,
        chars: 1,
        max_hold_chars: 1,
        context_chars: 0,
        overlap_chars: 0,
    };
}

impl Default for StreamWindowConfig {
    fn default() -> Self {
        Self {
            mode: WindowMode::Sentence,
            chars: 64,
            max_hold_chars: 512,
            context_chars: 20_000,
            overlap_chars: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WindowMode {
    #[default]
    Sentence,
    Chars,
}
