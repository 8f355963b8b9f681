//! Hostile guests are contained: each failure is reported as a
//! [`PluginFailure`] and counted, and the plugin (and every other plugin)
//! keeps serving. What a failure means for a request (the failure mode) is
//! the pipeline's: see the chain tests below and `routing.rs`.

use std::sync::Arc;
use std::time::Instant;

use sluice::pipeline::guard::{self, GuardReport};
use sluice::plugin::{
    BudgetPeriod, Candidate, Decision, Estimate, PluginFailure, PluginRuntime, PluginsConfig,
    RequestInfo, Spend, Verdict,
};

use sluice_guests as guests;

use crate::support::timing_sensitive;

use crate::support::plugins::{load, plugin_dir, request, request_info, runtime, whole};

#[tokio::test]
async fn infinite_loop_is_stopped_at_the_deadline_and_fails_closed() {
    let _timing = timing_sensitive().await;
    let (_d, _rt, p) = load(
        guests::HOSTILE_LOOP,
        "kind = \"guardrail\"\n[limits]\ndeadline-ms = 40\n",
    );
    let c = p.check_output(&request("hi"), "spin", &whole()).await;
    // The guest never returns: only the deadline ends the call.
    assert_eq!(c, Err(PluginFailure::Deadline));
    // The same plugin keeps answering calls that do not loop.
    assert_eq!(p.check_input(&request("hi")).await, Ok(Verdict::Pass));
    let s = p.stats();
    assert_eq!((s.calls, s.failures, s.deadlines), (2, 1, 1));
}

/// The epoch ticker parks when no guest code has run for a while; the
/// first call after a quiet spell must still hit its deadline.
#[tokio::test]
async fn deadline_fires_after_the_gateway_was_idle() {
    let _timing = timing_sensitive().await;
    let (_d, _rt, p) = load(
        guests::HOSTILE_LOOP,
        "kind = \"guardrail\"\n[limits]\ndeadline-ms = 40\n",
    );
    // The quiet spell is the thing under test: the ticker parks after idle
    // ticks and offers no event to wait for (its rewrite may add one).
    std::thread::sleep(sluice::plugin::EPOCH_TICK * 500);
    let start = Instant::now();
    let c = p.check_output(&request("hi"), "spin", &whole()).await;
    let elapsed = start.elapsed();
    assert_eq!(c, Err(PluginFailure::Deadline));
    // A parked ticker nobody wakes still ticks after its 1 s park timeout,
    // so the bug this guards against is lateness, not a hang: the one
    // bound in time here, 25 times the 40 ms deadline.
    assert!(elapsed < std::time::Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test]
async fn open_failure_mode_passes_and_still_counts() {
    let (_d, _rt, p) = load(
        guests::HOSTILE_LOOP,
        "kind = \"guardrail\"\nfailure-mode = \"open\"\n[limits]\ndeadline-ms = 20\n",
    );
    // The runtime reports the failure whatever the mode...
    let plugins = [p.clone()];
    let c = guard::check_output(&plugins, &request("hi"), "spin", &whole()).await;
    // ...and the chain lets the text through, marked as failed open.
    assert!(c.rejected.is_none(), "{c:?}");
    assert_eq!(c.text, "spin");
    assert_eq!(c.failed_open, ["hostile-loop"]);
    assert_eq!(p.stats().deadlines, 1);
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_cap() {
    let (_d, _rt, p) = load(
        guests::HOSTILE_MEMORY,
        "kind = \"guardrail\"\n[limits]\nmemory-mb = 16\ndeadline-ms = 2000\n",
    );
    let c = p.check_output(&request("hi"), "eat", &whole()).await;
    assert_eq!(c, Err(PluginFailure::Memory));
    assert_eq!(p.stats().memory, 1);
    assert_eq!(p.check_input(&request("hi")).await, Ok(Verdict::Pass));
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_trap() {
    let (_d, _rt, p) = load(
        guests::HOSTILE_RECURSION,
        "kind = \"guardrail\"\n[limits]\ndeadline-ms = 2000\n",
    );
    let c = p.check_output(&request("hi"), "dive", &whole()).await;
    match &c {
        // Either the wasm call stack or the guest's own shadow stack (in
        // linear memory, running off its bottom) overflows first.
        Err(PluginFailure::Trap(why)) => {
            assert!(
                why.contains("stack overflow") || why.contains("out of bounds"),
                "{why}"
            );
            assert!(!why.contains("backtrace"), "{why}");
        }
        other => panic!("expected a stack overflow trap, got {other:?}"),
    }
    assert_eq!(p.check_input(&request("hi")).await, Ok(Verdict::Pass));
}

#[tokio::test]
async fn panic_is_a_trap_with_the_message_and_the_next_call_is_fresh() {
    let (_d, _rt, p) = load(guests::HOSTILE_TRAP, "kind = \"guardrail\"\n");
    let c = p.check_output(&request("hi"), "boom", &whole()).await;
    match &c {
        Err(PluginFailure::Trap(why)) => {
            assert!(
                why.contains("unreachable") && why.contains("panicked on purpose"),
                "{why}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    let ok = p.check_output(&request("hi"), "safe text", &whole()).await;
    assert_eq!(ok, Ok(Verdict::Pass));
    let s = p.stats();
    assert_eq!((s.calls, s.traps), (2, 1));
}

#[tokio::test]
async fn huge_output_is_refused_by_size() {
    let (_d, _rt, p) = load(guests::HOSTILE_HUGE_OUTPUT, "kind = \"guardrail\"\n");
    let c = p.check_output(&request("hi"), "grow", &whole()).await;
    assert_eq!(
        c,
        Err(PluginFailure::OutputTooLarge {
            limit: 256 * 1024,
            got: 1 << 20
        })
    );
    assert_eq!(p.stats().output_too_large, 1);
}

#[tokio::test]
async fn fuel_stops_a_loop_when_metering_is_on() {
    let dir = plugin_dir(&[(
        guests::HOSTILE_LOOP,
        "kind = \"guardrail\"\n[limits]\nfuel = 200000\ndeadline-ms = 5000\n",
    )]);
    let rt = PluginRuntime::start(PluginsConfig {
        dir: dir.path().to_path_buf(),
        watch: false,
        fuel: true,
        pool_size: 0,
        ..PluginsConfig::default()
    })
    .unwrap();
    let p = rt.current().get("hostile-loop").unwrap().clone();
    // Fuel, not the 5 s deadline, is what stops it.
    let c = p.check_output(&request("hi"), "spin", &whole()).await;
    assert_eq!(c, Err(PluginFailure::Fuel));
    assert_eq!(p.stats().fuel, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_do_not_disturb_other_plugins_or_calls() {
    let dir = plugin_dir(&[
        (
            guests::HOSTILE_LOOP,
            "kind = \"guardrail\"\n[limits]\ndeadline-ms = 30\n",
        ),
        (
            guests::HOSTILE_MEMORY,
            "kind = \"guardrail\"\n[limits]\nmemory-mb = 8\n",
        ),
        (guests::HOSTILE_TRAP, "kind = \"guardrail\"\n"),
        // Wall-clock deadlines cannot promise CPU fairness on a 2-core box
        // full of spinning guests; isolation of failures is the point here.
        (
            guests::TEST_TAGGER,
            "kind = \"guardrail\"\n[limits]\ndeadline-ms = 5000\n",
        ),
    ]);
    let rt = runtime(dir.path());
    assert_eq!(rt.current().guardrails().len(), 4, "{:?}", rt.statuses());
    let threads: Vec<_> = [
        "hostile-loop",
        "hostile-memory",
        "hostile-trap",
        "test-tagger",
        "test-tagger",
    ]
    .into_iter()
    .map(|name| {
        let rt = rt.clone();
        tokio::spawn(async move {
            let p = rt.current().get(name).unwrap().clone();
            let mut results = Vec::new();
            for i in 0..15 {
                results.push(
                    p.check_output(&request("x"), &format!("out {i}"), &whole())
                        .await,
                );
            }
            results
        })
    })
    .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let results = t.await.expect("no calling task may panic");
        for c in results {
            if i < 3 {
                assert!(c.is_err(), "{c:?}");
            } else {
                assert!(
                    matches!(&c, Ok(Verdict::Transform(t)) if t.starts_with("tagged:out")),
                    "{c:?}"
                );
            }
        }
    }
    let tagger = rt.current().get("test-tagger").unwrap().stats();
    assert_eq!((tagger.calls, tagger.failures), (30, 0));
}

#[tokio::test]
async fn chains_fail_closed_or_open_on_a_hostile_member() {
    let dir = plugin_dir(&[
        (guests::TEST_TAGGER, "kind = \"guardrail\"\norder = 1\n"),
        (guests::HOSTILE_TRAP, "kind = \"guardrail\"\norder = 2\n"),
    ]);
    let rt = runtime(dir.path());
    let set = rt.current();
    let names: Vec<&str> = set.guardrails().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["test-tagger", "hostile-trap"]);

    let res = guard::check_output(set.guardrails(), &request("q"), "answer", &whole()).await;
    assert_eq!(res.ran, ["test-tagger", "hostile-trap"]);
    assert_eq!(res.transformed, ["test-tagger"]);
    let (who, why) = res.rejected.expect("closed trap rejects");
    assert_eq!(
        (who.as_str(), why.code.as_str()),
        ("hostile-trap", "plugin_failure")
    );
    assert!(
        why.reason.contains("hostile-trap") && why.reason.contains("trapped"),
        "{why:?}"
    );

    // Input chain: the transform replaces the last user message; the trap
    // guest passes inputs.
    let mut report = GuardReport::default();
    let text = guard::check_input(set.guardrails(), &mut request("hello"), &mut report)
        .await
        .unwrap();
    assert_eq!(text.as_deref(), Some("tagged:hello"));
    assert_eq!(
        report.header_value(),
        "test-tagger:transform,hostile-trap:pass"
    );
}

#[tokio::test]
async fn open_member_lets_the_chain_continue() {
    let dir = plugin_dir(&[
        (
            guests::HOSTILE_TRAP,
            "kind = \"guardrail\"\norder = 1\nfailure-mode = \"open\"\n",
        ),
        (guests::TEST_TAGGER, "kind = \"guardrail\"\norder = 2\n"),
    ]);
    let rt = runtime(dir.path());
    let set = rt.current();
    let res = guard::check_output(set.guardrails(), &request("q"), "answer", &whole()).await;
    assert!(res.rejected.is_none());
    assert_eq!(res.text, "tagged:answer");
    assert_eq!(res.failed_open, ["hostile-trap"]);
}

#[tokio::test]
async fn wrong_kind_call_is_a_failure_not_a_panic() {
    let (_d, _rt, p) = load(guests::TEST_TAGGER, "kind = \"guardrail\"\n");
    let err = p.route(&request("q"), &[]).await.unwrap_err();
    assert!(
        matches!(err, PluginFailure::Instantiate(ref m) if m.contains("guardrail")),
        "{err}"
    );
}

fn candidates() -> Vec<Candidate> {
    ["cheap", "pricey"]
        .into_iter()
        .map(|m| Candidate {
            provider: "mock".into(),
            model: m.into(),
            tier: None,
            input_cost_per_mtok: 1.0,
            output_cost_per_mtok: 2.0,
            context_window: 8192,
        })
        .collect()
}

fn with_model(model: &str) -> Arc<RequestInfo> {
    Arc::new(RequestInfo {
        model: model.into(),
        ..request_info("q")
    })
}

/// The runtime reports a router's failure whatever its mode (the pipeline
/// applies the mode: `tests/all/routing.rs`).
#[tokio::test]
async fn router_failure_is_reported_with_its_cause() {
    let (_d, _rt, closed) = load(guests::HOSTILE_ROUTER, "kind = \"router\"\n");
    let routes = closed.route(&with_model("m"), &candidates()).await.unwrap();
    let models: Vec<&str> = routes.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(models, ["pricey", "cheap"]);
    let err = closed
        .route(&with_model("trap"), &candidates())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PluginFailure::Trap(ref m) if m.contains("router asked to trap")),
        "{err}"
    );

    assert_eq!((closed.stats().calls, closed.stats().traps), (2, 1));
}

#[tokio::test]
async fn cost_policy_failure_is_reported_with_its_cause() {
    let est = Estimate {
        prompt_tokens: 10,
        max_completion_tokens: 100,
        cost_usd: 0.5,
    };
    let spend = [Spend {
        scope: "user:alice".into(),
        period: BudgetPeriod::Month,
        label: "2026-11".into(),
        spent_usd: 9.8,
        reserved_usd: 0.0,
        budget_usd: Some(10.0),
    }];
    let (_d, _rt, closed) = load(guests::HOSTILE_COST, "kind = \"cost-policy\"\n");
    assert_eq!(
        closed.decide(&with_model("m"), &est, &spend).await,
        Ok(Decision::Deny("over budget".into()))
    );
    assert!(matches!(
        closed.decide(&with_model("trap"), &est, &spend).await,
        Err(PluginFailure::Trap(_))
    ));
}

/// Entries are bounded as well as bytes: a list of empty routes has no
/// bytes to count, yet costs the host memory per entry.
#[tokio::test]
async fn a_route_list_is_bounded_in_entries() {
    let (_d, _rt, p) = load(
        guests::HOSTILE_MANY_ROUTES,
        "kind = \"router\"\n[limits]\nmemory-mb = 64\ndeadline-ms = 5000\nmax-output-entries = 8\n",
    );
    let ask = |text: &str| {
        Arc::new(RequestInfo {
            model: "m".into(),
            ..request_info(text)
        })
    };
    let few = p.route(&ask("many=8"), &candidates()).await.unwrap();
    assert_eq!(few.len(), 8);
    let many = p.route(&ask("many=100000"), &candidates()).await;
    assert_eq!(
        many,
        Err(PluginFailure::TooManyEntries {
            limit: 8,
            got: 100_000
        })
    );
    assert_eq!(p.stats().output_too_large, 1);
}
