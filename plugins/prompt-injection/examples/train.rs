//! Train the classifier on the corpus's `train` split and write
//! `model/weights.bin` (see README.md):
//!
//! ```sh
//! cargo run --release -p prompt-injection --example train [-- LOG2_BUCKETS]
//! ```
//!
//! Logistic regression with AdaGrad over the plugin's own `model::features`
//! and `rules::hits` (so trainer and guest featurise identically), classes
//! balanced.
//! The decision point is chosen by 5-fold cross-validation on the training
//! split only (folds by group, like the split): the lowest threshold at
//! which at most `TARGET_FP` of the out-of-fold benign prompts are flagged.
//! The bias is shifted so that threshold becomes 0.5. The `test` split is
//! never read. Deterministic: same corpus, same bytes.

use std::path::Path;

use prompt_injection::{model, normalize, rules};
use serde_json::Value;

// Chosen by the cross-validated recall at the operating point on the
// training split (2^16 buckets): 10 epochs beat 30 and 60 (90.5 % vs
// 88.5 % and 87.8 %), learning rates 0.1 and 1.0 and L2 1e-5 were worse,
// and weighting benign examples up did not lower the false positives the
// threshold already holds at `TARGET_FP`.
const EPOCHS: usize = 10;
const LEARNING_RATE: f64 = 0.3;
const L2: f64 = 1e-6;
/// Weight of a benign example relative to an attack, after balancing.
const BENIGN_WEIGHT: f64 = 1.0;
const TARGET_FP: f64 = 0.004;
const FOLDS: u64 = 5;

struct Row {
    label: f64,
    group: u64,
    /// Sorted (bucket, value) pairs.
    x: Vec<(u32, f64)>,
    /// Rule features that fired.
    hits: Vec<usize>,
    category: String,
}

fn main() {
    let log2: u32 = std::env::args()
        .nth(1)
        .map_or(16, |a| a.parse().expect("LOG2_BUCKETS"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut rows = Vec::new();
    for (file, label) in [("attacks.jsonl", 1.0), ("benign.jsonl", 0.0)] {
        let text = std::fs::read_to_string(root.join("corpus").join(file)).expect("corpus file");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("corpus line");
            if v["split"] != "train" {
                continue;
            }
            let raw = v["text"].as_str().expect("text");
            let views = normalize::views(raw);
            rows.push(Row {
                label,
                group: fnv64(v["group"].as_str().expect("group")),
                x: vectorise(&views[0], log2),
                hits: rules::hits(raw, &views),
                category: v["category"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    eprintln!("{} training rows, 2^{log2} buckets", rows.len());

    // Out-of-fold probabilities for the operating point.
    let mut oof = vec![0.0; rows.len()];
    for fold in 0..FOLDS {
        let train: Vec<&Row> = rows.iter().filter(|r| r.group % FOLDS != fold).collect();
        let fitted = fit(&train, log2);
        for (i, r) in rows.iter().enumerate() {
            if r.group % FOLDS == fold {
                oof[i] = model::sigmoid(fitted.logit(r));
            }
        }
    }
    let mut benign: Vec<f64> = rows
        .iter()
        .zip(&oof)
        .filter(|(r, _)| r.label == 0.0)
        .map(|(_, p)| *p)
        .collect();
    benign.sort_by(|a, b| b.partial_cmp(a).expect("finite"));
    let allowed = (TARGET_FP * benign.len() as f64).floor() as usize;
    // Just above the (allowed+1)-th highest benign probability.
    let threshold = benign.get(allowed).map_or(0.5, |p| p + 1e-6).max(0.05);
    report(&rows, &oof, threshold);

    let all: Vec<&Row> = rows.iter().collect();
    let Fitted { w, rule_w, b } = fit(&all, log2);
    let max = w.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    let scale = max / 127.0;
    let q: Vec<i8> = w.iter().map(|w| (w / scale).round() as i8).collect();
    let bias = b - logit(threshold);
    let rule_w: Vec<f32> = rule_w.iter().map(|w| *w as f32).collect();
    eprintln!("rule weights: {rule_w:?}");
    let out = root.join("model/weights.bin");
    std::fs::write(
        &out,
        model::write(log2, bias as f32, scale as f32, &rule_w, &q),
    )
    .expect("write");
    eprintln!(
        "threshold {threshold:.4} -> bias {bias:.4}, scale {scale:.6}; wrote {}",
        out.display()
    );
}

fn vectorise(folded: &str, log2: u32) -> Vec<(u32, f64)> {
    let mut buckets = Vec::new();
    model::features(folded, log2, |b| buckets.push(b));
    buckets.sort_unstable();
    buckets.dedup();
    // The guest computes sum(w) / sqrt(n) over distinct buckets: the same dot.
    let value = 1.0 / (buckets.len().max(1) as f64).sqrt();
    buckets.into_iter().map(|b| (b, value)).collect()
}

struct Fitted {
    w: Vec<f64>,
    rule_w: Vec<f64>,
    b: f64,
}

impl Fitted {
    fn logit(&self, r: &Row) -> f64 {
        self.b
            + r.x
                .iter()
                .map(|(k, v)| self.w[*k as usize] * v)
                .sum::<f64>()
            + r.hits.iter().map(|h| self.rule_w[*h]).sum::<f64>()
    }
}

fn fit(rows: &[&Row], log2: u32) -> Fitted {
    let n = 1usize << log2;
    let mut m = Fitted {
        w: vec![0.0; n],
        rule_w: vec![0.0; rules::FEATURES],
        b: 0.0,
    };
    let (mut g2, mut rule_g2, mut gb) = (vec![1e-8f64; n], vec![1e-8f64; rules::FEATURES], 1e-8f64);
    let pos = rows.iter().filter(|r| r.label == 1.0).count().max(1) as f64;
    let neg = (rows.len() as f64 - pos).max(1.0);
    let weight = |r: &Row| {
        if r.label == 1.0 {
            rows.len() as f64 / (2.0 * pos)
        } else {
            BENIGN_WEIGHT * rows.len() as f64 / (2.0 * neg)
        }
    };
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..EPOCHS {
        // Fisher-Yates with xorshift64: deterministic.
        for i in (1..order.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for &i in &order {
            let r = rows[i];
            let p = model::sigmoid(m.logit(r));
            let g = (p - r.label) * weight(r);
            for (k, v) in &r.x {
                let k = *k as usize;
                let gk = g * v + L2 * m.w[k];
                g2[k] += gk * gk;
                m.w[k] -= LEARNING_RATE * gk / g2[k].sqrt();
            }
            for h in &r.hits {
                let gh = g + L2 * m.rule_w[*h];
                rule_g2[*h] += gh * gh;
                m.rule_w[*h] -= LEARNING_RATE * gh / rule_g2[*h].sqrt();
            }
            gb += g * g;
            m.b -= LEARNING_RATE * g / gb.sqrt();
        }
    }
    m
}

fn report(rows: &[Row], oof: &[f64], threshold: f64) {
    let mut cats: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (r, p) in rows.iter().zip(oof) {
        let flagged = *p >= threshold;
        let c = cats.entry(r.category.as_str()).or_default();
        c.0 += usize::from(flagged);
        c.1 += 1;
    }
    eprintln!("out-of-fold (train split), flagged / total per category:");
    for (c, (f, n)) in cats {
        eprintln!("  {c:28} {f:4} / {n:4}");
    }
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}
