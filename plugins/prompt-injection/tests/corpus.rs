//! The whole corpus (`corpus/*.jsonl`, both splits) through `score` at the
//! manifest's default threshold. Fails when the held-out (`test`) split's
//! recall drops below 90 % or its false-positive rate rises above 1 %.
//! `cargo test -p prompt-injection --test corpus -- --nocapture` prints the
//! per-category table that README.md publishes.

use std::collections::BTreeMap;

use prompt_injection::score;
use serde_json::Value;

const THRESHOLD: f64 = 0.5;

#[derive(Default)]
struct Tally {
    flagged: usize,
    total: usize,
}

fn run() -> BTreeMap<(String, bool, String), Tally> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");
    let mut out: BTreeMap<(String, bool, String), Tally> = BTreeMap::new();
    for (file, attack) in [("attacks.jsonl", true), ("benign.jsonl", false)] {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        for line in text.lines() {
            let row: Value = serde_json::from_str(line).unwrap();
            let s = score(row["text"].as_str().unwrap());
            let key = (
                row["split"].as_str().unwrap().to_string(),
                attack,
                row["category"].as_str().unwrap().to_string(),
            );
            let t = out.entry(key).or_default();
            t.total += 1;
            t.flagged += usize::from(s.value >= THRESHOLD);
        }
    }
    out
}

fn pct(t: &Tally) -> f64 {
    100.0 * t.flagged as f64 / t.total.max(1) as f64
}

#[test]
fn held_out_recall_and_false_positive_rate() {
    let tallies = run();
    let mut sums: BTreeMap<(String, bool), Tally> = BTreeMap::new();
    for ((split, attack, category), t) in &tallies {
        let s = sums.entry((split.clone(), *attack)).or_default();
        s.flagged += t.flagged;
        s.total += t.total;
        println!(
            "{split:5} {:6} {category:26} {:4} / {:4}  {:5.1} %",
            if *attack { "attack" } else { "benign" },
            t.flagged,
            t.total,
            pct(t)
        );
    }
    for ((split, attack), t) in &sums {
        println!(
            "{split:5} {} {:4} / {:4}  {:5.2} %",
            if *attack { "recall" } else { "false positives" },
            t.flagged,
            t.total,
            pct(t)
        );
    }
    let recall = &sums[&("test".to_string(), true)];
    let fp = &sums[&("test".to_string(), false)];
    assert!(
        recall.total >= 300 && fp.total >= 150,
        "held-out split too small"
    );
    assert!(
        pct(recall) >= 90.0,
        "held-out recall {:.2} % < 90 %",
        pct(recall)
    );
    assert!(
        pct(fp) <= 1.0,
        "held-out false positives {:.2} % > 1 %",
        pct(fp)
    );
}
