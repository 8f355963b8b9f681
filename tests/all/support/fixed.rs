//! A minimal HTTP/1.1 server over real sockets that answers every request
//! with what a closure returns and records what it was sent: an upstream
//! with exact usage figures (cached and reasoning tokens the mock does not
//! report, or no usage at all), and a receiver for alert webhooks.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names lowercased, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, content type, body.
pub type Reply = (u16, &'static str, String);

type Respond = dyn Fn(&Received) -> Reply + Send + Sync;

/// The server; stops when dropped.
pub struct Fixed {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    received: Arc<(Mutex<Vec<Received>>, Notify)>,
    task: JoinHandle<()>,
}

impl Drop for Fixed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fixed {
    pub async fn start(respond: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Fixed {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let received = Arc::new((Mutex::new(Vec::new()), Notify::new()));
        let respond: Arc<Respond> = Arc::new(respond);
        let log = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, respond.clone(), log.clone()));
            }
        });
        Fixed {
            addr,
            received,
            task,
        }
    }

    /// `http://ADDR/v1`, a provider's `base-url`.
    pub fn base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.0.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (`timeout` only bounds a hang).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let wait = async {
            loop {
                let notified = self.received.1.notified();
                if self.received.0.lock().unwrap().len() >= n {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.received()
    }
}

async fn serve(
    mut tcp: TcpStream,
    respond: Arc<Respond>,
    log: Arc<(Mutex<Vec<Received>>, Notify)>,
) {
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut tcp, &mut buf).await else {
            return;
        };
        let (status, content_type, body) = respond(&req);
        {
            log.0.lock().unwrap().push(req);
        }
        log.1.notify_waiters();
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if tcp.write_all(head.as_bytes()).await.is_err()
            || tcp.write_all(body.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

/// One request (head and a `content-length` body) from `tcp`; None at EOF.
async fn read_request(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Received> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
    buf.drain(..head_end + len);
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}
