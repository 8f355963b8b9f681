//! Hot reload: swaps are atomic and lossless, broken files keep the old
//! version serving, deletions leave the chain, unchanged files are kept;
//! and only guests slow to instantiate get a pool of ready instances.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice::plugin::{PluginRuntime, PluginState, RuntimeConfig, Verdict};

use crate::support::{guest_wasm, plugin_dir, plugin_dir_named, request, runtime, wait_for, whole};

/// A generous deadline: these tests saturate 2 cores on purpose and are
/// about reloading, not about wall-clock limits.
fn tagger(tag: &str) -> String {
    format!("kind = \"guardrail\"\n[limits]\ndeadline-ms = 2000\n[config]\ntag = \"{tag}\"\n")
}

fn watching(dir: &Path) -> Arc<PluginRuntime> {
    PluginRuntime::start(RuntimeConfig {
        dir: dir.to_path_buf(),
        watch: true,
        debounce_ms: 50,
        // Pool every plugin, however fast, so swaps race real pools.
        pool_size: 2,
        pool_threshold_us: 0,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

/// The tagger component with an extra custom section: same behaviour,
/// different bytes (so a different SHA-256 and a real recompile).
fn tagger_v2_bytes() -> Vec<u8> {
    let mut bytes = std::fs::read(guest_wasm("test-tagger")).unwrap();
    let name = b"sluice-test-version";
    let payload = b"2";
    bytes.push(0); // custom section id
    bytes.push(u8::try_from(1 + name.len() + payload.len()).unwrap()); // size (LEB128, < 128)
    bytes.push(u8::try_from(name.len()).unwrap());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}

/// Rename-into-place, the documented convention.
fn install(dir: &Path, file: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

fn answer(rt: &PluginRuntime, name: &str) -> Option<Verdict> {
    let p = rt.current().get(name)?.clone();
    Some(p.check_output(&request("q"), "x", &whole()).verdict)
}

#[test]
fn replacing_a_plugin_under_load_loses_no_call_and_serves_within_500ms() {
    let dir = plugin_dir_named(&[("guard", "test-tagger", &tagger("v1:"))]);
    let rt = watching(dir.path());
    assert_eq!(
        answer(&rt, "guard"),
        Some(Verdict::Transform("v1:x".into()))
    );

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let first_v2: Arc<Mutex<Option<Instant>>> = Arc::default();
    let bad: Arc<Mutex<Vec<String>>> = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (rt, stop, calls, first_v2, bad) = (
                rt.clone(),
                stop.clone(),
                calls.clone(),
                first_v2.clone(),
                bad.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(p) = rt.current().get("guard").cloned() else {
                        bad.lock()
                            .unwrap()
                            .push("guard missing from the set".into());
                        continue;
                    };
                    let c = p.check_output(&request("q"), "x", &whole());
                    calls.fetch_add(1, Ordering::Relaxed);
                    match (&c.verdict, &c.failure) {
                        (Verdict::Transform(t), None) if t == "v1:x" => {}
                        (Verdict::Transform(t), None) if t == "v2:x" => {
                            first_v2.lock().unwrap().get_or_insert_with(Instant::now);
                        }
                        _ => bad.lock().unwrap().push(format!("{c:?}")),
                    }
                }
            })
        })
        .collect();

    // The runbook: audit the new version, then rename it into place. The
    // audit compiles it into the shared engine's cache, so the swap below
    // measures the reload path, not Cranelift (a cold compile of this 2.9 MB
    // guest takes ~1.5 s in the unoptimised test build on 2 busy cores).
    let v2 = tagger_v2_bytes();
    let staged = tempfile::tempdir().unwrap();
    std::fs::write(staged.path().join("guard.wasm"), &v2).unwrap();
    assert!(
        sluice::plugin::audit::audit(&staged.path().join("guard.wasm"), None, Default::default())
            .unwrap()
            .accepted
    );
    std::thread::sleep(Duration::from_millis(300));
    let swapped_at = Instant::now();
    install(dir.path(), "guard.toml", tagger("v2:").as_bytes());
    install(dir.path(), "guard.wasm", &v2);
    let served = wait_for(Duration::from_secs(5), || {
        first_v2.lock().unwrap().is_some()
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(served, "the new version never answered");
    let latency = first_v2.lock().unwrap().unwrap() - swapped_at;
    assert!(
        latency < Duration::from_millis(500),
        "new version took {latency:?}; last reload: {:?}",
        rt.last_reload()
    );
    let bad = bad.lock().unwrap();
    assert!(
        bad.is_empty(),
        "{} bad calls, e.g. {:?}",
        bad.len(),
        bad.first()
    );
    assert!(calls.load(Ordering::Relaxed) > 20);
    assert_eq!(rt.last_reload().loaded, ["guard"]);
    let st = &rt.statuses()[0];
    assert_eq!(st.state, PluginState::Loaded);
    assert_ne!(st.sha256.as_deref(), Some(""));
}

#[test]
fn broken_file_keeps_the_old_version_serving_and_shows_the_failure() {
    let dir = plugin_dir_named(&[("guard", "test-tagger", &tagger("v1:"))]);
    let rt = watching(dir.path());
    install(dir.path(), "guard.wasm", b"\0asm this is not a component");
    let failed = wait_for(Duration::from_secs(5), || {
        matches!(
            rt.statuses()[0].state,
            PluginState::Failed {
                serving_previous: true,
                ..
            }
        )
    });
    assert!(failed, "{:?}", rt.statuses());
    assert_eq!(
        answer(&rt, "guard"),
        Some(Verdict::Transform("v1:x".into()))
    );
    let PluginState::Failed { error, .. } = &rt.statuses()[0].state else {
        unreachable!()
    };
    assert!(
        error.contains("`guard`") && error.contains("load failed"),
        "{error}"
    );

    // A broken manifest is handled the same way.
    install(
        dir.path(),
        "guard.wasm",
        &std::fs::read(guest_wasm("test-tagger")).unwrap(),
    );
    assert!(wait_for(Duration::from_secs(5), || rt.statuses()[0].state
        == PluginState::Loaded));
    install(
        dir.path(),
        "guard.toml",
        b"kind = \"guardrail\"\nbogus-key = 1\n",
    );
    assert!(wait_for(Duration::from_secs(5), || {
        matches!(&rt.statuses()[0].state, PluginState::Failed { error, .. } if error.contains("bogus-key"))
    }));
    assert_eq!(
        answer(&rt, "guard"),
        Some(Verdict::Transform("v1:x".into()))
    );
}

#[test]
fn in_place_partial_write_is_survived() {
    let dir = plugin_dir_named(&[("guard", "test-tagger", &tagger("v1:"))]);
    let rt = watching(dir.path());
    let v2 = tagger_v2_bytes();
    let path = dir.path().join("guard.wasm");
    // An editor writing in place: half the file, a pause, then the rest.
    std::fs::write(&path, &v2[..v2.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(
        answer(&rt, "guard"),
        Some(Verdict::Transform("v1:x".into()))
    );
    std::fs::write(&path, &v2).unwrap();
    let sha = sluice_sha(&v2);
    assert!(
        wait_for(Duration::from_secs(5), || {
            let st = &rt.statuses()[0];
            st.state == PluginState::Loaded && st.sha256.as_deref() == Some(sha.as_str())
        }),
        "{:?}",
        rt.statuses()
    );
}

fn sluice_sha(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.wasm");
    std::fs::write(&f, bytes).unwrap();
    sluice::plugin::audit::audit(&f, None, Default::default())
        .unwrap()
        .sha256
}

#[test]
fn deleting_a_plugin_removes_it_from_the_chain() {
    let dir = plugin_dir_named(&[
        ("a", "test-tagger", "kind = \"guardrail\"\norder = 1\n"),
        ("b", "test-tagger", "kind = \"guardrail\"\norder = 2\n"),
    ]);
    let rt = watching(dir.path());
    assert_eq!(rt.current().guardrails().len(), 2);
    std::fs::remove_file(dir.path().join("b.wasm")).unwrap();
    std::fs::remove_file(dir.path().join("b.toml")).unwrap();
    assert!(wait_for(Duration::from_secs(5), || rt
        .current()
        .get("b")
        .is_none()));
    let names: Vec<String> = rt
        .current()
        .guardrails()
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    assert_eq!(names, ["a"]);
    assert_eq!(rt.statuses().len(), 1);
}

#[test]
fn unchanged_files_are_not_recompiled_or_replaced() {
    let dir = plugin_dir_named(&[
        ("a", "test-tagger", &tagger("a:")),
        ("b", "test-tagger", &tagger("b:")),
    ]);
    let rt = runtime(dir.path());
    let before = rt.current().get("a").unwrap().clone();
    // Rewrite identical bytes: same hash, so the plugin is kept as is.
    let bytes = std::fs::read(dir.path().join("a.wasm")).unwrap();
    std::fs::write(dir.path().join("a.wasm"), bytes).unwrap();
    let report = rt.reload();
    assert_eq!(report.unchanged, ["a", "b"]);
    assert!(report.loaded.is_empty() && report.compiled.is_empty());
    assert!(Arc::ptr_eq(&before, rt.current().get("a").unwrap()));

    // A manifest change reloads that plugin only, without recompiling.
    std::fs::write(dir.path().join("b.toml"), tagger("B:")).unwrap();
    let report = rt.reload();
    assert_eq!(
        (report.loaded.as_slice(), report.unchanged.as_slice()),
        (&["b".to_string()][..], &["a".to_string()][..])
    );
    assert!(report.compiled.is_empty());
    assert_eq!(answer(&rt, "b"), Some(Verdict::Transform("B:x".into())));
}

#[test]
fn compile_cache_dir_skips_compilation_in_a_fresh_engine() {
    let dir = plugin_dir_named(&[("a", "test-tagger", &tagger("a:"))]);
    // Unique wasm bytes so no other test's in-memory cache entry can hit.
    let mut bytes = tagger_v2_bytes();
    bytes.extend_from_slice(&[0, 6, 5, b'c', b'a', b'c', b'h', b'e']);
    std::fs::write(dir.path().join("a.wasm"), &bytes).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let start = |max_instances| {
        PluginRuntime::start(RuntimeConfig {
            dir: dir.path().to_path_buf(),
            watch: false,
            pool_size: 0,
            cache_dir: Some(cache.path().to_path_buf()),
            max_instances,
            ..RuntimeConfig::default()
        })
        .unwrap()
    };
    // Distinct engine settings => distinct engines with empty memory caches.
    let first = start(901);
    assert_eq!(first.statuses()[0].state, PluginState::Loaded);
    assert_eq!(first.last_reload().compiled, ["a"]);
    let artifacts = std::fs::read_dir(cache.path()).unwrap().count();
    assert_eq!(artifacts, 1);
    let second = start(902);
    let report = second.last_reload();
    assert_eq!(report.loaded, ["a"]);
    assert!(
        report.compiled.is_empty(),
        "loaded from cache-dir, not compiled: {report:?}"
    );
    assert_eq!(answer(&second, "a"), Some(Verdict::Transform("a:x".into())));
}

#[test]
fn only_plugins_slow_to_instantiate_get_a_ready_pool() {
    let dir = plugin_dir(&[("test-tagger", &tagger("a"))]);
    let start = |threshold_us| {
        PluginRuntime::start(RuntimeConfig {
            dir: dir.path().to_path_buf(),
            watch: false,
            pool_size: 2,
            pool_threshold_us: threshold_us,
            ..RuntimeConfig::default()
        })
        .unwrap()
    };
    // No guest takes a minute to instantiate: inline.
    let inline = start(60_000_000);
    let p = inline.current().get("test-tagger").unwrap().clone();
    assert!(!p.is_pooled());
    assert_eq!(p.check_output(&request("x"), "x", &whole()).failure, None);
    assert_eq!(p.pooled(), 0);

    // Every guest is "heavy" at 0 µs: the pool fills in the background and
    // still hands out each instance once.
    let pooled = start(0);
    let p = pooled.current().get("test-tagger").unwrap().clone();
    assert!(p.is_pooled());
    assert!(wait_for(Duration::from_secs(5), || p.pooled() == 2));
    for _ in 0..5 {
        assert_eq!(p.check_output(&request("x"), "x", &whole()).failure, None);
    }
    assert!(wait_for(Duration::from_secs(5), || p.pooled() >= 1));
}
