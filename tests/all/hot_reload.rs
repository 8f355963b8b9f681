//! Hot reload: swaps are atomic and lossless, broken files keep the old
//! version serving, deletions leave the chain, unchanged files are kept;
//! and only guests slow to instantiate get a pool of ready instances.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use sluice::plugin::{PluginRuntime, PluginState, PluginsConfig, Verdict};

use sluice_guests as guests;

use crate::support::http::admin_json;
use crate::support::plugins::{plugin_dir, plugin_dir_named, request, runtime, verdict, whole};
use crate::support::{timing_sensitive, wait_for};

/// A generous deadline: these tests saturate 2 cores on purpose and are
/// about reloading, not about wall-clock limits.
fn tagger(tag: &str) -> String {
    format!("kind = \"guardrail\"\n[limits]\ndeadline-ms = 2000\n[config]\ntag = \"{tag}\"\n")
}

fn watching(dir: &Path) -> Arc<PluginRuntime> {
    PluginRuntime::start(PluginsConfig {
        dir: dir.to_path_buf(),
        watch: true,
        debounce_ms: 50,
        // Pool every plugin, however fast, so swaps race real pools.
        pool_size: 2,
        pool_threshold_us: 0,
        ..PluginsConfig::default()
    })
    .unwrap()
}

/// The tagger component with an extra custom section: same behaviour,
/// different bytes (so a different SHA-256 and a real recompile).
pub(crate) fn tagger_v2_bytes() -> Vec<u8> {
    let mut bytes = std::fs::read(guests::TEST_TAGGER.wasm).unwrap();
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
pub(crate) fn install(dir: &Path, file: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

async fn answer(rt: &PluginRuntime, name: &str) -> Option<Verdict> {
    let p = rt.current().get(name)?.clone();
    Some(verdict(p.check_output(&request("q"), "x", &whole()).await))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_plugin_under_load_loses_no_call_and_serves_within_500ms() {
    let _timing = timing_sensitive().await;
    let dir = plugin_dir_named(&[("guard", guests::TEST_TAGGER, &tagger("v1:"))]);
    let rt = watching(dir.path());
    assert_eq!(
        answer(&rt, "guard").await,
        Some(Verdict::Transform("v1:x".into()))
    );

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let v2_calls = Arc::new(AtomicU64::new(0));
    let bad: Arc<Mutex<Vec<String>>> = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (rt, stop, calls, v2_calls, bad) = (
                rt.clone(),
                stop.clone(),
                calls.clone(),
                v2_calls.clone(),
                bad.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Some(p) = rt.current().get("guard").cloned() else {
                        bad.lock()
                            .unwrap()
                            .push("guard missing from the set".into());
                        continue;
                    };
                    let c = p.check_output(&request("q"), "x", &whole()).await;
                    calls.fetch_add(1, Ordering::Relaxed);
                    match &c {
                        Ok(Verdict::Transform(t)) if t == "v1:x" => {}
                        Ok(Verdict::Transform(t)) if t == "v2:x" => {
                            v2_calls.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => bad.lock().unwrap().push(format!("{c:?}")),
                    }
                }
            })
        })
        .collect();

    // The runbook: audit the new version, then rename it into place. The
    // audit compiles it into the shared engine's cache, so the swap does not
    // wait on a cold compile.
    let v2 = tagger_v2_bytes();
    let staged = tempfile::tempdir().unwrap();
    std::fs::write(staged.path().join("guard.wasm"), &v2).unwrap();
    assert!(
        sluice::plugin::audit::audit(
            &staged.path().join("guard.wasm"),
            None,
            &PluginsConfig::default()
        )
        .unwrap()
        .accepted
    );
    // Swap under load: once the workers are calling, and keep calling
    // until the new version has answered a few times too.
    assert!(wait_for(Duration::from_secs(10), || calls
        .load(Ordering::Relaxed)
        >= 20));
    install(dir.path(), "guard.toml", tagger("v2:").as_bytes());
    install(dir.path(), "guard.wasm", &v2);
    let served = wait_for(Duration::from_secs(10), || {
        v2_calls.load(Ordering::Relaxed) >= 20
    });
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        served,
        "the new version never answered; last reload: {:?}",
        rt.last_reload()
    );
    let bad = bad.lock().unwrap();
    assert!(
        bad.is_empty(),
        "{} bad calls, e.g. {:?}",
        bad.len(),
        bad.first()
    );
    assert!(calls.load(Ordering::Relaxed) >= 40);
    assert_eq!(rt.last_reload().loaded, ["guard"]);
    let st = &rt.statuses()[0];
    assert_eq!(st.state, PluginState::Loaded);
    assert_ne!(st.sha256.as_deref(), Some(""));
}

#[tokio::test]
async fn broken_file_keeps_the_old_version_serving_and_shows_the_failure() {
    let dir = plugin_dir_named(&[("guard", guests::TEST_TAGGER, &tagger("v1:"))]);
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
        answer(&rt, "guard").await,
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
        &std::fs::read(guests::TEST_TAGGER.wasm).unwrap(),
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
        answer(&rt, "guard").await,
        Some(Verdict::Transform("v1:x".into()))
    );
}

#[tokio::test]
async fn in_place_partial_write_is_survived() {
    let dir = plugin_dir_named(&[("guard", guests::TEST_TAGGER, &tagger("v1:"))]);
    let rt = watching(dir.path());
    let v2 = tagger_v2_bytes();
    let path = dir.path().join("guard.wasm");
    // An editor writing in place: half the file, then the rest. The watcher
    // sees the half, fails to load it and keeps v1 serving.
    std::fs::write(&path, &v2[..v2.len() / 2]).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || matches!(
            rt.statuses()[0].state,
            PluginState::Failed {
                serving_previous: true,
                ..
            }
        )),
        "{:?}",
        rt.statuses()
    );
    assert_eq!(
        answer(&rt, "guard").await,
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
    sluice::plugin::audit::audit(&f, None, &PluginsConfig::default())
        .unwrap()
        .sha256
}

#[tokio::test]
async fn deleting_a_plugin_removes_it_from_the_chain() {
    let dir = plugin_dir_named(&[
        (
            "a",
            guests::TEST_TAGGER,
            "kind = \"guardrail\"\norder = 1\n",
        ),
        (
            "b",
            guests::TEST_TAGGER,
            "kind = \"guardrail\"\norder = 2\n",
        ),
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

#[tokio::test]
async fn unchanged_files_are_not_recompiled_or_replaced() {
    let dir = plugin_dir_named(&[
        ("a", guests::TEST_TAGGER, &tagger("a:")),
        ("b", guests::TEST_TAGGER, &tagger("b:")),
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
    assert_eq!(
        answer(&rt, "b").await,
        Some(Verdict::Transform("B:x".into()))
    );
}

#[tokio::test]
async fn compile_cache_dir_skips_compilation_in_a_fresh_engine() {
    let dir = plugin_dir_named(&[("a", guests::TEST_TAGGER, &tagger("a:"))]);
    // Unique wasm bytes so no other test's in-memory cache entry can hit.
    let mut bytes = tagger_v2_bytes();
    bytes.extend_from_slice(&[0, 6, 5, b'c', b'a', b'c', b'h', b'e']);
    std::fs::write(dir.path().join("a.wasm"), &bytes).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let start = |max_instances| {
        PluginRuntime::start(PluginsConfig {
            dir: dir.path().to_path_buf(),
            watch: false,
            pool_size: 0,
            cache_dir: Some(cache.path().to_path_buf()),
            max_instances,
            ..PluginsConfig::default()
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
    assert_eq!(
        answer(&second, "a").await,
        Some(Verdict::Transform("a:x".into()))
    );
}

#[tokio::test]
async fn only_plugins_slow_to_instantiate_get_a_ready_pool() {
    let dir = plugin_dir(&[(guests::TEST_TAGGER, &tagger("a"))]);
    let start = |threshold_us| {
        PluginRuntime::start(PluginsConfig {
            dir: dir.path().to_path_buf(),
            watch: false,
            pool_size: 2,
            pool_threshold_us: threshold_us,
            ..PluginsConfig::default()
        })
        .unwrap()
    };
    // No guest takes a minute to instantiate: inline.
    let inline = start(60_000_000);
    let p = inline.current().get("test-tagger").unwrap().clone();
    assert!(!p.is_pooled());
    assert!(p.check_output(&request("x"), "x", &whole()).await.is_ok());
    assert_eq!(p.pooled(), 0);

    // Every guest is "heavy" at 0 µs: the pool fills in the background and
    // still hands out each instance once.
    let pooled = start(0);
    let p = pooled.current().get("test-tagger").unwrap().clone();
    assert!(p.is_pooled());
    assert!(wait_for(Duration::from_secs(5), || p.pooled() == 2));
    for _ in 0..5 {
        assert!(p.check_output(&request("x"), "x", &whole()).await.is_ok());
    }
    assert!(wait_for(Duration::from_secs(5), || p.pooled() >= 1));
}

/// Shuts its runtime down without waiting for blocking tasks, so a test of
/// a reload that blocks fails instead of hanging at the end.
struct Background(Option<tokio::runtime::Runtime>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A FIFO named `b.toml` beside a valid `b.wasm` (opening it for reading
/// would block until a writer appears): the directory reader takes regular
/// files only, so `b` fails to load, the gateway starts, a later swap of
/// another plugin is still picked up, and `POST /admin/reload` answers.
#[test]
fn a_fifo_in_the_plugin_directory_cannot_stall_reloading() {
    let dir = plugin_dir_named(&[("a", guests::TEST_TAGGER, &tagger("v1:"))]);
    std::fs::copy(
        std::path::PathBuf::from(guests::TEST_TAGGER.wasm),
        dir.path().join("b.wasm"),
    )
    .unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.path().join("b.toml"))
        .status()
        .unwrap();
    assert!(made.success());
    let server = Background(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ));
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mock = clients.block_on(crate::support::gateway::mock());
    let config = format!(
        r#"
[server]
admin-key = "adm"

[plugins]
dir = '{dir}'
watch = true
debounce-ms = 50

[[providers]]
name = "mock"
base-url = "{base}"

[models.m]
output-guardrails = ["a"]
routes = [{{ provider = "mock", model = "mock-small" }}]
"#,
        dir = dir.path().display(),
        base = mock.base(),
    );
    let rt = server.0.as_ref().unwrap();
    let gw = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(20),
                crate::support::gateway::start(&config),
            )
            .await
        })
        .expect("the gateway did not finish loading its plugin directory");
    clients.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let answer = async || {
            let res = gw
                .chat(&crate::support::gateway::reply_body("m", "x"))
                .await;
            assert_eq!(res.status(), 200);
            let body: serde_json::Value = res.json().await.unwrap();
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(answer().await, "v1:x");
        let failed = |body: &serde_json::Value| body.to_string();
        let plugins: serde_json::Value =
            admin_json(Method::GET, &format!("{}/admin/plugins", gw.url), "adm").await;
        assert!(failed(&plugins).contains("not a regular file"), "{plugins}");

        install(dir.path(), "a.toml", tagger("v2:").as_bytes());
        let swapped = tokio::time::timeout(Duration::from_secs(10), async {
            while answer().await != "v2:x" {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(swapped.is_ok(), "the swap of `a` was never picked up");

        let res = client
            .post(format!("{}/admin/reload", gw.url))
            .bearer_auth("adm")
            .send()
            .await
            .expect("POST /admin/reload must answer");
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        let report = body["reload"].to_string();
        assert!(report.contains("not a regular file"), "{report}");
    });
    drop(gw);
}
