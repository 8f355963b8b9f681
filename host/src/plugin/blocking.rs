//! Where guest code runs when the caller is a tokio worker.
//!
//! Guest code may call blocking WASI host functions (a stdout write, a
//! panic message, a sleep, files, sockets), which wasmtime-wasi's sync
//! bindings run with `Handle::block_on`. That panics on an async worker
//! thread. [`run`] is always safe:
//!
//! - no tokio context, or a blocking-pool thread: run directly;
//! - a multi-thread runtime: `block_in_place` (the worker's other tasks move
//!   to another thread while the guest runs);
//! - a current-thread runtime (tests): a scoped helper thread.
//!
//! `block_in_place` is not free: it wakes a blocking-pool thread to take
//! over the worker, about 2 futex calls and 70 µs of CPU per request on the
//! bench machine (bench/README.md), more than a whole small guardrail call.
//! Most guardrails never make a blocking call, so [`run_inline_first`] runs
//! the guest on the worker itself and falls back to [`run`] only when the
//! guest does block: tokio's "cannot start a runtime from within a runtime"
//! panic fires *before* the host function does anything, wasmtime unwinds
//! it out of the guest, and the call is re-run from a fresh instance. Only
//! plugins without side-effecting grants (files, http, sockets) take this
//! path, so the abandoned attempt changed nothing outside its own store.
//! The fallback is sticky per plugin version ([`InlineState`]): a plugin
//! that blocks once pays the retry once. A plugin whose calls run long is
//! moved off the worker the same way: at once when a call hits its deadline
//! or fuel limit, after [`LONG_CALLS`] calls over [`INLINE_MAX`] otherwise
//! (one slow call may just be the thread being descheduled), so a slow or
//! looping guest holds up the other tasks of a worker only briefly.
//!
//! A host-side panic is still caught and reported, so a call never panics.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};

/// A panic raised on the host side while guest code ran, caught so a
/// plugin call never takes its thread down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host panicked: {0}")]
pub struct HostPanic(pub String);

/// Run `f`, which may execute guest code, where blocking is allowed.
pub(crate) fn run<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R, HostPanic> {
    let guarded = || catch_unwind(AssertUnwindSafe(f)).map_err(|p| HostPanic(panic_message(&*p)));
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => guarded(),
        Ok(RuntimeFlavor::CurrentThread) => std::thread::scope(|s| {
            s.spawn(guarded)
                .join()
                .unwrap_or_else(|p| Err(HostPanic(panic_message(&*p))))
        }),
        Ok(_) => tokio::task::block_in_place(guarded),
    }
}

/// Whether a plugin's calls may run inline on an async worker.
#[derive(Debug)]
pub(crate) struct InlineState {
    /// False for plugins whose grants have side effects.
    allowed: bool,
    /// Set once a call blocked or ran long: from then on every call uses
    /// [`run`].
    fell_back: AtomicBool,
    /// Inline calls that took longer than [`INLINE_MAX`].
    long_calls: AtomicU32,
}

impl InlineState {
    pub fn new(allowed: bool) -> Self {
        InlineState {
            allowed,
            fell_back: AtomicBool::new(false),
            long_calls: AtomicU32::new(0),
        }
    }

    /// Calls run on the worker thread (no `block_in_place`).
    pub fn inline(&self) -> bool {
        self.allowed && !self.fell_back.load(Ordering::Relaxed)
    }

    /// Run every later call off the worker. True if this changed anything.
    pub fn move_off_worker(&self) -> bool {
        self.allowed && !self.fell_back.swap(true, Ordering::Relaxed)
    }

    /// Note how an inline call went: `hit_limit` for a deadline or fuel
    /// failure. True if the plugin was moved off the worker just now.
    pub fn record(&self, elapsed: Duration, hit_limit: bool) -> bool {
        let long = elapsed > INLINE_MAX
            && self.long_calls.fetch_add(1, Ordering::Relaxed) + 1 >= LONG_CALLS;
        (hit_limit || long) && self.move_off_worker()
    }
}

/// Inline calls over [`INLINE_MAX`] before a plugin is moved off the worker.
pub(crate) const LONG_CALLS: u32 = 3;

/// The longest inline call before its plugin is moved off the worker: a
/// typical guardrail call takes 20-50 µs; tokio's guidance is to stay well
/// under a millisecond between awaits.
pub(crate) const INLINE_MAX: Duration = Duration::from_millis(5);

/// The text of tokio's panic when `block_on` is called on a worker thread.
const NESTED_RUNTIME: &str = "Cannot start a runtime from within a runtime";

thread_local! {
    /// Set while an inline attempt runs, so the panic hook keeps the
    /// expected nested-runtime panic out of stderr.
    static INLINE_ATTEMPT: Cell<bool> = const { Cell::new(false) };
}

/// Like [`run`], but first tries `f` right here when `state` allows it (see
/// the module docs). `f` may be called twice, so it must not have effects
/// outside the fresh store it creates. `on_fallback` runs once, when the
/// plugin is switched to [`run`] for good.
pub(crate) fn run_inline_first<R: Send>(
    state: &InlineState,
    f: impl Fn() -> R + Send + Sync,
    on_fallback: impl FnOnce(),
) -> Result<R, HostPanic> {
    if !on_async_worker() || !state.inline() {
        return run(f);
    }
    quiet_nested_runtime_panics();
    INLINE_ATTEMPT.with(|a| a.set(true));
    let attempt = catch_unwind(AssertUnwindSafe(&f));
    INLINE_ATTEMPT.with(|a| a.set(false));
    match attempt {
        Ok(r) => Ok(r),
        Err(p) => {
            let message = panic_message(&*p);
            if !message.contains(NESTED_RUNTIME) {
                return Err(HostPanic(message));
            }
            if state.move_off_worker() {
                on_fallback();
            }
            run(f)
        }
    }
}

/// Whether this thread is a worker of a multi-thread tokio runtime (or
/// inside its `block_in_place`, which tokio does not tell apart).
pub(crate) fn on_async_worker() -> bool {
    Handle::try_current().is_ok_and(|h| !matches!(h.runtime_flavor(), RuntimeFlavor::CurrentThread))
}

/// Chain a panic hook that stays silent for the nested-runtime panic of an
/// inline attempt (expected, and handled by the fallback) and defers to the
/// previous hook for everything else.
fn quiet_nested_runtime_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let expected = INLINE_ATTEMPT.with(Cell::get)
                && panic_message(info.payload()).contains(NESTED_RUNTIME);
            if !expected {
                previous(info);
            }
        }));
    });
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn nested_block_on() -> u32 {
        // What wasmtime-wasi's sync bindings do inside a host call.
        match Handle::try_current() {
            Ok(h) => h.block_on(async { 7 }),
            Err(_) => 7,
        }
    }

    #[test]
    fn plain_thread_runs_directly() {
        assert_eq!(run(nested_block_on), Ok(7));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn current_thread_runtime_uses_a_helper_thread() {
        assert_eq!(run(nested_block_on), Ok(7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn multi_thread_worker_uses_block_in_place() {
        assert_eq!(run(nested_block_on), Ok(7));
    }

    #[test]
    fn panics_become_errors() {
        let r: Result<(), HostPanic> = run(|| panic!("boom"));
        assert_eq!(r, Err(HostPanic("boom".into())));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inline_call_that_does_not_block_stays_inline() {
        let state = InlineState::new(true);
        let fallbacks = AtomicU32::new(0);
        let r = run_inline_first(
            &state,
            || 5,
            || {
                fallbacks.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert_eq!(r, Ok(5));
        assert!(state.inline());
        assert_eq!(fallbacks.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inline_call_that_blocks_is_retried_and_falls_back_for_good() {
        let state = InlineState::new(true);
        let attempts = AtomicU32::new(0);
        let fallbacks = AtomicU32::new(0);
        let f = || {
            attempts.fetch_add(1, Ordering::Relaxed);
            nested_block_on()
        };
        let note = || {
            fallbacks.fetch_add(1, Ordering::Relaxed);
        };
        assert_eq!(run_inline_first(&state, f, note), Ok(7));
        assert_eq!(
            attempts.load(Ordering::Relaxed),
            2,
            "inline try, then retry"
        );
        assert!(!state.inline(), "the fallback is sticky");
        assert_eq!(run_inline_first(&state, f, note), Ok(7));
        assert_eq!(
            attempts.load(Ordering::Relaxed),
            3,
            "no inline try any more"
        );
        assert_eq!(fallbacks.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_panics_are_errors_not_retries() {
        let state = InlineState::new(true);
        let attempts = AtomicU32::new(0);
        let r: Result<(), HostPanic> = run_inline_first(
            &state,
            || {
                attempts.fetch_add(1, Ordering::Relaxed);
                panic!("boom")
            },
            || {},
        );
        assert_eq!(r, Err(HostPanic("boom".into())));
        assert_eq!(attempts.load(Ordering::Relaxed), 1);
        assert!(state.inline());
    }

    #[test]
    fn long_calls_move_a_plugin_off_the_worker() {
        let s = InlineState::new(true);
        assert!(
            s.record(Duration::from_micros(30), true),
            "a deadline moves it at once"
        );
        assert!(!s.inline());
        let s = InlineState::new(true);
        let long = INLINE_MAX * 2;
        for _ in 1..LONG_CALLS {
            assert!(!s.record(long, false));
            assert!(!s.record(Duration::from_micros(30), false));
        }
        assert!(s.inline(), "fewer than LONG_CALLS long calls");
        assert!(s.record(long, false));
        assert!(!s.inline());
        assert!(!s.record(long, true), "only moved once");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plugins_with_side_effecting_grants_never_run_inline() {
        let state = InlineState::new(false);
        assert!(!state.inline());
        assert_eq!(run_inline_first(&state, nested_block_on, || {}), Ok(7));
    }
}
