//! gcpin: a garbage-collected heap for C with Go's `runtime.Pinner`.
//!
//! How the parts fit together (one file per concept, Go's names in brackets):
//!
//! - `os`: address-space reservation, page release, futexes; the only
//!   platform-specific layer.
//! - `heap` [mheap]: one arena reserved at start, cut into 8 KiB pages; a page
//!   allocator (first fit over a bitmap, dirty pages tracked and released with
//!   `madvise`) and a flat page→span table.
//! - `span` [mspan]: a run of pages holding objects of one span class, with alloc
//!   bits, mark bits (bitvec), lazily allocated pin bits and a list of `specials`.
//! - `sizeclass`: Go's size classes without 8 and 24 bytes (all 16-byte
//!   multiples), object index by multiplication.
//! - `mcache` [mcache]: per thread, one span per span class; the allocation fast
//!   path is a count-trailing-zeros over a cached word of free bits.
//! - `mcentral`, `spanset` [mcentral, spanSet]: per span class, the spans with free
//!   slots, in sets whose blocks come from a lock-free pool.
//! - `alloc` [mallocgc]: size to object, small or large.
//! - `threads`: registration, the in-runtime guard, signal-based stop-the-world.
//! - `tls`: the `__thread` blocks of every registered thread, found through
//!   glibc's dynamic thread vector.
//! - `gc` [mgc]: the cycle; `mark` [mgcmark] and `sweep` [mgcsweep] its halves;
//!   `roots`: data segments and TLS modules (read with the loader's list
//!   locked) and registered ranges.
//! - `pinner` [pinner.go]: pin bits and counters, inner pinners, the leak check,
//!   cgocheck for C.
//! - `specials`, `finalizer`: per-object records; the finalizer queue and thread.
//! - `stats`, `verify`: exact statistics and the heap-invariant checker.
//! - `capi`: the `extern "C"` shims; the header `include/gcpin.h` is generated
//!   from them by `build.rs`.
//! - `libgc`, `links`: libgc's API (the Boehm collector's `GC_*` names, declared
//!   by the hand-written `include/gc.h`) over the same heap, and its
//!   disappearing links, which the sweep clears.
//!
//! An allocation: `gc_alloc` → register the thread if new → enter the runtime →
//! `mcache` fast path (or refill from `mcentral`, or a new span from `heap`) →
//! leave the runtime → collect if the heap crossed its trigger.
//!
//! A collection: take the world lock → lock the loader's list and snapshot data
//! segments and TLS modules → stop every other
//! thread (signal; each parks outside the runtime) → empty mcaches and pinner
//! caches → mark from roots (segments, added ranges, stacks and registers, pinned
//! objects, finalizer state, TLS blocks) → sweep (queue finalizers, free unmarked objects,
//! rebuild central lists, free empty spans) → pace the next cycle, release
//! surplus pages → restart the world → trace, wake the finalizer thread.

#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc;
pub mod capi;
pub mod config;
pub mod finalizer;
pub mod finq;
pub mod fixalloc;
pub mod free;
pub mod gc;
pub mod heap;
/// cbindgen:ignore
pub mod libgc;
pub mod links;
pub mod mark;
pub mod mcache;
pub mod mcentral;
pub mod os;
pub mod pacer;
pub mod pagealloc;
pub mod pinbits;
pub mod pinner;
pub mod roots;
pub mod runtime;
pub mod sizeclass;
pub mod span;
pub mod spanset;
pub mod specials;
pub mod stats;
pub mod sweep;
pub mod threads;
pub mod tls;
pub mod verify;
pub mod worldlock;

pub use capi::*;
pub use pinner::{gc_leak_fn, gc_pinner};
pub use stats::gc_stats;
