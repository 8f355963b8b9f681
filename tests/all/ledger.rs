//! The usage ledger end to end: one record per request that reached an
//! upstream, its sums equal to what the upstream reported (JSON and
//! streams, `include_usage` on and off), cached and reasoning tokens priced
//! apart, estimates when the upstream reports nothing, and the records of
//! answers the client did not get whole (a guardrail's rejection, a client
//! leaving mid-stream, an upstream failing mid-stream).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sluice::mock::MockConfig;
use sluice::state::{
    CacheStatus, GroupBy, PriceTable, RecordStatus, TokenUsage, UsageQuery, tokenizer,
};
use sluice_guests as guests;

use crate::support::fixed::Fixed;
use crate::support::gateway::{self, Mock, reply_body};
use crate::support::http::admin_json;
use crate::support::plugins::plugin_dir_named;
use crate::support::state::{Answer, ledger, no_plugins, record_of, send};

/// The mock's prices on this route, USD per million tokens.
const IN: f64 = 0.5;
const OUT: f64 = 1.5;

fn priced(guardrail_max_chars: u32) -> (String, String) {
    let models = format!(
        r#"
[server]
admin-key = "adm"

[models.chat]
output-guardrails = ["length-check"]
routes = [{{ provider = "mock", model = "mock-small", input-cost-per-mtok = {IN}, output-cost-per-mtok = {OUT} }}]

[[keys]]
id = "team-a"
key = "sk-team-a"
user = "alice"
"#
    );
    let manifest = format!(
        "kind = \"guardrail\"\n[config]\nmax-chars = {guardrail_max_chars}\nmin-chars = 0\n"
    );
    (models, manifest)
}

async fn gateway_with(
    mock: &Mock,
    max_chars: u32,
) -> (crate::support::gateway::TestGateway, tempfile::TempDir) {
    let (models, manifest) = priced(max_chars);
    let dir = plugin_dir_named(&[("length-check", guests::LENGTH_CHECK, &manifest)]);
    let gw = gateway::start(&gateway::config(mock, dir.path(), &models)).await;
    (gw, dir)
}

fn tokens(u: &Value) -> (u64, u64) {
    (
        u["prompt_tokens"].as_u64().unwrap(),
        u["completion_tokens"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_sums_equal_the_upstream_usage_json_and_streams() {
    let mock = gateway::mock().await;
    let (gw, _dir) = gateway_with(&mock, 100_000).await;
    let client = reqwest::Client::new();
    let url = gw.v1("chat/completions");
    let post = |body: Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let res = client
                .post(&url)
                .bearer_auth("sk-team-a")
                .header("x-sluice-feature", "search")
                .header("x-sluice-tags", "eu, beta")
                .json(&body)
                .send()
                .await
                .unwrap();
            crate::support::state::read(res).await
        }
    };
    // (answer, the usage the upstream reported for it)
    let mut answers: Vec<(Answer, (u64, u64))> = Vec::new();
    for i in 0..4 {
        let prompt = format!("Question number {i}: what is {}?", "very ".repeat(i * 3));
        let mut json = json!({"model": "chat", "messages": [{"role": "user", "content": prompt}]});
        let a = post(json.clone()).await;
        assert_eq!(a.status, 200, "{:?}", a.json);
        let usage = tokens(&a.usage().expect("JSON answers carry usage"));
        answers.push((a, usage));

        json["stream"] = json!(true);
        json["stream_options"] = json!({"include_usage": true});
        let a = post(json.clone()).await;
        assert!(a.complete(), "{:?}", a.events);
        let usage = tokens(&a.usage().expect("the client asked for usage"));
        assert_eq!(usage, answers.last().unwrap().1, "same prompt, same usage");
        answers.push((a, usage));

        // Without include_usage the gateway still asks upstream, and strips
        // the usage chunk from the client's stream.
        json.as_object_mut().unwrap().remove("stream_options");
        let a = post(json).await;
        assert!(a.complete(), "{:?}", a.events);
        assert!(
            a.usage().is_none(),
            "usage not asked for, not sent: {:?}",
            a.events
        );
        answers.push((a, usage));
    }

    // The build of the plugin that ran, as the runtime loaded it.
    let sha = gw
        .gateway
        .plugins
        .current()
        .get("length-check")
        .unwrap()
        .sha256()
        .to_string();
    assert_eq!(sha.len(), 64);
    let records = ledger(&gw.gateway.state).await;
    assert_eq!(records.len(), answers.len(), "one record per request");
    let (mut prompt_sum, mut completion_sum, mut cost_sum) = (0, 0, 0.0);
    for (a, (prompt, completion)) in &answers {
        let r = records
            .iter()
            .find(|r| r.request_id == a.id)
            .unwrap_or_else(|| panic!("no record for {}", a.id));
        assert_eq!(
            (
                u64::from(r.usage.prompt_tokens),
                u64::from(r.usage.completion_tokens)
            ),
            (*prompt, *completion),
            "{r:?}"
        );
        assert!(!r.estimated);
        let cost = (*prompt as f64 * IN + *completion as f64 * OUT) / 1e6;
        assert!(
            (r.cost_usd - cost).abs() < 1e-12,
            "{} vs {cost}",
            r.cost_usd
        );
        assert_eq!(r.stream, a.json.is_null());
        if !r.stream {
            let header: f64 = a.header("x-sluice-cost-usd").unwrap().parse().unwrap();
            assert!(
                (header - cost).abs() < 1e-9,
                "x-sluice-cost-usd {header} vs {cost}"
            );
        }
        assert_eq!(r.status, RecordStatus::Ok);
        assert_eq!(r.key_id.as_deref(), Some("team-a"));
        assert_eq!(r.user.as_deref(), Some("alice"), "the key's owner");
        assert_eq!(r.feature.as_deref(), Some("search"));
        assert_eq!(r.tags, ["eu", "beta"]);
        assert_eq!(
            (
                r.provider.as_str(),
                r.upstream_model.as_str(),
                r.gateway_model.as_str()
            ),
            ("mock", "mock-small", "chat")
        );
        assert_eq!((r.attempts, r.cache), (1, CacheStatus::None));
        assert_eq!(r.guardrails.len(), 1, "{:?}", r.guardrails);
        let g = &r.guardrails[0];
        assert_eq!(
            (g.plugin.as_str(), g.verdict.as_str(), g.sha256.as_str()),
            ("length-check", "pass", sha.as_str())
        );
        assert!(r.upstream_ms > 0.0 && r.overhead_ms >= 0.0, "{r:?}");
        prompt_sum += prompt;
        completion_sum += completion;
        cost_sum += cost;
    }

    // The report's total is the sum, and the admin API serves the same.
    let query = UsageQuery {
        by: GroupBy::Feature,
        since_ms: 0,
        until_ms: u64::MAX / 2,
    };
    let report = gw.gateway.state.usage(&query).await.unwrap();
    assert_eq!(report.total.requests, answers.len() as u64);
    assert_eq!(
        (report.total.prompt_tokens, report.total.completion_tokens),
        (prompt_sum, completion_sum)
    );
    assert!((report.total.cost_usd - cost_sum).abs() < 1e-9);
    assert_eq!(report.rows.len(), 1);
    assert_eq!(report.rows[0].group, "search");
    let admin: Value = admin_json(
        Method::GET,
        &format!(
            "{}/admin/usage?by=feature&since=0&until={}",
            gw.url,
            u64::MAX / 2
        ),
        "adm",
    )
    .await;
    assert_eq!(admin, serde_json::to_value(&report).unwrap());
    let denied = client
        .get(format!("{}/admin/usage", gw.url))
        .bearer_auth("sk-team-a")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401, "a virtual key is not the admin key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_answer_is_paid_for_and_recorded() {
    let mock = gateway::mock().await;
    let (gw, _dir) = gateway_with(&mock, 20).await;
    let client = reqwest::Client::new();
    let url = gw.v1("chat/completions");
    let long = "This answer is far longer than twenty characters.";
    let json = send(&client, &url, Some("sk-team-a"), &reply_body("chat", long)).await;
    assert_eq!(json.status, 422);
    let mut body = reply_body("chat", long);
    body["stream"] = json!(true);
    let stream = send(&client, &url, Some("sk-team-a"), &body).await;
    assert_eq!(stream.status, 200);
    assert!(
        stream.events.last().unwrap().contains("guardrail_rejected"),
        "{:?}",
        stream.events
    );
    for a in [&json, &stream] {
        let r = record_of(&gw.gateway.state, &a.id, Duration::from_secs(10))
            .await
            .expect("a rejected answer has its record");
        assert_eq!(r.status, RecordStatus::Rejected);
        assert!(r.cost_usd > 0.0 && r.usage.completion_tokens > 0, "{r:?}");
        assert_eq!(r.guardrails[0].verdict, "reject");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_is_billed_for_what_arrived() {
    let mock = Mock::start(MockConfig {
        token_delay_ms: 40,
        ..MockConfig::default()
    })
    .await;
    let (gw, _dir) = gateway_with(&mock, 100_000).await;
    let words = "word ".repeat(200);
    let mut body = reply_body("chat", &words);
    body["stream"] = json!(true);
    let mut res = reqwest::Client::new()
        .post(gw.v1("chat/completions"))
        .bearer_auth("sk-team-a")
        .json(&body)
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-sluice-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    // A few pieces arrive, then the client goes away.
    let mut got = String::new();
    while got.matches("word").count() < 3 {
        let chunk = res.chunk().await.unwrap().expect("the stream is long");
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(res);
    let r = record_of(&gw.gateway.state, &id, Duration::from_secs(30))
        .await
        .expect("a stream the client left is recorded");
    assert_eq!(r.status, RecordStatus::ClientDisconnected);
    assert!(r.estimated, "no usage arrived: the tokenizer counted");
    assert!(
        (3..200).contains(&r.usage.completion_tokens),
        "billed for what arrived: {r:?}"
    );
    assert!(r.usage.prompt_tokens > 200 && r.cost_usd > 0.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failing_mid_stream_is_recorded_with_an_estimate() {
    let mock = gateway::mock().await;
    let (gw, _dir) = gateway_with(&mock, 100_000).await;
    let mut body = reply_body("chat", "One. Two. Three. Four. Five. Six.");
    body["stream"] = json!(true);
    body["mock_fault"] = json!("midstream-error");
    let a = send(
        &reqwest::Client::new(),
        &gw.v1("chat/completions"),
        Some("sk-team-a"),
        &body,
    )
    .await;
    assert!(a.events.last().unwrap().contains("error"), "{:?}", a.events);
    let r = record_of(&gw.gateway.state, &a.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(r.status, RecordStatus::UpstreamError);
    assert!(r.estimated && r.usage.completion_tokens > 0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_without_an_answer_write_nothing() {
    let mock = gateway::mock().await;
    let (gw, _dir) = gateway_with(&mock, 100_000).await;
    let client = reqwest::Client::new();
    let mut body = reply_body("chat", "x");
    body["mock_fault"] = json!("status=500");
    let a = send(
        &client,
        &gw.v1("chat/completions"),
        Some("sk-team-a"),
        &body,
    )
    .await;
    assert_eq!(a.status, 502);
    let a = send(
        &client,
        &gw.v1("chat/completions"),
        Some("sk-team-a"),
        &json!({"model": "chat", "messages": []}),
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(ledger(&gw.gateway.state).await.is_empty());
}

/// An OpenAI-compatible answer with exact usage details.
fn completion_with(usage: Value) -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Priced."}, "finish_reason": "stop"}],
        "usage": usage,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_and_reasoning_tokens_are_priced_apart() {
    let openai = Fixed::start(|_| {
        let usage = json!({
            "prompt_tokens": 2000, "completion_tokens": 1000, "total_tokens": 3000,
            "prompt_tokens_details": {"cached_tokens": 1500},
            "completion_tokens_details": {"reasoning_tokens": 400},
        });
        (200, "application/json", completion_with(usage))
    })
    .await;
    let anthropic = Fixed::start(|_| {
        let msg = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "Cached."}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 100, "cache_read_input_tokens": 900, "output_tokens": 50},
        });
        (200, "application/json", msg.to_string())
    })
    .await;
    let config = format!(
        r#"
{}
[[providers]]
name = "openai"
base-url = "{}"

[[providers]]
name = "anthropic"
kind = "anthropic"
base-url = "{}"

[models.mini]
routes = [{{ provider = "openai", model = "gpt-4o-mini" }}]

[models.sonnet]
routes = [{{ provider = "anthropic", model = "claude-sonnet-4-5" }}]
"#,
        no_plugins(),
        openai.base(),
        anthropic.base()
    );
    let gw = gateway::start(&config).await;
    let client = reqwest::Client::new();
    let table = PriceTable::builtin();

    let a = send(
        &client,
        &gw.v1("chat/completions"),
        None,
        &reply_body("mini", "x"),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(
        a.json["usage"]["prompt_tokens_details"]["cached_tokens"], 1500,
        "details reach the client"
    );
    let mini = table.lookup("gpt-4o-mini").unwrap();
    let want = (500.0 * mini.input
        + 1500.0 * mini.cached_input
        + 600.0 * mini.output
        + 400.0 * mini.reasoning)
        / 1e6;
    assert!(mini.cached_input < mini.input);
    let r = record_of(&gw.gateway.state, &a.id, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        r.usage,
        TokenUsage {
            prompt_tokens: 2000,
            completion_tokens: 1000,
            cached_input_tokens: 1500,
            cache_write_tokens: 0,
            reasoning_tokens: 400,
        }
    );
    assert!(
        (r.cost_usd - want).abs() < 1e-12,
        "{} vs {want}",
        r.cost_usd
    );
    let header: f64 = a.header("x-sluice-cost-usd").unwrap().parse().unwrap();
    assert!((header - want).abs() < 1e-9);

    // Anthropic's cache reads are prompt tokens, priced as cached input.
    let a = send(
        &client,
        &gw.v1("chat/completions"),
        None,
        &reply_body("sonnet", "x"),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    let sonnet = table.lookup("claude-sonnet-4-5").unwrap();
    let r = record_of(&gw.gateway.state, &a.id, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        (r.usage.prompt_tokens, r.usage.cached_input_tokens),
        (1000, 900)
    );
    let want = (100.0 * sonnet.input + 900.0 * sonnet.cached_input + 50.0 * sonnet.output) / 1e6;
    assert!(
        (r.cost_usd - want).abs() < 1e-12,
        "{} vs {want}",
        r.cost_usd
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reported_usage_the_tokenizer_counts() {
    let silent = Fixed::start(|_| {
        let body = json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Counted by the gateway, not the upstream."}, "finish_reason": "stop"}],
        });
        (200, "application/json", body.to_string())
    })
    .await;
    let config = format!(
        "{}[[providers]]\nname = \"p\"\nbase-url = \"{}\"\n[models.m]\nroutes = [{{ provider = \"p\", model = \"gpt-4o\" }}]\n",
        no_plugins(),
        silent.base()
    );
    let gw = gateway::start(&config).await;
    let prompt = "How many tokens is this prompt?";
    let body = json!({"model": "m", "messages": [{"role": "user", "content": prompt}]});
    let a = send(
        &reqwest::Client::new(),
        &gw.v1("chat/completions"),
        None,
        &body,
    )
    .await;
    assert_eq!(a.status, 200);
    let r = record_of(&gw.gateway.state, &a.id, Duration::ZERO)
        .await
        .unwrap();
    assert!(r.estimated);
    assert_eq!(
        r.usage.prompt_tokens,
        tokenizer::count_chat("gpt-4o", [("user", prompt)])
    );
    assert_eq!(
        r.usage.completion_tokens,
        tokenizer::count("gpt-4o", "Counted by the gateway, not the upstream.")
    );
    let price = PriceTable::builtin().lookup("gpt-4o").unwrap();
    assert!((r.cost_usd - price.cost(&r.usage)).abs() < 1e-15 && r.cost_usd > 0.0);
}

/// Anthropic streams report usage in their events (`message_start`,
/// `message_delta`): the ledger takes it from there, not from an estimate,
/// whether or not the client asked for a usage chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_streams_report_their_usage_from_their_events() {
    let mock = gateway::mock().await;
    let config = format!(
        r#"
{}
[[providers]]
name = "claude"
kind = "anthropic"
base-url = "{}"
api-key = "sk-ant"

[models.sonnet]
routes = [{{ provider = "claude", model = "claude-sonnet-4-5" }}]
"#,
        no_plugins(),
        mock.base()
    );
    let gw = gateway::start(&config).await;
    let client = reqwest::Client::new();
    let url = gw.v1("chat/completions");
    let body = reply_body("sonnet", "a streamed answer of several words");
    let whole = send(&client, &url, None, &body).await;
    assert_eq!(whole.status, 200, "{:?}", whole.json);
    let want = tokens(&whole.usage().expect("JSON answers carry usage"));
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let quiet = send(&client, &url, None, &streamed).await;
    assert!(quiet.complete(), "{:?}", quiet.events);
    assert!(quiet.usage().is_none(), "{:?}", quiet.events);
    streamed["stream_options"] = json!({"include_usage": true});
    let asked = send(&client, &url, None, &streamed).await;
    assert!(asked.complete(), "{:?}", asked.events);
    assert_eq!(tokens(&asked.usage().expect("asked for")), want);

    let price = PriceTable::builtin().lookup("claude-sonnet-4-5").unwrap();
    let records = ledger(&gw.gateway.state).await;
    assert_eq!(records.len(), 3);
    for a in [&whole, &quiet, &asked] {
        let r = records.iter().find(|r| r.request_id == a.id).unwrap();
        assert!(!r.estimated, "{r:?}");
        assert_eq!(
            (
                u64::from(r.usage.prompt_tokens),
                u64::from(r.usage.completion_tokens)
            ),
            want,
            "{r:?}"
        );
        assert!((r.cost_usd - price.cost(&r.usage)).abs() < 1e-12);
        assert!(r.cost_usd > 0.0);
        assert_eq!(r.provider, "claude");
    }
}
