//! A compact JSON Schema validator for the keywords answers usually need,
//! including pydantic's `model_json_schema()` output (`$defs` + `$ref`,
//! `anyOf` for `Optional`, annotations). A full validator crate (jsonschema)
//! is far too heavy for a guest that is instantiated per call. Keywords it
//! does not implement are refused when the schema is loaded
//! ([`crate::keywords`]), never silently ignored.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::keywords;
use crate::pattern::Pattern;

/// How deep `check` may recurse (schema levels, `$ref` hops included).
/// Cycles that never descend into the data are refused at load; this bounds
/// what is left (deep data through recursive definitions) well inside the
/// guest's stack.
const MAX_DEPTH: usize = 512;

/// A checked schema with its patterns compiled.
#[derive(Debug)]
pub struct Schema {
    root: Value,
    patterns: BTreeMap<String, Pattern>,
}

impl Schema {
    /// Check `root` (see [`crate::keywords`]); its patterns come compiled.
    pub fn new(root: Value) -> Result<Schema, String> {
        let patterns = keywords::check(&root)?;
        Ok(Schema { root, patterns })
    }

    /// Validate `value`; the error names the JSON pointer.
    pub fn validate(&self, value: &Value) -> Result<(), String> {
        let mut path = String::new();
        let mut cx = Cx {
            schema: self,
            depth: 0,
        };
        cx.check(&self.root, value, &mut path).map_err(|e| {
            let at = if e.0.is_empty() {
                "(root)".to_string()
            } else {
                e.0
            };
            format!("{at}: {}", e.1)
        })
    }
}

/// Check `schema` and validate `value` against it (tests and one-offs).
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    Schema::new(schema.clone())?.validate(value)
}

type Failure = (String, String);

fn fail(path: &str, msg: impl Into<String>) -> Result<(), Failure> {
    Err((path.to_string(), msg.into()))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        other => type_name(v) == other,
    }
}

struct Cx<'a> {
    schema: &'a Schema,
    depth: usize,
}

impl Cx<'_> {
    fn check(&mut self, schema: &Value, v: &Value, path: &mut String) -> Result<(), Failure> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return fail(path, "the schema nests too deeply for this value");
        }
        let r = self.check_here(schema, v, path);
        self.depth -= 1;
        r
    }

    fn check_here(&mut self, schema: &Value, v: &Value, path: &mut String) -> Result<(), Failure> {
        let s: &Map<String, Value> = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return fail(path, "no value is allowed here"),
            Value::Object(s) => s,
            _ => return Ok(()),
        };
        if let Some(t) = s.get("type") {
            let ok = match t {
                Value::String(t) => is_type(v, t),
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| is_type(v, t)),
                _ => true,
            };
            if !ok {
                return fail(
                    path,
                    format!("expected {}, got {}", compact(t), type_name(v)),
                );
            }
        }
        if let Some(Value::Array(options)) = s.get("enum")
            && !options.contains(v)
        {
            return fail(
                path,
                format!(
                    "{} is not one of {}",
                    compact(v),
                    compact(&Value::Array(options.clone()))
                ),
            );
        }
        if let Some(c) = s.get("const")
            && c != v
        {
            return fail(path, format!("expected {}", compact(c)));
        }
        if let Some(Value::String(r)) = s.get("$ref") {
            // Resolvable: checked at load.
            let target = keywords::resolve(&self.schema.root, r).unwrap_or(&Value::Bool(true));
            self.check(target, v, path)?;
        }
        match v {
            Value::Number(n) => check_number(s, n.as_f64().unwrap_or(f64::NAN), path)?,
            Value::String(text) => {
                let n = text.chars().count() as f64;
                if let Some(min) = s
                    .get("minLength")
                    .and_then(Value::as_f64)
                    .filter(|m| n < *m)
                {
                    return fail(path, format!("string shorter than {min}"));
                }
                if let Some(max) = s
                    .get("maxLength")
                    .and_then(Value::as_f64)
                    .filter(|m| n > *m)
                {
                    return fail(path, format!("string longer than {max}"));
                }
                if let Some(Value::String(p)) = s.get("pattern")
                    && self
                        .schema
                        .patterns
                        .get(p)
                        .is_some_and(|re| !re.is_match(text))
                {
                    return fail(path, format!("string does not match the pattern {p:?}"));
                }
            }
            Value::Array(items) => self.check_array(s, items, path)?,
            Value::Object(obj) => self.check_object(s, obj, path)?,
            _ => {}
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            for sub in all {
                self.check(sub, v, path)?;
            }
        }
        if let Some(Value::Array(any)) = s.get("anyOf")
            && !any
                .iter()
                .any(|sub| self.check(sub, v, &mut path.clone()).is_ok())
        {
            return fail(path, "matches none of anyOf");
        }
        if let Some(Value::Array(one)) = s.get("oneOf") {
            let n = one
                .iter()
                .filter(|sub| self.check(sub, v, &mut path.clone()).is_ok())
                .count();
            if n != 1 {
                return fail(path, format!("matches {n} of oneOf, expected exactly 1"));
            }
        }
        Ok(())
    }
}

fn check_number(s: &Map<String, Value>, n: f64, path: &str) -> Result<(), Failure> {
    let get = |k: &str| s.get(k).and_then(Value::as_f64);
    if let Some(m) = get("minimum").filter(|m| n < *m) {
        return fail(path, format!("{n} is less than the minimum {m}"));
    }
    if let Some(m) = get("maximum").filter(|m| n > *m) {
        return fail(path, format!("{n} is greater than the maximum {m}"));
    }
    if let Some(m) = get("exclusiveMinimum").filter(|m| n <= *m) {
        return fail(path, format!("{n} is not greater than {m}"));
    }
    if let Some(m) = get("exclusiveMaximum").filter(|m| n >= *m) {
        return fail(path, format!("{n} is not less than {m}"));
    }
    Ok(())
}

impl Cx<'_> {
    fn check_array(
        &mut self,
        s: &Map<String, Value>,
        items: &[Value],
        path: &mut String,
    ) -> Result<(), Failure> {
        let n = items.len() as f64;
        if let Some(min) = s.get("minItems").and_then(Value::as_f64).filter(|m| n < *m) {
            return fail(path, format!("fewer than {min} items"));
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_f64).filter(|m| n > *m) {
            return fail(path, format!("more than {max} items"));
        }
        let len = path.len();
        for (i, item) in items.iter().enumerate() {
            // `items` as one schema for all, or (older drafts) one per position.
            let sub = match s.get("items") {
                Some(Value::Array(per)) => per.get(i),
                other => other,
            };
            if let Some(sub) = sub {
                path.push_str(&format!("/{i}"));
                self.check(sub, item, path)?;
                path.truncate(len);
            }
        }
        Ok(())
    }

    fn check_object(
        &mut self,
        s: &Map<String, Value>,
        obj: &Map<String, Value>,
        path: &mut String,
    ) -> Result<(), Failure> {
        if let Some(Value::Array(req)) = s.get("required")
            && let Some(missing) = req
                .iter()
                .filter_map(Value::as_str)
                .find(|k| !obj.contains_key(*k))
        {
            return fail(path, format!("missing required property {missing:?}"));
        }
        let props = s.get("properties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        let len = path.len();
        for (k, v) in obj {
            let sub = match props.and_then(|p| p.get(k)) {
                Some(sub) => sub,
                None => match additional {
                    Some(Value::Bool(false)) => {
                        return fail(path, format!("property {k:?} is not allowed"));
                    }
                    Some(sub @ Value::Object(_)) => sub,
                    _ => continue,
                },
            };
            keywords::push_token(path, k);
            self.check(sub, v, path)?;
            path.truncate(len);
        }
        Ok(())
    }
}

/// A value for a message, cut short if long.
fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}...", &s[..s.floor_char_boundary(57)])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(schema: Value, v: Value) -> String {
        validate(&schema, &v).unwrap_err()
    }

    #[test]
    fn types_and_unions() {
        assert!(validate(&json!({"type": "integer"}), &json!(3.0)).is_ok());
        assert_eq!(
            err(json!({"type": "integer"}), json!(3.5)),
            "(root): expected \"integer\", got number"
        );
        assert!(validate(&json!({"type": ["string", "null"]}), &json!(null)).is_ok());
        assert!(validate(&json!(false), &json!(1)).is_err());
        assert!(validate(&json!({}), &json!({"any": [1]})).is_ok());
    }

    #[test]
    fn objects_report_pointer() {
        let schema = json!({
            "type": "object",
            "required": ["items"],
            "additionalProperties": false,
            "properties": {"items": {"type": "array", "maxItems": 2,
                "items": {"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}}}}
        });
        assert!(validate(&schema, &json!({"items": [{"qty": 2}]})).is_ok());
        assert_eq!(
            err(schema.clone(), json!({})),
            "(root): missing required property \"items\""
        );
        assert_eq!(
            err(schema.clone(), json!({"items": [], "x": 1})),
            "(root): property \"x\" is not allowed"
        );
        assert_eq!(
            err(schema.clone(), json!({"items": [{"qty": 1}, {"qty": 0}]})),
            "/items/1/qty: 0 is less than the minimum 1"
        );
        assert_eq!(
            err(schema, json!({"items": [1, 2, 3]})),
            "/items: more than 2 items"
        );
    }

    #[test]
    fn strings_enums_and_combinators() {
        assert_eq!(
            err(json!({"minLength": 2}), json!("é")),
            "(root): string shorter than 2"
        );
        assert_eq!(
            err(json!({"maxLength": 1}), json!("ab")),
            "(root): string longer than 1"
        );
        assert_eq!(
            err(json!({"enum": ["a", "b"]}), json!("c")),
            "(root): \"c\" is not one of [\"a\",\"b\"]"
        );
        assert!(
            validate(
                &json!({"anyOf": [{"type": "string"}, {"type": "number"}]}),
                &json!(1)
            )
            .is_ok()
        );
        assert!(
            validate(
                &json!({"oneOf": [{"type": "number"}, {"type": "integer"}]}),
                &json!(1)
            )
            .is_err()
        );
        assert!(validate(&json!({"exclusiveMaximum": 1}), &json!(1)).is_err());
        assert!(Schema::new(json!("string")).is_err());
    }
}
