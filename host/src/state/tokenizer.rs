//! Token counts with a real BPE tokenizer (`tiktoken-rs`), for the
//! worst-case estimate before a call and for usage records when an
//! upstream reports none (those records are marked `estimated`).
//!
//! Encodings: `cl100k_base` for the GPT-4 / GPT-3.5 generation and the
//! older embedding models, `o200k_base` for everything else. Anthropic
//! publishes no tokenizer; `o200k_base` counts within a few percent of its
//! usage on English text, which is what an estimate needs.
//!
//! Loading an encoding parses its 100-200k-entry rank file and compiles its
//! split regex: 0.32-0.34 s for `o200k_base` in a release build
//! (`benches/state.rs` prints it before its benchmarks). So
//! [`warm_up`] loads `o200k_base` on a background thread at start, and the
//! first request never pays for it (unless it arrives within that time,
//! when it waits for the same load instead of starting another).

use std::time::{Duration, Instant};

use tiktoken_rs::CoreBPE;
use tiktoken_rs::{cl100k_base_singleton, o200k_base_singleton};

/// Chat framing per OpenAI's counting guide: each message costs a few
/// tokens beyond its text, and the reply is primed with three more.
const PER_MESSAGE: u32 = 3;
const REPLY_PRIMING: u32 = 3;

fn uses_cl100k(model: &str) -> bool {
    let m = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    if m.starts_with("gpt-4o") || m.starts_with("gpt-4.") {
        return false;
    }
    m.starts_with("gpt-4") || m.starts_with("gpt-3.5") || m.starts_with("text-embedding-")
}

fn encoding(model: &str) -> &'static CoreBPE {
    if uses_cl100k(model) {
        cl100k_base_singleton()
    } else {
        o200k_base_singleton()
    }
}

/// Load the common encoding on a background thread (see the module doc).
pub fn warm_up() {
    std::thread::Builder::new()
        .name("sluice-tokenizer".into())
        .spawn(|| {
            let took = load_time();
            tracing::debug!(ms = took.as_millis() as u64, "tokenizer loaded");
        })
        .ok();
}

/// How long loading `o200k_base` took in this process (zero if it was
/// already loaded).
fn load_time() -> Duration {
    let start = Instant::now();
    let _ = o200k_base_singleton();
    start.elapsed()
}

/// Tokens in `text` for `model`.
pub fn count(model: &str, text: &str) -> u32 {
    u32::try_from(encoding(model).encode_ordinary(text).len()).unwrap_or(u32::MAX)
}

/// Prompt tokens of a chat conversation given as (role, content) pairs.
pub fn count_chat<'a>(model: &str, messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> u32 {
    let bpe = encoding(model);
    let mut n = REPLY_PRIMING;
    for (role, content) in messages {
        let tokens = bpe.encode_ordinary(role).len() + bpe.encode_ordinary(content).len();
        n = n
            .saturating_add(PER_MESSAGE)
            .saturating_add(u32::try_from(tokens).unwrap_or(u32::MAX));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_models_encoding() {
        // Known counts: "hello world" is 2 tokens in both encodings; the
        // encodings differ on longer text.
        assert_eq!(count("gpt-4o", "hello world"), 2);
        assert_eq!(count("gpt-4", "hello world"), 2);
        assert!(uses_cl100k("gpt-4-0613") && uses_cl100k("gpt-3.5-turbo"));
        assert!(
            !uses_cl100k("gpt-4o-mini")
                && !uses_cl100k("gpt-4.1")
                && !uses_cl100k("claude-3-5-haiku")
        );
        let text = "Tokenizers split text into sub-word units; numbers like 1234567 split too.";
        let n = count("gpt-4o", text);
        assert!((12..=30).contains(&n), "{n}");
    }

    #[test]
    fn chat_framing_is_counted() {
        let msgs = [("system", "Be brief."), ("user", "hello world")];
        let content: u32 = msgs
            .iter()
            .map(|(r, c)| count("gpt-4o", r) + count("gpt-4o", c))
            .sum();
        assert_eq!(
            count_chat("gpt-4o", msgs),
            content + 2 * PER_MESSAGE + REPLY_PRIMING
        );
        assert_eq!(count_chat("gpt-4o", []), REPLY_PRIMING);
    }

    #[test]
    fn loading_cost_is_measured() {
        // Records what a cold first request would pay (the figure quoted in
        // the module doc and in `[state] warm-tokenizer`); no time bound.
        let first = load_time();
        assert_eq!(count("gpt-4o", "hello world"), 2);
        println!("o200k_base load: {first:?} (zero if another test loaded it first)");
    }
}
