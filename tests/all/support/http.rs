//! Reading answers: OpenAI-shaped errors, SSE events and the text a stream
//! carried (as JSON from the gateway, or as typed chunks from `Providers`).

#![allow(dead_code, reason = "each test module uses a different subset")]

use reqwest::StatusCode;
use serde_json::Value;
use sluice::openai::ChatChunk;

/// Asserts an OpenAI-shaped error answer with `status` (request id,
/// JSON content type, every field of `error`) and returns its `error` object.
pub async fn error_of(res: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(res.status(), status);
    assert!(
        res.headers()["x-sluice-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_"),
        "errors carry the request id too"
    );
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = res.json().await.unwrap();
    let err = body["error"].clone();
    for key in ["message", "type", "param", "code"] {
        assert!(err.get(key).is_some(), "error lacks `{key}`: {body}");
    }
    err
}

/// Events of an SSE body: each `data:` payload, `[DONE]` included.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|frame| frame.trim().strip_prefix("data:"))
        .map(|d| d.trim().to_string())
        .collect()
}

/// The non-empty `delta.content` of each parsed SSE event, in order: the
/// pieces the client received.
pub fn streamed_pieces(events: &[String]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.as_str() != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// The text of parsed SSE events: [`streamed_pieces`] joined.
pub fn streamed_text(events: &[String]) -> String {
    streamed_pieces(events).concat()
}

/// The text of typed stream chunks, every choice's `delta.content` joined.
pub fn chunk_text(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| c.choices.iter().filter_map(|ch| ch.delta.content.clone()))
        .collect()
}

/// Sends `method url` with `token` as bearer and returns the JSON body: the
/// admin API's reads and purges, asserted by the caller.
pub async fn admin_json(method: reqwest::Method, url: &str, token: &str) -> Value {
    admin_send(method, url, token).await.json().await.unwrap()
}

/// `GET url` with `token` as bearer, the body as text (a `/metrics` page, a
/// listing checked for what it must not show).
pub async fn admin_text(url: &str, token: &str) -> String {
    admin_send(reqwest::Method::GET, url, token)
        .await
        .text()
        .await
        .unwrap()
}

async fn admin_send(method: reqwest::Method, url: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A response body still being read.
pub type Body = futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>;

/// Posts the streamed chat request `body` to `url` through `client`, asserts
/// a 200, and waits for the first event: that chunk and the rest of the body.
pub async fn open_stream(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> (bytes::Bytes, Body) {
    use futures_util::StreamExt as _;
    let res = client.post(url).json(body).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream().boxed();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    (first, body)
}

/// The rest of a body as text, however it ends.
pub async fn rest(mut body: Body) -> String {
    use futures_util::StreamExt as _;
    let mut out = Vec::new();
    while let Some(Ok(b)) = body.next().await {
        out.extend_from_slice(&b);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Asserts that every stream ended with `[DONE]` after text ending in `tail`:
/// none was cut (by a shutdown, say).
pub fn assert_streams_finished(texts: &[String], tail: &str) {
    for (i, text) in texts.iter().enumerate() {
        let events = sse_data(text);
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "stream {i} was cut: {text}"
        );
        assert!(streamed_text(&events).ends_with(tail), "{text}");
    }
}
