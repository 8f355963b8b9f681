//! The semantic index: vectors of last user turns, searched within one
//! partition (model, scope, system prompt, earlier turns, tools and
//! parameters all equal: see [`super::key::partition`]), so a paraphrase
//! can only ever find an answer to the same conversation so far.
//!
//! Vectors are persisted in the state store as an append-only log per
//! partition (`cache-vec|SCOPE|PARTITION`): each record is the entry's
//! store key, its expiry and the unit vector. Each gateway keeps the
//! partitions it has searched in memory and, before each search, reads the
//! records appended since its last read, so vectors another gateway stored
//! through the same Redis are found, and a restarted gateway finds what was
//! stored before. The answer itself lives under its exact key
//! ([`super::exact`]); a vector whose answer expired or was purged is
//! dropped at the first search that finds it.
//!
//! Search is exact: a dot product of the unit query with every live
//! vector, in chunks of 8 lanes so LLVM vectorises it (`cache` bench:
//! see bench/README.md for the cost at 10k and 100k entries).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::state::store::{Result, Store};

/// Re-read this much of a partition's log before the last record seen:
/// Redis orders records by its own clock, which may lag the gateway's.
const REREAD_MS: u64 = 2_000;
const PAGE: usize = 1000;

/// The log of a partition's vectors.
pub fn log_name(scope: &str, partition: &str) -> String {
    format!("cache-vec|{}|{partition}", super::exact::escape(scope))
}

/// A record: `key_len(2) key expires_ms(8) f32 LE...`.
pub fn encode(key: &str, expires_ms: u64, v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + key.len() + 8 + v.len() * 4);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&expires_ms.to_be_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn decode(b: &[u8]) -> Option<(String, u64, Vec<f32>)> {
    let n = usize::from(u16::from_be_bytes(b.get(..2)?.try_into().ok()?));
    let key = std::str::from_utf8(b.get(2..2 + n)?).ok()?.to_string();
    let exp = u64::from_be_bytes(b.get(2 + n..10 + n)?.try_into().ok()?);
    let rest = b.get(10 + n..)?;
    if rest.len() % 4 != 0 {
        return None;
    }
    let v = rest
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some((key, exp, v))
}

/// Scale `v` to unit length (cosine = dot product); None for a zero or
/// non-finite vector.
pub fn normalise(mut v: Vec<f32>) -> Option<Vec<f32>> {
    let norm = dot(&v, &v).sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return None;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    Some(v)
}

/// Dot product in 8 independent lanes (vectorised by LLVM: no reduction
/// order dependency inside the loop).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The vectors of one partition, flat (`dim` floats each).
#[derive(Debug, Default)]
pub struct Vectors {
    dim: usize,
    data: Vec<f32>,
    keys: Vec<String>,
    expires: Vec<u64>,
    seen: HashSet<String>,
}

impl Vectors {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Add a unit vector (a different dimension than the partition's is
    /// ignored: the embeddings model changed; old vectors expire).
    pub fn push(&mut self, key: String, expires_ms: u64, v: &[f32]) {
        if self.dim == 0 {
            self.dim = v.len();
        }
        if v.len() != self.dim || !self.seen.insert(key.clone()) {
            return;
        }
        self.data.extend_from_slice(v);
        self.keys.push(key);
        self.expires.push(expires_ms);
    }

    /// Drop `key` (its answer is gone).
    pub fn remove(&mut self, key: &str) {
        if let Some(i) = self.keys.iter().position(|k| k == key) {
            self.keys.swap_remove(i);
            self.expires.swap_remove(i);
            let d = self.dim;
            let last = self.data.len() - d;
            if i * d != last {
                self.data.copy_within(last.., i * d);
            }
            self.data.truncate(last);
        }
    }

    /// The best live match: (key, similarity), by exact scan.
    pub fn nearest(&self, q: &[f32], now_ms: u64) -> Option<(&str, f32)> {
        if q.len() != self.dim || self.dim == 0 {
            return None;
        }
        let mut best: Option<(usize, f32)> = None;
        for (i, v) in self.data.chunks_exact(self.dim).enumerate() {
            if self.expires[i] <= now_ms {
                continue;
            }
            let s = dot(q, v);
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        best.map(|(i, s)| (self.keys[i].as_str(), s))
    }
}

/// One partition in memory, and how far its log was read.
#[derive(Default)]
struct Part {
    vectors: Vectors,
    read_until_ms: u64,
}

/// The partitions this gateway has searched.
pub struct Index {
    store: Arc<dyn Store>,
    parts: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Part>>>>,
}

impl Index {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            parts: Default::default(),
        }
    }

    fn part(&self, log: &str) -> Arc<tokio::sync::Mutex<Part>> {
        self.parts
            .lock()
            .entry(log.to_string())
            .or_default()
            .clone()
    }

    /// The nearest live vector of partition `log` to the unit vector `q`,
    /// after reading what was appended since the last search.
    pub async fn nearest(
        &self,
        log: &str,
        q: &[f32],
        now_ms: u64,
    ) -> Result<Option<(String, f32)>> {
        let part = self.part(log);
        let mut p = part.lock().await;
        let since = p.read_until_ms.saturating_sub(REREAD_MS);
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .store
                .read_log(log, since, u64::MAX, after.as_deref(), PAGE)
                .await?;
            for r in &page.records {
                if let Some((key, exp, v)) = decode(r) {
                    p.vectors.push(key, exp, &v);
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        p.read_until_ms = now_ms;
        Ok(p.vectors
            .nearest(q, now_ms)
            .map(|(k, s)| (k.to_string(), s)))
    }

    /// Append a vector (seen by this and every other gateway's next search).
    pub async fn add(
        &self,
        log: &str,
        key: &str,
        expires_ms: u64,
        v: &[f32],
        now_ms: u64,
    ) -> Result<()> {
        self.store
            .append(log, now_ms, &encode(key, expires_ms, v))
            .await?;
        self.part(log)
            .lock()
            .await
            .vectors
            .push(key.to_string(), expires_ms, v);
        Ok(())
    }

    /// Forget `key` in `log` (its answer is gone).
    pub async fn forget(&self, log: &str, key: &str) {
        self.part(log).lock().await.vectors.remove(key);
    }

    /// Vectors held in memory.
    pub async fn len(&self) -> usize {
        let parts: Vec<_> = self.parts.lock().values().cloned().collect();
        let mut n = 0;
        for p in parts {
            n += p.lock().await.vectors.len();
        }
        n
    }

    /// Drop every partition's vectors (store and memory); the logs of
    /// partitions this gateway never searched are found by `logs`.
    pub async fn purge(&self, logs: &[String]) -> Result<()> {
        for log in logs {
            self.store.trim_log(log, u64::MAX).await?;
            self.parts.lock().remove(log);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        normalise(v.to_vec()).unwrap()
    }

    #[test]
    fn dot_matches_the_naive_sum_at_every_length() {
        for n in [0, 1, 7, 8, 9, 31, 256] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!(
                (dot(&a, &b) - naive).abs() < 1e-3 * naive.abs().max(1.0),
                "{n}"
            );
        }
    }

    #[test]
    fn records_round_trip() {
        let v = unit(&[1.0, 2.0, 3.0]);
        let (k, e, w) = decode(&encode("m|k|d", 42, &v)).unwrap();
        assert_eq!((k.as_str(), e), ("m|k|d", 42));
        assert_eq!(w, v);
        assert!(decode(&[0, 9, 1]).is_none());
    }

    #[test]
    fn nearest_skips_expired_and_removed_vectors() {
        let mut vs = Vectors::default();
        vs.push("a".into(), 100, &unit(&[1.0, 0.0, 0.0]));
        vs.push("b".into(), 10, &unit(&[1.0, 0.1, 0.0]));
        vs.push("c".into(), 100, &unit(&[0.0, 1.0, 0.0]));
        vs.push("a".into(), 100, &unit(&[0.0, 0.0, 1.0]));
        assert_eq!(vs.len(), 3, "a key is added once");
        let q = unit(&[1.0, 0.1, 0.0]);
        assert_eq!(vs.nearest(&q, 5).unwrap().0, "b");
        let (k, s) = vs.nearest(&q, 50).unwrap();
        assert_eq!(k, "a", "b expired");
        assert!(s > 0.99 && s < 1.0);
        vs.remove("a");
        assert_eq!(vs.nearest(&q, 50).unwrap().0, "c");
        vs.push("x".into(), 100, &[1.0, 0.0]);
        assert_eq!(vs.len(), 2, "another dimension is ignored");
        assert!(vs.nearest(&[1.0, 0.0], 50).is_none());
    }
}
