//! Wire-format costs on the gateway's hot path, without plugins:
//!
//! - `request_1kb`: a ~1 KB OpenAI chat request (tools array, unknown
//!   fields) parsed into `ChatRequest` the way the server does
//!   (`server::extract::parse`, i.e. `serde_path_to_error`) and serialised
//!   back as it is forwarded upstream (`serde_json::to_vec`, what reqwest's
//!   `.json()` does), beside a plain `serde_json::Value` round trip.
//! - `sse_relay_200`: a 200-chunk upstream stream cut into 1.5 KB network
//!   reads, through `provider::sse::SseParser`, each `data:` parsed into a
//!   `ChatChunk` and written back as `data: {json}\n\n` for the client.
//! - `stream_window_200`: the same 200 deltas through the pipeline's
//!   sentence windowing (`pipeline::stream::Window`), and through the whole
//!   `pipeline::stream::guarded` stream with a pass-through checker.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use serde_json::Value;
use sluice::config::StreamWindowConfig;
use sluice::openai::{ChatChunk, ChatRequest};
use sluice::pipeline::StreamEvent;
use sluice::pipeline::stream::{Window, WindowChecker, guarded};
use sluice::plugin::{OutputContext, Rejection};
use sluice::provider::sse::{SseEvent, SseParser};

/// Number of `chat.completion.chunk` events in the benchmark stream.
const EVENTS: usize = 200;
/// Size of one upstream network read.
const NET_CHUNK: usize = 1500;

fn request_body() -> Vec<u8> {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for an online bookshop. Answer briefly and cite order numbers when you use them."},
            {"role": "user", "content": "Where is my order 4417? It was supposed to arrive on Tuesday.", "name": "jane"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9f2", "type": "function", "function": {"name": "get_order_status", "arguments": "{\"order_id\":\"4417\"}"}}]},
            {"role": "tool", "tool_call_id": "call_9f2", "content": "{\"status\":\"in_transit\",\"carrier\":\"DHL\",\"eta\":\"2026-11-28\"}"},
            {"role": "user", "content": [{"type": "text", "text": "And can I still change the delivery address?"}]}
        ],
        "tools": [
            {"type": "function", "function": {"name": "get_order_status", "description": "Look up the shipping status of an order.", "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}},
            {"type": "function", "function": {"name": "change_address", "description": "Change the delivery address of an order that has not shipped.", "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}, "address": {"type": "string"}}, "required": ["order_id", "address"]}}}
        ],
        "tool_choice": "auto",
        "temperature": 0.2,
        "max_tokens": 512,
        "response_format": {"type": "text"},
        "seed": 42,
        "user": "customer-8812",
        "metadata": {"tenant": "bookshop", "trace": "a1b2c3d4"}
    });
    serde_json::to_vec(&body).unwrap()
}

/// The upstream's SSE body: a role chunk, content chunks of a few tokens
/// each, a finish chunk (200 events in all), then `data: [DONE]`.
fn upstream_stream() -> (Vec<u8>, Vec<String>) {
    let words: Vec<&str> = "Your order 4417 left our warehouse on Monday and is now with DHL. \
        The carrier expects to deliver it on Friday, November 28. \
        Because it has already shipped, the address can no longer be changed here! \
        You can ask DHL to redirect the parcel to a pickup point, or refuse it and we will refund you. \
        Is there anything else I can help with?\n"
        .split_inclusive(' ')
        .collect();
    let head = r#"{"id":"chatcmpl-AbCdEf0123456789","object":"chat.completion.chunk","created":1795740000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":"#;
    let mut body = String::new();
    let mut deltas = Vec::new();
    let mut w = 0;
    for i in 0..EVENTS {
        let (delta, finish) = if i == 0 {
            (r#"{"role":"assistant","content":""}"#.to_string(), "null")
        } else if i == EVENTS - 1 {
            ("{}".to_string(), r#""stop""#)
        } else {
            // Two or three words per chunk, as tokenisers emit them.
            let n = 2 + i % 2;
            let text: String = (0..n).map(|k| words[(w + k) % words.len()]).collect();
            w += n;
            deltas.push(text.clone());
            (serde_json::json!({ "content": text }).to_string(), "null")
        };
        body.push_str("data: ");
        body.push_str(head);
        body.push_str(&delta);
        body.push_str(r#","logprobs":null,"finish_reason":"#);
        body.push_str(finish);
        body.push_str("}]}\n\n");
    }
    body.push_str("data: [DONE]\n\n");
    (body.into_bytes(), deltas)
}

/// What `provider::openai` does with one `data:` payload.
fn parse_chunk_as_gateway(data: &str) -> ChatChunk {
    sluice::provider::openai::parse_chunk("bench", data).unwrap()
}

/// What it did before 2026-11-27: probe as a `Value` for an `error`
/// object, then parse as a `ChatChunk` (kept to show the difference).
fn parse_chunk_value_probe_first(data: &str) -> ChatChunk {
    if let Ok(v) = serde_json::from_str::<Value>(data)
        && v.get("error").is_some()
    {
        panic!("error event");
    }
    serde_json::from_str(data).unwrap()
}

/// The client frame, as `server::chat::sse_bytes` writes it.
fn frame(chunk: &ChatChunk) -> Bytes {
    let json = serde_json::to_string(chunk).unwrap();
    Bytes::from(format!("data: {json}\n\n"))
}

/// Upstream bytes in, client frames out. Returns the bytes written.
fn relay(net: &[&[u8]], parse: fn(&str) -> ChatChunk) -> usize {
    let mut parser = SseParser::new();
    let mut events: Vec<SseEvent> = Vec::new();
    let mut sent = 0;
    for piece in net {
        parser.push(piece, &mut events).unwrap();
        for ev in events.drain(..) {
            let out = if ev.data == "[DONE]" {
                Bytes::from_static(b"data: [DONE]\n\n")
            } else {
                frame(&parse(&ev.data))
            };
            sent += black_box(out).len();
        }
    }
    parser.finish().unwrap();
    sent
}

struct Pass;

impl WindowChecker for Pass {
    async fn check(
        &mut self,
        text: &str,
        _: &OutputContext,
    ) -> Result<String, (String, Rejection)> {
        Ok(text.to_string())
    }
}

fn bench_request(c: &mut Criterion) {
    let body = request_body();
    let req: ChatRequest = sluice::server::extract::parse(&body).unwrap();
    assert!(req.extra.contains_key("tools") && req.extra.contains_key("metadata"));
    let value: Value = serde_json::from_slice(&body).unwrap();
    // Everything survives the typed round trip, temperature included.
    assert_eq!(serde_json::to_value(&req).unwrap(), value);
    eprintln!("request_1kb: {} bytes", body.len());

    let mut g = c.benchmark_group("request_1kb");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("chat_request_parse", |b| {
        b.iter(|| sluice::server::extract::parse::<ChatRequest>(black_box(&body)).is_ok())
    });
    // Same without `serde_path_to_error`, to separate its cost from serde's.
    g.bench_function("chat_request_parse_plain_serde", |b| {
        b.iter(|| serde_json::from_slice::<ChatRequest>(black_box(&body)).unwrap())
    });
    g.bench_function("chat_request_serialize", |b| {
        b.iter(|| serde_json::to_vec(black_box(&req)).unwrap())
    });
    g.bench_function("chat_request_round_trip", |b| {
        b.iter(|| {
            let r: ChatRequest = sluice::server::extract::parse(black_box(&body)).unwrap();
            serde_json::to_vec(&r).unwrap()
        })
    });
    g.bench_function("value_parse", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&body)).unwrap())
    });
    g.bench_function("value_serialize", |b| {
        b.iter(|| serde_json::to_vec(black_box(&value)).unwrap())
    });
    g.bench_function("value_round_trip", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&body)).unwrap();
            serde_json::to_vec(&v).unwrap()
        })
    });
    g.finish();
}

fn bench_sse(c: &mut Criterion) {
    let (body, _) = upstream_stream();
    let net: Vec<&[u8]> = body.chunks(NET_CHUNK).collect();
    let mut check = Vec::new();
    let mut p = SseParser::new();
    for piece in &net {
        p.push(piece, &mut check).unwrap();
    }
    assert_eq!(check.len(), EVENTS + 1);

    let mut g = c.benchmark_group("sse_relay_200");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("parse_events", |b| {
        b.iter(|| {
            let mut parser = SseParser::new();
            let mut events = Vec::new();
            for piece in black_box(&net) {
                parser.push(piece, &mut events).unwrap();
            }
            events
        })
    });
    g.bench_function("relay_as_gateway", |b| {
        b.iter(|| relay(black_box(&net), parse_chunk_as_gateway))
    });
    g.bench_function("relay_value_probe_first", |b| {
        b.iter(|| relay(black_box(&net), parse_chunk_value_probe_first))
    });
    g.finish();
    eprintln!(
        "sse_relay_200: {} upstream bytes in {} reads, {} events",
        body.len(),
        net.len(),
        EVENTS
    );
}

fn bench_window(c: &mut Criterion) {
    let (body, deltas) = upstream_stream();
    let cfg = StreamWindowConfig::default();
    let mut g = c.benchmark_group("stream_window_200");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function("window_push_sentence", |b| {
        b.iter(|| {
            let mut w = Window::new(cfg);
            let mut closed = 0;
            for d in black_box(&deltas) {
                closed += w.push(d).map_or(0, |t| black_box(t).len());
            }
            closed + w.take_rest().len()
        })
    });

    let mut chunks: Vec<ChatChunk> = Vec::new();
    let mut p = SseParser::new();
    let mut events = Vec::new();
    p.push(&body, &mut events).unwrap();
    for ev in events.iter().filter(|e| e.data != "[DONE]") {
        chunks.push(serde_json::from_str(&ev.data).unwrap());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    g.bench_function("guarded_pass_through", |b| {
        b.iter_batched(
            || chunks.clone(),
            |chunks| {
                let upstream = futures_util::stream::iter(chunks.into_iter().map(Ok)).boxed();
                let s = guarded(upstream, Pass, cfg, false, ());
                rt.block_on(s.fold(0usize, |n, e| async move {
                    n + matches!(black_box(e), StreamEvent::Chunk(_)) as usize
                }))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4));
    targets = bench_request, bench_sse, bench_window
}
criterion_main!(benches);
