//! Labelled series and label bounds, read without a lock.
//!
//! A [`Family`] maps label values to one series. The map is an immutable
//! snapshot behind `arc-swap`: the request path loads it (no lock, no
//! shared write) and finds its series; only the first request with a new
//! label set takes the insert mutex, copies the map and swaps it in. Label
//! sets are few and stable, so inserts are rare.
//!
//! A [`Bound`] keeps a label whose values come from outside the config
//! (virtual key ids, `x-sluice-feature`) to at most `limit` distinct
//! values: the first `limit` seen are kept, later ones and values longer
//! than [`MAX_VALUE_BYTES`] are reported as [`OTHER`]. Each labelled series
//! costs memory and every scrape forever, so an unbounded label is a way to
//! exhaust the gateway and the Prometheus server behind it.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

/// What a value outside a bound is reported as.
pub const OTHER: &str = "other";
/// Longer label values are reported as [`OTHER`].
pub const MAX_VALUE_BYTES: usize = 64;

/// Joins label values into one map key; a value holding it would be
/// ambiguous, so it is replaced (HTTP header values cannot hold it).
const SEP: char = '\u{1f}';

/// One labelled series.
#[derive(Debug)]
pub struct Series<V> {
    /// In the family's label order.
    pub labels: Vec<String>,
    pub value: V,
}

/// Series by label values (always in the family's label order).
pub struct Family<V> {
    series: ArcSwap<HashMap<String, Arc<Series<V>>>>,
    insert: Mutex<()>,
}

impl<V> Default for Family<V> {
    fn default() -> Self {
        Self {
            series: ArcSwap::default(),
            insert: Mutex::new(()),
        }
    }
}

impl<V> Family<V> {
    /// The series for `labels`, made by `make` if it is the first.
    pub fn get(&self, labels: &[&str], make: impl FnOnce() -> V) -> Arc<Series<V>> {
        let mut key = String::with_capacity(labels.iter().map(|l| l.len() + 1).sum());
        for l in labels {
            key.extend(l.chars().map(|c| if c == SEP { '_' } else { c }));
            key.push(SEP);
        }
        if let Some(s) = self.series.load().get(&key) {
            return s.clone();
        }
        let _one = self.insert.lock();
        let current = self.series.load_full();
        if let Some(s) = current.get(&key) {
            return s.clone();
        }
        let s = Arc::new(Series {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            value: make(),
        });
        let mut next = HashMap::clone(&current);
        next.insert(key, s.clone());
        self.series.store(Arc::new(next));
        s
    }

    /// Every series, sorted by label values (stable scrapes).
    pub fn all(&self) -> Vec<Arc<Series<V>>> {
        let mut v: Vec<_> = self.series.load().values().cloned().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }
}

/// At most `limit` distinct values of one label (see the module docs).
pub struct Bound {
    limit: usize,
    admitted: Family<()>,
    count: Mutex<usize>,
}

impl Bound {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            admitted: Family::default(),
            count: Mutex::new(0),
        }
    }

    /// `value` if it is (or may still become) one of the kept values, else
    /// [`OTHER`].
    pub fn admit<'a>(&self, value: &'a str) -> &'a str {
        if value.len() > MAX_VALUE_BYTES {
            return OTHER;
        }
        if self.admitted.series.load().contains_key(&keyed(value)) {
            return value;
        }
        let mut n = self.count.lock();
        if self.admitted.series.load().contains_key(&keyed(value)) {
            return value;
        }
        if *n >= self.limit {
            return OTHER;
        }
        *n += 1;
        self.admitted.get(&[value], || ());
        value
    }
}

fn keyed(value: &str) -> String {
    let mut k: String = value
        .chars()
        .map(|c| if c == SEP { '_' } else { c })
        .collect();
    k.push(SEP);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_keeps_one_series_per_label_set() {
        let f: Family<std::sync::atomic::AtomicU64> = Family::default();
        let inc = |l: &[&str]| {
            f.get(l, Default::default)
                .value
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        };
        inc(&["a", "b"]);
        inc(&["a", "b"]);
        inc(&["ab", ""]);
        let all = f.all();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].labels, vec!["a", "b"]);
        assert_eq!(all[0].value.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(all[1].labels, vec!["ab", ""]);
    }

    #[test]
    fn a_bound_keeps_the_first_values_and_folds_the_rest() {
        let b = Bound::new(2);
        assert_eq!(b.admit("a"), "a");
        assert_eq!(b.admit("b"), "b");
        assert_eq!(b.admit("c"), OTHER);
        assert_eq!(b.admit("a"), "a");
        assert_eq!(b.admit(&"x".repeat(MAX_VALUE_BYTES + 1)), OTHER);
    }
}
