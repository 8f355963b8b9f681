//! Print the training-split rows the detector gets wrong (misses and false
//! positives) with their score and signals, for tuning the rules:
//!
//! ```sh
//! cargo run --release -p prompt-injection --example inspect [-- CATEGORY]
//! ```
//!
//! Only the `train` split is shown: the `test` split is for measuring.

use prompt_injection::score;
use serde_json::Value;

fn main() {
    let only = std::env::args().nth(1);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");
    for (file, attack) in [("attacks.jsonl", true), ("benign.jsonl", false)] {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("corpus");
        for line in text.lines() {
            let row: Value = serde_json::from_str(line).expect("row");
            let category = row["category"].as_str().unwrap_or_default();
            if row["split"] != "train" || only.as_deref().is_some_and(|c| c != category) {
                continue;
            }
            let text = row["text"].as_str().unwrap_or_default();
            let s = score(text);
            if (s.value >= 0.5) != attack {
                let short: String = text.chars().take(160).collect();
                println!(
                    "{} {category} {:.2} {:?}\n    {:?}",
                    if attack { "MISS" } else { "FP  " },
                    s.value,
                    s.signals,
                    short
                );
            }
        }
    }
}
