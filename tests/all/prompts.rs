//! The prompt registry end to end: a `prompt` extension rendered into the
//! request with its version's settings, the errors naming what is missing,
//! hot reload (a broken edit keeps the previous version serving), and
//! rollback through `/admin/prompts` and `sluice prompt` recorded with who
//! and when.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::cli::prompt::{From as Source, PromptCmd, execute};
use tempfile::TempDir;

use crate::support::gateway::{self, Mock, TestGateway};
use crate::support::http::{admin_text, error_of};
use crate::support::plugins::plugin_dir_named;
use crate::support::prompts::{SUMMARIZE, answer, eventually, prompt_body};

const ADMIN: &str = "admin-secret";

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
async fn the_ledger_records_the_prompt_version_of_each_request() {
    let s = setup(false).await;
    let mut ids = Vec::new();
    for version in [1, 2] {
        let res =
            s.gw.chat(&prompt_body(Some(version), json!({"text": "cost"})))
                .await;
        assert_eq!(res.status(), StatusCode::OK);
        ids.push(
            res.headers()["x-sluice-request-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    for (id, version) in ids.iter().zip(["1", "2"]) {
        let r = crate::support::state::record_of(
            &s.gw.gateway.state,
            id,
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|| panic!("no ledger record for {id}"));
        assert_eq!(
            (r.prompt_id.as_deref(), r.prompt_version.as_deref()),
            (Some("summarize"), Some(version))
        );
        assert!(r.cost_usd >= 0.0 && r.usage.prompt_tokens > 0, "{r:?}");
    }
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
async fn request_metrics_carry_the_prompt_version() {
    let s = setup(false).await;
    for version in [1, 2, 2] {
        let res =
            s.gw.chat(&prompt_body(Some(version), json!({"text": "m"})))
                .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res =
        s.gw.chat(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
            .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = admin_text(&format!("{}/metrics", s.gw.url), ADMIN).await;
    let p = crate::support::prom::parse(&page);
    let count = |id: &str, version: &str| {
        p.sum(
            "sluice_requests_total",
            &[("prompt_id", id), ("prompt_version", version)],
        )
    };
    assert_eq!(count("summarize", "1"), 1.0);
    assert_eq!(count("summarize", "2"), 2.0);
    assert_eq!(count("none", "none"), 1.0);
    assert_eq!(p.sum("sluice_requests_total", &[]), 4.0);
}
