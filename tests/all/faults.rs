//! The upstream fault matrix: `Providers` against the mock upstream over
//! real sockets. Each test starts its own mock so counts are its own.

use sluice::server::error::upstream_status as gateway_status;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sluice::mock::MockConfig;
use sluice::openai::EmbeddingsRequest;
use sluice::provider::{
    BreakerConfig, BreakerState, Failure, ProviderConfig, ProviderKind, Providers, RetryConfig,
    RouteTarget,
};

use crate::support::http::chunk_text;
use crate::support::raw;
use crate::support::upstream::{Mock, chat_request, no_breaker, provider, quick_retry, routes};

/// The error of a non-streamed chat on the single route `name`.
async fn chat_error(p: &Providers, name: &str) -> Failure {
    p.chat(&routes(&[name]), &chat_request("hi"))
        .await
        .unwrap_err()
}

/// The 429 asks for 5 s in `Retry-After`, beyond `max-retry-after-ms`, and
/// for 150 ms in `retry-after-ms`: only by obeying the latter is there a
/// second attempt at all.
#[tokio::test]
async fn rate_limit_retry_after_is_honoured() {
    let mock = Mock::start(MockConfig::default()).await;
    let a = provider(
        "a",
        &mock,
        ProviderKind::Openai,
        Some("status=429;retry-after=5;retry-after-ms=150;fail-first=1"),
    );
    let retry = RetryConfig {
        max_retry_after_ms: 1_000,
        ..quick_retry(3)
    };
    let p = Providers::new(&[a], &retry, &no_breaker()).unwrap();
    let t = Instant::now();
    let out = p.chat(&routes(&["a"]), &chat_request("hi")).await.unwrap();
    assert_eq!(out.attempts, 2);
    assert_eq!(mock.key_count("a").await, 2);
    // Backoff alone is at most 20 ms here; the wait is the asked-for one.
    // A lower bound: a slow machine only makes it longer.
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(150),
        "retry-after-ms ignored: {waited:?}"
    );
    assert!(out.elapsed >= Duration::from_millis(150));
}

#[tokio::test]
async fn rate_limit_beyond_max_retry_after_returns_429() {
    let mock = Mock::start(MockConfig::default()).await;
    let a = provider(
        "a",
        &mock,
        ProviderKind::Openai,
        Some("status=429;retry-after=5"),
    );
    let retry = RetryConfig {
        max_retry_after_ms: 500,
        ..quick_retry(3)
    };
    let p = Providers::new(&[a], &retry, &no_breaker()).unwrap();
    let err = chat_error(&p, "a").await;
    assert_eq!(gateway_status(&err).0.as_u16(), 429);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(mock.key_count("a").await, 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_fall_back() {
    let mock = Mock::start(MockConfig::default()).await;
    let a = provider("a", &mock, ProviderKind::Openai, Some("status=503"));
    let b = provider("b", &mock, ProviderKind::Openai, None);
    let c = provider(
        "c",
        &mock,
        ProviderKind::Openai,
        Some("status=500;fail-first=2"),
    );
    let p = Providers::new(&[a, b, c], &quick_retry(3), &no_breaker()).unwrap();

    let out = p
        .chat(&routes(&["a", "b"]), &chat_request("hi"))
        .await
        .unwrap();
    assert_eq!((out.provider.as_str(), out.attempts), ("b", 4));
    assert_eq!(mock.key_count("a").await, 3, "a retried up to max-attempts");
    assert!(
        out.value.choices[0]
            .message
            .content_text()
            .starts_with("Mock answer to \"hi\"")
    );

    let out = p
        .chat(&routes(&["c", "b"]), &chat_request("hi"))
        .await
        .unwrap();
    assert_eq!(
        (out.provider.as_str(), out.attempts),
        ("c", 3),
        "500 twice, then success"
    );

    let err = chat_error(&p, "a").await;
    assert_eq!(gateway_status(&err).0.as_u16(), 502);
    assert!(err.to_string().contains("injected fault"), "{err}");
}

#[tokio::test]
async fn timeout_is_504_or_falls_back() {
    let mock = Mock::start(MockConfig::default()).await;
    let mut a = provider("a", &mock, ProviderKind::Openai, Some("timeout"));
    a.timeout_ms = 200;
    let b = provider("b", &mock, ProviderKind::Openai, None);
    let p = Providers::new(&[a, b], &quick_retry(1), &no_breaker()).unwrap();

    let err = chat_error(&p, "a").await;
    assert_eq!(gateway_status(&err).0.as_u16(), 504, "{err}");
    assert!(err.to_string().contains("after 200 ms"), "{err}");

    let out = p
        .chat(&routes(&["a", "b"]), &chat_request("hi"))
        .await
        .unwrap();
    assert_eq!(out.provider, "b");

    // A route's own timeout overrides the provider's (here one minute): the
    // error names the timeout that fired.
    let mut hang = provider("hang", &mock, ProviderKind::Openai, Some("timeout"));
    hang.timeout_ms = 60_000;
    let p = Providers::new(&[hang], &quick_retry(1), &no_breaker()).unwrap();
    let mut route = routes(&["hang"]);
    route[0].timeout = Some(Duration::from_millis(100));
    let err = p.chat(&route, &chat_request("hi")).await.unwrap_err();
    assert_eq!(gateway_status(&err).0.as_u16(), 504);
    assert!(err.to_string().contains("after 100 ms"), "{err}");
}

#[tokio::test]
async fn connection_reset_is_retried() {
    let mock = Mock::start(MockConfig::default()).await;
    let a = provider("a", &mock, ProviderKind::Openai, Some("reset;fail-first=1"));
    let b = provider("b", &mock, ProviderKind::Openai, Some("reset"));
    let p = Providers::new(&[a, b], &quick_retry(2), &no_breaker()).unwrap();
    let out = p.chat(&routes(&["a"]), &chat_request("hi")).await.unwrap();
    assert_eq!(out.attempts, 2);
    let err = chat_error(&p, "b").await;
    assert_eq!(gateway_status(&err).0.as_u16(), 502, "{err}");
    assert!(
        err.to_string().contains("connection failed"),
        "a reset, not an answer: {err}"
    );
    assert_eq!(mock.key_count("b").await, 2);
}

#[tokio::test]
async fn truncated_stream_surfaces_an_error() {
    let mock = Mock::start(MockConfig::default()).await;
    let a = provider("a", &mock, ProviderKind::Openai, Some("truncate"));
    let p = Providers::new(&[a], &quick_retry(1), &no_breaker()).unwrap();
    let mut req = chat_request("tell me a story");
    req.stream = true;
    let out = p.chat_stream(&routes(&["a"]), &req).await.unwrap();
    let items: Vec<_> = out.value.collect().await;
    assert!(
        items.len() >= 3,
        "some chunks arrive first: {}",
        items.len()
    );
    assert!(items[..items.len() - 1].iter().all(Result::is_ok));
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(gateway_status(err).0.as_u16(), 502);
    assert!(err.to_string().contains("ended the stream"), "{err}");

    // Non-streaming: the body is cut off mid-way.
    let err = chat_error(&p, "a").await;
    assert_eq!(gateway_status(&err).0.as_u16(), 502, "{err}");
}

#[tokio::test]
async fn complete_stream_ends_cleanly_with_usage() {
    let mock = Mock::start(MockConfig::default()).await;
    let p = Providers::new(
        &[provider("a", &mock, ProviderKind::Openai, None)],
        &quick_retry(1),
        &no_breaker(),
    )
    .unwrap();
    let mut req = chat_request("REPLY: one two three. four");
    req.stream = true;
    req.stream_options = Some(serde_json::from_value(json!({"include_usage": true})).unwrap());
    let out = p.chat_stream(&routes(&["a"]), &req).await.unwrap();
    let chunks: Vec<_> = out.value.map(Result::unwrap).collect().await;
    assert_eq!(chunk_text(&chunks), "one two three. four");
    let usage = chunks.last().unwrap().usage.unwrap();
    assert_eq!(usage.completion_tokens, 4);
}

#[tokio::test]
async fn malformed_json_is_a_502() {
    let mock = Mock::start(MockConfig::default()).await;
    let a = provider("a", &mock, ProviderKind::Openai, Some("malformed"));
    let p = Providers::new(&[a], &quick_retry(2), &no_breaker()).unwrap();
    let err = chat_error(&p, "a").await;
    assert_eq!(gateway_status(&err).0.as_u16(), 502);
    assert!(err.to_string().contains("malformed JSON"), "{err}");
    let mut req = chat_request("hi");
    req.stream = true;
    let err = p.chat_stream(&routes(&["a"]), &req).await.unwrap_err();
    assert!(err.to_string().contains("malformed stream chunk"), "{err}");
}

/// An answer whose body never ends: `status`, `prefix`, then 64 KiB
/// chunks until the gateway stops reading and the socket fills or closes.
async fn endless_answer(mut tcp: tokio::net::TcpStream, status: u16, prefix: &'static str) {
    use tokio::io::AsyncWriteExt;
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{prefix}\r\n",
        prefix.len()
    );
    if tcp.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let chunk = format!("{:x}\r\n{}\r\n", 65536, " ".repeat(65536));
    while tcp.write_all(chunk.as_bytes()).await.is_ok() {}
}

/// A non-streamed answer larger than `max-response-mb` (here an endless
/// one) is a 502 naming the limit, not a gateway buffering without bound
/// until the call's timeout.
#[tokio::test]
async fn oversized_answer_is_a_502_and_not_read_further() {
    let up = raw::upstream(|tcp, _| endless_answer(tcp, 200, "{\"id\": \"")).await;
    let mut a = ProviderConfig::new("a", ProviderKind::Openai, &up.base);
    a.max_response_mb = 1;
    let p = Providers::new(&[a], &quick_retry(1), &no_breaker()).unwrap();
    let err = chat_error(&p, "a").await;
    assert_eq!(gateway_status(&err).0.as_u16(), 502);
    assert!(
        err.to_string()
            .contains("larger than 1 MiB (the provider's max-response-mb)"),
        "{err}"
    );
}

/// An error answer's body is read only as far as its message needs: an
/// endless 500 still fails fast with the upstream's own message.
#[tokio::test]
async fn endless_error_body_is_read_only_in_part() {
    let up = raw::upstream(|tcp, _| {
        endless_answer(
            tcp,
            500,
            "{\"error\": {\"message\": \"overloaded, try later",
        )
    })
    .await;
    let a = ProviderConfig::new("a", ProviderKind::Openai, &up.base);
    let p = Providers::new(&[a], &quick_retry(1), &no_breaker()).unwrap();
    let err = chat_error(&p, "a").await;
    assert_eq!(gateway_status(&err).0.as_u16(), 502);
    assert!(err.to_string().contains("overloaded, try later"), "{err}");
}

#[tokio::test]
async fn slow_first_token_hits_ttfb_timeout_then_falls_back() {
    let mock = Mock::start(MockConfig::default()).await;
    let mut a = provider(
        "a",
        &mock,
        ProviderKind::Openai,
        Some("slow-first-token=20000"),
    );
    a.ttfb_timeout_ms = 200;
    let b = provider("b", &mock, ProviderKind::Openai, None);
    let p = Providers::new(&[a, b], &quick_retry(1), &no_breaker()).unwrap();
    let mut req = chat_request("hi");
    req.stream = true;
    // `a` would answer after 20 s: falling back to `b` is the timeout firing.
    let out = p.chat_stream(&routes(&["a", "b"]), &req).await.unwrap();
    assert_eq!((out.provider.as_str(), out.attempts), ("b", 2));
    let err = p.chat_stream(&routes(&["a"]), &req).await.unwrap_err();
    assert_eq!(gateway_status(&err).0.as_u16(), 504);
}

#[tokio::test]
async fn breaker_opens_after_threshold_and_is_skipped_instantly() {
    let mock = Mock::start(MockConfig::default()).await;
    let mut a = provider("a", &mock, ProviderKind::Openai, Some("status=500"));
    a.breaker = Some(BreakerConfig {
        failure_threshold: 3,
        cool_down_ms: 60_000,
        ..BreakerConfig::default()
    });
    let b = provider("b", &mock, ProviderKind::Openai, None);
    let p = Providers::new(&[a, b], &quick_retry(1), &BreakerConfig::default()).unwrap();
    for _ in 0..3 {
        assert_eq!(
            gateway_status(
                &p.chat(&routes(&["a"]), &chat_request("hi"))
                    .await
                    .unwrap_err()
            )
            .0
            .as_u16(),
            502
        );
    }
    assert_eq!(p.breaker_states()[0], ("a".to_string(), BreakerState::Open));
    assert_eq!(p.breaker_metrics()[0].1.opened, 1);

    let out = p
        .chat(&routes(&["a", "b"]), &chat_request("hi"))
        .await
        .unwrap();
    assert_eq!((out.provider.as_str(), out.attempts), ("b", 1));
    let err = chat_error(&p, "a").await;
    assert_eq!(gateway_status(&err).0.as_u16(), 503, "{err}");
    assert!(err.to_string().contains("circuit open"), "{err}");
    assert_eq!(
        mock.key_count("a").await,
        3,
        "no request reached the open upstream"
    );
}

/// The cool-down's timing is tested with the breaker's injected clock
/// (`provider/breaker.rs`). End to end, without a cool-down, the call after
/// the breaker opens is the half-open probe, and its success closes it.
#[tokio::test]
async fn half_open_probe_recovers() {
    let mock = Mock::start(MockConfig::default()).await;
    let mut a = provider(
        "a",
        &mock,
        ProviderKind::Openai,
        Some("status=502;fail-first=2"),
    );
    a.breaker = Some(BreakerConfig {
        failure_threshold: 2,
        cool_down_ms: 0,
        ..BreakerConfig::default()
    });
    let p = Providers::new(&[a], &quick_retry(1), &BreakerConfig::default()).unwrap();
    for _ in 0..2 {
        p.chat(&routes(&["a"]), &chat_request("hi"))
            .await
            .unwrap_err();
    }
    assert_eq!(p.breaker_metrics()[0].1.opened, 1);
    assert_eq!(p.breaker_states()[0].1, BreakerState::HalfOpen);
    let out = p.chat(&routes(&["a"]), &chat_request("hi")).await.unwrap();
    assert_eq!(out.provider, "a");
    assert_eq!(p.breaker_states()[0].1, BreakerState::Closed);
    let m = p.breaker_metrics()[0].1;
    assert_eq!(
        (m.opened, m.half_opened, m.closed, m.rejected),
        (1, 1, 1, 0)
    );
    assert_eq!(mock.key_count("a").await, 3);
}

#[tokio::test]
async fn retry_budget_caps_retries() {
    let mock = Mock::start(MockConfig::default()).await;
    let a = provider("a", &mock, ProviderKind::Openai, Some("status=503"));
    let retry = RetryConfig {
        max_attempts: 5,
        initial_backoff_ms: 1,
        max_backoff_ms: 2,
        budget_ratio: 0.1,
        budget_min_per_sec: 0,
        budget_window_ms: 10_000,
        ..RetryConfig::default()
    };
    let p = Providers::new(&[a], &retry, &no_breaker()).unwrap();
    for _ in 0..20 {
        p.chat(&routes(&["a"]), &chat_request("hi"))
            .await
            .unwrap_err();
    }
    // Without a budget: 20 × 5 = 100 requests. With 10 %: 20 + 2.
    assert_eq!(mock.key_count("a").await, 22);
}

#[tokio::test]
async fn client_errors_are_never_retried_nor_failed_over() {
    let mock = Mock::start(MockConfig {
        api_key: Some("secret".into()),
        ..MockConfig::default()
    })
    .await;
    let mut a = provider("a", &mock, ProviderKind::Openai, Some("status=400"));
    a.api_key = Some("secret".into());
    let mut b = provider("b", &mock, ProviderKind::Openai, None);
    b.api_key = Some("secret".into());
    let nokey = provider("nokey", &mock, ProviderKind::Openai, None);
    let p = Providers::new(&[a, b, nokey], &quick_retry(3), &BreakerConfig::default()).unwrap();
    let err = p
        .chat(&routes(&["a", "b"]), &chat_request("hi"))
        .await
        .unwrap_err();
    assert_eq!(gateway_status(&err).0.as_u16(), 400);
    assert_eq!(gateway_status(&err).1, "invalid_request_error");
    assert!(err.to_string().contains("injected fault"));
    assert_eq!(
        (mock.key_count("a").await, mock.key_count("b").await),
        (1, 0)
    );

    let err = p
        .chat(&routes(&["nokey", "b"]), &chat_request("hi"))
        .await
        .unwrap_err();
    assert_eq!(gateway_status(&err).0.as_u16(), 401);
    assert!(err.to_string().contains("invalid api key"), "{err}");
    assert!(
        p.chat(&routes(&["b"]), &chat_request("hi")).await.is_ok(),
        "the key is sent"
    );
    // Client errors say nothing about health: the breaker stays closed.
    assert!(
        p.breaker_states()
            .iter()
            .all(|(_, s)| *s == BreakerState::Closed)
    );
}

#[tokio::test]
async fn unknown_fields_and_upstream_model_are_sent() {
    let mock = Mock::start(MockConfig::default()).await;
    let mut a = provider("a", &mock, ProviderKind::Openai, None);
    a.headers.insert("x-mock-echo".into(), "1".into());
    let p = Providers::new(&[a], &quick_retry(1), &no_breaker()).unwrap();
    let mut req = chat_request("hi");
    req.extra.insert("seed".into(), json!(7));
    req.extra
        .insert("response_format".into(), json!({"type": "json_object"}));
    let out = p
        .chat(&[RouteTarget::new("a", "upstream-model")], &req)
        .await
        .unwrap();
    let sent: Value = serde_json::from_str(&out.value.choices[0].message.content_text()).unwrap();
    assert_eq!(sent["model"], "upstream-model");
    assert_eq!(sent["seed"], 7);
    assert_eq!(sent["response_format"]["type"], "json_object");
}

#[tokio::test]
async fn embeddings_are_deterministic_and_skip_anthropic_routes() {
    let mock = Mock::start(MockConfig::default()).await;
    let p = Providers::new(
        &[
            provider("claude", &mock, ProviderKind::Anthropic, None),
            provider("a", &mock, ProviderKind::Openai, None),
        ],
        &quick_retry(1),
        &no_breaker(),
    )
    .unwrap();
    let req: EmbeddingsRequest = serde_json::from_value(json!({
        "model": "e", "input": ["the cat sat on the mat", "the cat sat on a mat", "stock prices fell"]
    }))
    .unwrap();
    let out = p.embeddings(&routes(&["claude", "a"]), &req).await.unwrap();
    assert_eq!(out.provider, "a");
    let vecs: Vec<Vec<f64>> = out
        .value
        .data
        .iter()
        .map(|e| serde_json::from_value(e.embedding.clone()).unwrap())
        .collect();
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    assert_eq!(vecs[0].len(), 256);
    assert!(dot(&vecs[0], &vecs[1]) > dot(&vecs[0], &vecs[2]) + 0.3);
    let again = p.embeddings(&routes(&["a"]), &req).await.unwrap();
    assert_eq!(again.value.data[0].embedding, out.value.data[0].embedding);
    let err = p.embeddings(&routes(&["claude"]), &req).await.unwrap_err();
    assert_eq!(gateway_status(&err).0.as_u16(), 503);
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let mock = Mock::start(MockConfig::default()).await;
    let at = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    let fault = format!("status=429;retry-after={at};fail-first=1");
    let a = provider("a", &mock, ProviderKind::Openai, Some(&fault));
    let p = Providers::new(&[a], &quick_retry(3), &no_breaker()).unwrap();
    let t = Instant::now();
    let out = p.chat(&routes(&["a"]), &chat_request("hi")).await.unwrap();
    assert_eq!(out.attempts, 2);
    // The date has whole seconds: at least one of the two is waited.
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
}
