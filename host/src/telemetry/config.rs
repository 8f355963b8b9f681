//! `[telemetry]`: where and how spans are exported.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[telemetry]`. Absent, or without `endpoint`: no exporter, no
/// OpenTelemetry layer, and the stage spans cost one disabled-callsite
/// check each (the client's `traceparent` is still forwarded upstream).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP traces URL, used as given (usually
    /// `http://HOST:4318/v1/traces`). Default unset: tracing export off.
    /// On: every sampled request builds its spans and batches them to
    /// this URL from a background thread.
    pub endpoint: Option<String>,
    /// Wire protocol. Only `http/protobuf` (the default) is built in: gRPC
    /// would bring tonic and a second HTTP/2 stack into the build.
    pub protocol: Protocol,
    /// `service.name` of the exported resource. Default `sluice`.
    pub service_name: String,
    /// Share of new traces kept, 0.0 to 1.0. Default 1.0. A request whose
    /// client sent a `traceparent` follows that parent's sampled flag
    /// instead (parent-based sampling). Unsampled requests build no span
    /// data.
    pub sample_ratio: f64,
    /// Extra headers on each export request (a collector's API key:
    /// `${ENV}` it). Default none.
    pub headers: BTreeMap<String, String>,
    /// How long spans wait in the batch before they are sent, in ms.
    /// Default 5000. Shorter: fresher traces, more export requests.
    pub batch_delay_ms: u64,
    /// Timeout of one export request, in ms. Default 10000. The export
    /// runs off the request path; a slow collector only delays spans (the
    /// queue holds 2048 and drops the rest).
    pub timeout_ms: u64,
}

/// `[telemetry] protocol`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: Protocol::HttpProtobuf,
            service_name: "sluice".into(),
            sample_ratio: 1.0,
            headers: BTreeMap::new(),
            batch_delay_ms: 5000,
            timeout_ms: 10_000,
        }
    }
}

impl TelemetryConfig {
    /// Values serde accepts that cannot work: `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            out.push(("sample-ratio", "must be between 0.0 and 1.0".into()));
        }
        if let Some(e) = &self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            out.push(("endpoint", "must be an http:// or https:// URL".into()));
        }
        if self.service_name.is_empty() {
            out.push(("service-name", "must not be empty".into()));
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                out.push(("headers", format!("invalid header name `{name}`")));
            }
        }
        if self.timeout_ms == 0 {
            out.push(("timeout-ms", "must be at least 1".into()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn problems(section: &str) -> String {
        match Config::parse("t.toml", section, &|_| None) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_off_and_keys_are_checked() {
        let c = Config::parse("t.toml", "", &|_| None).unwrap();
        assert_eq!(c.telemetry, super::TelemetryConfig::default());
        assert!(c.telemetry.endpoint.is_none());
        let ok = "[telemetry]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\nsample-ratio = 0.25\nheaders = { x-key = \"v\" }\n";
        assert_eq!(problems(ok), "");
        for (bad, named) in [
            ("sample-ratio = 1.5", "sample-ratio"),
            ("endpoint = \"127.0.0.1:4318\"", "endpoint"),
            ("protocol = \"grpc\"", "unknown variant `grpc`"),
            ("headers = { \"bad header\" = \"v\" }", "headers"),
            ("service-name = \"\"", "service-name"),
            ("exporter = \"otlp\"", "exporter"),
        ] {
            let text = problems(&format!("[telemetry]\n{bad}\n"));
            assert!(text.contains(named), "{bad}: {text}");
        }
    }
}
