//! Guardrails on a streamed answer.
//!
//! Upstream tokens are held back in a window per choice. When a window
//! closes (a sentence end, or N characters, or the max-hold cap; see
//! [`StreamWindowConfig`]) the output chain runs on it with the text already
//! sent as context, and only what passed (possibly rewritten by a transform)
//! is forwarded. At the end of the answer the remainder runs as the final
//! window (`is_final = true`), even when empty, so checks that need the whole
//! answer (valid JSON, minimum length) can decide. The context is the tail
//! of the emitted text (`context-chars`), so each window costs the same
//! however long the answer already is.
//!
//! **Latency trade-off**: the client receives each window only once it is
//! complete and checked, so time-to-first-token grows by roughly one window
//! (a sentence, or `chars` characters) and the stream arrives in bursts.
//! Smaller windows mean smoother output but more plugin calls and less
//! context per check. No text ever reaches the client unchecked.
//!
//! **Errors mid-stream**: a guardrail reject (or an upstream failure after the
//! first chunk) sends one OpenAI-shaped error event, `data: {"error":{...}}`,
//! and ends the stream *without* `data: [DONE]`: the answer is incomplete, and
//! OpenAI's SDKs raise on an error event. Held-back text is discarded.

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::config::{StreamWindowConfig, WindowMode};
use crate::openai::{ChatChunk, ChunkChoice, Delta, Usage};
use crate::plugin::{OutputContext, OutputPart, Rejection};
use crate::provider::UpstreamError;

use super::Error;

/// One SSE event for the client.
#[derive(Debug)]
pub enum StreamEvent {
    Chunk(ChatChunk),
    /// Sent as `data: {"error": ...}`; the stream ends after it.
    Error(Error),
    /// `data: [DONE]`.
    Done,
}

/// Runs the output chain on one window. The pipeline's implementation calls
/// the sandboxed plugins; tests substitute their own.
pub trait WindowChecker: Send + 'static {
    /// Returns the text to forward, or the rejecting plugin and its reason.
    fn check(
        &mut self,
        text: &str,
        ctx: &OutputContext,
    ) -> impl Future<Output = Result<String, (String, Rejection)>> + Send;
}

/// Held-back text of one choice.
#[derive(Debug)]
pub struct Window {
    cfg: StreamWindowConfig,
    pending: String,
    /// The end of the text sent so far: at least its last `context_chars`
    /// characters, at most twice as many (trimmed in batches).
    emitted: String,
    /// Characters in `emitted`.
    emitted_chars: usize,
    index: u32,
    finished: bool,
    /// The choice (`n > 1`) whose content this is.
    choice: u32,
}

impl Window {
    pub fn new(cfg: StreamWindowConfig) -> Self {
        Self {
            cfg,
            pending: String::new(),
            emitted: String::new(),
            emitted_chars: 0,
            index: 0,
            finished: false,
            choice: 0,
        }
    }

    /// The window of choice `index`'s content (default: choice 0).
    pub fn for_choice(mut self, index: u32) -> Self {
        self.choice = index;
        self
    }

    /// Add upstream text; returns the text of a window that just closed.
    pub fn push(&mut self, text: &str) -> Option<String> {
        self.pending.push_str(text);
        let held = self.pending.chars().count();
        let cut = match self.cfg.mode {
            WindowMode::Chars if held >= self.cfg.chars => Some(self.pending.len()),
            WindowMode::Sentence => last_sentence_end(&self.pending),
            WindowMode::Chars => None,
        };
        let cut = cut.or((held >= self.cfg.max_hold_chars).then_some(self.pending.len()))?;
        let rest = self.pending.split_off(cut);
        Some(std::mem::replace(&mut self.pending, rest))
    }

    /// Everything still held, for the final window.
    pub fn take_rest(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// The context of the next window: the last `context_chars` characters
    /// of what was sent.
    pub fn context(&self, is_final: bool) -> OutputContext {
        let skip = self.emitted_chars.saturating_sub(self.cfg.context_chars);
        let start = match skip {
            0 => 0,
            n => self
                .emitted
                .char_indices()
                .nth(n)
                .map_or(self.emitted.len(), |(i, _)| i),
        };
        OutputContext {
            emitted: self.emitted[start..].to_string(),
            window_index: self.index,
            is_final,
            choice: self.choice,
            part: OutputPart::Content,
        }
    }

    /// `text` was sent to the client.
    pub fn passed(&mut self, text: &str) {
        self.index += 1;
        let keep = self.cfg.context_chars;
        self.emitted.push_str(text);
        self.emitted_chars += text.chars().count();
        // Trimmed only once twice the tail is held: amortised O(1) per char.
        if self.emitted_chars > keep.saturating_mul(2) {
            let cut = self
                .emitted
                .char_indices()
                .nth(self.emitted_chars - keep)
                .map_or(self.emitted.len(), |(i, _)| i);
            self.emitted.drain(..cut);
            self.emitted_chars = keep;
        }
    }
}

/// Byte offset just past the last sentence end: `.`, `!` or `?` followed by
/// whitespace (the whitespace stays with the sentence), or a newline.
fn last_sentence_end(s: &str) -> Option<usize> {
    let mut end = None;
    let mut prev_terminal = false;
    for (i, c) in s.char_indices() {
        if c == '\n' || (prev_terminal && c.is_whitespace()) {
            end = Some(i + c.len_utf8());
        }
        prev_terminal = matches!(c, '.' | '!' | '?');
    }
    end
}

/// Wrap an upstream chunk stream so every piece of text passes `checker`.
/// `include_usage`: forward the usage chunk to the client (it is always
/// handed to `on_usage` for the ledger when the upstream sends one).
pub fn guarded(
    mut upstream: BoxStream<'static, Result<ChatChunk, UpstreamError>>,
    mut checker: impl WindowChecker,
    cfg: StreamWindowConfig,
    include_usage: bool,
    on_usage: impl FnOnce(Usage) + Send + 'static,
) -> BoxStream<'static, StreamEvent> {
    let stream = async_stream::stream! {
        let mut windows: BTreeMap<u32, Window> = BTreeMap::new();
        let mut template: Option<ChatChunk> = None;
        let mut usage: Option<Usage> = None;
        while let Some(item) = upstream.next().await {
            let mut chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    yield StreamEvent::Error(Error::Upstream(e));
                    return;
                }
            };
            if let Some(u) = chunk.usage.take() {
                usage = Some(u);
            }
            let choices = std::mem::take(&mut chunk.choices);
            template = Some(chunk.clone());
            let mut texts = Vec::new();
            let mut finishes = Vec::new();
            for mut choice in choices {
                let w = windows
                    .entry(choice.index)
                    .or_insert_with(|| Window::new(cfg).for_choice(choice.index));
                let mut checked = Vec::new();
                match choice.delta.content.take() {
                    Some(t) if t.is_empty() => choice.delta.content = Some(t),
                    Some(t) => checked.extend(w.push(&t).map(|text| (text, false))),
                    None => {}
                }
                if choice.finish_reason.is_some() {
                    checked.push((w.take_rest(), true));
                    w.finished = true;
                }
                for (text, is_final) in checked {
                    match run_check(&mut checker, w, &text, is_final).await {
                        Ok(out) if out.is_empty() => {}
                        Ok(out) => texts.push(text_chunk(&chunk, choice.index, out)),
                        Err(e) => {
                            yield StreamEvent::Error(e);
                            return;
                        }
                    }
                }
                if let Some(reason) = choice.finish_reason.take() {
                    finishes.push(ChunkChoice { delta: Delta::default(), finish_reason: Some(reason), ..choice.clone() });
                }
                let d = &choice.delta;
                if d.role.is_some() || d.content.is_some() || !d.extra.is_empty() {
                    let mut head = chunk.clone();
                    head.choices.push(choice);
                    yield StreamEvent::Chunk(head);
                }
            }
            for t in texts {
                yield StreamEvent::Chunk(t);
            }
            if !finishes.is_empty() {
                yield StreamEvent::Chunk(ChatChunk { choices: finishes, ..chunk });
            }
        }

        // Upstream ended: choices without a finish_reason still get their
        // final window; an answer with no text at all still gets checked.
        let template = template.unwrap_or_else(empty_template);
        if windows.is_empty() {
            windows.insert(0, Window::new(cfg));
        }
        for (index, w) in windows.iter_mut().filter(|(_, w)| !w.finished) {
            let rest = w.take_rest();
            match run_check(&mut checker, w, &rest, true).await {
                Ok(out) if out.is_empty() => {}
                Ok(out) => yield StreamEvent::Chunk(text_chunk(&template, *index, out)),
                Err(e) => {
                    yield StreamEvent::Error(e);
                    return;
                }
            }
        }
        if let Some(u) = usage {
            on_usage(u);
            if include_usage {
                yield StreamEvent::Chunk(ChatChunk { usage: Some(u), choices: Vec::new(), ..template });
            }
        }
        yield StreamEvent::Done;
    };
    stream.boxed()
}

async fn run_check(
    checker: &mut impl WindowChecker,
    w: &mut Window,
    text: &str,
    is_final: bool,
) -> Result<String, Error> {
    match checker.check(text, &w.context(is_final)).await {
        Ok(out) => {
            w.passed(&out);
            Ok(out)
        }
        Err((plugin, r)) => Err(Error::GuardrailRejected {
            plugin,
            reason: r.reason,
            code: r.code,
        }),
    }
}

fn text_chunk(template: &ChatChunk, index: u32, text: String) -> ChatChunk {
    ChatChunk {
        choices: vec![ChunkChoice {
            index,
            delta: Delta {
                content: Some(text),
                ..Delta::default()
            },
            finish_reason: None,
            extra: Default::default(),
        }],
        usage: None,
        ..template.clone()
    }
}

fn empty_template() -> ChatChunk {
    ChatChunk {
        id: String::new(),
        object: "chat.completion.chunk".into(),
        created: 0,
        model: String::new(),
        choices: Vec::new(),
        usage: None,
        extra: Default::default(),
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
