//! Ready instances of one plugin, for guests slow to instantiate
//! (interpreters): a bounded queue that a background thread tops up, so
//! their start-up cost leaves the request path. Fast guests never enable it
//! and instantiate in the calling task (see `PluginsConfig::pool_threshold_us`
//! for why).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;

use crossbeam_queue::ArrayQueue;

/// A bounded pool of `T` (a store with an instance in it) with a refill
/// request channel. The pool itself never instantiates: the owner does, on
/// the refill thread ([`InstancePool::start_fill`], [`InstancePool::put`]).
pub(crate) struct InstancePool<T, R> {
    ready: ArrayQueue<T>,
    /// Instances to keep: 0 until [`InstancePool::enable`].
    target: AtomicUsize,
    size: usize,
    /// Where refill requests go (`R` identifies the owner to the thread).
    refill: Option<Sender<R>>,
    /// A refill request is queued and not yet served.
    pending: AtomicBool,
}

impl<T, R> InstancePool<T, R> {
    pub fn new(size: usize, refill: Option<Sender<R>>) -> Self {
        InstancePool {
            ready: ArrayQueue::new(size.max(1)),
            target: AtomicUsize::new(0),
            size,
            refill,
            pending: AtomicBool::new(false),
        }
    }

    /// A ready instance, if one is pooled.
    pub fn take(&self) -> Option<T> {
        self.ready.pop()
    }

    /// Keep `size` ready instances from now on.
    pub fn enable(&self) {
        self.target.store(self.size, Ordering::Release);
    }

    pub fn is_enabled(&self) -> bool {
        self.target.load(Ordering::Acquire) > 0
    }

    pub fn len(&self) -> usize {
        self.ready.len()
    }

    /// Ask for a top-up once the pool is at or below half full. Waking the
    /// refill thread costs a futex round trip and, on a small machine, a
    /// core the request path wanted; batching means one wake-up per
    /// `size / 2` calls instead of one per call.
    pub fn request_refill(&self, owner: impl FnOnce() -> R) {
        let target = self.target.load(Ordering::Acquire);
        if target == 0 || self.ready.len() > target / 2 {
            return;
        }
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(tx) = &self.refill
            && tx.send(owner()).is_err()
        {
            self.pending.store(false, Ordering::Release);
        }
    }

    /// Start serving a refill request: how many instances are missing from
    /// the target now. The owner makes them (on the refill thread) and
    /// hands each over with [`InstancePool::put`].
    pub fn start_fill(&self) -> usize {
        self.pending.store(false, Ordering::Release);
        self.target
            .load(Ordering::Acquire)
            .saturating_sub(self.ready.len())
    }

    /// Add a ready instance; false (and `t` dropped) when the pool is full.
    pub fn put(&self, t: T) -> bool {
        self.ready.push(t).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn refills_are_batched_and_bounded() {
        let (tx, rx) = mpsc::channel();
        let pool: InstancePool<u32, &str> = InstancePool::new(4, Some(tx));
        pool.request_refill(|| "p");
        assert!(rx.try_recv().is_err(), "a disabled pool never asks");
        pool.enable();
        assert_eq!(pool.start_fill(), 4);
        for _ in 0..4 {
            assert!(pool.put(7));
        }
        assert!(!pool.put(7), "bounded");
        assert_eq!(pool.len(), 4);
        pool.take();
        pool.request_refill(|| "p");
        assert!(rx.try_recv().is_err(), "3 of 4 left: no refill yet");
        pool.take();
        pool.request_refill(|| "p");
        pool.request_refill(|| "p");
        assert_eq!(rx.try_iter().count(), 1, "one request until served");
        assert_eq!(pool.start_fill(), 2);
        pool.take();
        pool.request_refill(|| "p");
        assert_eq!(
            rx.try_iter().count(),
            1,
            "served: the next request goes out"
        );
    }
}
