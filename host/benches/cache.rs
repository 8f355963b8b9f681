//! The response cache's costs, each beside its baseline in the same run:
//!
//! - `key/exact`: normalising and hashing a typical request (the exact
//!   key), against `key/serialize` (serialising the same request once).
//! - `semantic/{exact,ann}/{10k,100k}`: one nearest-neighbour search in a
//!   partition of 10k or 100k 256-dimension unit vectors (the mock's
//!   embedding size): the exact scan against the HNSW graph. Before the
//!   criterion groups, p50 and p99 over 500 queries each, the graph's build
//!   time, and its recall against the scan, are printed.
//! - The paraphrase set's hit rate at the default threshold (0.95) with the
//!   mock's bag-of-words embedding, and its false hits on related but
//!   different questions, printed first.
//!
//! `cargo bench -p sluice --bench cache`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::cache::key;
use sluice::cache::semantic::{Vectors, dot, normalise};
use sluice::openai::ChatRequest;

const DIM: usize = 256;
const THRESHOLD: f32 = 0.95;

/// (question, paraphrases that should hit it).
const PARAPHRASES: &[(&str, &[&str])] = &[
    (
        "What is the capital of France?",
        &[
            "Tell me the capital of France, please.",
            "Capital of France?",
            "Could you tell me what the capital city of France is?",
        ],
    ),
    (
        "How do I reverse a list in Python?",
        &[
            "How can I reverse a Python list?",
            "Reverse a list in Python",
            "What's the way to reverse a list in python?",
        ],
    ),
    (
        "What is the boiling point of water?",
        &[
            "At what temperature does water boil?",
            "Tell me the boiling point of water.",
            "What's water's boiling point?",
        ],
    ),
    (
        "Who wrote Pride and Prejudice?",
        &[
            "Who is the author of Pride and Prejudice?",
            "Pride and Prejudice was written by whom?",
            "Tell me who wrote Pride and Prejudice",
        ],
    ),
    (
        "How many days are in a leap year?",
        &[
            "How many days does a leap year have?",
            "Number of days in a leap year?",
            "Leap year: how many days?",
        ],
    ),
    (
        "What is the speed of light?",
        &[
            "How fast is the speed of light?",
            "Tell me the speed of light",
            "What's the speed of light, please?",
        ],
    ),
    (
        "Explain what a mutex is.",
        &[
            "What is a mutex?",
            "Can you explain mutexes?",
            "Mutex: what is it?",
        ],
    ),
    (
        "How do I create a git branch?",
        &[
            "How can I create a branch in git?",
            "Create a git branch how?",
            "What's the command to create a new git branch?",
        ],
    ),
    (
        "What is the largest planet in the solar system?",
        &[
            "Which planet is the largest in our solar system?",
            "Largest planet of the solar system?",
            "Tell me the largest planet in the solar system",
        ],
    ),
    (
        "Translate hello into Spanish.",
        &[
            "How do you say hello in Spanish?",
            "Hello in Spanish?",
            "What is hello in Spanish?",
        ],
    ),
    (
        "What is the population of Tokyo?",
        &[
            "How many people live in Tokyo?",
            "Tokyo population?",
            "Tell me the population of Tokyo please",
        ],
    ),
    (
        "How do I sort a vector in Rust?",
        &[
            "How can I sort a Rust vector?",
            "Sort a vector in Rust",
            "What's the way to sort vectors in Rust?",
        ],
    ),
    (
        "When did World War II end?",
        &[
            "What year did World War II end?",
            "World War II ended when?",
            "Tell me when World War II ended",
        ],
    ),
    (
        "What causes rain?",
        &[
            "Why does it rain?",
            "What is the cause of rain?",
            "Explain what causes rain",
        ],
    ),
    (
        "What is the square root of 144?",
        &[
            "Square root of 144?",
            "What's the square root of 144",
            "Tell me the square root of 144",
        ],
    ),
    (
        "How do I reset my password?",
        &[
            "How can I reset my password?",
            "Reset my password how?",
            "I want to reset my password, how?",
        ],
    ),
    (
        "What is photosynthesis?",
        &[
            "Explain photosynthesis.",
            "Can you describe photosynthesis?",
            "What does photosynthesis mean?",
        ],
    ),
    (
        "Which language is spoken in Brazil?",
        &[
            "What language do people speak in Brazil?",
            "Language spoken in Brazil?",
            "What is the language of Brazil?",
        ],
    ),
    (
        "How tall is Mount Everest?",
        &[
            "What is the height of Mount Everest?",
            "Mount Everest height?",
            "How high is Mount Everest?",
        ],
    ),
    (
        "What does HTTP stand for?",
        &[
            "What is HTTP short for?",
            "HTTP stands for what?",
            "Tell me what HTTP stands for",
        ],
    ),
];

/// Questions near a stored one in words but asking something else: a hit
/// on these would replay a wrong answer.
const DIFFERENT: &[&str] = &[
    "What is the capital of Germany?",
    "How do I reverse a string in Python?",
    "What is the freezing point of water?",
    "Who wrote Sense and Sensibility?",
    "How many days are in a normal year?",
    "What is the speed of sound?",
    "Explain what a semaphore is.",
    "How do I delete a git branch?",
    "What is the smallest planet in the solar system?",
    "Translate goodbye into Spanish.",
    "What is the population of Osaka?",
    "How do I sort a vector in C++?",
    "When did World War I end?",
    "What causes snow?",
    "What is the square root of 169?",
    "How do I change my username?",
    "What is respiration?",
    "Which language is spoken in Argentina?",
    "How tall is K2?",
    "What does HTTPS stand for?",
];

fn embed(t: &str) -> Vec<f32> {
    normalise(sluice::mock::text::embed(t, DIM)).unwrap()
}

fn paraphrase_hit_rate() {
    let stored: Vec<Vec<f32>> = PARAPHRASES.iter().map(|(q, _)| embed(q)).collect();
    let best = |v: &[f32]| {
        stored
            .iter()
            .enumerate()
            .map(|(i, s)| (i, dot(v, s)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
    };
    let (mut hits, mut wrong, mut total) = (0, 0, 0);
    for (i, (_, paras)) in PARAPHRASES.iter().enumerate() {
        for p in *paras {
            total += 1;
            let (j, s) = best(&embed(p));
            if s >= THRESHOLD {
                if j == i {
                    hits += 1;
                } else {
                    wrong += 1;
                }
            }
        }
    }
    let false_hits = DIFFERENT
        .iter()
        .filter(|d| best(&embed(d)).1 >= THRESHOLD)
        .count();
    println!(
        "paraphrase set ({} questions): {hits}/{total} paraphrases hit ({:.1} %), {wrong} hit a wrong question; {false_hits}/{} different questions hit (threshold {THRESHOLD})",
        PARAPHRASES.len(),
        100.0 * hits as f64 / total as f64,
        DIFFERENT.len()
    );
}

/// Deterministic pseudo-random unit vectors.
fn random(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            let v = (0..DIM)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                })
                .collect();
            normalise(v).unwrap()
        })
        .collect()
}

fn filled(points: &[Vec<f32>], ann_from: usize) -> (Vectors, Duration) {
    let mut v = Vectors::new(ann_from);
    let t = Instant::now();
    for (i, p) in points.iter().enumerate() {
        v.push(format!("k{i}"), u64::MAX, p);
    }
    (v, t.elapsed())
}

/// Queries: stored points moved a little (a paraphrase's neighbourhood).
fn queries(points: &[Vec<f32>], n: usize) -> Vec<Vec<f32>> {
    let noise = random(n, 99);
    (0..n)
        .map(|i| {
            let p = &points[(i * 7919) % points.len()];
            let q: Vec<f32> = p.iter().zip(&noise[i]).map(|(a, b)| a + 0.1 * b).collect();
            normalise(q).unwrap()
        })
        .collect()
}

fn percentiles(mut t: Vec<Duration>) -> (Duration, Duration) {
    t.sort();
    (t[t.len() / 2], t[t.len() * 99 / 100])
}

fn semantic(c: &mut Criterion) {
    paraphrase_hit_rate();
    for (label, n) in [("10k", 10_000), ("100k", 100_000)] {
        let points = random(n, 1);
        let (exact, _) = filled(&points, usize::MAX);
        let (ann, built) = filled(&points, n);
        let qs = queries(&points, 500);
        let mut agree = 0;
        let mut times = (Vec::new(), Vec::new());
        for q in &qs {
            let t = Instant::now();
            let e = exact.nearest(q, 0).map(|(k, _)| k.to_string());
            times.0.push(t.elapsed());
            let t = Instant::now();
            let a = ann.nearest(q, 0).map(|(k, _)| k.to_string());
            times.1.push(t.elapsed());
            agree += usize::from(e == a);
        }
        let (e50, e99) = percentiles(times.0);
        let (a50, a99) = percentiles(times.1);
        println!(
            "semantic {label}: exact p50 {e50:?} p99 {e99:?}; ann p50 {a50:?} p99 {a99:?} (recall {:.1} %, graph built in {built:?})",
            100.0 * agree as f64 / qs.len() as f64
        );
        let mut g = c.benchmark_group("semantic");
        g.sample_size(20);
        let mut i = 0;
        g.bench_function(format!("exact/{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % qs.len();
                exact.nearest(&qs[i], 0).map(|(_, s)| s)
            })
        });
        g.bench_function(format!("ann/{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % qs.len();
                ann.nearest(&qs[i], 0).map(|(_, s)| s)
            })
        });
        g.finish();
    }
}

fn keys(c: &mut Criterion) {
    let req: ChatRequest = serde_json::from_value(serde_json::json!({
        "model": "chat", "temperature": 0, "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly and cite sources.".repeat(4)},
            {"role": "user", "content": "What is the capital of France and what is it known for?"},
            {"role": "assistant", "content": "Paris, known for the Eiffel Tower and the Louvre.".repeat(3)},
            {"role": "user", "content": "And its population?"}
        ],
        "tools": [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    }))
    .unwrap();
    let mut g = c.benchmark_group("key");
    g.bench_function("serialize", |b| {
        b.iter(|| serde_json::to_vec(&req).unwrap())
    });
    g.bench_function("exact", |b| b.iter(|| key::exact("chat", &req)));
    g.finish();
}

criterion_group!(benches, semantic, keys);
criterion_main!(benches);
