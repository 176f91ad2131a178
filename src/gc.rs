//! The collection cycle [Go: mgc.go].
//!
//! A cycle, with the world lock held from start to end:
//! 1. snapshot the data segments of every loaded object (`dl_iterate_phdr` may
//!    allocate, so this happens before the stop);
//! 2. stop the world (`threads`): every other registered thread is parked outside
//!    the runtime, so no runtime lock is held and every mcache is consistent;
//! 3. empty every mcache and every thread's cached inner pinner;
//! 4. mark from the roots (`mark`), with this thread's registers spilled;
//! 5. sweep (`sweep`): free unmarked objects, queue finalizers, rebuild the
//!    central lists, free empty spans;
//! 6. set the next trigger from the live heap [GOGC] and restart the world;
//! 7. with the world running but the world lock still held: give surplus free
//!    pages back to the OS in 8 MiB steps [scavenger];
//! 8. after the lock: trace line, wake the finalizer thread.
//!
//! Nothing between the stop and the restart allocates with `malloc`.

use std::sync::atomic::Ordering::*;

use crate::heap::Heap;
use crate::mark;
use crate::os;
use crate::roots;
use crate::span::PAGE_SIZE;
use crate::sweep;
use crate::threads::{self, lock_world, start_the_world, stop_the_world, ThreadState};

/// What one cycle did, for the trace and the statistics.
pub struct CycleReport {
    pub heap_before: usize,
    pub heap_after: usize,
    pub live_objects: usize,
    pub freed_spans: usize,
    pub finalizers_queued: usize,
    pub released: usize,
    pub pause_ns: u64,
    pub next_gc: usize,
}

/// Runs one full collection, unless one that started after this call has
/// completed meanwhile (while we waited for the world lock: two cycles ended,
/// so the second began after we asked). The caller is outside the runtime.
/// Returns false only if the calling thread could not be registered.
pub fn collect(h: &Heap) -> bool {
    collect_unless(h, 2)
}

/// Like `collect`, but any cycle completed while waiting will do (for stress
/// collections, which only need collections to happen often).
pub fn collect_stress(h: &Heap) -> bool {
    collect_unless(h, 1)
}

fn collect_unless(h: &Heap, cycles_done: u64) -> bool {
    let before = h.stats.num_gc.load(Relaxed);
    collect_when(h, || h.stats.num_gc.load(Relaxed) - before < cycles_done)
}

/// Collects if an allocation asked for it and no other thread did it meanwhile.
pub fn collect_if_wanted(h: &Heap) {
    if h.gc_wanted.load(Relaxed) {
        collect_when(h, || h.heap_live.load(Relaxed) >= h.next_gc.load(Relaxed));
    }
}

/// Takes the world lock and runs a cycle if `still_needed` (asked with the lock
/// held, so it sees every cycle that ran while we waited). Returns false only if
/// the calling thread could not be registered.
fn collect_when(h: &Heap, still_needed: impl FnOnce() -> bool) -> bool {
    let Some(me) = threads::current_or_register() else { return false };
    let mut w = lock_world(h);
    if !still_needed() {
        return true;
    }
    let report = cycle(h, &mut w, me);
    drop(w);
    after_cycle(h, &report);
    true
}

fn cycle(h: &Heap, w: &mut threads::World, me: *mut ThreadState) -> CycleReport {
    let segments = roots::data_segments();
    let t0 = os::nanotime();
    stop_the_world(w, me);
    let threads::World { threads, marker } = w;
    for &t in threads.iter() {
        // SAFETY: every other thread is parked outside the runtime and we are
        // outside it too, so no one is using these mcaches.
        unsafe {
            (*(*t).mcache.get()).release_all(h, false);
            (*t).pinner_cache.store(0, Relaxed);
        }
    }
    let mut pa = h.pages.lock().unwrap_or_else(|e| e.into_inner());
    let heap_before = pa.in_use * PAGE_SIZE;
    threads::with_spilled_registers(|sp| {
        mark::mark(h, marker, threads, me, sp, &segments, &pa);
    });
    let swept = sweep::sweep(h, &mut pa);
    let live = swept.live_bytes;
    let next_gc = h.goal_after(live);
    h.heap_live.store(live, Relaxed);
    h.next_gc.store(next_gc, Relaxed);
    h.gc_wanted.store(false, Relaxed);
    // Keep committed what the heap may grow to before the next cycle, plus an
    // eighth; the rest of the free pages go back to the OS after the restart.
    let in_use = pa.in_use * PAGE_SIZE;
    let target = if next_gc == usize::MAX { in_use } else { next_gc.max(in_use) };
    let retain = target.saturating_add(target / 8).max(crate::config::MIN_HEAP);
    let heap_after = pa.in_use * PAGE_SIZE;
    if cfg!(debug_assertions) {
        h.verify_pages(&pa);
    }
    drop(pa);
    // The pause ends when the world is told to restart; start_the_world then
    // also waits for every stopped thread to leave its handler, which is this
    // thread's latency, not the others' pause.
    let pause_ns = os::nanotime() - t0;
    start_the_world();
    h.stats.record_cycle(pause_ns, next_gc, swept.allocated_since_last);
    // With the world running again (we still hold the world lock, so no one can
    // stop us while we hold the page lock), release surplus pages in steps of
    // 8 MiB so allocating threads wait for the page lock only briefly.
    marker.release_memory();
    let mut released = 0;
    loop {
        let mut pa = h.pages.lock().unwrap_or_else(|e| e.into_inner());
        let step = h.scavenge(&mut pa, retain, 8 << 20);
        released += step;
        if step < 8 << 20 {
            break;
        }
    }
    CycleReport {
        heap_before,
        heap_after,
        live_objects: swept.live_objects,
        freed_spans: swept.freed_spans,
        finalizers_queued: swept.finalizers_queued,
        released,
        pause_ns,
        next_gc,
    }
}

fn after_cycle(h: &Heap, r: &CycleReport) {
    if r.finalizers_queued > 0 {
        // The finalizer thread may not exist: in a forked child it is gone,
        // and finalizers set before the fork would otherwise wait for an
        // explicit gc_run_finalizers.
        if let Some(hs) = crate::heap::heap_if_exists() {
            hs.finq.ensure_thread(hs);
        }
        h.finq.wake();
    }
    if h.config.trace {
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        let line = format!(
            "gcpin: gc {} @{:.3}s: heap {:.1} MiB -> {:.1} MiB, {} objects live, {} spans freed, \
             {} finalizers queued, {:.1} MiB released, pause {:.3} ms, next gc at {:.1} MiB\n",
            h.stats.num_gc.load(Relaxed),
            (os::nanotime() - h.start_ns) as f64 / 1e9,
            mib(r.heap_before),
            mib(r.heap_after),
            r.live_objects,
            r.freed_spans,
            r.finalizers_queued,
            mib(r.released),
            r.pause_ns as f64 / 1e6,
            if r.next_gc == usize::MAX { f64::INFINITY } else { mib(r.next_gc) },
        );
        os::write_stderr(&[&line]);
    }
}

/// Runs `f` with the world stopped (for statistics and the heap verifier): every
/// other thread is parked outside the runtime, so spans, mcaches and lists are
/// consistent. The caller is outside the runtime.
pub fn with_world_stopped<R>(h: &Heap, f: impl FnOnce(&Heap, &threads::World, &mut crate::heap::PageAlloc) -> R) -> Option<R> {
    let me = threads::current_or_register()?;
    let w = lock_world(h);
    stop_the_world(&w, me);
    let mut pa = h.pages.lock().unwrap_or_else(|e| e.into_inner());
    let r = f(h, &w, &mut pa);
    drop(pa);
    start_the_world();
    drop(w);
    Some(r)
}
