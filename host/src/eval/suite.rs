//! Eval suites in YAML: cases with an id, an input (messages, or a prompt's
//! variables), the expected output or behaviour, a category, and scorers.
//!
//! ```yaml
//! name: capitals                 # default: the file name
//! model: demo                    # gateway model (`--model` overrides)
//! prompt: capital                # prompt id for `variables` cases (`--prompt ID@V` overrides)
//! judge: { model: judge, pass-score: 7 }
//! params: { temperature: 0 }     # extra request fields, every case
//! scorers:                       # applied to every case, before its own
//!   - length: { max: 400 }
//! cases:
//!   - id: france
//!     category: europe
//!     variables: { country: France }
//!     expected: Names Paris as the capital.
//!     scorers:
//!       - contains: Paris
//!       - judge: {}              # criteria: `expected`
//!   - id: chat-form
//!     messages: [{ role: user, content: "What is the capital of Peru?" }]
//!     scorers: [{ contains: Lima }]
//! ```
//!
//! Loading reports every problem at once, each with its case id and
//! scorer index; regexes and JSON schemas are compiled at load.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::scorer::{Scorer, ScorerSpec};
use crate::openai::ChatMessage;

/// Largest suite file read.
const MAX_SUITE_BYTES: u64 = 16 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SuiteFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    judge: JudgeDefaults,
    #[serde(default)]
    params: Map<String, Value>,
    #[serde(default)]
    scorers: Vec<Value>,
    cases: Vec<CaseFile>,
}

/// `judge:` at the suite level.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JudgeDefaults {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub pass_score: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CaseFile {
    id: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ChatMessage>>,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    expected: Option<String>,
    #[serde(default)]
    params: Map<String, Value>,
    #[serde(default)]
    scorers: Vec<Value>,
}

/// A loaded, validated suite.
#[derive(Debug)]
pub struct Suite {
    pub name: String,
    pub description: Option<String>,
    pub sha256: String,
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub judge: JudgeDefaults,
    pub cases: Vec<Case>,
}

/// One case.
#[derive(Debug)]
pub struct Case {
    pub id: String,
    pub category: String,
    pub input: Input,
    pub expected: Option<String>,
    /// Extra request fields (suite's, then the case's).
    pub params: Map<String, Value>,
    /// Suite-wide scorers, then the case's own.
    pub scorers: Vec<Scorer>,
}

/// What a case sends.
#[derive(Debug, Clone)]
pub enum Input {
    Messages(Vec<ChatMessage>),
    /// Rendered by the gateway from the registry. `prompt`: the case's own
    /// prompt id (else the suite's or `--prompt`); `messages` are appended
    /// after the rendered ones.
    Prompt {
        prompt: Option<String>,
        variables: Map<String, Value>,
        messages: Vec<ChatMessage>,
    },
}

impl Input {
    /// The input as written, for reports.
    pub fn to_value(&self) -> Value {
        match self {
            Input::Messages(m) => serde_json::json!({"messages": m}),
            Input::Prompt {
                prompt,
                variables,
                messages,
            } => {
                let mut v = serde_json::json!({"variables": variables});
                if let Some(p) = prompt {
                    v["prompt"] = Value::String(p.clone());
                }
                if !messages.is_empty() {
                    v["messages"] = serde_json::json!(messages);
                }
                v
            }
        }
    }

    /// The input as a judge reads it.
    pub fn to_text(&self) -> String {
        let msgs = |m: &[ChatMessage]| {
            m.iter()
                .map(|m| format!("{}: {}", m.role, m.content_text()))
                .collect::<Vec<_>>()
                .join("\n")
        };
        match self {
            Input::Messages(m) => msgs(m),
            Input::Prompt {
                variables,
                messages,
                ..
            } => {
                let mut s = format!(
                    "(a prompt template filled with these variables)\n{}",
                    serde_json::to_string_pretty(variables).unwrap_or_default()
                );
                if !messages.is_empty() {
                    s.push('\n');
                    s.push_str(&msgs(messages));
                }
                s
            }
        }
    }
}

impl Suite {
    /// Read and validate a suite file.
    pub fn load(path: &Path) -> anyhow::Result<Suite> {
        let bytes = crate::plugin::read_regular(path, MAX_SUITE_BYTES)
            .map_err(|e| anyhow::anyhow!("reading suite {}: {e}", path.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("suite {} is not UTF-8", path.display()))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("suite");
        Suite::parse(stem, &text).map_err(|e| anyhow::anyhow!("suite {}: {e}", path.display()))
    }

    /// Parse and validate suite text; `default_name` names a suite without `name`.
    pub fn parse(default_name: &str, text: &str) -> Result<Suite, String> {
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let de = serde_path_to_error::deserialize::<_, SuiteFile>(value);
        let file = de.map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        })?;
        let mut problems = Vec::new();
        let common: Vec<Scorer> = file
            .scorers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                compile(s)
                    .map_err(|e| problems.push(format!("scorers[{i}]: {e}")))
                    .ok()
            })
            .collect();
        if let Some(p) = file.judge.pass_score
            && !(0.0..=10.0).contains(&p)
        {
            problems.push("judge.pass-score must be between 0 and 10".into());
        }
        if file.cases.is_empty() {
            problems.push("`cases` is empty".into());
        }
        let mut seen = HashSet::new();
        let mut cases = Vec::new();
        for (i, c) in file.cases.into_iter().enumerate() {
            let at = format!("cases[{i}] ({})", c.id);
            if c.id.trim().is_empty() {
                problems.push(format!("cases[{i}]: empty `id`"));
            } else if !seen.insert(c.id.clone()) {
                problems.push(format!("{at}: duplicate id"));
            }
            let mut scorers: Vec<Scorer> = Vec::new();
            for (j, s) in c.scorers.iter().enumerate() {
                match compile(s) {
                    Ok(s) => scorers.push(s),
                    Err(e) => problems.push(format!("{at}.scorers[{j}]: {e}")),
                }
            }
            if common.is_empty() && scorers.is_empty() {
                problems.push(format!("{at}: no scorers (here or at the suite level)"));
            }
            let needs_expected = scorers
                .iter()
                .chain(&common)
                .any(|s| matches!(s, Scorer::Judge { criteria: None, .. }));
            if needs_expected && c.expected.is_none() {
                problems.push(format!("{at}: a `judge` without criteria needs `expected`"));
            }
            let input = match (c.messages, c.variables) {
                (Some(m), None) if c.prompt.is_none() => {
                    if m.is_empty() {
                        problems.push(format!("{at}: `messages` is empty"));
                    }
                    Input::Messages(m)
                }
                (messages, variables) => Input::Prompt {
                    prompt: c.prompt,
                    variables: variables.unwrap_or_default(),
                    messages: messages.unwrap_or_default(),
                },
            };
            let mut params = file.params.clone();
            params.extend(c.params);
            for reserved in ["model", "messages", "prompt", "stream"] {
                if params.contains_key(reserved) {
                    problems.push(format!("{at}: `params` may not set `{reserved}`"));
                }
            }
            // The suite's scorers first, then the case's: compiled again per
            // case (a compiled schema or regex is not cloneable).
            let mut all: Vec<Scorer> = file
                .scorers
                .iter()
                .filter_map(|s| compile(s).ok())
                .collect();
            all.append(&mut scorers);
            cases.push(Case {
                id: c.id,
                category: c.category.unwrap_or_else(|| "uncategorized".into()),
                input,
                expected: c.expected,
                params,
                scorers: all,
            });
        }
        if !problems.is_empty() {
            return Err(problems.join("\n  "));
        }
        Ok(Suite {
            name: file.name.unwrap_or_else(|| default_name.to_string()),
            description: file.description,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            model: file.model,
            prompt: file.prompt,
            judge: file.judge,
            cases,
        })
    }

    /// Cases per category, for the report's table order.
    pub fn categories(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for c in &self.cases {
            *m.entry(c.category.as_str()).or_default() += 1;
        }
        m
    }

    /// Plugins the suite's guardrail scorers run.
    pub fn guardrail_plugins(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .cases
            .iter()
            .flat_map(|c| &c.scorers)
            .filter_map(|s| match s {
                Scorer::Guardrail { plugin, .. } => Some(plugin.as_str()),
                _ => None,
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

fn compile(v: &Value) -> Result<Scorer, String> {
    let spec: ScorerSpec = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    Scorer::compile(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = r#"
model: demo
prompt: capital
params: { temperature: 0 }
scorers: [{ length: { max: 400 } }]
cases:
  - id: france
    category: europe
    variables: { country: France }
    expected: Names Paris.
    scorers: [{ contains: Paris }, { judge: {} }]
  - id: peru
    messages: [{ role: user, content: "Capital of Peru?" }]
    params: { seed: 1 }
    scorers: [{ regex: "Lima" }]
"#;

    #[test]
    fn loads_cases_with_suite_defaults() {
        let s = Suite::parse("caps", SUITE).unwrap();
        assert_eq!((s.name.as_str(), s.cases.len()), ("caps", 2));
        let france = &s.cases[0];
        assert!(
            matches!(&france.input, Input::Prompt { prompt: None, variables, .. } if variables["country"] == "France")
        );
        let names: Vec<&str> = france.scorers.iter().map(Scorer::name).collect();
        assert_eq!(names, ["length", "contains", "judge"]);
        let peru = &s.cases[1];
        assert_eq!(peru.category, "uncategorized");
        assert_eq!(
            (
                peru.params["temperature"].as_i64(),
                peru.params["seed"].as_i64()
            ),
            (Some(0), Some(1))
        );
        assert!(matches!(&peru.input, Input::Messages(m) if m.len() == 1));
        assert_eq!(s.categories()["europe"], 1);
    }

    #[test]
    fn reports_every_problem_with_its_place() {
        let bad = r#"
cases:
  - id: a
    messages: [{ role: user, content: x }]
    scorers: [{ regex: "(" }, { judge: {} }, { nope: 1 }]
  - id: a
    variables: {}
    params: { model: x }
"#;
        let e = Suite::parse("s", bad).unwrap_err();
        for needle in [
            "cases[0] (a).scorers[0]: regex",
            "cases[0] (a): a `judge` without criteria needs `expected`",
            "cases[0] (a).scorers[2]: unknown variant `nope`",
            "cases[1] (a): duplicate id",
            "cases[1] (a): no scorers",
            "`params` may not set `model`",
        ] {
            assert!(e.contains(needle), "{needle} missing in:\n{e}");
        }
        let e = Suite::parse("s", "cases:\n  - id: a\n    colour: red\n").unwrap_err();
        assert!(e.contains("cases[0]") && e.contains("colour"), "{e}");
    }
}
