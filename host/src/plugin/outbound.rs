//! Outbound `wasi:http`: the send hook that enforces a plugin's host
//! allowlist. Time is not its business: the call's deadline cancels a
//! request still in flight (`instance`).

use std::future::Future;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Allowlist-checking [`WasiHttpHooks`] for one store.
pub(crate) struct OutboundHttp {
    allowed: Vec<String>,
}

impl OutboundHttp {
    pub fn new(allowed: Vec<String>) -> Self {
        OutboundHttp { allowed }
    }

    /// `host` or `host:port`. An entry without a port allows any port of
    /// that host; an entry with one allows exactly that port.
    pub fn allows(&self, host: &str, port: Option<u16>) -> bool {
        self.allowed
            .iter()
            .any(|entry| match entry.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() => {
                    h.eq_ignore_ascii_case(host) && p.parse::<u16>().ok() == port
                }
                _ => entry.eq_ignore_ascii_case(host),
            })
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        drop(fut);
        let (host, port) = match request.uri().authority() {
            Some(a) => (a.host().to_owned(), a.port_u16()),
            None => (String::new(), None),
        };
        if !self.allows(&host, port) {
            tracing::warn!(
                host,
                "plugin outbound http denied: host not in capabilities.http"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_matches_host_and_optional_port() {
        let o = OutboundHttp::new(vec!["api.example.com".into(), "127.0.0.1:9000".into()]);
        assert!(o.allows("api.example.com", None));
        assert!(o.allows("API.example.com", Some(8443)));
        assert!(o.allows("127.0.0.1", Some(9000)));
        assert!(!o.allows("127.0.0.1", Some(9001)));
        assert!(!o.allows("127.0.0.1", None));
        assert!(!o.allows("evil.example.com", None));
        assert!(!o.allows("", None));
    }
}
