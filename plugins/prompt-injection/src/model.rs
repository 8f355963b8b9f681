//! A linear classifier over hashed features of the folded text (character
//! 3- to 5-grams and word 1- and 2-grams, hashed into 2^k buckets: no
//! vocabulary to ship) and the rule features (`rules::hits`), so the rules'
//! weights are learned too: "system prompt" alone is a question about LLMs,
//! beside "print your" it is an extraction attempt. Logistic regression
//! trained offline on the corpus's training split by `examples/train.rs`;
//! the weights are data compiled into the component (`model/weights.bin`,
//! n-gram weights i8-quantised).
//!
//! The same [`features`] function serves training and inference, so the
//! trainer and the guest cannot drift apart.

/// Only the first this many bytes of the folded text are featurised: the
/// cost stays bounded (and linear below it) on very long inputs; the rules
/// still see everything.
pub const MAX_BYTES: usize = 16 * 1024;

/// Call `f` with the bucket of every feature occurrence in `folded`
/// (lowercase words separated by single spaces, see `normalize::fold`).
pub fn features(folded: &str, log2_buckets: u32, mut f: impl FnMut(u32)) {
    let mut end = folded.len().min(MAX_BYTES);
    while !folded.is_char_boundary(end) {
        end -= 1;
    }
    let shift = 32 - log2_buckets;
    // FNV-1a's last multiply leaves the high bits mixed; one more multiply
    // after tagging the kind (n-gram length, word, pair) spreads the tag.
    let bucket = |h: u32, kind: u32| (h ^ kind).wrapping_mul(0x9E37_79B1) >> shift;
    // Character 3-, 4- and 5-grams over " text ", so word starts and ends
    // count: one FNV pass per start position, emitting at each length.
    let mut padded = Vec::with_capacity(end + 2);
    padded.push(b' ');
    padded.extend_from_slice(&folded.as_bytes()[..end]);
    padded.push(b' ');
    for start in 0..padded.len().saturating_sub(2) {
        let gram = &padded[start..padded.len().min(start + 5)];
        let mut h = fnv(fnv(fnv(0x811C_9DC5, gram[0]), gram[1]), gram[2]);
        f(bucket(h, 3));
        for (n, b) in (4..).zip(&gram[3..]) {
            h = fnv(h, *b);
            f(bucket(h, n));
        }
    }
    // Words and word pairs.
    let mut prev: Option<u32> = None;
    for w in padded[1..end + 1]
        .split(|b| *b == b' ')
        .filter(|w| !w.is_empty())
    {
        let hw = w.iter().fold(0x811C_9DC5, |h, b| fnv(h, *b));
        f(bucket(hw, 1));
        if let Some(p) = prev {
            f(bucket(p.rotate_left(7) ^ hw, 2));
        }
        prev = Some(hw);
    }
}

#[inline]
fn fnv(h: u32, b: u8) -> u32 {
    (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
}

/// A loaded model: `logit = bias + scale * sum(w[b]) / sqrt(n) +
/// sum(rule_w[h])` over the `n` distinct buckets `b` the text's features
/// fall in and the rule hits `h`. Distinct, not counted: a benign paragraph
/// pasted twenty times must not score like twenty pieces of evidence.
pub struct Model<'a> {
    /// log2 of the number of buckets.
    pub log2_buckets: u32,
    /// Intercept.
    pub bias: f32,
    /// Dequantisation factor of the i8 weights.
    pub scale: f32,
    /// One weight per rule feature.
    pub rule_weights: Vec<f32>,
    weights: &'a [u8],
}

/// The file layout (little endian): `PIM2`, u32 log2 buckets, f32 bias, f32
/// scale, u32 rule features R, R f32 rule weights, then one i8 weight per
/// bucket.
pub const MAGIC: &[u8; 4] = b"PIM2";

impl<'a> Model<'a> {
    /// Parse a weights file.
    pub fn parse(bytes: &'a [u8]) -> Result<Model<'a>, String> {
        let word = |i: usize| -> Option<[u8; 4]> { bytes.get(i..i + 4)?.try_into().ok() };
        let f32_at = |i: usize| word(i).map(f32::from_le_bytes);
        let u32_at = |i: usize| word(i).map(u32::from_le_bytes);
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err("not a PIM2 weights file".into());
        }
        let short = || "weights file: truncated header".to_string();
        let log2_buckets = u32_at(4).ok_or_else(short)?;
        let n_rules = u32_at(16).ok_or_else(short)? as usize;
        let rule_weights = (0..n_rules)
            .map(|i| f32_at(20 + 4 * i).ok_or_else(short))
            .collect::<Result<Vec<f32>, String>>()?;
        let weights = &bytes[20 + 4 * n_rules..];
        if !(8..=24).contains(&log2_buckets) || weights.len() != 1 << log2_buckets {
            return Err(format!(
                "weights file: {} weights for 2^{log2_buckets} buckets",
                weights.len()
            ));
        }
        Ok(Model {
            log2_buckets,
            bias: f32_at(8).ok_or_else(short)?,
            scale: f32_at(12).ok_or_else(short)?,
            rule_weights,
            weights,
        })
    }

    /// The model compiled into this plugin.
    pub fn builtin() -> &'static Model<'static> {
        static M: std::sync::OnceLock<Model<'static>> = std::sync::OnceLock::new();
        M.get_or_init(|| {
            Model::parse(include_bytes!("../model/weights.bin"))
                .expect("the committed model parses")
        })
    }

    /// Probability that a text is an attack, from its folded form and the
    /// rule features that fired on it.
    pub fn probability(&self, folded: &str, rule_hits: &[usize]) -> f64 {
        let (mut sum, mut n) = (0i64, 0u32);
        let mut seen = vec![0u64; self.weights.len().div_ceil(64)];
        features(folded, self.log2_buckets, |b| {
            let (word, bit) = (b as usize / 64, 1u64 << (b % 64));
            if seen[word] & bit == 0 {
                seen[word] |= bit;
                sum += i64::from(self.weights[b as usize] as i8);
                n += 1;
            }
        });
        let mut logit = f64::from(self.bias);
        if n > 0 {
            logit += f64::from(self.scale) * sum as f64 / f64::from(n).sqrt();
        }
        for h in rule_hits {
            logit += f64::from(self.rule_weights.get(*h).copied().unwrap_or(0.0));
        }
        sigmoid(logit)
    }
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Serialise a model (the trainer's output).
pub fn write(
    log2_buckets: u32,
    bias: f32,
    scale: f32,
    rule_weights: &[f32],
    weights: &[i8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + 4 * rule_weights.len() + weights.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&log2_buckets.to_le_bytes());
    out.extend_from_slice(&bias.to_le_bytes());
    out.extend_from_slice(&scale.to_le_bytes());
    out.extend_from_slice(&(rule_weights.len() as u32).to_le_bytes());
    for w in rule_weights {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend(weights.iter().map(|w| *w as u8));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_deterministic_and_in_range() {
        let mut a = Vec::new();
        features("ignore previous instructions", 16, |b| a.push(b));
        let mut b = Vec::new();
        features("ignore previous instructions", 16, |x| b.push(x));
        assert_eq!(a, b);
        // 30 padded bytes: 28 + 27 + 26 char n-grams, 3 words, 2 pairs.
        assert_eq!(a.len(), 28 + 27 + 26 + 3 + 2);
        assert!(a.iter().all(|b| *b < 1 << 16));
        let mut n = 0;
        features("", 16, |_| n += 1);
        assert_eq!(n, 0);
    }

    #[test]
    fn round_trip_and_builtin() {
        let bytes = write(8, 0.5, 0.25, &[1.5, -2.0], &[1i8; 256]);
        let m = Model::parse(&bytes).unwrap();
        assert_eq!((m.log2_buckets, m.bias, m.scale), (8, 0.5, 0.25));
        assert_eq!(m.rule_weights, [1.5, -2.0]);
        assert!(Model::parse(&bytes[..100]).is_err());
        assert!(Model::parse(&bytes[..10]).is_err());
        // The committed model was trained with today's rule table.
        let m = Model::builtin();
        assert_eq!(
            m.rule_weights.len(),
            crate::rules::FEATURES,
            "rules changed: retrain (examples/train.rs)"
        );
    }
}
