//! Per-store limits and what a failed call turns into: the memory limiter,
//! arming deadline and fuel right before guest code runs, and classifying a
//! wasmtime error into a [`PluginFailure`].

use wasmtime::{ResourceLimiter, Store, Trap};

use super::engine::EPOCH_TICK;
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

/// Arm the wall-clock deadline (and fuel, when the engine meters it) for
/// the guest code about to run.
pub(crate) fn arm(store: &mut Store<HostState>, fuel_enabled: bool) {
    let limits = &store.data().ctx.manifest.limits;
    let ticks = limits
        .deadline_ms
        .div_ceil(EPOCH_TICK.as_millis() as u64)
        .max(1);
    let fuel = limits.fuel.unwrap_or(u64::MAX);
    store.set_epoch_deadline(ticks);
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
        why.push_str(&super::stdio::escape_control(tail(&text, 300)));
    }
    PluginFailure::Trap(why)
}

/// The last `max` bytes of `s`, on a char boundary.
fn tail(s: &str, max: usize) -> &str {
    let mut cut = s.len().saturating_sub(max);
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    &s[cut..]
}
