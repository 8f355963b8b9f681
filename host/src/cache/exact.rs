//! Cached answers in the state store (namespace `cache`), and the size
//! bound.
//!
//! One entry per exact key: the checked answer and what it cost upstream
//! (the money a hit saves), with the store's TTL so an entry disappears on
//! its own. Store keys are `model|scope|digest` (`|` and `%` escaped in
//! the first two), so a purge by model or key is a scan of the namespace.
//!
//! The bound: on sled (one process owns the directory) the cache keeps the
//! recency of every entry in memory and deletes the least recently used
//! one when a store would pass `max-entries`; the recency is rebuilt from
//! the entries' creation times at the first use after a restart. On Redis
//! several gateways share the entries, so no gateway can keep the order:
//! Redis's `maxmemory` with `maxmemory-policy volatile-lru` is the bound
//! (every entry has a TTL, keys and budgets do not, so only entries go).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::openai::ChatCompletion;
use crate::state::store::{Result, Store};

/// The store namespace of answers.
pub const NS: &str = "cache";
/// Entries scanned per purge page.
const SCAN_PAGE: usize = 100_000;

/// One cached answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// As it passed the output guardrails when it was stored (they run
    /// again on every replay).
    pub completion: ChatCompletion,
    /// What the upstream call cost: what each hit saves.
    pub cost_usd: f64,
    /// Unix ms (cache clock).
    pub created_ms: u64,
    pub expires_ms: u64,
}

/// The store key of an entry.
pub fn store_key(model: &str, scope: &str, digest: &str) -> String {
    format!("{}|{}|{digest}", escape(model), escape(scope))
}

/// `(model, scope)` of a store key (escaped forms).
fn split(key: &str) -> Option<(&str, &str)> {
    let mut it = key.splitn(3, '|');
    Some((it.next()?, it.next()?))
}

pub fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('|', "%7C")
}

/// Least-recently-used order of the entries a sled gateway holds.
#[derive(Default)]
struct Recency {
    tick: u64,
    by_key: HashMap<String, u64>,
    by_tick: BTreeMap<u64, String>,
}

impl Recency {
    fn touch(&mut self, key: &str) {
        self.tick += 1;
        if let Some(old) = self.by_key.insert(key.to_string(), self.tick) {
            self.by_tick.remove(&old);
        }
        self.by_tick.insert(self.tick, key.to_string());
    }

    fn forget(&mut self, key: &str) {
        if let Some(t) = self.by_key.remove(key) {
            self.by_tick.remove(&t);
        }
    }

    fn pop_oldest(&mut self) -> Option<String> {
        let (_, key) = self.by_tick.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }
}

/// The answers, over the state store.
pub struct Answers {
    store: Arc<dyn Store>,
    /// Some on sled: the LRU bound (see the module doc). Filled at the
    /// first use.
    recency: Option<tokio::sync::OnceCell<Mutex<Recency>>>,
    max_entries: usize,
}

impl Answers {
    pub fn new(store: Arc<dyn Store>, max_entries: usize) -> Self {
        let recency = (store.backend() == "sled").then(tokio::sync::OnceCell::new);
        Self {
            store,
            recency,
            max_entries: max_entries.max(1),
        }
    }

    async fn recency(&self) -> Option<&Mutex<Recency>> {
        let cell = self.recency.as_ref()?;
        Some(
            cell.get_or_init(|| async {
                let mut found: Vec<(u64, String)> = match self.store.scan(NS, "", SCAN_PAGE).await
                {
                    Ok(all) => all
                        .into_iter()
                        .filter_map(|(k, v)| {
                            let e: Entry = serde_json::from_slice(&v).ok()?;
                            Some((e.created_ms, k))
                        })
                        .collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cache: reading entries for the LRU order failed; starting empty");
                        Vec::new()
                    }
                };
                found.sort();
                let mut r = Recency::default();
                for (_, k) in found {
                    r.touch(&k);
                }
                Mutex::new(r)
            })
            .await,
        )
    }

    /// The entry under `key` if it is there and alive at `now_ms`.
    pub async fn get(&self, key: &str, now_ms: u64) -> Result<Option<Entry>> {
        let Some(bytes) = self.store.get(NS, key).await? else {
            return Ok(None);
        };
        let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
            tracing::warn!(key, "cache: dropping an entry that does not decode");
            self.store.delete(NS, key).await?;
            return Ok(None);
        };
        if entry.expires_ms <= now_ms {
            return Ok(None);
        }
        if let Some(r) = self.recency().await {
            r.lock().touch(key);
        }
        Ok(Some(entry))
    }

    /// Store `entry` under `key`, evicting the least recently used entries
    /// past the bound (sled).
    pub async fn put(&self, key: &str, entry: &Entry, now_ms: u64) -> Result<()> {
        let ttl = std::time::Duration::from_millis(entry.expires_ms.saturating_sub(now_ms));
        // Serialising a completion that was deserialised cannot fail.
        let bytes = serde_json::to_vec(entry).unwrap_or_default();
        self.store.put(NS, key, &bytes, Some(ttl)).await?;
        let Some(r) = self.recency().await else {
            return Ok(());
        };
        let evict: Vec<String> = {
            let mut r = r.lock();
            r.touch(key);
            let mut out = Vec::new();
            while r.by_key.len() > self.max_entries {
                match r.pop_oldest() {
                    Some(k) => out.push(k),
                    None => break,
                }
            }
            out
        };
        for k in evict {
            self.store.delete(NS, &k).await?;
        }
        Ok(())
    }

    /// Delete the entries of `model` and/or `scope` (None: any); how many.
    pub async fn purge(&self, model: Option<&str>, scope: Option<&str>) -> Result<u64> {
        let (model, scope) = (model.map(escape), scope.map(escape));
        let mut n = 0;
        for (k, _) in self.store.scan(NS, "", SCAN_PAGE).await? {
            let Some((m, s)) = split(&k) else { continue };
            if model.as_deref().is_some_and(|x| x != m) || scope.as_deref().is_some_and(|x| x != s)
            {
                continue;
            }
            if self.store.delete(NS, &k).await? {
                n += 1;
            }
            if let Some(r) = self.recency().await {
                r.lock().forget(&k);
            }
        }
        Ok(n)
    }

    /// Live entries (sled: the LRU's size; Redis: a `SCAN`, admin only).
    pub async fn count(&self) -> Result<u64> {
        if let Some(r) = self.recency().await {
            return Ok(r.lock().by_key.len() as u64);
        }
        Ok(self.store.scan(NS, "", SCAN_PAGE).await?.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_escape_the_separator_and_split_back() {
        let k = store_key("a|b%", "key|1", "d1");
        assert_eq!(k, "a%7Cb%25|key%7C1|d1");
        assert_eq!(split(&k), Some(("a%7Cb%25", "key%7C1")));
    }

    #[test]
    fn recency_pops_the_least_recently_used() {
        let mut r = Recency::default();
        r.touch("a");
        r.touch("b");
        r.touch("a");
        assert_eq!(r.pop_oldest().as_deref(), Some("b"));
        assert_eq!(r.pop_oldest().as_deref(), Some("a"));
        assert_eq!(r.pop_oldest(), None);
    }
}
