//! The plugin contract's versions and `0.2`'s features, end to end through
//! real sockets with real components: a `0.1` guest (wit-bindgen straight
//! against `wit/frozen/0.1.0`) beside `0.2` guests in one chain, config
//! validation at load, phases, flags, the cost policy's spend list and the
//! request resource on a long conversation.

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sluice::plugin::audit::audit;
use sluice::plugin::{Contract, Phases, PluginState, PluginsConfig, Verdict};
use tracing_subscriber::fmt::MakeWriter;

use sluice_guests as guests;

use crate::support::gateway::{self, TestGateway, reply_body};
use crate::support::http::{error_of, sse_data, streamed_text};
use crate::support::plugins::{plugin_dir_named, request, runtime, verdict, whole};

async fn stream_text(gw: &TestGateway, mut body: Value) -> (reqwest::header::HeaderMap, String) {
    body["stream"] = json!(true);
    let res = gw.chat(&body).await;
    assert_eq!(res.status(), 200);
    let headers = res.headers().clone();
    (
        headers,
        streamed_text(&sse_data(&res.text().await.unwrap())),
    )
}

async fn content(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

const LEGACY: &str = "kind = \"guardrail\"\norder = 10\n";
const TAGGER: &str = "kind = \"guardrail\"\norder = 20\n[config]\ntag = \"v02:\"\n";

/// A `0.1` guardrail and a `0.2` guardrail in one chain: each sees the
/// other's transform, json and stream, input and output; the `0.1` guest
/// gets the flattened record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v01_and_v02_guests_share_one_chain() {
    let dir = plugin_dir_named(&[
        ("legacy-v01", guests::LEGACY_V01, LEGACY),
        ("test-tagger", guests::TEST_TAGGER, TAGGER),
    ]);
    let rt = runtime(dir.path());
    let set = rt.current();
    let legacy = set.get("legacy-v01").unwrap();
    assert_eq!(legacy.contract(), Contract::V0_1);
    assert_eq!(legacy.contract_version(), "0.1.0");
    assert_eq!(legacy.phases(), Phases::INPUT | Phases::OUTPUT);
    assert_eq!(set.get("test-tagger").unwrap().contract(), Contract::V0_2);
    let statuses = rt.statuses();
    assert_eq!(statuses[0].contract.as_deref(), Some("0.1.0"));
    assert_eq!(statuses[1].contract.as_deref(), Some("0.2.0"));
    let report = audit(
        &dir.path().join("legacy-v01.wasm"),
        Some(&dir.path().join("legacy-v01.toml")),
        &PluginsConfig::default(),
    )
    .unwrap();
    assert!(report.accepted, "{:?}", report.problems);
    assert_eq!(report.contract, Some(Contract::V0_1));
    assert_eq!(report.phases, Some(vec!["input", "output"]));
    assert!(
        report
            .to_text()
            .contains("contract:  0.1 (older: converted by the host)"),
        "{}",
        report.to_text()
    );

    let mock = gateway::mock().await;
    let rest = r#"
[models.mixed]
routes = [{ provider = "mock", model = "mock-small" }]
output-guardrails = ["legacy-v01", "test-tagger"]
stream = { mode = "chars", chars = 1000, max-hold-chars = 1000 }

[models.mixed-in]
routes = [{ provider = "mock", model = "mock-small" }]
input-guardrails = ["legacy-v01", "test-tagger"]
"#;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;

    // Output, json: 0.1 rewrites, then 0.2 prefixes.
    let mut body = reply_body("mixed", "the secret plan");
    let res = gw.chat(&body).await;
    assert_eq!(
        res.headers()["x-sluice-guardrails"],
        "legacy-v01:transform,test-tagger:transform"
    );
    assert_eq!(content(res).await, "v02:the [legacy] plan");
    // ... and streamed.
    let (_, text) = stream_text(&gw, body.clone()).await;
    assert_eq!(text, "v02:the [legacy] plan");

    // A 0.1 reject stops the chain, in a stream too.
    body = reply_body("mixed", "REJECT-LEGACY now");
    let err = error_of(gw.chat(&body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        err["message"].as_str().unwrap().contains("legacy-v01"),
        "{err}"
    );
    body["stream"] = json!(true);
    let res = gw.chat(&body).await;
    assert_eq!(res.status(), 200);
    let events = sse_data(&res.text().await.unwrap());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "guardrail_rejected", "{events:?}");
    assert_eq!(last["error"]["code"], "legacy", "{events:?}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("legacy-v01"),
        "{last}"
    );

    // Input: the 0.1 guest gets the whole record, flattened.
    let body = json!({
        "model": "mixed-in",
        "stream": true,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "assistant", "content": null,
             "tool_calls": [{"id": "c1", "type": "function",
                             "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
            {"role": "user", "content": "legacy-echo please"}
        ]
    });
    let err = error_of(gw.chat(&body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let why = err["message"].as_str().unwrap();
    assert!(
        why.contains("model=mixed-in stream=true messages=4 last=legacy-echo please"),
        "{why}"
    );

    // The 0.2 input transform reaches the upstream after the 0.1 pass.
    let mut echo = reply_body("mixed-in", "hello");
    echo["mock_echo"] = json!(true);
    let upstream_saw = content(gw.chat(&echo).await).await;
    assert!(upstream_saw.contains("v02:REPLY: hello"), "{upstream_saw}");
}

/// A `0.2` guest whose `validate-config` refuses its `[config]` is not
/// loaded, and the guest's message shows in `plugin list`, the admin API
/// and the audit; on a bad edit the previous good version keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_config_is_not_loaded_and_its_message_is_shown() {
    const TYPO: &str = "kind = \"guardrail\"\n[config]\nmax-char = 10\n";
    let dir = plugin_dir_named(&[("length-check", guests::LENGTH_CHECK, TYPO)]);

    let (text, failed) = sluice::cli::plugin::list(dir.path().to_path_buf(), false).unwrap();
    assert_eq!(failed, 1);
    assert!(
        text.contains("FAILED")
            && text.contains("its config was refused: config `max-char`: unknown key"),
        "{text}"
    );

    let report = audit(
        &dir.path().join("length-check.wasm"),
        Some(&dir.path().join("length-check.toml")),
        &PluginsConfig::default(),
    )
    .unwrap();
    assert!(!report.accepted);
    assert!(
        report.problems.iter().any(|p| p.contains("`max-char`")),
        "{:?}",
        report.problems
    );
    assert!(report.to_text().contains("unknown key"));

    let mock = gateway::mock().await;
    let rest = r#"
[server]
admin-key = "adm"

[models.m]
routes = [{ provider = "mock", model = "mock-small" }]
"#;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
    let res = reqwest::Client::new()
        .get(format!("{}/admin/plugins", gw.url))
        .bearer_auth("adm")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let row = &body["plugins"][0];
    assert_eq!(row["state"], "failed", "{body}");
    assert_eq!(row["serving_previous"], false, "{body}");
    assert!(
        row["error"].as_str().unwrap().contains("max-char"),
        "{body}"
    );

    // A good version loads; a bad edit keeps it serving.
    std::fs::write(
        dir.path().join("length-check.toml"),
        "kind = \"guardrail\"\n[config]\nmax-chars = 10\n",
    )
    .unwrap();
    let rt = gw.gateway.plugins.clone();
    assert_eq!(rt.reload().loaded, ["length-check"]);
    std::fs::write(
        dir.path().join("length-check.toml"),
        "kind = \"guardrail\"\n[config]\nmax-chars = 10\nmin-chars = 20\n",
    )
    .unwrap();
    let report = rt.reload();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].1.contains("min-chars"), "{report:?}");
    match &rt.statuses()[0].state {
        PluginState::Failed {
            error,
            serving_previous,
        } => assert!(
            *serving_previous && error.contains("above the maximum"),
            "{error}"
        ),
        other => panic!("expected a failed reload, got {other:?}"),
    }
    let p = rt.current().get("length-check").unwrap().clone();
    assert_eq!(
        crate::support::plugins::code(&verdict(
            p.check_output(&request("q"), "longer than ten", &whole())
                .await
        )),
        "too_long",
        "the previous version (max-chars = 10) serves"
    );
}

/// A guardrail declaring only output is never called for input, though the
/// model lists it among its input guardrails; one declaring only input is
/// never called for output. Counted by the runtime's call counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guardrail_is_only_called_for_the_phases_it_declares() {
    let dir = plugin_dir_named(&[
        (
            "out-only",
            guests::TEST_PROBE,
            "kind = \"guardrail\"\n[config]\nphases = \"output\"\n",
        ),
        (
            "in-only",
            guests::TEST_PROBE,
            "kind = \"guardrail\"\n[config]\nphases = \"input\"\n",
        ),
        (
            "length-check",
            guests::LENGTH_CHECK,
            "kind = \"guardrail\"\n",
        ),
    ]);
    let mock = gateway::mock().await;
    let rest = r#"
[models.m]
routes = [{ provider = "mock", model = "mock-small" }]
input-guardrails = ["out-only", "in-only", "length-check"]
output-guardrails = ["out-only", "in-only", "length-check"]
"#;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
    for _ in 0..3 {
        let res = gw.chat(&reply_body("m", "fine")).await;
        assert_eq!(res.status(), 200);
        // Each ran once, in its own phase only.
        assert_eq!(
            res.headers()["x-sluice-guardrails"],
            "in-only:pass,length-check:pass,out-only:pass"
        );
    }
    let set = gw.gateway.plugins.current();
    let calls = |name: &str| set.get(name).unwrap().stats().calls;
    assert_eq!(calls("out-only"), 3, "output only");
    assert_eq!(calls("in-only"), 3, "input only");
    assert_eq!(
        calls("length-check"),
        3,
        "the first-party plugin declares output only"
    );
    assert_eq!(set.get("length-check").unwrap().phases(), Phases::OUTPUT);

    let (json, _) = sluice::cli::plugin::list(dir.path().to_path_buf(), true).unwrap();
    let rows: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["name"], "in-only");
    assert_eq!(rows[0]["phases"], json!(["input"]));
    assert_eq!(rows[2]["phases"], json!(["output"]));
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl MakeWriter<'_> for Log {
    type Writer = Log;
    fn make_writer(&self) -> Log {
        self.clone()
    }
}

/// A `flag` lets the text through unchanged, shows as `name:flag` in
/// `x-sluice-guardrails` (input and output), and is logged once with the
/// plugin, the code and the score.
#[test]
fn a_flag_passes_the_text_and_is_reported() {
    let log = Log::default();
    let subscriber = sluice::cli::log_subscriber(
        sluice::cli::LogFormat::Json,
        tracing_subscriber::EnvFilter::new("warn"),
        false,
        log.clone(),
    );
    let _logging = tracing::subscriber::set_default(subscriber);
    // One thread: every plugin call logs where the subscriber is installed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = plugin_dir_named(&[("test-probe", guests::TEST_PROBE, "kind = \"guardrail\"\n")]);
        let mock = gateway::mock().await;
        let rest = r#"
[models.m]
routes = [{ provider = "mock", model = "mock-small" }]
input-guardrails = ["test-probe"]
output-guardrails = ["test-probe"]
"#;
        let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
        let res = gw.chat(&reply_body("m", "please FLAG this")).await;
        // Input (the user message says FLAG) and output both flagged.
        assert_eq!(res.headers()["x-sluice-guardrails"], "test-probe:flag");
        assert_eq!(content(res).await, "please FLAG this");

        // Sentence windows: "FLAG me. " and "FLAG again.", each flagged.
        let (headers, text) = stream_text(&gw, reply_body("m", "FLAG me. FLAG again.")).await;
        assert_eq!(text, "FLAG me. FLAG again.");
        assert_eq!(headers["x-sluice-guardrails"], "test-probe:flag");

        let res = gw.chat(&reply_body("m", "nothing to see")).await;
        assert_eq!(res.headers()["x-sluice-guardrails"], "test-probe:pass");
    });
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let flags: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e.to_string().contains("flagged the text for review"))
        .collect();
    // json: input + output; stream: input + two windows; one line each.
    assert_eq!(flags.len(), 5, "{text}");
    let output = flags
        .iter()
        .find(|e| e.to_string().contains("probe_output"))
        .unwrap();
    let fields = &output["fields"];
    assert_eq!(fields["plugin"], "test-probe", "{output}");
    assert_eq!(fields["code"], "probe_output", "{output}");
    assert_eq!(fields["score"], 0.75, "{output}");
}

/// The cost policy sees every spend that applies, from the state store:
/// the key's, the user's and the feature's, each per day and month, with
/// their budgets; a `0.1` policy sees the one record the host picks (the
/// tightest monthly budget).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_policy_sees_the_spend_list() {
    let dir = plugin_dir_named(&[
        (
            "v02-policy",
            guests::HOSTILE_COST,
            "kind = \"cost-policy\"\n",
        ),
        (
            "v01-policy",
            guests::LEGACY_V01_COST,
            "kind = \"cost-policy\"\n",
        ),
    ]);
    let mock = gateway::mock().await;
    let rest = r#"
[models.new]
cost-policy = "v02-policy"
routes = [{ provider = "mock", model = "mock-small", input-cost-per-mtok = 1.0, output-cost-per-mtok = 2.0 }]

[models.old]
cost-policy = "v01-policy"
routes = [{ provider = "mock", model = "mock-small" }]

[[keys]]
id = "k1"
key = "sk-k1"
budget-usd = 0.05

[state.budgets]
users = { ann = { month-usd = 2.0 } }
features = { chat = { day-usd = 1.0 } }
"#;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let periods = sluice::state::period::Periods::at(now);
    let (day, month) = (periods.day.trim_start_matches("day:"), periods.month);
    let send = |model: &str, text: &str| {
        let mut body = reply_body(model, text);
        body["user"] = json!("ann");
        reqwest::Client::new()
            .post(gw.v1("chat/completions"))
            .bearer_auth("sk-k1")
            .header("x-sluice-feature", "chat")
            .json(&body)
            .send()
    };
    let err = error_of(
        send("new", "show spends").await.unwrap(),
        StatusCode::PAYMENT_REQUIRED,
    )
    .await;
    let why = err["message"].as_str().unwrap();
    let want = format!(
        "spends: key:k1 day {day} 0 0 none; key:k1 month {month} 0 0 0.05; \
         user:ann day {day} 0 0 none; user:ann month {month} 0 0 2; \
         feature:chat day {day} 0 0 1; feature:chat month {month} 0 0 none"
    );
    assert!(why.contains(&want), "{why}\nwant {want}");
    let err = error_of(
        send("old", "legacy-spend").await.unwrap(),
        StatusCode::PAYMENT_REQUIRED,
    )
    .await;
    let why = err["message"].as_str().unwrap();
    assert!(
        why.contains(&format!("scope=key:k1 spent=0 budget=0.05 period={month}")),
        "{why}"
    );
    // What an answered request cost is what the next one is shown.
    let res = send("new", "hello").await.unwrap();
    assert_eq!(res.status(), 200);
    let cost: f64 = res.headers()["x-sluice-cost-usd"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0.0);
    let err = error_of(
        send("new", "show spends").await.unwrap(),
        StatusCode::PAYMENT_REQUIRED,
    )
    .await;
    let why = err["message"].as_str().unwrap();
    let key_month = why
        .split("; ")
        .find(|s| s.starts_with(&format!("key:k1 month {month} ")))
        .unwrap_or_else(|| panic!("{why}"));
    let spent: f64 = key_month.split(' ').nth(3).unwrap().parse().unwrap();
    assert!((spent - cost).abs() < 1e-9, "{why} vs {cost}");
}

/// A 50-message conversation with tool calls: a guest reading only the
/// last user message and one reading every message both work, json and
/// stream, and see tool calls, call ids and names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_resource_serves_a_long_conversation() {
    let dir = plugin_dir_named(&[
        ("probe-last", guests::TEST_PROBE, "kind = \"guardrail\"\n"),
        (
            "probe-all",
            guests::TEST_PROBE,
            "kind = \"guardrail\"\n[config]\nread = \"messages\"\n",
        ),
    ]);
    let mock = gateway::mock().await;
    let rest = r#"
[models.last]
routes = [{ provider = "mock", model = "mock-small" }]
output-guardrails = ["probe-last"]
stream = { mode = "chars", chars = 1000, max-hold-chars = 1000 }

[models.all]
routes = [{ provider = "mock", model = "mock-small" }]
output-guardrails = ["probe-all"]
stream = { mode = "chars", chars = 1000, max-hold-chars = 1000 }
"#;
    let gw = gateway::start(&gateway::config(&mock, dir.path(), rest)).await;
    let turn = "x".repeat(400);
    let mut messages: Vec<Value> = (0..46)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": turn}))
        .collect();
    messages.push(
        json!({"role": "assistant", "content": null, "name": "agent",
        "tool_calls": [{"id": "call_9", "type": "function",
                        "function": {"name": "lookup", "arguments": "{\"q\":\"card\"}"}}]}),
    );
    messages.push(json!({"role": "tool", "content": "found", "tool_call_id": "call_9"}));
    messages.push(json!({"role": "assistant", "content": turn}));
    messages.push(json!({"role": "user", "content": "REPLY: REPORT"}));
    assert_eq!(messages.len(), 50);

    for model in ["last", "all"] {
        let body = json!({"model": model, "messages": messages});
        let want = if model == "last" {
            "last=REPLY: REPORT choice=0 part=content".to_string()
        } else {
            let chars = 47 * 400 + "found".len() + "REPLY: REPORT".len();
            format!(
                "messages=50 chars={chars} tool-calls=1 args={{\"q\":\"card\"}} ids=call_9 names=agent last=REPLY: REPORT choice=0 part=content"
            )
        };
        assert_eq!(content(gw.chat(&body).await).await, want, "{model}");
        let (_, text) = stream_text(&gw, body).await;
        assert_eq!(text, want, "{model}, streamed");
    }
}

/// The request resource through the runtime alone: a transform on input
/// rewrites the shared request for the plugins after it, and a guest built
/// with the SDK reads what the host holds.
#[tokio::test]
async fn an_input_transform_is_seen_by_the_next_guest() {
    let dir = plugin_dir_named(&[
        (
            "a-tagger",
            guests::TEST_TAGGER,
            "kind = \"guardrail\"\norder = 1\n[config]\ntag = \"t:\"\n",
        ),
        (
            "b-probe",
            guests::TEST_PROBE,
            "kind = \"guardrail\"\norder = 2\n",
        ),
    ]);
    let rt = runtime(dir.path());
    let set = rt.current();
    let mut req = request("FLAG me");
    let mut report = sluice::pipeline::guard::GuardReport::default();
    let text = sluice::pipeline::guard::check_input(set.guardrails(), &mut req, &mut report)
        .await
        .unwrap();
    assert_eq!(text.as_deref(), Some("t:FLAG me"));
    assert_eq!(req.last_user_text(), Some("t:FLAG me"));
    assert_eq!(report.header_value(), "a-tagger:transform,b-probe:flag");
    let probe = set.get("b-probe").unwrap();
    assert_eq!(
        verdict(probe.check_output(&req, "REPORT", &whole()).await),
        Verdict::Transform("last=t:FLAG me choice=0 part=content".into())
    );
}
