//! Unit tests of the case-file format (`cases.rs`).
use super::*;

const YAML: &str = r#"
- name: clean
  output: fine
  expect: pass
- name: redact
  plugin: pii
  output: "a 123-45-6789"
  expect: {transform: "a [SSN]"}
- name: refuse
  input: launch codes
  expect: {reject: {code: banned, reason-contains: phrase}}
- name: order
  candidates: [{provider: p, model: a, tier: cheap}, {provider: p, model: b}]
  expect: {routes: [p/a, p/b]}
- name: budget
  estimate: {cost-usd: 2.5}
  spend: {spent-usd: 9.0, budget-usd: 10.0}
  expect: {deny: budget}
- name: cap
  estimate: {max-completion-tokens: 4000}
  expect: {cap-tokens: 500}
"#;

#[test]
fn yaml_and_jsonl_give_the_same_cases() {
    let yaml = parse(YAML, false).unwrap();
    assert_eq!(yaml.len(), 6);
    let calls: Vec<Call> = yaml.iter().map(|c| c.call_kind().unwrap()).collect();
    assert_eq!(
        calls,
        [
            Call::CheckOutput,
            Call::CheckOutput,
            Call::CheckInput,
            Call::Route,
            Call::Decide,
            Call::Decide
        ]
    );
    let jsonl = r#"
# comment
{"name": "clean", "output": "fine", "expect": "pass"}
{"name": "redact", "plugin": "pii", "output": "a 123-45-6789", "expect": {"transform": "a [SSN]"}}
"#;
    let json = parse(jsonl, true).unwrap();
    assert_eq!(json[..], yaml[..2]);
    assert!(yaml[1].applies_to("pii") && !yaml[1].applies_to("other"));
    assert!(yaml[0].applies_to("anything"));
}

#[test]
fn cases_without_a_fitting_call_are_errors() {
    let bad = parse("- {name: x, expect: pass}", false).unwrap();
    assert!(bad[0].call_kind().unwrap_err().contains("names no call"));
    let bad = parse("- {name: x, input: a, output: b, expect: pass}", false).unwrap();
    assert!(bad[0].call_kind().unwrap_err().contains("more than one"));
    let bad = parse("- {name: x, input: a, expect: allow}", false).unwrap();
    assert!(bad[0].call_kind().unwrap_err().contains("guardrail"));
    let err = parse("- {name: x, output: a, expect: pass, typo: 1}", false).unwrap_err();
    assert!(err.contains("typo"), "{err}");
}

#[test]
fn verdicts_match_their_expectations() {
    let reject = |code: &str, reason: &str| {
        Verdict::Reject(crate::plugin::Rejection {
            code: code.into(),
            reason: reason.into(),
        })
    };
    let cases = parse(YAML, false).unwrap();
    assert!(verdict_matches(&cases[0].expect, &Verdict::Pass));
    assert!(!verdict_matches(&cases[0].expect, &reject("x", "y")));
    assert!(verdict_matches(
        &cases[1].expect,
        &Verdict::Transform("a [SSN]".into())
    ));
    assert!(!verdict_matches(
        &cases[1].expect,
        &Verdict::Transform("a [SSN] ".into())
    ));
    assert!(verdict_matches(
        &cases[2].expect,
        &reject("banned", "a phrase")
    ));
    assert!(!verdict_matches(&cases[2].expect, &reject("banned", "no")));
    assert!(decision_matches(
        &cases[4].expect,
        &Decision::Deny("over budget".into())
    ));
    assert!(!decision_matches(
        &cases[5].expect,
        &Decision::CapTokens(501)
    ));
}
