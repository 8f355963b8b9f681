//! One check of a 2 KB prompt, natively: the whole `score` and its parts
//! (folding, rules on every view, the classifier), beside a plain
//! `to_lowercase` of the same text as the baseline of this run.
//!
//! `cargo bench -p prompt-injection --bench score`

use criterion::{Criterion, criterion_group, criterion_main};
use prompt_injection::{model, normalize, rules, score};

/// A 2048-byte cut of the first corpus attack at least that long, and a
/// benign 2 KB prompt (a pasted document with a question).
fn prompts() -> [(&'static str, String); 2] {
    let corpus = include_str!("../corpus/attacks.jsonl");
    let attack = corpus
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("row"))
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .find(|t| t.len() >= 2048 && t.is_ascii())
        .expect("a long attack");
    let doc = "Meeting notes: the team reviewed the quarterly roadmap, agreed to move the \
               billing migration to May, and asked finance for the updated forecast. ";
    let benign = format!(
        "Summarise these notes and list the action items.\n\n{}",
        doc.repeat(20)
    );
    [
        ("attack", attack[..2048].to_string()),
        ("benign", benign[..2048].to_string()),
    ]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("prompt_injection_2kb");
    for (name, text) in prompts() {
        assert_eq!(text.len(), 2048);
        let views = normalize::views(&text);
        let hits = rules::hits(&text, &views);
        g.bench_function(format!("{name}/baseline_to_lowercase"), |b| {
            b.iter(|| std::hint::black_box(&text).to_lowercase())
        });
        g.bench_function(format!("{name}/score"), |b| {
            b.iter(|| score(std::hint::black_box(&text)))
        });
        g.bench_function(format!("{name}/normalize_views"), |b| {
            b.iter(|| normalize::views(std::hint::black_box(&text)))
        });
        g.bench_function(format!("{name}/rules_hits"), |b| {
            b.iter(|| rules::hits(std::hint::black_box(&text), &views))
        });
        g.bench_function(format!("{name}/model_probability"), |b| {
            b.iter(|| model::Model::builtin().probability(std::hint::black_box(&views[0]), &hits))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
