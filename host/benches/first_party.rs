//! The first-party guardrails at work, each case beside its baseline in the
//! same run.
//!
//! `long_conversation_first_party`: the three output guardrails of the load
//! harness's `sluice-guardrails` target (pii-redact, length-check,
//! business-rules, their committed manifests) as one chain
//! (`guard::check_output`, a fresh instance per call, as the gateway runs
//! them) for a one-message request and for a 50-message, 20 KB
//! conversation: a whole 1 KB answer (non-streamed) and one stream window
//! (a 160-character sentence after 800 characters already sent). Goal
//! (issue 16): the long conversation costs ≤ 1.5× the one-message request.
//!
//! `guest_vs_native`: pii-redact's and secrets' detection on a 1 KB and a
//! 64 KB answer with some personal data and a credential in it, through the
//! plugin (a fresh instance, the whole `check-output` call) and natively
//! (the same `check_output` of the plugin crate, linked into this bench and
//! run through `sluice_sdk::testing`: config parsing included, as in the
//! guest). The 64 KB
//! case amortises instantiation; the difference between the sizes divided
//! by the same difference natively is the guest's code against native code
//! per byte. Goal (issue 16): ≤ 2×. `SLUICE_BENCH_PAIRED=N` adds that
//! ratio from N rounds of the four cases timed back to back (`paired`).
//!
//! `parallel_chain`: the same three output guardrails on a clean 1 KB
//! answer (all pass), their calls made one after the other, joined in the
//! request's task, or spawned for the runtime's other worker (issue 16,
//! direction 4); wall time per chain, and CPU per chain printed after it.
//!
//! `SLUICE_BENCH_PLUGINS=dir` loads the plugins' components from `dir`
//! (files named like the build's, `pii_redact.wasm`) instead of this
//! checkout's build, to compare guest builds (e.g. with and without
//! `+simd128`) without touching the shared one.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::pipeline::{guard, output};
use sluice::plugin::{
    Message, OutputContext, OutputPart, Plugin, PluginRuntime, PluginsConfig, RequestInfo, Verdict,
};
use sluice_sdk::testing::{GuardrailTest, clear_config};

/// Where `package`'s component is read from.
fn component(package: &str) -> PathBuf {
    let built = sluice_guests::by_package(package).expect("a workspace guest");
    match std::env::var_os("SLUICE_BENCH_PLUGINS").filter(|d| !d.is_empty()) {
        Some(dir) => Path::new(&dir).join(format!("{}.wasm", package.replace('-', "_"))),
        None => PathBuf::from(built.wasm),
    }
}

/// A runtime over copies of `packages` with their committed manifests; every
/// call on a fresh instance, inline (the gateway's way for small guests).
fn runtime(dir: &Path, packages: &[&str]) -> Arc<PluginRuntime> {
    for p in packages {
        let g = sluice_guests::by_package(p).expect("a workspace guest");
        std::fs::copy(component(p), dir.join(format!("{p}.wasm"))).unwrap();
        std::fs::copy(
            g.manifest.expect("first-party"),
            dir.join(format!("{p}.toml")),
        )
        .unwrap();
    }
    let rt = PluginRuntime::start(PluginsConfig {
        dir: dir.to_path_buf(),
        watch: false,
        pool_size: 0,
        pool_threshold_us: 0,
        ..PluginsConfig::default()
    })
    .unwrap();
    assert_eq!(
        rt.current().guardrails().len(),
        packages.len(),
        "{:?}",
        rt.statuses()
    );
    rt
}

fn message(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
        name: None,
        tool_calls: vec![],
        tool_call_id: None,
    }
}

fn one_message() -> Arc<RequestInfo> {
    Arc::new(RequestInfo {
        id: "bench".into(),
        model: "m".into(),
        messages: vec![message("user", "Where is my order?")],
        max_tokens: Some(256),
        ..RequestInfo::default()
    })
}

/// 50 messages of 400 characters (20 KB), alternating user and assistant.
fn long_conversation() -> Arc<RequestInfo> {
    let turn = "The customer asked about order 48213, its delivery window and the \
                returns policy for opened items. "
        .repeat(5);
    let messages = (0..50)
        .map(|i| message(if i % 2 == 0 { "user" } else { "assistant" }, &turn[..400]))
        .collect();
    Arc::new(RequestInfo {
        messages,
        ..(*one_message()).clone()
    })
}

/// Clean support text, `n` bytes (ASCII).
fn clean(n: usize) -> String {
    "Thanks for reaching out. Your order 48213 shipped on 2026-11-20 and should arrive \
     within three business days; reply here or call support if the address changes. "
        .chars()
        .cycle()
        .take(n)
        .collect()
}

/// `n` bytes of support text with an email, a phone number and an API key
/// in every 1 KB, so both detectors find and rewrite something.
fn dirty(n: usize) -> String {
    let chunk = format!(
        "{} Contact jane.doe@example.com or +1 (415) 555-2671. Token: \
         sk-proj-4fQx9Lr2VbN8mZt7WcY1kHs3PdG6aJeU0iRo5TnXy ",
        clean(860)
    );
    chunk.chars().cycle().take(n).collect()
}

fn whole() -> OutputContext {
    output::whole(0, OutputPart::Content)
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

fn local() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn long_conversation_first_party(c: &mut Criterion) {
    let local = local();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(
        dir.path(),
        &["pii-redact", "length-check", "business-rules"],
    );
    let set = rt.current();
    let (short, long) = (one_message(), long_conversation());
    let chars: usize = long.messages.iter().map(|m| m.content.len()).sum();
    assert_eq!((long.messages.len(), chars), (50, 20_000));

    let answer = clean(1024);
    let window_text = clean(960);
    let (sent, window) = window_text.split_at(800);
    let stream_ctx = OutputContext {
        emitted: sent.to_owned(),
        window_index: 5,
        is_final: false,
        ..whole()
    };
    let whole_ctx = whole();

    let mut g = c.benchmark_group("long_conversation_first_party");
    for (shape, output, ctx) in [
        ("whole_1kb", answer.as_str(), &whole_ctx),
        ("stream_window", window, &stream_ctx),
    ] {
        for (conv, req) in [("one_message", &short), ("50_messages_20kb", &long)] {
            let first = local.block_on(guard::check_output(set.guardrails(), req, output, ctx));
            assert_eq!(first.ran.len(), 3, "{first:?}");
            assert!(
                first.rejected.is_none() && first.transformed.is_empty(),
                "{first:?}"
            );
            g.bench_function(format!("{shape}/{conv}"), |b| {
                b.iter_custom(|iters| {
                    timed(&local, iters, || {
                        guard::check_output(set.guardrails(), req, output, ctx)
                    })
                })
            });
        }
    }
    g.finish();
}

/// A plugin's `check_output` on a whole answer, natively.
type NativeCheck = fn(&str) -> sluice_sdk::Verdict;

/// The text of a native run's transform (the SDK's own `Verdict` type).
fn native_transform(v: sluice_sdk::Verdict) -> String {
    match v {
        sluice_sdk::Verdict::Transform(t) => t,
        other => panic!("expected a transform natively, got {other:?}"),
    }
}

fn guest_vs_native(c: &mut Criterion) {
    let local = local();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), &["pii-redact", "secrets"]);
    let set = rt.current();
    let req = one_message();
    let ctx = whole();
    // Natively `config` reads the SDK's test config: empty, so both plugins
    // run with their defaults, which the committed manifests spell out (the
    // equality checks below would catch a difference).
    clear_config();
    let native: [(&str, NativeCheck); 2] = [
        ("pii-redact", |t| pii_redact::PiiRedact::output(t)),
        ("secrets", |t| secrets::Secrets::output(t)),
    ];

    let mut g = c.benchmark_group("guest_vs_native");
    for kb in [1, 64] {
        let text = dirty(kb * 1024);
        for (name, run_native) in native {
            let p = set.get(name).unwrap().clone();
            // Both rewrite the text: real work, not a pass, and the same
            // answer from the guest and from the native build.
            let expected = native_transform(run_native(&text));
            assert_eq!(
                local.block_on(p.check_output(&req, &text, &ctx)),
                Ok(Verdict::Transform(expected)),
                "{name}: the guest and the native code disagree"
            );
            g.bench_function(format!("{name}/{kb}kb/wasm"), |b| {
                b.iter_custom(|iters| timed(&local, iters, || p.check_output(&req, &text, &ctx)))
            });
            g.bench_function(format!("{name}/{kb}kb/native"), |b| {
                b.iter(|| run_native(std::hint::black_box(&text)))
            });
        }
    }
    g.finish();
    if let Some(rounds) = std::env::var("SLUICE_BENCH_PAIRED")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        paired(&local, &set, &native, rounds);
    }
}

/// `SLUICE_BENCH_PAIRED=N` (after the criterion cases of `guest_vs_native`):
/// N rounds, each timing the four cases of a plugin (guest and native, 64 KB
/// and 1 KB) one after the other for a few milliseconds, and the per-byte
/// ratio of that round. The ratio then comes from four timings taken within
/// ~5 ms of each other instead of criterion's cases seconds apart, so a
/// change of load on a shared machine moves the guest and the native side
/// alike. Prints the median and quartiles of the rounds' ratios and each
/// case's median per call.
fn paired(
    local: &tokio::runtime::Runtime,
    set: &sluice::plugin::PluginSet,
    native: &[(&str, NativeCheck)],
    rounds: usize,
) {
    let req = one_message();
    let ctx = whole();
    let (small, big) = (dirty(1024), dirty(64 * 1024));
    for &(name, run_native) in native {
        let p = set.get(name).unwrap().clone();
        let guest = |text: &str, iters: u64| {
            timed(local, iters, || p.check_output(&req, text, &ctx)).as_secs_f64() / iters as f64
        };
        let native = |text: &str, iters: u64| {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(run_native(std::hint::black_box(text)));
            }
            start.elapsed().as_secs_f64() / iters as f64
        };
        // Iterations per case: about a millisecond each.
        let mut cases: [Vec<f64>; 4] = Default::default();
        let mut ratios = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = [
                guest(&big, 8),
                native(&big, 16),
                guest(&small, 32),
                native(&small, 400),
            ];
            ratios.push((t[0] - t[2]) / (t[1] - t[3]));
            for (c, t) in cases.iter_mut().zip(t) {
                c.push(t * 1e6);
            }
        }
        let median = |v: &mut Vec<f64>, q: usize| {
            v.sort_by(f64::total_cmp);
            v[(v.len() - 1) * q / 4]
        };
        let [w64, n64, w1, n1] = cases.each_mut().map(|c| median(c, 2));
        println!(
            "guest_vs_native/{name}/paired ({rounds} rounds): per byte {:.2} (quartiles {:.2}-{:.2}); \
             medians 64 KB guest {w64:.1} µs, native {n64:.1} µs; 1 KB guest {w1:.1} µs, native {n1:.2} µs",
            median(&mut ratios, 2),
            median(&mut ratios, 1),
            median(&mut ratios, 3),
        );
    }
}

/// Process CPU time (user + system, every thread), for CPU per chain.
fn cpu_time() -> Duration {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` fills the struct it is given; RUSAGE_SELF is valid.
    let u = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()), 0);
        u.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// How the three calls of a chain are made.
#[derive(Clone, Copy, Debug)]
enum Chain {
    /// One after the other in the request's task (the pipeline's way).
    Sequential,
    /// All three futures joined in the request's task: they only overlap
    /// where a call awaits, and a short guest call never does.
    Joined,
    /// The first inline, the other two spawned on the runtime for idle
    /// workers to steal.
    Spawned,
}

/// The three output checks of one chain on `text`, made as `how` says.
async fn chain(
    how: Chain,
    plugins: &[Arc<Plugin>],
    req: &Arc<RequestInfo>,
    text: &Arc<str>,
    ctx: &Arc<OutputContext>,
) -> usize {
    let passed = |v: &Result<Verdict, _>| usize::from(matches!(v, Ok(Verdict::Pass)));
    match how {
        Chain::Sequential => {
            let mut n = 0;
            for p in plugins {
                n += passed(&p.check_output(req, text, ctx).await);
            }
            n
        }
        Chain::Joined => {
            futures_util::future::join_all(plugins.iter().map(|p| p.check_output(req, text, ctx)))
                .await
                .iter()
                .map(passed)
                .sum()
        }
        Chain::Spawned => {
            let rest: Vec<_> = plugins[1..]
                .iter()
                .map(|p| {
                    let (p, req, text, ctx) = (p.clone(), req.clone(), text.clone(), ctx.clone());
                    tokio::spawn(async move { p.check_output(&req, &text, &ctx).await })
                })
                .collect();
            let mut n = passed(&plugins[0].check_output(req, text, ctx).await);
            for h in rest {
                n += passed(&h.await.expect("a plugin call does not panic"));
            }
            n
        }
    }
}

/// Issue 16, direction 4: the three output guardrails of the load harness
/// (pii-redact, length-check, business-rules) on a clean 1 KB answer, all
/// passing, called one after the other, joined in one task, or spread over
/// the runtime's two workers. Wall time per chain from criterion; CPU per
/// chain (process user + system time over the same iterations) printed
/// after the group.
fn parallel_chain(c: &mut Criterion) {
    let workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(
        dir.path(),
        &["pii-redact", "length-check", "business-rules"],
    );
    let plugins: Arc<[Arc<Plugin>]> = rt.current().guardrails().into();
    let req = one_message();
    let text: Arc<str> = clean(1024).into();
    let ctx = Arc::new(whole());
    let mut cpu = Vec::new();
    let mut g = c.benchmark_group("parallel_chain");
    for how in [Chain::Sequential, Chain::Joined, Chain::Spawned] {
        let (plugins, req, text, ctx) = (plugins.clone(), req.clone(), text.clone(), ctx.clone());
        let passed = workers.block_on(chain(how, &plugins, &req, &text, &ctx));
        assert_eq!(passed, 3, "{how:?}: every check passes");
        let (mut spent, mut chains) = (Duration::ZERO, 0);
        g.bench_function(format!("{how:?}").to_lowercase(), |b| {
            b.iter_custom(|iters| {
                let (plugins, req, text, ctx) =
                    (plugins.clone(), req.clone(), text.clone(), ctx.clone());
                let before = cpu_time();
                // The request's task runs on a worker, as in the gateway.
                let wall = workers
                    .block_on(workers.spawn(async move {
                        let start = Instant::now();
                        for _ in 0..iters {
                            std::hint::black_box(chain(how, &plugins, &req, &text, &ctx).await);
                        }
                        start.elapsed()
                    }))
                    .unwrap();
                spent += cpu_time() - before;
                chains += iters;
                wall
            })
        });
        cpu.push((how, spent, chains));
    }
    g.finish();
    for (how, spent, chains) in cpu {
        let per = spent.as_secs_f64() * 1e6 / chains.max(1) as f64;
        println!("parallel_chain/{how:?}: CPU {per:.1} µs per chain ({chains} chains)");
    }
}

criterion_group!(
    benches,
    long_conversation_first_party,
    guest_vs_native,
    parallel_chain
);
criterion_main!(benches);
