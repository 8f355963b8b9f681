//! Per-store limits and what a failed call turns into: the memory limiter,
//! the wall-clock deadline and fuel armed right before guest code runs, and
//! classifying a wasmtime error into a [`PluginFailure`].
//!
//! The deadline is measured, not counted: at every epoch tick the store's
//! callback compares [`Instant::now`] with the call's deadline, interrupts
//! the guest once it has passed and otherwise yields to the async runtime
//! (so a long guest shares its worker thread) before running on for
//! another tick. Host calls (a clock sleep, a socket read) are not guest
//! code and see no ticks: the caller's `tokio::time::timeout` at the same
//! deadline cancels them (`instance`).

use std::fmt::Write as _;
use std::time::Instant;

use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};

use super::error::PluginFailure;
use super::host_state::HostState;

/// Caps all linear memories of one instance together, and remembers that
/// the cap was hit so the resulting trap (Rust guests abort on allocation
/// failure) is reported as [`PluginFailure::Memory`], not a generic trap.
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    used: usize,
    pub hit: bool,
}

impl MemoryLimiter {
    pub fn new(memory_mb: u64) -> Self {
        MemoryLimiter {
            max_bytes: usize::try_from(memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            used: 0,
            hit: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.used - current.min(self.used) + desired;
        if after > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.used = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far past any real
        // guest and keeps a table bomb from eating host memory.
        Ok(desired <= 1_000_000)
    }
}

/// Install the deadline check on a new store (see the module docs).
pub(crate) fn install_deadline(store: &mut Store<HostState>) {
    store.epoch_deadline_callback(|cx| {
        if Instant::now() >= cx.data().deadline {
            return Ok(UpdateDeadline::Interrupt);
        }
        // tokio's yield puts the task behind the others ready on this
        // worker *and* behind the I/O driver's next poll, so requests
        // waiting on a socket are served between two ticks of a long guest.
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
}

/// Arm the wall-clock `deadline` (and fuel, when the engine meters it) for
/// the guest code about to run: the first tick from now checks the clock.
pub(crate) fn arm(store: &mut Store<HostState>, deadline: Instant, fuel_enabled: bool) {
    store.data_mut().deadline = deadline;
    let fuel = store.data().ctx.manifest.limits.fuel.unwrap_or(u64::MAX);
    store.set_epoch_deadline(1);
    if fuel_enabled {
        // Only fails when fuel is not enabled in the engine.
        let _ = store.set_fuel(fuel);
    }
}

/// Turn an error from instantiation or a call into a failure kind.
pub(crate) fn classify(err: &wasmtime::Error, state: &HostState) -> PluginFailure {
    if state.limiter.hit {
        return PluginFailure::Memory;
    }
    let mut why = match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => return PluginFailure::Deadline,
        Some(Trap::OutOfFuel) => return PluginFailure::Fuel,
        Some(Trap::StackOverflow) => "stack overflow (wasm call stack exhausted)".to_owned(),
        Some(trap) => trap.to_string(),
        // Not a trap (e.g. a host function failed): the innermost cause is
        // the readable part; the outer layers are wasm backtraces.
        None => err.root_cause().to_string(),
    };
    // A Rust guest prints its panic message to stderr before aborting.
    let (stderr, _) = state.stderr.take();
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note:"))
        .collect();
    if !said.is_empty() {
        let text = said.join(" ");
        why.push_str("; stderr: ");
        // Guest text: escaped so it cannot forge log lines (it reaches the
        // log and, for a fail-closed guardrail, the client's error).
        let _ = write!(why, "{}", super::log::escaped(tail(&text, 300)));
    }
    PluginFailure::Trap(why)
}

/// The last `max` bytes of `s`, on a char boundary.
fn tail(s: &str, max: usize) -> &str {
    &s[s.ceil_char_boundary(s.len().saturating_sub(max))..]
}
