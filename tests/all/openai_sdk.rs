//! The official `openai` Python SDK (from PyPI) drives the gateway:
//! non-streaming, streaming with usage, a 404, and a guardrail reject
//! mid-stream raised as `APIError`. The SDK is installed into a venv under
//! `target/` on first use. Skipped, loudly, only when `python3` is absent.

use std::path::PathBuf;

use tokio::process::Command;

use sluice_guests as guests;

use crate::support::gateway;
use crate::support::plugins::plugin_dir_named;
use crate::support::root;

/// Pinned to the SDK's current major line; the wire format is what we test.
const OPENAI_REQUIREMENT: &str = "openai>=1.40,<4";

async fn venv_python() -> Option<PathBuf> {
    let found = Command::new("python3").arg("--version").output().await;
    if !found.is_ok_and(|o| o.status.success()) {
        eprintln!("\n!!!!! SKIPPING openai SDK test: python3 is not installed !!!!!\n");
        return None;
    }
    let venv = root().join("target/openai-sdk-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .await
            .unwrap();
        assert!(ok.success(), "python3 -m venv {} failed", venv.display());
    }
    let has_sdk = Command::new(&python)
        .args(["-c", "import openai"])
        .status()
        .await
        .unwrap();
    if !has_sdk.success() {
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                OPENAI_REQUIREMENT,
            ])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "pip install {OPENAI_REQUIREMENT} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_unchanged() {
    let Some(python) = venv_python().await else {
        return;
    };
    let length = "kind = \"guardrail\"\n[config]\nmax-chars = 60\n";
    let dir = plugin_dir_named(&[
        ("pii-redact", guests::PII_REDACT, "kind = \"guardrail\"\n"),
        ("length-check", guests::LENGTH_CHECK, length),
    ]);
    let mock = gateway::mock().await;
    let rest = r#"
[models.chat]
routes = [{ provider = "mock", model = "mock-small" }]
output-guardrails = ["pii-redact"]

[models.capped]
routes = [{ provider = "mock", model = "mock-small" }]
output-guardrails = ["length-check"]

[[keys]]
id = "sdk"
key = "sk-sluice-sdk-test"
"#;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
    let out = Command::new(&python)
        .arg(root().join("tests/python/openai_sdk_check.py"))
        .env("SLUICE_BASE_URL", gw.v1(""))
        .env("SLUICE_API_KEY", "sk-sluice-sdk-test")
        .env("SLUICE_MODEL", "chat")
        .env("SLUICE_REJECT_MODEL", "capped")
        .env(
            "SLUICE_REJECT_PROMPT",
            "REPLY: A short first sentence. Then a second sentence long enough to break the cap.",
        )
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK checks failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for check in [
        "ok non-streaming",
        "ok streaming",
        "ok error",
        "ok stream-reject",
    ] {
        assert!(stdout.contains(check), "missing `{check}` in:\n{stdout}");
    }
}
