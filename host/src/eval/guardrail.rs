//! The guardrail scorer: runs a plugin from the plugin directory on an
//! output (`check-output`, as the gateway would on a whole answer) and
//! compares its verdict with what the case expects. The plugins run in the
//! runner's own [`PluginRuntime`] (same loader, limits and sandbox as the
//! gateway's), so a suite can assert "this answer leaks no PII" without
//! the gateway's chain being configured that way.

use std::path::PathBuf;
use std::sync::Arc;

use super::run::ScoreResult;
use super::scorer::Expect;
use crate::plugin::{Message, OutputPart, PluginRuntime, PluginsConfig, RequestInfo, Verdict};

/// The runner's plugin runtime.
pub struct Guardrails {
    runtime: Arc<PluginRuntime>,
}

impl Guardrails {
    /// Load `dir` (compiling is CPU work: done on a blocking thread). Every
    /// plugin in `needed` must load.
    pub async fn load(
        dir: PathBuf,
        cache_dir: Option<PathBuf>,
        needed: &[&str],
    ) -> anyhow::Result<Guardrails> {
        let cfg = PluginsConfig {
            dir,
            watch: false,
            pool_size: 0,
            cache_dir,
            ..PluginsConfig::default()
        };
        let runtime = tokio::task::spawn_blocking(move || PluginRuntime::start(cfg))
            .await?
            .map_err(|e| anyhow::anyhow!("loading plugins for guardrail scorers: {e}"))?;
        let set = runtime.current();
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|n| set.get(n).is_none())
            .collect();
        if !missing.is_empty() {
            let why: Vec<String> = runtime
                .statuses()
                .into_iter()
                .filter(|s| missing.contains(&s.name.as_str()))
                .map(|s| format!("{}: {:?}", s.name, s.state))
                .collect();
            anyhow::bail!(
                "guardrail scorer plugin(s) not loaded from {}: {} {}",
                runtime.config().dir.display(),
                missing.join(", "),
                why.join("; ")
            );
        }
        Ok(Guardrails { runtime })
    }

    /// Score `output` of case `case_id` with `plugin`.
    pub async fn score(
        &self,
        plugin: &str,
        expect: Expect,
        label: String,
        case_id: &str,
        output: &str,
    ) -> ScoreResult {
        let Some(p) = self.runtime.current().get(plugin).cloned() else {
            return ScoreResult::error(
                "guardrail",
                label,
                format!("plugin `{plugin}` is not loaded"),
            );
        };
        let ctx = crate::pipeline::output::whole(0, OutputPart::Content);
        match p
            .check_output(&Arc::new(request(case_id)), output, &ctx)
            .await
        {
            Err(f) => {
                ScoreResult::error("guardrail", label, format!("plugin `{plugin}` failed: {f}"))
            }
            Ok(v) => {
                // A rewrite to the same text changes nothing: the gateway
                // would serve the output as is.
                let v = match v {
                    Verdict::Transform(t) if t == output => Verdict::Pass,
                    v => v,
                };
                let (said, detail) = match &v {
                    Verdict::Pass => ("pass", None),
                    Verdict::Transform(t) => {
                        ("transform", Some(format!("would rewrite it to {t:?}")))
                    }
                    Verdict::Reject(r) => ("reject", Some(format!("{}: {}", r.code, r.reason))),
                    Verdict::Flag(f) => ("flag", Some(format!("{}: {}", f.code, f.reason))),
                };
                let ok = match expect {
                    Expect::Pass => matches!(v, Verdict::Pass),
                    Expect::Transform => matches!(v, Verdict::Transform(_)),
                    Expect::Reject => matches!(v, Verdict::Reject(_)),
                    Expect::Flag => matches!(v, Verdict::Flag(_)),
                    Expect::NotReject => !matches!(v, Verdict::Reject(_)),
                };
                let detail = Some(match detail {
                    Some(d) => format!("{said} ({d})"),
                    None => said.to_string(),
                });
                ScoreResult::pass_fail("guardrail", label, ok, detail)
            }
        }
    }
}

/// What the plugin is told about the request: an eval case, no user.
fn request(case_id: &str) -> RequestInfo {
    RequestInfo {
        id: format!("eval-{case_id}"),
        user: None,
        api_key_id: None,
        feature: Some("eval".into()),
        tags: vec!["eval".into()],
        model: "eval".into(),
        messages: vec![Message {
            role: "user".into(),
            content: String::new(),
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }],
        max_tokens: None,
        temperature: None,
        stream: false,
        prompt: None,
    }
}
