//! The prompt registry end to end: a `prompt` extension rendered into the
//! request with its version's settings, the errors naming what is missing,
//! hot reload (a broken edit keeps the previous version serving), and
//! rollback through `/admin/prompts` and `sluice prompt` recorded with who
//! and when.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::cli::prompt::{From as Source, PromptCmd, execute};
use tempfile::TempDir;

use crate::support::gateway::{self, Mock, TestGateway};
use crate::support::http::error_of;
use crate::support::plugins::plugin_dir_named;

const ADMIN: &str = "admin-secret";

/// Version 2 (the highest, so the active one) adds the `tagger` guardrail,
/// which rejects an answer containing "REJECT".
const SUMMARIZE: &str = r#"
description = "Summarise a text"

[[versions]]
version = 1
model = "chat"
temperature = 0.3
max-tokens = 50
variables = ["text"]
system = "Be brief."
template = "REPLY: v1 {{text}}"

[[versions]]
version = 2
model = "chat"
temperature = 0.7
variables = ["text"]
defaults = { tone = "calm" }
output-guardrails = ["tagger"]
template = "REPLY: v2 {{tone}} {{text}}"
"#;

struct Setup {
    gw: TestGateway,
    prompts: TempDir,
    _state: TempDir,
    _plugins: TempDir,
    _mock: Mock,
}

async fn setup(watch: bool) -> Setup {
    let plugins = plugin_dir_named(&[(
        "tagger",
        sluice_guests::TEST_TAGGER,
        "kind = \"guardrail\"\norder = 1\n[config]\ntag = \"\"\n",
    )]);
    let prompts = tempfile::tempdir().unwrap();
    std::fs::write(prompts.path().join("summarize.toml"), SUMMARIZE).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mock = gateway::mock().await;
    let rest = format!(
        r#"
[server]
admin-key = "{ADMIN}"

[models.chat]
routes = [{{ provider = "mock", model = "mock-small" }}]

[models.other]
routes = [{{ provider = "mock", model = "mock-large" }}]

[state]
dir = '{state}'

[prompts]
dir = '{prompts}'
watch = {watch}
debounce-ms = 20
"#,
        state = state.path().display(),
        prompts = prompts.path().display(),
    );
    let gw = gateway::start_with_state(&gateway::config(&mock, plugins.path(), &rest)).await;
    Setup {
        gw,
        prompts,
        _state: state,
        _plugins: plugins,
        _mock: mock,
    }
}

fn prompt_body(version: Option<u32>, variables: Value) -> Value {
    let mut p = json!({"id": "summarize", "variables": variables});
    if let Some(v) = version {
        p["version"] = json!(v);
    }
    json!({ "prompt": p })
}

/// The answer text and the `x-sluice-prompt` header of a 200.
async fn answer(gw: &TestGateway, body: &Value) -> (String, String) {
    let res = gw.chat(body).await;
    assert_eq!(res.status(), StatusCode::OK, "{body}");
    let prompt = res.headers()["x-sluice-prompt"]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = res.json().await.unwrap();
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    (text, prompt)
}

async fn admin_get(gw: &TestGateway, path: &str) -> Value {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", gw.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.json().await.unwrap()
}

fn from_gateway(gw: &TestGateway) -> Source {
    Source {
        gateway: Some(gw.url.clone()),
        admin_key: Some(ADMIN.into()),
        ..Source::default()
    }
}

fn status<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no `{id}` in {list}"))
}

/// The version a request without one gets.
async fn served(gw: &TestGateway) -> String {
    answer(gw, &prompt_body(None, json!({"text": "x"}))).await.1
}

/// Polls `cond` until it holds (the watcher reloads on its own thread and
/// tells no one); the bound only stops a hang.
async fn eventually<F, Fut>(mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..3000 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Replace the file in one rename, as an editor saving does.
fn write_prompt(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[tokio::test]
async fn a_prompt_renders_into_the_request_with_its_versions_settings() {
    let s = setup(false).await;
    let gw = &s.gw;

    // No version: the active one (the highest), its defaults filled in.
    let (text, prompt) = answer(gw, &prompt_body(None, json!({"text": "hello"}))).await;
    assert_eq!(
        (text.as_str(), prompt.as_str()),
        ("v2 calm hello", "summarize@2")
    );
    let (text, prompt) = answer(gw, &prompt_body(Some(1), json!({"text": "hello"}))).await;
    assert_eq!(
        (text.as_str(), prompt.as_str()),
        ("v1 hello", "summarize@1")
    );

    // What the upstream got (the mock echoes the body it received): the
    // rendered messages and the version's settings, never the extension.
    let mut body = prompt_body(Some(1), json!({"text": "hi"}));
    body["mock_echo"] = json!(true);
    let (echo, _) = answer(gw, &body).await;
    let sent: Value = serde_json::from_str(&echo).unwrap();
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."},
               {"role": "user", "content": "REPLY: v1 hi"}])
    );
    assert_eq!(sent["model"], "mock-small");
    assert_eq!(sent["temperature"], 0.3);
    assert!(
        sent["max_tokens"] == 50 || sent["max_completion_tokens"] == 50,
        "{sent}"
    );
    assert!(sent.get("prompt").is_none(), "{sent}");

    // What the client sets wins over the version: model, temperature.
    let mut body = prompt_body(Some(1), json!({"text": "hi"}));
    body["mock_echo"] = json!(true);
    body["model"] = json!("other");
    body["temperature"] = json!(0.1);
    let (echo, _) = answer(gw, &body).await;
    let sent: Value = serde_json::from_str(&echo).unwrap();
    assert_eq!(
        (sent["model"].clone(), sent["temperature"].clone()),
        (json!("mock-large"), json!(0.1))
    );

    // Streamed: the same rendering, the header before the first event.
    let mut body = prompt_body(None, json!({"text": "streamed"}));
    body["stream"] = json!(true);
    let res = gw.chat(&body).await;
    assert_eq!(res.headers()["x-sluice-prompt"], "summarize@2");
    let events = crate::support::http::sse_data(&res.text().await.unwrap());
    assert_eq!(
        crate::support::http::streamed_text(&events),
        "v2 calm streamed"
    );

    // Version 2's own output guardrail joins the chain; version 1 has none.
    let res = gw
        .chat(&prompt_body(Some(2), json!({"text": "REJECT me"})))
        .await;
    assert_eq!(
        res.headers()["x-sluice-prompt"],
        "summarize@2",
        "errors say which version too"
    );
    let err = error_of(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(err["type"], "guardrail_rejected", "{err}");
    let (text, _) = answer(gw, &prompt_body(Some(1), json!({"text": "REJECT me"}))).await;
    assert_eq!(text, "v1 REJECT me");
}

#[tokio::test]
async fn plugins_see_which_prompt_version_the_request_was_rendered_from() {
    let plugins =
        plugin_dir_named(&[("probe", sluice_guests::TEST_PROBE, "kind = \"guardrail\"\n")]);
    let prompts = tempfile::tempdir().unwrap();
    std::fs::write(
        prompts.path().join("report.yaml"),
        "versions:\n  - version: 4\n    model: chat\n    output-guardrails: [probe]\n    template: \"REPLY: REPORT\"\n",
    )
    .unwrap();
    let mock = gateway::mock().await;
    let rest = format!(
        "[models.chat]\nroutes = [{{ provider = \"mock\", model = \"mock-small\" }}]\n\n[state]\ndir = '{state}'\n\n[prompts]\ndir = '{dir}'\nwatch = false\n",
        state = prompts.path().join(".state").display(),
        dir = prompts.path().display(),
    );
    let gw = gateway::start_with_state(&gateway::config(&mock, plugins.path(), &rest)).await;
    let (text, prompt) = answer(&gw, &json!({"prompt": {"id": "report"}})).await;
    assert_eq!(prompt, "report@4");
    assert!(text.ends_with(" prompt=report@4"), "{text}");
}

#[tokio::test]
async fn what_a_prompt_request_lacks_is_named() {
    let s = setup(false).await;
    let gw = &s.gw;
    let err = error_of(
        gw.chat(&prompt_body(Some(1), json!({"other": 1}))).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        (err["code"].clone(), err["param"].clone()),
        (json!("missing_variables"), json!("prompt.variables"))
    );
    assert!(err["message"].as_str().unwrap().contains("text"), "{err}");

    let err = error_of(
        gw.chat(&prompt_body(Some(7), json!({"text": "x"}))).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(err["code"], "prompt_version_not_found");
    assert!(
        err["message"].as_str().unwrap().contains("versions: 1, 2"),
        "{err}"
    );

    let err = error_of(
        gw.chat(&json!({"prompt": {"id": "nope"}})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        (err["code"].clone(), err["param"].clone()),
        (json!("prompt_not_found"), json!("prompt.id"))
    );

    let err = error_of(
        gw.chat(&json!({"prompt": {"id": "summarize", "variables": "text"}}))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(err["code"], "invalid_prompt", "{err}");
}

#[tokio::test]
async fn an_edit_is_picked_up_and_a_broken_one_keeps_the_previous_version_serving() {
    let s = setup(true).await;
    let gw = &s.gw;
    let v3 = format!(
        "{SUMMARIZE}\n[[versions]]\nversion = 3\nmodel = \"chat\"\nvariables = [\"text\"]\ntemplate = \"REPLY: v3 {{{{text}}}}\"\n"
    );
    write_prompt(s.prompts.path(), "summarize.toml", &v3);
    let picked_up = eventually(|| async {
        answer(gw, &prompt_body(None, json!({"text": "x"}))).await.1 == "summarize@3"
    })
    .await;
    assert!(picked_up, "version 3 never served");

    // A template using a variable it does not declare: refused at load.
    let broken = v3.replace("REPLY: v3 {{text}}", "REPLY: v4 {{undeclared}}");
    write_prompt(s.prompts.path(), "summarize.toml", &broken);
    let failed = eventually(|| async {
        status(&admin_get(gw, "/admin/prompts").await, "summarize")["state"] == "failed"
    })
    .await;
    assert!(failed, "the broken edit was never reported");
    let list = admin_get(gw, "/admin/prompts").await;
    let st = status(&list, "summarize");
    assert_eq!(st["serving_previous"], true);
    assert_eq!(st["versions"], json!([1, 2, 3]));
    assert!(st["error"].as_str().unwrap().contains("undeclared"), "{st}");
    let (text, prompt) = answer(gw, &prompt_body(None, json!({"text": "x"}))).await;
    assert_eq!((text.as_str(), prompt.as_str()), ("v3 x", "summarize@3"));

    // The CLI's list says the same.
    let out = execute(PromptCmd::List {
        from: from_gateway(gw),
        json: false,
    })
    .await
    .unwrap();
    assert!(out.contains("FAILED (previous version serves)"), "{out}");

    // A new prompt file appears; a deleted one leaves.
    write_prompt(
        s.prompts.path(),
        "greet.yaml",
        "versions:\n  - version: 1\n    model: chat\n    variables: [name]\n    template: \"REPLY: hi {{name}}\"\n",
    );
    let greet = || async {
        gw.chat(&json!({"prompt": {"id": "greet", "variables": {"name": "Ann"}}}))
            .await
            .status()
    };
    assert!(eventually(|| async { greet().await == StatusCode::OK }).await);
    std::fs::remove_file(s.prompts.path().join("greet.yaml")).unwrap();
    let gone = eventually(|| async { greet().await == StatusCode::NOT_FOUND }).await;
    assert!(gone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_without_editing_files_is_recorded_with_who_and_when() {
    let s = setup(false).await;
    let gw = &s.gw;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;

    // Pin version 1 through the admin API.
    let res = reqwest::Client::new()
        .post(format!("{}/admin/prompts/summarize/activate", gw.url))
        .bearer_auth(ADMIN)
        .json(&json!({"version": 1, "by": "alice", "reason": "v2 summaries ramble"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let a: Value = res.json().await.unwrap();
    assert_eq!(a["activation"]["by"], "alice");
    assert!(a["activation"]["at_ms"].as_u64().unwrap() >= before);
    let (text, prompt) = answer(gw, &prompt_body(None, json!({"text": "x"}))).await;
    assert_eq!((text.as_str(), prompt.as_str()), ("v1 x", "summarize@1"));
    let st = admin_get(gw, "/admin/prompts").await;
    let st = status(&st, "summarize");
    assert_eq!(
        (st["active"].clone(), st["active_source"].clone()),
        (json!(1), json!("pinned"))
    );

    // A version the file lacks is refused and changes nothing.
    let res = reqwest::Client::new()
        .post(format!("{}/admin/prompts/summarize/activate", gw.url))
        .bearer_auth(ADMIN)
        .json(&json!({"version": 9}))
        .send()
        .await
        .unwrap();
    let err = error_of(res, StatusCode::NOT_FOUND).await;
    assert_eq!(err["code"], "prompt_version_not_found");
    // Without the admin key, nothing.
    let res = reqwest::Client::new()
        .post(format!("{}/admin/prompts/summarize/activate", gw.url))
        .json(&json!({"version": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // `sluice prompt activate ID file` through the gateway: unpinned, the
    // file's version serves again.
    let out = execute(PromptCmd::Activate {
        id: "summarize".into(),
        version: "file".into(),
        by: Some("bob".into()),
        reason: None,
        from: from_gateway(gw),
    })
    .await
    .unwrap();
    assert!(out.contains("unpinned") && out.contains("by bob"), "{out}");
    let (_, prompt) = answer(gw, &prompt_body(None, json!({"text": "x"}))).await;
    assert_eq!(prompt, "summarize@2");

    // The history, oldest first, from the state layer.
    let out = execute(PromptCmd::History {
        id: Some("summarize".into()),
        from: from_gateway(gw),
        json: true,
    })
    .await
    .unwrap();
    let h: Value = serde_json::from_str(&out).unwrap();
    let who: Vec<(&str, Value, Value)> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["by"].as_str().unwrap(),
                a["version"].clone(),
                a["previous"].clone(),
            )
        })
        .collect();
    assert_eq!(
        who,
        vec![
            ("alice", json!(1), Value::Null),
            ("bob", Value::Null, json!(1)),
        ]
    );
    assert_eq!(h[0]["reason"], "v2 summaries ramble");

    // `show` names the serving version and the activations.
    let out = execute(PromptCmd::Show {
        id: "summarize".into(),
        from: from_gateway(gw),
        json: false,
    })
    .await
    .unwrap();
    assert!(out.contains("version 2  <- serves"), "{out}");
    assert!(
        out.contains("version 1 pinned") && out.contains("by alice"),
        "{out}"
    );
}

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
