//! Hand-rolled peers over raw TCP: upstreams that misbehave (trickle,
//! hang, echo, speak garbage) and clients that do (half-sent heads).

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// An upstream on `127.0.0.1:0`; stops accepting when dropped.
pub struct RawUpstream {
    /// `http://127.0.0.1:PORT/v1`, a provider `base-url`.
    pub base: String,
    pub addr: String,
    task: JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// For each connection: read one request (head and `Content-Length` body),
/// then hand the socket and the request's text to `answer`.
pub async fn upstream<F, Fut>(answer: F) -> RawUpstream
where
    F: Fn(TcpStream, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let answer = Arc::new(answer);
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                if let Some(req) = read_request(&mut tcp).await {
                    answer(tcp, req).await;
                }
            });
        }
    });
    RawUpstream {
        base: format!("http://{addr}/v1"),
        addr,
        task,
    }
}

/// One HTTP/1.1 request as text (head and body), or `None` if the peer
/// closed first.
pub async fn read_request(tcp: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The head of an event-stream answer (the body ends when the socket closes).
pub const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

/// One complete `chat.completion.chunk` event carrying `text`.
pub fn chunk_event(text: &str) -> Vec<u8> {
    let text = serde_json::to_string(text).unwrap();
    format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{text}}},\"finish_reason\":null}}]}}\n\n"
    )
    .into_bytes()
}

/// A complete JSON answer with `status`.
pub async fn answer_json(tcp: &mut TcpStream, status: u16, body: &str) {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tcp.write_all(head.as_bytes()).await;
    let _ = tcp.write_all(body.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// A connection to `addr` that sends half a request head and stops, or
/// `None` if the server would not take it.
pub async fn half_open(addr: &str) -> Option<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    tcp.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n",
    )
    .await
    .ok()?;
    Some(tcp)
}

/// Whether the server closed `tcp` (EOF or reset) rather than leaving it
/// open; reads whatever it sent first.
pub async fn closed_by_peer(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}
