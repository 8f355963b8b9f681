//! The embedded backend: one sled database in one directory, owned by one
//! process (sled locks the directory, so a second gateway on the same
//! directory fails at start instead of corrupting it).
//!
//! Atomicity: budget operations (reserve, settle, the expiry sweep) run
//! under one mutex, so their read-check-write cannot interleave, and each
//! writes through one sled batch or transaction, so a crash leaves all of an
//! operation or none of it. Single-key operations use sled's own atomic
//! compare-and-swap. Rate limits are `governor`, in memory ([`LocalLimiter`]).
//!
//! Durability: `sync` fsyncs (`flush_async`, on sled's thread pool) before a
//! write returns; `group` leaves it to sled's flusher, which fsyncs every
//! `group-commit-ms`, so a crash loses at most that window of writes (sled
//! recovers a prefix of its log: never a hole).
//!
//! Trees and encodings (integers big-endian so byte order is time order):
//! - `kv`: `ns 0 key` -> `expires_ms(8) value` (0 = no TTL); `kv-ttl`:
//!   `expires_ms(8) ns 0 key` -> () indexes entries to sweep.
//! - `log`: `name 0 time_ms(8) seq(8)` -> record.
//! - `budget`: `c scope-len(2) scope period` -> `spent(8) reserved(8)
//!   expires_at(8)`; `r rid-len(2) rid counter` -> `amount(8) expiry_ms(8)`;
//!   `x expiry_ms(8) r-key` -> () indexes reservations to expire.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Batch, Tree};

use super::local_limit::LocalLimiter;
use super::store::{
    CounterKey, CounterValue, LogPage, Nanos, RateCheck, RateResult, Reserve, Reserved, Result,
    Settle, Store, StoreError,
};
use super::{LEDGER_LOG, now_ms};

/// How often expired KV entries and finished budget counters are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(300);

pub(crate) struct SledStore {
    db: sled::Db,
    kv: Tree,
    kv_ttl: Tree,
    log: Tree,
    budget: Tree,
    /// Serialises every read-check-write on `budget`.
    budget_lock: Mutex<()>,
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
        let flush_ms = u64::try_from(o.group_commit.as_millis()).unwrap_or(u64::MAX);
        let db = sled::Config::new()
            .path(o.dir)
            .cache_capacity(o.cache_bytes)
            // Sync mode flushes on every write itself; the timer still
            // covers writes that do not ask (reservations).
            .flush_every_ms(Some(flush_ms.max(1)))
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let store = Arc::new(Self {
            kv: db.open_tree("kv")?,
            kv_ttl: db.open_tree("kv-ttl")?,
            log: db.open_tree("log")?,
            budget: db.open_tree("budget")?,
            db,
            budget_lock: Mutex::new(()),
            limiter: LocalLimiter::default(),
            sync: o.sync,
        });
        spawn_sweeper(Arc::downgrade(&store));
        Ok(store)
    }

    async fn durable(&self) -> Result<()> {
        if self.sync {
            self.db.flush_async().await?;
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
        let _guard = self.budget_lock.lock();
        self.expire_reservations(now)?;
        let now_s = now / 1000;
        let mut batch = Batch::default();
        for item in self.budget.scan_prefix(b"c") {
            let (k, v) = item?;
            let (_, reserved, expires_at) = counter_value(&k, &v)?;
            if expires_at < now_s && reserved == 0 {
                batch.remove(k);
            }
        }
        self.budget.apply_batch(batch)?;
        Ok(())
    }

    /// Release reservations whose expiry has passed (caller holds the lock).
    fn expire_reservations(&self, now: u64) -> Result<()> {
        let mut end = b"x".to_vec();
        end.extend_from_slice(&now.to_be_bytes());
        let mut batch = Batch::default();
        // Summed per counter: several may expire at once on one counter.
        let mut counters: BTreeMap<Vec<u8>, Nanos> = BTreeMap::new();
        for item in self.budget.range(b"x".to_vec()..end) {
            let (x, _) = item?;
            let rkey = &x[9..];
            if let Some(r) = self.budget.get(rkey)? {
                let amount = read_i64(rkey, &r, 0)?;
                let counter = counter_of_reservation(rkey)?;
                *counters.entry(counter).or_default() += amount;
                batch.remove(rkey);
            }
            batch.remove(x);
        }
        for (ckey, amount) in counters {
            if let Some(v) = self.budget.get(&ckey)? {
                let (spent, reserved, exp) = counter_value(&ckey, &v)?;
                batch.insert(ckey, encode_counter(spent, reserved - amount, exp));
            }
        }
        self.budget.apply_batch(batch)?;
        Ok(())
    }

    fn read_counter(&self, key: &CounterKey) -> Result<(Vec<u8>, CounterValue, u64)> {
        let k = counter_key(key);
        let (spent, reserved, exp) = match self.budget.get(&k)? {
            Some(v) => counter_value(&k, &v)?,
            None => (0, 0, key.expires_at),
        };
        Ok((k, CounterValue { spent, reserved }, exp.max(key.expires_at)))
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
        self.log.insert(log_key(log, time_ms, id), record)?;
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
        for item in self.log.range(start..end) {
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

    async fn flush(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }

    async fn reserve(&self, req: &Reserve<'_>) -> Result<Reserved> {
        let now = now_ms();
        let expiry = now + u64::try_from(req.ttl.as_millis()).unwrap_or(u64::MAX / 2);
        let _guard = self.budget_lock.lock();
        self.expire_reservations(now)?;
        let mut batch = Batch::default();
        let mut values = Vec::with_capacity(req.lines.len());
        for (index, (key, limit)) in req.lines.iter().enumerate() {
            let (k, value, exp) = self.read_counter(key)?;
            if value.spent + value.reserved + req.amount > *limit {
                return Ok(Reserved::Denied { index, value });
            }
            let after = CounterValue {
                spent: value.spent,
                reserved: value.reserved + req.amount,
            };
            let rkey = reservation_key(req.id, &k);
            let mut r = req.amount.to_be_bytes().to_vec();
            r.extend_from_slice(&expiry.to_be_bytes());
            batch.insert(expiry_key(expiry, &rkey), &[]);
            batch.insert(rkey, r);
            batch.insert(k, encode_counter(after.spent, after.reserved, exp));
            values.push(after);
        }
        self.budget.apply_batch(batch)?;
        Ok(Reserved::Ok(values))
    }

    async fn settle(&self, req: &Settle<'_>) -> Result<Vec<CounterValue>> {
        let id = match req.record {
            Some(_) => Some(self.db.generate_id()?),
            None => None,
        };
        let values = {
            let _guard = self.budget_lock.lock();
            let reads = req
                .counters
                .iter()
                .map(|c| {
                    let (k, v, exp) = self.read_counter(c)?;
                    let rkey = reservation_key(req.id, &k);
                    let held = self.budget.get(&rkey)?.map(|r| r.to_vec());
                    Ok((k, v, exp, rkey, held))
                })
                .collect::<Result<Vec<_>>>()?;
            let result = (&self.budget, &self.log).transaction(|(b, l)| {
                let mut values = Vec::with_capacity(reads.len());
                for (k, v, exp, rkey, held) in &reads {
                    let mut reserved = v.reserved;
                    if let Some(r) = held {
                        let amount = read_i64(rkey, r, 0).map_err(abort)?;
                        let expiry = read_u64(rkey, r, 8).map_err(abort)?;
                        reserved -= amount;
                        b.remove(rkey.as_slice())?;
                        b.remove(expiry_key(expiry, rkey))?;
                    }
                    let spent = v.spent + req.cost;
                    b.insert(k.as_slice(), encode_counter(spent, reserved, *exp))?;
                    values.push(CounterValue { spent, reserved });
                }
                if let (Some((time_ms, record)), Some(id)) = (req.record, id) {
                    l.insert(log_key(LEDGER_LOG, time_ms, id), record)?;
                }
                Ok(values)
            });
            match result {
                Ok(v) => v,
                Err(TransactionError::Abort(e)) => return Err(e),
                Err(TransactionError::Storage(e)) => return Err(e.into()),
            }
        };
        if req.record.is_some() {
            self.durable().await?;
        }
        Ok(values)
    }

    async fn counters(&self, keys: &[CounterKey]) -> Result<Vec<CounterValue>> {
        keys.iter()
            .map(|k| self.read_counter(k).map(|(_, v, _)| v))
            .collect()
    }

    async fn rate(&self, checks: &[RateCheck]) -> Result<Vec<RateResult>> {
        Ok(self.limiter.check(checks))
    }
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
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
    let mut k = Vec::with_capacity(log.len() + 17);
    k.extend_from_slice(log.as_bytes());
    k.push(0);
    k.extend_from_slice(&time_ms.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn counter_key(c: &CounterKey) -> Vec<u8> {
    let mut k = b"c".to_vec();
    let len = u16::try_from(c.scope.len()).unwrap_or(u16::MAX);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(&c.scope.as_bytes()[..usize::from(len)]);
    k.extend_from_slice(c.period.as_bytes());
    k
}

fn reservation_key(id: &str, counter: &[u8]) -> Vec<u8> {
    let mut k = b"r".to_vec();
    let len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(&id.as_bytes()[..usize::from(len)]);
    k.extend_from_slice(counter);
    k
}

fn counter_of_reservation(rkey: &[u8]) -> Result<Vec<u8>> {
    let corrupt = || StoreError::Corrupt {
        key: String::from_utf8_lossy(rkey).into_owned(),
        reason: "reservation key too short".into(),
    };
    let len = rkey.get(1..3).ok_or_else(corrupt)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    rkey.get(3 + len..).map(<[u8]>::to_vec).ok_or_else(corrupt)
}

fn expiry_key(expiry: u64, rkey: &[u8]) -> Vec<u8> {
    let mut k = b"x".to_vec();
    k.extend_from_slice(&expiry.to_be_bytes());
    k.extend_from_slice(rkey);
    k
}

fn encode_counter(spent: Nanos, reserved: Nanos, expires_at: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    v.extend_from_slice(&spent.to_be_bytes());
    v.extend_from_slice(&reserved.max(0).to_be_bytes());
    v.extend_from_slice(&expires_at.to_be_bytes());
    v
}

fn counter_value(key: &[u8], v: &[u8]) -> Result<(Nanos, Nanos, u64)> {
    Ok((
        read_i64(key, v, 0)?,
        read_i64(key, v, 8)?,
        read_u64(key, v, 16)?,
    ))
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

fn read_i64(key: &[u8], v: &[u8], at: usize) -> Result<i64> {
    read_u64(key, v, at).map(|u| u as i64)
}
