//! Compile the phrase-rule table (`src/rule_table.rs`) into the matcher's
//! lookup tables (`$OUT_DIR/matcher_tables.rs`, static data): a fresh guest
//! instance per call would otherwise rebuild them every time.

use std::fmt::Write as _;

#[allow(dead_code)]
mod rule_table {
    include!("src/rule_table.rs");
}

use rule_table::{RULES, word_hash};

fn main() {
    println!("cargo::rerun-if-changed=src/rule_table.rs");
    let alts = |slot: &'static str| slot.trim_end_matches('?').split('|');
    let mut vocab: Vec<&str> = RULES
        .iter()
        .flat_map(|r| r.slots.iter().flat_map(|s| alts(s)))
        .collect();
    vocab.sort_unstable();
    vocab.dedup();
    assert!(vocab.len() < usize::from(u16::MAX), "too many rule words");
    let id = |w: &str| vocab.binary_search(&w).expect("a slot word");
    let words = vocab.len().div_ceil(64);

    // Open addressing, at most a quarter full: one probe for most words.
    let mut table = vec![0u16; (vocab.len() * 4).next_power_of_two()];
    for (i, w) in vocab.iter().enumerate() {
        let mut slot = word_hash(w) as usize & (table.len() - 1);
        while table[slot] != 0 {
            slot = (slot + 1) & (table.len() - 1);
        }
        table[slot] = i as u16 + 1;
    }

    // Slots after the first, flattened; per rule a range into them.
    let mut slots = Vec::new();
    let mut rule_slots = Vec::new();
    for r in RULES {
        let start = slots.len();
        for s in &r.slots[1..] {
            let mut bits = vec![0u64; words];
            for i in alts(s).map(id) {
                bits[i / 64] |= 1 << (i % 64);
            }
            slots.push((bits, s.ends_with('?')));
        }
        rule_slots.push((start, slots.len()));
    }

    // Per word id, the rules its first-slot membership can start.
    let mut starts = vec![Vec::new(); vocab.len()];
    for (r, rule) in RULES.iter().enumerate() {
        for i in alts(rule.slots[0]).map(id) {
            starts[i].push(r);
        }
    }
    let mut start_rules = Vec::new();
    let mut start_ranges = Vec::new();
    for s in &starts {
        start_ranges.push((start_rules.len(), start_rules.len() + s.len()));
        start_rules.extend(s);
    }

    let mut out = String::new();
    let list = |items: Vec<String>| items.join(", ");
    writeln!(
        out,
        "/// Sorted, deduplicated words of all slots; a word's id is its index."
    )
    .unwrap();
    writeln!(
        out,
        "pub(crate) static VOCAB: [&str; {}] = [{}];",
        vocab.len(),
        list(vocab.iter().map(|w| format!("{w:?}")).collect())
    )
    .unwrap();
    writeln!(
        out,
        "/// `id + 1` by `word_hash` (0: empty), linear probing."
    )
    .unwrap();
    writeln!(
        out,
        "pub(crate) static TABLE: [u16; {}] = [{}];",
        table.len(),
        list(table.iter().map(u16::to_string).collect())
    )
    .unwrap();
    writeln!(out, "/// u64 words in a slot's bitset over ids.").unwrap();
    writeln!(out, "pub(crate) const SLOT_WORDS: usize = {words};").unwrap();
    writeln!(
        out,
        "/// Every rule's slots after the first: (accepted ids, optional)."
    )
    .unwrap();
    writeln!(
        out,
        "pub(crate) static SLOTS: [([u64; SLOT_WORDS], bool); {}] = [{}];",
        slots.len(),
        list(
            slots
                .iter()
                .map(|(b, o)| format!(
                    "([{}], {o})",
                    list(b.iter().map(|w| format!("{w:#x}")).collect())
                ))
                .collect()
        )
    )
    .unwrap();
    writeln!(out, "/// Per rule, its range in `SLOTS`.").unwrap();
    writeln!(
        out,
        "pub(crate) static RULE_SLOTS: [(usize, usize); {}] = [{}];",
        rule_slots.len(),
        list(
            rule_slots
                .iter()
                .map(|(a, b)| format!("({a}, {b})"))
                .collect()
        )
    )
    .unwrap();
    writeln!(out, "/// Per word id, its range in `START_RULES`.").unwrap();
    writeln!(
        out,
        "pub(crate) static STARTS: [(usize, usize); {}] = [{}];",
        start_ranges.len(),
        list(
            start_ranges
                .iter()
                .map(|(a, b)| format!("({a}, {b})"))
                .collect()
        )
    )
    .unwrap();
    writeln!(
        out,
        "/// Rules whose first slot accepts a word, grouped by word id."
    )
    .unwrap();
    writeln!(
        out,
        "pub(crate) static START_RULES: [usize; {}] = [{}];",
        start_rules.len(),
        list(start_rules.iter().map(usize::to_string).collect())
    )
    .unwrap();
    let path =
        std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("matcher_tables.rs");
    std::fs::write(path, out).expect("writing matcher_tables.rs");
}
