//! A prompt as served: every version of one file, validated and compiled.
//! Building one checks everything a request could trip over later, so a
//! file that builds renders for any request that supplies its variables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::PromptError;
use super::file::{self, MessageSpec, PromptFile, Syntax, VersionSpec};
use super::template::{RenderFailure, Templates, quoted};
use crate::openai::ChatMessage;

/// Roles a template may render (the tool role needs a call id it cannot have).
const ROLES: &[&str] = &["system", "developer", "user", "assistant"];

/// One version of a prompt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    pub output_guardrails: Vec<String>,
    /// Required variables.
    pub variables: Vec<String>,
    /// Optional variables with their values when absent.
    pub defaults: BTreeMap<String, Value>,
    /// The message templates, in order.
    pub messages: Vec<MessageSpec>,
}

/// A loaded prompt file.
#[derive(Debug)]
pub struct Prompt {
    pub id: String,
    pub description: Option<String>,
    pub path: PathBuf,
    /// SHA-256 of the file's bytes (hex): what a reload compares.
    pub sha256: String,
    /// The version the file says serves: its `active`, else the highest.
    pub file_active: u32,
    versions: BTreeMap<u32, Version>,
    templates: Templates,
}

impl Prompt {
    /// Parse and validate `text` (the file at `path`). `models`, when
    /// given, is the set of gateway models a version may name. Every
    /// problem is reported, `; `-separated.
    pub fn build(
        id: &str,
        path: &Path,
        text: &str,
        syntax: Syntax,
        models: Option<&BTreeSet<String>>,
    ) -> Result<Prompt, String> {
        let parsed: PromptFile = file::parse(text, syntax)?;
        let mut problems = Vec::new();
        let mut versions = BTreeMap::new();
        let mut templates = Templates::default();
        if parsed.versions.is_empty() {
            problems.push("`versions` is empty".to_string());
        }
        // Numbers seen so far, valid or not: a duplicate of a broken version
        // is still a duplicate.
        let mut seen = BTreeSet::new();
        for spec in &parsed.versions {
            let n = spec.version;
            let mut bad = |msg: String| problems.push(format!("version {n}: {msg}"));
            if n == 0 {
                bad("`version` must be at least 1".into());
                continue;
            }
            if !seen.insert(n) {
                bad("defined twice".into());
                continue;
            }
            match check_version(spec, models, &mut templates, n) {
                Ok(v) => {
                    versions.insert(n, v);
                }
                Err(errs) => errs.into_iter().for_each(&mut bad),
            }
        }
        let highest = parsed.versions.iter().map(|v| v.version).max().unwrap_or(0);
        let file_active = parsed.active.unwrap_or(highest);
        if let Some(a) = parsed.active
            && !parsed.versions.iter().any(|v| v.version == a)
        {
            problems.push(format!("`active = {a}` names no version in the file"));
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Prompt {
            id: id.to_string(),
            description: parsed.description,
            path: path.to_path_buf(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            file_active,
            versions,
            templates,
        })
    }

    pub fn version(&self, n: u32) -> Option<&Version> {
        self.versions.get(&n)
    }

    /// Every version, ascending.
    pub fn versions(&self) -> impl Iterator<Item = &Version> {
        self.versions.values()
    }

    /// `1, 2, 3` for messages.
    pub fn version_list(&self) -> String {
        let v: Vec<String> = self.versions.keys().map(u32::to_string).collect();
        v.join(", ")
    }

    /// Render `version` with `vars`: every missing required variable is
    /// named at once; unknown variables are ignored (a client written for
    /// another version keeps working across a rollback).
    pub fn render(
        &self,
        version: &Version,
        vars: &Map<String, Value>,
    ) -> Result<Vec<ChatMessage>, PromptError> {
        let missing: Vec<String> = version
            .variables
            .iter()
            .filter(|v| vars.get(*v).is_none_or(Value::is_null))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(PromptError::MissingVariables {
                id: self.id.clone(),
                version: version.version,
                names: missing,
            });
        }
        let mut data = Map::new();
        for (k, v) in &version.defaults {
            data.insert(k.clone(), v.clone());
        }
        for (k, v) in vars {
            if !v.is_null() {
                data.insert(k.clone(), v.clone());
            }
        }
        let data = Value::Object(data);
        version
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                self.templates
                    .render(&template_name(version.version, i), &data)
                    .map(|text| ChatMessage::text(&m.role, text))
                    .map_err(|f| PromptError::Render {
                        id: self.id.clone(),
                        version: version.version,
                        reason: match f {
                            RenderFailure::Missing(path) => {
                                format!("the template reads `{path}`, which the variables lack")
                            }
                            RenderFailure::Other(e) => e,
                        },
                    })
            })
            .collect()
    }
}

fn template_name(version: u32, index: usize) -> String {
    format!("v{version}/{index}")
}

/// Variable names are what templates and JSON keys carry.
fn valid_variable(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_version(
    spec: &VersionSpec,
    models: Option<&BTreeSet<String>>,
    templates: &mut Templates,
    n: u32,
) -> Result<Version, Vec<String>> {
    let mut problems = Vec::new();
    if let Some(t) = spec.temperature
        && !(0.0..=2.0).contains(&t)
    {
        problems.push(format!("`temperature` must be between 0 and 2, got {t}"));
    }
    if spec.max_tokens == Some(0) {
        problems.push("`max-tokens` must be at least 1".into());
    }
    if let (Some(m), Some(known)) = (&spec.model, models)
        && !known.contains(m)
    {
        let names: Vec<&str> = known.iter().map(String::as_str).collect();
        problems.push(format!(
            "`model = \"{m}\"` is not a configured model (configured: {})",
            quoted(&names)
        ));
    }
    if spec.output_guardrails.iter().any(|g| g.trim().is_empty()) {
        problems.push("`output-guardrails` has an empty name".into());
    }
    let mut declared = BTreeSet::new();
    for v in spec.variables.iter().chain(spec.defaults.keys()) {
        if !valid_variable(v) {
            problems.push(format!(
                "variable name `{v}` must be letters, digits and `_`, not starting with a digit"
            ));
        } else if !declared.insert(v.clone()) {
            problems.push(format!(
                "variable `{v}` is declared twice (in `variables` and `defaults`, or repeated)"
            ));
        }
    }
    let messages = match spec.message_specs() {
        Ok(m) => m,
        Err(e) => {
            problems.push(e);
            Vec::new()
        }
    };
    for (i, m) in messages.iter().enumerate() {
        if !ROLES.contains(&m.role.as_str()) {
            problems.push(format!(
                "messages[{i}]: role `{}` is not one of {}",
                m.role,
                ROLES.join(", ")
            ));
        }
        if let Err(e) = templates.add(&template_name(n, i), &m.content, &declared) {
            problems.push(format!("messages[{i}]: {e}"));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Version {
        version: n,
        description: spec.description.clone(),
        model: spec.model.clone(),
        temperature: spec.temperature,
        max_tokens: spec.max_tokens,
        output_guardrails: spec.output_guardrails.clone(),
        variables: spec.variables.clone(),
        defaults: spec.defaults.clone(),
        messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = r#"
description = "d"
active = 1
[[versions]]
version = 1
model = "demo"
variables = ["text"]
defaults = { tone = "calm" }
system = "Be {{tone}}."
template = "Summarise: {{text}}"

[[versions]]
version = 2
variables = ["text", "audience"]
template = "For {{audience}}: {{text}}"
"#;

    fn build(text: &str) -> Result<Prompt, String> {
        let models: BTreeSet<String> = ["demo".to_string()].into();
        Prompt::build("p", Path::new("p.toml"), text, Syntax::Toml, Some(&models))
    }

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn renders_with_defaults_and_names_every_missing_variable() {
        let p = build(FILE).unwrap();
        assert_eq!((p.file_active, p.version_list().as_str()), (1, "1, 2"));
        let msgs = p
            .render(
                p.version(1).unwrap(),
                &vars(json!({"text": "t", "extra": 1})),
            )
            .unwrap();
        assert_eq!(msgs[0], ChatMessage::text("system", "Be calm."));
        assert_eq!(msgs[1], ChatMessage::text("user", "Summarise: t"));
        let e = p
            .render(p.version(2).unwrap(), &vars(json!({"audience": null})))
            .unwrap_err();
        assert_eq!(
            e,
            PromptError::MissingVariables {
                id: "p".into(),
                version: 2,
                names: vec!["text".into(), "audience".into()],
            }
        );
    }

    #[test]
    fn every_problem_of_a_file_is_reported() {
        let bad = r#"
active = 9
[[versions]]
version = 1
model = "nope"
temperature = 3.0
variables = ["a b"]
template = "{{x}}"
[[versions]]
version = 1
template = "dup"
"#;
        let e = build(bad).unwrap_err();
        for needle in [
            "`temperature`",
            "not a configured model",
            "`a b`",
            "undeclared variable(s) `x`",
            "defined twice",
            "`active = 9`",
        ] {
            assert!(e.contains(needle), "{needle} missing in: {e}");
        }
    }

    #[test]
    fn a_nested_field_the_variables_lack_is_a_render_error() {
        let text =
            "[[versions]]\nversion = 1\nvariables = [\"user\"]\ntemplate = \"{{user.name}}\"\n";
        let p = build(text).unwrap();
        let e = p
            .render(p.version(1).unwrap(), &vars(json!({"user": {"id": 1}})))
            .unwrap_err();
        assert!(
            matches!(&e, PromptError::Render { reason, .. } if reason.contains("user.name")),
            "{e:?}"
        );
    }
}
