//! Deterministic content for the mock: answers derived from the prompt,
//! token counts, and embeddings where similar texts are close.

const VOCAB: &[&str] = &[
    "the",
    "gateway",
    "routes",
    "every",
    "request",
    "through",
    "a",
    "sandboxed",
    "chain",
    "of",
    "plugins",
    "before",
    "answering",
    "quickly",
    "and",
    "safely",
    "with",
    "clear",
    "errors",
    "streams",
    "tokens",
    "in",
    "windows",
    "so",
    "guardrails",
    "see",
    "each",
    "sentence",
    "upstream",
    "models",
    "reply",
    "deterministically",
    "for",
    "tests",
    "benchmarks",
    "demos",
];

/// FNV-1a: tiny, stable across runs and platforms (unlike `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The mock's answer to `prompt`: quotes its start, then two sentences
/// picked from a fixed vocabulary by the prompt's hash. Same prompt, same
/// answer; two sentences so sentence-window streaming has boundaries.
pub fn reply_for(prompt: &str) -> String {
    let excerpt: String = prompt
        .chars()
        .take(48)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut state = fnv1a(prompt.as_bytes()) | 1;
    let mut next = || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = format!("Mock answer to \"{}\".", excerpt.trim());
    for _ in 0..2 {
        let words = 6 + (next() % 6) as usize;
        for i in 0..words {
            let w = VOCAB[(next() % VOCAB.len() as u64) as usize];
            out.push(' ');
            if i == 0 {
                let mut c = w.chars();
                if let Some(first) = c.next() {
                    out.extend(first.to_uppercase());
                    out.push_str(c.as_str());
                }
            } else {
                out.push_str(w);
            }
        }
        out.push('.');
    }
    out
}

/// `bytes` bytes of deterministic sentences (cut at a character
/// boundary), for answers far longer than a request could ask for.
pub fn sized(bytes: usize) -> String {
    const SENTENCE: &str =
        "The gateway routes every request through a sandboxed chain of plugins. ";
    let mut out = SENTENCE.repeat(bytes / SENTENCE.len() + 1);
    out.truncate(out.floor_char_boundary(bytes));
    out
}

/// Splits text into stream pieces ("tokens"): each word with the
/// whitespace before it, so concatenating the pieces gives the text back.
pub fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                out.push(&text[start..i]);
                start = i;
                in_word = false;
            }
        } else {
            in_word = true;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// A rough token count: whitespace-separated words, at least one per text.
pub fn count_tokens(text: &str) -> u32 {
    text.split_whitespace().count().max(1) as u32
}

/// Words that carry no topic: a question's phrasing ("could you tell me
/// what ... is, please") differs in these between paraphrases.
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "any", "are", "as", "at", "be", "by", "can", "could", "define",
    "describe", "did", "do", "does", "explain", "for", "give", "how", "i", "in", "is", "it", "its",
    "kindly", "know", "let", "like", "me", "mean", "means", "my", "of", "on", "or", "please",
    "quick", "quickly", "say", "show", "some", "tell", "that", "the", "there", "this", "to", "us",
    "want", "was", "we", "were", "what", "whats", "which", "who", "will", "with", "would", "you",
    "your",
];

/// A crude stem: plural and verb endings off, so "cats" and "cat",
/// "boiling" and "boil" land on one dimension.
fn stem(w: &str) -> &str {
    for (suffix, min) in [("ing", 6), ("ies", 5), ("es", 5), ("ed", 5), ("s", 4)] {
        if w.len() >= min && w.ends_with(suffix) && !w.ends_with("ss") {
            return &w[..w.len() - suffix.len()];
        }
    }
    w
}

/// A unit vector of `dim` dimensions: a bag of words (lowercased,
/// stop words dropped, crudely stemmed), each word hashed to one signed
/// dimension. Paraphrases that keep the content words ("What is the
/// capital of France?" / "Tell me the capital of France, please")
/// embed identically; questions about other things share few dimensions.
/// Text with no content word falls back to one fixed dimension.
pub fn embed(text: &str, dim: usize) -> Vec<f32> {
    let dim = dim.max(1);
    let mut v = vec![0f32; dim];
    let lower = text.to_lowercase().replace(['\'', '\u{2019}'], "");
    for word in lower.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() || STOPWORDS.contains(&word) {
            continue;
        }
        let h = fnv1a(stem(word).as_bytes());
        let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
        v[(h % dim as u64) as usize] += sign;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        v[0] = 1.0;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn replies_are_deterministic_and_prompt_dependent() {
        assert_eq!(reply_for("hello"), reply_for("hello"));
        assert_ne!(reply_for("hello"), reply_for("goodbye"));
        assert!(reply_for("hello").starts_with("Mock answer to \"hello\"."));
        assert_eq!(reply_for("hello").matches('.').count(), 3);
    }

    #[test]
    fn pieces_rebuild_the_text() {
        let t = "Hi there,  friend.\nBye";
        let p = pieces(t);
        assert_eq!(p, ["Hi", " there,", "  friend.", "\nBye"]);
        assert_eq!(p.concat(), t);
        assert!(pieces("").is_empty());
        assert_eq!(pieces("  x").concat(), "  x");
    }

    #[test]
    fn embeddings_are_unit_length_and_similarity_tracks_text() {
        let a = embed("The cat sat on the mat", 256);
        let b = embed("the cat sat on a mat", 256);
        let c = embed("Quarterly revenue grew by nine percent", 256);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        assert!(cosine(&a, &b) > 0.7, "{}", cosine(&a, &b));
        assert!(cosine(&a, &c) < 0.3, "{}", cosine(&a, &c));
        assert_eq!(embed("", 8).len(), 8);
        let p = embed("What is the capital of France?", 256);
        let q = embed("Tell me the capital of France, please.", 256);
        let r = embed("What is the capital of Germany?", 256);
        assert!(cosine(&p, &q) > 0.99, "{}", cosine(&p, &q));
        assert!(cosine(&p, &r) < 0.8, "{}", cosine(&p, &r));
    }
}
