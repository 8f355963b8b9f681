//! Operating the prompt registry: the CLI on files alone, the shipped
//! examples, activations shared through Redis, `sluice serve` as a process,
//! and `sluice config check` on the prompt directory.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::cli::prompt::{From as Source, PromptCmd, execute};

use crate::support::gateway;
use crate::support::plugins::plugin_dir_named;
use crate::support::prompts::{SUMMARIZE, eventually, prompt_body, served};

const ADMIN: &str = "admin-secret";

#[tokio::test]
async fn render_and_show_work_on_the_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("summarize.toml"), SUMMARIZE).unwrap();
    let from = Source {
        dir: Some(dir.path().to_path_buf()),
        ..Source::default()
    };
    let out = execute(PromptCmd::Render {
        id: "summarize".into(),
        version: Some(2),
        vars: vec!["text=the ticket".into(), "tone=\"dry\"".into()],
        vars_json: None,
        from: from.clone(),
    })
    .await
    .unwrap();
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        r["messages"],
        json!([{"role": "user", "content": "REPLY: v2 dry the ticket"}])
    );
    assert_eq!(
        (r["temperature"].clone(), r["output_guardrails"].clone()),
        (json!(0.7), json!(["tagger"]))
    );

    let e = execute(PromptCmd::Render {
        id: "summarize".into(),
        version: None,
        vars: vec![],
        vars_json: Some("{}".into()),
        from: from.clone(),
    })
    .await
    .unwrap_err();
    assert!(format!("{e:#}").contains("missing variable(s)"), "{e:#}");

    let out = execute(PromptCmd::List { from, json: true }).await.unwrap();
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["versions"], json!([1, 2]));
    assert_eq!(list[0]["active"], 2);
}

#[tokio::test]
async fn the_example_prompts_and_suite_load_and_render() {
    let examples = crate::support::root().join("examples");
    let from = Source {
        dir: Some(examples.join("prompts")),
        ..Source::default()
    };
    let out = execute(PromptCmd::List {
        from: from.clone(),
        json: true,
    })
    .await
    .unwrap();
    let list: Value = serde_json::from_str(&out).unwrap();
    for p in list.as_array().unwrap() {
        assert_eq!(p["state"], "loaded", "{p}");
    }
    let out = execute(PromptCmd::Render {
        id: "classify".into(),
        version: None,
        vars: vec![
            "message=the invoice is wrong".into(),
            r#"teams=["billing","support"]"#.into(),
        ],
        vars_json: None,
        from,
    })
    .await
    .unwrap();
    let r: Value = serde_json::from_str(&out).unwrap();
    let system = r["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("- billing\n- support"), "{system}");
    // The demo config validates with its [prompts] section, and the suite
    // loads against it.
    let text = std::fs::read_to_string(examples.join("sluice.toml")).unwrap();
    let config = sluice::config::Config::parse("sluice.toml", &text, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.prompts.dir.as_deref(), Some(Path::new("prompts")));
    let suite = sluice::eval::Suite::load(&examples.join("evals/summarize.yaml")).unwrap();
    assert_eq!(suite.cases.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_on_one_redis_share_activations_made_anywhere() {
    let redis = sluice::state::testing::RedisServer::start();
    let plugins = plugin_dir_named(&[(
        "tagger",
        sluice_guests::TEST_TAGGER,
        "kind = \"guardrail\"\norder = 1\n[config]\ntag = \"\"\n",
    )]);
    let prompts = tempfile::tempdir().unwrap();
    std::fs::write(prompts.path().join("summarize.toml"), SUMMARIZE).unwrap();
    let mock = gateway::mock().await;
    let rest = format!(
        r#"
[server]
admin-key = "{ADMIN}"

[models.chat]
routes = [{{ provider = "mock", model = "mock-small" }}]

[state]
backend = "redis"
redis-url = "{url}"

[prompts]
dir = '{prompts}'
watch = false
refresh-ms = 100
"#,
        url = redis.url(),
        prompts = prompts.path().display(),
    );
    let config = gateway::config(&mock, plugins.path(), &rest);
    let a = gateway::start_with_state(&config).await;
    let b = gateway::start_with_state(&config).await;
    assert_eq!(served(&b).await, "summarize@2");

    // Through gateway A's admin API: B follows within its refresh.
    let res = reqwest::Client::new()
        .post(format!("{}/admin/prompts/summarize/activate", a.url))
        .bearer_auth(ADMIN)
        .json(&json!({"version": 1, "by": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        served(&a).await,
        "summarize@1",
        "the gateway asked applies at once"
    );
    assert!(eventually(|| async { served(&b).await == "summarize@1" }).await);

    // With no gateway involved: the CLI writes the record in Redis.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, &config).unwrap();
    let out = execute(PromptCmd::Activate {
        id: "summarize".into(),
        version: "2".into(),
        by: Some("carol".into()),
        reason: None,
        from: Source {
            config: Some(path),
            ..Source::default()
        },
    })
    .await
    .unwrap();
    assert!(out.contains("version 2 pinned, was 1 by carol"), "{out}");
    for gw in [&a, &b] {
        assert!(eventually(|| async { served(gw).await == "summarize@2" }).await);
    }
}

#[tokio::test]
async fn sluice_serve_loads_the_registry_and_logs_the_version_served() {
    let prompts = tempfile::tempdir().unwrap();
    std::fs::write(
        prompts.path().join("summarize.toml"),
        SUMMARIZE.replace("output-guardrails = [\"tagger\"]\n", ""),
    )
    .unwrap();
    let mock = gateway::mock().await;
    let config = format!(
        r#"
[[providers]]
name = "mock"
base-url = "{base}"

[models.chat]
routes = [{{ provider = "mock", model = "mock-small" }}]

[prompts]
dir = '{dir}'
"#,
        base = mock.base(),
        dir = prompts.path().display(),
    );
    let sluice = crate::support::process::Sluice::start(&config, None).await;
    let res = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", sluice.url))
        .json(&prompt_body(None, json!({"text": "from the binary"})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-sluice-prompt"], "summarize@2");
    let line = sluice
        .wait_log(Duration::from_secs(30), |v| {
            crate::support::process::message(v) == "served"
        })
        .await
        .unwrap_or_else(|| panic!("{}", sluice.log_text()));
    assert_eq!(line["fields"]["prompt"], "summarize@2", "{line}");
    let refused = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", sluice.url))
        .json(&prompt_body(Some(1), json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.headers()["x-sluice-prompt"], "summarize@1");

    // `sluice prompt render` as a command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice-e2e"))
        .args([
            "prompt",
            "render",
            "summarize",
            "--version",
            "1",
            "--var",
            "text=hi",
            "--dir",
        ])
        .arg(prompts.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["messages"][1]["content"], "REPLY: v1 hi");
}

#[test]
fn config_check_names_a_missing_prompt_directory_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let path = dir.path().join("sluice.toml");
    let text = "[plugins]\ndir = '{P}'\n\n[prompts]\ndir = \"prompts\"\n"
        .replace("{P}", &dir.path().join("plugins").display().to_string());
    std::fs::write(&path, &text).unwrap();
    let err = format!("{:#}", sluice::config::Config::load(&path).unwrap_err());
    assert!(
        err.contains("sluice.toml:5:7: prompts.dir: prompt directory")
            && err.contains("does not exist"),
        "{err}"
    );
    // Relative to the config file, not the working directory.
    std::fs::create_dir(dir.path().join("prompts")).unwrap();
    let config = sluice::config::Config::load(&path).unwrap();
    assert_eq!(config.prompts.dir, Some(dir.path().join("prompts")));
}
