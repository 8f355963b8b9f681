//! SSE answers for both dialects, with the stream faults applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::Fault;

/// Counts a paced stream whose client left before its last event.
struct Cancelled {
    counter: Arc<AtomicU64>,
    finished: bool,
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if !self.finished {
            self.counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The events of a complete answer (each ending in a blank line), the
/// terminator (`data: [DONE]` for OpenAI, none for Anthropic whose last
/// event is `message_stop`), and the error event `midstream-error` sends.
pub(crate) struct Events {
    pub events: Vec<Vec<u8>>,
    pub done: Option<&'static [u8]>,
    pub error_event: &'static [u8],
}

pub(crate) fn sse_response(
    mut ev: Events,
    fault: &Fault,
    token_delay_ms: u64,
    cancelled: Arc<AtomicU64>,
) -> Response {
    if fault.html {
        return (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html><body><h1>Welcome to the proxy</h1></body></html>",
        )
            .into_response();
    }
    if fault.malformed && !ev.events.is_empty() {
        ev.events[0] = b"data: {\"id\": oops\n\n".to_vec();
    }
    if fault.truncate {
        // Keep the first half, then half of the next event: the stream
        // stops mid-event and never sends its terminator.
        let keep = ev.events.len() / 2 + 1;
        ev.events.truncate(keep);
        if let Some(last) = ev.events.last_mut() {
            last.truncate(last.len() / 2);
        }
        ev.done = None;
    } else if fault.midstream_error {
        ev.events.truncate(ev.events.len() / 2);
        ev.events.push(ev.error_event.to_vec());
        ev.done = None;
    }
    if let Some(done) = ev.done {
        ev.events.push(done.to_vec());
    }
    let body = if token_delay_ms == 0 && fault.slow_first_token_ms.is_none() {
        // The fast path: one buffer, one write.
        Body::from(ev.events.concat())
    } else {
        let first = Duration::from_millis(fault.slow_first_token_ms.unwrap_or(0));
        let gap = Duration::from_millis(token_delay_ms);
        Body::from_stream(async_stream::stream! {
            let mut guard = Cancelled { counter: cancelled, finished: false };
            for (i, e) in ev.events.into_iter().enumerate() {
                let wait = if i == 0 { first } else { gap };
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                yield Ok::<_, std::convert::Infallible>(Bytes::from(e));
            }
            guard.finished = true;
        })
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
