//! 20 000 checks of a 2 KB prompt, for `perf stat`: the CPU time per check
//! on a busy machine, where criterion's wall clock also counts the time the
//! process spent preempted (see README.md, "Cost").
//!
//! ```sh
//! cargo build --release -p prompt-injection --example cpu_time
//! perf stat -e task-clock target/release/examples/cpu_time [score|views|lower]
//! ```
use std::time::Instant;
fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let doc = "Meeting notes: the team reviewed the quarterly roadmap, agreed to move the billing migration to May, and asked finance for the updated forecast. ";
    let text = format!(
        "Summarise these notes and list the action items.\n\n{}",
        doc.repeat(20)
    )[..2048]
        .to_string();
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        match which.as_str() {
            "views" => {
                std::hint::black_box(prompt_injection::normalize::views(std::hint::black_box(
                    &text,
                )));
            }
            "lower" => {
                std::hint::black_box(std::hint::black_box(&text).to_lowercase());
            }
            _ => {
                std::hint::black_box(prompt_injection::score(std::hint::black_box(&text)));
            }
        }
    }
    println!("{which}: {:?} wall per call", t.elapsed() / n);
}
