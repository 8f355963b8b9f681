//! Flagged answers: a guardrail's `flag` verdict (not sure; a person should
//! look) sends the answer to the human review queue
//! ([`crate::state::review`]). Per model (`[models.NAME.review]`), a flagged
//! answer is either
//!
//! - **served** (`on-flag = "serve"`, the default): the client gets it as
//!   checked, and a copy waits in the queue. A flag is the chain saying "not
//!   sure": what it is sure about it rejects, so holding every uncertain
//!   answer would turn each false alarm into a failed request; or
//! - **held** (`on-flag = "hold"`): the client gets `held-message` in place
//!   of the answer (a normal completion, `finish_reason: "stop"`), and the
//!   answer waits in the queue. In a stream, the flagged window and
//!   everything after it are withheld: what was sent before it stays sent,
//!   the held message follows as the rest of each choice, and the upstream
//!   is still read to its end (the reviewer sees the whole answer, the
//!   ledger its usage).
//!
//! Input flags count too (part `input`). A rejected answer is not queued.
//! Without a queue (no state opened) a flag is logged, and a held answer is
//! still held: `hold` fails closed.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::openai::{ChatCompletion, ChatMessage, ChatRequest};
use crate::plugin::{Flag, OutputPart};
use crate::state::review::{FlagEntry, OnFlag, ReviewItem, ReviewQueue};

use super::{RequestCtx, StreamEvent};

/// The message a held answer is replaced by, unless configured.
pub const DEFAULT_HELD_MESSAGE: &str =
    "This answer needs a human review before it can be shown. Please try again later.";

/// `[models.NAME.review]`: what a flagged answer does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ReviewConfig {
    /// `serve` (default): the client gets the flagged answer and a copy is
    /// queued for review. `hold`: the client gets `held-message` instead
    /// and the answer waits in the queue. Cost: one store write per
    /// flagged answer either way; `hold` also costs the user the answer.
    pub on_flag: OnFlag,
    /// What a held request is answered with. Default: "This answer needs a
    /// human review before it can be shown. Please try again later."
    pub held_message: String,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            on_flag: OnFlag::Serve,
            held_message: DEFAULT_HELD_MESSAGE.into(),
        }
    }
}

/// What happened to a flagged answer: the `x-sluice-review` header
/// (`queued` or `held`, with the item id when it was stored).
#[derive(Debug, Clone, PartialEq)]
pub struct Reviewed {
    pub action: OnFlag,
    /// None when there is no queue or the store failed (logged).
    pub id: Option<String>,
}

impl Reviewed {
    pub fn header_value(&self) -> String {
        let what = match self.action {
            OnFlag::Serve => "queued",
            OnFlag::Hold => "held",
        };
        match &self.id {
            Some(id) => format!("{what}; id={id}"),
            None => format!("{what}; not stored"),
        }
    }
}

/// The name of `part` in a review item.
pub fn part_name(part: &OutputPart) -> String {
    match part {
        OutputPart::Content => "content".into(),
        OutputPart::Refusal => "refusal".into(),
        OutputPart::ToolName(n) => format!("tool-name({n})"),
        OutputPart::ToolArguments(n) => format!("tool-arguments({n})"),
    }
}

/// Review entries for `flagged` (plugin, flag) raised on `choice`'s `part`.
pub fn entries(flagged: &[(String, Flag)], choice: u32, part: &str) -> Vec<FlagEntry> {
    flagged
        .iter()
        .map(|(plugin, f)| FlagEntry {
            plugin: plugin.clone(),
            code: f.code.clone(),
            reason: f.reason.clone(),
            score: f.score,
            choice,
            part: part.into(),
        })
        .collect()
}

fn item(
    ctx: &RequestCtx,
    req: &ChatRequest,
    action: OnFlag,
    stream: bool,
    flags: Vec<FlagEntry>,
    answer: Value,
) -> ReviewItem {
    let created_ms = crate::state::now_ms();
    ReviewItem {
        id: ReviewItem::id_for(created_ms, &ctx.id),
        created_ms,
        request_id: ctx.id.clone(),
        model: req.model.clone(),
        key_id: ctx.principal.key_id.clone(),
        action,
        stream,
        flags,
        messages: serde_json::to_value(&req.messages).unwrap_or(Value::Null),
        answer,
    }
}

/// Queue `item`; its id, or None (logged) when there is no queue or the
/// store failed.
async fn enqueue(queue: Option<&ReviewQueue>, item: ReviewItem) -> Option<String> {
    let codes: Vec<&str> = item.flags.iter().map(|f| f.code.as_str()).collect();
    let Some(queue) = queue else {
        tracing::warn!(request_id = %item.request_id, ?codes, "flagged answer not queued: no review queue (no state opened)");
        return None;
    };
    match queue.enqueue(&item).await {
        Ok(()) => {
            tracing::info!(request_id = %item.request_id, review_id = %item.id, action = ?item.action, ?codes, "flagged answer queued for review");
            Some(item.id)
        }
        Err(e) => {
            tracing::error!(request_id = %item.request_id, error = %e, "flagged answer could not be queued for review");
            None
        }
    }
}

/// A non-streamed answer with `flags`: queue it, and when the model holds
/// flagged answers replace every choice by the held message.
pub(super) async fn settle(
    queue: Option<&ReviewQueue>,
    cfg: &ReviewConfig,
    ctx: &RequestCtx,
    req: &ChatRequest,
    completion: &mut ChatCompletion,
    flags: Vec<FlagEntry>,
) -> Reviewed {
    let answer = serde_json::to_value(&*completion).unwrap_or(Value::Null);
    let id = enqueue(queue, item(ctx, req, cfg.on_flag, false, flags, answer)).await;
    if cfg.on_flag == OnFlag::Hold {
        for choice in &mut completion.choices {
            choice.message = ChatMessage::text("assistant", cfg.held_message.clone());
            choice.finish_reason = Some("stop".into());
        }
    }
    Reviewed {
        action: cfg.on_flag,
        id,
    }
}

/// A stream's flags, shared by its window checker (which raises them and
/// holds the answer) and [`StreamReview::finish`] (which queues it).
#[derive(Debug)]
pub(super) struct StreamReview {
    cfg: ReviewConfig,
    flags: Mutex<Vec<FlagEntry>>,
    /// Per choice: text the checker withheld (the flagged window and what
    /// the upstream sent after it), when holding.
    withheld: Mutex<Vec<(u32, String)>>,
}

impl StreamReview {
    pub fn new(cfg: ReviewConfig, input_flags: Vec<FlagEntry>) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            flags: Mutex::new(input_flags),
            withheld: Mutex::new(Vec::new()),
        })
    }

    /// Whether anything (input or a window) was flagged.
    pub fn any_flag(&self) -> bool {
        !self.flags.lock().is_empty()
    }

    /// Record flags.
    pub fn flagged(&self, flags: Vec<FlagEntry>) {
        self.flags.lock().extend(flags);
    }

    /// The held message, once a flag holds the answer.
    pub fn held(&self) -> Option<String> {
        (self.cfg.on_flag == OnFlag::Hold && !self.flags.lock().is_empty())
            .then(|| self.cfg.held_message.clone())
    }

    pub fn withhold(&self, choice: u32, text: &str) {
        let mut w = self.withheld.lock();
        match w.iter_mut().find(|(c, _)| *c == choice) {
            Some((_, t)) => t.push_str(text),
            None => w.push((choice, text.to_string())),
        }
    }

    /// The stream ended normally: queue the answer if anything flagged it.
    /// `sent` is each choice's text as the client received it.
    pub async fn finish(
        &self,
        queue: Option<&ReviewQueue>,
        ctx: &RequestCtx,
        req: &ChatRequest,
        sent: &[(u32, String)],
    ) {
        let flags = std::mem::take(&mut *self.flags.lock());
        if flags.is_empty() {
            return;
        }
        let withheld = std::mem::take(&mut *self.withheld.lock());
        let mut choices: Vec<Value> = sent
            .iter()
            .map(|(i, t)| json!({"index": i, "sent": t}))
            .collect();
        for (i, text) in withheld {
            match choices.iter_mut().find(|c| c["index"] == i) {
                Some(c) => c["withheld"] = json!(text),
                None => choices.push(json!({"index": i, "sent": "", "withheld": text})),
            }
        }
        let answer = json!({"choices": choices});
        enqueue(queue, item(ctx, req, self.cfg.on_flag, true, flags, answer)).await;
    }
}

/// Pass a stream's events through, noting each choice's content as the
/// client receives it; at its end (`[DONE]`) queue the answer if a
/// guardrail flagged it, before the client hears the end. A stream that
/// ends in an error (a reject, an upstream failure) is not queued.
pub(super) fn watch(
    mut events: BoxStream<'static, StreamEvent>,
    review: Arc<StreamReview>,
    queue: Option<ReviewQueue>,
    ctx: RequestCtx,
    req: ChatRequest,
) -> BoxStream<'static, StreamEvent> {
    let stream = async_stream::stream! {
        let mut sent: Vec<(u32, String)> = Vec::new();
        while let Some(event) = events.next().await {
            match &event {
                StreamEvent::Chunk(c) => {
                    for ch in &c.choices {
                        let Some(text) = ch.delta.content.as_deref() else { continue };
                        match sent.iter_mut().find(|(i, _)| *i == ch.index) {
                            Some((_, t)) => t.push_str(text),
                            None => sent.push((ch.index, text.to_string())),
                        }
                    }
                }
                StreamEvent::Done => review.finish(queue.as_ref(), &ctx, &req, &sent).await,
                StreamEvent::Error(_) => {}
            }
            yield event;
        }
    };
    stream.boxed()
}
