//! The rule table compiled to word ids and matched against a view's words.

use crate::rules::{GAP, RULES};

/// The rules compiled to word ids. Most words of a text are in no rule, so
/// the text is reduced to the few (position, id) hits first and the rules
/// only walk those, starting from the hits that can begin them; slots are
/// bitsets over ids, so a membership test is one load.
pub(crate) struct Matcher {
    /// Sorted, deduplicated words of all slots; a word's id is its index.
    vocab: Vec<&'static str>,
    /// Open-addressing table of `id + 1` by word hash (0: empty), at most
    /// a quarter full: one probe for most words of a text.
    table: Vec<u16>,
    /// Per rule, the slots after the first.
    rules: Vec<Vec<Slot>>,
    /// Per word id, the rules whose first slot accepts it.
    starts: Vec<Vec<u16>>,
}

/// Accepted word ids (a bitset) and whether the slot may be skipped.
struct Slot {
    ids: Vec<u64>,
    optional: bool,
}

impl Slot {
    fn accepts(&self, id: u16) -> bool {
        self.ids[usize::from(id / 64)] & (1 << (id % 64)) != 0
    }
}

pub(crate) fn matcher() -> &'static Matcher {
    static M: std::sync::OnceLock<Matcher> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        let alts = |slot: &'static str| slot.trim_end_matches('?').split('|');
        let mut vocab: Vec<&'static str> = RULES
            .iter()
            .flat_map(|r| r.slots.iter().flat_map(|s| alts(s)))
            .collect();
        vocab.sort_unstable();
        vocab.dedup();
        let id = |w: &str| vocab.binary_search(&w).expect("a slot word") as u16;
        let words = vocab.len().div_ceil(64);
        let slot = |s: &'static str| {
            let mut ids = vec![0u64; words];
            for i in alts(s).map(id) {
                ids[usize::from(i / 64)] |= 1 << (i % 64);
            }
            Slot {
                ids,
                optional: s.ends_with('?'),
            }
        };
        let mut starts = vec![Vec::new(); vocab.len()];
        for (r, rule) in RULES.iter().enumerate() {
            for i in alts(rule.slots[0]).map(id) {
                starts[usize::from(i)].push(r as u16);
            }
        }
        let rules = RULES
            .iter()
            .map(|r| r.slots[1..].iter().map(|s| slot(s)).collect())
            .collect();
        let mut table = vec![0u16; (vocab.len() * 4).next_power_of_two()];
        for (i, w) in vocab.iter().enumerate() {
            let mut slot = word_hash(w) as usize & (table.len() - 1);
            while table[slot] != 0 {
                slot = (slot + 1) & (table.len() - 1);
            }
            table[slot] = i as u16 + 1;
        }
        Matcher {
            vocab,
            table,
            rules,
            starts,
        }
    })
}

impl Matcher {
    /// (word position, word id) of every word that occurs in some rule.
    pub(crate) fn hits(&self, words: &str) -> Vec<(usize, u16)> {
        words
            .split(' ')
            .filter(|w| !w.is_empty())
            .enumerate()
            .filter_map(|(pos, w)| self.id(w).map(|id| (pos, id)))
            .collect()
    }

    /// The id of `w`, if it is in some rule.
    fn id(&self, w: &str) -> Option<u16> {
        let mask = self.table.len() - 1;
        let mut slot = word_hash(w) as usize & mask;
        loop {
            match self.table[slot] {
                0 => return None,
                id if self.vocab[usize::from(id - 1)] == w => return Some(id - 1),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Mark in `seen` every rule that matches `hits`.
    pub(crate) fn matches(&self, hits: &[(usize, u16)], seen: &mut [bool]) -> bool {
        let mut any = false;
        for (k, (pos, id)) in hits.iter().enumerate() {
            for &r in &self.starts[usize::from(*id)] {
                let r = usize::from(r);
                if !seen[r] && rest(hits, k + 1, *pos, &self.rules[r]) {
                    seen[r] = true;
                    any = true;
                }
            }
        }
        any
    }
}

/// FNV-1a of a word.
fn word_hash(w: &str) -> u32 {
    w.bytes().fold(0x811C_9DC5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Match `slots` on `hits[k..]`, each within [`GAP`] words after `prev`.
fn rest(hits: &[(usize, u16)], k: usize, prev: usize, slots: &[Slot]) -> bool {
    let Some((slot, more)) = slots.split_first() else {
        return true;
    };
    if slot.optional && rest(hits, k, prev, more) {
        return true;
    }
    hits[k..]
        .iter()
        .enumerate()
        .take_while(|(_, (pos, _))| *pos <= prev + GAP + 1)
        .any(|(j, (pos, id))| slot.accepts(*id) && rest(hits, k + j + 1, *pos, more))
}
