//! The sled backend's budgets and ledger writes: an in-memory book plus a
//! group-committing writer thread.
//!
//! One process owns the sled directory, so the book (counters, live
//! reservations) under one mutex is the whole truth, and every check and
//! update is atomic under it. Reservations are never written to disk: a
//! crash ends every in-flight request, so their reservations must vanish
//! with them, which memory does for free.
//!
//! Settling updates the book at once (the next reservation sees the spend)
//! and queues the ledger record; the writer thread persists queued records
//! and the new values of the counters they changed in **one sled batch**
//! (atomic: after a crash ledger and spend agree), then fsyncs:
//! - `group`: the writer lets a window of `group-commit-ms` fill before each
//!   batch, so a crash loses at most that window plus one write; requests
//!   never wait for the disk. The writer is also the group flusher of the
//!   store's other writes (KV, generic logs: [`Book::touch`]), so sled's own
//!   flusher only runs for its segment GC (see `sled_store`).
//! - `sync`: `finish` waits until its batch is fsynced. Requests arriving
//!   during one fsync share the next: one fsync per batch, not per request.
//!
//! Each batch is `apply_batch`, sled's `flush` (its `sync_file_range` of the
//! log, done on one of sled's I/O threads) and an `fdatasync` of the log file
//! on the writer thread, so the batch is on disk, file size included, when
//! the writer moves on (before, sled's flusher thread fsynced the file on its
//! own 10 ms tick, idle or not: one more thread wake-up and fsync per window).
//!
//! The window opens with the first record after an idle writer, so at 100
//! requests a second a batch holds about two records. A writer that lingered
//! on a timer after each batch (sparing the request its wake-up call) was
//! measured and doubled the batches, and with them sled's I/O thread
//! wake-ups (`bench/README.md`, "Light load: the ledger's commits").
//!
//! Measured (`sled_parts` in `benches/state.rs`): keeping reservations in
//! sled and writing each settle through its own batch cost ~150 µs per
//! reserve + release and ~30 µs per finish of sled page churn on the
//! request path; the book and the writer move all of it off that path.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use sled::{Batch, Tree};
use tokio::sync::oneshot;

use super::store::{CounterKey, CounterValue, Nanos, Reserve, Reserved, Result, StoreError};

pub(crate) struct Book {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

struct Shared {
    db: sled::Db,
    /// sled's log file (`<dir>/db`), opened again to `fdatasync` it after
    /// each batch: sled's `flush` only does `sync_file_range`, which
    /// neither persists a grown file's size nor flushes the disk's cache.
    log: std::fs::File,
    tree: Tree,
    sync: bool,
    window: Duration,
    state: Mutex<State>,
    work: Condvar,
    /// Batches written so far, and its signal (tests wait on it; one
    /// uncontended lock per batch, beside an fsync).
    batches: Mutex<u64>,
    batched: Condvar,
}

#[derive(Default)]
struct State {
    counters: HashMap<Vec<u8>, Counter>,
    reservations: HashMap<String, Held>,
    /// `(expiry ms, id)` of every live reservation.
    by_expiry: BTreeSet<(u64, String)>,
    /// Ledger records waiting for the writer.
    records: Vec<(Vec<u8>, Vec<u8>)>,
    /// Counters whose spend changed since the last batch.
    dirty: HashSet<Vec<u8>>,
    /// Callers waiting for the next batch to be on disk.
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
    /// Writes outside the book (KV, generic logs) wait for the next flush.
    unflushed: bool,
    /// The writer waits for work with no deadline: new work must wake it.
    parked: bool,
    shutdown: bool,
}

struct Counter {
    spent: Nanos,
    reserved: Nanos,
    /// Unix seconds.
    expires_at: u64,
}

struct Held {
    amount: Nanos,
    expiry: u64,
    counters: Vec<Vec<u8>>,
}

impl State {
    fn has_work(&self) -> bool {
        !self.records.is_empty()
            || !self.dirty.is_empty()
            || !self.waiters.is_empty()
            || self.unflushed
    }

    /// Whether the writer must be woken for new work (once per park: later
    /// callers skip the `notify`).
    fn unpark(&mut self) -> bool {
        std::mem::take(&mut self.parked)
    }

    /// Drop reservations whose expiry has passed (their requests died
    /// without settling or dropping them).
    fn expire(&mut self, now: u64) {
        while let Some((expiry, _)) = self.by_expiry.first()
            && *expiry <= now
        {
            let (_, id) = self.by_expiry.pop_first().expect("checked above");
            self.release(&id);
        }
    }

    fn release(&mut self, id: &str) {
        let Some(held) = self.reservations.remove(id) else {
            return;
        };
        self.by_expiry.remove(&(held.expiry, id.to_string()));
        for k in &held.counters {
            if let Some(c) = self.counters.get_mut(k) {
                c.reserved -= held.amount;
            }
        }
    }
}

impl Book {
    /// `log` is sled's log file (`<dir>/db`), fsynced after each batch.
    pub(crate) fn open(
        db: sled::Db,
        log: std::fs::File,
        tree: Tree,
        sync: bool,
        window: Duration,
    ) -> Result<Book> {
        let shared = Arc::new(Shared {
            db,
            log,
            tree,
            sync,
            window,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            batches: Mutex::new(0),
            batched: Condvar::new(),
        });
        let s = shared.clone();
        let writer = std::thread::Builder::new()
            .name("sluice-ledger".into())
            .spawn(move || s.run())
            .map_err(|e| StoreError::Invalid(format!("starting the ledger writer: {e}")))?;
        Ok(Book {
            shared,
            writer: Some(writer),
        })
    }

    /// The counter, loaded from disk on first use.
    fn counter<'s>(
        &self,
        st: &'s mut State,
        key: &CounterKey,
    ) -> Result<(Vec<u8>, &'s mut Counter)> {
        let k = counter_key(key);
        if !st.counters.contains_key(&k) {
            let (spent, expires_at) = match self.shared.tree.get(&k)? {
                Some(v) => decode_counter(&k, &v)?,
                None => (0, key.expires_at),
            };
            st.counters.insert(
                k.clone(),
                Counter {
                    spent,
                    reserved: 0,
                    expires_at: expires_at.max(key.expires_at),
                },
            );
        }
        let c = st.counters.get_mut(&k).expect("inserted above");
        Ok((k, c))
    }

    pub(crate) fn reserve(&self, req: &Reserve<'_>, now: u64) -> Result<Reserved> {
        let expiry = now.saturating_add(u64::try_from(req.ttl.as_millis()).unwrap_or(u64::MAX));
        let mut st = self.shared.state.lock();
        st.expire(now);
        let mut keys = Vec::with_capacity(req.lines.len());
        for (index, (key, limit)) in req.lines.iter().enumerate() {
            let (k, c) = self.counter(&mut st, key)?;
            if c.spent + c.reserved + req.amount > *limit {
                let value = CounterValue {
                    spent: c.spent,
                    reserved: c.reserved,
                };
                return Ok(Reserved::Denied { index, value });
            }
            keys.push(k);
        }
        let mut values = Vec::with_capacity(keys.len());
        for k in &keys {
            let c = st.counters.get_mut(k).expect("loaded above");
            c.reserved += req.amount;
            values.push(CounterValue {
                spent: c.spent,
                reserved: c.reserved,
            });
        }
        st.by_expiry.insert((expiry, req.id.to_string()));
        st.reservations.insert(
            req.id.to_string(),
            Held {
                amount: req.amount,
                expiry,
                counters: keys,
            },
        );
        Ok(Reserved::Ok(values))
    }

    /// Release reservation `id`, add `cost` to `counters`, queue `record`
    /// (`(key, value)` in the tree). In sync mode, returns once it is on disk.
    pub(crate) async fn settle(
        &self,
        counters: &[CounterKey],
        id: &str,
        cost: Nanos,
        record: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Vec<CounterValue>> {
        let mut wait = None;
        let values = {
            let mut st = self.shared.state.lock();
            st.release(id);
            let mut values = Vec::with_capacity(counters.len());
            for c in counters {
                let (k, counter) = self.counter(&mut st, c)?;
                counter.spent += cost;
                values.push(CounterValue {
                    spent: counter.spent,
                    reserved: counter.reserved,
                });
                if cost != 0 {
                    st.dirty.insert(k);
                }
            }
            if let Some(r) = record {
                st.records.push(r);
                if self.shared.sync {
                    let (tx, rx) = oneshot::channel();
                    st.waiters.push(tx);
                    wait = Some(rx);
                }
            }
            // A parked writer needs a wake-up for new work; a waiter also
            // cuts a group window short.
            if (st.has_work() && st.unpark()) || wait.is_some() {
                self.shared.work.notify_one();
            }
            values
        };
        if let Some(rx) = wait {
            written(rx).await?;
        }
        Ok(values)
    }

    /// Record a write made outside the book (KV, generic logs) in group
    /// mode: the next batch flushes it, within the window like a record.
    pub(crate) fn touch(&self) {
        let mut st = self.shared.state.lock();
        st.unflushed = true;
        if st.unpark() {
            self.shared.work.notify_one();
        }
    }

    /// Wait until everything settled so far is written and fsynced.
    pub(crate) async fn barrier(&self) -> Result<()> {
        let rx = {
            let mut st = self.shared.state.lock();
            let (tx, rx) = oneshot::channel();
            st.waiters.push(tx);
            self.shared.work.notify_one();
            rx
        };
        written(rx).await
    }

    pub(crate) fn counters(&self, keys: &[CounterKey], now: u64) -> Result<Vec<CounterValue>> {
        let mut st = self.shared.state.lock();
        st.expire(now);
        keys.iter()
            .map(|k| {
                let (_, c) = self.counter(&mut st, k)?;
                Ok(CounterValue {
                    spent: c.spent,
                    reserved: c.reserved,
                })
            })
            .collect()
    }

    /// Forget counters whose period is over, in memory and on disk.
    pub(crate) fn sweep(&self, now: u64) -> Result<()> {
        let mut st = self.shared.state.lock();
        st.expire(now);
        let now_s = now / 1000;
        let State {
            counters, dirty, ..
        } = &mut *st;
        counters.retain(|k, c| c.expires_at >= now_s || c.reserved != 0 || dirty.contains(k));
        let mut batch = Batch::default();
        for item in self.shared.tree.scan_prefix(b"c") {
            let (k, v) = item?;
            let (_, expires_at) = decode_counter(&k, &v)?;
            if expires_at < now_s && !st.counters.contains_key(k.as_ref()) {
                batch.remove(k);
            }
        }
        self.shared.tree.apply_batch(batch)?;
        Ok(())
    }
}

impl Drop for Book {
    /// Write what is queued and stop the writer.
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.work.notify_one();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

async fn written(rx: oneshot::Receiver<Result<(), String>>) -> Result<()> {
    match rx.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StoreError::Invalid(format!("writing the ledger: {e}"))),
        Err(_) => Err(StoreError::Invalid("the ledger writer stopped".into())),
    }
}

impl Shared {
    fn run(&self) {
        loop {
            let (records, counters, unflushed, waiters, last) = {
                let mut st = self.state.lock();
                while !st.has_work() && !st.shutdown {
                    st.parked = true;
                    self.work.wait(&mut st);
                }
                st.parked = false;
                // Group mode: let the window fill, unless someone waits.
                if !self.sync && st.waiters.is_empty() && !st.shutdown {
                    let deadline = Instant::now() + self.window;
                    while st.waiters.is_empty() && !st.shutdown {
                        if self.work.wait_until(&mut st, deadline).timed_out() {
                            break;
                        }
                    }
                }
                let unflushed = std::mem::take(&mut st.unflushed);
                let counters: Vec<(Vec<u8>, Vec<u8>)> = std::mem::take(&mut st.dirty)
                    .into_iter()
                    .filter_map(|k| {
                        let c = st.counters.get(&k)?;
                        let v = encode_counter(c.spent, c.expires_at);
                        Some((k, v))
                    })
                    .collect();
                let last = st.shutdown;
                (
                    std::mem::take(&mut st.records),
                    counters,
                    unflushed,
                    std::mem::take(&mut st.waiters),
                    last,
                )
            };
            let result = self.write(records, counters, unflushed);
            *self.batches.lock() += 1;
            self.batched.notify_all();
            if let Err(e) = &result {
                tracing::error!(error = %e, "state: writing ledger records and spend failed");
            }
            for w in waiters {
                let _ = w.send(result.clone());
            }
            if last {
                return;
            }
        }
    }

    /// `unflushed`: writes outside the book are waiting for this flush.
    fn write(
        &self,
        records: Vec<(Vec<u8>, Vec<u8>)>,
        counters: Vec<(Vec<u8>, Vec<u8>)>,
        unflushed: bool,
    ) -> std::result::Result<(), String> {
        let dirty = unflushed || !records.is_empty() || !counters.is_empty();
        if !records.is_empty() || !counters.is_empty() {
            let mut batch = Batch::default();
            for (k, v) in records.into_iter().chain(counters) {
                batch.insert(k, v);
            }
            self.tree.apply_batch(batch).map_err(|e| e.to_string())?;
        }
        let written = self.db.flush().map_err(|e| e.to_string())?;
        // Also when this flush wrote nothing: a full log buffer may have
        // gone out on its own, with `sync_file_range` only.
        if dirty || written > 0 {
            self.log.sync_data().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

pub(crate) fn counter_key(c: &CounterKey) -> Vec<u8> {
    let mut k = b"c".to_vec();
    let len = u16::try_from(c.scope.len()).unwrap_or(u16::MAX);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(&c.scope.as_bytes()[..usize::from(len)]);
    k.extend_from_slice(c.period.as_bytes());
    k
}

/// `spent(8) expires_at(8)`.
fn encode_counter(spent: Nanos, expires_at: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&spent.to_be_bytes());
    v.extend_from_slice(&expires_at.to_be_bytes());
    v
}

fn decode_counter(key: &[u8], v: &[u8]) -> Result<(Nanos, u64)> {
    let corrupt = || StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: format!("counter value of {} bytes, expected 16", v.len()),
    };
    let spent = v.get(..8).ok_or_else(corrupt)?;
    let exp = v.get(8..16).ok_or_else(corrupt)?;
    Ok((
        i64::from_be_bytes(spent.try_into().map_err(|_| corrupt())?),
        u64::from_be_bytes(exp.try_into().map_err(|_| corrupt())?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In group mode sled's own flusher no longer runs at the window, so a
    /// write outside the book must reach the disk through the writer.
    #[test]
    fn touched_writes_get_a_batch_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path())
            .flush_every_ms(None)
            .open()
            .unwrap();
        let log = std::fs::File::open(dir.path().join("db")).unwrap();
        let book = Book::open(
            db.clone(),
            log,
            db.open_tree("main").unwrap(),
            false,
            Duration::from_millis(10),
        )
        .unwrap();
        assert_eq!(
            *book.shared.batches.lock(),
            0,
            "an idle writer writes nothing"
        );
        db.open_tree("kv").unwrap().insert(b"k", b"v").unwrap();
        book.touch();
        // Without the touch the writer stays parked: no batch, ever (the
        // cap is far above any scheduling delay).
        let cap = Instant::now() + Duration::from_secs(60);
        let mut batches = book.shared.batches.lock();
        while *batches == 0 {
            let waited = book.shared.batched.wait_until(&mut batches, cap);
            assert!(
                !waited.timed_out() || *batches > 0,
                "the touched write was never flushed"
            );
        }
        drop(batches);
        assert!(!book.shared.state.lock().unflushed);
        // The write is durable: nothing is left for an explicit flush.
        assert_eq!(db.flush().unwrap(), 0);
    }
}
