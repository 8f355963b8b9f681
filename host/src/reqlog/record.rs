//! One line of the request log, and how a request's record is gathered
//! while it is served ([`Pending`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{Mode, RequestLog};
use crate::openai::{ChatCompletion, Usage};
use crate::pipeline::StreamEvent;

/// One request and its answer. Text fields a client or an upstream wrote
/// are redacted before the line is written ([`Record::redact`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// The request id (`x-sluice-request-id`).
    pub id: String,
    /// Arrival, unix ms.
    pub ts: u64,
    /// Arrival, RFC 3339 UTC.
    pub time: String,
    /// `chat` or `embeddings`.
    pub endpoint: String,
    /// The virtual key's id (never the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// `x-sluice-feature`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// The gateway model the client asked for.
    pub model: String,
    /// The last route tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    pub status: u16,
    /// Arrival to the end of the answer (streams: the last event).
    pub latency_ms: f64,
    /// Time in the providers layer (streams: to the first chunk).
    pub upstream_ms: f64,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u32>,
    /// Known for whole answers; a stream's cost is in the ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Each guardrail's worst verdict (`pass`, `transform`, `flag`,
    /// `error`, `reject`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub guardrails: BTreeMap<String, String>,
    /// The error's type (`guardrail_rejected`, `upstream_error`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `ID@VERSION` of the registry prompt the request was rendered from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The client went away before the answer was complete.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disconnected: bool,
    /// `full` only: the request's messages (embeddings: the input texts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Vec<Message>>,
    /// `full` only: the answer's text (every choice, in order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// `full` only: the error's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// `full` only: some text was cut at `max-text-bytes`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One request message in a `full` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Record {
    /// Every text a client or an upstream wrote, through the shared
    /// redaction (PII and credentials), then cut to `max_text` bytes.
    /// Redacted first: a cut through a key would leave its prefix.
    pub fn redact(&mut self, max_text: usize) {
        let mut cut = false;
        let mut scrub = |s: &mut String| {
            if let std::borrow::Cow::Owned(r) = sluice_redact::redact(s) {
                *s = r;
            }
            if s.len() > max_text {
                s.truncate(s.floor_char_boundary(max_text));
                cut = true;
            }
        };
        scrub(&mut self.model);
        for s in [
            &mut self.feature,
            &mut self.response,
            &mut self.error_message,
        ]
        .into_iter()
        .flatten()
        {
            scrub(s);
        }
        for m in self.request.iter_mut().flatten() {
            scrub(&mut m.content);
        }
        self.truncated |= cut;
    }
}

/// What the gateway concluded about a request (from `server::chat`).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: u16,
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub attempts: u32,
    pub upstream_ms: f64,
    pub cost_usd: Option<f64>,
    /// `x-sluice-guardrails` (`name:verdict,…`).
    pub guardrails: String,
    pub prompt: Option<String>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

impl Outcome {
    /// What the request went through (route, attempts, guardrails,
    /// prompt); status and error are the caller's.
    pub fn of(t: &crate::pipeline::Tried) -> Self {
        Outcome {
            provider: t.provider.clone(),
            upstream_model: t.model.clone(),
            attempts: t.attempts,
            upstream_ms: t.upstream.as_secs_f64() * 1e3,
            guardrails: t.guardrails.header_value(),
            prompt: t.prompt.as_ref().map(ToString::to_string),
            ..Outcome::default()
        }
    }
}

/// Held by a stream's body: when the body is dropped (the end, or the
/// client going away), [`Pending::dropped`].
pub struct OnDrop(pub Pending);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.dropped();
    }
}

#[derive(Default)]
struct Draft {
    record: Record,
    /// The outcome is in (the response head was built).
    head: bool,
    /// The answer is complete (a whole answer, or a stream's last event).
    ended: bool,
    sent: bool,
}

/// A request's record in the making, shared by the handler and (for a
/// stream) the response body. Written once both the outcome and the end
/// of the answer are known, or when the body is dropped first (the client
/// went away). Does nothing when the log is off.
#[derive(Clone, Default)]
pub struct Pending(Option<Arc<PendingInner>>);

struct PendingInner {
    log: RequestLog,
    full: bool,
    arrived: Instant,
    draft: Mutex<Draft>,
}

/// Recognised by `key_id`, feature and so on from `server::chat`.
pub struct Start<'a> {
    pub id: &'a str,
    pub endpoint: &'static str,
    pub arrived: Instant,
    pub key_id: Option<&'a str>,
    pub feature: Option<&'a str>,
    pub model: &'a str,
    pub stream: bool,
}

impl Pending {
    /// Begin a record; `messages` (role, text) are kept in `full` mode only.
    pub fn start<'m>(
        log: &RequestLog,
        s: Start<'_>,
        messages: impl FnOnce() -> Vec<(&'m str, String)>,
    ) -> Self {
        let Some(mode) = log.mode() else {
            return Pending(None);
        };
        let full = mode == Mode::Full;
        let now = SystemTime::now();
        let since_arrival = s.arrived.elapsed();
        let ts = now
            .checked_sub(since_arrival)
            .unwrap_or(now)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let record = Record {
            id: s.id.to_string(),
            ts,
            time: rfc3339(ts),
            endpoint: s.endpoint.to_string(),
            key_id: s.key_id.map(str::to_string),
            feature: s.feature.map(str::to_string),
            model: s.model.to_string(),
            stream: s.stream,
            request: full.then(|| {
                messages()
                    .into_iter()
                    .map(|(role, content)| Message {
                        role: role.to_string(),
                        content,
                    })
                    .collect()
            }),
            ..Record::default()
        };
        Pending(Some(Arc::new(PendingInner {
            log: log.clone(),
            full,
            arrived: s.arrived,
            draft: Mutex::new(Draft {
                record,
                ..Draft::default()
            }),
        })))
    }

    /// False when the log is off: callers skip building an [`Outcome`].
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// A whole answer (not a stream): its usage and, in `full`, its text.
    pub fn answer(&self, c: &ChatCompletion) {
        self.update(|d, full| {
            usage(&mut d.record, c.usage.as_ref());
            if full {
                let text: Vec<String> = c
                    .choices
                    .iter()
                    .map(|ch| ch.message.content_text())
                    .collect();
                d.record.response = Some(text.join("\n"));
            }
            d.ended = true;
        });
    }

    /// An embeddings answer: its usage.
    pub fn embedded(&self, u: Option<&Usage>) {
        self.update(|d, _| {
            usage(&mut d.record, u);
            d.ended = true;
        });
    }

    /// One stream event: text and usage add up; the last one (`[DONE]` or
    /// an error) ends the answer.
    pub fn event(&self, e: &StreamEvent) {
        self.update(|d, full| match e {
            StreamEvent::Chunk(c) => {
                usage(&mut d.record, c.usage.as_ref());
                if full {
                    let text = c
                        .choices
                        .iter()
                        .filter_map(|ch| ch.delta.content.as_deref());
                    let r = d.record.response.get_or_insert_with(String::new);
                    text.for_each(|t| r.push_str(t));
                }
            }
            StreamEvent::Error(err) => {
                let api = crate::server::error::ApiError::from(err);
                d.record.error = Some(api.body.kind);
                d.record.error_code = api.body.code;
                if full {
                    d.record.error_message = Some(api.body.message);
                }
                d.ended = true;
            }
            StreamEvent::Done => d.ended = true,
        });
    }

    /// The response head: status, route, guardrails, error. A failed
    /// request has no answer to wait for.
    pub fn outcome(&self, o: Outcome) {
        self.update(|d, full| {
            let r = &mut d.record;
            r.status = o.status;
            r.provider = o.provider;
            r.upstream_model = o.upstream_model;
            r.attempts = o.attempts;
            r.upstream_ms = o.upstream_ms;
            r.cost_usd = o.cost_usd;
            r.guardrails = o
                .guardrails
                .split(',')
                .filter_map(|e| e.rsplit_once(':'))
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            r.prompt = o.prompt;
            if o.error.is_some() {
                r.error = o.error;
                r.error_code = o.error_code;
                if full {
                    r.error_message = o.error_message;
                }
                d.ended = true;
            }
            d.head = true;
        });
    }

    /// The response body is gone: a record not yet written is written now,
    /// marked `disconnected` if its answer had not ended.
    pub fn dropped(&self) {
        self.update(|d, _| {
            if d.head && !d.ended {
                d.record.disconnected = true;
                d.ended = true;
            }
        });
    }

    fn update(&self, f: impl FnOnce(&mut Draft, bool)) {
        let Some(inner) = &self.0 else { return };
        let mut d = inner.draft.lock();
        if d.sent {
            return;
        }
        f(&mut d, inner.full);
        if d.head && d.ended {
            d.sent = true;
            let mut record = std::mem::take(&mut d.record);
            drop(d);
            record.latency_ms = inner.arrived.elapsed().as_secs_f64() * 1e3;
            inner.log.send(record);
        }
    }
}

fn usage(r: &mut Record, u: Option<&Usage>) {
    if let Some(u) = u {
        r.prompt_tokens = Some(u.prompt_tokens);
        r.completion_tokens = Some(u.completion_tokens);
    }
}

/// `2026-11-27T17:30:00.123Z` of unix ms.
pub fn rfc3339(ms: u64) -> String {
    let (y, m, d) = crate::state::period::civil_from_days((ms / 86_400_000) as i64);
    let in_day = ms % 86_400_000;
    let (h, min, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_800_600_123), "2026-11-27T17:30:00.123Z");
    }

    #[test]
    fn redaction_covers_every_client_text_and_cuts_long_text() {
        let mut r = Record {
            model: "gpt jane@example.com".into(),
            feature: Some("4111111111111111".into()),
            request: Some(vec![Message {
                role: "user".into(),
                content: "mail me at jane@example.com".into(),
            }]),
            response: Some(format!("é{}", "x".repeat(30))),
            error_message: Some("sk-abcdefghijklmnopqrstuvwx".into()),
            ..Record::default()
        };
        r.redact(24);
        assert_eq!(r.model, "gpt [EMAIL]");
        assert_eq!(r.feature.as_deref(), Some("[CREDIT_CARD]"));
        assert_eq!(r.request.as_ref().unwrap()[0].content, "mail me at [EMAIL]");
        // Cut after redaction, on a character boundary.
        assert_eq!(
            r.response.as_deref(),
            Some(format!("é{}", "x".repeat(22)).as_str())
        );
        assert_eq!(r.error_message.as_deref(), Some("[REDACTED:openai-key]"));
        assert!(r.truncated);
    }
}
