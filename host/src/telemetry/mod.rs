//! Traces: one `tracing` span per request stage, exported over OTLP/HTTP
//! when `[telemetry] endpoint` is set, and W3C trace context from the
//! client to every upstream attempt.
//!
//! Every stage span has the target [`TARGET`] at INFO. The log layer
//! filters that target out ([`log_filter`]), so with no exporter no layer
//! is interested in it: each span macro is one cached "disabled" check and
//! records nothing. With an exporter, [`Telemetry::layer`] (a
//! `tracing-opentelemetry` layer filtered to [`TARGET`]) turns them into
//! OpenTelemetry spans, batched to the collector off the request path.
//!
//! Span names and attributes are listed in the README (Traces).

pub mod config;
mod export;
pub mod spans;
pub mod traceparent;

use std::future::Future;
use std::str::FromStr as _;
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

pub use config::{Protocol, TelemetryConfig};
pub use traceparent::TraceParent;

/// The `tracing` target of every stage span (see the module docs).
pub const TARGET: &str = "sluice::trace";

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry: cannot start the export client: {0}")]
    Client(#[source] std::io::Error),
    #[error("telemetry: cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The OTLP pipeline: tracer provider, batch processor, exporter.
/// [`Telemetry::shutdown`] sends what is still queued.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Telemetry {
    /// The exporter `cfg` describes, or `None` when it names no endpoint.
    pub fn start(cfg: &TelemetryConfig) -> Result<Option<Self>, TelemetryError> {
        let Some(endpoint) = &cfg.endpoint else {
            return Ok(None);
        };
        let Protocol::HttpProtobuf = cfg.protocol;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let client = export::ExportClient::new(timeout).map_err(TelemetryError::Client)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(endpoint.clone())
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_timeout(timeout)
            .with_headers(cfg.headers.clone().into_iter().collect())
            .build()?;
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(Duration::from_millis(cfg.batch_delay_ms))
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batch)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                cfg.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(cfg.service_name.clone())
                    .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("sluice");
        Ok(Some(Self { provider, tracer }))
    }

    /// The layer that exports the stage spans (and nothing else: log
    /// events stay out of the spans).
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(TARGET, tracing::Level::INFO))
    }

    /// Export every finished span now. Blocks: call it off the async
    /// workers (`spawn_blocking`).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "telemetry: flushing spans failed");
        }
    }

    /// Export what is queued and stop. Blocks, as [`Telemetry::flush`].
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "telemetry: shutting the exporter down failed");
        }
    }
}

/// `filter` for the log layer: stage spans are for the exporter, never
/// log lines (nor the span context of every line logged inside them).
pub fn log_filter(filter: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    match format!("{TARGET}=off").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

tokio::task_local! {
    /// The client's trace context, for upstream calls made while no
    /// exporter turns the stage spans into OpenTelemetry spans.
    static CLIENT: Option<TraceParent>;
}

/// Run `f` (a request) with the client's trace context available to
/// [`upstream_headers`].
pub fn with_client<F: Future>(
    client: Option<TraceParent>,
    f: F,
) -> impl Future<Output = F::Output> {
    CLIENT.scope(client, f)
}

/// The client's `traceparent` and `tracestate` headers, if valid.
pub fn client_context(headers: &http::HeaderMap) -> Option<TraceParent> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
    };
    TraceParent::parse(text("traceparent")?, text("tracestate"))
}

/// Make `span` the child of the client's span (no-op when disabled).
pub fn set_parent(span: &tracing::Span, client: Option<&TraceParent>) {
    let Some(tp) = client else { return };
    if span.is_disabled() {
        return;
    }
    let state = tp
        .state
        .as_deref()
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    let remote = SpanContext::new(
        TraceId::from_bytes(tp.trace_id),
        SpanId::from_bytes(tp.parent_id),
        TraceFlags::new(tp.flags),
        true,
        state,
    );
    let _ = span.set_parent(Context::new().with_remote_span_context(remote));
}

/// `traceparent` (and `tracestate`) for an upstream call made in the
/// current span. With an exporter that is the attempt's own span (a new
/// span id per attempt, in the client's trace). Without one the gateway is
/// not a participant: the client's headers are forwarded unchanged.
pub fn upstream_headers() -> Option<(String, Option<String>)> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if sc.is_valid() {
        let header = traceparent::format(
            &sc.trace_id().to_bytes(),
            &sc.span_id().to_bytes(),
            sc.trace_flags().to_u8(),
        );
        let state = sc.trace_state().header();
        return Some((header, (!state.is_empty()).then_some(state)));
    }
    CLIENT
        .try_with(|c| c.as_ref().map(|tp| (tp.header(), tp.state.clone())))
        .ok()
        .flatten()
}
