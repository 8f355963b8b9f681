//! What one streamed choice holds back: its `content` and `refusal` text in
//! windows, and its tool calls whole ([`HeldCalls`]) until it finishes.

use serde_json::{Map, Value};

use crate::config::StreamWindowConfig;
use crate::openai::{ChatChunk, ChunkChoice, Delta};
use crate::plugin::OutputPart;

use super::Error;
use super::output::{HeldCalls, whole};
use super::stream::{Window, WindowChecker, run_check};

/// The held output of one choice (`n > 1`: one each).
#[derive(Debug)]
pub(super) struct Held {
    index: u32,
    cfg: StreamWindowConfig,
    content: Window,
    /// Opened by the first `refusal` delta.
    refusal: Option<Window>,
    calls: HeldCalls,
    pub finished: bool,
}

impl Held {
    pub fn new(cfg: StreamWindowConfig, index: u32) -> Self {
        Held {
            index,
            cfg,
            content: Window::new(cfg).for_choice(index),
            refusal: None,
            calls: HeldCalls::default(),
            finished: false,
        }
    }

    /// Take the checked fields out of `choice`'s delta (content, refusal,
    /// tool calls: what is left is forwarded as is), run the chain on the
    /// windows that closed, and at its `finish_reason` on everything still
    /// held. Returns the chunks that passed, in order.
    pub async fn absorb(
        &mut self,
        checker: &mut impl WindowChecker,
        choice: &mut ChunkChoice,
        template: &ChatChunk,
    ) -> Result<Vec<ChatChunk>, Error> {
        let mut out = Vec::new();
        // Token text no guardrail sees (see `output::drop_logprobs_request`).
        if self.cfg != StreamWindowConfig::PASSTHROUGH {
            choice.extra.remove("logprobs");
            super::output::drop_unchecked(&mut choice.delta.extra);
        }
        match choice.delta.content.take() {
            Some(t) if t.is_empty() => choice.delta.content = Some(t),
            Some(t) => {
                if let Some(text) = self.content.push(&t) {
                    out.extend(check(checker, &mut self.content, &text, false, template).await?);
                }
            }
            None => {}
        }
        if let Some(t) = choice.delta.extra.remove("refusal")
            && let Some(t) = t.as_str().filter(|t| !t.is_empty())
        {
            let (index, cfg) = (self.index, self.cfg);
            let w = self.refusal.get_or_insert_with(|| {
                Window::new(cfg)
                    .for_choice(index)
                    .for_part(OutputPart::Refusal)
            });
            if let Some(text) = w.push(t) {
                out.extend(check(checker, w, &text, false, template).await?);
            }
        }
        self.calls.absorb(&mut choice.delta.extra);
        if choice.finish_reason.is_some() {
            out.extend(self.finish(checker, template).await?);
        }
        Ok(out)
    }

    /// The final windows and the tool calls: at the choice's
    /// `finish_reason`, or when the upstream ends without one.
    pub async fn finish(
        &mut self,
        checker: &mut impl WindowChecker,
        template: &ChatChunk,
    ) -> Result<Vec<ChatChunk>, Error> {
        self.finished = true;
        let mut out = Vec::new();
        let rest = self.content.take_rest();
        out.extend(check(checker, &mut self.content, &rest, true, template).await?);
        if let Some(w) = &mut self.refusal {
            let rest = w.take_rest();
            out.extend(check(checker, w, &rest, true, template).await?);
        }
        if !self.calls.is_empty() {
            let mut checked = Vec::new();
            for (part, text) in self.calls.parts() {
                if checker.held().is_some() {
                    checker.withhold(self.index, &text);
                    continue;
                }
                let ctx = whole(self.index, part);
                match checker.check(&text, &ctx).await {
                    Ok(t) => checked.push(t),
                    Err((plugin, r)) => return Err(Error::rejected(plugin, r)),
                }
            }
            let delta = self.calls.release(checked);
            // Held for review: the calls were withheld, not passed.
            if checker.held().is_none() {
                out.push(chunk(template, self.index, None, delta));
            }
        }
        Ok(out)
    }
}

/// Check a closed window; the chunk carrying what passed, if any.
async fn check(
    checker: &mut impl WindowChecker,
    w: &mut Window,
    text: &str,
    is_final: bool,
    template: &ChatChunk,
) -> Result<Option<ChatChunk>, Error> {
    let out = run_check(checker, w, text, is_final).await?;
    if out.is_empty() {
        return Ok(None);
    }
    let (index, part) = (w.choice(), w.part());
    Ok(Some(match part {
        OutputPart::Refusal => {
            let mut extra = Map::new();
            extra.insert("refusal".into(), Value::String(out));
            chunk(template, index, None, extra)
        }
        _ => chunk(template, index, Some(out), Map::new()),
    }))
}

/// A chunk of choice `index` whose delta is `content` and `extra`.
pub(super) fn chunk(
    template: &ChatChunk,
    index: u32,
    content: Option<String>,
    extra: Map<String, Value>,
) -> ChatChunk {
    ChatChunk {
        choices: vec![ChunkChoice {
            index,
            delta: Delta {
                content,
                extra,
                ..Delta::default()
            },
            finish_reason: None,
            extra: Default::default(),
        }],
        usage: None,
        ..template.clone()
    }
}
