//! Links the guest with linear memory enough for a large answer from the
//! start (see `INITIAL_MEMORY`); native builds (tests, the benchmark's
//! native half) are left alone.

/// Initial linear memory of the component, in bytes: the 1 MiB stack, the
/// data, and about 900 KiB of heap, which wasi-libc's malloc takes before it
/// grows memory. A fresh instance per call that grows its memory pays two
/// `mprotect`s per call (the growth, and its undoing when the slot is
/// reset), each with a TLB shootdown: 6 % of a 64 KB call (perf,
/// bench/README.md). With this much at the start, answers up to about
/// 400 KB (in, and out rewritten) never grow. Untouched pages cost no
/// memory; the manifest's `memory-mb` (16) stays the limit.
const INITIAL_MEMORY: u32 = 2 << 20;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo::rustc-link-arg-cdylib=--initial-memory={INITIAL_MEMORY}");
    }
}
