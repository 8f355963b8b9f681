//! Start-up: the server answers before plugins are compiled (`/healthz`
//! alive, `/readyz` 503 until the initial load has finished), compiled
//! artifacts are cached under the state directory by default, and a
//! damaged cache entry is recompiled, never loaded.

use std::path::Path;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use sluice::plugin::{PluginRuntime, PluginState, PluginsConfig, Verdict};
use sluice_guests as guests;

use crate::support::gateway::{self, reply_body};
use crate::support::plugins::{plugin_dir_named, request, verdict, whole};
use crate::support::process::Sluice;

const TAGGER: &str = "kind = \"guardrail\"\n[config]\ntag = \"t:\"\n";

async fn get(url: String) -> (StatusCode, Value) {
    let res = reqwest::get(url).await.unwrap();
    (res.status(), res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_until_the_initial_load_finishes_while_healthz_answers() {
    let mock = gateway::mock().await;
    let plugins = plugin_dir_named(&[("tag", guests::TEST_TAGGER, TAGGER)]);
    let rest = r#"
[models.chat]
routes = [{ provider = "mock", model = "mock-small" }]
guardrails = ["tag"]
"#;
    let gw = gateway::start_unloaded(&gateway::config(&mock, plugins.path(), rest)).await;
    let runtime = gw.gateway.plugins.clone();
    assert!(!runtime.is_ready());
    let waiter = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.wait_ready().await }
    });

    let (status, body) = get(format!("{}/healthz", gw.url)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = get(format!("{}/readyz", gw.url)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["loading"], true);
    assert_eq!(body["missing_plugins"], serde_json::json!(["tag"]));
    // A guarded model fails closed meanwhile.
    let res = gw.chat(&reply_body("chat", "x")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!waiter.is_finished());

    let report = tokio::task::spawn_blocking({
        let runtime = runtime.clone();
        move || runtime.initial_load().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(report.loaded, ["tag"]);
    waiter.await.unwrap();
    assert!(runtime.is_ready());
    let (status, body) = get(format!("{}/readyz", gw.url)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
    let res = gw.chat(&reply_body("chat", "x")).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_listens_before_compiling_and_caches_artifacts_under_the_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("my-plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(guests::TEST_TAGGER.wasm, plugins.join("tag.wasm")).unwrap();
    std::fs::write(plugins.join("tag.toml"), TAGGER).unwrap();
    let config = format!("[plugins]\ndir = '{}'\nwatch = false\n", plugins.display());
    let sluice = Sluice::start(&config, None).await;

    let order: Vec<String> = sluice
        .log_lines()
        .iter()
        .map(|v| crate::support::process::message(v).to_owned())
        .filter(|m| m == "sluice listening" || m == "plugins ready")
        .collect();
    assert_eq!(order, ["sluice listening", "plugins ready"]);
    let (status, _) = get(format!("{}/readyz", sluice.url)).await;
    assert_eq!(status, StatusCode::OK);

    // `[state] dir` defaults to `data` beside the config file.
    let cache = sluice
        .dir()
        .expect("started in a temp dir")
        .join("data/plugin-cache");
    assert_private_dir(&cache);
    let artifacts: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert!(artifacts[0].ends_with(".cwasm"), "{artifacts:?}");
}

fn assert_private_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
}

/// The tagger with a custom section naming `tag`: same behaviour, bytes of
/// its own (so no other test's in-memory cache entry can answer for it).
fn unique_tagger(tag: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(guests::TEST_TAGGER.wasm).unwrap();
    let name = b"sluice-startup-test";
    bytes.push(0);
    bytes.push(u8::try_from(1 + name.len() + tag.len()).unwrap());
    bytes.push(u8::try_from(name.len()).unwrap());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

#[tokio::test]
async fn a_truncated_or_corrupt_cache_entry_is_recompiled_never_loaded() {
    let dir = plugin_dir_named(&[("a", guests::TEST_TAGGER, TAGGER)]);
    std::fs::write(dir.path().join("a.wasm"), unique_tagger("corrupt")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("state/plugin-cache");
    // Distinct engine settings give each runtime a fresh engine, so its
    // empty memory cache sends it to the disk.
    let start = |max_instances| {
        PluginRuntime::start(PluginsConfig {
            dir: dir.path().to_path_buf(),
            watch: false,
            pool_size: 0,
            cache_dir: Some(cache.clone()),
            max_instances,
            ..PluginsConfig::default()
        })
        .unwrap()
    };
    let serves = |rt: Arc<PluginRuntime>| async move {
        assert_eq!(rt.statuses()[0].state, PluginState::Loaded);
        let p = rt.current().get("a").unwrap().clone();
        assert_eq!(
            verdict(p.check_output(&request("q"), "x", &whole()).await),
            Verdict::Transform("t:x".into())
        );
    };
    let first = start(911);
    assert_eq!(first.last_reload().compiled, ["a"]);
    assert_private_dir(&cache);
    let artifact = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .unwrap();
    let good = std::fs::read(&artifact).unwrap();
    drop(first);

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let damaged: [(&str, Vec<u8>); 3] = [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("one flipped bit", flipped),
        ("empty", Vec::new()),
    ];
    for (i, (what, bytes)) in damaged.into_iter().enumerate() {
        std::fs::write(&artifact, bytes).unwrap();
        let rt = start(912 + u32::try_from(i).unwrap());
        assert_eq!(rt.last_reload().compiled, ["a"], "{what}: recompiled");
        serves(rt).await;
        // The recompile replaced the damaged file.
        let len = std::fs::metadata(&artifact).unwrap().len();
        assert!(len > 0, "{what}: rewritten");
    }
    let warm = start(920);
    assert!(warm.last_reload().compiled.is_empty(), "valid entry used");
    serves(warm).await;
}
