//! `sluice config check` and `sluice serve` refuse the same configs with the
//! same `file:line:col` messages (so `serve` refuses them where `check`
//! stops: before any plugin is compiled).

use std::process::Output;

use tokio::process::Command;

async fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice-e2e"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .await
        .unwrap()
}

fn problems(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(".toml:"))
        .map(|l| l.trim().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_serve_refuse_the_same_configs_alike() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("plugins.wasm");
    std::fs::write(&not_a_dir, b"\0asm").unwrap();
    let cases = [
        (
            format!("dir = '{}'", not_a_dir.display()),
            "is a regular file, not a directory",
        ),
        (
            format!("dir = '{}'", dir.path().join("missing").display()),
            "does not exist",
        ),
    ];
    for (plugins, expected) in cases {
        let path = dir.path().join("sluice.toml");
        let text = format!(
            r#"[plugins]
{plugins}
watch = false

[[providers]]
name = "up"
base-url = "not a url"
headers = {{ "x bad" = "v" }}

[models.chat]
routes = [{{ provider = "up", model = "m" }}]
"#
        );
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        let check = run(&["config", "check", path]).await;
        let serve = run(&["serve", "--config", path]).await;
        assert!(!check.status.success(), "check said ok: {check:?}");
        assert!(!serve.status.success(), "serve started: {serve:?}");
        let found = problems(&check);
        assert_eq!(found, problems(&serve), "check and serve disagree");
        let all = found.join("\n");
        assert!(all.contains("sluice.toml:2:7: plugins.dir:"), "{all}");
        assert!(all.contains(expected), "{all}");
        assert!(all.contains("providers[0].base-url"), "{all}");
        assert!(all.contains("invalid header name `x bad`"), "{all}");
    }
}
