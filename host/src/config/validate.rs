//! Cross-reference checks that serde cannot do: names that must exist or be
//! unique, numbers that must be in range. Each problem is placed at the
//! offending value's span.

use std::collections::HashSet;

use toml::Spanned;
use toml::de::DeTable;

use super::source::{Seg, Source, path_string, span_at};
use super::{Config, WindowMode};

pub(super) fn check(config: &Config, root: &Spanned<DeTable<'_>>, src: &mut Source<'_>) {
    let mut report = |path: &[Seg<'_>], msg: String| {
        src.report(span_at(root, path), path_string(path), msg);
    };

    for (key, problem) in config.server.problems() {
        report(&[Seg::Key("server"), Seg::Key(key)], problem);
    }
    for (key, problem) in config.plugins.problems() {
        report(&[Seg::Key("plugins"), Seg::Key(key)], problem);
    }

    for p in config.retry.problems() {
        report(&[Seg::Key("retry")], p);
    }
    for p in config.breaker.problems() {
        report(&[Seg::Key("breaker")], p);
    }
    let mut providers = HashSet::new();
    for (i, p) in config.providers.iter().enumerate() {
        for (key, problem) in p.problems() {
            report(
                &[Seg::Key("providers"), Seg::Index(i), Seg::Key(key)],
                problem,
            );
        }
        let path = [Seg::Key("providers"), Seg::Index(i), Seg::Key("name")];
        if p.name.trim().is_empty() {
            report(&path, "provider name must not be empty".into());
        } else if !providers.insert(p.name.as_str()) {
            report(&path, format!("duplicate provider name `{}`", p.name));
        }
    }

    for (name, model) in &config.models {
        let base = [Seg::Key("models"), Seg::Key(name)];
        let at =
            |rest: &[Seg<'static>]| -> Vec<Seg<'_>> { base.iter().chain(rest).copied().collect() };
        if model.routes.is_empty() {
            report(
                &at(&[Seg::Key("routes")]),
                "a model needs at least one route".into(),
            );
        }
        for (i, r) in model.routes.iter().enumerate() {
            let route = |key: &'static str| at(&[Seg::Key("routes"), Seg::Index(i), Seg::Key(key)]);
            if !providers.contains(r.provider.as_str()) {
                let mut known: Vec<&str> = providers.iter().copied().collect();
                known.sort_unstable();
                let msg = format!(
                    "unknown provider `{}` (configured: {})",
                    r.provider,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
                report(&route("provider"), msg);
            }
            if r.model.trim().is_empty() {
                report(
                    &route("model"),
                    "upstream model name must not be empty".into(),
                );
            }
            for (key, v) in [
                ("input-cost-per-mtok", r.input_cost_per_mtok),
                ("cached-input-cost-per-mtok", r.cached_input_cost_per_mtok),
                ("output-cost-per-mtok", r.output_cost_per_mtok),
            ] {
                if let Some(v) = v
                    && !(v.is_finite() && v >= 0.0)
                {
                    report(
                        &route(key),
                        format!("must be a non-negative number, got {v}"),
                    );
                }
            }
            for (key, v) in [
                ("timeout-ms", r.timeout_ms),
                ("ttfb-timeout-ms", r.ttfb_timeout_ms),
                ("max-stream-duration-ms", r.max_stream_duration_ms),
            ] {
                if v == Some(0) {
                    report(&route(key), "must be at least 1".into());
                }
            }
        }
        for key in ["guardrails", "input-guardrails", "output-guardrails"] {
            let list = match key {
                "guardrails" => Some(&model.guardrails),
                "input-guardrails" => model.input_guardrails.as_ref(),
                _ => model.output_guardrails.as_ref(),
            };
            let mut seen = HashSet::new();
            for (i, g) in list.into_iter().flatten().enumerate() {
                if g.trim().is_empty() || !seen.insert(g) {
                    let msg = format!("empty or duplicate guardrail name `{g}`");
                    report(&at(&[Seg::Key(key), Seg::Index(i)]), msg);
                }
            }
        }
        let w = &model.stream;
        if w.mode == WindowMode::Chars && w.chars == 0 {
            report(
                &at(&[Seg::Key("stream"), Seg::Key("chars")]),
                "must be at least 1".into(),
            );
        }
        if w.max_hold_chars == 0 || (w.mode == WindowMode::Chars && w.max_hold_chars < w.chars) {
            let msg = format!("must be at least 1 and at least `chars` ({})", w.chars);
            report(&at(&[Seg::Key("stream"), Seg::Key("max-hold-chars")]), msg);
        }
        let c = &model.cache;
        if !(0.0..=1.0).contains(&c.similarity) {
            let msg = format!("must be between 0 and 1, got {}", c.similarity);
            report(&at(&[Seg::Key("cache"), Seg::Key("similarity")]), msg);
        }
        if c.ttl_secs == 0 {
            report(
                &at(&[Seg::Key("cache"), Seg::Key("ttl-secs")]),
                "must be at least 1".into(),
            );
        }
        if c.mode == crate::cache::Mode::Semantic && config.cache.embeddings_model.is_none() {
            report(
                &at(&[Seg::Key("cache"), Seg::Key("mode")]),
                "semantic caching needs `[cache] embeddings-model`".into(),
            );
        }
    }

    if let Some(m) = &config.cache.embeddings_model
        && !config.models.contains_key(m)
    {
        report(
            &[Seg::Key("cache"), Seg::Key("embeddings-model")],
            format!("unknown model `{m}` (not a [models.NAME] of this file)"),
        );
    }

    for (path, msg) in config.state.problems() {
        let mut segs = vec![Seg::Key("state")];
        segs.extend(path.iter().map(|k| Seg::Key(k)));
        report(&segs, msg);
    }

    for (key, msg) in config.prompts.problems() {
        report(&[Seg::Key("prompts"), Seg::Key(key)], msg);
    }
    for (key, msg) in config.evals.problems() {
        report(&[Seg::Key("evals"), Seg::Key(key)], msg);
    }
    for (key, msg) in config.telemetry.problems() {
        report(&[Seg::Key("telemetry"), Seg::Key(key)], msg);
    }
    for (key, msg) in config.request_log.problems() {
        report(&[Seg::Key("request-log"), Seg::Key(key)], msg);
    }
    if let Some(judge) = &config.evals.judge_model
        && !config.models.contains_key(judge)
    {
        report(
            &[Seg::Key("evals"), Seg::Key("judge-model")],
            format!("unknown model `{judge}` (not a [models.NAME] of this file)"),
        );
    }

    let mut ids = HashSet::new();
    let mut secrets = HashSet::new();
    for (i, k) in config.keys.iter().enumerate() {
        let at = |key: &'static str| [Seg::Key("keys"), Seg::Index(i), Seg::Key(key)];
        if k.id.trim().is_empty() || !ids.insert(k.id.as_str()) {
            report(&at("id"), format!("empty or duplicate key id `{}`", k.id));
        }
        if k.key.is_empty() {
            report(&at("key"), "key secret must not be empty".into());
        } else if !secrets.insert(k.key.as_str()) {
            report(
                &at("key"),
                format!("key `{}` reuses another key's secret", k.id),
            );
        }
        if k.budget_usd.is_some_and(|b| !(b.is_finite() && b >= 0.0)) {
            report(&at("budget-usd"), "must be a non-negative number".into());
        }
    }
}

/// What only the file system can tell (see `Config::load`). A problem with a
/// key left at its default is placed at its section, or the file.
pub(super) fn check_paths(
    config: &Config,
    base: &std::path::Path,
    root: &Spanned<DeTable<'_>>,
    src: &mut Source<'_>,
) {
    for (key, problem) in config.plugins.path_problems() {
        let path = [Seg::Key("plugins"), Seg::Key(key)];
        let span = span_at(root, &path).or_else(|| span_at(root, &path[..1]));
        src.report(span, path_string(&path), problem);
    }
    let mut prompts = config.prompts.clone();
    prompts.resolve_dir(base);
    if let Some(problem) = prompts.path_problem() {
        let path = [Seg::Key("prompts"), Seg::Key("dir")];
        let span = span_at(root, &path).or_else(|| span_at(root, &path[..1]));
        src.report(span, path_string(&path), problem);
    }
}
