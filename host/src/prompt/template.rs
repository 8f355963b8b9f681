//! Handlebars templates of one prompt: compiled at load, checked against
//! the variables the version declares, rendered per request.
//!
//! Three choices, each for a prompt rather than an HTML page:
//! - **No escaping**: a model should read `&` and `<`, not `&amp;`.
//! - **Strict mode**: `{{name}}` with no `name` is an error naming it,
//!   never an empty string quietly sent upstream.
//! - **Declared variables only**: at load every variable a template reads at
//!   its top level (outside `{{#each}}` / `{{#with}}`, where names refer to
//!   the current item) must be declared in `variables` or `defaults`, and
//!   every helper must be a built-in one; partials and decorators are
//!   refused. So a typo fails the reload, not a request.

use std::collections::BTreeSet;

use handlebars::template::{Parameter, TemplateElement};
use handlebars::{Handlebars, Path, PathSeg, RenderErrorReason, Template};
use serde_json::Value;

/// Built-in helpers a template may call (`log` is left out: a prompt has no
/// business writing to the gateway's log).
const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "eq", "ne", "gt", "gte", "lt", "lte", "and",
    "or", "not", "len",
];

/// Helpers whose block runs with a new context (`this` = the item).
const SCOPING: &[&str] = &["each", "with"];

/// A registry holding the templates of one prompt file, named by the caller.
pub struct Templates {
    reg: Handlebars<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Default for Templates {
    fn default() -> Self {
        let mut reg = Handlebars::new();
        reg.set_strict_mode(true);
        reg.register_escape_fn(handlebars::no_escape);
        Self { reg }
    }
}

/// Why a render failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderFailure {
    /// Strict mode: the template read a value that is not there (a nested
    /// field of a supplied variable, an `{{#each}}` over nothing).
    Missing(String),
    Other(String),
}

impl Templates {
    /// Compile `source` as template `name`, checking its variables against
    /// `declared`. Errors read like `line 2, column 5: ...`.
    pub fn add(
        &mut self,
        name: &str,
        source: &str,
        declared: &BTreeSet<String>,
    ) -> Result<(), String> {
        let tpl = Template::compile(source).map_err(|e| match e.pos() {
            Some((line, col)) => format!("line {line}, column {col}: {}", e.reason()),
            None => e.reason().to_string(),
        })?;
        let mut used = BTreeSet::new();
        let mut problems = Vec::new();
        walk(&tpl.elements, Scope::Root, &mut used, &mut problems);
        let undeclared: Vec<&str> = used
            .iter()
            .filter(|v| !declared.contains(*v))
            .map(String::as_str)
            .collect();
        if !undeclared.is_empty() {
            problems.push(format!(
                "uses undeclared variable(s) {} (declare them in `variables` or `defaults`)",
                quoted(&undeclared)
            ));
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        self.reg.register_template(name, tpl);
        Ok(())
    }

    /// Render template `name` with `data` (a JSON object of variables).
    pub fn render(&self, name: &str, data: &Value) -> Result<String, RenderFailure> {
        self.reg.render(name, data).map_err(|e| match e.reason() {
            RenderErrorReason::MissingVariable(path) => {
                RenderFailure::Missing(path.clone().unwrap_or_else(|| "?".into()))
            }
            other => RenderFailure::Other(other.to_string()),
        })
    }
}

/// `a`, `b` for messages.
pub fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Names refer to the prompt's variables.
    Root,
    /// Inside `{{#each}}` / `{{#with}}`: names refer to the current item.
    Nested,
}

fn walk(
    elements: &[TemplateElement],
    scope: Scope,
    used: &mut BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    for el in elements {
        match el {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                let name_only = !ht.block && ht.params.is_empty() && ht.hash.is_empty();
                match &ht.name {
                    Parameter::Name(n) if name_only && !HELPERS.contains(&n.as_str()) => {
                        if scope == Scope::Root {
                            used.insert(n.clone());
                        }
                    }
                    Parameter::Path(p) if name_only => variable(p, scope, used),
                    name => {
                        helper(name, problems);
                        for p in ht.params.iter().chain(ht.hash.values()) {
                            param(p, scope, used, problems);
                        }
                    }
                }
            }
            TemplateElement::HelperBlock(ht) => {
                let name = helper(&ht.name, problems);
                for p in ht.params.iter().chain(ht.hash.values()) {
                    param(p, scope, used, problems);
                }
                let inner = if name.is_some_and(|n| SCOPING.contains(&n)) {
                    Scope::Nested
                } else {
                    scope
                };
                if let Some(t) = &ht.template {
                    walk(&t.elements, inner, used, problems);
                }
                if let Some(t) = &ht.inverse {
                    walk(&t.elements, scope, used, problems);
                }
            }
            // Partials and decorators (and whatever a later handlebars adds).
            _ => {
                let msg = "partials and decorators are not supported in prompt templates";
                if !problems.iter().any(|p| p == msg) {
                    problems.push(msg.into());
                }
            }
        }
    }
}

/// Check a helper name; returns it when it is a known helper.
fn helper<'a>(name: &'a Parameter, problems: &mut Vec<String>) -> Option<&'a str> {
    let n = name.as_name()?;
    if HELPERS.contains(&n) {
        Some(n)
    } else {
        problems.push(format!(
            "unknown helper `{n}` (available: {})",
            HELPERS.join(", ")
        ));
        None
    }
}

fn param(p: &Parameter, scope: Scope, used: &mut BTreeSet<String>, problems: &mut Vec<String>) {
    match p {
        Parameter::Name(n) if scope == Scope::Root => {
            used.insert(n.clone());
        }
        Parameter::Path(path) => variable(path, scope, used),
        Parameter::Subexpression(sub) => {
            walk(
                std::slice::from_ref(sub.as_element()),
                scope,
                used,
                problems,
            );
        }
        Parameter::Name(_) | Parameter::Literal(_) => {}
        _ => {}
    }
}

/// The top-level variable a path reads, if it reads one: `a.b` at the top
/// level reads `a`; `@root.a` reads `a` anywhere; `this`, `../x` and data
/// variables (`@index`) read none.
fn variable(p: &Path, scope: Scope, used: &mut BTreeSet<String>) {
    let Path::Relative((segs, raw)) = p else {
        return;
    };
    let rooted = raw.starts_with("@root");
    if scope == Scope::Nested && !rooted {
        return;
    }
    let first = if rooted {
        segs.iter().find_map(named)
    } else {
        segs.first().and_then(named)
    };
    if let Some(n) = first {
        used.insert(n.to_string());
    }
}

fn named(s: &PathSeg) -> Option<&str> {
    match s {
        PathSeg::Named(n) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn check(src: &str, names: &[&str]) -> Result<(), String> {
        Templates::default().add("t", src, &declared(names))
    }

    #[test]
    fn every_top_level_variable_must_be_declared() {
        assert!(check("Hi {{name}}, {{user.email}}", &["name", "user"]).is_ok());
        let e = check("Hi {{nmae}} and {{x}}", &["name", "x"]).unwrap_err();
        assert!(e.contains("`nmae`") && !e.contains("`x`"), "{e}");
        // Helper parameters, block parameters, subexpressions, @root.
        let e = check(
            "{{#if a}}{{b}}{{else}}{{c}}{{/if}}{{#each items}}{{name}}{{@root.d}}{{/each}}{{eq (len e) 1}}",
            &[],
        )
        .unwrap_err();
        for v in ["`a`", "`b`", "`c`", "`d`", "`e`", "`items`"] {
            assert!(e.contains(v), "{v} missing in {e}");
        }
        assert!(!e.contains("`name`"), "item fields are not variables: {e}");
    }

    #[test]
    fn unknown_helpers_partials_and_syntax_errors_are_refused() {
        let e = check("{{shout name}}", &["name"]).unwrap_err();
        assert!(e.contains("unknown helper `shout`"), "{e}");
        let e = check("{{> header}}", &[]).unwrap_err();
        assert!(e.contains("partials"), "{e}");
        let e = check("line one\n{{#if x}}never closed", &["x"]).unwrap_err();
        assert!(e.starts_with("line "), "{e}");
    }

    #[test]
    fn renders_without_escaping_and_strictly() {
        let mut t = Templates::default();
        t.add(
            "t",
            "{{q}} & {{#each xs}}<{{this}}>{{/each}}{{#if opt}}!{{/if}}",
            &declared(&["q", "xs", "opt"]),
        )
        .unwrap();
        let out = t.render("t", &json!({"q": "a<b", "xs": [1, 2]})).unwrap();
        assert_eq!(out, "a<b & <1><2>");
        assert_eq!(
            t.render("t", &json!({"xs": []})),
            Err(RenderFailure::Missing("q".into()))
        );
    }
}
