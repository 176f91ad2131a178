//! gcpin: a garbage-collected heap for C with Go's `runtime.Pinner`.
//!
//! How the parts fit together (one file per concept, Go's names in brackets):
//!
//! - `os`: address-space reservation, page release, futexes, mapped-memory
//!   checks; the only platform-specific layer (with `tls`).
//! - `sizeclass`: Go's size classes without 8 and 24 bytes (all 16-byte
//!   multiples), object index by multiplication; the page size.
//! - `pagealloc` [mpagealloc]: which pages of the arena are used, which free
//!   ones hold data; first fit over a bitmap, release with `madvise`.
//! - `heap` [mheap]: the arena reserved at start, cut into 8 KiB pages, the
//!   flat page→span table, span allocation and freeing, the central lists.
//! - `span` [mspan]: a run of pages holding objects of one span class, with alloc
//!   bits, mark bits (bitvec), lazily allocated pin bits (`pinbits`) and a list
//!   of `specials`.
//! - `mcache` [mcache]: per thread, one span per span class; the allocation fast
//!   path is a count-trailing-zeros over a cached word of free bits.
//! - `mcentral`, `spanset` [mcentral, spanSet]: per span class, the spans with free
//!   slots, in sets whose blocks come from a lock-free pool.
//! - `alloc` [mallocgc]: size to object, small or large; `free`: libgc's
//!   explicit free.
//! - `pacer` [mgcpacer]: the live-heap count, the goal (GOGC, boosted while
//!   the heap is being built), the trigger (`next_gc`: the goal, or later
//!   while surplus free pages are held) and the pace of releasing memory.
//! - `worldlock`, `threads`, `stopworld`: the fair lock around the registry of
//!   threads; registration and the in-runtime guard; signal-based
//!   stop-the-world.
//! - `tls`: the `__thread` blocks of every registered thread, found through
//!   glibc's dynamic thread vector.
//! - `gc` [mgc]: the cycle; `mark` [mgcmark] and `sweep` [mgcsweep] its halves,
//!   run by the collecting thread and the parked marker threads together;
//!   `gcwork` [mgcwork]: the work the marker threads share; `concurrent`:
//!   mostly-concurrent cycles on a background thread (`GCPIN_CONCURRENT=1`),
//!   with `writetrack`, the kernel's record of the pages written;
//!   `roots`: data segments and TLS modules (read with the loader's list
//!   locked) and registered ranges.
//! - `pinner` [pinner.go]: pin counts (bits and counter specials), inner
//!   pinners, the leak check; `cgocheck`: Go's cgocheck for C.
//! - `specials`, `finq`, `finalizer` [mfinal]: per-object records; the queue of
//!   finalizers (and cleanups) to run; setting them and the finalizer thread;
//!   `cleanup` [mcleanup]: the ids of the pending cleanups.
//! - `weak` [weak.Pointer]: weak handles, short links with a canonical table.
//! - `stats`, `verify`: the statistics counters and the heap-invariant checker.
//! - `writetrack`: which heap pages were written while they were
//!   write-protected (userfaultfd's asynchronous write protection and
//!   `PAGEMAP_SCAN`), for concurrent marking; no `mprotect`, so the kernel's
//!   writes into the heap still succeed.
//! - `runtime`: the one process-wide `Runtime` (heap, world lock, marker,
//!   links), its creation, and the fork handlers.
//! - `capi`: the `extern "C"` shims; the header `include/gcpin.h` is generated
//!   from them by `build.rs`.
//! - `libgc`, `links`: libgc's API (the Boehm collector's `GC_*` names, declared
//!   by the hand-written `include/gc.h`) over the same heap, and its
//!   disappearing links, which the sweep clears.
//!
//! Layers, lowest first. A module names (`crate::...`) only modules of lower
//! layers, outside its unit tests; `tests/layers.rs` checks this drawing
//! against the sources, so an upward import fails `make test`:
//!
//! 0. os, pacer, sizeclass, stats
//! 1. config, fixalloc, gcwork, pagealloc, tls, worldlock, writetrack
//! 2. cleanup, pinbits, roots, specials
//! 3. finq, span
//! 4. spanset
//! 5. mcentral
//! 6. heap
//! 7. links, mcache
//! 8. sweep, threads, weak
//! 9. alloc, finalizer, stopworld
//! 10. pinner
//! 11. cgocheck, free, mark, verify
//! 12. runtime
//! 13. assist, gc
//! 14. concurrent
//! 15. capi
//! 16. libgc
//!
//! An allocation: `gc_alloc` → register the thread if new → enter the runtime →
//! `mcache` fast path (or refill from `mcentral`, or a new span from `heap`) →
//! leave the runtime → collect if the heap crossed its trigger.
//!
//! A collection: take the world lock → lock the loader's list and snapshot data
//! segments and TLS modules → stop every other thread (signal; each parks
//! outside the runtime) → empty mcaches and pinner caches → mark from roots
//! (segments, added ranges, stacks and registers, TLS blocks, pinned objects,
//! finalizer state, cleanup arguments) → kill weak entries whose object or
//! handle is unmarked → sweep (clear short links and weak handles, queue
//! finalizers, then cleanups of objects still unmarked, free unmarked
//! objects, rebuild central lists, free empty spans) → pace the next cycle → restart the world
//! → release surplus pages → trace, wake the finalizer thread.

#![allow(non_camel_case_types)]
// Modules are crate-private but for the C API (`capi`, re-exported below) and
// what the integration tests reach (`runtime`, `mark`). The `extern "C"`
// functions of `libgc` are exported by their `#[no_mangle]` names.
#![deny(unsafe_op_in_unsafe_fn)]

pub(crate) mod alloc;
pub(crate) mod assist;
pub mod capi;
pub(crate) mod cgocheck;
pub(crate) mod cleanup;
pub(crate) mod concurrent;
pub(crate) mod config;
pub(crate) mod finalizer;
pub(crate) mod finq;
pub(crate) mod fixalloc;
pub(crate) mod free;
pub(crate) mod gc;
pub(crate) mod gcwork;
pub(crate) mod heap;
/// cbindgen:ignore
pub(crate) mod libgc;
pub(crate) mod links;
pub mod mark;
pub(crate) mod mcache;
pub(crate) mod mcentral;
pub(crate) mod os;
pub(crate) mod pacer;
pub(crate) mod pagealloc;
pub(crate) mod pinbits;
pub(crate) mod pinner;
pub(crate) mod roots;
pub mod runtime;
pub(crate) mod sizeclass;
pub(crate) mod span;
pub(crate) mod spanset;
pub(crate) mod specials;
pub(crate) mod stats;
pub(crate) mod stopworld;
pub(crate) mod sweep;
pub(crate) mod threads;
pub(crate) mod tls;
pub(crate) mod verify;
pub(crate) mod weak;
pub(crate) mod worldlock;
pub(crate) mod writetrack;

pub use capi::*;
pub use pinner::{gc_leak_fn, gc_pinner};
pub use stats::gc_stats;
