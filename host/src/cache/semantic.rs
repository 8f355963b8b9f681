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
//! Search: below `[cache] exact-search-below` vectors per partition, an
//! exact scan (a dot product of the unit query with every live vector, in
//! 8 independent lanes so LLVM vectorises it); from that size on an HNSW
//! graph (`hnsw_rs`: 16 links per node, ef 200 to build, 64 to search),
//! built in one go (rayon) once the threshold is crossed and added to
//! incrementally after. The [`Index`] builds it on a blocking thread from a
//! copy of the vectors, off the partition's lock: a build takes seconds
//! (bench/README.md), and the request that crossed the threshold, and every
//! search meanwhile, keep the exact scan instead of waiting for it. A graph
//! cannot delete: gone entries are marked and skipped, and a partition whose
//! vectors are mostly dead or expired is compacted at its next search (its
//! graph rebuilt the same way). `host/benches/cache.rs` measures both at 10k
//! and 100k entries.

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
        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Cosine distance over unit vectors, for the HNSW graph (hnsw_rs's own
/// `DistDot` asserts `dot <= 1`, which rounding can break).
#[derive(Debug, Default, Clone, Copy)]
pub struct Cosine;

impl hnsw_rs::anndists::dist::Distance<f32> for Cosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

type Graph = hnsw_rs::hnsw::Hnsw<'static, f32, Cosine>;

/// Neighbours the graph returns per search; the first live one answers.
const ANN_K: usize = 16;
/// Candidates explored per search (recall against cost).
const ANN_EF: usize = 64;

/// The vectors of one partition, flat (`dim` floats each), searched by an
/// exact scan, or by an HNSW graph once there are `ann_from` of them.
pub struct Vectors {
    dim: usize,
    data: Vec<f32>,
    keys: Vec<String>,
    expires: Vec<u64>,
    /// False once the answer is known gone (a graph cannot delete).
    alive: Vec<bool>,
    seen: HashSet<String>,
    dead: usize,
    ann_from: usize,
    graph: Option<Graph>,
    /// A graph is being built from a [`Snapshot`] of this generation.
    building: bool,
    /// Bumped by each compaction (indices change): a graph built from an
    /// older snapshot is not installed.
    generation: u64,
}

/// A copy of a partition's vectors to build a graph from, off its lock.
pub struct Snapshot {
    dim: usize,
    data: Vec<f32>,
    alive: Vec<bool>,
    generation: u64,
}

impl Snapshot {
    /// Index the snapshot's live vectors (seconds at 10k: run it on a
    /// blocking thread).
    pub fn build(&self) -> Graph {
        let g = Graph::new(16, self.alive.len() * 2, 16, 200, Cosine);
        let items: Vec<(&[f32], usize)> = self
            .data
            .chunks_exact(self.dim.max(1))
            .enumerate()
            .filter(|(i, _)| self.alive[*i])
            .map(|(i, v)| (v, i))
            .collect();
        g.parallel_insert_slice(&items);
        g
    }
}

impl std::fmt::Debug for Vectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vectors")
            .field("dim", &self.dim)
            .field("len", &self.keys.len())
            .field("graph", &self.graph.is_some())
            .finish_non_exhaustive()
    }
}

impl Vectors {
    /// `ann_from`: size from which the graph answers.
    pub fn new(ann_from: usize) -> Self {
        Self {
            dim: 0,
            data: Vec::new(),
            keys: Vec::new(),
            expires: Vec::new(),
            alive: Vec::new(),
            seen: HashSet::new(),
            dead: 0,
            ann_from: ann_from.max(1),
            graph: None,
            building: false,
            generation: 0,
        }
    }

    /// Live and dead vectors held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether searches go through the graph.
    pub fn approximate(&self) -> bool {
        self.graph.is_some()
    }

    /// Add a unit vector and, when that crosses the threshold, build the
    /// graph right here (benches, tests; the [`Index`] defers the build).
    pub fn push(&mut self, key: String, expires_ms: u64, v: &[f32]) {
        self.add(key, expires_ms, v);
        if let Some(snapshot) = self.wants_graph() {
            let graph = snapshot.build();
            self.install(graph, &snapshot);
        }
    }

    /// Add a unit vector (a different dimension than the partition's is
    /// ignored: the embeddings model changed; old vectors expire). Goes
    /// into the graph if there is one; never builds one.
    fn add(&mut self, key: String, expires_ms: u64, v: &[f32]) {
        if self.dim == 0 {
            self.dim = v.len();
        }
        if v.len() != self.dim || !self.seen.insert(key.clone()) {
            return;
        }
        let i = self.keys.len();
        self.data.extend_from_slice(v);
        self.keys.push(key);
        self.expires.push(expires_ms);
        self.alive.push(true);
        if let Some(g) = &self.graph {
            g.insert_slice((v, i));
        }
    }

    /// A snapshot to build the graph from, when the partition has crossed
    /// the threshold and has no graph (nor one in the making).
    fn wants_graph(&mut self) -> Option<Snapshot> {
        if self.graph.is_some() || self.building || self.keys.len() < self.ann_from {
            return None;
        }
        self.building = true;
        Some(Snapshot {
            dim: self.dim,
            data: self.data.clone(),
            alive: self.alive.clone(),
            generation: self.generation,
        })
    }

    /// Install a graph built from `from`, adding what came since; dropped
    /// when a compaction has renumbered the vectors meanwhile.
    fn install(&mut self, graph: Graph, from: &Snapshot) {
        if from.generation != self.generation {
            return;
        }
        self.building = false;
        let dim = self.dim;
        for i in from.alive.len()..self.keys.len() {
            if self.alive[i] {
                graph.insert_slice((&self.data[i * dim..(i + 1) * dim], i));
            }
        }
        self.graph = Some(graph);
    }

    /// A build from a snapshot of `generation` failed: allow another.
    fn build_failed(&mut self, generation: u64) {
        if generation == self.generation {
            self.building = false;
        }
    }

    /// Mark `key` gone (its answer expired or was purged).
    pub fn remove(&mut self, key: &str) {
        if let Some(i) = self.keys.iter().position(|k| k == key)
            && self.alive[i]
        {
            self.alive[i] = false;
            self.dead += 1;
        }
    }

    /// Drop dead and expired vectors once they are most of the partition
    /// (rebuilding the graph if there is one).
    pub fn compact(&mut self, now_ms: u64) {
        let expired = self.expires.iter().filter(|e| **e <= now_ms).count();
        if self.keys.len() < 64 || (self.dead + expired) * 2 < self.keys.len() {
            return;
        }
        let mut old = std::mem::replace(self, Vectors::new(self.ann_from));
        self.generation = old.generation + 1;
        let vectors = old.data.chunks_exact(old.dim.max(1));
        let rows = old
            .keys
            .drain(..)
            .zip(old.expires.drain(..))
            .zip(&old.alive);
        for (((key, expires), alive), v) in rows.zip(vectors) {
            if *alive && expires > now_ms {
                self.add(key, expires, v);
            }
        }
    }

    fn live(&self, i: usize, now_ms: u64) -> bool {
        self.alive[i] && self.expires[i] > now_ms
    }

    /// The best live match: (key, similarity).
    pub fn nearest(&self, q: &[f32], now_ms: u64) -> Option<(&str, f32)> {
        if q.len() != self.dim || self.dim == 0 {
            return None;
        }
        if let Some(g) = &self.graph {
            let found = g
                .search(q, ANN_K, ANN_EF)
                .into_iter()
                .find(|n| self.live(n.d_id, now_ms));
            if let Some(n) = found {
                let v = &self.data[n.d_id * self.dim..(n.d_id + 1) * self.dim];
                return Some((self.keys[n.d_id].as_str(), dot(q, v)));
            }
            // Every neighbour found is gone: the scan below decides.
        }
        let mut best: Option<(usize, f32)> = None;
        for (i, v) in self.data.chunks_exact(self.dim).enumerate() {
            if !self.live(i, now_ms) {
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
struct Part {
    vectors: Vectors,
    read_until_ms: u64,
}

/// The partitions this gateway has searched.
pub struct Index {
    store: Arc<dyn Store>,
    ann_from: usize,
    parts: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Part>>>>,
}

impl Index {
    /// `ann_from`: `[cache] exact-search-below`.
    pub fn new(store: Arc<dyn Store>, ann_from: usize) -> Self {
        Self {
            store,
            ann_from,
            parts: Default::default(),
        }
    }

    fn part(&self, log: &str) -> Arc<tokio::sync::Mutex<Part>> {
        self.parts
            .lock()
            .entry(log.to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Part {
                    vectors: Vectors::new(self.ann_from),
                    read_until_ms: 0,
                }))
            })
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
        p.vectors.compact(now_ms);
        build_later(&part, &mut p.vectors);
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
        let part = self.part(log);
        let mut p = part.lock().await;
        p.vectors.add(key.to_string(), expires_ms, v);
        build_later(&part, &mut p.vectors);
        Ok(())
    }

    /// Forget `key` in `log` (its answer is gone).
    pub async fn forget(&self, log: &str, key: &str) {
        self.part(log).lock().await.vectors.remove(key);
    }

    /// Vectors held in memory.
    pub async fn vectors(&self) -> usize {
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

/// If `vectors` wants a graph, build it on a blocking thread and install it
/// under the partition's lock when done; searches scan meanwhile.
fn build_later(part: &Arc<tokio::sync::Mutex<Part>>, vectors: &mut Vectors) {
    let Some(snapshot) = vectors.wants_graph() else {
        return;
    };
    let part = part.clone();
    let generation = snapshot.generation;
    tokio::spawn(async move {
        let built = tokio::task::spawn_blocking(move || {
            let graph = snapshot.build();
            (graph, snapshot)
        })
        .await;
        match built {
            Ok((graph, snapshot)) => part.lock().await.vectors.install(graph, &snapshot),
            Err(e) => {
                tracing::warn!(error = %e, "cache: building a semantic index graph failed; exact scan kept");
                part.lock().await.vectors.build_failed(generation);
            }
        }
    });
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
        let mut vs = Vectors::new(1000);
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
        assert_eq!(vs.len(), 3, "another dimension is ignored");
        assert!(vs.nearest(&[1.0, 0.0], 50).is_none());
    }

    /// Deterministic pseudo-random unit vectors.
    fn random(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect();
                unit(&v)
            })
            .collect()
    }

    #[test]
    fn the_graph_finds_what_the_scan_finds_past_the_threshold() {
        let points = random(600, 32, 7);
        let mut exact = Vectors::new(usize::MAX);
        let mut ann = Vectors::new(200);
        for (i, p) in points.iter().enumerate() {
            exact.push(format!("k{i}"), 100, p);
            ann.push(format!("k{i}"), 100, p);
        }
        assert!(ann.approximate() && !exact.approximate());
        // A slightly moved copy of a stored point: both find that point.
        let mut agree = 0;
        for (i, p) in points.iter().enumerate().step_by(20) {
            let mut q = p.clone();
            q[0] += 0.05;
            let q = unit(&q);
            let (ke, se) = exact.nearest(&q, 0).unwrap();
            assert_eq!(ke, format!("k{i}"));
            let (ka, sa) = ann.nearest(&q, 0).unwrap();
            if ka == ke {
                assert!((sa - se).abs() < 1e-5);
                agree += 1;
            }
        }
        assert!(agree >= 29, "recall {agree}/30");
        // A removed point is never answered, by the graph or the scan.
        ann.remove("k0");
        assert_ne!(ann.nearest(&points[0], 0).unwrap().0, "k0");
    }

    #[test]
    fn compaction_drops_the_dead_and_expired_and_keeps_the_rest() {
        let points = random(100, 8, 3);
        let mut vs = Vectors::new(50);
        for (i, p) in points.iter().enumerate() {
            vs.push(format!("k{i}"), if i < 60 { 10 } else { 100 }, p);
        }
        vs.compact(20);
        assert_eq!(vs.len(), 40);
        assert_eq!(vs.nearest(&points[70], 20).unwrap().0, "k70");
        assert!(!vs.approximate(), "40 is below the threshold again");
    }

    /// Crossing the threshold in an [`Index`] does not build the graph on
    /// the caller: searches answer by the scan at once, and the graph
    /// built on a blocking thread is installed afterwards, with the
    /// vectors added meanwhile.
    // One thread: the task that installs the graph runs only when this
    // one yields, so right after the crossing `add` the graph cannot be in.
    #[tokio::test(flavor = "current_thread")]
    async fn the_index_builds_its_graph_off_the_request_path() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::state::State::open(&crate::state::StateConfig {
            dir: dir.path().to_path_buf(),
            warm_tokenizer: false,
            ..Default::default()
        })
        .await
        .unwrap();
        let index = Index::new(state.store().clone(), 100);
        let points = random(300, 16, 11);
        let log = "cache-vec|k|p";
        for (i, p) in points.iter().enumerate() {
            index
                .add(log, &format!("k{i}"), u64::MAX, p, 1)
                .await
                .unwrap();
            // Every search answers, graph or not.
            let (k, _) = index.nearest(log, p, 2).await.unwrap().unwrap();
            assert_eq!(k, format!("k{i}"));
        }
        let part = index.part(log);
        let installed = async {
            loop {
                if part.lock().await.vectors.approximate() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), installed)
            .await
            .expect("the graph was never installed");
        let p = part.lock().await;
        assert_eq!(p.vectors.len(), 300);
        let (k, _) = p.vectors.nearest(&points[250], 2).unwrap();
        assert_eq!(
            k, "k250",
            "a vector added while the graph was built is in it"
        );
    }
}
