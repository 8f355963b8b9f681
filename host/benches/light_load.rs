//! Why a lightly loaded gateway pays more per request (issue 16, goal 1):
//! the same work timed back to back and after an idle gap, in one run.
//!
//! At 100 requests a second each request arrives ~10 ms after the last one
//! finished; at 1000 the previous one has just left. The gap is slept here
//! (the thread, and with it its CPU, goes idle as a gateway's would), then
//! one unit of work is timed. Three kinds of work, so the run separates the
//! gateway's share from the machine's:
//!
//! - `chain`: the load harness's three output guardrails (pii-redact,
//!   length-check, business-rules, committed manifests) on a 200-byte
//!   answer, a fresh instance per call, as the gateway runs them.
//! - `chase`: 20,000 dependent loads over a 1 MiB working set (random
//!   cycle): memory-bound, as cold as the caches are.
//! - `compute`: a multiply-add over 50 KB: compute-bound, tiny footprint.
//!
//! Page faults and context switches per unit (`getrusage`) are printed with
//! the chain, to rule out the kernel. Not criterion: the point is the
//! distribution of single cold calls, and criterion would spend its
//! measurement time in the sleeps. `N=300` units per case by default;
//! `GAPS=0,1000,10000` (µs) picks the gaps; `POOL=2` gives every guardrail
//! a pre-instantiated pool (`pool-threshold-us = 0`); `REUSE=100` lets each
//! instance answer 100 calls (`calls-per-instance`, the opt-in that weakens
//! isolation), to see how much of a cold call is instantiation;
//! `VARIANT_DIR=dir` also loads `dir/NAME.wasm` (other builds of the same
//! guests) and times both chains in three alternating rounds per gap.
//!
//! ```sh
//! cargo bench -p sluice --bench light_load
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::pipeline::{guard, output};
use sluice::plugin::{Message, OutputPart, PluginRuntime, PluginsConfig, RequestInfo};

const CHAIN: [&str; 3] = ["pii-redact", "length-check", "business-rules"];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runtime(dir: &Path, pool_size: usize, reuse: u32, variant: Option<&Path>) -> Arc<PluginRuntime> {
    for p in CHAIN {
        let g = sluice_guests::by_package(p).expect("a workspace guest");
        let wasm = match variant {
            Some(v) => v.join(format!("{p}.wasm")),
            None => g.wasm.into(),
        };
        std::fs::copy(&wasm, dir.join(format!("{p}.wasm")))
            .unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
        let mut manifest = std::fs::read_to_string(g.manifest.expect("first-party")).unwrap();
        if reuse > 1 {
            let limits = format!("[limits]\ncalls-per-instance = {reuse}");
            manifest = manifest.replacen("[limits]", &limits, 1);
        }
        std::fs::write(dir.join(format!("{p}.toml")), manifest).unwrap();
    }
    let rt = PluginRuntime::start(PluginsConfig {
        dir: dir.to_path_buf(),
        watch: false,
        pool_size,
        pool_threshold_us: 0,
        ..PluginsConfig::default()
    })
    .unwrap();
    assert_eq!(
        rt.current().guardrails().len(),
        CHAIN.len(),
        "{:?}",
        rt.statuses()
    );
    rt
}

/// Minor page faults and voluntary / involuntary context switches so far.
fn rusage() -> [i64; 3] {
    // SAFETY: getrusage only writes the struct it is given.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut r);
        r
    };
    [r.ru_minflt, r.ru_nvcsw, r.ru_nivcsw]
}

/// Time `unit` `n` times, each after `gap` idle; p50 and p90 in µs.
fn timed(n: usize, gap: Duration, mut unit: impl FnMut()) -> (f64, f64) {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            if !gap.is_zero() {
                std::thread::sleep(gap);
            }
            let start = Instant::now();
            unit();
            start.elapsed()
        })
        .collect();
    times.sort();
    let us = |q: f64| times[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e6;
    (us(0.5), us(0.9))
}

/// A random single cycle through `slots` indices (Sattolo's algorithm), so
/// following it visits every slot once in an order prefetchers cannot guess.
fn cycle(slots: usize) -> Vec<usize> {
    let mut next: Vec<usize> = (0..slots).collect();
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for i in (1..slots).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        next.swap(i, (x % i as u64) as usize);
    }
    next
}

fn main() {
    let n: usize = env_or("N", 300);
    let gaps: Vec<u64> = std::env::var("GAPS")
        .unwrap_or_else(|_| "0,1000,10000".into())
        .split(',')
        .map(|g| {
            g.trim()
                .parse()
                .expect("GAPS: microseconds, comma-separated")
        })
        .collect();
    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), env_or("POOL", 0), env_or("REUSE", 1), None);
    let set = rt.current();
    // `VARIANT_DIR`: the same chain from other builds of its guests
    // (`DIR/NAME.wasm`), timed in rounds alternating with the shipped ones.
    let vdir = tempfile::tempdir().unwrap();
    let variant = std::env::var_os("VARIANT_DIR").map(std::path::PathBuf::from);
    let vrt = variant
        .as_deref()
        .map(|v| runtime(vdir.path(), env_or("POOL", 0), env_or("REUSE", 1), Some(v)));
    let vset = vrt.as_ref().map(|r| r.current());
    let req = Arc::new(RequestInfo {
        id: "bench".into(),
        model: "m".into(),
        messages: vec![Message {
            role: "user".into(),
            content: "Where is my order?".into(),
            name: None,
            tool_calls: vec![],
            tool_call_id: None,
        }],
        max_tokens: Some(256),
        ..RequestInfo::default()
    });
    let answer: String = "Thanks for reaching out. Your order 48213 shipped on 2026-11-20 \
                          and should arrive within three business days. "
        .chars()
        .cycle()
        .take(200)
        .collect();
    let ctx = output::whole(0, OutputPart::Content);
    let first = local.block_on(guard::check_output(set.guardrails(), &req, &answer, &ctx));
    assert!(
        first.rejected.is_none() && first.ran.len() == CHAIN.len(),
        "{first:?}"
    );

    let next = cycle((1 << 20) / std::mem::size_of::<usize>());
    let data: Vec<u64> = (0..50_000u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9))
        .collect();
    println!(
        "unit     gap µs    p50 µs    p90 µs  (per unit: page faults, voluntary / involuntary switches)"
    );
    for &gap_us in &gaps {
        let gap = Duration::from_micros(gap_us);
        let before = rusage();
        let (p50, p90) = timed(n, gap, || {
            let v = local.block_on(guard::check_output(set.guardrails(), &req, &answer, &ctx));
            std::hint::black_box(v);
        });
        let after = rusage();
        // The sleep itself is one voluntary switch per unit.
        let slept = if gap.is_zero() { 0 } else { n as i64 };
        let per = |i: usize, less: i64| (after[i] - before[i] - less) as f64 / n as f64;
        println!(
            "chain   {gap_us:>7} {p50:>9.1} {p90:>9.1}  ({:.2}, {:.2} / {:.2})",
            per(0, 0),
            per(1, slept),
            per(2, 0)
        );
        if let Some(vset) = &vset {
            for round in 0..3 {
                let (p50, p90) = timed(n, gap, || {
                    let v =
                        local.block_on(guard::check_output(vset.guardrails(), &req, &answer, &ctx));
                    std::hint::black_box(v);
                });
                println!("variant {gap_us:>7} {p50:>9.1} {p90:>9.1}  round {round}");
                let (p50, p90) = timed(n, gap, || {
                    let v =
                        local.block_on(guard::check_output(set.guardrails(), &req, &answer, &ctx));
                    std::hint::black_box(v);
                });
                println!("chain   {gap_us:>7} {p50:>9.1} {p90:>9.1}  round {round}");
            }
        }
        let mut at = 0usize;
        let (p50, p90) = timed(n, gap, || {
            for _ in 0..20_000 {
                at = next[at];
            }
        });
        std::hint::black_box(at);
        println!("chase   {gap_us:>7} {p50:>9.1} {p90:>9.1}");
        let (p50, p90) = timed(n, gap, || {
            let h = data
                .iter()
                .fold(0u64, |h, &x| h.wrapping_mul(31).wrapping_add(x));
            std::hint::black_box(h);
        });
        println!("compute {gap_us:>7} {p50:>9.1} {p90:>9.1}");
    }
}
