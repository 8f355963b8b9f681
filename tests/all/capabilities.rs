//! Capabilities: beyond the contract, the deny-by-default baseline and the
//! inert interfaces (which grant nothing as linked), nothing is reachable
//! unless granted; with `strict-imports` the inert ones need their grant
//! too, and refusals name the import and the plugin.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice::plugin::audit::{AuditReport, audit};
use sluice::plugin::capability::Access;
use sluice::plugin::{Plugin, PluginRuntime, PluginState, PluginsConfig, Verdict};

use sluice_guests as guests;

use crate::support::plugins::{plugin_dir, request, runtime, verdict, whole};

/// `[plugins]` with `strict-imports = true`.
fn strict() -> PluginsConfig {
    PluginsConfig {
        strict_imports: true,
        ..PluginsConfig::default()
    }
}

/// A runtime over `dir` with `[plugins] strict-imports = true`.
fn strict_runtime(dir: &std::path::Path) -> Arc<PluginRuntime> {
    PluginRuntime::start(PluginsConfig {
        dir: dir.to_path_buf(),
        watch: false,
        ..strict()
    })
    .unwrap()
}

/// `name` from `rt`, which must have loaded it.
fn loaded(rt: &PluginRuntime, name: &str) -> Arc<Plugin> {
    rt.current()
        .get(name)
        .unwrap_or_else(|| panic!("{name} must load: {:?}", rt.statuses()))
        .clone()
}

/// The load error of `name` under strict imports, asserting it is not serving.
fn refusal(dir: &std::path::Path, name: &str) -> String {
    let rt = strict_runtime(dir);
    assert!(rt.current().get(name).is_none(), "{name} must not serve");
    let st = rt
        .statuses()
        .into_iter()
        .find(|s| s.name == name)
        .expect("status row");
    match st.state {
        PluginState::Failed {
            error,
            serving_previous: false,
        } => error,
        other => panic!("expected a failed load, got {other:?}"),
    }
}

#[tokio::test]
async fn strict_imports_refuse_filesystem_without_grant_naming_import_and_plugin() {
    let dir = plugin_dir(&[(guests::HOSTILE_FILES, "kind = \"guardrail\"\n")]);
    let err = refusal(dir.path(), "hostile-files");
    assert!(err.contains("`hostile-files`"), "{err}");
    assert!(err.contains("wasi:filesystem/"), "{err}");
    assert!(err.contains("needs `files`"), "{err}");
}

#[tokio::test]
async fn strict_imports_refuse_sockets_without_grant() {
    let dir = plugin_dir(&[(guests::HOSTILE_SOCKETS, "kind = \"guardrail\"\n")]);
    let err = refusal(dir.path(), "hostile-sockets");
    assert!(
        err.contains("`hostile-sockets`") && err.contains("wasi:sockets/"),
        "{err}"
    );
    assert!(err.contains("needs `sockets`"), "{err}");
}

#[tokio::test]
async fn inert_filesystem_loads_and_opens_nothing() {
    let dir = plugin_dir(&[(guests::HOSTILE_FILES, "kind = \"guardrail\"\n")]);
    let rt = runtime(dir.path());
    let p = loaded(&rt, "hostile-files");
    assert!(p.grants().is_empty());
    let readme = crate::support::root().join("README.md");
    for path in [
        "/etc/hostname",
        ".",
        "README.md",
        &readme.display().to_string(),
    ] {
        match verdict(p.check_output(&request("q"), path, &whole()).await) {
            Verdict::Reject(r) => assert_eq!(r.code, "io_error", "{path}: {r:?}"),
            v => panic!("{path} must not be readable, got {v:?}"),
        }
    }
}

#[tokio::test]
async fn inert_sockets_load_and_refuse_every_address() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = plugin_dir(&[(guests::HOSTILE_SOCKETS, "kind = \"guardrail\"\n")]);
    let rt = runtime(dir.path());
    let p = loaded(&rt, "hostile-sockets");
    let c = verdict(
        p.check_output(&request("q"), &addr.to_string(), &whole())
            .await,
    );
    assert!(
        matches!(&c, Verdict::Reject(r) if r.code == "net_error"),
        "{c:?}"
    );
    // Refused before any connection: nothing is waiting to be accepted.
    let pending = listener.accept();
    assert!(
        matches!(&pending, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{pending:?}"
    );
}

#[tokio::test]
async fn inert_http_loads_and_refuses_every_request() {
    let (server, hits) = counting_pong_server();
    let dir = plugin_dir(&[(guests::HOSTILE_HTTP, "kind = \"guardrail\"\n")]);
    let rt = runtime(dir.path());
    let p = loaded(&rt, "hostile-http");
    assert!(p.grants().is_empty());
    let c = verdict(
        p.check_output(&request("q"), &format!("http://{server}/ping"), &whole())
            .await,
    );
    match &c {
        Verdict::Reject(r) => {
            assert_eq!(r.code, "http_error", "{c:?}");
            assert!(r.reason.contains("HttpRequestDenied"), "{c:?}");
        }
        v => panic!("an ungranted request must be refused, got {v:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn inert_clocks_read_whole_milliseconds_and_a_grant_gives_full_resolution() {
    // `wall=N;spin=N;` from the hostile-clocks guest.
    async fn sample(p: &Plugin) -> (u128, u128) {
        let Verdict::Transform(t) = verdict(p.check_output(&request("q"), "", &whole()).await)
        else {
            panic!("hostile-clocks answers with a transform");
        };
        let field = |k: &str| {
            t.split(';')
                .find_map(|f| f.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{k} in {t}"))
        };
        (field("wall="), field("spin="))
    }
    let dir = plugin_dir(&[(guests::HOSTILE_CLOCKS, "kind = \"guardrail\"\n")]);
    let rt = runtime(dir.path());
    let p = loaded(&rt, "hostile-clocks");
    for _ in 0..20 {
        let (wall, spin) = sample(&p).await;
        assert_eq!(wall % 1_000_000, 0, "wall clock not coarsened: {wall}");
        assert_eq!(spin % 1_000_000, 0, "monotonic clock not coarsened: {spin}");
    }
    let dir = plugin_dir(&[(
        guests::HOSTILE_CLOCKS,
        "kind = \"guardrail\"\n[capabilities]\nclocks = true\n",
    )]);
    let rt = runtime(dir.path());
    let p = loaded(&rt, "hostile-clocks");
    // A full-resolution reading is a whole millisecond one time in a million.
    let mut fine = false;
    for _ in 0..20 {
        let (wall, spin) = sample(&p).await;
        fine |= wall % 1_000_000 != 0 || spin % 1_000_000 != 0;
    }
    assert!(fine, "granted clocks must not be coarsened");
}

#[tokio::test]
async fn future_contract_version_is_refused_naming_the_versions_spoken() {
    let dir = plugin_dir(&[(guests::HOSTILE_FUTURE, "kind = \"guardrail\"\n")]);
    let err = refusal(dir.path(), "hostile-future");
    assert!(err.contains("sluice:plugin/guardrail@0.3.0"), "{err}");
    assert!(
        err.contains("sluice:plugin@0.2.x") && err.contains("sluice:plugin@0.1.x"),
        "{err}"
    );
}

#[tokio::test]
async fn kind_mismatch_is_refused() {
    let dir = plugin_dir(&[(guests::TEST_TAGGER, "kind = \"router\"\n")]);
    let err = refusal(dir.path(), "test-tagger");
    assert!(
        err.contains("kind = \"router\"") && err.contains("guardrail"),
        "{err}"
    );
}

#[tokio::test]
async fn baseline_environment_is_empty() {
    let dir = plugin_dir(&[(guests::HOSTILE_ENV, "kind = \"guardrail\"\n")]);
    let rt = runtime(dir.path());
    let p = rt.current().get("hostile-env").unwrap().clone();
    let c = verdict(p.check_output(&request("q"), "", &whole()).await);
    assert_eq!(c, Verdict::Transform("args=0;".into()));
}

#[tokio::test]
async fn env_is_passed_by_name_only() {
    let path = std::env::var("PATH").expect("tests run with PATH set");
    let dir = plugin_dir(&[(
        guests::HOSTILE_ENV,
        "kind = \"guardrail\"\n[capabilities]\nenv = [\"PATH\", \"SLUICE_SURELY_UNSET_VAR\"]\n",
    )]);
    let rt = runtime(dir.path());
    let p = rt.current().get("hostile-env").unwrap().clone();
    let c = verdict(p.check_output(&request("q"), "", &whole()).await);
    assert_eq!(c, Verdict::Transform(format!("args=0;PATH={path};")));
}

#[tokio::test]
async fn granted_directory_is_readable_and_outside_is_not() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("ok.txt"), "inside the grant").unwrap();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("secret.txt"), "top secret").unwrap();
    let manifest = format!(
        "kind = \"guardrail\"\n[capabilities]\nfiles = [{{ host = \"{}\", guest = \"/data\" }}]\n",
        data.path().display()
    );
    let dir = plugin_dir(&[(guests::HOSTILE_FILES, &manifest)]);
    let rt = runtime(dir.path());
    let p = rt
        .current()
        .get("hostile-files")
        .unwrap_or_else(|| panic!("{:?}", rt.statuses()))
        .clone();
    let read = async |path: &str| verdict(p.check_output(&request("q"), path, &whole()).await);

    assert_eq!(
        read("/data/ok.txt").await,
        Verdict::Transform("inside the grant".into())
    );
    let secret_path = secret.path().join("secret.txt");
    let escape = format!("/data/../{}", secret_path.display());
    for attempt in [
        secret_path.display().to_string(),
        escape,
        "/etc/hostname".into(),
    ] {
        match read(&attempt).await {
            Verdict::Reject(r) => assert_eq!(r.code, "io_error", "{attempt}: {r:?}"),
            v => panic!("{attempt} must not be readable, got {v:?}"),
        }
    }
}

#[tokio::test]
async fn sockets_grant_allows_listed_address_only() {
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed_addr = allowed.local_addr().unwrap();
    let other_addr = other.local_addr().unwrap();
    // Rust std's socket layer (wasi-libc) also imports wasi:filesystem,
    // linked inert: no directory grant needed.
    let manifest = format!(
        "kind = \"guardrail\"\n[limits]\ndeadline-ms = 2000\n[capabilities]\nsockets = [\"{allowed_addr}\"]\n"
    );
    let dir = plugin_dir(&[(guests::HOSTILE_SOCKETS, &manifest)]);
    let rt = runtime(dir.path());
    let p = rt
        .current()
        .get("hostile-sockets")
        .unwrap_or_else(|| panic!("{:?}", rt.statuses()))
        .clone();
    let c = verdict(
        p.check_output(&request("q"), &allowed_addr.to_string(), &whole())
            .await,
    );
    assert_eq!(c, Verdict::Transform("connected".into()), "{c:?}");
    let c = verdict(
        p.check_output(&request("q"), &other_addr.to_string(), &whole())
            .await,
    );
    assert!(
        matches!(&c, Verdict::Reject(r) if r.code == "net_error"),
        "{c:?}"
    );
}

#[tokio::test]
async fn strict_imports_refuse_http_without_grant() {
    let dir = plugin_dir(&[(guests::HOSTILE_HTTP, "kind = \"guardrail\"\n")]);
    let err = refusal(dir.path(), "hostile-http");
    assert!(
        err.contains("`hostile-http`") && err.contains("wasi:http/"),
        "{err}"
    );
    assert!(err.contains("needs `http`"), "{err}");
}

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every request `200 pong`.
fn pong_server() -> std::net::SocketAddr {
    counting_pong_server().0
}

/// [`pong_server`], with the number of connections it accepted.
fn counting_pong_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut conn, &mut buf);
            let _ = std::io::Write::write_all(
                &mut conn,
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong",
            );
        }
    });
    (addr, hits)
}

/// `wasi:http` end to end: the granted host answers, any other host or port
/// is refused by the gateway before a connection is made.
#[tokio::test]
async fn http_grant_allows_listed_hosts_only() {
    let allowed = pong_server();
    let other = pong_server();
    let manifest = format!(
        "kind = \"guardrail\"\n[limits]\ndeadline-ms = 5000\n[capabilities]\nhttp = [\"{allowed}\"]\n"
    );
    let dir = plugin_dir(&[(guests::HOSTILE_HTTP, &manifest)]);
    let rt = runtime(dir.path());
    let p = rt
        .current()
        .get("hostile-http")
        .unwrap_or_else(|| panic!("{:?}", rt.statuses()))
        .clone();
    let c = verdict(
        p.check_output(&request("q"), &format!("http://{allowed}/ping"), &whole())
            .await,
    );
    assert_eq!(c, Verdict::Transform("200 pong".into()), "{c:?}");
    let c = verdict(
        p.check_output(&request("q"), &format!("http://{other}/ping"), &whole())
            .await,
    );
    match &c {
        Verdict::Reject(r) => {
            assert_eq!(r.code, "http_error", "{c:?}");
            assert!(r.reason.contains("HttpRequestDenied"), "{c:?}");
        }
        v => panic!("a host outside the grant must be refused, got {v:?}"),
    }
}

#[tokio::test]
async fn audit_shows_every_import_with_its_verdict() {
    let wasm = std::path::PathBuf::from(guests::HOSTILE_FILES.wasm);
    let report = audit(&wasm, None, &PluginsConfig::default()).unwrap();
    assert!(report.accepted, "{:?}", report.problems);
    assert_eq!(
        report.world.as_deref(),
        Some("sluice:plugin/guardrail-plugin@0.2.0")
    );
    assert_eq!(report.contract, Some(sluice::plugin::Contract::V0_2));
    // Inert filesystem: accepted, so the trial load asked for its phases.
    assert_eq!(report.phases, Some(vec!["input", "output"]));
    assert_eq!(report.sha256.len(), 64);
    let verdict = |report: &AuditReport, prefix: &str| {
        report
            .imports
            .iter()
            .find(|i| i.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} import in {:?}", report.imports))
            .access
            .clone()
    };
    assert!(matches!(
        verdict(&report, "wasi:filesystem/types"),
        Access::Inert { .. }
    ));
    assert_eq!(verdict(&report, "wasi:cli/environment"), Access::Baseline);
    assert_eq!(verdict(&report, "sluice:plugin/types"), Access::Contract);
    let text = report.to_text();
    assert!(
        text.contains("baseline (inert): no preopened directory")
            && text.contains("verdict:   ACCEPTED"),
        "{text}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["accepted"], true);
    let fs = json["imports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["name"]
                .as_str()
                .unwrap()
                .starts_with("wasi:filesystem/types")
        })
        .unwrap();
    assert_eq!(fs["verdict"], "inert", "{fs}");

    // Strict imports: refused, unless a manifest grants a directory.
    let report = audit(&wasm, None, &strict()).unwrap();
    assert!(!report.accepted);
    assert!(verdict(&report, "wasi:filesystem/types").is_refused());
    // Refused before the trial load, so no phases were asked.
    assert_eq!(report.phases, None);
    let text = report.to_text();
    assert!(
        text.contains("REFUSED") && text.contains("verdict:   REFUSED"),
        "{text}"
    );
    let data = tempfile::tempdir().unwrap();
    let manifest = data.path().join("hostile-files.toml");
    std::fs::write(
        &manifest,
        "kind = \"guardrail\"\n[capabilities]\nfiles = [{ host = \".\", guest = \"/data\" }]\n",
    )
    .unwrap();
    let report = audit(&wasm, Some(&manifest), &strict()).unwrap();
    assert!(report.accepted, "{:?}", report.problems);
    assert!(report.to_text().contains("granted (files)"));
}

#[tokio::test]
async fn plugin_list_shows_the_chain_and_refusals() {
    let dir = plugin_dir(&[
        (guests::TEST_TAGGER, "kind = \"guardrail\"\norder = 5\n"),
        (guests::HOSTILE_FUTURE, "kind = \"guardrail\"\n"),
    ]);
    let (text, failed) = sluice::cli::plugin::list(dir.path().to_path_buf(), false).unwrap();
    assert_eq!(failed, 1);
    assert!(text.contains("guardrails     test-tagger (5)"), "{text}");
    assert!(
        text.contains("FAILED") && text.contains("sluice:plugin/guardrail@0.3.0"),
        "{text}"
    );
    let (json, _) = sluice::cli::plugin::list(dir.path().to_path_buf(), true).unwrap();
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[1]["name"], "test-tagger");
    assert_eq!(rows[1]["state"], "loaded");
    assert_eq!(rows[0]["state"], "failed");
}
