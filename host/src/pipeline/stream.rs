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
//! **Seams**: a window closed by size is cut after its last whitespace
//! (a word never straddles two windows), and each check after the first
//! starts with the seam overlap: the last `overlap-chars` (default 64)
//! characters already sent, from a word start. An entity written across a
//! seam (`4111 1111` | `1111 1111`) is seen whole: a reject ends the stream;
//! a transform that rewrites the overlap is handled by [`after_overlap`]
//! (the client keeps what it has, the rest arrives rewritten).
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
use super::stream_choice::{self, Held};

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
    /// `text` is the window after the seam overlap (see [`Window::check`]).
    /// Returns the text to forward, or the rejecting plugin and its reason.
    fn check(
        &mut self,
        text: &str,
        ctx: &OutputContext,
    ) -> impl Future<Output = Result<String, (String, Rejection)>> + Send;

    /// Once a flag holds the answer for review (see
    /// [`super::review`]): the message the client gets instead of the
    /// rest. Default: never.
    fn held(&self) -> Option<String> {
        None
    }

    /// Upstream text of `choice` that arrived after the answer was held:
    /// never checked, never sent, kept for the reviewer.
    fn withhold(&mut self, _choice: u32, _text: &str) {}

    /// True when a check costs next to nothing (no guardrail in the
    /// chain): the first text is then not written out before the next
    /// check, only before the ledger settles (see [`Flushing`]).
    /// Default: false.
    fn is_free(&self) -> bool {
        false
    }
}

/// A checker that has the server write the stream's first text before
/// more is checked.
///
/// Hyper polls a response body for frames as long as they are ready and
/// writes them to the socket only once the body is pending (or 16 frames
/// are queued). Windows are checked inline, so when an upstream read
/// brings several events at once (a short answer, a proxy that buffers,
/// TCP coalescing, a cache replay) the first window's text sat in hyper's
/// buffer while every later window was checked and the ledger settled:
/// the time to first token grew by all of that (bench/README.md, "Time to
/// first token through three guardrails"). Once, before the first costly
/// step after the first text, the body is pending for one poll
/// ([`PendingOnce`]): hyper writes, then polls the body again within the
/// same wake-up. Later text of a burst is written together, as before:
/// writing every window on its own cost more whole-answer time than it
/// saved (measured).
struct Flushing<C> {
    inner: C,
    first: FirstText,
}

/// Where the stream's first text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstText {
    NotSent,
    /// Yielded; hyper may still hold it.
    Unwritten,
    Written,
}

impl<C: WindowChecker> Flushing<C> {
    /// Text was yielded (when `any`).
    fn sent(&mut self, any: bool) {
        if any && self.first == FirstText::NotSent {
            self.first = FirstText::Unwritten;
        }
    }

    /// Be pending once if the first text may still be buffered.
    async fn flush(&mut self) {
        if self.first == FirstText::Unwritten {
            self.first = FirstText::Written;
            PendingOnce(false).await;
        }
    }
}

/// Pending on its first poll, with its own wake-up already sent; ready on
/// the next. Not `tokio::task::yield_now`: that defers the wake-up until the
/// worker has no other task, or 61 polls later, which under load held
/// streams for tens to hundreds of ms (bench/README.md). Hyper (1.12)
/// polls a body again right after the flush a pending body lets it do, so
/// the stream goes on at once; the wake-up sent costs one spare poll of
/// the connection's task, and keeps the stream alive whatever the server.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl<C: WindowChecker> WindowChecker for Flushing<C> {
    async fn check(
        &mut self,
        text: &str,
        ctx: &OutputContext,
    ) -> Result<String, (String, Rejection)> {
        if !self.inner.is_free() {
            self.flush().await;
        }
        self.inner.check(text, ctx).await
    }

    fn held(&self) -> Option<String> {
        self.inner.held()
    }

    fn withhold(&mut self, choice: u32, text: &str) {
        self.inner.withhold(choice, text);
    }

    fn is_free(&self) -> bool {
        self.inner.is_free()
    }
}

/// How a stream ended, for its ledger record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream finished and every window passed.
    Complete,
    /// An output guardrail rejected a window.
    Rejected,
    /// The upstream failed after the first chunk.
    UpstreamFailed,
}

/// A stream's accounting: sees every upstream chunk (text and usage) and
/// settles once, before the client gets the usage chunk and `[DONE]` (or
/// the error event). A ledger dropped before [`StreamLedger::end`] (the
/// client left) settles on its own.
pub trait StreamLedger: Send + 'static {
    fn observe(&mut self, chunk: &ChatChunk);
    /// An error (a `sync` ledger write that failed) ends the stream with
    /// that error instead of `[DONE]`.
    fn end(&mut self, end: StreamEnd) -> impl Future<Output = Option<Error>> + Send;
}

/// No accounting.
impl StreamLedger for () {
    fn observe(&mut self, _: &ChatChunk) {}
    async fn end(&mut self, _: StreamEnd) -> Option<Error> {
        None
    }
}

/// Held-back text of one choice.
#[derive(Debug)]
pub struct Window {
    cfg: StreamWindowConfig,
    pending: String,
    /// The end of the text sent so far: at least its last
    /// `context_chars + overlap_chars` characters, at most twice as many
    /// (trimmed in batches).
    emitted: String,
    /// Characters in `emitted`.
    emitted_chars: usize,
    index: u32,
    /// The choice (`n > 1`) whose text this is.
    choice: u32,
    /// `content` or `refusal`.
    part: OutputPart,
}

/// What one window's check is given: the text to check (the seam overlap
/// followed by the new text) and its context.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The end of the text already sent, checked again (see [`Window::check`]).
    pub overlap: String,
    pub ctx: OutputContext,
}

impl Window {
    pub fn new(cfg: StreamWindowConfig) -> Self {
        Self {
            cfg,
            pending: String::new(),
            emitted: String::new(),
            emitted_chars: 0,
            index: 0,
            choice: 0,
            part: OutputPart::Content,
        }
    }

    /// The window of choice `index` (default: choice 0).
    pub fn for_choice(mut self, index: u32) -> Self {
        self.choice = index;
        self
    }

    /// The window of `part` (default: `content`).
    pub fn for_part(mut self, part: OutputPart) -> Self {
        self.part = part;
        self
    }

    pub fn choice(&self) -> u32 {
        self.choice
    }

    pub fn part(&self) -> OutputPart {
        self.part
    }

    /// Add upstream text; returns the text of a window that just closed.
    /// A window closed by size (`chars` mode or `max-hold-chars`) is cut
    /// after its last whitespace, so a word (an email address, a key, a
    /// card number written without spaces) is never split between two
    /// windows; the partial word waits for the next one.
    pub fn push(&mut self, text: &str) -> Option<String> {
        self.pending.push_str(text);
        let held = self.pending.chars().count();
        let cut = match self.cfg.mode {
            WindowMode::Chars if held >= self.cfg.chars => {
                Some(word_cut(&self.pending, self.cfg.chars))
            }
            WindowMode::Sentence => last_sentence_end(&self.pending),
            WindowMode::Chars => None,
        };
        let cut = cut.or_else(|| {
            (held >= self.cfg.max_hold_chars)
                .then(|| word_cut(&self.pending, self.cfg.max_hold_chars))
        })?;
        let rest = self.pending.split_off(cut);
        Some(std::mem::replace(&mut self.pending, rest))
    }

    /// Everything still held, for the final window.
    pub fn take_rest(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// What the next window's check is given besides its own text.
    ///
    /// The overlap is the last `overlap_chars` characters sent, from the
    /// first word start among them: the checked text is `overlap + window`,
    /// so an entity split by the seam is seen whole. The context is the
    /// text sent before the overlap (its last `context_chars` characters),
    /// so `emitted + output` is always the answer so far without a repeat,
    /// which is what length and JSON checks measure.
    pub fn check(&self, is_final: bool) -> Check {
        let overlap_at = self.overlap_start();
        let before = &self.emitted[..overlap_at];
        let before_chars = self.emitted_chars - self.emitted[overlap_at..].chars().count();
        let start = nth_char(before, before_chars.saturating_sub(self.cfg.context_chars));
        Check {
            overlap: self.emitted[overlap_at..].to_string(),
            ctx: OutputContext {
                emitted: before[start..].to_string(),
                window_index: self.index,
                is_final,
                choice: self.choice,
                part: self.part,
            },
        }
    }

    /// The context of the next window (see [`Window::check`]).
    pub fn context(&self, is_final: bool) -> OutputContext {
        self.check(is_final).ctx
    }

    /// Byte offset in `emitted` where the overlap starts.
    fn overlap_start(&self) -> usize {
        if self.cfg.overlap_chars == 0 {
            return self.emitted.len();
        }
        let at = nth_char(
            &self.emitted,
            self.emitted_chars.saturating_sub(self.cfg.overlap_chars),
        );
        let at_word_start = at == 0
            || at == self.emitted.len()
            || self.emitted[..at].ends_with(char::is_whitespace);
        if at_word_start {
            return at;
        }
        // Start after the partial word: its whole was checked before, and a
        // fragment of it could look like something else (a card number's
        // last digits, a shorter key).
        match self.emitted[at..].find(char::is_whitespace) {
            Some(ws) => {
                let ws = at + ws;
                ws + self.emitted[ws..].chars().next().map_or(0, char::len_utf8)
            }
            None => at,
        }
    }

    /// `text` was sent to the client.
    pub fn passed(&mut self, text: &str) {
        self.index += 1;
        let keep = self.cfg.context_chars + self.cfg.overlap_chars;
        self.emitted.push_str(text);
        self.emitted_chars += text.chars().count();
        // Trimmed only once twice the tail is held: amortised O(1) per char.
        if self.emitted_chars > keep.saturating_mul(2) {
            let cut = nth_char(&self.emitted, self.emitted_chars - keep);
            self.emitted.drain(..cut);
            self.emitted_chars = keep;
        }
    }
}

/// What of a checked window (`overlap + window`, possibly rewritten) goes
/// to the client, which already has `overlap`.
///
/// - The overlap is in the output unchanged (the usual case: a pass, a
///   transform elsewhere in the window, or a transform that adds text
///   around it): everything but the overlap is sent.
/// - The chain rewrote the overlap (an entity straddling the seam was
///   redacted): the client keeps what it was sent, and the output is sent
///   from its first character that differs from the overlap, so the rest
///   of the entity arrives rewritten. The part before the seam was already
///   sent when it was checked, which the whitespace cut makes rare: only an
///   entity with spaces inside it can straddle a seam.
pub fn after_overlap(output: &str, overlap: &str) -> String {
    if let Some(at) = output.find(overlap) {
        return [&output[..at], &output[at + overlap.len()..]].concat();
    }
    let same = output
        .char_indices()
        .zip(overlap.chars())
        .find(|((_, a), b)| a != b)
        .map_or(output.len().min(overlap.len()), |((i, _), _)| i);
    output[same..].to_string()
}

/// Byte offset of char number `n` of `s` (`s.len()` past the end).
fn nth_char(s: &str, n: usize) -> usize {
    match n {
        0 => 0,
        n => s.char_indices().nth(n).map_or(s.len(), |(i, _)| i),
    }
}

/// Where a window that reached its size `limit` is cut: just after its last
/// whitespace, when the word after it is shorter than half the limit (a
/// longer "word" is cut where it is: held text stays bounded); else at
/// the end.
fn word_cut(s: &str, limit: usize) -> usize {
    let longest_word = limit / 2;
    for (chars, (i, c)) in s.char_indices().rev().enumerate() {
        if chars > longest_word {
            break;
        }
        if c.is_whitespace() {
            return i + c.len_utf8();
        }
    }
    s.len()
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
/// `include_usage`: forward the usage chunk to the client (the ledger sees
/// it either way).
pub fn guarded(
    mut upstream: BoxStream<'static, Result<ChatChunk, UpstreamError>>,
    checker: impl WindowChecker,
    cfg: StreamWindowConfig,
    include_usage: bool,
    mut ledger: impl StreamLedger,
) -> BoxStream<'static, StreamEvent> {
    let mut checker = Flushing {
        inner: checker,
        first: FirstText::NotSent,
    };
    let stream = async_stream::stream! {
        let mut held: BTreeMap<u32, Held> = BTreeMap::new();
        // Choices whose finish_reason the client has.
        let mut finished = std::collections::BTreeSet::new();
        let mut template: Option<ChatChunk> = None;
        let mut usage: Option<Usage> = None;
        while let Some(item) = upstream.next().await {
            let mut chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    ledger.end(StreamEnd::UpstreamFailed).await;
                    yield StreamEvent::Error(Error::Upstream(e));
                    return;
                }
            };
            ledger.observe(&chunk);
            if let Some(u) = chunk.usage.take() {
                usage = Some(u);
            }
            let choices = std::mem::take(&mut chunk.choices);
            template = Some(chunk.clone());
            let mut passed = Vec::new();
            let mut finishes = Vec::new();
            for mut choice in choices {
                let h = held
                    .entry(choice.index)
                    .or_insert_with(|| Held::new(cfg, choice.index));
                match h.absorb(&mut checker, &mut choice, &chunk).await {
                    Ok(chunks) => passed.extend(chunks),
                    Err(e) => {
                        ledger.end(StreamEnd::Rejected).await;
                        yield StreamEvent::Error(e);
                        return;
                    }
                }
                let holding = checker.held().is_some();
                if let Some(reason) = choice.finish_reason.take()
                    && !holding
                {
                    finished.insert(choice.index);
                    finishes.push(ChunkChoice { delta: Delta::default(), finish_reason: Some(reason), ..choice.clone() });
                }
                // What is left of the delta (the role, fields nobody
                // checks) goes on at once, unless the answer is held.
                let d = &choice.delta;
                if !holding && (d.role.is_some() || d.content.is_some() || !d.extra.is_empty()) {
                    let mut head = chunk.clone();
                    head.choices.push(choice);
                    yield StreamEvent::Chunk(head);
                }
            }
            checker.sent(!passed.is_empty());
            for c in passed {
                yield StreamEvent::Chunk(c);
            }
            if !finishes.is_empty() {
                yield StreamEvent::Chunk(ChatChunk { choices: finishes, ..chunk });
            }
        }

        // Upstream ended: choices without a finish_reason still get their
        // final window; an answer with no text at all still gets checked.
        let template = template.unwrap_or_else(empty_template);
        if held.is_empty() {
            held.insert(0, Held::new(cfg, 0));
        }
        for h in held.values_mut().filter(|h| !h.finished) {
            match h.finish(&mut checker, &template).await {
                Ok(chunks) => {
                    checker.sent(!chunks.is_empty());
                    for c in chunks {
                        yield StreamEvent::Chunk(c);
                    }
                }
                Err(e) => {
                    ledger.end(StreamEnd::Rejected).await;
                    yield StreamEvent::Error(e);
                    return;
                }
            }
        }
        // The record is written before the client holds the whole answer,
        // but not before it holds the first text.
        checker.flush().await;
        if let Some(e) = ledger.end(StreamEnd::Complete).await {
            yield StreamEvent::Error(e);
            return;
        }
        // Held for review: every choice still open gets the held message
        // as the rest of its answer.
        if let Some(message) = checker.held() {
            let open: Vec<u32> = held.keys().copied().filter(|i| !finished.contains(i)).collect();
            for &i in &open {
                yield StreamEvent::Chunk(stream_choice::chunk(&template, i, Some(message.clone()), Default::default()));
            }
            let stops = open.iter().map(|&index| ChunkChoice {
                index,
                delta: Delta::default(),
                finish_reason: Some("stop".into()),
                extra: Default::default(),
            });
            yield StreamEvent::Chunk(ChatChunk { choices: stops.collect(), usage: None, ..template.clone() });
        }
        if let (Some(u), true) = (usage, include_usage) {
            yield StreamEvent::Chunk(ChatChunk { usage: Some(u), choices: Vec::new(), ..template });
        }
        yield StreamEvent::Done;
    };
    stream.boxed()
}

/// Check one closed window of `w` (with its seam overlap); the text to
/// send, after [`after_overlap`].
pub(super) async fn run_check(
    checker: &mut impl WindowChecker,
    w: &mut Window,
    text: &str,
    is_final: bool,
) -> Result<String, Error> {
    if checker.held().is_some() {
        checker.withhold(w.choice(), text);
        w.passed("");
        return Ok(String::new());
    }
    let Check { overlap, ctx } = w.check(is_final);
    let checked = if overlap.is_empty() {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned([overlap.as_str(), text].concat())
    };
    match checker.check(&checked, &ctx).await {
        Ok(out) => {
            let out = after_overlap(&out, &overlap);
            // This window's flag holds the answer: it is withheld too.
            if checker.held().is_some() {
                checker.withhold(w.choice(), &out);
                w.passed("");
                return Ok(String::new());
            }
            w.passed(&out);
            Ok(out)
        }
        Err((plugin, r)) => Err(Error::rejected(plugin, r)),
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
