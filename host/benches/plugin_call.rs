//! One guardrail call (fresh instance + `check-output` on 1 KB) and a chain
//! of three, each beside the same length check in native Rust; and the
//! first-party `prompt-injection` guest's `check-input` on a 2 KB prompt
//! beside the trivial guest on the same prompt (instantiation and copying
//! are common to both, the difference is the detector's work).
//!
//! The guest is `tests/plugins/tagger` in length-check mode (`max-chars`),
//! built with `cargo build --profile guest --target wasm32-wasip2 --target-dir
//! target/guests -p test-tagger` (done here if missing). `guest_work_*`
//! runs the check 1000x inside one call so instantiation is amortised and
//! the guest's own work can be compared with native.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::plugin::{
    Message, OutputContext, PluginRuntime, RequestInfo, RuntimeConfig, Verdict, run_output_chain,
};

fn guest() -> PathBuf {
    guest_package("test-tagger")
}

/// The guest build of workspace package `package`, built if missing.
fn guest_package(package: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    // `SLUICE_BENCH_GUEST=path.wasm` benchmarks another build of the guest
    // (e.g. with other flags) without touching the shared one.
    if package == "test-tagger"
        && let Some(p) = std::env::var_os("SLUICE_BENCH_GUEST").filter(|p| !p.is_empty())
    {
        return PathBuf::from(p);
    }
    let wasm = root.join(format!(
        "target/guests/wasm32-wasip2/guest/{}.wasm",
        package.replace('-', "_")
    ));
    if !wasm.is_file() {
        let status =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(&root)
                .args([
                    "build",
                    "--profile",
                    "guest",
                    "--target",
                    "wasm32-wasip2",
                    "--target-dir",
                    "target/guests",
                    "-p",
                    package,
                ])
                .status()
                .expect("running cargo");
        assert!(status.success(), "building the bench guest failed");
    }
    wasm
}

fn runtime(dir: &Path, names: &[&str], repeat: u32, pool_size: usize) -> Arc<PluginRuntime> {
    for (i, n) in names.iter().enumerate() {
        std::fs::copy(guest(), dir.join(format!("{n}.wasm"))).unwrap();
        let toml = format!(
            "kind = \"guardrail\"\norder = {i}\n[limits]\ndeadline-ms = 1000\n[config]\nmax-chars = 4000\nrepeat = {repeat}\n"
        );
        std::fs::write(dir.join(format!("{n}.toml")), toml).unwrap();
    }
    let mut cfg = RuntimeConfig {
        dir: dir.to_path_buf(),
        watch: false,
        pool_size,
        pool_threshold_us: 0,
        ..RuntimeConfig::default()
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
    let rt = PluginRuntime::start(cfg).unwrap();
    assert_eq!(
        rt.current().guardrails().len(),
        names.len(),
        "{:?}",
        rt.statuses()
    );
    rt
}

fn request() -> RequestInfo {
    RequestInfo {
        id: "bench".into(),
        user: None,
        api_key_id: None,
        feature: None,
        tags: vec![],
        model: "m".into(),
        messages: vec![Message {
            role: "user".into(),
            content: "Summarise the quarterly report.".into(),
        }],
        max_tokens: Some(256),
        temperature: None,
        stream: false,
    }
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

fn bench(c: &mut Criterion) {
    let output: String =
        "The quick brown fox jumps over the lazy dog. ".repeat(23)[..1024].to_owned();
    let req = request();
    let ctx = OutputContext {
        emitted: String::new(),
        window_index: 0,
        is_final: true,
    };

    let one = tempfile::tempdir().unwrap();
    let rt_inline = runtime(one.path(), &["len"], 1, 0);
    let p = rt_inline.current().get("len").unwrap().clone();
    assert_eq!(p.check_output(&req, &output, &ctx).verdict, Verdict::Pass);

    let mut g = c.benchmark_group("guardrail_1kb");
    g.bench_function("wasm_fresh_instance", |b| {
        b.iter(|| p.check_output(&req, &output, &ctx))
    });
    let pooled_dir = tempfile::tempdir().unwrap();
    let rt_pooled = runtime(pooled_dir.path(), &["len"], 1, 4);
    let pp = rt_pooled.current().get("len").unwrap().clone();
    g.bench_function("wasm_pooled_instance", |b| {
        b.iter(|| pp.check_output(&req, &output, &ctx))
    });
    // The gateway's situation: called from a tokio worker, where the call
    // runs inline (or under `block_in_place` for guests that make blocking
    // WASI calls; see plugin/blocking.rs).
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    g.bench_function("wasm_fresh_instance_tokio_worker", |b| {
        b.iter_custom(|iters| {
            let (p, req, output, ctx) = (p.clone(), req.clone(), output.clone(), ctx.clone());
            tokio_rt
                .block_on(tokio_rt.spawn(async move {
                    let start = std::time::Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(p.check_output(&req, &output, &ctx));
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
        b.iter(|| run_output_chain(set.guardrails(), &req, &output, &ctx))
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
    g.bench_function("wasm", |b| b.iter(|| ph.check_output(&req, &output, &ctx)));
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
        guest_package("prompt-injection"),
        pi.path().join("prompt-injection.wasm"),
    )
    .unwrap();
    std::fs::write(
        pi.path().join("prompt-injection.toml"),
        "kind = \"guardrail\"\norder = 0\n[limits]\ndeadline-ms = 1000\n",
    )
    .unwrap();
    let rt_pi = PluginRuntime::start(RuntimeConfig {
        dir: pi.path().to_path_buf(),
        watch: false,
        pool_size: 0,
        pool_threshold_us: 0,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let doc = "Meeting notes: the team reviewed the quarterly roadmap, agreed to move the \
               billing migration to May, and asked finance for the updated forecast. ";
    let prompt = format!("Summarise these notes.\n\n{}", doc.repeat(20))[..2048].to_string();
    let mut req2k = request();
    req2k.messages[0].content = prompt;
    let set_pi = rt_pi.current();
    let guard = set_pi.get("prompt-injection").unwrap().clone();
    assert_eq!(guard.check_input(&req2k).verdict, Verdict::Pass);
    let mut g = c.benchmark_group("prompt_injection_2kb");
    g.bench_function("wasm_fresh_instance", |b| {
        b.iter(|| guard.check_input(&req2k))
    });
    g.bench_function("trivial_guest_baseline", |b| {
        b.iter(|| p.check_input(&req2k))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
