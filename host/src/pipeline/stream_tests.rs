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
    let sink = seen.clone();
    let up = stream::iter(chunks.into_iter().map(Ok)).boxed();
    let events = guarded(up, checker, sentence(), include_usage, move |u| {
        *sink.lock().unwrap() = Some(u);
    })
    .collect()
    .await;
    let usage = *seen.lock().unwrap();
    (events, usage)
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
            ("Two. ".into(), "ONE. ".into(), 1, false),
            ("Three".into(), "ONE. TWO. ".into(), 2, true),
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
