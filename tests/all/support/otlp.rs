//! An OTLP/HTTP receiver (protobuf, `POST /v1/traces`) on a loopback port:
//! what the gateway's trace exporter sends, decoded with
//! `opentelemetry-proto`, kept as flat [`Span`]s a test waits for.

#![allow(dead_code, reason = "each test module uses a different subset")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One received span, ids as lowercase hex ("" for no parent).
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// Attribute values as text (`true`, `503`, `input`).
    pub attrs: BTreeMap<String, String>,
    /// `service.name` of the batch it came in.
    pub service: String,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Inbox {
    spans: Mutex<Vec<Span>>,
    /// Headers of every export request (e.g. a configured API key).
    headers: Mutex<Vec<HeaderMap>>,
    arrived: Notify,
}

/// The receiver; stops when dropped.
pub struct Receiver {
    /// `http://127.0.0.1:PORT/v1/traces`, an `[telemetry] endpoint`.
    pub endpoint: String,
    inbox: Arc<Inbox>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

async fn export(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut spans = Vec::new();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref()))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                spans.push(Span {
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    attrs: s
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                        .collect(),
                    service: service.clone(),
                });
            }
        }
    }
    inbox.spans.lock().unwrap().extend(spans);
    inbox.headers.lock().unwrap().push(headers);
    inbox.arrived.notify_waiters();
    // An empty `ExportTraceServiceResponse` is zero bytes of protobuf.
    StatusCode::OK
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inbox = Arc::new(Inbox::default());
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(inbox.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            endpoint: format!("http://{addr}/v1/traces"),
            inbox,
            task,
        }
    }

    /// Every span so far.
    pub fn spans(&self) -> Vec<Span> {
        self.inbox.spans.lock().unwrap().clone()
    }

    /// Headers of every export request so far.
    pub fn export_headers(&self) -> Vec<HeaderMap> {
        self.inbox.headers.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the spans received (each export wakes
    /// it; `timeout` only bounds a hang), then returns them.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let wait = async {
            loop {
                let notified = self.inbox.arrived.notified();
                if done(&self.spans()) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.spans()
    }
}
