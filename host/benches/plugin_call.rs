//! One guardrail call (fresh instance + `check-output` on 1 KB) and a chain
//! of three, each beside the same length check in native Rust; and the
//! first-party `prompt-injection` guest's `check-input` on a 2 KB prompt
//! beside the trivial guest on the same prompt (instantiation and copying
//! are common to both, the difference is the detector's work).
//!
//! The guest is `tests/plugins/tagger` in length-check mode (`max-chars`),
//! built by `sluice-guests` like every guest. `guest_work_*` runs the check
//! 1000x inside one call so instantiation is amortised and the guest's own
//! work can be compared with native. `first_party_1kb` puts each
//! first-party guardrail beside that trivial guest (the floor: a fresh
//! instance and the call itself), so a plugin's own cost is the difference.
//!
//! Calls are async: each sample awaits `iters` calls in a row inside one
//! `block_on` of a current-thread runtime (`*_tokio_worker`: inside a task
//! on a 2-worker multi-thread runtime, where the gateway makes them).
//!
//! `long_conversation_chain3` is the request's cost in a call: a chain of
//! three guardrails checking a 1 KB output for a one-message request and
//! for a 50-message, 20 KB conversation, with `0.2` guests (the request is
//! lent as a resource; the tagger reads none of it on output) and with
//! `0.1` guests (`tests/plugins/legacy-v01`: the whole record is lowered
//! into every call).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::pipeline::output;
use sluice::plugin::{
    Message, OutputContext, OutputPart, PluginRuntime, PluginsConfig, RequestInfo, Verdict,
};

fn guest() -> PathBuf {
    // `SLUICE_BENCH_GUEST=path.wasm` benchmarks another build of the guest
    // (e.g. with other flags) without touching the shared one.
    match std::env::var_os("SLUICE_BENCH_GUEST").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(sluice_guests::TEST_TAGGER.wasm),
    }
}

fn runtime(dir: &Path, names: &[&str], repeat: u32, pool_size: usize) -> Arc<PluginRuntime> {
    runtime_of(&guest(), dir, names, repeat, pool_size)
}

/// Like [`runtime`] with the component at `wasm`.
fn runtime_of(
    wasm: &Path,
    dir: &Path,
    names: &[&str],
    repeat: u32,
    pool_size: usize,
) -> Arc<PluginRuntime> {
    for (i, n) in names.iter().enumerate() {
        std::fs::copy(wasm, dir.join(format!("{n}.wasm"))).unwrap();
        let toml = format!(
            "kind = \"guardrail\"\norder = {i}\n[limits]\ndeadline-ms = 1000\n[config]\nmax-chars = 4000\nrepeat = {repeat}\n"
        );
        std::fs::write(dir.join(format!("{n}.toml")), toml).unwrap();
    }
    let rt = start(dir, pool_size);
    assert_eq!(
        rt.current().guardrails().len(),
        names.len(),
        "{:?}",
        rt.statuses()
    );
    rt
}

/// A runtime over `dir`: with `pool_size` 0 every call gets a fresh
/// instance inline, as the gateway does for small guests.
fn start(dir: &Path, pool_size: usize) -> Arc<PluginRuntime> {
    let mut cfg = PluginsConfig {
        dir: dir.to_path_buf(),
        watch: false,
        pool_size,
        pool_threshold_us: 0,
        ..PluginsConfig::default()
    };
    // Under valgrind the default pool (terabytes of reserved address space)
    // cannot be mapped: `SLUICE_BENCH_MAX_INSTANCES=4` shrinks it.
    if let Some(n) = std::env::var("SLUICE_BENCH_MAX_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.max_instances = n;
        cfg.pool_size = cfg.pool_size.min(1);
    }
    PluginRuntime::start(cfg).unwrap()
}

fn message(role: &str, content: String) -> Message {
    Message {
        role: role.into(),
        content,
        name: None,
        tool_calls: vec![],
        tool_call_id: None,
    }
}

fn request() -> Arc<RequestInfo> {
    Arc::new(RequestInfo {
        id: "bench".into(),
        model: "m".into(),
        messages: vec![message("user", "Summarise the quarterly report.".into())],
        max_tokens: Some(256),
        ..RequestInfo::default()
    })
}

/// A 50-message conversation of 20 KB (400 characters a message),
/// alternating user and assistant turns.
fn long_request() -> Arc<RequestInfo> {
    let turn = "The quarterly report lists revenue, costs and headcount by region. ".repeat(6);
    let messages = (0..50)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            message(role, turn[..400].to_owned())
        })
        .collect();
    Arc::new(RequestInfo {
        messages,
        ..(*request()).clone()
    })
}

fn whole() -> OutputContext {
    output::whole(0, OutputPart::Content)
}

/// The same check natively.
fn native_check(output: &str, max: usize) -> Verdict {
    if std::hint::black_box(output).chars().count() > max {
        Verdict::Reject(sluice::plugin::Rejection {
            reason: format!("longer than {max} characters"),
            code: "too_long".into(),
        })
    } else {
        Verdict::Pass
    }
}

/// Time `iters` awaits of `call()` in a row on `rt`.
fn timed<F: Future>(rt: &tokio::runtime::Runtime, iters: u64, call: impl Fn() -> F) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(call().await);
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let output: String =
        "The quick brown fox jumps over the lazy dog. ".repeat(23)[..1024].to_owned();
    let req = request();
    let ctx = whole();

    let one = tempfile::tempdir().unwrap();
    let rt_inline = runtime(one.path(), &["len"], 1, 0);
    let p = rt_inline.current().get("len").unwrap().clone();
    assert_eq!(
        local.block_on(p.check_output(&req, &output, &ctx)),
        Ok(Verdict::Pass)
    );

    let mut g = c.benchmark_group("guardrail_1kb");
    g.bench_function("wasm_fresh_instance", |b| {
        b.iter_custom(|iters| timed(&local, iters, || p.check_output(&req, &output, &ctx)))
    });
    let pooled_dir = tempfile::tempdir().unwrap();
    let rt_pooled = runtime(pooled_dir.path(), &["len"], 1, 4);
    let pp = rt_pooled.current().get("len").unwrap().clone();
    g.bench_function("wasm_pooled_instance", |b| {
        b.iter_custom(|iters| timed(&local, iters, || pp.check_output(&req, &output, &ctx)))
    });
    // The gateway's situation: a task on a worker of a multi-thread runtime.
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    g.bench_function("wasm_fresh_instance_tokio_worker", |b| {
        b.iter_custom(|iters| {
            let (p, req, output, ctx) = (p.clone(), req.clone(), output.clone(), ctx.clone());
            tokio_rt
                .block_on(tokio_rt.spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let _ = std::hint::black_box(p.check_output(&req, &output, &ctx).await);
                    }
                    start.elapsed()
                }))
                .unwrap()
        })
    });
    g.bench_function("native", |b| b.iter(|| native_check(&output, 4000)));
    g.finish();

    let three = tempfile::tempdir().unwrap();
    let rt3 = runtime(three.path(), &["a", "b", "c"], 1, 0);
    let set = rt3.current();
    let mut g = c.benchmark_group("chain3_1kb");
    g.bench_function("wasm_fresh_instances", |b| {
        b.iter_custom(|iters| {
            timed(&local, iters, || {
                sluice::pipeline::guard::check_output(set.guardrails(), &req, &output, &ctx)
            })
        })
    });
    g.bench_function("native", |b| {
        b.iter(|| {
            (0..3)
                .map(|_| native_check(&output, 4000))
                .collect::<Vec<_>>()
        })
    });
    g.finish();

    // Guest work alone: 1000 checks in one call vs 1000 native checks.
    let heavy = tempfile::tempdir().unwrap();
    let rt_heavy = runtime(heavy.path(), &["len"], 1000, 0);
    let ph = rt_heavy.current().get("len").unwrap().clone();
    let mut g = c.benchmark_group("guest_work_1000_checks");
    g.bench_function("wasm", |b| {
        b.iter_custom(|iters| timed(&local, iters, || ph.check_output(&req, &output, &ctx)))
    });
    g.bench_function("native", |b| {
        b.iter(|| {
            (0..1000)
                .map(|_| native_check(&output, 4000))
                .filter(|v| *v == Verdict::Pass)
                .count()
        })
    });
    g.finish();

    // prompt-injection on a 2 KB prompt; the trivial guest is the baseline.
    let pi = tempfile::tempdir().unwrap();
    std::fs::copy(
        sluice_guests::PROMPT_INJECTION.wasm,
        pi.path().join("prompt-injection.wasm"),
    )
    .unwrap();
    std::fs::write(
        pi.path().join("prompt-injection.toml"),
        "kind = \"guardrail\"\norder = 0\n[limits]\ndeadline-ms = 1000\n",
    )
    .unwrap();
    let rt_pi = start(pi.path(), 0);
    let doc = "Meeting notes: the team reviewed the quarterly roadmap, agreed to move the \
               billing migration to May, and asked finance for the updated forecast. ";
    let prompt = format!("Summarise these notes.\n\n{}", doc.repeat(20))[..2048].to_string();
    let mut req2k = request();
    Arc::make_mut(&mut req2k).messages[0].content = prompt;
    let set_pi = rt_pi.current();
    let guard = set_pi.get("prompt-injection").unwrap().clone();
    assert_eq!(local.block_on(guard.check_input(&req2k)), Ok(Verdict::Pass));
    let mut g = c.benchmark_group("prompt_injection_2kb");
    g.bench_function("wasm_fresh_instance", |b| {
        b.iter_custom(|iters| timed(&local, iters, || guard.check_input(&req2k)))
    });
    g.bench_function("trivial_guest_baseline", |b| {
        b.iter_custom(|iters| timed(&local, iters, || p.check_input(&req2k)))
    });
    g.finish();
}

/// Each first-party guardrail with its committed manifest on a 1 KB answer
/// (JSON for json-format), a fresh instance per call, beside `floor`: the
/// trivial tagger guest under the same conditions. A plugin's own work is
/// its time minus the floor.
fn first_party(c: &mut Criterion) {
    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for g in sluice_guests::first_party() {
        let manifest = g.manifest.expect("first-party plugins have one");
        std::fs::copy(g.wasm, dir.path().join(format!("{}.wasm", g.package))).unwrap();
        std::fs::copy(manifest, dir.path().join(format!("{}.toml", g.package))).unwrap();
    }
    let rt = start(dir.path(), 0);
    let floor_dir = tempfile::tempdir().unwrap();
    let floor_rt = runtime(floor_dir.path(), &["floor"], 1, 0);

    let base = "Thanks for reaching out. Your order 48213 shipped on 2026-11-20 and should arrive \
                within three business days; reply here or call support if the address changes. ";
    let text: String = base.chars().cycle().take(1024).collect();
    let json = format!("{{\"answer\": {:?}}}", &text[..1000]);
    let req = request();
    let ctx = whole();

    let mut g = c.benchmark_group("first_party_1kb");
    let set = rt.current();
    let floor = floor_rt.current();
    for p in floor.guardrails().iter().chain(set.guardrails()) {
        let body = if p.name() == "json-format" {
            &json
        } else {
            &text
        };
        let first = local.block_on(p.check_output(&req, body, &ctx));
        assert!(first.is_ok(), "{}: {first:?}", p.name());
        g.bench_function(p.name(), |b| {
            b.iter_custom(|iters| timed(&local, iters, || p.check_output(&req, body, &ctx)))
        });
    }
    g.finish();
}

/// Three guardrails on a 1 KB output: a one-message request vs a
/// 50-message 20 KB conversation, `0.2` guests vs `0.1` guests.
fn long_conversation(c: &mut Criterion) {
    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let output: String =
        "The quick brown fox jumps over the lazy dog. ".repeat(23)[..1024].to_owned();
    let ctx = whole();
    let (short, long) = (request(), long_request());
    let chars: usize = long.messages.iter().map(|m| m.content.len()).sum();
    assert_eq!((long.messages.len(), chars), (50, 20_000));

    let v02_dir = tempfile::tempdir().unwrap();
    let v02 = runtime(v02_dir.path(), &["a", "b", "c"], 1, 0);
    let v01_dir = tempfile::tempdir().unwrap();
    let v01 = runtime_of(
        Path::new(sluice_guests::LEGACY_V01.wasm),
        v01_dir.path(),
        &["a", "b", "c"],
        1,
        0,
    );
    let mut g = c.benchmark_group("long_conversation_chain3");
    for (version, rt) in [("v02", &v02), ("v01", &v01)] {
        let set = rt.current();
        for (shape, req) in [("one_message", &short), ("50_messages_20kb", &long)] {
            let first = local.block_on(sluice::pipeline::guard::check_output(
                set.guardrails(),
                req,
                &output,
                &ctx,
            ));
            assert_eq!(first.ran.len(), 3, "{version}");
            assert!(first.rejected.is_none(), "{version}: {first:?}");
            g.bench_function(format!("{version}_{shape}"), |b| {
                b.iter_custom(|iters| {
                    timed(&local, iters, || {
                        sluice::pipeline::guard::check_output(set.guardrails(), req, &output, &ctx)
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench, first_party, long_conversation);
criterion_main!(benches);
