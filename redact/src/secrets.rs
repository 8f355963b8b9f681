//! Credentials: PEM blocks first, then one pass over tokens.
//!
//! Known formats (OpenAI `sk-…`, AWS `AKIA…` ids and 40-character secret
//! keys next to an "aws"/"secret" mention, GitHub `ghp_…`/`github_pat_…`,
//! Slack `xox?-…`, PEM private key blocks) are recognised by shape;
//! anything else by Shannon entropy.

use crate::{mask, skip};

/// What was found and where (byte range).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    /// `openai-key`, `aws-access-key-id`, `aws-secret-access-key`,
    /// `github-token`, `slack-token`, `private-key`, `high-entropy-token`.
    pub kind: &'static str,
}

/// Detector settings (see the crate docs for the config keys).
#[derive(Debug, Clone)]
pub struct Scanner {
    pub generic: bool,
    pub entropy_threshold: f64,
    pub entropy_min_length: usize,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            generic: true,
            entropy_threshold: 4.0,
            entropy_min_length: 24,
        }
    }
}

/// Searched for by its `B` (offset 5): dashes are common in text, `B` less.
const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";

/// True when `emitted` ends inside a private key block (BEGIN without END),
/// so the next window starts in the middle of a key.
pub fn pem_open_at_end(emitted: &str) -> bool {
    match emitted.rfind(BEGIN) {
        Some(b) => {
            let rest = &emitted[b..];
            private_header(rest) && !rest.contains(END)
        }
        None => false,
    }
}

/// `-----BEGIN … PRIVATE KEY-----` (RSA, EC, OPENSSH, ENCRYPTED, plain).
fn private_header(at_begin: &str) -> bool {
    let line = at_begin.lines().next().unwrap_or("");
    line.contains("PRIVATE KEY")
}

/// Where the block whose END marker is searched from `from` ends: after the
/// END line, or the end of the text when the block is cut off.
fn block_end(text: &str, from: usize) -> usize {
    match text[from..].find(END) {
        Some(e) => {
            let after = from + e + END.len();
            match text[after..].find("-----") {
                Some(close) => after + close + 5,
                None => text.len(),
            }
        }
        None => text.len(),
    }
}

pub(crate) fn token_char(c: u8) -> bool {
    TOKEN[usize::from(c)]
}

/// [`token_char`] as a table: one load per byte instead of five compares.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'/' | b'=');
        c += 1;
    }
    t
};

/// The start of the first run of token bytes in `b[i..limit]` (cut at
/// `limit`) at least `min` long (`1..=64`), or `limit`. `i` starts a run
/// when `b[i]` is a token byte (the caller's loop only ever stands after a
/// non-token byte, a block or at 0).
///
/// Whole 64-byte blocks are classified into a mask at once ([`mask`]); a
/// run of `min` ones is found with `log2(min)` shift-and-ands, and the
/// ones at the top of a block carry into the next, so a run across blocks
/// is found where it starts. No branch per byte: ordinary prose (short
/// words) passes at the speed of the classification.
fn next_long_run(b: &[u8], i: usize, limit: usize, min: usize) -> usize {
    let mut p = i;
    // Token bytes just before `p` (the tail of the previous block): fewer
    // than `min`, or the run would have been returned.
    let mut carry = 0;
    while p < limit {
        let n = (limit - p).min(mask::BLOCK);
        let t = match b[p..].first_chunk::<{ mask::BLOCK }>() {
            Some(block) if n == mask::BLOCK => mask::token(block),
            _ => mask::scalar(&b[p..p + n], token_char),
        };
        let lead = t.trailing_ones() as usize;
        if carry + lead >= min {
            return p - carry;
        }
        let mut runs = t; // bit s: `t` has ones at s..s+k
        let mut k = 1;
        // At most six doublings reach any `min` up to 64: a fixed count,
        // so the compiler unrolls it and the guest has no loop here (each
        // loop head in a guest checks the epoch deadline).
        for _ in 0..6 {
            if k < min {
                let step = k.min(min - k);
                runs &= runs >> step;
                k += step;
            }
        }
        if runs != 0 {
            return p + runs.trailing_zeros() as usize;
        }
        carry = t.leading_ones() as usize;
        p += n;
    }
    limit
}

impl Scanner {
    /// All credentials in `text`, in order. `open_pem`: the text starts inside
    /// a private key block (streaming continuation).
    pub fn find(&self, text: &str, open_pem: bool) -> Vec<Finding> {
        self.find_with(text, open_pem, true)
    }

    /// The shortest token any detector flags: a Slack token (16 bytes), or
    /// `entropy-min-length` when generic detection is on and that is lower.
    fn shortest(&self) -> usize {
        const SLACK: usize = 16; // aws ids 20, openai 23, github 33 and 40
        if self.generic {
            SLACK.min(self.entropy_min_length).max(1)
        } else {
            SLACK
        }
    }

    /// [`Scanner::find`]; `fast`: pass over token runs shorter than
    /// [`Scanner::shortest`] without looking at them (none can be a
    /// credential), rather than classifying every word. Same answers either
    /// way (the tests compare both on a corpus); `false` is the reference.
    pub(crate) fn find_with(&self, text: &str, open_pem: bool, fast: bool) -> Vec<Finding> {
        let mut blocks = Vec::new();
        let mut from = 0;
        if open_pem {
            let end = block_end(text, 0);
            blocks.push(Finding {
                start: 0,
                end,
                kind: "private-key",
            });
            from = end;
        }
        // Every PEM block is set aside: private keys are findings, public keys
        // and certificates are skipped (their base64 is random but not secret).
        while let Some(start) = skip::find(text.as_bytes(), from, BEGIN.as_bytes(), 5) {
            let end = block_end(text, start + BEGIN.len());
            let kind = if private_header(&text[start..]) {
                "private-key"
            } else {
                ""
            };
            blocks.push(Finding { start, end, kind });
            from = end;
        }

        let bytes = text.as_bytes();
        let min = self.shortest();
        let mut found = Vec::new();
        let mut next_block = 0;
        let mut i = 0;
        while i < bytes.len() {
            if let Some(blk) = blocks.get(next_block).filter(|blk| i >= blk.start) {
                if !blk.kind.is_empty() {
                    found.push(blk.clone());
                }
                i = blk.end;
                next_block += 1;
                continue;
            }
            if fast {
                let limit = blocks.get(next_block).map_or(bytes.len(), |b| b.start);
                i = next_long_run(bytes, i, limit, min);
                if i == limit {
                    continue;
                }
            }
            if !token_char(bytes[i]) {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < bytes.len() && token_char(bytes[j]) {
                j += 1;
            }
            if let Some(b) = blocks.get(next_block) {
                j = j.min(b.start);
            }
            // Trailing `=`/`-` belong to assignments and dashes, not keys
            // (base64 padding is rare in keys and harmless to leave).
            let mut end = j;
            while end > i && matches!(bytes[end - 1], b'=' | b'-' | b'/') {
                end -= 1;
            }
            // `NAME=value`, `api_key=value`: judge the value (base64 has
            // `=` only as trailing padding, trimmed above).
            let start = match bytes[i..end].iter().position(|c| *c == b'=') {
                Some(eq)
                    if eq > 0
                        && bytes[i..i + eq]
                            .iter()
                            .all(|c| c.is_ascii_alphanumeric() || *c == b'_') =>
                {
                    i + eq + 1
                }
                _ => i,
            };
            if let Some(kind) = self.classify(&text[start..end], &bytes[..start]) {
                found.push(Finding { start, end, kind });
            }
            i = j;
        }
        found
    }

    /// The kind of credential `tok` is, if any. `before` is the text before it
    /// (AWS secret keys are only recognisable by context).
    fn classify(&self, tok: &str, before: &[u8]) -> Option<&'static str> {
        let t = tok.as_bytes();
        let rest_is = |skip: usize, min: usize, ok: fn(u8) -> bool| {
            t.len() >= skip + min && t[skip..].iter().all(|c| ok(*c))
        };
        let alnum_ = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
        if tok.starts_with("sk-") && rest_is(3, 20, alnum_) {
            return Some("openai-key");
        }
        if t.len() == 20
            && ["AKIA", "ASIA", "ABIA", "ACCA"]
                .iter()
                .any(|p| tok.starts_with(p))
            && t.iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Some("aws-access-key-id");
        }
        if t.len() >= 40
            && t[..4].starts_with(b"gh")
            && matches!(t[2], b'p' | b'o' | b'u' | b's' | b'r')
            && t[3] == b'_'
            && rest_is(4, 36, |c| c.is_ascii_alphanumeric())
        {
            return Some("github-token");
        }
        if tok.starts_with("github_pat_")
            && rest_is(11, 22, |c| c.is_ascii_alphanumeric() || c == b'_')
        {
            return Some("github-token");
        }
        if t.len() > 15
            && tok.starts_with("xox")
            && matches!(t[3], b'b' | b'a' | b'p' | b'r' | b's')
            && t[4] == b'-'
            && rest_is(5, 10, |c| c.is_ascii_alphanumeric() || c == b'-')
        {
            return Some("slack-token");
        }
        let mixed = t.iter().any(u8::is_ascii_digit) && t.iter().any(u8::is_ascii_alphabetic);
        if t.len() == 40
            && mixed
            && t.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'/' || *c == b'+')
        {
            let window = &before[before.len().saturating_sub(80)..];
            let lower: Vec<u8> = window.iter().map(u8::to_ascii_lowercase).collect();
            if lower.windows(3).any(|w| w == b"aws") || lower.windows(6).any(|w| w == b"secret") {
                return Some("aws-secret-access-key");
            }
        }
        // Generic: hex (hashes, UUIDs) is excluded; a token without both
        // cases (paths, slugs) must clear a half-bit higher bar.
        let hexish = t.iter().all(|c| c.is_ascii_hexdigit() || *c == b'-');
        if !self.generic || t.len() < self.entropy_min_length || !mixed || hexish {
            return None;
        }
        let both_cases =
            t.iter().any(u8::is_ascii_uppercase) && t.iter().any(u8::is_ascii_lowercase);
        let bar = self.entropy_threshold + if both_cases { 0.0 } else { 0.5 };
        (entropy(t) >= bar).then_some("high-entropy-token")
    }
}

/// Shannon entropy of the byte distribution, in bits per byte.
pub fn entropy(t: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in t {
        counts[usize::from(c)] += 1;
    }
    let n = t.len() as f64;
    counts
        .iter()
        .filter(|&&k| k > 0)
        .map(|&k| {
            let p = f64::from(k) / n;
            -p * p.log2()
        })
        .sum()
}

/// `text` with each finding replaced by `[REDACTED:<kind>]`.
pub fn redact(text: &str, found: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in found {
        out.push_str(&text[at..f.start]);
        out.push_str("[REDACTED:");
        out.push_str(f.kind);
        out.push(']');
        at = f.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(&str, &'static str)> {
        Scanner::default()
            .find(text, false)
            .into_iter()
            .map(|f| (&text[f.start..f.end], f.kind))
            .collect()
    }

    #[test]
    fn known_formats() {
        let gh = format!("ghp_{}", "a1B2c3D4e5".repeat(4));
        let pat = "github_pat_11ABCDEFG0123456789_abcdefghijklmnop";
        let slack = "xoxb-1234567890-abcdefghij";
        let text = format!("{gh} {pat} {slack} sk-abcdefghijklmnopqrstuvwx AKIAIOSFODNN7EXAMPLE");
        assert_eq!(
            kinds(&text),
            [
                (gh.as_str(), "github-token"),
                (pat, "github-token"),
                (slack, "slack-token"),
                ("sk-abcdefghijklmnopqrstuvwx", "openai-key"),
                ("AKIAIOSFODNN7EXAMPLE", "aws-access-key-id"),
            ]
        );
    }

    #[test]
    fn aws_secret_needs_context() {
        let key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            kinds(&format!("aws_secret_access_key = {key}")),
            [(key, "aws-secret-access-key")]
        );
        // Without context it is still caught as a high-entropy token.
        assert_eq!(
            kinds(&format!("value {key}")),
            [(key, "high-entropy-token")]
        );
    }

    #[test]
    fn private_key_blocks() {
        let text = "a\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----\nz";
        let f = Scanner::default().find(text, false);
        assert_eq!(f.len(), 1);
        assert_eq!(redact(text, &f), "a\n[REDACTED:private-key]\nz");
        // A public key or certificate is not a secret.
        assert!(kinds("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----").is_empty());
        // Cut off: redact to the end.
        assert_eq!(
            kinds("x -----BEGIN PRIVATE KEY-----\nMIIE"),
            [("-----BEGIN PRIVATE KEY-----\nMIIE", "private-key")]
        );
        assert!(pem_open_at_end("-----BEGIN EC PRIVATE KEY-----\nMHc"));
        assert!(!pem_open_at_end(
            "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----"
        ));
    }

    #[test]
    fn ordinary_text_is_not_flagged() {
        let text = "The commit 3f786850e387550fdab836ed7e6dc881de23001b fixed \
                    550e8400-e29b-41d4-a716-446655440000 in internationalization_module_v2; \
                    see https://docs.example.com/guides/getting-started/installation2024 and \
                    sk-short, AKIA-lowercase, ghp_short.";
        assert_eq!(kinds(text), []);
    }

    /// [`next_long_run`] by walking every run, one byte at a time.
    fn first_long_run(b: &[u8], i: usize, limit: usize, min: usize) -> usize {
        let mut s = i;
        while s < limit {
            let mut e = s;
            while e < limit && token_char(b[e]) {
                e += 1;
            }
            if e - s >= min {
                return s;
            }
            s = e + 1;
        }
        limit
    }

    #[test]
    fn long_runs_across_blocks() {
        // Runs of every length around block edges, cut at every limit.
        let mut x: u32 = 7;
        for case in 0..300 {
            let len = 1 + case % 200;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    // Mostly token bytes, so long runs are common.
                    if (x >> 16).is_multiple_of(13) {
                        b' '
                    } else {
                        b'a'
                    }
                })
                .collect();
            // Every `min` to 20, and around the doublings' counts to 64.
            for min in (1..=20).chain([31, 32, 33, 63, 64]) {
                for i in (0..len).filter(|&i| i == 0 || !token_char(text[i - 1])) {
                    for limit in [len, len.saturating_sub(1).max(i), (i + 70).min(len)] {
                        assert_eq!(
                            next_long_run(&text, i, limit, min),
                            first_long_run(&text, i, limit, min),
                            "{:?} i {i} limit {limit} min {min}",
                            String::from_utf8_lossy(&text)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn entropy_values() {
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
        let s = Scanner {
            entropy_threshold: 5.5,
            ..Scanner::default()
        };
        assert!(s.find("Zx8Kq2Lm9Vb4Nc7Tr1Yw5Pe3", false).is_empty());
        assert_eq!(
            Scanner::default()
                .find("Zx8Kq2Lm9Vb4Nc7Tr1Yw5Pe3", false)
                .len(),
            1
        );
        // Single-case tokens need more entropy: a random lowercase+digit key passes,
        // a slug does not.
        assert_eq!(
            kinds("k9x2m4q7w1z8r5t3y6u0p2l4s7d9f1g3"),
            [("k9x2m4q7w1z8r5t3y6u0p2l4s7d9f1g3", "high-entropy-token")]
        );
        assert!(kinds("release-notes-for-version-2024-edition").is_empty());
    }
}
