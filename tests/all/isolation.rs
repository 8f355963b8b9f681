//! Isolation between calls: a fresh instance per call by default, so no
//! call sees what an earlier one (another request's) left in guest memory;
//! `[limits] calls-per-instance = N` opts in to reuse, reported as
//! weakened isolation, bounded by N, and never after a failed call.

use sluice::plugin::audit::audit;
use sluice::plugin::{Isolation, PluginFailure, PluginsConfig, Verdict};

use sluice_guests as guests;

use crate::support::plugins::{load, request, whole};
use crate::support::timing_sensitive;

/// What the probe answers to `CALLS`: the `check-output` calls its
/// instance has answered, this one included.
async fn calls_seen(p: &sluice::plugin::Plugin) -> String {
    match p.check_output(&request("hi"), "CALLS", &whole()).await {
        Ok(Verdict::Transform(t)) => t,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_call_gets_a_fresh_instance_by_default() {
    let (_d, rt, p) = load(guests::TEST_PROBE, "kind = \"guardrail\"\n");
    for _ in 0..4 {
        assert_eq!(calls_seen(&p).await, "calls=1");
    }
    assert_eq!(p.idle_reusable(), 0);
    assert_eq!((p.stats().calls, p.stats().reused), (4, 0));
    let status = rt.statuses().pop().unwrap();
    assert_eq!(status.isolation, Some(Isolation::Fresh));
}

#[tokio::test]
async fn an_instance_serves_at_most_calls_per_instance_calls() {
    let (_d, rt, p) = load(
        guests::TEST_PROBE,
        "kind = \"guardrail\"\n[limits]\ncalls-per-instance = 3\n",
    );
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(calls_seen(&p).await);
    }
    // Three calls per instance, then a fresh one.
    assert_eq!(
        seen,
        [
            "calls=1", "calls=2", "calls=3", "calls=1", "calls=2", "calls=3", "calls=1"
        ]
    );
    // Counted apart (`sluice_plugin_instantiations_total` is the rest).
    assert_eq!((p.stats().calls, p.stats().reused), (7, 4));
    let status = rt.statuses().pop().unwrap();
    assert_eq!(status.isolation, Some(Isolation::Reused));
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["isolation"], "reused", "{json}");
}

#[tokio::test]
async fn an_instance_is_not_reused_after_a_refused_answer() {
    let (_d, _rt, p) = load(
        guests::TEST_PROBE,
        "kind = \"guardrail\"\n[limits]\ncalls-per-instance = 100\nmax-output-kb = 1\n",
    );
    assert_eq!(calls_seen(&p).await, "calls=1");
    assert_eq!(calls_seen(&p).await, "calls=2");
    // The report quotes the last user message: over 1 KiB, so refused.
    let long = request(&"x".repeat(2000));
    let refused = p.check_output(&long, "REPORT", &whole()).await;
    assert!(
        matches!(refused, Err(PluginFailure::OutputTooLarge { .. })),
        "{refused:?}"
    );
    assert_eq!(p.idle_reusable(), 0);
    assert_eq!(calls_seen(&p).await, "calls=1", "a fresh instance");
}

#[tokio::test]
async fn an_instance_cut_off_at_its_deadline_is_dropped() {
    let _timing = timing_sensitive().await;
    let (_d, _rt, p) = load(
        guests::HOSTILE_LOOP,
        "kind = \"guardrail\"\n[limits]\ndeadline-ms = 40\ncalls-per-instance = 100\n",
    );
    // The guest only spins in check-output.
    assert_eq!(p.check_input(&request("hi")).await, Ok(Verdict::Pass));
    assert_eq!(p.idle_reusable(), 1, "kept for the next call");
    let spun = p.check_output(&request("hi"), "spin", &whole()).await;
    assert_eq!(spun, Err(PluginFailure::Deadline));
    assert_eq!(p.idle_reusable(), 0, "the interrupted instance is gone");
    assert_eq!(p.check_input(&request("hi")).await, Ok(Verdict::Pass));
}

#[test]
fn audit_reports_reuse_as_weakened_isolation() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("probe.wasm");
    std::fs::copy(guests::TEST_PROBE.wasm, &wasm).unwrap();
    let toml = dir.path().join("probe.toml");
    let cfg = PluginsConfig::default();

    std::fs::write(&toml, "kind = \"guardrail\"\n").unwrap();
    let fresh = audit(&wasm, Some(&toml), &cfg).unwrap();
    assert_eq!(fresh.isolation, Isolation::Fresh);
    assert!(
        fresh
            .to_text()
            .contains("isolation: fresh instance per call"),
        "{}",
        fresh.to_text()
    );

    std::fs::write(
        &toml,
        "kind = \"guardrail\"\n[limits]\ncalls-per-instance = 50\n",
    )
    .unwrap();
    let reused = audit(&wasm, Some(&toml), &cfg).unwrap();
    assert!(reused.accepted, "{:?}", reused.problems);
    assert_eq!(reused.isolation, Isolation::Reused);
    let text = reused.to_text();
    assert!(
        text.contains("isolation: WEAKENED: an instance serves up to 50 calls"),
        "{text}"
    );
}
