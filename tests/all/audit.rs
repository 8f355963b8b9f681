//! `sluice plugin audit` and the loader give one verdict: the audit runs the
//! loader's checks, linker and trial instantiation with the manifest's
//! limits and the runtime settings of a config. And files grants of broad
//! or sensitive host paths are flagged by both and refused unless the
//! manifest acknowledges them.

use std::path::Path;

use sluice::config::Config;
use sluice::plugin::audit::{AuditReport, audit};
use sluice::plugin::{PluginRuntime, PluginState, PluginsConfig, Verdict};

use sluice_guests as guests;

use crate::support::plugins::{plugin_dir, request, runtime, verdict, whole};

/// The load error of `name` in a runtime over `dir` (asserting it failed).
fn load_error(rt: &PluginRuntime, name: &str) -> String {
    let st = rt.statuses().into_iter().find(|s| s.name == name).unwrap();
    match st.state {
        PluginState::Failed { error, .. } => error,
        PluginState::Loaded => panic!("{name} loaded"),
    }
}

/// Audit `pkg`'s component with `manifest` (written beside a copy of it).
fn audit_with(guest: guests::Guest, manifest: Option<&str>, cfg: &PluginsConfig) -> AuditReport {
    let pkg = guest.package;
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join(format!("{pkg}.wasm"));
    std::fs::copy(guest.wasm, &wasm).unwrap();
    let toml = manifest.map(|text| {
        let path = dir.path().join(format!("{pkg}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    });
    audit(&wasm, toml.as_deref(), cfg).unwrap()
}

/// Built against a contract whose `host` interface has an extra function:
/// every import name is known, so a check of names passes; the linker does
/// not, and neither may the audit.
#[tokio::test]
async fn audit_refuses_a_component_the_linker_cannot_link() {
    let report = audit_with(
        guests::HOSTILE_EXTRA_IMPORT,
        None,
        &PluginsConfig::default(),
    );
    assert!(!report.accepted, "{}", report.to_text());
    let problem = report.problems.join("; ");
    assert!(problem.contains("steal"), "{problem}");

    let dir = plugin_dir(&[(guests::HOSTILE_EXTRA_IMPORT, "kind = \"guardrail\"\n")]);
    let rt = runtime(dir.path());
    let loaded = load_error(&rt, "hostile-extra-import");
    assert!(loaded.contains("steal"), "{loaded}");
    assert_eq!(problem, loaded, "one verdict, one message");
}

/// 40 MiB of static data does not fit the default 32 MiB memory cap: the
/// trial instantiation fails with the manifest's limits, and passes with a
/// larger cap, unless the config's `max-memory-mb` forbids that cap.
#[tokio::test]
async fn audit_instantiates_with_the_manifests_limits_and_the_configs_settings() {
    let default = PluginsConfig::default();
    let report = audit_with(guests::HOSTILE_BIG_STATIC, None, &default);
    assert!(!report.accepted, "{}", report.to_text());
    assert!(
        report.problems.join("; ").contains("memory limit"),
        "{:?}",
        report.problems
    );

    let roomy = "kind = \"guardrail\"\n[limits]\nmemory-mb = 64\n";
    let report = audit_with(guests::HOSTILE_BIG_STATIC, Some(roomy), &default);
    assert!(report.accepted, "{}", report.to_text());

    let small_runtime = PluginsConfig {
        max_memory_mb: 48,
        ..PluginsConfig::default()
    };
    let report = audit_with(guests::HOSTILE_BIG_STATIC, Some(roomy), &small_runtime);
    assert!(!report.accepted);
    assert!(
        report.problems.join("; ").contains("max-memory-mb"),
        "{:?}",
        report.problems
    );

    // The loader agrees both ways.
    let dir = plugin_dir(&[(guests::HOSTILE_BIG_STATIC, "kind = \"guardrail\"\n")]);
    let rt = runtime(dir.path());
    assert!(load_error(&rt, "hostile-big-static").contains("memory limit"));
    let dir = plugin_dir(&[(guests::HOSTILE_BIG_STATIC, roomy)]);
    let rt = runtime(dir.path());
    let p = rt.current().get("hostile-big-static").unwrap().clone();
    let v = verdict(p.check_output(&request("q"), "x", &whole()).await);
    assert!(matches!(v, Verdict::Transform(t) if t.ends_with("= 1")));
}

fn files_grant(host: &Path, ack: bool) -> String {
    format!(
        "kind = \"guardrail\"\n[capabilities]\nfiles = [{{ host = \"{}\", guest = \"/host\", acknowledge-sensitive = {ack} }}]\n",
        host.display()
    )
}

/// A files grant of `/` (or a system directory) is refused with a message
/// naming the acknowledgement key, by the loader and the audit; with the
/// key it loads, and both still flag it.
#[tokio::test]
async fn broad_file_grants_are_refused_unless_acknowledged() {
    for host in ["/", "/etc", "/proc/self"] {
        let manifest = files_grant(Path::new(host), false);
        let dir = plugin_dir(&[(guests::HOSTILE_FILES, &manifest)]);
        let rt = runtime(dir.path());
        let err = load_error(&rt, "hostile-files");
        assert!(err.contains("acknowledge-sensitive"), "{host}: {err}");
        let report = audit_with(
            guests::HOSTILE_FILES,
            Some(&manifest),
            &PluginsConfig::default(),
        );
        assert!(!report.accepted, "{host}");
        assert_eq!(report.flagged.len(), 1, "{host}: {:?}", report.flagged);
        assert!(report.to_text().contains("FLAGGED"), "{host}");
    }

    let manifest = files_grant(Path::new("/"), true);
    let dir = plugin_dir(&[(guests::HOSTILE_FILES, &manifest)]);
    let rt = runtime(dir.path());
    let p = rt
        .current()
        .get("hostile-files")
        .unwrap_or_else(|| panic!("{:?}", rt.statuses()))
        .clone();
    let v = verdict(
        p.check_output(&request("q"), "/host/etc/hostname", &whole())
            .await,
    );
    assert!(matches!(v, Verdict::Transform(_)), "acknowledged: {v:?}");
    let report = audit_with(
        guests::HOSTILE_FILES,
        Some(&manifest),
        &PluginsConfig::default(),
    );
    assert!(report.accepted, "{}", report.to_text());
    assert!(
        report.flagged[0].contains("(acknowledged)"),
        "{:?}",
        report.flagged
    );
}

/// The gateway's own directories are protected the same way: the one
/// holding its config (found by `Config::load`), the plugin directory.
#[tokio::test]
async fn the_gateways_config_and_plugin_directories_are_protected() {
    let root = tempfile::tempdir().unwrap();
    let plugins = root.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let config_file = root.path().join("sluice.toml");
    std::fs::write(
        &config_file,
        format!("[plugins]\ndir = '{}'\nwatch = false\n", plugins.display()),
    )
    .unwrap();
    let cfg = Config::load(&config_file).unwrap().plugins;
    for host in [root.path(), plugins.as_path()] {
        std::fs::copy(
            guests::HOSTILE_FILES.wasm,
            plugins.join("hostile-files.wasm"),
        )
        .unwrap();
        std::fs::write(plugins.join("hostile-files.toml"), files_grant(host, false)).unwrap();
        let rt = PluginRuntime::start(cfg.clone()).unwrap();
        let err = load_error(&rt, "hostile-files");
        assert!(
            err.contains("gateway's own directory") && err.contains("acknowledge-sensitive"),
            "{}: {err}",
            host.display()
        );
        let report = audit(
            &plugins.join("hostile-files.wasm"),
            Some(&plugins.join("hostile-files.toml")),
            &cfg,
        )
        .unwrap();
        assert!(!report.accepted && !report.flagged.is_empty());
    }
}
