//! The embedded backend: one sled database in one directory, owned by one
//! process (sled locks the directory, so a second gateway on the same
//! directory fails at start instead of corrupting it).
//!
//! Budgets and ledger writes go through [`Book`] (in-memory book, group
//! committing writer; its module doc says why and what it costs). Single-key
//! KV operations use sled's own atomic compare-and-swap. Rate limits are
//! `governor`, in memory ([`LocalLimiter`]).
//!
//! Durability of KV writes and generic log appends: `sync` fsyncs before a
//! write returns; `group` leaves it to the book's writer, which flushes and
//! fsyncs within `group-commit-ms` ([`Book::touch`]). sled recovers a prefix
//! of its log: never a hole.
//!
//! Trees and encodings (integers big-endian so byte order is time order):
//! - `kv`: `ns 0 key` -> `expires_ms(8) value` (0 = no TTL); `kv-ttl`:
//!   `expires_ms(8) ns 0 key` -> () indexes entries to sweep.
//! - `main`: logs as `l name 0 time_ms(8) seq(8)` -> record; counters as
//!   `c scope-len(2) scope period` -> `spent(8) expires_at(8)`.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use sled::Tree;

use super::local_limit::LocalLimiter;
use super::sled_book::Book;
use super::store::{
    CounterKey, CounterValue, LogPage, RateCheck, RateResult, Reserve, Reserved, Result, Settle,
    Store, StoreError,
};
use super::{LEDGER_LOG, now_ms};

/// How often expired KV entries and finished budget counters are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(300);

/// sled's flusher period in `group` mode, where the book's writer does the
/// group flush: the flusher is left its segment GC (it is sled's only GC
/// driver) and a spare fsync. sled's own default. At the group window (10
/// ms) it woke and fsynced 100 times a second, idle or not (12 % of the
/// gateway's CPU samples at 100 rps: `bench/README.md`).
const SLED_GC_EVERY_MS: u64 = 500;

pub(crate) struct SledStore {
    db: sled::Db,
    kv: Tree,
    kv_ttl: Tree,
    /// Counters and logs (see the module doc).
    budget: Tree,
    book: Book,
    limiter: LocalLimiter,
    sync: bool,
}

pub(crate) struct SledOptions<'a> {
    pub dir: &'a Path,
    pub sync: bool,
    pub group_commit: Duration,
    pub cache_bytes: u64,
}

impl SledStore {
    pub(crate) fn open(o: &SledOptions<'_>) -> Result<Arc<Self>> {
        std::fs::create_dir_all(o.dir).map_err(|e| {
            StoreError::Invalid(format!("creating state dir {}: {e}", o.dir.display()))
        })?;
        let flush_ms = if o.sync {
            // The fsync that follows sync mode's KV flushes (which only
            // `sync_file_range`), within the window as before.
            u64::try_from(o.group_commit.as_millis()).unwrap_or(u64::MAX)
        } else {
            SLED_GC_EVERY_MS
        };
        let db = sled::Config::new()
            .path(o.dir)
            .cache_capacity(o.cache_bytes)
            .flush_every_ms(Some(flush_ms.max(1)))
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let log_path = o.dir.join("db");
        let log = std::fs::File::open(&log_path).map_err(|e| {
            StoreError::Invalid(format!("opening sled's log {}: {e}", log_path.display()))
        })?;
        let budget = db.open_tree("main")?;
        let book = Book::open(db.clone(), log, budget.clone(), o.sync, o.group_commit)?;
        let store = Arc::new(Self {
            kv: db.open_tree("kv")?,
            kv_ttl: db.open_tree("kv-ttl")?,
            budget,
            db,
            book,
            limiter: LocalLimiter::default(),
            sync: o.sync,
        });
        spawn_sweeper(Arc::downgrade(&store));
        Ok(store)
    }

    async fn durable(&self) -> Result<()> {
        if self.sync {
            self.db.flush_async().await?;
        } else {
            self.book.touch();
        }
        Ok(())
    }

    fn live(&self, full: &[u8], raw: &[u8]) -> Result<Option<Vec<u8>>> {
        let (expires, value) = split_expiry(full, raw)?;
        Ok((expires == 0 || expires > now_ms()).then(|| value.to_vec()))
    }

    /// Drop expired KV entries and budget counters whose period is over.
    fn sweep(&self) -> Result<()> {
        let now = now_ms();
        for item in self.kv_ttl.range(..now.to_be_bytes().to_vec()) {
            let (idx, _) = item?;
            let key = &idx[8..];
            // Only if the entry was not rewritten with another expiry since.
            if let Some(v) = self.kv.get(key)?
                && v.len() >= 8
                && v[..8] == idx[..8]
            {
                self.kv
                    .compare_and_swap(key, Some(v), None as Option<&[u8]>)?
                    .ok();
            }
            self.kv_ttl.remove(&idx)?;
        }
        self.book.sweep(now)?;
        if !self.sync {
            self.book.touch();
        }
        Ok(())
    }
}

fn spawn_sweeper(store: Weak<SledStore>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            let Some(s) = store.upgrade() else { return };
            let done = tokio::task::spawn_blocking(move || s.sweep()).await;
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "state: sweeping expired entries failed");
            }
        }
    });
}

#[async_trait]
impl Store for SledStore {
    fn backend(&self) -> &'static str {
        "sled"
    }

    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let k = kv_key(ns, key);
        match self.kv.get(&k)? {
            Some(v) => self.live(&k, &v),
            None => Ok(None),
        }
    }

    async fn get_many(&self, keys: &[(&str, &str)]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for (ns, key) in keys {
            out.push(self.get(ns, key).await?);
        }
        Ok(out)
    }

    async fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let k = kv_key(ns, key);
        let (expires, v) = with_expiry(value, ttl);
        self.kv.insert(&k, v)?;
        if expires != 0 {
            self.kv_ttl.insert(ttl_key(expires, &k), &[])?;
        }
        self.durable().await
    }

    async fn put_if_absent(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let k = kv_key(ns, key);
        let (expires, v) = with_expiry(value, ttl);
        loop {
            let current = self.kv.get(&k)?;
            if let Some(c) = &current
                && self.live(&k, c)?.is_some()
            {
                return Ok(false);
            }
            // An expired entry counts as absent: swap it out atomically.
            if self
                .kv
                .compare_and_swap(&k, current, Some(v.clone()))?
                .is_ok()
            {
                break;
            }
        }
        if expires != 0 {
            self.kv_ttl.insert(ttl_key(expires, &k), &[])?;
        }
        self.durable().await?;
        Ok(true)
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<bool> {
        let k = kv_key(ns, key);
        let old = self.kv.remove(&k)?;
        self.durable().await?;
        Ok(match old {
            Some(v) => self.live(&k, &v)?.is_some(),
            None => false,
        })
    }

    async fn scan(&self, ns: &str, prefix: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>> {
        let p = kv_key(ns, prefix);
        let skip = ns.len() + 1;
        let mut out = Vec::new();
        for item in self.kv.scan_prefix(&p) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if let Some(value) = self.live(&k, &v)? {
                out.push((String::from_utf8_lossy(&k[skip..]).into_owned(), value));
            }
        }
        Ok(out)
    }

    async fn append(&self, log: &str, time_ms: u64, record: &[u8]) -> Result<()> {
        let id = self.db.generate_id()?;
        self.budget.insert(log_key(log, time_ms, id), record)?;
        self.durable().await
    }

    async fn read_log(
        &self,
        log: &str,
        since_ms: u64,
        until_ms: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<LogPage> {
        if log == LEDGER_LOG && after.is_none() {
            // Reports see every record settled before they started.
            self.book.barrier().await?;
        }
        let start = match after {
            Some(a) => {
                let mut k = a.to_vec();
                k.push(0); // the smallest key after `a`
                k
            }
            None => log_key(log, since_ms, 0),
        };
        let end = log_key(log, until_ms, 0);
        let mut page = LogPage::default();
        let mut last = None;
        for item in self.budget.range(start..end) {
            let (k, v) = item?;
            if page.records.len() >= limit {
                page.next = last;
                return Ok(page);
            }
            page.records.push(v.to_vec());
            last = Some(k.to_vec());
        }
        Ok(page)
    }

    async fn trim_log(&self, log: &str, before_ms: u64) -> Result<u64> {
        if log == LEDGER_LOG {
            // Records still queued in the writer are counted too.
            self.book.barrier().await?;
        }
        let (tree, start, end) = (
            self.budget.clone(),
            log_key(log, 0, 0),
            log_key(log, before_ms, 0),
        );
        let trimmed = tokio::task::spawn_blocking(move || -> Result<u64> {
            let mut total = 0;
            // Batches bound the memory a large first trim takes.
            loop {
                let mut batch = sled::Batch::default();
                let mut n = 0u64;
                for item in tree.range(start.clone()..end.clone()).take(10_000) {
                    batch.remove(item?.0);
                    n += 1;
                }
                if n == 0 {
                    return Ok(total);
                }
                tree.apply_batch(batch)?;
                total += n;
            }
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("trimming the log: {e}")))??;
        self.durable().await?;
        Ok(trimmed)
    }

    async fn flush(&self) -> Result<()> {
        self.book.barrier().await?;
        self.db.flush_async().await?;
        Ok(())
    }

    async fn reserve(&self, req: &Reserve<'_>) -> Result<Reserved> {
        self.book.reserve(req, now_ms())
    }

    async fn settle(&self, req: &Settle<'_>) -> Result<Vec<CounterValue>> {
        let record = match req.record {
            Some((time_ms, bytes)) => {
                let id = self.db.generate_id()?;
                Some((log_key(LEDGER_LOG, time_ms, id), bytes.to_vec()))
            }
            None => None,
        };
        self.book
            .settle(req.counters, req.id, req.cost, record)
            .await
    }

    async fn counters(&self, keys: &[CounterKey]) -> Result<Vec<CounterValue>> {
        self.book.counters(keys, now_ms())
    }

    async fn rate(&self, checks: &[RateCheck]) -> Result<Vec<RateResult>> {
        Ok(self.limiter.check(checks))
    }
}

fn kv_key(ns: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.len() + 1 + key.len());
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

fn ttl_key(expires: u64, kv_key: &[u8]) -> Vec<u8> {
    let mut k = expires.to_be_bytes().to_vec();
    k.extend_from_slice(kv_key);
    k
}

fn with_expiry(value: &[u8], ttl: Option<Duration>) -> (u64, Vec<u8>) {
    let expires = ttl.map_or(0, |t| {
        now_ms().saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
    });
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&expires.to_be_bytes());
    v.extend_from_slice(value);
    (expires, v)
}

fn split_expiry<'v>(key: &[u8], raw: &'v [u8]) -> Result<(u64, &'v [u8])> {
    Ok((read_u64(key, raw, 0)?, &raw[8..]))
}

fn log_key(log: &str, time_ms: u64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(log.len() + 18);
    k.push(b'l');
    k.extend_from_slice(log.as_bytes());
    k.push(0);
    k.extend_from_slice(&time_ms.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn read_u64(key: &[u8], v: &[u8], at: usize) -> Result<u64> {
    v.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: format!("expected 8 bytes at offset {at}, value has {}", v.len()),
        })
}
