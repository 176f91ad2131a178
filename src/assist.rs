//! Mark assists: a thread that allocates while a concurrent mark runs marks
//! a share of the heap itself [Go: mgcmark.go's gcAssistAlloc, written
//! afresh].
//!
//! Why: a concurrent mark must end before the program has allocated its
//! runway, or the program waits for it (`concurrent::collect_if_wanted`).
//! One background marker cannot always keep up (the pause benchmark at 256
//! MiB live, allocating 1.6 GB/s: it took 450-650 ms, the runway lasted a
//! fraction of that), and a second marker thread beside the program on a
//! machine with as many cores as threads makes the program wait for a core,
//! a scheduler tick at a time (4 ms). An assist does that second marker's
//! work on the allocating thread, in slices of a fraction of a millisecond,
//! paid by the bytes it allocates: no thread waits for a core, and a thread
//! that allocates faster marks more.
//!
//! How: every refill of an mcache and every large object counts its bytes
//! (`Mcache::take_reserved`); leaving `gc_alloc`'s slow path, a thread that
//! reserved some while a concurrent phase is open to assists
//! (`WorkPool::open_to_assists`) owes `Pacer::assist_work` bytes: its part
//! of the work left, spread over the heap left before the goal. It takes
//! grey objects from the markers' pool, drains them on an assist marker
//! of its own (`AssistMarkers`) and gives back what is left (see `gcwork`),
//! one slice (`ASSIST_SLICE_BYTES`) at a time, each word it resolves
//! counted as scanning (`mark::ASSIST_WORD_COST`). What it still owes, its
//! mcache keeps for its next assist, until the cycle ends. Finding no work
//! in the pool, it asks for some and allocates on: the debt is forgiven
//! (the runway is still the backstop).
//!
//! Invariants:
//! - an assist runs inside the runtime (`InRuntime`), so no stop of the world
//!   can catch it holding grey objects: a stop waits for it to leave, and the
//!   phase's end waits for it to give its work back (`gcwork`), so the final
//!   pause never finds a half-done assist;
//! - it touches only its assist marker, the pool and the heap's mark bytes,
//!   as a marker thread does; it allocates nothing and takes no lock but the
//!   pool's;
//! - it holds no pointer the final pause needs: everything it found is
//!   marked and either scanned or back in the pool before it leaves.

use std::sync::atomic::Ordering::Relaxed;

use crate::mcache::Mcache;
use crate::runtime::Runtime;
use crate::threads::{InRuntime, ThreadState};

/// The most work one assist does (bytes, as `Marker::drain_bounded` counts
/// them, words included), with about as much again to give back no more
/// than it took: some 0.2 ms of marking at a time. What a thread owes beyond
/// it waits for its next allocation's assist (`Mcache::take_assist_debt`).
/// (Counting the words alone, with no debt kept, made assists scan less:
/// cycles ran longer and the pause benchmark's peak RSS went from 630 to
/// 657-699 MiB; with the debt it is 640 MiB. Medians of interleaved runs.)
pub const ASSIST_SLICE_BYTES: usize = 64 << 10;

/// What a thread inside the runtime does after an allocation: an assist, if
/// it reserved memory while a concurrent mark takes assists.
#[inline]
pub fn after_alloc(h: &Runtime, g: &InRuntime) {
    // SAFETY: the guard's thread is the caller; its mcache is only touched by
    // itself inside the runtime (or by a collector, which cannot run now).
    let mc = unsafe { &mut *(*g.thread()).mcache.get() };
    let reserved = mc.take_reserved();
    if reserved != 0 && h.mark_workers.pool.open_to_assists() {
        assist(h, mc, reserved);
    }
}

/// Scans the share of the mark that `reserved` bytes pay for, with what the
/// thread still owes the cycle: one slice at most, the rest owed on.
#[cold]
#[inline(never)]
fn assist(h: &Runtime, mc: &mut Mcache, reserved: usize) {
    let pool = &h.mark_workers.pool;
    // The cycle running now: `num_gc` counts the cycles that have ended.
    let cycle = h.stats.num_gc.load(Relaxed);
    let owed = mc.take_assist_debt(cycle) + h.pacer.assist_work(reserved, pool.scanned());
    if owed == 0 {
        return;
    }
    match scan_slice(h, owed.min(ASSIST_SLICE_BYTES)) {
        // Nothing scanned: there was no work to take (or what it took
        // pointed only at marked objects). The debt is forgiven: the runway
        // is the backstop.
        Some(0) => {}
        Some(bytes) => mc.owe_assist(cycle, owed.saturating_sub(bytes)),
        // Every assist marker is in use: owed still.
        None => mc.owe_assist(cycle, owed),
    }
}

/// An assist of a thread `ts` (registered, outside the runtime) that waits
/// for the running mark to end (`concurrent::collect_if_wanted`): whatever
/// work the pool has, owed or not, one slice (`ASSIST_SLICE_BYTES`: a stop
/// of the world waits for it) per call. False if it found none (the phase
/// is not open, or no packet is there yet: it asked the markers for one).
pub fn while_waiting(h: &Runtime, ts: *mut ThreadState) -> bool {
    if !h.mark_workers.pool.open_to_assists() {
        return false;
    }
    let _inside = InRuntime::enter(ts);
    matches!(scan_slice(h, ASSIST_SLICE_BYTES), Some(bytes) if bytes > 0)
}

/// One assist of about `budget` bytes on an assist marker, counted in the
/// assist statistics if it scanned anything. The bytes scanned; None if
/// every assist marker is in use. Inside the runtime.
fn scan_slice(h: &Runtime, budget: usize) -> Option<usize> {
    let t0 = crate::os::nanotime();
    // SAFETY: an open phase frees no span until every assist holding work
    // has left (`Marker::assist` joins the phase first, or does nothing).
    let scanned = h.assist_markers.with(|m| unsafe { m.assist(&h.heap, &h.mark_workers.pool, budget) });
    if let Some(bytes @ 1..) = scanned {
        h.stats.assist_bytes.fetch_add(bytes as u64, Relaxed);
        h.stats.assist_ns.fetch_add(crate::os::nanotime() - t0, Relaxed);
    }
    scanned
}
