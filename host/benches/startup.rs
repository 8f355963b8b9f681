//! Time to ready: a fresh plugin runtime (new engine, empty in-memory
//! cache: what a restarted gateway has) loading a directory of 10 plugins,
//! from `PluginRuntime::new` until `initial_load` returns, which is when
//! `/readyz` turns 200.
//!
//! The 10: the eight first-party plugins (`plugins/`), plus the `ssn-redact`
//! example in Python (componentize-py, ~18 MB) and in JavaScript (QuickJS,
//! ~1.6 MB, on the async-ABI twin engine) when built (see
//! `benches/languages.rs`); when an example is missing, the Rust one or a
//! first-party plugin under another name takes its place and the bench says
//! so.
//!
//! - `cold` (printed once, the baseline): empty cache directory, every
//!   plugin compiled (in parallel, one per core).
//! - `warm` (criterion): the same directory again with the cache filled by
//!   the cold run: every artifact read, SHA-256-checked and deserialized.
//!
//! ```sh
//! for l in rust python js; do examples/guardrails/$l/build; done
//! cargo bench -p sluice --bench startup
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::plugin::{PluginRuntime, PluginState, PluginsConfig};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The example `ssn-redact` of `lang`, if built: (wasm, manifest).
fn example(lang: &str) -> Option<(PathBuf, PathBuf)> {
    let dir = root().join("target/examples").join(lang);
    let wasm = dir.join("ssn-redact.wasm");
    wasm.is_file().then(|| (wasm, dir.join("ssn-redact.toml")))
}

/// The 10-plugin directory.
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for g in sluice_guests::first_party() {
        std::fs::copy(g.wasm, dir.path().join(format!("{}.wasm", g.package))).unwrap();
        std::fs::copy(
            g.manifest.unwrap(),
            dir.path().join(format!("{}.toml", g.package)),
        )
        .unwrap();
        n += 1;
    }
    for lang in ["python", "js-quickjs"] {
        let (wasm, toml) = example(lang)
            .or_else(|| example("rust"))
            .unwrap_or_else(|| {
                let g = sluice_guests::by_package("pii-redact").unwrap();
                (PathBuf::from(g.wasm), PathBuf::from(g.manifest.unwrap()))
            });
        eprintln!("ssn-redact-{lang}: {}", wasm.display());
        std::fs::copy(&wasm, dir.path().join(format!("ssn-redact-{lang}.wasm"))).unwrap();
        std::fs::copy(&toml, dir.path().join(format!("ssn-redact-{lang}.toml"))).unwrap();
        n += 1;
    }
    assert_eq!(n, 10);
    dir
}

/// New runtime + initial load; the time until it is ready. Each call gets
/// engine settings of its own (`max-instances`, which does not shape code,
/// so the artifacts still match): a new engine with an empty in-memory
/// cache, as a restarted process has. No ready pools: they are filled
/// after the load, so they do not delay readiness, and a previous run's
/// refill would compete with this one for the cores.
fn start(dir: &Path, cache: &Path) -> (Duration, Arc<PluginRuntime>) {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let t = Instant::now();
    let rt = PluginRuntime::new(PluginsConfig {
        dir: dir.to_path_buf(),
        watch: false,
        pool_size: 0,
        max_instances: 1000 + RUN.fetch_add(1, Ordering::Relaxed),
        cache_dir: Some(cache.to_path_buf()),
        ..PluginsConfig::default()
    })
    .unwrap();
    let report = rt.initial_load().unwrap();
    let took = t.elapsed();
    assert!(rt.is_ready());
    let statuses = rt.statuses();
    assert!(
        statuses.iter().all(|s| s.state == PluginState::Loaded),
        "{statuses:?}"
    );
    assert_eq!(statuses.len(), 10);
    std::hint::black_box(report);
    (took, rt)
}

fn bench(c: &mut Criterion) {
    let dir = plugin_dir();
    let cache = tempfile::tempdir().unwrap();
    let (cold, rt) = start(dir.path(), cache.path());
    assert_eq!(rt.last_reload().compiled.len(), 10);
    drop(rt);
    let (warm, rt) = start(dir.path(), cache.path());
    assert!(rt.last_reload().compiled.is_empty(), "all from the cache");
    drop(rt);
    eprintln!(
        "10 plugins to ready: cold (compile) {:.0} ms, warm (cache) {:.0} ms: {:.1}x faster",
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        cold.as_secs_f64() / warm.as_secs_f64()
    );
    let mut group = c.benchmark_group("startup");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.bench_function("warm_cache_10_plugins_to_ready", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (took, rt) = start(dir.path(), cache.path());
                    assert!(rt.last_reload().compiled.is_empty());
                    took
                })
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
