//! Config-time check of a schema: every keyword is one the validator
//! implements or a pure annotation, every keyword value has the right shape,
//! every `$ref` resolves locally and no `$ref` chain loops without consuming
//! input. Anything else is refused by name, with the schema location, so a
//! schema never silently validates less than its author meant.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::pattern::Pattern;

/// Keywords the validator asserts.
const ASSERTED: &[&str] = &[
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
    "allOf",
    "anyOf",
    "oneOf",
    "$ref",
    "$defs",
    "definitions",
];

/// Annotations: accepted and ignored. `format` is an annotation by default
/// in draft 2020-12; `discriminator` (OpenAPI, emitted by pydantic beside
/// `oneOf`) only speeds up what `oneOf` already checks.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "contentEncoding",
    "contentMediaType",
    "discriminator",
];

/// Standard keywords that would change the verdict and are not implemented.
const UNSUPPORTED: &[&str] = &[
    "not",
    "multipleOf",
    "if",
    "then",
    "else",
    "uniqueItems",
    "prefixItems",
    "additionalItems",
    "contains",
    "minContains",
    "maxContains",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contentSchema",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "$vocabulary",
];

const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "integer", "string",
];

/// Check `root`; on success return every `pattern` in it, compiled.
pub fn check(root: &Value) -> Result<BTreeMap<String, Pattern>, String> {
    if !matches!(root, Value::Object(_) | Value::Bool(_)) {
        return Err("a schema must be a JSON object or boolean".into());
    }
    let mut walk = Walk {
        patterns: BTreeMap::new(),
        refs: Vec::new(),
    };
    walk.schema(root, &mut String::new(), true)?;
    for (at, target) in &walk.refs {
        if resolve(root, target).is_none() {
            return Err(format!(
                "`$ref` {target:?} does not resolve (at {})",
                show(at)
            ));
        }
    }
    no_cycles(root)?;
    Ok(walk.patterns)
}

/// The schema `reference` points at: `#` or `#/json/pointer` in `root`.
pub fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    let mut at = root;
    if pointer.is_empty() {
        return Some(at);
    }
    for token in pointer.strip_prefix('/')?.split('/') {
        let token = percent_decode(token)?.replace("~1", "/").replace("~0", "~");
        at = match at {
            Value::Object(m) => m.get(&token)?,
            Value::Array(a) => a.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// URI fragments may percent-encode pointer characters.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn show(at: &str) -> &str {
    if at.is_empty() { "the root" } else { at }
}

struct Walk {
    patterns: BTreeMap<String, Pattern>,
    /// (schema location, reference) of every `$ref`.
    refs: Vec<(String, String)>,
}

impl Walk {
    fn schema(&mut self, s: &Value, at: &mut String, is_root: bool) -> Result<(), String> {
        let obj = match s {
            Value::Bool(_) => return Ok(()),
            Value::Object(o) => o,
            _ => {
                return Err(format!(
                    "a schema must be an object or boolean (at {})",
                    show(at)
                ));
            }
        };
        for (k, v) in obj {
            self.keyword(k, v, at, is_root)?;
        }
        Ok(())
    }

    fn keyword(
        &mut self,
        k: &str,
        v: &Value,
        at: &mut String,
        is_root: bool,
    ) -> Result<(), String> {
        let bad = |what: &str| Err(format!("`{k}` must be {what} (at {})", show(at)));
        match k {
            "type" => {
                let ok = |t: &Value| t.as_str().is_some_and(|t| TYPES.contains(&t));
                let valid = match v {
                    Value::Array(ts) => !ts.is_empty() && ts.iter().all(ok),
                    t => ok(t),
                };
                if !valid {
                    return bad("a type name or a list of them");
                }
            }
            "enum" if !v.is_array() => return bad("an array"),
            "required" if !v.as_array().is_some_and(|r| r.iter().all(Value::is_string)) => {
                return bad("an array of strings");
            }
            "minItems" | "maxItems" | "minLength" | "maxLength" if !v.is_u64() => {
                return bad("a non-negative integer");
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" if !v.is_number() => {
                return bad("a number (the draft-04 boolean form is not supported)");
            }
            "pattern" => match v {
                Value::String(p) => {
                    if !self.patterns.contains_key(p) {
                        let compiled =
                            Pattern::new(p).map_err(|e| format!("{e} (at {})", show(at)))?;
                        self.patterns.insert(p.clone(), compiled);
                    }
                }
                _ => return bad("a string"),
            },
            "$ref" => match v.as_str() {
                Some(r) if r.starts_with('#') => self.refs.push((at.clone(), r.to_string())),
                Some(r) => {
                    return Err(format!(
                        "`$ref` {r:?} is not supported: only local references (\"#/...\") are (at {})",
                        show(at)
                    ));
                }
                None => return bad("a string"),
            },
            "properties" | "$defs" | "definitions" => {
                let Value::Object(map) = v else {
                    return bad("an object of schemas");
                };
                self.map(k, map, at)?;
            }
            "additionalProperties" => self.child(v, at, &[k])?,
            "items" => match v {
                Value::Array(per) => {
                    for (i, sub) in per.iter().enumerate() {
                        self.child(sub, at, &[k, &i.to_string()])?;
                    }
                }
                sub => self.child(sub, at, &[k])?,
            },
            "allOf" | "anyOf" | "oneOf" => match v {
                Value::Array(subs) if !subs.is_empty() => {
                    for (i, sub) in subs.iter().enumerate() {
                        self.child(sub, at, &[k, &i.to_string()])?;
                    }
                }
                _ => return bad("a non-empty array of schemas"),
            },
            "$schema" | "$id" if is_root => {}
            "$id" => {
                return Err(format!(
                    "`$id` is only supported at the root (at {})",
                    show(at)
                ));
            }
            k if ASSERTED.contains(&k) || ANNOTATIONS.contains(&k) || k.starts_with("x-") => {}
            k if UNSUPPORTED.contains(&k) => {
                return Err(format!("`{k}` is not supported (at {})", show(at)));
            }
            k => {
                return Err(format!(
                    "unknown keyword `{k}` (at {}); prefix custom annotations with `x-`",
                    show(at)
                ));
            }
        }
        Ok(())
    }

    fn map(&mut self, k: &str, map: &Map<String, Value>, at: &mut String) -> Result<(), String> {
        for (name, sub) in map {
            self.child(sub, at, &[k, name])?;
        }
        Ok(())
    }

    fn child(&mut self, sub: &Value, at: &mut String, tokens: &[&str]) -> Result<(), String> {
        let len = at.len();
        for t in tokens {
            push_token(at, t);
        }
        let r = self.schema(sub, at, false);
        at.truncate(len);
        r
    }
}

/// Append a JSON pointer token, escaped.
pub fn push_token(at: &mut String, token: &str) {
    at.push('/');
    at.push_str(&token.replace('~', "~0").replace('/', "~1"));
}

/// Refuse a `$ref` chain that comes back to a schema without descending into
/// the instance (`$ref` and `allOf`/`anyOf`/`oneOf` stay on the same value):
/// validating with it would recurse forever. Recursion through `properties`
/// or `items` is fine (a tree), since it ends with the data.
fn no_cycles(root: &Value) -> Result<(), String> {
    let mut done = BTreeSet::new();
    let mut stack = Vec::new();
    visit(root, "#", &mut stack, &mut done)?;
    // Definitions only reachable through `properties`/`items` are roots of
    // their own same-value chains.
    let mut all = Vec::new();
    collect_refs(root, &mut all);
    for r in all {
        visit(root, &r, &mut stack, &mut done)?;
    }
    Ok(())
}

fn visit(
    root: &Value,
    at: &str,
    stack: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Result<(), String> {
    if done.contains(at) {
        return Ok(());
    }
    if let Some(i) = stack.iter().position(|s| s == at) {
        let mut chain = stack[i..].to_vec();
        chain.push(at.to_string());
        return Err(format!(
            "`$ref` cycle that never descends into the data: {}",
            chain.join(" -> ")
        ));
    }
    let Some(Value::Object(s)) = resolve(root, at) else {
        done.insert(at.to_string());
        return Ok(());
    };
    stack.push(at.to_string());
    if let Some(Value::String(r)) = s.get("$ref") {
        visit(root, r, stack, done)?;
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(subs)) = s.get(k) {
            for i in 0..subs.len() {
                visit(root, &format!("{at}/{k}/{i}"), stack, done)?;
            }
        }
    }
    stack.pop();
    done.insert(at.to_string());
    Ok(())
}

/// Every `$ref` value in the schema tree (keyword positions only).
fn collect_refs(s: &Value, out: &mut Vec<String>) {
    let Value::Object(o) = s else { return };
    for (k, v) in o {
        match (k.as_str(), v) {
            ("$ref", Value::String(r)) => out.push(r.clone()),
            ("properties" | "$defs" | "definitions", Value::Object(m)) => {
                m.values().for_each(|sub| collect_refs(sub, out))
            }
            ("items" | "allOf" | "anyOf" | "oneOf", Value::Array(a)) => {
                a.iter().for_each(|sub| collect_refs(sub, out))
            }
            ("items" | "additionalProperties", sub) => collect_refs(sub, out),
            _ => {}
        }
    }
}
