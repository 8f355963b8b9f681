//! The OTLP exporter's HTTP client: the reqwest 0.12 already in the tree,
//! instead of `opentelemetry-otlp`'s own (reqwest 0.13: a second HTTP
//! stack to compile).
//!
//! The SDK's batch processor exports from its own thread, under a plain
//! `futures` executor; reqwest needs a Tokio reactor. The client owns a
//! one-thread runtime it drives only from that export thread, so exports
//! never wait on (or deadlock with) the gateway's runtime, whichever kind
//! it is (tests serve from a current-thread runtime).

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use std::fmt;

pub struct ExportClient {
    client: reqwest::Client,
    /// Taken only by `drop`.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for ExportClient {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime
        // (the SDK may drop its exporter anywhere); this does not block.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportClient").finish_non_exhaustive()
    }
}

impl ExportClient {
    pub fn new(timeout: std::time::Duration) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            client,
            runtime: Some(runtime),
        })
    }
}

/// The most of a collector's answer read (it is a small protobuf).
const MAX_ANSWER: usize = 64 * 1024;

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let run = async move {
            let res = client.execute(request).await?;
            let status = res.status();
            let headers = res.headers().clone();
            let mut body = res.bytes().await?;
            body.truncate(MAX_ANSWER);
            let mut out = Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok::<_, reqwest::Error>(out)
        };
        // Called on the SDK's export thread (never inside a Tokio
        // runtime); see the module docs.
        match &self.runtime {
            Some(rt) => Ok(rt.block_on(run)?),
            None => Err("the export client is shut down".into()),
        }
    }
}
