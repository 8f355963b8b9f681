//! One extra loopback hop and nothing else: the floor Sluice's added latency
//! is compared with (bench/load targets `proxy-hyper` and `proxy-reqwest`;
//! bench/README.md, "One extra hop: the floor").
//!
//! Built from the pieces of Sluice's thread-per-core serving
//! (host/src/server/threads.rs): one current-thread tokio runtime per core,
//! each accepting on its own `SO_REUSEPORT` socket, serving HTTP/1.1 with
//! hyper and calling the upstream with a client of its own, so a request
//! never crosses threads. Method, path and body go upstream; the upstream's
//! status, content type and body come back. Bodies are read whole, as Sluice
//! reads a non-streamed request and answer. No plugins, no JSON.
//!
//! ```text
//! sluice-bench-proxy --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000 [--client hyper|reqwest] [--threads N]
//! ```

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::http::uri::Authority;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};

#[derive(Clone)]
struct Args {
    listen: SocketAddr,
    upstream: Authority,
    reqwest: bool,
    threads: usize,
}

fn args() -> Result<Args> {
    let (mut listen, mut upstream, mut reqwest, mut threads) = (None, None, false, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse()?),
            "--upstream" => upstream = Some(value.parse()?),
            "--client" if value == "hyper" || value == "reqwest" => reqwest = value == "reqwest",
            "--threads" => threads = Some(value.parse()?),
            _ => bail!(
                "usage: --listen ADDR --upstream HOST:PORT [--client hyper|reqwest] [--threads N]"
            ),
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Args {
        listen: listen.context("--listen ADDR")?,
        upstream: upstream.context("--upstream HOST:PORT")?,
        reqwest,
        threads: threads.unwrap_or(cores).max(1),
    })
}

/// A serving thread's upstream client.
enum Upstream {
    /// hyper-util's pooled ("legacy") client on a plain `HttpConnector`.
    Hyper(Box<Client<HttpConnector, Full<Bytes>>>, Authority),
    /// reqwest built as the gateway builds it (host/src/provider/mod.rs,
    /// `http_client`), with the gateway's features; the base URL.
    Reqwest(reqwest::Client, String),
}

impl Upstream {
    fn new(args: &Args) -> Result<Self> {
        if args.reqwest {
            let client = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(256)
                .tcp_nodelay(true)
                .build()?;
            return Ok(Self::Reqwest(client, format!("http://{}", args.upstream)));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self::Hyper(Box::new(client), args.upstream.clone()))
    }
}

thread_local! {
    /// The last upstream URL: the gateway parses its upstream URLs once and
    /// clones one per request, so the reqwest path must not parse either.
    static URL: RefCell<Option<(String, reqwest::Url)>> = const { RefCell::new(None) };
}

fn reqwest_url(base: &str, path: &str) -> Result<reqwest::Url> {
    URL.with_borrow_mut(|last| {
        if let Some((p, url)) = last
            && p == path
        {
            return Ok(url.clone());
        }
        let url = reqwest::Url::parse(&format!("{base}{path}"))?;
        *last = Some((path.to_owned(), url.clone()));
        Ok(url)
    })
}

async fn forward(up: &Upstream, req: Request<Incoming>) -> Result<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let content_type = parts.headers.get(CONTENT_TYPE).cloned();
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| "/".parse().unwrap());
    let (status, answer_type, answer) = match up {
        Upstream::Hyper(client, authority) => {
            let uri = Uri::builder()
                .scheme("http")
                .authority(authority.clone())
                .path_and_query(path);
            let mut req = Request::builder().method(parts.method).uri(uri.build()?);
            if let Some(ct) = content_type {
                req = req.header(CONTENT_TYPE, ct);
            }
            let (head, body) = client
                .request(req.body(Full::new(body))?)
                .await?
                .into_parts();
            (
                head.status,
                head.headers.get(CONTENT_TYPE).cloned(),
                body.collect().await?.to_bytes(),
            )
        }
        Upstream::Reqwest(client, base) => {
            let mut req = client
                .request(parts.method, reqwest_url(base, path.as_str())?)
                .body(body);
            if let Some(ct) = content_type {
                req = req.header(CONTENT_TYPE, ct);
            }
            let res = req.send().await?;
            let (status, ct) = (res.status(), res.headers().get(CONTENT_TYPE).cloned());
            (status, ct, res.bytes().await?)
        }
    };
    let mut res = Response::new(Full::new(answer));
    *res.status_mut() = status;
    if let Some(ct) = answer_type {
        res.headers_mut().insert(CONTENT_TYPE, ct);
    }
    Ok(res)
}

/// A failed upstream call is a 502 with the error, never a dropped connection.
async fn serve(
    up: Arc<Upstream>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(forward(&up, req).await.unwrap_or_else(|e| {
        let mut res = Response::new(Full::new(Bytes::from(format!("upstream: {e:#}\n"))));
        *res.status_mut() = StatusCode::BAD_GATEWAY;
        res
    }))
}

fn listener(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// One serving thread: a current-thread runtime, its own client, its own socket.
fn serve_thread(socket: std::net::TcpListener, args: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let up = Arc::new(Upstream::new(args)?);
        let listener = tokio::net::TcpListener::from_std(socket)?;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new());
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                // Out of descriptors, a connection reset before accept: keep serving.
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            // As the gateway does: a small write must not wait for an ACK.
            let _ = tcp.set_nodelay(true);
            let up = up.clone();
            let svc = hyper::service::service_fn(move |req| serve(up.clone(), req));
            let conn = http.serve_connection(TokioIo::new(tcp), svc);
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    })
}

fn main() -> Result<()> {
    let args = args()?;
    let sockets: Vec<_> = (0..args.threads)
        .map(|_| listener(args.listen))
        .collect::<Result<_>>()?;
    let client = if args.reqwest { "reqwest" } else { "hyper" };
    eprintln!(
        "listening on {} with {} threads, upstream {} via {client}",
        args.listen, args.threads, args.upstream
    );
    let mut threads = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let args = args.clone();
        let name = format!("proxy-{i}");
        threads.push(
            std::thread::Builder::new()
                .name(name)
                .spawn(move || serve_thread(socket, &args))?,
        );
    }
    for t in threads {
        t.join()
            .map_err(|_| anyhow!("a serving thread panicked"))??;
    }
    Ok(())
}
