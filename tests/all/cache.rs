//! The response cache end to end: exact hits and misses, expiry, the
//! per-request directives, semantic hits on paraphrases (and none across
//! system prompts, earlier turns or tools), streamed replay, the current
//! guardrails on a cached answer after a hot swap, the ledger's record of a
//! hit, and two gateways sharing one Redis.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sluice::state::testing::RedisServer;
use sluice::state::{CacheStatus, RecordStatus};
use sluice_guests as guests;

use crate::support::gateway::{self, Mock, TestGateway};
use crate::support::http::{admin_json, admin_text};
use crate::support::plugins::plugin_dir_named;
use crate::support::state::{Answer, read, record_of, redis_section};

/// `chat` caches exactly, `sem` semantically (embedded by `embed`), with
/// `length-check` as output guardrail on both; `agent` semantically with
/// tools and two user turns allowed; keys `sk-a` and `sk-b`.
fn models(extra: &str) -> String {
    format!(
        r#"
[server]
admin-key = "adm"

[cache]
embeddings-model = "embed"

[models.embed]
routes = [{{ provider = "mock", model = "mock-embed" }}]

[models.chat]
output-guardrails = ["length-check"]
routes = [{{ provider = "mock", model = "mock-small", input-cost-per-mtok = 1.0, output-cost-per-mtok = 2.0 }}]
cache = {{ mode = "exact", ttl-secs = 60 }}

[models.sem]
output-guardrails = ["length-check"]
routes = [{{ provider = "mock", model = "mock-small" }}]
cache = {{ mode = "semantic" }}

[models.agent]
routes = [{{ provider = "mock", model = "mock-small" }}]
cache = {{ mode = "semantic", semantic-max-turns = 2, semantic-with-tools = true }}

[[keys]]
id = "a"
key = "sk-a"

[[keys]]
id = "b"
key = "sk-b"

{extra}
"#
    )
}

fn manifest(max_chars: u32) -> String {
    format!("kind = \"guardrail\"\n[config]\nmax-chars = {max_chars}\nmin-chars = 0\n")
}

async fn start(mock: &Mock, extra: &str) -> (TestGateway, tempfile::TempDir) {
    let dir = plugin_dir_named(&[("length-check", guests::LENGTH_CHECK, &manifest(100_000))]);
    let gw = gateway::start(&gateway::config(mock, dir.path(), &models(extra))).await;
    (gw, dir)
}

async fn post(gw: &TestGateway, key: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut rb = reqwest::Client::new()
        .post(gw.v1("chat/completions"))
        .bearer_auth(key)
        .json(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    read(rb.send().await.unwrap()).await
}

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "temperature": 0, "messages": [{"role": "user", "content": text}]})
}

fn text(a: &Answer) -> String {
    if a.events.is_empty() {
        return a.json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    crate::support::http::streamed_text(&a.events)
}

async fn chats(mock: &Mock) -> u64 {
    mock.stats().await["paths"]["/v1/chat/completions"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_hit_and_miss_with_the_ledger_and_headers() {
    let mock = gateway::mock().await;
    let (gw, _dir) = start(&mock, "").await;
    let first = post(&gw, "sk-a", &ask("chat", "What is Rust?"), &[]).await;
    assert_eq!(first.status, 200, "{:?}", first.json);
    assert_eq!(first.header("x-sluice-cache"), Some("miss"));
    assert_eq!(chats(&mock).await, 1);

    // Same request with other field order, `user` and `stream` aside: a hit.
    let same = json!({"messages": [{"content": "What is Rust?", "role": "user"}],
        "temperature": 0.0, "user": "someone", "model": "chat"});
    let hit = post(&gw, "sk-a", &same, &[]).await;
    assert_eq!(hit.status, 200);
    assert_eq!(hit.header("x-sluice-cache"), Some("hit"));
    assert_eq!(hit.header("x-sluice-provider"), Some("cache"));
    assert_eq!(hit.header("x-sluice-cost-usd"), Some("0.000000000"));
    assert!(hit.header("x-sluice-cache-similarity").is_none());
    assert_eq!(text(&hit), text(&first));
    assert_eq!(
        hit.json["usage"], first.json["usage"],
        "usage as first reported"
    );
    assert_eq!(chats(&mock).await, 1, "no upstream call for a hit");

    // Another question, another key, a sampled request: no hit.
    let other = post(&gw, "sk-a", &ask("chat", "What is Go?"), &[]).await;
    assert_eq!(other.header("x-sluice-cache"), Some("miss"));
    let b = post(&gw, "sk-b", &ask("chat", "What is Rust?"), &[]).await;
    assert_eq!(b.header("x-sluice-cache"), Some("miss"), "scoped by key");
    let sampled =
        json!({"model": "chat", "messages": [{"role": "user", "content": "What is Rust?"}]});
    let s = post(&gw, "sk-a", &sampled, &[]).await;
    assert_eq!(
        s.header("x-sluice-cache"),
        Some("bypass"),
        "not deterministic"
    );
    assert_eq!(chats(&mock).await, 4);

    // The ledger: the miss cost money, the hit saved it.
    let state = &gw.gateway.state;
    let miss = record_of(state, &first.id, Duration::from_secs(10))
        .await
        .unwrap();
    let hit_r = record_of(state, &hit.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(miss.cache, CacheStatus::Miss);
    assert!(miss.cost_usd > 0.0);
    assert_eq!(hit_r.cache, CacheStatus::Hit);
    assert_eq!(hit_r.provider, "cache");
    assert_eq!(hit_r.cost_usd, 0.0);
    assert!((hit_r.saved_usd - miss.cost_usd).abs() < 1e-12);
    let report = state
        .usage(&sluice::state::UsageQuery {
            by: sluice::state::GroupBy::Key,
            since_ms: 0,
            until_ms: u64::MAX,
        })
        .await
        .unwrap();
    let a = report.rows.iter().find(|r| r.group == "a").unwrap();
    assert_eq!((a.cache_hits, a.cache_lookups), (1, 3));
    assert!(
        report.to_table().contains("33.3 %"),
        "{}",
        report.to_table()
    );

    // Metrics count each decision.
    let page = admin_text(&format!("{}/metrics", gw.url), "adm").await;
    let m = crate::support::prom::parse(&page);
    let lookups = |result| {
        m.value(
            "sluice_cache_lookups_total",
            &[("model", "chat"), ("result", result)],
        )
    };
    assert_eq!(
        (lookups("hit_exact"), lookups("miss"), lookups("bypass")),
        (1.0, 3.0, 1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_their_ttl() {
    let mock = gateway::mock().await;
    let (gw, _dir) = start(&mock, "").await;
    let q = ask("chat", "What is a TTL?");
    assert_eq!(
        post(&gw, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("miss")
    );
    assert_eq!(
        post(&gw, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("hit")
    );
    // The cache's clock, not a sleep: 59 s later it still answers, 60 s
    // (`ttl-secs`) later it does not.
    gw.gateway.cache.clock().advance(Duration::from_secs(59));
    assert_eq!(
        post(&gw, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("hit")
    );
    gw.gateway.cache.clock().advance(Duration::from_secs(1));
    assert_eq!(
        post(&gw, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("miss")
    );
    assert_eq!(chats(&mock).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_no_cache_and_the_mode_header() {
    let mock = gateway::mock().await;
    let (gw, _dir) = start(&mock, "").await;
    let q = ask("chat", "Directives?");
    let ns = post(&gw, "sk-a", &q, &[("cache-control", "no-store")]).await;
    assert_eq!(ns.header("x-sluice-cache"), Some("bypass"));
    let off = post(&gw, "sk-a", &q, &[("x-sluice-cache", "off")]).await;
    assert_eq!(off.header("x-sluice-cache"), Some("bypass"));
    // Neither stored anything: this is a miss, and it stores.
    let nc = post(&gw, "sk-a", &q, &[("cache-control", "no-cache")]).await;
    assert_eq!(nc.header("x-sluice-cache"), Some("bypass"), "no lookup");
    let hit = post(&gw, "sk-a", &q, &[]).await;
    assert_eq!(hit.header("x-sluice-cache"), Some("hit"), "no-cache stored");
    assert_eq!(chats(&mock).await, 3);
    assert_eq!(gw.gateway.cache.stats().await.unwrap().stores, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_hits_a_paraphrase_and_misses_another_question() {
    let mock = gateway::mock().await;
    let (gw, _dir) = start(&mock, "").await;
    let first = post(
        &gw,
        "sk-a",
        &ask("sem", "What is the capital of France?"),
        &[],
    )
    .await;
    assert_eq!(first.header("x-sluice-cache"), Some("miss"));
    let para = post(
        &gw,
        "sk-a",
        &ask("sem", "Tell me the capital of France, please."),
        &[],
    )
    .await;
    assert_eq!(
        para.header("x-sluice-cache"),
        Some("hit"),
        "{:?}",
        para.json
    );
    let sim: f32 = para
        .header("x-sluice-cache-similarity")
        .unwrap()
        .parse()
        .unwrap();
    assert!(sim >= 0.95, "{sim}");
    assert_eq!(text(&para), text(&first));
    let other = post(
        &gw,
        "sk-a",
        &ask("sem", "What is the capital of Germany?"),
        &[],
    )
    .await;
    assert_eq!(other.header("x-sluice-cache"), Some("miss"));
    assert_ne!(text(&other), text(&first));
    assert_eq!(chats(&mock).await, 2);
    assert_eq!(mock.stats().await["paths"]["/v1/embeddings"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_semantic_hit_across_system_prompts_earlier_turns_or_tools() {
    let mock = gateway::mock().await;
    let (gw, _dir) = start(&mock, "").await;
    let conv = |system: &str, earlier: Option<&str>, tools: bool, last: &str| {
        let mut messages = vec![json!({"role": "system", "content": system})];
        if let Some(e) = earlier {
            messages.push(json!({"role": "user", "content": e}));
            messages.push(json!({"role": "assistant", "content": "Sure."}));
        }
        messages.push(json!({"role": "user", "content": last}));
        let mut body = json!({"model": "agent", "temperature": 0, "messages": messages});
        if tools {
            body["tools"] =
                json!([{"type": "function", "function": {"name": "lookup", "parameters": {}}}]);
        }
        body
    };
    let q = "What is the capital of France?";
    let p = "Tell me the capital of France, please.";
    let stored = post(&gw, "sk-a", &conv("Be brief.", Some("Hi"), false, q), &[]).await;
    assert_eq!(stored.header("x-sluice-cache"), Some("miss"));
    let same = post(&gw, "sk-a", &conv("Be brief.", Some("Hi"), false, p), &[]).await;
    assert_eq!(
        same.header("x-sluice-cache"),
        Some("hit"),
        "same prefix: a hit"
    );
    for (what, body) in [
        ("system prompt", conv("Be verbose.", Some("Hi"), false, p)),
        ("earlier turns", conv("Be brief.", Some("Hello"), false, p)),
        ("no earlier turns", conv("Be brief.", None, false, p)),
        ("tools", conv("Be brief.", Some("Hi"), true, p)),
    ] {
        let a = post(&gw, "sk-a", &body, &[]).await;
        assert_eq!(a.header("x-sluice-cache"), Some("miss"), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_is_off_for_tools_and_long_conversations_by_default() {
    let mock = gateway::mock().await;
    let (gw, _dir) = start(&mock, "").await;
    let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);
    let mut q = ask("sem", "What is the capital of France?");
    q["tools"] = tools.clone();
    post(&gw, "sk-a", &q, &[]).await;
    let mut p = ask("sem", "Tell me the capital of France, please.");
    p["tools"] = tools;
    let a = post(&gw, "sk-a", &p, &[]).await;
    assert_eq!(
        a.header("x-sluice-cache"),
        Some("miss"),
        "tools: exact only"
    );
    assert_eq!(mock.stats().await["paths"]["/v1/embeddings"], 0);
    // The identical request still hits exactly.
    assert_eq!(
        post(&gw, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("hit")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_is_replayed_as_a_checked_stream() {
    let mock = gateway::mock().await;
    let (gw, _dir) = start(&mock, "").await;
    let q = ask("chat", "Stream me something cached.");
    let first = post(&gw, "sk-a", &q, &[]).await;
    assert_eq!(first.header("x-sluice-cache"), Some("miss"));
    let mut s = q.clone();
    s["stream"] = json!(true);
    s["stream_options"] = json!({"include_usage": true});
    let streamed = post(&gw, "sk-a", &s, &[]).await;
    assert_eq!(streamed.header("x-sluice-cache"), Some("hit"));
    assert!(streamed.complete(), "{:?}", streamed.events);
    assert_eq!(text(&streamed), text(&first));
    assert_eq!(streamed.usage(), first.json.get("usage").cloned());
    assert_eq!(chats(&mock).await, 1);
    let r = record_of(&gw.gateway.state, &streamed.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(r.stream && r.cache == CacheStatus::Hit && r.cost_usd == 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_guardrail_applies_to_a_cached_answer_after_a_hot_swap() {
    let mock = gateway::mock().await;
    let (gw, dir) = start(&mock, "").await;
    let q = ask(
        "chat",
        "A question whose answer is longer than twenty characters",
    );
    let first = post(&gw, "sk-a", &q, &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        post(&gw, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("hit")
    );
    // The guardrail now allows 20 characters: the cached answer is refused
    // JSON and streamed alike, and no upstream is called for it.
    std::fs::write(dir.path().join("length-check.toml"), manifest(20)).unwrap();
    let plugins = gw.gateway.plugins.clone();
    let report = tokio::task::spawn_blocking(move || plugins.reload())
        .await
        .unwrap();
    assert_eq!(report.loaded, ["length-check"], "{report:?}");
    let refused = post(&gw, "sk-a", &q, &[]).await;
    assert_eq!(refused.status, 422, "{:?}", refused.json);
    let mut s = q.clone();
    s["stream"] = json!(true);
    let streamed = post(&gw, "sk-a", &s, &[]).await;
    assert!(!streamed.complete(), "{:?}", streamed.events);
    assert!(streamed.events.iter().any(|e| e.contains("error")));
    assert!(!text(&streamed).contains(&text(&first)));
    assert_eq!(chats(&mock).await, 1);
    let r = record_of(&gw.gateway.state, &refused.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (r.cache, r.status),
        (CacheStatus::Hit, RecordStatus::Rejected)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_answer_is_never_cached() {
    let mock = gateway::mock().await;
    let dir = plugin_dir_named(&[("length-check", guests::LENGTH_CHECK, &manifest(20))]);
    let gw = gateway::start(&gateway::config(&mock, dir.path(), &models(""))).await;
    let q = ask(
        "chat",
        "A question whose answer is longer than twenty characters",
    );
    assert_eq!(post(&gw, "sk-a", &q, &[]).await.status, 422);
    let again = post(&gw, "sk-a", &q, &[]).await;
    assert_eq!((again.status, again.header("x-sluice-cache")), (422, None));
    assert_eq!(chats(&mock).await, 2);
    assert_eq!(gw.gateway.cache.stats().await.unwrap().stores, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_answers_and_vectors_through_redis() {
    let redis = RedisServer::start();
    let mock = gateway::mock().await;
    let state = redis_section(&redis.url(), "cache:");
    let (a, _da) = start(&mock, &state).await;
    let (b, _db) = start(&mock, &state).await;
    assert_eq!(a.gateway.state.backend(), "redis");
    let q = ask("chat", "Shared?");
    assert_eq!(
        post(&a, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("miss")
    );
    assert_eq!(
        post(&b, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("hit")
    );
    let s = ask("sem", "What is the capital of France?");
    assert_eq!(
        post(&b, "sk-a", &s, &[]).await.header("x-sluice-cache"),
        Some("miss")
    );
    let p = ask("sem", "Tell me the capital of France, please.");
    let hit = post(&a, "sk-a", &p, &[]).await;
    assert_eq!(
        hit.header("x-sluice-cache"),
        Some("hit"),
        "a finds b's vector"
    );
    assert_eq!(chats(&mock).await, 2);
    // A purge on one gateway empties both.
    assert_eq!(a.gateway.cache.purge(Some("chat"), None).await.unwrap(), 1);
    assert_eq!(
        post(&b, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("miss")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cache_reports_and_purges_by_model_and_key() {
    let mock = gateway::mock().await;
    let (gw, _dir) = start(&mock, "").await;
    let q = ask("chat", "Admin?");
    post(&gw, "sk-a", &q, &[]).await;
    post(&gw, "sk-b", &q, &[]).await;
    post(&gw, "sk-a", &q, &[]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/admin/cache", gw.url);
    let stats: Value = admin_json(Method::GET, &url, "adm").await;
    assert_eq!(stats["entries"], 2, "{stats}");
    assert_eq!(
        (stats["exact_hits"].as_u64(), stats["misses"].as_u64()),
        (Some(1), Some(2))
    );
    let no_admin = client.get(&url).bearer_auth("sk-a").send().await.unwrap();
    assert_eq!(no_admin.status(), 401);
    let purged: Value = admin_json(Method::DELETE, &format!("{url}?key=b"), "adm").await;
    assert_eq!(purged["purged"], 1);
    assert_eq!(
        post(&gw, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("hit")
    );
    assert_eq!(
        post(&gw, "sk-b", &q, &[]).await.header("x-sluice-cache"),
        Some("miss")
    );
    let purged: Value = admin_json(Method::POST, &format!("{url}/purge?model=chat"), "adm").await;
    assert_eq!(purged["purged"], 2);
    assert_eq!(
        post(&gw, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("miss")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_cache_stats_and_purge_beside_a_gateway_on_redis() {
    use crate::support::process::run;
    let redis = RedisServer::start();
    let mock = gateway::mock().await;
    let dir = plugin_dir_named(&[("length-check", guests::LENGTH_CHECK, &manifest(100_000))]);
    let text = gateway::config(
        &mock,
        dir.path(),
        &models(&redis_section(&redis.url(), "cli:")),
    );
    let gw = gateway::start(&text).await;
    let q = ask("chat", "CLI?");
    post(&gw, "sk-a", &q, &[]).await;
    post(&gw, "sk-a", &q, &[]).await;
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("sluice.toml");
    std::fs::write(&cfg, &text).unwrap();
    let cfg = cfg.to_str().unwrap();
    let (ok, out, err) = run(&["cache", "stats", "--json", "--config", cfg]).await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cache"]["entries"], 1, "{v}");
    let chat = v["usage"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "chat")
        .unwrap();
    assert_eq!(
        (chat["cache_hits"].as_u64(), chat["cache_lookups"].as_u64()),
        (Some(1), Some(2))
    );
    let (ok, out, _) = run(&["cache", "stats", "--config", cfg]).await;
    assert!(ok && out.contains("50.0 %"), "{out}");
    let (ok, out, err) = run(&["cache", "purge", "--model", "chat", "--config", cfg]).await;
    assert!(ok, "{err}");
    assert!(out.contains("purged 1"), "{out}");
    assert_eq!(
        post(&gw, "sk-a", &q, &[]).await.header("x-sluice-cache"),
        Some("miss")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_stream_is_stored_and_a_broken_one_is_not() {
    let mock = gateway::mock().await;
    let (gw, _dir) = start(&mock, "").await;
    let mut s = ask("chat", "Stream first, then ask again.");
    s["stream"] = json!(true);
    let streamed = post(&gw, "sk-a", &s, &[]).await;
    assert!(streamed.complete(), "{:?}", streamed.events);
    assert_eq!(streamed.header("x-sluice-cache"), Some("miss"));
    let miss = record_of(&gw.gateway.state, &streamed.id, Duration::from_secs(10))
        .await
        .unwrap();
    let q = ask("chat", "Stream first, then ask again.");
    let hit = post(&gw, "sk-a", &q, &[]).await;
    assert_eq!(hit.header("x-sluice-cache"), Some("hit"));
    assert_eq!(text(&hit), text(&streamed));
    let usage = &hit.json["usage"];
    assert_eq!(
        (
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64()
        ),
        (
            Some(u64::from(miss.usage.prompt_tokens)),
            Some(u64::from(miss.usage.completion_tokens))
        ),
        "the upstream's usage, kept from the stream"
    );
    let r = record_of(&gw.gateway.state, &hit.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert!((r.saved_usd - miss.cost_usd).abs() < 1e-12 && miss.cost_usd > 0.0);

    // An upstream that breaks mid-stream: nothing stored.
    let mut b = ask("chat", "This stream breaks.");
    b["stream"] = json!(true);
    b["mock_fault"] = json!("midstream-error");
    let broken = post(&gw, "sk-a", &b, &[]).await;
    assert!(!broken.complete(), "{:?}", broken.events);
    let stores = gw.gateway.cache.stats().await.unwrap().stores;
    assert_eq!(stores, 1, "only the complete stream");
}
