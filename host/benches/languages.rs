//! What a guardrail costs in each language: the `ssn-redact` example of
//! `examples/guardrails/` (the same logic in Rust, Python, JavaScript on
//! QuickJS (contract 0.1.0) and on StarlingMonkey, and C) checking a 1 KB answer that
//! passes. Per language it prints the component's size, its load time
//! (compile without a cache, plus the loader's two smoke-test
//! instantiations) and benchmarks one `check-output` call:
//!
//! - `fresh`: no pool, so the call instantiates the guest in the calling
//!   task (what a light guest always does);
//! - `pooled`: the gateway's default for heavy guests (`pool-size = 2`),
//!   ready instances built by the refill thread off the calling thread;
//!   back to back on 2 cores the refill competes with the calls.
//! - `reused`: the opt-in weakened isolation, `[limits] calls-per-instance
//!   = 1000` (no pool): one instance answers a thousand calls in a row, so
//!   this is the call itself, and `fresh - reused` what a fresh instance
//!   costs (instantiation, guest start-up, first touch of its memory,
//!   slot reset).
//!
//! `SLUICE_BENCH_LANGS=rust,python` limits the languages loaded;
//! criterion's `--measurement-time SECS` shortens a run (default 5 s per
//! benchmark).
//!
//! Calls are async: each sample awaits `iters` calls in a row inside one
//! `block_on` of a current-thread runtime.
//!
//! Build the examples first (missing ones are skipped):
//!
//! ```sh
//! for l in rust python js c; do examples/guardrails/$l/build; done
//! JCO_BACKEND=quickjs examples/guardrails/js/build   # on contract 0.1.0 (docs/plugins.md)
//! cargo bench -p sluice --bench languages
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sluice::pipeline::output;
use sluice::plugin::{Message, OutputPart, Plugin, PluginRuntime, PluginsConfig, RequestInfo};

const LANGUAGES: [&str; 5] = ["rust", "c", "js-quickjs", "python", "js-starlingmonkey"];

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/examples")
}

/// `ssn-redact` of `lang` in a directory of its own, loaded with `pool_size`
/// and `limits.calls-per-instance = calls_per_instance`.
fn load(
    lang: &str,
    pool_size: usize,
    calls_per_instance: u32,
) -> Option<(tempfile::TempDir, Arc<PluginRuntime>, Arc<Plugin>)> {
    let src = examples().join(lang);
    if !src.join("ssn-redact.wasm").is_file() {
        eprintln!("{lang}: not built, skipped (see the bench's docs)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        src.join("ssn-redact.wasm"),
        dir.path().join("ssn-redact.wasm"),
    )
    .unwrap();
    // The example's manifest, with a deadline no descheduling on a busy
    // machine reaches: this measures cost, not limits.
    let manifest: String = std::fs::read_to_string(src.join("ssn-redact.toml"))
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("deadline-ms") {
                format!("deadline-ms = 10000\ncalls-per-instance = {calls_per_instance}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(dir.path().join("ssn-redact.toml"), manifest).unwrap();
    let rt = PluginRuntime::start(PluginsConfig {
        dir: dir.path().to_path_buf(),
        watch: false,
        pool_size,
        ..PluginsConfig::default()
    })
    .unwrap();
    let p = rt
        .current()
        .get("ssn-redact")
        .unwrap_or_else(|| panic!("{lang}: {:?}", rt.statuses()))
        .clone();
    Some((dir, rt, p))
}

fn request() -> Arc<RequestInfo> {
    Arc::new(RequestInfo {
        id: "bench".into(),
        model: "m".into(),
        messages: vec![Message {
            role: "user".into(),
            content: "Summarise the quarterly report.".into(),
            name: None,
            tool_calls: vec![],
            tool_call_id: None,
        }],
        max_tokens: Some(256),
        ..RequestInfo::default()
    })
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
    let ctx = output::whole(0, OutputPart::Content);
    let mut group = c.benchmark_group("ssn_redact_1kb");
    group.sample_size(20).warm_up_time(Duration::from_secs(2));
    let only = std::env::var("SLUICE_BENCH_LANGS").ok();
    let wanted = |lang: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|l| l == lang))
    };
    for lang in LANGUAGES.into_iter().filter(|l| wanted(l)) {
        // The first load compiles (nothing is cached in a fresh process);
        // the second finds the compiled component in the engine's cache.
        let start = Instant::now();
        let Some((_d, _rt, fresh)) = load(lang, 0, 1) else {
            continue;
        };
        let load_time = start.elapsed();
        let size = std::fs::metadata(examples().join(lang).join("ssn-redact.wasm"))
            .unwrap()
            .len();
        let (_d2, _rt2, pooled) = load(lang, 2, 1).unwrap();
        let (_d3, _rt3, reused) = load(lang, 0, 1000).unwrap();
        eprintln!(
            "{lang}: {:.2} MB, load (compile + 2 instantiations) {:.0} ms, pooled by default: {}",
            size as f64 / 1e6,
            load_time.as_secs_f64() * 1e3,
            pooled.is_pooled(),
        );
        let check = |p: &Arc<Plugin>| {
            let p = p.clone();
            let (req, output, ctx) = (&req, &output, &ctx);
            async move {
                let answer = p.check_output(req, output, ctx).await;
                assert!(answer.is_ok(), "{lang}: {answer:?}");
            }
        };
        group.bench_function(BenchmarkId::new("fresh", lang), |b| {
            b.iter_custom(|iters| timed(&local, iters, || check(&fresh)))
        });
        group.bench_function(BenchmarkId::new("pooled", lang), |b| {
            b.iter_custom(|iters| timed(&local, iters, || check(&pooled)))
        });
        group.bench_function(BenchmarkId::new("reused", lang), |b| {
            b.iter_custom(|iters| timed(&local, iters, || check(&reused)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
