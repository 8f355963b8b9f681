//! The HTTP client upstream calls go through: hyper-util's pooled client on
//! a connector that speaks TLS (rustls, webpki roots, ALPN `h2` and
//! `http/1.1`) to `https` upstreams, plain TCP to `http` ones, and goes
//! through the proxy the environment names (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `ALL_PROXY`, minus `NO_PROXY`, either case).
//!
//! Not reqwest: its per-request layers (a redirect policy that formats and
//! reparses the URL, a `Url` → `Uri` reparse, a header map clone, a retry
//! layer's request clone) cost ~22 µs CPU per request at 1000 rps in the
//! floor measurement (bench/README.md, "One extra hop: the floor"). What
//! reqwest gave implicitly and the gateway keeps is here: proxies from the
//! environment, TCP keepalive, the connect timeout, the pool settings.
//! Redirects are not followed (`http::send` says why).

use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::header::HeaderValue;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower_service::Service;

use super::ProviderConfigError;

/// Longest wait for a TCP connection (to the upstream or its proxy).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream host (and per client).
const POOL_MAX_IDLE_PER_HOST: usize = 256;
/// TCP keepalive probes on upstream connections (reqwest's defaults): a
/// peer that vanished without a FIN is noticed on an idle pooled connection.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client type every upstream call uses.
pub(crate) type HttpClient = Client<hyper_rustls::HttpsConnector<ProxyConnector>, Full<Bytes>>;

/// Which proxy, if any, an upstream connection goes through. Built once
/// per process from the environment ([`Proxies::from_env`]), or from
/// explicit values ([`Proxies::new`]: tests, embedders).
#[derive(Clone)]
pub struct Proxies(Arc<Matcher>);

static ENV_PROXIES: LazyLock<Proxies> = LazyLock::new(|| Proxies(Arc::new(Matcher::from_env())));

impl Proxies {
    /// `HTTP_PROXY` / `http_proxy` for `http` upstreams, `HTTPS_PROXY` /
    /// `https_proxy` for `https` ones, `ALL_PROXY` / `all_proxy` for both
    /// when the specific one is unset, and `NO_PROXY` / `no_proxy` hosts,
    /// domains and CIDRs going direct (curl's rules; none under CGI, where
    /// `HTTP_PROXY` could come from a request header). Read on first use
    /// and kept for the life of the process: the environment does not
    /// change under a running gateway, and every client agrees.
    pub fn from_env() -> Self {
        ENV_PROXIES.clone()
    }

    /// The same settings from explicit values, in the variables' syntax
    /// (`http://user:pass@host:port`, `NO_PROXY` lists); empty means unset.
    pub fn new(all: &str, http: &str, https: &str, no: &str) -> Self {
        let m = Matcher::builder()
            .all(all)
            .http(http)
            .https(https)
            .no(no)
            .build();
        Proxies(Arc::new(m))
    }

    /// Whether these are the environment's (shared with serving threads'
    /// own clients).
    pub(crate) fn is_from_env(&self) -> bool {
        Arc::ptr_eq(&self.0, &ENV_PROXIES.0)
    }

    /// The `Proxy-Authorization` an `http` request to `uri` carries: such a
    /// request goes to the proxy in absolute form, so the proxy's
    /// credentials travel on the request itself (for `https` they go on
    /// the tunnel's `CONNECT` instead).
    pub(crate) fn http_auth(&self, uri: &Uri) -> Option<HeaderValue> {
        if uri.scheme_str() != Some("http") {
            return None;
        }
        self.0.intercept(uri)?.basic_auth().cloned()
    }
}

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The matcher's own Debug leaves credentials out.
        self.0.fmt(f)
    }
}

/// A client with the gateway's settings, going through `proxies`.
pub(crate) fn build(proxies: Proxies) -> Result<HttpClient, ProviderConfigError> {
    let mut http = HttpConnector::new();
    // `https` destinations reach this connector too (TLS is layered on top).
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.set_keepalive_interval(Some(TCP_KEEPALIVE));
    http.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config()?)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(ProxyConnector { http, proxies });
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .build(https))
}

/// TLS 1.2 and 1.3 with ring, verified against the webpki (Mozilla)
/// roots: the same trust as reqwest's `rustls-tls`, independent of the
/// host's CA files. ALPN is set by the connector builder.
fn tls_config() -> Result<rustls::ClientConfig, ProviderConfigError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProviderConfigError {
            provider: String::new(),
            message: format!("cannot build the TLS configuration: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// TCP to the upstream, to its proxy (for `http`: the request then goes in
/// absolute form), or through a `CONNECT` tunnel (for `https`: TLS runs
/// end to end inside it).
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    http: HttpConnector,
    proxies: Proxies,
}

impl Service<Uri> for ProxyConnector {
    type Response = ProxyStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxyStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // `HttpConnector` is always ready; each call clones it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut http = self.http.clone();
        let Some(proxy) = self.proxies.0.intercept(&dst) else {
            return Box::pin(async move {
                let io = http.call(dst).await?;
                Ok(ProxyStream::new(io, false))
            });
        };
        let proxy_uri = proxy.uri().clone();
        if proxy_uri.scheme_str() != Some("http") {
            // reqwest spoke TLS to `https://` proxies; a tunnel inside TLS
            // inside a tunnel is not worth its code for a gateway's egress.
            let scheme = proxy_uri.scheme_str().unwrap_or("").to_string();
            return Box::pin(async move {
                Err(format!("unsupported proxy scheme `{scheme}` (use an http:// proxy)").into())
            });
        }
        if dst.scheme_str() == Some("https") {
            let mut tunnel = Tunnel::new(proxy_uri, http);
            if let Some(auth) = proxy.basic_auth() {
                tunnel = tunnel.with_auth(auth.clone());
            }
            Box::pin(async move {
                let io = tunnel.call(dst).await?;
                Ok(ProxyStream::new(io, false))
            })
        } else {
            Box::pin(async move {
                let io = http.call(proxy_uri).await?;
                Ok(ProxyStream::new(io, true))
            })
        }
    }
}

/// A TCP connection that knows whether it leads to a forwarding proxy
/// (requests on it then go in absolute form).
pub(crate) struct ProxyStream {
    io: TokioIo<TcpStream>,
    forwarding: bool,
}

impl ProxyStream {
    fn new(io: TokioIo<TcpStream>, forwarding: bool) -> Self {
        ProxyStream { io, forwarding }
    }
}

impl Connection for ProxyStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.forwarding)
    }
}

impl hyper::rt::Read for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_follow_scheme_and_no_proxy() {
        let p = Proxies::new(
            "",
            "http://u:p%40ss@proxy.internal:3128",
            "http://tunnel.internal:3128",
            "localhost, .corp.example, 10.0.0.0/8",
        );
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let via = |s: &str| p.0.intercept(&uri(s)).map(|i| i.uri().to_string());
        assert_eq!(
            via("http://api.example/v1").as_deref(),
            Some("http://proxy.internal:3128/")
        );
        assert_eq!(
            via("https://api.example/v1").as_deref(),
            Some("http://tunnel.internal:3128/")
        );
        for direct in [
            "http://localhost:8080/v1",
            "https://llm.corp.example/v1",
            "http://10.1.2.3/v1",
        ] {
            assert_eq!(via(direct), None, "{direct}");
        }
        // Credentials from the proxy URL, decoded: `u:p@ss`.
        assert_eq!(
            p.http_auth(&uri("http://api.example/v1")).unwrap(),
            "Basic dTpwQHNz"
        );
        assert_eq!(p.http_auth(&uri("https://api.example/v1")), None);
        assert_eq!(p.http_auth(&uri("http://localhost/v1")), None);
        assert!(!p.is_from_env());
        assert!(Proxies::from_env().is_from_env());
        let none = Proxies::new("", "", "", "");
        assert!(none.0.intercept(&uri("http://api.example/v1")).is_none());
        // ALL_PROXY covers both schemes when the specific ones are unset.
        let all = Proxies::new("http://all.internal:8080", "", "", "");
        assert!(all.0.intercept(&uri("https://api.example/")).is_some());
        assert!(all.0.intercept(&uri("http://api.example/")).is_some());
    }
}
