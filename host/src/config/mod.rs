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
//! [`Config::load`] (what both `sluice serve` and `sluice config check`
//! use) adds what only the file system can tell: the plugin directory must
//! exist and be a directory. So `config check` refuses every config
//! `serve` would, with the same `file:line:col`, before any plugin is
//! compiled.
//!
//! Each subsystem owns its section's type, every key documented with its
//! default and cost: [`ServerConfig`] and [`KeyConfig`] (`server::config`),
//! [`ModelConfig`] (`pipeline::config`), [`PluginsConfig`] (`plugin`),
//! [`ProviderConfig`], [`RetryConfig`], [`BreakerConfig`]
//! (`provider::config`). This module only loads and cross-checks them;
//! `examples/sluice.toml` is the commented example the demo runs.

mod source;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

pub use crate::cache::CacheConfig;
pub use crate::eval::EvalsConfig;
pub use crate::pipeline::config::{ModelConfig, RouteConfig, StreamWindowConfig, WindowMode};
use crate::plugin::PluginsConfig;
pub use crate::prompt::PromptsConfig;
use crate::provider::{BreakerConfig, ProviderConfig, RetryConfig};
pub use crate::reqlog::RequestLogConfig;
pub use crate::server::config::{KeyConfig, ServerConfig};
pub use crate::state::StateConfig;
pub use crate::telemetry::TelemetryConfig;
pub use source::{ConfigErrors, Problem};
use source::{Seg, Source};

/// The whole config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[plugins]`: the plugin runtime's settings (directory, hot reload,
    /// pools); keys documented on [`PluginsConfig`].
    pub plugins: PluginsConfig,
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
    /// `[prompts]`: the prompt registry; keys documented on [`PromptsConfig`].
    pub prompts: PromptsConfig,
    /// `[evals]`: eval runner defaults and result retention; keys
    /// documented on [`EvalsConfig`].
    pub evals: EvalsConfig,
    /// `[cache]`: the response cache's bound, tenancy and semantic index;
    /// keys documented on [`CacheConfig`] (models opt in with
    /// `[models.NAME.cache]`).
    pub cache: CacheConfig,
    /// `[telemetry]`: trace export (OTLP); keys documented on
    /// [`TelemetryConfig`]. Default: no exporter.
    pub telemetry: TelemetryConfig,
    /// `[request-log]`: the per-request JSON-lines log; keys documented on
    /// [`RequestLogConfig`].
    pub request_log: RequestLogConfig,
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
    "prompts",
    "evals",
    "cache",
    "telemetry",
    "request-log",
];

impl Config {
    /// Read and validate a config file; `${ENV}` from the process
    /// environment; paths checked against the file system.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config {}: {e}", path.display()))?;
        let env = |k: &str| std::env::var(k).ok();
        // `[state] dir` and `[prompts] dir` are relative to the config
        // file, not the cwd.
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Self::parse_with(
            &path.display().to_string(),
            &text,
            &env,
            Checks::Paths(base),
        )?;
        config.state.resolve_dir(base);
        config.prompts.resolve_dir(base);
        config.request_log.resolve_dir(base, &config.state.dir);
        // The compile cache lives with the rest of the gateway's data.
        config.plugins.resolve_cache_dir(&config.state.dir);
        // No plugin may be granted the directory holding the config (and
        // its secrets) or the state data without saying so
        // (`acknowledge-sensitive`).
        let file = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        config
            .plugins
            .gateway_dirs
            .extend(file.parent().map(Path::to_path_buf));
        config.plugins.gateway_dirs.push(config.state.dir.clone());
        config
            .plugins
            .gateway_dirs
            .extend(config.prompts.dir.clone());
        Ok(config)
    }

    /// Parse and validate `text` (values only, the file system is not
    /// looked at); `origin` prefixes every location.
    pub fn parse(
        origin: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        Self::parse_with(origin, text, env, Checks::Values)
    }

    fn parse_with(
        origin: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        checks: Checks<'_>,
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
        let prompts = section(&mut src, table.get("prompts"), "prompts");
        let evals = section(&mut src, table.get("evals"), "evals");
        let cache = section(&mut src, table.get("cache"), "cache");
        let telemetry = section(&mut src, table.get("telemetry"), "telemetry");
        let request_log = section(&mut src, table.get("request-log"), "request-log");
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
            prompts: prompts.unwrap_or_default(),
            evals: evals.unwrap_or_default(),
            cache: cache.unwrap_or_default(),
            telemetry: telemetry.unwrap_or_default(),
            request_log: request_log.unwrap_or_default(),
        };
        validate::check(&config, &root, &mut src);
        if let Checks::Paths(base) = checks {
            validate::check_paths(&config, base, &root, &mut src);
        }
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

/// What validation looks at besides the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks<'a> {
    Values,
    /// Values, and paths against the file system; the config file's
    /// directory (what its relative `dir`s are relative to).
    Paths(&'a Path),
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
