//! Guest code may call blocking WASI host functions (stdout writes, a
//! panic message, files, sockets), which wasmtime-wasi's sync bindings run
//! with `Handle::block_on`. That panics on an async worker thread. The
//! gateway calls plugins inline on tokio workers (a hop per call would cost
//! more than the call), so every guest call goes through [`run`]:
//!
//! - no tokio context, or a blocking-pool thread: run directly;
//! - a multi-thread runtime: `block_in_place` (the worker's other tasks move
//!   to another thread while the guest runs);
//! - a current-thread runtime (tests): a scoped helper thread.
//!
//! A host-side panic is still caught and reported, so a call never panics.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tokio::runtime::{Handle, RuntimeFlavor};

/// Run `f`, which may execute guest code, where blocking is allowed.
/// `Err` carries the message of a panic raised inside `f`.
pub(crate) fn run<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R, String> {
    let guarded = || catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&*p));
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => guarded(),
        Ok(RuntimeFlavor::CurrentThread) => std::thread::scope(|s| {
            s.spawn(guarded)
                .join()
                .unwrap_or_else(|p| Err(panic_message(&*p)))
        }),
        Ok(_) => tokio::task::block_in_place(guarded),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
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
        let r: Result<(), String> = run(|| panic!("boom"));
        assert_eq!(r, Err("boom".into()));
    }
}
