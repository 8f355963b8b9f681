//! How upstream connections leave the gateway: through the proxy that
//! `HTTP_PROXY` / `HTTPS_PROXY` / `ALL_PROXY` name unless `NO_PROXY`
//! exempts the host (a minimal forward proxy on a loopback port, the mock
//! upstream behind it), and never along a redirect.
//!
//! The environment is process-wide and read once, so the in-process tests
//! give `Providers` explicit values; the environment itself is tested on the
//! real binary, a child process with its own, in both serving modes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use sluice::mock::MockConfig;
use sluice::provider::{ProviderConfig, ProviderKind, Providers, Proxies, UpstreamError};
use sluice::server::error::upstream_status;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::http::chunk_text;
use crate::support::process::{Sluice, message};
use crate::support::raw::{self, answer_json, read_request};
use crate::support::upstream::{Mock, chat_request, no_breaker, provider, quick_retry, routes};

/// `gw:s3cret` as Basic credentials.
const PROXY_AUTH: &str = "proxy-authorization: basic z3c6cznjcmv0";

/// A forward proxy on `127.0.0.1:0`: an absolute-form request is passed on
/// to its target in origin form (one request per connection); a `CONNECT`
/// is accepted and then answered with plain text, so TLS inside the tunnel
/// fails. Each request head it gets is kept, lowercased.
struct TestProxy {
    addr: String,
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProxy {
    async fn start() -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(forward(tcp, seen.clone()));
            }
        });
        TestProxy { addr, heads, task }
    }

    /// `http://gw:s3cret@ADDR`, a proxy variable's value.
    fn url(&self) -> String {
        format!("http://gw:s3cret@{}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn forward(mut client: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let Some(req) = read_request(&mut client).await else {
        return;
    };
    let (head, body) = req.split_once("\r\n\r\n").unwrap_or((&req, ""));
    heads.lock().unwrap().push(head.to_lowercase());
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        let _ = client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await;
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        return;
    }
    let Some(rest) = target.strip_prefix("http://") else {
        answer_json(&mut client, 400, r#"{"error":"not absolute-form"}"#).await;
        return;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut upstream) = TcpStream::connect(authority).await else {
        answer_json(&mut client, 502, r#"{"error":"proxy cannot connect"}"#).await;
        return;
    };
    let mut out = format!("{method} {path} HTTP/1.1\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name != "proxy-authorization" && name != "connection" {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("connection: close\r\n\r\n");
    out.push_str(body);
    if upstream.write_all(out.as_bytes()).await.is_ok() {
        let _ = tokio::io::copy(&mut upstream, &mut client).await;
    }
    let _ = client.shutdown().await;
}

#[tokio::test]
async fn http_upstreams_go_through_the_proxy_except_no_proxy_hosts() {
    let mock = Mock::start(MockConfig::default()).await;
    let proxy = TestProxy::start().await;
    let via = provider("via", &mock, ProviderKind::Openai, None);
    let port = mock.addr.rsplit(':').next().unwrap();
    let mut direct = ProviderConfig::new(
        "direct",
        ProviderKind::Openai,
        &format!("http://localhost:{port}/v1"),
    );
    direct.headers.insert("x-mock-key".into(), "direct".into());
    let proxies = Proxies::new("", &proxy.url(), "", "localhost");
    let p =
        Providers::with_proxies(&[via, direct], &quick_retry(1), &no_breaker(), proxies).unwrap();

    let out = p
        .chat(&routes(&["via"]), &chat_request("REPLY: proxied"))
        .await
        .unwrap();
    assert_eq!(out.value.choices[0].message.content_text(), "proxied");
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0].starts_with(&format!(
            "post http://{}/v1/chat/completions http/1.1",
            mock.addr
        )),
        "absolute form to the upstream: {}",
        heads[0]
    );
    assert!(heads[0].contains(PROXY_AUTH), "{}", heads[0]);
    assert_eq!(mock.key_count("via").await, 1);

    // A stream takes the same way.
    let mut req = chat_request("REPLY: streamed");
    req.stream = true;
    let stream = p.chat_stream(&routes(&["via"]), &req).await.unwrap().value;
    let chunks: Vec<_> = stream.map(Result::unwrap).collect().await;
    assert_eq!(chunk_text(&chunks), "streamed");
    assert_eq!(proxy.heads().len(), 2);

    // `localhost` is in NO_PROXY: straight to the upstream.
    p.chat(&routes(&["direct"]), &chat_request("hi"))
        .await
        .unwrap();
    assert_eq!(mock.key_count("direct").await, 1);
    assert_eq!(proxy.heads().len(), 2, "the proxy saw nothing more");
}

#[tokio::test]
async fn https_upstreams_tunnel_through_connect() {
    let proxy = TestProxy::start().await;
    // `.invalid` never resolves: only the proxy can have been asked for it.
    let mut cfg = ProviderConfig::new(
        "tls",
        ProviderKind::Openai,
        "https://llm.example.invalid/v1",
    );
    cfg.api_key = Some("sk-tunnel-0123456789".into());
    let proxies = Proxies::new(&proxy.url(), "", "", "");
    let p = Providers::with_proxies(&[cfg], &quick_retry(1), &no_breaker(), proxies).unwrap();
    let err = p
        .chat(&routes(&["tls"]), &chat_request("hi"))
        .await
        .unwrap_err();
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        heads[0].starts_with("connect llm.example.invalid:443 http/1.1"),
        "{}",
        heads[0]
    );
    assert!(heads[0].contains(PROXY_AUTH), "{}", heads[0]);
    assert!(
        !heads[0].contains("sk-tunnel"),
        "the API key stays inside the tunnel"
    );
    // TLS inside the tunnel met plain text: a connection failure (502).
    assert!(
        matches!(err.error, UpstreamError::Connect { .. }),
        "{:?}",
        err.error
    );
    assert_eq!(upstream_status(&err).0.as_u16(), 502);
}

/// An upstream that redirects is an upstream failure: the gateway does not
/// send the prompt and the key to `Location`.
#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere_hits = Arc::new(Mutex::new(0u32));
    let hits = elsewhere_hits.clone();
    let elsewhere = raw::upstream(move |mut tcp, _| {
        *hits.lock().unwrap() += 1;
        async move { answer_json(&mut tcp, 200, "{}").await }
    })
    .await;
    let target = format!("http://{}/v1/chat/completions", elsewhere.addr);
    let location = target.clone();
    let redirecting = raw::upstream(move |mut tcp, _| {
        let target = &location;
        let head = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        async move {
            let _ = tcp.write_all(head.as_bytes()).await;
        }
    })
    .await;
    let config = format!(
        r#"
[[providers]]
name = "moved"
base-url = "{}"
api-key = "sk-redirect-0123456789"
retry = {{ max-attempts = 1 }}

[models.moved]
routes = [{{ provider = "moved", model = "m" }}]
"#,
        redirecting.base
    );
    let sluice = Sluice::start(&config, None).await;
    let res = reqwest::Client::new()
        .post(sluice.v1("chat/completions"))
        .json(&json!({"model": "moved", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "upstream_error", "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("moved failed (307 Temporary Redirect)") && msg.contains("redirect"),
        "{msg}"
    );
    assert!(
        !msg.contains("://") && !msg.contains("127.0.0.1") && !msg.contains("sk-redirect"),
        "no URL, no key: {msg}"
    );
    assert_eq!(
        *elsewhere_hits.lock().unwrap(),
        0,
        "Location was not followed"
    );
    let logged = sluice
        .wait_log(Duration::from_secs(10), |v| {
            message(v).starts_with("upstream redirected")
        })
        .await
        .unwrap_or_else(|| panic!("no log line for the redirect:\n{}", sluice.log_text()));
    assert_eq!(logged["fields"]["location"].as_str(), Some(&*target));
}

/// The real binary reads `HTTP_PROXY` (lower- or upper-case) and `NO_PROXY`
/// from its environment, in both serving modes (thread-per-core builds a
/// client per serving thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_takes_proxies_from_its_environment() {
    let mock = Mock::start(MockConfig::default()).await;
    let port = mock.addr.rsplit(':').next().unwrap().to_string();
    for (runtime, var) in [
        ("multi-thread", "HTTP_PROXY"),
        ("thread-per-core", "http_proxy"),
    ] {
        let proxy = TestProxy::start().await;
        let config = format!(
            r#"
[server]
runtime = "{runtime}"
threads = 2

[[providers]]
name = "via"
base-url = "http://127.0.0.1:{port}/v1"
retry = {{ max-attempts = 1 }}

[[providers]]
name = "direct"
base-url = "http://localhost:{port}/v1"
retry = {{ max-attempts = 1 }}

[models.via]
routes = [{{ provider = "via", model = "m" }}]

[models.direct]
routes = [{{ provider = "direct", model = "m" }}]
"#
        );
        let env = [(var, proxy.url()), ("NO_PROXY", "localhost".to_string())];
        let sluice = Sluice::start_with_env(&config, None, &env).await;
        let url = &sluice.url;
        let client = reqwest::Client::new();
        for (model, through_proxy) in [("via", 1), ("direct", 1), ("via", 2)] {
            let res = client
                .post(format!("{url}/v1/chat/completions"))
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "REPLY: ok"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{runtime} {model}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["choices"][0]["message"]["content"], "ok");
            assert_eq!(
                proxy.heads().len(),
                through_proxy,
                "{runtime}: after {model}"
            );
        }
        assert!(proxy.heads()[0].contains(PROXY_AUTH), "{runtime}");
    }
}
