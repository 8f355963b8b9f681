//! The rule table compiled to word ids (at build time, by `build.rs`) and
//! matched against a view's words.
//!
//! Most words of a text are in no rule, so the text is reduced to the few
//! (position, id) hits first and the rules only walk those, starting from
//! the hits that can begin them; slots are bitsets over ids, so a
//! membership test is one load.

use crate::rule_table::{GAP, word_hash};

include!(concat!(env!("OUT_DIR"), "/matcher_tables.rs"));

/// The id of `w`, if it is in some rule.
fn id(w: &str) -> Option<u16> {
    let mask = TABLE.len() - 1;
    let mut slot = word_hash(w) as usize & mask;
    loop {
        match TABLE[slot] {
            0 => return None,
            id if VOCAB[usize::from(id - 1)] == w => return Some(id - 1),
            _ => slot = (slot + 1) & mask,
        }
    }
}

/// (word position, word id) of every word of `words` (a view: words
/// separated by single spaces) that occurs in some rule.
pub(crate) fn hits(words: &str) -> Vec<(usize, u16)> {
    words
        .split(' ')
        .filter(|w| !w.is_empty())
        .enumerate()
        .filter_map(|(pos, w)| id(w).map(|id| (pos, id)))
        .collect()
}

/// Mark in `seen` every rule that matches `hits`; true if any was new.
pub(crate) fn matches(hits: &[(usize, u16)], seen: &mut [bool]) -> bool {
    let mut any = false;
    for (k, (pos, id)) in hits.iter().enumerate() {
        let (a, b) = STARTS[usize::from(*id)];
        for &r in &START_RULES[a..b] {
            let (s, e) = RULE_SLOTS[r];
            if !seen[r] && rest(hits, k + 1, *pos, &SLOTS[s..e]) {
                seen[r] = true;
                any = true;
            }
        }
    }
    any
}

fn accepts((ids, _): &([u64; SLOT_WORDS], bool), id: u16) -> bool {
    ids[usize::from(id / 64)] & (1 << (id % 64)) != 0
}

/// Match `slots` on `hits[k..]`, each within [`GAP`] words after `prev`.
fn rest(hits: &[(usize, u16)], k: usize, prev: usize, slots: &[([u64; SLOT_WORDS], bool)]) -> bool {
    let Some((slot, more)) = slots.split_first() else {
        return true;
    };
    if slot.1 && rest(hits, k, prev, more) {
        return true;
    }
    hits[k..]
        .iter()
        .enumerate()
        .take_while(|(_, (pos, _))| *pos <= prev + GAP + 1)
        .any(|(j, (pos, id))| accepts(slot, *id) && rest(hits, k + j + 1, *pos, more))
}
