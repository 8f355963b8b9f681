//! The process-wide wasmtime [`Engine`]: pooling allocator sized for heavy
//! (Python / JS) components, epoch interruption driven by one ticker thread,
//! optional fuel, and a compile cache keyed by the component's SHA-256 (in
//! memory, and on disk in `cache-dir`: see `cache` for how those bytes are
//! validated before wasmtime deserializes them).
//!
//! The ticker only says "time to look at the clock": each tick calls the
//! store's epoch callback (`sandbox`), which compares the wall clock with
//! the call's deadline and yields to the async runtime while time remains.
//! A late tick (a busy machine stretches a 1 ms sleep) therefore delays the
//! moment a deadline is noticed by that lateness only; it never stretches
//! the deadline itself, as counting ticks did.
//!
//! Components that use the component-model async ABI (jco's QuickJS
//! backend by default) compile only on an engine with that feature, and
//! such an engine gives every store concurrency bookkeeping: measured with
//! callgrind on a small Rust guardrail's fresh-instance call (then still
//! a synchronous call), 119.2 k
//! instructions instead of 101.5 k (+17 %: task records around
//! instantiation and each call, whether or not the guest uses the ABI).
//! So each engine has a lazily created *async twin* with the feature on,
//! and [`SharedEngine::compile_any`] puts on it only the components the
//! plain engine refuses: plain guests do not pay for the ones that need it.
//! Both engines run guests the same way otherwise (async execution, epoch
//! deadlines, pooling): the twin differs in that one feature only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::Thread;
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

use super::cache::DiskCache;

/// One epoch tick: how often running guest code checks its deadline and
/// yields to the async runtime.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Ticks in a row with no guest call started or running after which the
/// ticker parks until the next call. A tick costs a thread wake-up; so does
/// waking a parked ticker (plus the `unpark` syscall in the caller). Counting
/// calls *started* since the last tick, not only calls running at the tick
/// (a first-party guardrail call lasts ~30 µs of each 1 ms tick), a gateway
/// with a call every millisecond or more often never parks (one wake-up per
/// tick, as before), and a lightly loaded one parks two ticks after its last
/// call: at 100 requests a second 2-4 wake-ups per request instead of the 10
/// of a ticker that parked only after 100 idle ticks (bench/README.md).
const IDLE_TICKS_BEFORE_PARKING: u32 = 2;

/// Bytes of each memory / table reset in place (only pages the guest has
/// written, found with PAGEMAP_SCAN) instead of decommitted. A page once
/// written stays resident and is reset on every later release of that slot,
/// so this also bounds the per-call reset cost (~2 MiB of memset) for a slot
/// a big guest once used. Covers a Rust guest's 1 MiB shadow stack plus data
/// and a small heap; pages past it are decommitted as before.
const KEEP_RESIDENT_SCANNED: usize = 2 << 20;

/// Compiled components kept in memory, so a reload or a second runtime in
/// the same process does not recompile an unchanged file.
const MEMORY_CACHE_ENTRIES: usize = 64;

/// What shapes an engine. Runtimes asking for the same settings share one
/// engine (and its ticker and compile cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct EngineSettings {
    pub fuel: bool,
    pub max_instances: u32,
    pub max_memory_mb: u64,
}

/// An engine plus its in-memory compile cache.
pub(crate) struct SharedEngine {
    pub engine: Engine,
    pub settings: EngineSettings,
    /// Whether this engine has the component-model async ABI on.
    pub component_model_async: bool,
    compiled: Mutex<CompileCache>,
    ticker: Arc<Ticker>,
}

/// What the ticker thread and the callers share: how many guest calls are
/// running and have started, and whether the ticker is parked (and so must
/// be woken).
struct Ticker {
    running: AtomicUsize,
    /// Calls started so far (wrapping): activity between two ticks.
    started: AtomicUsize,
    parked: AtomicBool,
    thread: OnceLock<Thread>,
}

/// Marks guest code as running while alive (see [`SharedEngine::running`]).
pub(crate) struct Running<'a>(&'a Ticker);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct CompileCache {
    clock: u64,
    entries: HashMap<[u8; 32], (Component, u64)>,
}

/// The engine for `settings`: the one already in use by another runtime
/// with the same settings, or a new one (with its epoch ticker). The map
/// holds engines weakly: when the last runtime using one is dropped, the
/// engine, its compile cache and its ticker thread go with it.
pub(crate) fn shared(settings: EngineSettings) -> Result<Arc<SharedEngine>, String> {
    shared_with(settings, false)
}

/// [`shared`], or its async twin (see the module docs); held weakly like
/// the plain engines, so a twin lives as long as a plugin compiled on it.
fn shared_with(
    settings: EngineSettings,
    component_model_async: bool,
) -> Result<Arc<SharedEngine>, String> {
    type Engines = HashMap<(EngineSettings, bool), Weak<SharedEngine>>;
    static ENGINES: OnceLock<Mutex<Engines>> = OnceLock::new();
    let key = (settings, component_model_async);
    let mut map = ENGINES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.retain(|_, e| e.strong_count() > 0);
    if let Some(e) = map.get(&key).and_then(Weak::upgrade) {
        return Ok(e);
    }
    let engine = build(settings, component_model_async)
        .map_err(|e| format!("creating the wasm engine: {e:#}"))?;
    let ticker = start_ticker(&engine);
    let shared = Arc::new(SharedEngine {
        engine,
        settings,
        component_model_async,
        compiled: Mutex::new(CompileCache::default()),
        ticker,
    });
    map.insert(key, Arc::downgrade(&shared));
    Ok(shared)
}

fn build(s: EngineSettings, component_model_async: bool) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    let max_memory = usize::try_from(s.max_memory_mb.saturating_mul(1 << 20))?;
    // Slots are reserved address space, committed only when touched, so the
    // counts can be generous: a componentize-py guest has ~10 core instances,
    // several memories and large tables.
    pool.total_component_instances(s.max_instances)
        .total_core_instances(s.max_instances.saturating_mul(8))
        .total_memories(s.max_instances.saturating_mul(2))
        .total_tables(s.max_instances.saturating_mul(8))
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_memories_per_module(2)
        .max_tables_per_module(8)
        .table_elements(100_000)
        .max_component_instance_size(4 << 20)
        .max_core_instance_size(4 << 20)
        .max_memory_size(max_memory);
    // A fresh instance per call makes slot reset the hot path. By default
    // wasmtime `madvise(DONTNEED)`s every memory and table on release, so
    // each call paid three syscalls plus a page fault for every page the
    // guest touched again (about a third of a small guardrail's call). With
    // PAGEMAP_SCAN (Linux >= 6.7) wasmtime finds the written pages and
    // resets just those in place (image bytes or zeros), keeping them
    // resident: no syscall but one ioctl per memory/table, no page faults.
    // Contents after reset are identical either way (the image, or zeros);
    // only the mechanism changes. Without PAGEMAP_SCAN keep-resident would
    // memset the whole prefix on every call (unmeasured here), so the
    // decommit behaviour stays as it was.
    let keep_resident = if PoolingAllocationConfig::is_pagemap_scan_available() {
        KEEP_RESIDENT_SCANNED
    } else {
        0
    };
    pool.pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(keep_resident)
        .table_keep_resident(keep_resident);
    // Every call runs on a fiber (async execution); its stack comes from the
    // pool too, one per concurrent call. Not zeroed on reuse (wasmtime's
    // default): zeroing costs a memset or a syscall per call.
    pool.total_stacks(s.max_instances);
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .wasm_component_model_async(component_model_async)
        .concurrency_support(component_model_async)
        .epoch_interruption(true)
        .consume_fuel(s.fuel)
        .max_wasm_stack(1 << 20)
        // wasmtime's default; must exceed `max_wasm_stack`: the difference
        // is what host functions get.
        .async_stack_size(2 << 20)
        // Fill table slots on first use (wasmtime's default) rather than at
        // instantiation. Eager filling builds a function reference (a
        // function-location lookup) for every element of every table of
        // every fresh instance, used or not: ~400 per request for the three
        // first-party guardrails (tables of 110, 83 and 203), which made
        // their chain 71.5 us instead of 50.6 us back to back. Interpreted
        // guests, for which eager filling once measured better, showed no
        // consistent difference in interleaved runs (QuickJS, Python) or
        // did better lazily (StarlingMonkey): bench/README.md, "Instantiation
        // per call". Table contents a guest can observe are the same.
        .table_lazy_init(true)
        // Both are wasmtime's defaults today; stated so that a default
        // change upstream cannot silently slow guests or startup.
        .cranelift_opt_level(OptLevel::Speed)
        .parallel_compilation(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&cfg)
}

/// One thread per engine advances the epoch every [`EPOCH_TICK`] while
/// guest code runs, parks after [`IDLE_TICKS_BEFORE_PARKING`] idle ticks,
/// and exits when the engine is gone.
fn start_ticker(engine: &Engine) -> Arc<Ticker> {
    let ticker = Arc::new(Ticker {
        running: AtomicUsize::new(0),
        started: AtomicUsize::new(0),
        parked: AtomicBool::new(false),
        thread: OnceLock::new(),
    });
    let weak = engine.weak();
    let t = ticker.clone();
    let handle = std::thread::Builder::new()
        .name("sluice-epoch".into())
        .spawn(move || {
            let mut idle = 0;
            let mut seen = t.started.load(Ordering::SeqCst);
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                let started = t.started.load(Ordering::SeqCst);
                idle = idle_ticks(idle, t.running.load(Ordering::SeqCst), started, seen);
                seen = started;
                if idle < IDLE_TICKS_BEFORE_PARKING {
                    std::thread::sleep(EPOCH_TICK);
                    continue;
                }
                // Announce the park, then re-check: a caller that started
                // in between either is seen here or sees `parked` and
                // unparks us (an early unpark makes `park` return at once).
                // The timeout only bounds how long a dropped engine keeps
                // this thread around; a timeout with nothing running parks
                // again instead of ticking.
                t.parked.store(true, Ordering::SeqCst);
                while t.running.load(Ordering::SeqCst) == 0 {
                    if weak.upgrade().is_none() {
                        return;
                    }
                    std::thread::park_timeout(Duration::from_secs(1));
                }
                t.parked.store(false, Ordering::SeqCst);
                idle = 0;
                seen = t.started.load(Ordering::SeqCst);
                // A full tick before the next increment, so a deadline
                // armed just before the wake-up is not cut one tick short.
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
    let _ = ticker.thread.set(handle.thread().clone());
    ticker
}

/// Idle ticks in a row after this one: reset by a call running at the tick
/// or started since the last one (`started` moved on from `seen`).
fn idle_ticks(idle: u32, running: usize, started: usize, seen: usize) -> u32 {
    if running == 0 && started == seen {
        idle + 1
    } else {
        0
    }
}

impl SharedEngine {
    /// Call before guest code runs and keep the guard until it returns:
    /// wakes the epoch ticker if it is parked, so deadlines keep firing.
    pub fn running(&self) -> Running<'_> {
        let t = &*self.ticker;
        t.running.fetch_add(1, Ordering::SeqCst);
        t.started.fetch_add(1, Ordering::Relaxed);
        if t.parked.load(Ordering::SeqCst)
            && let Some(thread) = t.thread.get()
        {
            thread.unpark();
        }
        Running(t)
    }

    /// Whether the ticker is parked (idle). For tests.
    #[cfg(test)]
    fn ticker_parked(&self) -> bool {
        self.ticker.parked.load(Ordering::SeqCst)
    }

    /// [`Self::compile`] on this engine, or, if this engine refuses the
    /// component and has the async ABI off, on its async twin (created on
    /// first use). Returns the engine the component belongs to: stores and
    /// linkers for it must come from that one. When both refuse, the error
    /// is this engine's.
    pub fn compile_any(
        self: &Arc<Self>,
        bytes: &[u8],
        sha: [u8; 32],
        disk: Option<&DiskCache>,
    ) -> wasmtime::Result<(Component, bool, Arc<SharedEngine>)> {
        let err = match self.compile(bytes, sha, disk) {
            Ok((c, compiled)) => return Ok((c, compiled, self.clone())),
            Err(e) if self.component_model_async => return Err(e),
            Err(e) => e,
        };
        let twin = shared_with(self.settings, true).map_err(wasmtime::Error::msg)?;
        match twin.compile(bytes, sha, disk) {
            Ok((c, compiled)) => Ok((c, compiled, twin)),
            Err(_) => Err(err),
        }
    }

    /// Compile `bytes` (SHA-256 `sha`), reusing an in-memory or on-disk
    /// artifact when there is one. Returns the component and whether it was
    /// compiled now (false = cache hit).
    pub fn compile(
        &self,
        bytes: &[u8],
        sha: [u8; 32],
        disk: Option<&DiskCache>,
    ) -> wasmtime::Result<(Component, bool)> {
        {
            let mut c = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
            c.clock += 1;
            let now = c.clock;
            if let Some((comp, used)) = c.entries.get_mut(&sha) {
                *used = now;
                return Ok((comp.clone(), false));
            }
        }
        let cached = disk.and_then(|d| d.load(&self.engine, &sha));
        let compiled_now = cached.is_none();
        let component = match cached {
            Some(c) => c,
            None => Component::new(&self.engine, bytes)?,
        };
        if let (true, Some(d)) = (compiled_now, disk)
            && let Err(e) = d.store(&self.engine, &sha, &component)
        {
            tracing::warn!(dir = %d.dir().display(), "could not write compile cache: {e:#}");
        }
        let mut c = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if c.entries.len() >= MEMORY_CACHE_ENTRIES
            && let Some(oldest) = c
                .entries
                .iter()
                .min_by_key(|(_, (_, u))| *u)
                .map(|(k, _)| *k)
        {
            c.entries.remove(&oldest);
        }
        let now = c.clock;
        c.entries.insert(sha, (component.clone(), now));
        Ok((component, compiled_now))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_call_started_between_ticks_counts_as_activity() {
        // Nothing ran and nothing started: one more idle tick.
        assert_eq!(idle_ticks(1, 0, 7, 7), 2);
        // A short call started and finished between two ticks.
        assert_eq!(idle_ticks(1, 0, 8, 7), 0);
        // A call still running at the tick.
        assert_eq!(idle_ticks(1, 1, 7, 7), 0);
        // The counter wraps; any change is activity.
        assert_eq!(idle_ticks(0, 0, 0, usize::MAX), 0);
    }

    #[test]
    fn ticker_parks_when_idle_and_wakes_for_a_call() {
        let e = shared(EngineSettings {
            fuel: false,
            max_instances: 2,
            max_memory_mb: 1,
        })
        .unwrap();
        assert!(!e.component_model_async);
        let until = |want: bool, within: Duration| {
            let start = Instant::now();
            while e.ticker_parked() != want {
                assert!(start.elapsed() < within, "ticker parked != {want}");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        until(true, Duration::from_secs(5));
        // Across the park timeout (1 s) it parks again rather than ticking.
        for _ in 0..130 {
            std::thread::sleep(Duration::from_millis(10));
            assert!(e.ticker_parked(), "stays parked while idle");
        }
        let running = e.running();
        until(false, Duration::from_millis(500));
        std::thread::sleep(EPOCH_TICK * (IDLE_TICKS_BEFORE_PARKING + 50));
        assert!(!e.ticker_parked(), "never parks while guest code runs");
        drop(running);
        until(true, Duration::from_secs(5));
    }
}
