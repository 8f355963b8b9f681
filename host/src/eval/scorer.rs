//! Scorers: how a suite says what a good output is. Each scores an output
//! 0..=1 and passes or fails it.
//!
//! | YAML                                             | passes when                                      |
//! |--------------------------------------------------|--------------------------------------------------|
//! | `exact: TEXT` / `{value, ignore-case}`           | the output, trimmed, equals TEXT                 |
//! | `contains: TEXT \| [TEXT...]` / `{values, ignore-case}` | every TEXT occurs                         |
//! | `not-contains: ...` (same forms)                 | no TEXT occurs                                   |
//! | `regex: PATTERN`                                 | the pattern matches somewhere                    |
//! | `json-schema: SCHEMA`                            | the output (code fences stripped) is JSON valid against SCHEMA |
//! | `numeric: {expected, tolerance, relative}`       | the first number in the output is within tolerance (absolute, or a fraction of `expected` when `relative`) |
//! | `length: {min, max, unit: chars \| words}`       | the length is within bounds                      |
//! | `guardrail: PLUGIN` / `{plugin, expect}`         | the plugin's `check-output` verdict is `expect` (`pass` default, `transform`, `reject`, `not-reject`) |
//! | `judge: CRITERIA` / `{criteria, model, pass-score}` | a model scores it at least `pass-score`/10 (criteria default: the case's `expected`) |
//! | `error: CODE`                                    | the gateway refused the request with error code or type CODE |
//!
//! Deterministic scorers score 1 or 0, except `numeric` (1 inside the
//! tolerance, then falling linearly to 0 at ten tolerances away) and the
//! judge (its score / 10).

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::run::ScoreResult;

/// A scorer as written in a suite.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScorerSpec {
    Exact(TextSpec),
    Contains(TextsSpec),
    NotContains(TextsSpec),
    Regex(String),
    JsonSchema(Value),
    Numeric(NumericSpec),
    Length(LengthSpec),
    Guardrail(GuardrailSpec),
    Judge(JudgeSpec),
    Error(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TextSpec {
    Plain(String),
    Full {
        value: String,
        #[serde(default, rename = "ignore-case")]
        ignore_case: bool,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TextsSpec {
    One(String),
    Many(Vec<String>),
    Full {
        values: Vec<String>,
        #[serde(default, rename = "ignore-case")]
        ignore_case: bool,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericSpec {
    pub expected: f64,
    #[serde(default)]
    pub tolerance: f64,
    #[serde(default)]
    pub relative: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthSpec {
    #[serde(default)]
    pub min: Option<usize>,
    #[serde(default)]
    pub max: Option<usize>,
    #[serde(default)]
    pub unit: LengthUnit,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LengthUnit {
    #[default]
    Chars,
    Words,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GuardrailSpec {
    Plugin(String),
    Full {
        plugin: String,
        #[serde(default)]
        expect: Expect,
    },
}

/// The verdict a guardrail scorer wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    #[default]
    Pass,
    Transform,
    Reject,
    /// The 0.2 contract's "a person should look".
    Flag,
    NotReject,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum JudgeSpec {
    Criteria(String),
    Full {
        #[serde(default)]
        criteria: Option<String>,
        #[serde(default)]
        model: Option<String>,
        #[serde(default, rename = "pass-score")]
        pass_score: Option<f64>,
    },
}

/// A compiled scorer.
#[derive(Debug)]
pub enum Scorer {
    Exact {
        value: String,
        ignore_case: bool,
    },
    Contains {
        values: Vec<String>,
        ignore_case: bool,
        negate: bool,
    },
    Regex(Regex),
    JsonSchema(Box<jsonschema::Validator>),
    Numeric(NumericSpec),
    Length(LengthSpec),
    Guardrail {
        plugin: String,
        expect: Expect,
    },
    Judge {
        criteria: Option<String>,
        model: Option<String>,
        pass_score: Option<f64>,
    },
    Error(String),
}

impl Scorer {
    /// Compile a spec: regexes and schemas are checked here, at suite load.
    pub fn compile(spec: ScorerSpec) -> Result<Scorer, String> {
        Ok(match spec {
            ScorerSpec::Exact(TextSpec::Plain(value)) => Scorer::Exact {
                value,
                ignore_case: false,
            },
            ScorerSpec::Exact(TextSpec::Full { value, ignore_case }) => {
                Scorer::Exact { value, ignore_case }
            }
            ScorerSpec::Contains(t) => texts(t, false)?,
            ScorerSpec::NotContains(t) => texts(t, true)?,
            ScorerSpec::Regex(p) => {
                Scorer::Regex(Regex::new(&p).map_err(|e| format!("regex: {e}"))?)
            }
            ScorerSpec::JsonSchema(schema) => Scorer::JsonSchema(Box::new(
                jsonschema::validator_for(&schema).map_err(|e| format!("json-schema: {e}"))?,
            )),
            ScorerSpec::Numeric(n) => {
                if !(n.expected.is_finite() && n.tolerance.is_finite() && n.tolerance >= 0.0) {
                    return Err("numeric: `expected` must be a number and `tolerance` >= 0".into());
                }
                Scorer::Numeric(n)
            }
            ScorerSpec::Length(l) => {
                if l.min.is_none() && l.max.is_none() {
                    return Err("length: give `min`, `max` or both".into());
                }
                if let (Some(a), Some(b)) = (l.min, l.max)
                    && a > b
                {
                    return Err(format!("length: min {a} is above max {b}"));
                }
                Scorer::Length(l)
            }
            ScorerSpec::Guardrail(GuardrailSpec::Plugin(plugin)) => Scorer::Guardrail {
                plugin,
                expect: Expect::Pass,
            },
            ScorerSpec::Guardrail(GuardrailSpec::Full { plugin, expect }) => {
                Scorer::Guardrail { plugin, expect }
            }
            ScorerSpec::Judge(JudgeSpec::Criteria(c)) => Scorer::Judge {
                criteria: Some(c),
                model: None,
                pass_score: None,
            },
            ScorerSpec::Judge(JudgeSpec::Full {
                criteria,
                model,
                pass_score,
            }) => {
                if pass_score.is_some_and(|p| !(0.0..=10.0).contains(&p)) {
                    return Err("judge: `pass-score` must be between 0 and 10".into());
                }
                Scorer::Judge {
                    criteria,
                    model,
                    pass_score,
                }
            }
            ScorerSpec::Error(code) => Scorer::Error(code),
        })
    }

    /// The scorer's kind, as in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            Scorer::Exact { .. } => "exact",
            Scorer::Contains { negate: false, .. } => "contains",
            Scorer::Contains { negate: true, .. } => "not-contains",
            Scorer::Regex(_) => "regex",
            Scorer::JsonSchema(_) => "json-schema",
            Scorer::Numeric(_) => "numeric",
            Scorer::Length(_) => "length",
            Scorer::Guardrail { .. } => "guardrail",
            Scorer::Judge { .. } => "judge",
            Scorer::Error(_) => "error",
        }
    }

    /// What it checks, for people.
    pub fn label(&self) -> String {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Scorer::Exact { value, .. } => format!("exact {value:?}"),
            Scorer::Contains { values, negate, .. } => {
                format!(
                    "{} {}",
                    if *negate { "not-contains" } else { "contains" },
                    list(values)
                )
            }
            Scorer::Regex(r) => format!("regex /{}/", r.as_str()),
            Scorer::JsonSchema(_) => "json-schema".into(),
            Scorer::Numeric(n) => format!(
                "numeric {} ± {}{}",
                n.expected,
                n.tolerance,
                if n.relative { " (relative)" } else { "" }
            ),
            Scorer::Length(l) => format!(
                "length {}..{} {}",
                l.min.map(|m| m.to_string()).unwrap_or_default(),
                l.max.map(|m| m.to_string()).unwrap_or_default(),
                if l.unit == LengthUnit::Words {
                    "words"
                } else {
                    "chars"
                }
            ),
            Scorer::Guardrail { plugin, expect } => {
                format!("guardrail {plugin} expects {expect:?}").to_lowercase()
            }
            Scorer::Judge { criteria, .. } => match criteria {
                Some(c) => format!("judge: {c}"),
                None => "judge: the expected behaviour".into(),
            },
            Scorer::Error(code) => format!("error {code}"),
        }
    }

    /// Score `output` with a scorer that needs nothing but the text; None
    /// for the guardrail, judge and error scorers (the runner does those).
    pub fn check(&self, output: &str) -> Option<ScoreResult> {
        let name = self.name();
        let label = self.label();
        let fold = |s: &str, ic: bool| if ic { s.to_lowercase() } else { s.to_string() };
        Some(match self {
            Scorer::Exact { value, ignore_case } => {
                let ok = fold(output.trim(), *ignore_case) == fold(value.trim(), *ignore_case);
                ScoreResult::pass_fail(name, label, ok, None)
            }
            Scorer::Contains {
                values,
                ignore_case,
                negate,
            } => {
                let hay = fold(output, *ignore_case);
                let hits: Vec<&String> = values
                    .iter()
                    .filter(|v| hay.contains(&fold(v, *ignore_case)))
                    .collect();
                let (ok, detail) = if *negate {
                    (
                        hits.is_empty(),
                        (!hits.is_empty()).then(|| format!("found {:?}", hits[0])),
                    )
                } else {
                    let missing: Vec<&String> =
                        values.iter().filter(|v| !hits.contains(v)).collect();
                    (
                        missing.is_empty(),
                        (!missing.is_empty()).then(|| format!("missing {missing:?}")),
                    )
                };
                ScoreResult::pass_fail(name, label, ok, detail)
            }
            Scorer::Regex(r) => ScoreResult::pass_fail(name, label, r.is_match(output), None),
            Scorer::JsonSchema(v) => match serde_json::from_str::<Value>(strip_fence(output)) {
                Err(e) => {
                    ScoreResult::pass_fail(name, label, false, Some(format!("not JSON: {e}")))
                }
                Ok(doc) => {
                    let errs: Vec<String> = v
                        .iter_errors(&doc)
                        .take(3)
                        .map(|e| {
                            let at = e.instance_path().to_string();
                            format!("{}: {e}", if at.is_empty() { "/" } else { &at })
                        })
                        .collect();
                    ScoreResult::pass_fail(
                        name,
                        label,
                        errs.is_empty(),
                        (!errs.is_empty()).then(|| errs.join("; ")),
                    )
                }
            },
            Scorer::Numeric(n) => numeric(n, output, name, label),
            Scorer::Length(l) => {
                let len = match l.unit {
                    LengthUnit::Chars => output.trim().chars().count(),
                    LengthUnit::Words => output.split_whitespace().count(),
                };
                let ok = l.min.is_none_or(|m| len >= m) && l.max.is_none_or(|m| len <= m);
                ScoreResult::pass_fail(name, label, ok, Some(format!("length {len}")))
            }
            Scorer::Guardrail { .. } | Scorer::Judge { .. } | Scorer::Error(_) => return None,
        })
    }
}

fn texts(t: TextsSpec, negate: bool) -> Result<Scorer, String> {
    let (values, ignore_case) = match t {
        TextsSpec::One(s) => (vec![s], false),
        TextsSpec::Many(v) => (v, false),
        TextsSpec::Full {
            values,
            ignore_case,
        } => (values, ignore_case),
    };
    if values.is_empty() || values.iter().any(String::is_empty) {
        return Err("contains: give at least one non-empty text".into());
    }
    Ok(Scorer::Contains {
        values,
        ignore_case,
        negate,
    })
}

/// The JSON inside a Markdown code fence, or the text itself.
fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let body = rest.split_once('\n').map_or("", |(_, b)| b);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

fn numeric(n: &NumericSpec, output: &str, name: &str, label: String) -> ScoreResult {
    static NUMBER: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"-?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?").expect("valid regex")
    });
    let found = NUMBER
        .find_iter(output)
        .find_map(|m| m.as_str().replace(',', "").parse::<f64>().ok());
    let Some(x) = found else {
        return ScoreResult::pass_fail(name, label, false, Some("no number in the output".into()));
    };
    let tol = if n.relative {
        n.tolerance * n.expected.abs()
    } else {
        n.tolerance
    };
    let off = (x - n.expected).abs();
    let ok = off <= tol;
    // 1 within tolerance, then linearly down to 0 at ten tolerances (or
    // ten units when the tolerance is 0).
    let scale = if tol > 0.0 { tol * 10.0 } else { 10.0 };
    let score = if ok {
        1.0
    } else {
        (1.0 - (off - tol) / scale).clamp(0.0, 1.0)
    };
    ScoreResult {
        scorer: name.into(),
        label,
        score: Some(score),
        passed: ok,
        detail: Some(format!("found {x}")),
        error: None,
        cost_usd: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scorer(v: Value) -> Scorer {
        Scorer::compile(serde_json::from_value(v).unwrap()).unwrap()
    }

    fn passes(v: Value, output: &str) -> bool {
        scorer(v).check(output).unwrap().passed
    }

    #[test]
    fn text_scorers() {
        assert!(passes(json!({"exact": "Paris"}), " Paris\n"));
        assert!(!passes(json!({"exact": "Paris"}), "paris"));
        assert!(passes(
            json!({"exact": {"value": "Paris", "ignore-case": true}}),
            "paris"
        ));
        assert!(passes(
            json!({"contains": ["Paris", "France"]}),
            "Paris, France"
        ));
        let r = scorer(json!({"contains": ["Paris", "Lyon"]}))
            .check("Paris")
            .unwrap();
        assert_eq!(
            (r.passed, r.detail.as_deref()),
            (false, Some("missing [\"Lyon\"]"))
        );
        assert!(passes(
            json!({"not-contains": {"values": ["SORRY"], "ignore-case": true}}),
            "fine"
        ));
        assert!(!passes(json!({"not-contains": "sorry"}), "so sorry"));
        assert!(passes(json!({"regex": "^\\d{3}-\\d{4}$"}), "555-1234"));
        assert!(Scorer::compile(serde_json::from_value(json!({"regex": "("})).unwrap()).is_err());
    }

    #[test]
    fn json_schema_numeric_and_length() {
        let schema = json!({"json-schema": {"type": "object", "required": ["name"], "properties": {"age": {"type": "integer"}}}});
        assert!(passes(
            schema.clone(),
            "```json\n{\"name\": \"x\", \"age\": 3}\n```"
        ));
        let r = scorer(schema.clone())
            .check("{\"age\": \"three\"}")
            .unwrap();
        assert!(
            !r.passed && r.detail.as_ref().unwrap().contains("name"),
            "{r:?}"
        );
        assert!(!passes(schema, "not json"));
        let n = json!({"numeric": {"expected": 42, "tolerance": 0.5}});
        assert!(passes(n.clone(), "The answer is 42.3."));
        let r = scorer(n).check("It is 43").unwrap();
        assert!(!r.passed && (r.score.unwrap() - 0.9).abs() < 1e-9, "{r:?}");
        assert!(passes(
            json!({"numeric": {"expected": 1000, "tolerance": 0.01, "relative": true}}),
            "1,005 units"
        ));
        assert!(passes(
            json!({"length": {"max": 3, "unit": "words"}}),
            "one two three"
        ));
        assert!(!passes(json!({"length": {"min": 5}}), "abc"));
        assert!(Scorer::compile(serde_json::from_value(json!({"length": {}})).unwrap()).is_err());
    }

    #[test]
    fn shorthands_of_model_scorers() {
        let g = scorer(json!({"guardrail": "pii-redact"}));
        assert!(matches!(
            g,
            Scorer::Guardrail {
                expect: Expect::Pass,
                ..
            }
        ));
        let g = scorer(json!({"guardrail": {"plugin": "pii-redact", "expect": "not-reject"}}));
        assert!(matches!(
            g,
            Scorer::Guardrail {
                expect: Expect::NotReject,
                ..
            }
        ));
        assert!(g.check("x").is_none());
        let j = scorer(json!({"judge": {"pass-score": 8}}));
        assert!(matches!(
            j,
            Scorer::Judge {
                criteria: None,
                pass_score: Some(8.0),
                ..
            }
        ));
        assert_eq!(scorer(json!({"judge": "polite"})).label(), "judge: polite");
    }
}
