//! The dashboard (`/admin/ui`) in headless Chromium: it loads, polls the
//! overview with the admin key from the URL fragment, shows a plugin
//! hot-swapped during the test and a rejection whose (untrusted) reason is
//! shown as text, never as markup. Set `SLUICE_DASHBOARD_SCREENSHOT=PATH`
//! to keep the screenshot (`docs/dashboard.png` is made that way).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sluice_guests as guests;

use crate::hot_reload::{install, tagger_v2_bytes};
use crate::support::gateway::{self, TestGateway};
use crate::support::plugins::plugin_dir_named;

pub const ADMIN_KEY: &str = "adm-secret";

/// A reason a hostile plugin could return: markup that would run if the
/// page parsed it.
const HOSTILE_REASON: &str = r#"<img id=\"injected\" src=x>"#;

fn rules_manifest() -> String {
    format!(
        "kind = \"guardrail\"\norder = 400\n[config]\nrules = '''\n[{{\"code\": \"fruit\", \"reason\": \"{HOSTILE_REASON} no fruit\", \"phrases\": [\"forbidden fruit\"]}}]\n'''\n"
    )
}

const TAGGER: &str =
    "kind = \"guardrail\"\norder = 1\n[limits]\ndeadline-ms = 2000\n[config]\ntag = \"v1:\"\n";

async fn start(mock: &gateway::Mock, dir: &Path) -> TestGateway {
    let rest = format!(
        r#"
[server]
admin-key = "{ADMIN_KEY}"

[models.chat]
routes = [{{ provider = "mock", model = "mock-small" }}]
output-guardrails = ["guard", "rules"]
"#
    );
    let config = gateway::config(mock, dir, &rest)
        .replace("watch = false", "watch = true\ndebounce-ms = 50");
    gateway::start(&config).await
}

/// The first Chromium on the PATH.
fn chromium() -> &'static str {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("headless Chromium is needed (apt-get install chromium)")
}

/// Run headless Chromium on `url` with `extra` arguments; returns stdout.
/// `--virtual-time-budget` lets the page's fetches and first polls finish
/// before the DOM is dumped (virtual time waits for the network).
async fn headless(url: String, extra: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().unwrap();
        let out = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

fn sha_of(gw: &TestGateway, name: &str) -> String {
    let st = gw.gateway.plugins.statuses();
    let s = st.iter().find(|s| s.name == name).unwrap();
    s.sha256.clone().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_hot_swapped_plugin_and_escapes_reasons() {
    let dir = plugin_dir_named(&[
        ("guard", guests::TEST_TAGGER, TAGGER),
        ("rules", guests::BUSINESS_RULES, &rules_manifest()),
    ]);
    let mock = gateway::mock().await;
    let gw = start(&mock, dir.path()).await;
    for reply in ["hello", "we sell forbidden fruit", "hi again"] {
        let res = gw.chat(&gateway::reply_body("chat", reply)).await;
        let want = if reply.contains("fruit") { 422 } else { 200 };
        assert_eq!(res.status(), want, "{reply}: {:?}", res.text().await);
    }
    let old = sha_of(&gw, "guard");

    // Swap the guardrail's wasm and wait for the watcher's reload.
    let mut events = gw.gateway.plugins.reload_events();
    install(dir.path(), "guard.wasm", &tagger_v2_bytes());
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let swapped = gw
                .gateway
                .plugins
                .reload_history()
                .iter()
                .any(|e| e.changed.iter().any(|n| n == "guard"));
            if swapped {
                break;
            }
            events.changed().await.unwrap();
        }
    })
    .await
    .expect("the watcher reloads the swapped plugin");
    let new = sha_of(&gw, "guard");
    assert_ne!(old, new);

    let page = format!("{}/admin/ui#key={ADMIN_KEY}", gw.url);
    let dom = headless(page.clone(), vec!["--dump-dom".into()]).await;
    assert!(dom.contains(r#"data-state="ok""#), "{dom}");
    assert!(dom.contains("data-polls="), "{dom}");
    // The chain shows the swapped version, by its new SHA-256.
    let chain = dom
        .split(r#"data-model="chat""#)
        .nth(1)
        .expect("a chain for model chat");
    assert!(
        chain.contains(&format!(
            r#"data-plugin="guard" data-state="loaded" data-sha256="{new}""#
        )),
        "{dom}"
    );
    assert!(!dom.contains(&old), "the old version is gone: {dom}");
    // The reload is listed, by the watcher, as a change of `guard`.
    let reload_row = dom
        .split("<tr data-seq=")
        .find(|row| row.contains("watcher") && row.contains("<td>guard</td>"));
    assert!(reload_row.is_some(), "{dom}");
    // The rejection is listed; its reason is text, not markup.
    assert_eq!(dom.matches(r#"class="rejection""#).count(), 1, "{dom}");
    assert!(
        dom.contains("&lt;img id=\"injected\" src=x&gt; no fruit"),
        "{dom}"
    );
    assert!(!dom.contains("<img id=\"injected\""), "{dom}");
    // Verdict counts of the serving versions: `rules` rejected once.
    let rules = chain.split(r#"data-plugin="rules""#).nth(1).unwrap();
    assert!(
        rules.contains(r#"data-verdict="reject">reject 1<"#),
        "{rules}"
    );
    // The key never lands in the page.
    assert!(!dom.contains(ADMIN_KEY));

    let shot = std::env::var_os("SLUICE_DASHBOARD_SCREENSHOT").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let path = shot.unwrap_or_else(|| tmp.path().join("dashboard.png"));
    headless(
        page,
        vec![
            format!("--screenshot={}", path.display()),
            "--window-size=1280,960".into(),
            "--hide-scrollbars".into(),
        ],
    )
    .await;
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_key_the_page_asks_for_it_and_shows_no_data() {
    let dir = plugin_dir_named(&[("tagger-xyz", guests::TEST_TAGGER, TAGGER)]);
    let mock = gateway::mock().await;
    let rest = format!("[server]\nadmin-key = \"{ADMIN_KEY}\"\n");
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &rest)).await;
    let res = reqwest::get(format!("{}/admin/ui", gw.url)).await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let html = res.text().await.unwrap();
    assert!(
        !html.contains("tagger-xyz"),
        "the page itself holds no data"
    );

    for fragment in ["", "#key=wrong"] {
        let dom = headless(
            format!("{}/admin/ui{fragment}", gw.url),
            vec!["--dump-dom".into()],
        )
        .await;
        assert!(dom.contains(r#"data-state="need-key""#), "{dom}");
        assert!(!dom.contains("tagger-xyz"), "{dom}");
    }
    // The data endpoint itself refuses, OpenAI-shaped.
    let res = reqwest::get(format!("{}/admin/overview", gw.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
}
