use std::sync::{Arc, Mutex};

use futures_util::stream;

use super::*;

fn sentence() -> StreamWindowConfig {
    StreamWindowConfig::default()
}

#[test]
fn sentence_windows_close_after_the_whitespace_following_a_full_stop() {
    let mut w = Window::new(sentence());
    assert_eq!(w.push("Hello wor"), None);
    assert_eq!(w.push("ld. How"), Some("Hello world. ".to_string()));
    assert_eq!(
        w.push(" is 3.14 ok"),
        None,
        "a decimal point is not a sentence end"
    );
    assert_eq!(w.push("?\nYes"), Some("How is 3.14 ok?\n".to_string()));
    assert_eq!(w.take_rest(), "Yes");
}

#[test]
fn chars_and_max_hold_bound_the_window() {
    let chars = StreamWindowConfig {
        mode: WindowMode::Chars,
        chars: 5,
        max_hold_chars: 5,
        ..sentence()
    };
    let mut w = Window::new(chars);
    assert_eq!(w.push("abc"), None);
    assert_eq!(w.push("défg"), Some("abcdéfg".to_string()));
    let mut w = Window::new(StreamWindowConfig {
        max_hold_chars: 4,
        ..sentence()
    });
    assert_eq!(w.push("no end"), Some("no end".to_string()));
}

#[test]
fn the_context_is_the_tail_of_the_emitted_text() {
    let mut w = Window::new(StreamWindowConfig {
        context_chars: 5,
        overlap_chars: 0,
        ..sentence()
    });
    assert_eq!(w.context(false).emitted, "");
    w.passed("abc");
    assert_eq!(w.context(false).emitted, "abc");
    w.passed("défgh");
    assert_eq!(w.context(false).emitted, "défgh");
    for i in 0..100 {
        w.passed(&format!("{}é", i % 10));
        let ctx = w.context(false);
        assert_eq!(ctx.emitted.chars().count(), 5, "{ctx:?}");
        assert!(ctx.emitted.ends_with(&format!("{}é", i % 10)));
        assert_eq!(ctx.window_index, i + 3);
    }
    assert!(w.emitted.chars().count() <= 10, "trimmed as it goes");
    let mut none = Window::new(StreamWindowConfig {
        context_chars: 0,
        overlap_chars: 0,
        ..sentence()
    });
    none.passed("text");
    assert_eq!(none.context(true).emitted, "");
}

/// Upper-cases every window (a transform); rejects text containing "BOOM".
/// Records every call's (text, emitted, window_index, is_final).
#[derive(Clone, Default)]
struct Shouty(Arc<Mutex<Vec<Call>>>);

type Call = (String, String, u32, bool);

impl WindowChecker for Shouty {
    async fn check(
        &mut self,
        text: &str,
        ctx: &OutputContext,
    ) -> Result<String, (String, Rejection)> {
        self.0.lock().unwrap().push((
            text.into(),
            ctx.emitted.clone(),
            ctx.window_index,
            ctx.is_final,
        ));
        if text.contains("BOOM") {
            return Err((
                "shouty".into(),
                Rejection {
                    reason: "explosive".into(),
                    code: "boom".into(),
                },
            ));
        }
        Ok(text.to_uppercase())
    }
}

fn chunk(content: Option<&str>, finish: Option<&str>) -> ChatChunk {
    ChatChunk {
        id: "c1".into(),
        object: "chat.completion.chunk".into(),
        created: 1,
        model: "m".into(),
        choices: vec![ChunkChoice {
            index: 0,
            delta: Delta {
                role: None,
                content: content.map(str::to_string),
                extra: Default::default(),
            },
            finish_reason: finish.map(str::to_string),
            extra: Default::default(),
        }],
        usage: None,
        extra: Default::default(),
    }
}

fn usage_chunk() -> ChatChunk {
    ChatChunk {
        choices: Vec::new(),
        usage: Some(Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
            total_tokens: 7,
            ..Usage::default()
        }),
        ..chunk(None, None)
    }
}

async fn run(
    chunks: Vec<ChatChunk>,
    checker: Shouty,
    include_usage: bool,
) -> (Vec<StreamEvent>, Option<Usage>) {
    let seen = Arc::new(Mutex::new(None));
    let ledger = Seen(seen.clone(), None);
    let up = stream::iter(chunks.into_iter().map(Ok)).boxed();
    let events = guarded(up, checker, sentence(), include_usage, ledger)
        .collect()
        .await;
    let usage = *seen.lock().unwrap();
    (events, usage)
}

/// A ledger that keeps the usage it saw once the stream completes.
struct Seen(Arc<Mutex<Option<Usage>>>, Option<Usage>);

impl StreamLedger for Seen {
    fn observe(&mut self, chunk: &ChatChunk) {
        self.1 = chunk.usage.or(self.1);
    }

    async fn end(&mut self, end: StreamEnd) -> Option<Error> {
        if end == StreamEnd::Complete {
            *self.0.lock().unwrap() = self.1;
        }
        None
    }
}

fn texts(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Chunk(c) => c.choices.first().and_then(|ch| ch.delta.content.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn windows_are_checked_with_context_and_the_final_window_runs() {
    let checker = Shouty::default();
    let chunks = vec![
        chunk(Some("One. Tw"), None),
        chunk(Some("o. Thr"), None),
        chunk(Some("ee"), None),
        chunk(None, Some("stop")),
        usage_chunk(),
    ];
    let (events, usage) = run(chunks, checker.clone(), false).await;
    assert_eq!(texts(&events), ["ONE. ", "TWO. ", "THREE"]);
    assert!(matches!(events.last(), Some(StreamEvent::Done)));
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, StreamEvent::Chunk(c) if c.usage.is_some())),
        "usage not forwarded unless asked"
    );
    assert_eq!(
        usage.map(|u| u.total_tokens),
        Some(7),
        "ledger still sees usage"
    );
    let calls = checker.0.lock().unwrap().clone();
    assert_eq!(
        calls,
        [
            ("One. ".into(), "".into(), 0, false),
            // Each later window starts with the seam overlap (what was
            // sent), and the context is what came before it.
            ("ONE. Two. ".into(), "".into(), 1, false),
            ("ONE. TWO. Three".into(), "".into(), 2, true),
        ]
    );
    let finish = events.iter().rev().find_map(|e| match e {
        StreamEvent::Chunk(c) => c.choices.first().and_then(|ch| ch.finish_reason.clone()),
        _ => None,
    });
    assert_eq!(finish.as_deref(), Some("stop"));
}

#[tokio::test]
async fn a_reject_mid_stream_ends_with_an_error_and_no_done() {
    let chunks = vec![
        chunk(Some("Fine. "), None),
        chunk(Some("Then BOOM. "), None),
        chunk(Some("Never sent. "), None),
    ];
    let (events, _) = run(chunks, Shouty::default(), true).await;
    assert_eq!(texts(&events), ["FINE. "]);
    match events.last() {
        Some(StreamEvent::Error(Error::GuardrailRejected { plugin, code, .. })) => {
            assert_eq!((plugin.as_str(), code.as_str()), ("shouty", "boom"));
        }
        other => panic!("expected a guardrail error last, got {other:?}"),
    }
}

#[tokio::test]
async fn an_empty_answer_still_gets_a_final_check_and_usage_when_asked() {
    let checker = Shouty::default();
    let (events, _) = run(vec![usage_chunk()], checker.clone(), true).await;
    assert_eq!(
        checker.0.lock().unwrap().as_slice(),
        [("".into(), "".into(), 0, true)]
    );
    assert!(
        matches!(&events[0], StreamEvent::Chunk(c) if c.usage.is_some() && c.choices.is_empty())
    );
    assert!(matches!(events[1], StreamEvent::Done));
}

#[test]
fn a_size_cut_falls_after_the_last_whitespace() {
    let cfg = StreamWindowConfig {
        max_hold_chars: 10,
        ..sentence()
    };
    let mut w = Window::new(cfg);
    assert_eq!(
        w.push("hello wonderful world"),
        Some("hello wonderful ".to_string())
    );
    assert_eq!(w.take_rest(), "world");
    // A "word" longer than half the limit is cut where the limit fell.
    let mut w = Window::new(cfg);
    assert_eq!(w.push("a bcdefghijk"), Some("a bcdefghijk".to_string()));
    // Chars mode cuts at whitespace too; multibyte text stays whole.
    let mut w = Window::new(StreamWindowConfig {
        mode: WindowMode::Chars,
        chars: 8,
        ..sentence()
    });
    assert_eq!(w.push("héé wé"), None);
    assert_eq!(w.push("rl"), Some("héé ".to_string()));
    assert_eq!(w.take_rest(), "wérl");
    // The passthrough window forwards every piece at once.
    let mut w = Window::new(StreamWindowConfig::PASSTHROUGH);
    assert_eq!(w.push("a b"), Some("a b".to_string()));
    assert_eq!(w.push(" c"), Some(" c".to_string()));
}

#[test]
fn the_overlap_starts_at_a_word_and_the_context_ends_before_it() {
    let mut w = Window::new(StreamWindowConfig {
        overlap_chars: 8,
        context_chars: 6,
        ..sentence()
    });
    assert_eq!(w.check(false).overlap, "");
    w.passed("alpha beta gamma ");
    let c = w.check(false);
    // The last 8 characters are "a gamma ": the partial word is skipped.
    assert_eq!(c.overlap, "gamma ");
    assert_eq!(c.ctx.emitted, " beta ");
    // A tail that begins at a word start is kept whole; é is two bytes.
    let mut w = Window::new(StreamWindowConfig {
        overlap_chars: 4,
        ..sentence()
    });
    w.passed("ab é xé");
    assert_eq!(w.check(true).overlap, "é xé");
    assert_eq!(w.check(true).ctx.emitted, "ab ");
    // One long word: the overlap is its tail as is.
    let mut w = Window::new(StreamWindowConfig {
        overlap_chars: 3,
        ..sentence()
    });
    w.passed("ééééé");
    assert_eq!(w.check(false).overlap, "ééé");
    // Trimming keeps enough for both the overlap and the context.
    let mut w = Window::new(StreamWindowConfig {
        overlap_chars: 4,
        context_chars: 4,
        ..sentence()
    });
    for i in 0..50 {
        w.passed(&format!("w{} ", i % 10));
    }
    let c = w.check(false);
    assert_eq!(
        (c.ctx.emitted.as_str(), c.overlap.as_str()),
        (" w8 ", "w9 ")
    );
}

#[test]
fn what_of_a_checked_window_is_sent_after_the_overlap() {
    // Unchanged overlap: everything else.
    assert_eq!(after_overlap("seen. NEW", "seen. "), "NEW");
    // Text added around it (a tag) stays.
    assert_eq!(after_overlap("tag:seen. new", "seen. "), "tag:new");
    // Rewritten overlap: from the first difference on.
    assert_eq!(
        after_overlap("Card [CARD] ok", "Card 4111 1111 "),
        "[CARD] ok"
    );
    assert_eq!(after_overlap("é[X]", "éé "), "[X]");
    assert_eq!(after_overlap("anything", ""), "anything");
    // The rewrite dropped text: nothing new to send.
    assert_eq!(after_overlap("Card", "Card 4111 "), "");
}

/// Redacts a spaced card number (`4111 1111 1111 1111`) and rejects
/// `secret@mail.com`, as a PII guardrail would, recording what it saw.
#[derive(Clone, Default)]
struct Needles(Arc<Mutex<Vec<String>>>);

const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "secret@mail.com";

impl WindowChecker for Needles {
    async fn check(
        &mut self,
        text: &str,
        _ctx: &OutputContext,
    ) -> Result<String, (String, Rejection)> {
        self.0.lock().unwrap().push(text.into());
        if text.contains(EMAIL) {
            return Err((
                "needles".into(),
                Rejection {
                    reason: "email".into(),
                    code: "pii".into(),
                },
            ));
        }
        Ok(text.replace(CARD, "[CARD]"))
    }
}

/// ASCII `text` streamed in `size`-byte pieces through
/// `Needles` with a 40-character max hold and no sentence end.
async fn seam_run(text: &str, size: usize) -> (Vec<StreamEvent>, Vec<String>) {
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(chunk(Some(piece), None));
        rest = tail;
    }
    chunks.push(chunk(None, Some("stop")));
    let checker = Needles::default();
    let cfg = StreamWindowConfig {
        max_hold_chars: 40,
        ..sentence()
    };
    let up = stream::iter(chunks.into_iter().map(Ok)).boxed();
    let events = guarded(up, checker.clone(), cfg, false, ()).collect().await;
    let seen = checker.0.lock().unwrap().clone();
    (events, seen)
}

#[tokio::test]
async fn a_needle_across_every_cut_is_seen_whatever_the_chunking() {
    let filler = "word ".repeat(12);
    for shift in 0..12 {
        // The 40-character cut falls at every position around the needle.
        let lead = &filler[..20 + shift];
        let card = format!("{lead}{CARD} tail words here");
        let email = format!("{lead}x {EMAIL} tail words here");
        for size in 1..=9 {
            let (events, seen) = seam_run(&card, size).await;
            let sent = texts(&events).concat();
            assert!(
                seen.iter().any(|t| t.contains(CARD)),
                "shift {shift} size {size}: card never seen whole: {seen:?}"
            );
            assert!(!sent.contains(CARD), "{sent:?}");
            assert!(sent.contains("[CARD]"), "{sent:?}");
            assert!(sent.ends_with(" tail words here"), "{sent:?}");
            assert!(matches!(events.last(), Some(StreamEvent::Done)));

            let (events, seen) = seam_run(&email, size).await;
            assert!(seen.iter().any(|t| t.contains(EMAIL)), "{seen:?}");
            assert!(
                seen.iter()
                    .all(|t| !t.contains(&EMAIL[..6]) || t.contains(EMAIL)),
                "shift {shift} size {size}: the address was split: {seen:?}"
            );
            assert!(!texts(&events).concat().contains("secret"));
            assert!(matches!(
                events.last(),
                Some(StreamEvent::Error(Error::GuardrailRejected { .. }))
            ));
        }
    }
}

fn delta_chunk(index: u32, delta: serde_json::Value, finish: Option<&str>) -> ChatChunk {
    let mut c = chunk(None, finish);
    c.choices[0].index = index;
    c.choices[0].delta = serde_json::from_value(delta).unwrap();
    c
}

#[tokio::test]
async fn tool_calls_and_refusals_are_held_and_checked_before_they_are_sent() {
    use serde_json::json;
    let checker = Shouty::default();
    let chunks = vec![
        delta_chunk(0, json!({"role": "assistant", "content": null}), None),
        delta_chunk(
            0,
            json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
            "function": {"name": "send", "arguments": ""}}]}),
            None,
        ),
        delta_chunk(
            0,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"to\":"}}]}),
            None,
        ),
        delta_chunk(1, json!({"refusal": "I can"}), None),
        delta_chunk(
            0,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"bob\"}"}}]}),
            None,
        ),
        delta_chunk(1, json!({"refusal": "not."}), Some("stop")),
        delta_chunk(0, json!({}), Some("tool_calls")),
    ];
    let (events, _) = run(chunks, checker.clone(), false).await;
    let sent: Vec<serde_json::Value> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Chunk(c) => Some(serde_json::to_value(c).unwrap()),
            _ => None,
        })
        .collect();
    let calls: Vec<_> = sent
        .iter()
        .filter(|c| !c["choices"][0]["delta"]["tool_calls"].is_null())
        .collect();
    assert_eq!(calls.len(), 1, "one delta, after the check: {sent:#?}");
    assert_eq!(
        calls[0]["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "id": "c1", "type": "function",
            "function": {"name": "SEND", "arguments": "{\"TO\":\"BOB\"}"}}])
    );
    let refusal: String = sent
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["refusal"].as_str())
        .collect();
    assert_eq!(refusal, "I CANNOT.");
    let seen = checker.0.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(t, ..)| t == "{\"to\":\"bob\"}"),
        "{seen:?}"
    );
    // The tool call goes out before its choice's finish chunk.
    let at = |pred: &dyn Fn(&serde_json::Value) -> bool| sent.iter().position(pred);
    let call_at = at(&|c| !c["choices"][0]["delta"]["tool_calls"].is_null()).unwrap();
    let finish_at = at(&|c| {
        c["choices"]
            .as_array()
            .is_some_and(|a| a.iter().any(|ch| ch["finish_reason"] == "tool_calls"))
    })
    .unwrap();
    assert!(call_at < finish_at);

    // A reject in a tool call's arguments ends the stream: nothing of the
    // call was sent.
    let chunks = vec![
        delta_chunk(
            0,
            json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
            "function": {"name": "send", "arguments": "{\"x\":\"BO"}}]}),
            None,
        ),
        delta_chunk(
            0,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "OM\"}"}}]}),
            Some("tool_calls"),
        ),
    ];
    let (events, _) = run(chunks, Shouty::default(), false).await;
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, StreamEvent::Chunk(c) if serde_json::to_string(c).unwrap().contains("tool_calls"))),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(StreamEvent::Error(Error::GuardrailRejected { .. }))
    ));
}

/// Polls `events` to the end without waiting; returns the number of
/// checks `calls` had seen each time the stream was pending, and the text
/// it yielded.
async fn poll_through(
    mut events: BoxStream<'static, StreamEvent>,
    calls: &Mutex<Vec<Call>>,
) -> (Vec<usize>, Vec<String>) {
    let (mut pending_after, mut sent) = (Vec::new(), Vec::new());
    loop {
        match futures_util::poll!(events.next()) {
            std::task::Poll::Pending => pending_after.push(calls.lock().unwrap().len()),
            std::task::Poll::Ready(Some(e)) => sent.extend(texts(&[e])),
            std::task::Poll::Ready(None) => return (pending_after, sent),
        }
    }
}

fn three_sentences() -> BoxStream<'static, Result<ChatChunk, UpstreamError>> {
    let chunks = vec![
        chunk(Some("One. "), None),
        chunk(Some("Two. "), None),
        chunk(Some("Three. "), None),
        chunk(None, Some("stop")),
    ];
    stream::iter(chunks.into_iter().map(Ok)).boxed()
}

/// Hyper writes a body's frames to the socket only once the body is
/// pending: the first text that passed must not wait in its buffer while
/// later windows are checked, even when the upstream had every chunk
/// ready. Later text of the burst is not split up.
#[tokio::test]
async fn the_first_text_is_handed_to_the_server_before_the_next_check() {
    let checker = Shouty::default();
    let calls = checker.0.clone();
    let events = guarded(three_sentences(), checker, sentence(), false, ());
    let (pending_after, sent) = poll_through(events, &calls).await;
    assert_eq!(sent, ["ONE. ", "TWO. ", "THREE. "]);
    assert_eq!(
        calls.lock().unwrap().len(),
        4,
        "three windows and the final one"
    );
    assert_eq!(
        pending_after,
        [1],
        "pending once, after the first window's text, before the second check"
    );
}

/// A chain with nothing in it: checks cost nothing, so the burst is not
/// split; the first text is still written before the ledger settles.
#[derive(Clone, Default)]
struct Free(Shouty);

impl WindowChecker for Free {
    async fn check(
        &mut self,
        text: &str,
        ctx: &OutputContext,
    ) -> Result<String, (String, Rejection)> {
        self.0.check(text, ctx).await
    }

    fn is_free(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_free_chain_hands_the_first_text_over_before_the_ledger() {
    let checker = Free::default();
    let calls = checker.0.0.clone();
    let events = guarded(three_sentences(), checker, sentence(), false, ());
    let (pending_after, sent) = poll_through(events, &calls).await;
    assert_eq!(sent, ["ONE. ", "TWO. ", "THREE. "]);
    assert_eq!(pending_after, [4], "after every check, before the ledger");
}
