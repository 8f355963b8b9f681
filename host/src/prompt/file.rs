//! The prompt file: one prompt per file, `ID.toml` or `ID.yaml` / `ID.yml`,
//! holding every version of it. The id is the file name without its
//! extension, so a prompt cannot be defined twice in one directory by
//! accident.
//!
//! ```toml
//! description = "Summarise a support ticket"
//! active = 2                      # optional; default: the highest version
//!
//! [[versions]]
//! version = 2
//! model = "demo"                  # gateway model; a request's own `model` wins
//! temperature = 0.2
//! max-tokens = 300
//! output-guardrails = ["length-check"]   # added to the model's own chain
//! variables = ["ticket"]          # required
//! defaults = { tone = "neutral" } # optional, with their value when absent
//! system = "You are a support lead. Be {{tone}}."
//! template = "Summarise:\n{{ticket}}"
//! ```
//!
//! Instead of `system` + `template` (a system and a user message), a version
//! may list `messages = [{ role = "...", content = "..." }, ...]`, each
//! content a template. YAML files have the same keys.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// Largest prompt file read, so a stray big file in the directory cannot
/// stall a reload.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// A prompt file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PromptFile {
    #[serde(default)]
    pub description: Option<String>,
    /// The version serving when no activation record pins one. Default:
    /// the highest version in the file.
    #[serde(default)]
    pub active: Option<u32>,
    pub versions: Vec<VersionSpec>,
}

/// One `[[versions]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VersionSpec {
    /// Positive, unique in the file.
    pub version: u32,
    #[serde(default)]
    pub description: Option<String>,
    /// The gateway model (`[models.NAME]`) used when the request names none.
    #[serde(default)]
    pub model: Option<String>,
    /// Used when the request sets none. 0 to 2.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Completion-token cap used when the request sets none.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Guardrail plugins run on the answer besides the model's own.
    #[serde(default)]
    pub output_guardrails: Vec<String>,
    /// Variables a request must supply.
    #[serde(default)]
    pub variables: Vec<String>,
    /// Optional variables and the value each takes when a request omits it.
    #[serde(default)]
    pub defaults: BTreeMap<String, Value>,
    /// Shorthand: a system message template.
    #[serde(default)]
    pub system: Option<String>,
    /// Shorthand: the user message template.
    #[serde(default)]
    pub template: Option<String>,
    /// The full form: every message, each content a template.
    #[serde(default)]
    pub messages: Vec<MessageSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    pub role: String,
    pub content: String,
}

impl VersionSpec {
    /// The messages this version renders, shorthand expanded.
    pub fn message_specs(&self) -> Result<Vec<MessageSpec>, String> {
        match (&self.template, self.messages.is_empty()) {
            (Some(_), false) => {
                Err("give either `template` (and `system`) or `messages`, not both".into())
            }
            (None, true) => Err("needs a `template` or `messages`".into()),
            (None, false) if self.system.is_some() => {
                Err("`system` is shorthand for use with `template`; put it in `messages`".into())
            }
            (None, false) => Ok(self.messages.clone()),
            (Some(t), true) => {
                let mut out = Vec::new();
                if let Some(s) = &self.system {
                    out.push(MessageSpec {
                        role: "system".into(),
                        content: s.clone(),
                    });
                }
                out.push(MessageSpec {
                    role: "user".into(),
                    content: t.clone(),
                });
                Ok(out)
            }
        }
    }
}

/// The file syntaxes the registry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Syntax {
    Toml,
    Yaml,
}

/// The prompt id and syntax of a directory entry, or None when the file is
/// not a prompt file (hidden and temporary files are ignored, so writing
/// `.ID.toml.tmp` and renaming it into place is the safe way to edit).
pub fn prompt_id(path: &Path) -> Option<(String, Syntax)> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.') || name.ends_with('~') {
        return None;
    }
    let (stem, ext) = name.rsplit_once('.')?;
    let syntax = match ext {
        "toml" => Syntax::Toml,
        "yaml" | "yml" => Syntax::Yaml,
        _ => return None,
    };
    valid_id(stem).then(|| (stem.to_string(), syntax))
}

/// Ids are what clients send and what URLs and state keys carry: ASCII
/// letters, digits, `-`, `_` and `.`, not starting with `.`, 1-64 bytes.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Parse a prompt file's text.
pub fn parse(text: &str, syntax: Syntax) -> Result<PromptFile, String> {
    match syntax {
        Syntax::Toml => toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string()),
        Syntax::Yaml => serde_yaml_ng::from_str(text).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_file_names() {
        let id = |p: &str| prompt_id(Path::new(p));
        assert_eq!(
            id("a/summarize.toml"),
            Some(("summarize".into(), Syntax::Toml))
        );
        assert_eq!(id("x.yml"), Some(("x".into(), Syntax::Yaml)));
        assert_eq!(id("x.v2.yaml"), Some(("x.v2".into(), Syntax::Yaml)));
        assert_eq!(id(".summarize.toml"), None);
        assert_eq!(id("summarize.toml.tmp"), None);
        assert_eq!(id("summarize.toml~"), None);
        assert_eq!(id("sum marize.toml"), None);
        assert_eq!(id("README.md"), None);
    }

    #[test]
    fn toml_and_yaml_read_the_same_keys() {
        let toml = r#"
active = 1
[[versions]]
version = 1
model = "demo"
max-tokens = 10
variables = ["x"]
defaults = { y = "z" }
template = "{{x}} {{y}}"
"#;
        let yaml = "active: 1\nversions:\n  - version: 1\n    model: demo\n    max-tokens: 10\n    variables: [x]\n    defaults: {y: z}\n    template: '{{x}} {{y}}'\n";
        for f in [parse(toml, Syntax::Toml), parse(yaml, Syntax::Yaml)] {
            let f = f.unwrap();
            let v = &f.versions[0];
            assert_eq!((f.active, v.max_tokens), (Some(1), Some(10)));
            assert_eq!(v.defaults["y"], Value::String("z".into()));
            assert_eq!(v.message_specs().unwrap()[0].content, "{{x}} {{y}}");
        }
        let e = parse("[[versions]]\nversion = 1\ntemplat = \"x\"\n", Syntax::Toml).unwrap_err();
        assert!(e.contains("templat"), "{e}");
    }

    #[test]
    fn a_version_has_one_form_of_messages() {
        let v = |t: &str| {
            parse(&format!("[[versions]]\nversion = 1\n{t}"), Syntax::Toml)
                .unwrap()
                .versions[0]
                .message_specs()
        };
        assert!(v("").unwrap_err().contains("needs"));
        let both = "template = \"a\"\nmessages = [{ role = \"user\", content = \"b\" }]";
        assert!(v(both).unwrap_err().contains("not both"));
        let roles: Vec<String> = v("system = \"s\"\ntemplate = \"u\"")
            .unwrap()
            .into_iter()
            .map(|m| m.role)
            .collect();
        assert_eq!(roles, ["system", "user"]);
    }
}
