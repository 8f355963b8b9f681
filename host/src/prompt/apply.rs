//! The `prompt` extension of a chat request:
//!
//! ```json
//! {"prompt": {"id": "summarize", "version": 3, "variables": {"text": "..."}},
//!  "messages": [ ...optional, appended after the rendered ones... ]}
//! ```
//!
//! The version's templates render into messages placed before any the
//! request carries (a conversation continuing under a registry-held system
//! prompt). The version's settings fill in what the request leaves unset:
//! `model`, `temperature`, `max_tokens`; a value the client sends wins, so
//! a caller can still try another model with the same prompt. The version's
//! output guardrails join the model's chain. Without `version` the active
//! one serves. The extension never reaches the upstream.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::PromptError;
use super::registry::Prompts;
use crate::openai::ChatRequest;

/// Which prompt version rendered a request (for the ledger, logs, the
/// `x-sluice-prompt` header and plugins).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PromptRef {
    pub id: String,
    pub version: u32,
}

impl fmt::Display for PromptRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.version)
    }
}

impl PromptRef {
    /// Parse `ID@VERSION`.
    pub fn parse(s: &str) -> Option<PromptRef> {
        let (id, v) = s.rsplit_once('@')?;
        let version = v.parse().ok().filter(|v| *v > 0)?;
        super::file::valid_id(id).then(|| PromptRef {
            id: id.to_string(),
            version,
        })
    }
}

/// What rendering a request from the registry decided.
#[derive(Debug, Clone)]
pub struct Applied {
    pub prompt: PromptRef,
    /// The version's own output guardrails (added to the model's).
    pub output_guardrails: Vec<String>,
}

impl Applied {
    /// The model's output chain plus this version's guardrails, each once.
    pub fn output_guardrails(&self, model: &[String]) -> Vec<String> {
        let mut names = model.to_vec();
        for g in &self.output_guardrails {
            if !names.contains(g) {
                names.push(g.clone());
            }
        }
        names
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Extension {
    id: String,
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    variables: Map<String, Value>,
}

/// Render `req`'s `prompt` extension, if it has one, into the request.
pub fn apply(
    prompts: Option<&Prompts>,
    req: &mut ChatRequest,
) -> Result<Option<Applied>, PromptError> {
    let Some(ext) = req.extra.remove("prompt") else {
        return Ok(None);
    };
    if ext.is_null() {
        return Ok(None);
    }
    let prompts = prompts.ok_or(PromptError::Disabled)?;
    let ext: Extension = serde_json::from_value(ext).map_err(|e| {
        PromptError::Invalid(format!(
            "{e} (expected {{\"id\": string, \"version\"?: integer >= 1, \"variables\"?: object}})"
        ))
    })?;
    if ext.version == Some(0) {
        return Err(PromptError::Invalid("`version` must be at least 1".into()));
    }
    let resolved = prompts.resolve(&ext.id, ext.version)?;
    let v = resolved.version();
    let mut messages = resolved.prompt.render(v, &ext.variables)?;
    messages.append(&mut req.messages);
    req.messages = messages;
    if req.model.trim().is_empty()
        && let Some(m) = &v.model
    {
        req.model.clone_from(m);
    }
    if req.temperature.is_none() {
        req.temperature = v.temperature;
    }
    if req.max_output_tokens().is_none() {
        req.max_tokens = v.max_tokens;
    }
    Ok(Some(Applied {
        prompt: PromptRef {
            id: ext.id,
            version: resolved.version,
        },
        output_guardrails: v.output_guardrails.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_parse_and_print_as_id_at_version() {
        let r = PromptRef::parse("summarize@3").unwrap();
        assert_eq!((r.id.as_str(), r.version), ("summarize", 3));
        assert_eq!(r.to_string(), "summarize@3");
        for bad in ["summarize", "summarize@0", "@3", "a b@1", "x@v2"] {
            assert_eq!(PromptRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn without_a_registry_the_extension_is_refused_and_never_forwarded() {
        let mut req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [], "prompt": {"id": "x"}
        }))
        .unwrap();
        assert_eq!(apply(None, &mut req).unwrap_err(), PromptError::Disabled);
        assert!(!req.extra.contains_key("prompt"));
        let mut plain: ChatRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "messages": []})).unwrap();
        assert!(apply(None, &mut plain).unwrap().is_none());
    }
}
