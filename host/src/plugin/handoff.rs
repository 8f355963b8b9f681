//! Answering the caller at the deadline even when the guest's thread is not
//! running. A call starts on the caller's task (no thread hop for the
//! common call that ends within a tick); once its guest code has run for
//! [`INLINE_FOR`], the rest of the call moves to the guest executor (its
//! own worker threads) and the caller waits for it against the deadline.
//!
//! Why: on a loaded machine the thread running a guest is one CPU-bound
//! thread among many and waits its turn for a core, 20-100 ms at load 10
//! on 2 cores (bench/README.md). The epoch callback can only interrupt the
//! guest once that thread runs again, and as long as the call was polled
//! on the caller's task, the caller got its answer no sooner. A caller
//! waiting on a timer is a *sleeping* thread, which the scheduler runs
//! within a few ms of its wake-up. The guest is then dropped by the
//! executor at its next poll (the abort at the deadline) or its next epoch
//! check (the callback's interrupt), whichever its thread reaches first:
//! at most one tick of guest CPU after it is scheduled again.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;
use tracing::instrument::{Instrument as _, WithSubscriber as _};

use super::engine::EPOCH_TICK;
use super::error::PluginFailure;

/// How long a call may run on the caller's task before it moves to the
/// guest executor. A hop costs two thread wake-ups (tens of µs on a busy
/// machine), so calls shorter than a tick (a first-party guardrail takes
/// ~30 µs) never pay it; a call that lasts longer pays it once.
const INLINE_FOR: Duration = EPOCH_TICK;

/// A whole plugin call, boxed so that it can move between tasks midway.
pub(crate) type Call<T> = Pin<Box<dyn Future<Output = Result<T, PluginFailure>> + Send>>;

/// The runtime guests run on once they leave the caller's task: one worker
/// per core, started on the first hand-off and kept for the process. `None`
/// if its threads could not be started (logged once): calls then stay on
/// the caller's task, as they did before the hand-off existed.
fn executor() -> Option<&'static Handle> {
    static RT: OnceLock<Option<Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name("sluice-guest")
            .enable_all()
            .build()
            .inspect_err(|e| {
                tracing::warn!(error = %e, "starting the guest executor failed; long plugin calls stay on the caller's task");
            })
            .ok()
    })
    .as_ref()
    .map(Runtime::handle)
}

/// Run `call` until `deadline`: inline first, on the guest executor once it
/// has run for [`INLINE_FOR`]. At the deadline the caller gets
/// [`PluginFailure::Deadline`] whether or not the guest's thread has run.
pub(crate) async fn bounded<T: Send + 'static>(
    mut call: Call<T>,
    deadline: Instant,
) -> Result<T, PluginFailure> {
    let timer = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timer);
    let inline_until = Instant::now() + INLINE_FOR;
    let inline = poll_fn(|cx| {
        if let Poll::Ready(res) = call.as_mut().poll(cx) {
            return Poll::Ready(Ok(res));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(Err(PluginFailure::Deadline)));
        }
        if Instant::now() >= inline_until
            && let Some(executor) = executor()
        {
            return Poll::Ready(Err(executor));
        }
        Poll::Pending
    })
    .await;
    let executor = match inline {
        Ok(res) => return res,
        Err(executor) => executor,
    };
    // Aborted when this future ends or is dropped (the deadline, or the
    // caller gone): the executor drops the guest at its next poll. The
    // caller's span and subscriber go along, so what the guest logs keeps
    // its request and reaches the same log.
    let call = call
        .instrument(tracing::Span::current())
        .with_current_subscriber();
    let mut task = AbortOnDrop(executor.spawn(call));
    poll_fn(|cx| {
        if let Poll::Ready(res) = Pin::new(&mut task.0).poll(cx) {
            return Poll::Ready(
                res.unwrap_or_else(|e| Err(PluginFailure::Trap(format!("guest task ended: {e}")))),
            );
        }
        timer
            .as_mut()
            .poll(cx)
            .map(|()| Err(PluginFailure::Deadline))
    })
    .await
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Guest code of a plugin still running, and how long past its deadline
/// guest code ran at most: a caller answered at the deadline does not wait
/// for the guest to stop, so this is what says it did.
#[derive(Debug, Default)]
pub(crate) struct Guests {
    running: AtomicUsize,
    max_overrun_us: AtomicU64,
}

impl Guests {
    /// Hold while guest code for a call with `deadline` may run.
    pub fn enter(&self, deadline: Instant) -> GuestRunning<'_> {
        self.running.fetch_add(1, Ordering::SeqCst);
        GuestRunning(self, deadline)
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    pub fn max_overrun(&self) -> Duration {
        Duration::from_micros(self.max_overrun_us.load(Ordering::Relaxed))
    }
}

pub(crate) struct GuestRunning<'a>(&'a Guests, Instant);

impl Drop for GuestRunning<'_> {
    fn drop(&mut self) {
        let over = Instant::now().saturating_duration_since(self.1);
        let us = u64::try_from(over.as_micros()).unwrap_or(u64::MAX);
        self.0.max_overrun_us.fetch_max(us, Ordering::Relaxed);
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}
