//! The one TOML config file: server, plugins, providers, models, keys.
//!
//! Loading is three passes over a span-preserving parse so every problem is
//! reported with its `file:line:col`, all at once:
//! 1. syntax (every TOML error, not just the first);
//! 2. `${ENV}` interpolation in every string value (an unset variable is an
//!    error naming it; `$${` is a literal `${`);
//! 3. each section and each array/table entry deserialized on its own
//!    (unknown keys are errors), then cross-references checked
//!    ([`validate`]): routes naming unknown providers, duplicate names, …
//!
//! Every key, its default and why it exists is documented on the fields
//! below; `examples/sluice.toml` is the commented example the demo runs.

mod source;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::plugin::RuntimeConfig;
use crate::provider::{BreakerConfig, ProviderConfig, RetryConfig};
pub use crate::state::StateConfig;
pub use source::{ConfigErrors, Problem};
use source::{Seg, Source};

/// The whole config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[plugins]`: the plugin runtime's settings (directory, hot reload,
    /// pools); keys documented on [`RuntimeConfig`].
    pub plugins: RuntimeConfig,
    /// `[[providers]]`: upstreams, keys documented on [`ProviderConfig`].
    pub providers: Vec<ProviderConfig>,
    /// `[retry]`: default retry policy for every provider (a provider entry
    /// may override it).
    pub retry: RetryConfig,
    /// `[breaker]`: default circuit-breaker policy per upstream.
    pub breaker: BreakerConfig,
    /// `[models.NAME]`: the gateway model names clients send in `model`.
    pub models: BTreeMap<String, ModelConfig>,
    /// `[[keys]]`: virtual API keys. **No keys configured = auth is off**
    /// (every request is anonymous), which suits a local demo only.
    pub keys: Vec<KeyConfig>,
    /// `[state]`: ledger, budgets, virtual keys and rate limits; keys
    /// documented on [`StateConfig`].
    pub state: StateConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8080` (loopback: exposing a
    /// gateway holding provider keys must be a deliberate choice).
    pub listen: SocketAddr,
    /// Largest accepted request body in KiB; bigger bodies get 413.
    /// Default 1024 (1 MiB): ample for chat, stops accidental uploads.
    pub body_limit_kb: usize,
    /// Wall-clock cap in ms on one request's whole upstream phase (all
    /// retries and fallbacks; for streams, until the first chunk). Exceeding
    /// it answers 504. Default 120000. Per-attempt timeouts are the route's
    /// `timeout-ms` or the provider's own.
    pub request_timeout_ms: u64,
    /// Secret for the admin endpoints (`/admin/*`, `Authorization: Bearer`).
    /// Default unset = admin endpoints are disabled (404).
    pub admin_key: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_kb: 1024,
            request_timeout_ms: 120_000,
            admin_key: None,
        }
    }
}

impl ServerConfig {
    pub fn body_limit_bytes(&self) -> usize {
        self.body_limit_kb.saturating_mul(1024)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

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
    /// Window size for `chars` mode. Default 64.
    pub chars: usize,
    /// Upper bound on held-back text in either mode: a window closes at this
    /// many characters even without a sentence end. Default 512.
    pub max_hold_chars: usize,
}

impl Default for StreamWindowConfig {
    fn default() -> Self {
        Self {
            mode: WindowMode::Sentence,
            chars: 64,
            max_hold_chars: 512,
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

/// `[[keys]]`: one virtual API key clients send as `Authorization: Bearer KEY`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeyConfig {
    /// Stable id shown to plugins (`api-key-id`) and in logs; never the secret.
    pub id: String,
    /// The secret; use `${ENV}` rather than writing it into the file.
    pub key: String,
    /// Owner; the request's `user` when the client sends none.
    pub user: Option<String>,
    /// Spend budget in USD per calendar month for this key, handed to the
    /// model's cost policy. Default unset: no budget.
    pub budget_usd: Option<f64>,
}

/// Top-level keys, each deserialized on its own.
const SECTIONS: &[&str] = &[
    "server",
    "plugins",
    "providers",
    "retry",
    "breaker",
    "models",
    "keys",
    "state",
];

impl Config {
    /// Read and validate a config file; `${ENV}` from the process environment.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config {}: {e}", path.display()))?;
        let mut config = Self::parse(&path.display().to_string(), &text, &|k| {
            std::env::var(k).ok()
        })?;
        // `[state] dir` is relative to the config file, not the cwd.
        let base = path.parent().unwrap_or(Path::new("."));
        config.state.resolve_dir(base);
        Ok(config)
    }

    /// Parse and validate `text`; `origin` prefixes every location.
    pub fn parse(
        origin: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let mut src = Source::new(origin, text);
        let Some(mut root) = source::parse(&mut src) else {
            src.problems.sort_by_key(|p| p.offset);
            return Err(ConfigErrors(src.problems));
        };
        for (k, v) in root.get_mut().iter_mut() {
            source::interpolate_env(&mut src, v, &mut k.get_ref().to_string(), env);
        }
        let table = root.get_ref();
        for (k, _) in table.iter() {
            if !SECTIONS.contains(&k.get_ref().as_ref()) {
                let msg = format!("unknown section, expected one of: {}", SECTIONS.join(", "));
                src.report(Some(k.span()), k.get_ref().to_string(), msg);
            }
        }

        let server = section(&mut src, table.get("server"), "server");
        let plugins = section(&mut src, table.get("plugins"), "plugins");
        let retry = section(&mut src, table.get("retry"), "retry");
        let breaker = section(&mut src, table.get("breaker"), "breaker");
        let state = section(&mut src, table.get("state"), "state");
        let providers = array(&mut src, table.get("providers"), "providers");
        let keys = array(&mut src, table.get("keys"), "keys");
        let mut models = BTreeMap::new();
        match table.get("models").map(|v| (v, v.get_ref())) {
            None => {}
            Some((_, toml::de::DeValue::Table(t))) => {
                for (name, v) in t.iter() {
                    let path = [Seg::Key("models"), Seg::Key(name.get_ref())];
                    if let Some(m) = src.section::<ModelConfig>(v, &path) {
                        models.insert(name.get_ref().to_string(), m);
                    }
                }
            }
            Some((v, other)) => src.report(
                Some(v.span()),
                "models".into(),
                format!("expected a table of models, found {}", other.type_str()),
            ),
        }

        let config = Config {
            server: server.unwrap_or_default(),
            plugins: plugins.unwrap_or_default(),
            providers,
            retry: retry.unwrap_or_default(),
            breaker: breaker.unwrap_or_default(),
            models,
            keys,
            state: state.unwrap_or_default(),
        };
        validate::check(&config, &root, &mut src);
        if src.problems.is_empty() {
            Ok(config)
        } else {
            src.problems.sort_by_key(|p| p.offset);
            Err(ConfigErrors(src.problems))
        }
    }

    /// Every plugin name the models reference (guardrails, routers, cost
    /// policies), deduplicated and sorted.
    pub fn referenced_plugins(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .models
            .values()
            .flat_map(|m| m.plugin_names().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A table section; absent = its defaults.
fn section<T: serde::de::DeserializeOwned>(
    src: &mut Source<'_>,
    value: Option<&toml::Spanned<toml::de::DeValue<'_>>>,
    name: &str,
) -> Option<T> {
    src.section(value?, &[Seg::Key(name)])
}

/// An array-of-tables section, each entry deserialized on its own.
fn array<T: serde::de::DeserializeOwned>(
    src: &mut Source<'_>,
    value: Option<&toml::Spanned<toml::de::DeValue<'_>>>,
    name: &str,
) -> Vec<T> {
    let Some(value) = value else {
        return Vec::new();
    };
    let Some(items) = value.get_ref().as_array() else {
        let msg = format!("expected an array of tables (`[[{name}]]`)");
        src.report(Some(value.span()), name.to_string(), msg);
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| src.section(item, &[Seg::Key(name), Seg::Index(i)]))
        .collect()
}

#[cfg(test)]
mod tests;
