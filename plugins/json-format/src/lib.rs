//! `json-format`: an output guardrail requiring JSON answers.
//!
//! Non-streamed answers: valid JSON passes; otherwise JSON inside a markdown
//! code fence (```` ```json ````) is extracted and returned as a transform;
//! anything else is rejected (`invalid_json`). With a `schema` configured the
//! JSON must also match it (`schema_mismatch`, naming the JSON pointer).
//!
//! Streams: JSON can only be judged whole. Windows before the last pass
//! (except that, without fence extraction, text that cannot start a JSON
//! value is refused at once), and the final window judges `emitted + window`.
//! Emitted text cannot be rewritten, so on a stream a fenced answer is only
//! validated, never stripped.
//!
//! Config: `schema` (JSON string or table), `extract-fenced` (bool, true).
//! [`validate_config`] checks both before any answer is judged.

mod keywords;
mod pattern;
mod schema;

pub use schema::{Schema, validate};
use serde_json::Value;
use sluice_sdk::{
    ConfigError, Guardrail, OutputContext, OutputPart, Request, Verdict, config, config_or,
};

/// The `[config]` keys this plugin reads.
const KEYS: &[&str] = &["schema", "extract-fenced"];

/// The JSON inside the first markdown code fence, if any.
pub fn fenced(text: &str) -> Option<&str> {
    let open = text.find("```")?;
    let after = &text[open + 3..];
    // Skip the info string (`json`, `JSON5`, ...) up to the end of the line.
    let body_start = after.find('\n')? + 1;
    let body = &after[body_start..];
    let close = body.find("```")?;
    Some(body[..close].trim())
}

/// True when `text` (trimmed) could be the start of a JSON value.
fn can_start_json(text: &str) -> bool {
    match text.trim_start().bytes().next() {
        None => true,
        Some(c) => {
            matches!(c, b'{' | b'[' | b'"' | b'-' | b't' | b'f' | b'n') || c.is_ascii_digit()
        }
    }
}

fn conform(schema: &Option<Schema>, v: &Value) -> Result<(), Verdict> {
    match schema {
        Some(s) => s.validate(v).map_err(|e| {
            Verdict::reject(
                "schema_mismatch",
                format!("JSON does not match the schema: {e}"),
            )
        }),
        None => Ok(()),
    }
}

/// Judge a complete answer. `streamed`: earlier text was already sent, so
/// no transform is possible.
pub fn judge(text: &str, schema: &Option<Schema>, extract: bool, streamed: bool) -> Verdict {
    let err = match serde_json::from_str::<Value>(text) {
        Ok(v) => return conform(schema, &v).err().unwrap_or(Verdict::Pass),
        Err(e) => e,
    };
    if extract
        && let Some(inner) = fenced(text)
        && let Ok(v) = serde_json::from_str::<Value>(inner)
    {
        if let Err(reject) = conform(schema, &v) {
            return reject;
        }
        return if streamed {
            Verdict::Pass
        } else {
            Verdict::transform(inner)
        };
    }
    Verdict::reject(
        "invalid_json",
        format!("the answer is not valid JSON: {err}"),
    )
}

/// Parse the raw `schema` setting (as the host renders it) into a checked
/// schema. A TOML table arrives as JSON; a JSON string arrives verbatim (also
/// JSON), or quoted once more by a table-to-string rendering.
pub fn parse_schema(raw: &str) -> Result<Schema, ConfigError> {
    let err = |message: String| ConfigError {
        key: "schema".into(),
        message,
    };
    let value: Value = serde_json::from_str(raw).map_err(|e| err(format!("invalid JSON: {e}")))?;
    let value = match value {
        Value::String(s) => {
            serde_json::from_str(&s).map_err(|e| err(format!("invalid JSON: {e}")))?
        }
        other => other,
    };
    Schema::new(value).map_err(err)
}

/// Check this plugin's `[config]` entries (key, value as the host renders
/// it): unknown keys, a malformed `extract-fenced`, and a `schema` that is
/// not JSON or uses a keyword the validator does not implement are refused,
/// each by name.
pub fn validate_config<K: AsRef<str>, V: AsRef<str>>(
    entries: &[(K, V)],
) -> Result<(), ConfigError> {
    for (k, v) in entries {
        let (k, v) = (k.as_ref(), v.as_ref());
        match k {
            "schema" => {
                parse_schema(v)?;
            }
            "extract-fenced" => {
                v.trim()
                    .trim_matches('"')
                    .parse::<bool>()
                    .map_err(|e| ConfigError {
                        key: k.into(),
                        message: format!("cannot parse {v:?}: {e}"),
                    })?;
            }
            _ => {
                return Err(ConfigError {
                    key: k.into(),
                    message: format!("unknown key (this plugin reads {})", KEYS.join(", ")),
                });
            }
        }
    }
    Ok(())
}

fn schema_from_config() -> Option<Schema> {
    config("schema").map(|raw| parse_schema(&raw).unwrap_or_else(|e| e.trap()))
}

/// The exported guardrail.
pub struct JsonFormat;

impl Guardrail for JsonFormat {
    fn check_input(_req: &Request) -> Verdict {
        Verdict::Pass
    }

    fn check_output(_req: &Request, output: String, ctx: OutputContext) -> Verdict {
        // The schema is the answer's: a refusal or a tool call's name and
        // arguments (the tool's own schema) are not held to it.
        if ctx.part != OutputPart::Content {
            return Verdict::Pass;
        }
        let extract = config_or("extract-fenced", true);
        let streamed = ctx.window_index > 0 || !ctx.emitted.is_empty();
        if !ctx.is_final {
            if !extract && !can_start_json(&format!("{}{}", ctx.emitted, output)) {
                return Verdict::reject(
                    "invalid_json",
                    "the answer does not start with a JSON value",
                );
            }
            return Verdict::Pass;
        }
        let schema = schema_from_config();
        if streamed {
            judge(
                &format!("{}{}", ctx.emitted, output),
                &schema,
                extract,
                true,
            )
        } else {
            judge(&output, &schema, extract, false)
        }
    }
}

sluice_sdk::export_guardrail!(JsonFormat);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::testing::{GuardrailTest, clear_config, code, set_config};

    const SCHEMA: &str =
        r#"{"type":"object","required":["answer"],"properties":{"answer":{"type":"string"}}}"#;

    #[test]
    fn valid_json_passes_and_prose_is_rejected() {
        clear_config();
        assert_eq!(JsonFormat::output(r#" {"a": [1, 2]} "#), Verdict::Pass);
        let v = JsonFormat::output("Sure! The answer is 42.");
        assert!(
            matches!(&v, Verdict::Reject(r) if r.code == "invalid_json" && r.reason.contains("line 1 column 1")),
            "{v:?}"
        );
    }

    #[test]
    fn fenced_json_is_extracted() {
        clear_config();
        let text = "Here you go:\n```json\n{\"answer\": \"yes\"}\n```\nAnything else?";
        assert_eq!(
            JsonFormat::output(text),
            Verdict::transform(r#"{"answer": "yes"}"#)
        );
        set_config(&[("extract-fenced", "false")]);
        assert_eq!(code(&JsonFormat::output(text)), "invalid_json");
    }

    #[test]
    fn schema_from_string_or_table() {
        set_config(&[("schema", SCHEMA)]);
        assert_eq!(JsonFormat::output(r#"{"answer": "ok"}"#), Verdict::Pass);
        assert_eq!(
            JsonFormat::output(r#"{"answer": 1}"#),
            Verdict::reject(
                "schema_mismatch",
                "JSON does not match the schema: /answer: expected \"string\", got integer"
            )
        );
        // Fenced JSON must match too.
        assert_eq!(
            code(&JsonFormat::output("```json\n{}\n```")),
            "schema_mismatch"
        );
        // A schema given as a JSON string inside JSON (double-encoded) also works.
        let quoted = serde_json::to_string(SCHEMA).unwrap();
        set_config(&[("schema", &quoted)]);
        assert_eq!(
            code(&JsonFormat::output(r#"{"nope": 1}"#)),
            "schema_mismatch"
        );
        set_config(&[("schema", "[1]")]);
        assert!(std::panic::catch_unwind(|| JsonFormat::output("{}")).is_err());
    }

    #[test]
    fn streams_decide_on_the_final_window() {
        clear_config();
        assert_eq!(
            JsonFormat::output_with("{\"answer\": ", OutputContext::window("", 0, false)),
            Verdict::Pass
        );
        assert_eq!(
            JsonFormat::output_with("\"ok\"}", OutputContext::window("{\"answer\": ", 1, true)),
            Verdict::Pass
        );
        assert_eq!(
            code(&JsonFormat::output_with(
                "\"ok\"",
                OutputContext::window("{\"answer\": ", 1, true)
            )),
            "invalid_json"
        );
        // Fenced on a stream: validated, not stripped (already sent).
        assert_eq!(
            JsonFormat::output_with(
                "1}\n```",
                OutputContext::window("```json\n{\"a\": ", 1, true)
            ),
            Verdict::Pass
        );
        // Without fence extraction, prose is refused at the first window.
        set_config(&[("extract-fenced", "false")]);
        assert_eq!(
            code(&JsonFormat::output_with(
                "Sure, here",
                OutputContext::window("", 0, false)
            )),
            "invalid_json"
        );
        assert_eq!(
            JsonFormat::output_with("[1,", OutputContext::window("", 0, false)),
            Verdict::Pass
        );
    }
}
