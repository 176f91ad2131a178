//! The collection cycle [Go: mgc.go].
//!
//! A cycle, with the world lock held from start to end:
//! 1. snapshot the data segments and TLS modules of every loaded object
//!    (`roots::with_loaded_objects`: this may allocate, so it happens before the
//!    stop, and the loader's list stays locked until the restart);
//! 2. stop the world (`threads`): every other registered thread is parked outside
//!    the runtime, so no runtime lock is held and every mcache is consistent;
//! 3. empty every mcache and every thread's cached inner pinner;
//! 4. mark from the roots (`mark`), with this thread's registers spilled;
//! 5. kill the weak entries whose object or handle is unmarked (`weak`), and
//!    sweep (`sweep`): clear short links, free unmarked objects, queue
//!    finalizers and cleanups, rebuild the central lists, free empty spans;
//! 6. set the next trigger from the live heap [GOGC] and the free pages held
//!    (`pacer`), and restart the world;
//! 7. with the world running but the world lock still held: remove the weak
//!    and link entries the stop killed, once they are many; give surplus free
//!    pages back to the OS in 8 MiB steps [scavenger]: all of them after an
//!    explicit collection, at a paced rate after an automatic one (`Release`);
//! 8. after the lock: trace line, wake the finalizer thread.
//!
//! Nothing between the stop and the restart allocates with `malloc`.

use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::Mutex;

use crate::heap::Heap;
use crate::mark::{self, MarkWorkers, Marker};
use crate::os;
use crate::pacer::{self, Release};
use crate::pagealloc::PageAlloc;
use crate::pinner;
use crate::roots;
use crate::runtime::Runtime;
use crate::sizeclass::PAGE_SIZE;
use crate::stats::gc_stats;
use crate::stopworld::{start_the_world, stop_the_world, with_spilled_registers};
use crate::sweep;
use crate::threads::{ThreadState, World};
use crate::worldlock::WorldGuard;

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
    /// A concurrent cycle's first pause and its marking with the world
    /// running (0 for a stop-the-world cycle).
    pub start_pause_ns: u64,
    pub mark_concurrent_ns: u64,
    /// Bytes the program's mark assists scanned in a concurrent cycle, and
    /// their time (`assist`).
    pub assist_bytes: u64,
    pub assist_ns: u64,
}

/// Runs one full collection, unless one that started after this call has
/// completed meanwhile (while we waited for the world lock: two cycles ended,
/// so the second began after we asked), and gives all surplus pages back to
/// the OS. The caller is outside the runtime. Returns false only if the calling
/// thread could not be registered.
pub fn collect(h: &'static Runtime) -> bool {
    let before = h.stats.num_gc.load(Relaxed);
    collect_when(h, Release::All, || h.stats.num_gc.load(Relaxed) - before < 2)
}

/// A stress collection: any cycle completed while waiting will do (stress only
/// needs collections to happen often), and it releases as automatic ones do
/// (`automatic_release`).
pub fn collect_stress(h: &'static Runtime) -> bool {
    let before = h.stats.num_gc.load(Relaxed);
    collect_when(h, automatic_release(h), || h.stats.num_gc.load(Relaxed) == before)
}

/// Collects if an allocation asked for it and no other thread did it meanwhile.
pub fn collect_if_wanted(h: &'static Runtime) {
    if h.pacer.gc_wanted.load(Relaxed) {
        collect_when(h, automatic_release(h), || h.pacer.trigger_reached());
    }
}

/// What a collection the allocator triggered releases: at the paced rate, or
/// nothing on a heap of huge pages (`Release::Kept`).
fn automatic_release(h: &Runtime) -> Release {
    if h.config.huge_pages {
        Release::Kept
    } else {
        Release::Paced
    }
}

/// Takes the world lock and runs a cycle if `still_needed` (asked with the lock
/// held, so it sees every cycle that ran while we waited) and collection is not
/// disabled (`Heap::gc_disabled`, asked with the lock held too: whoever raised
/// the count and then took and let go of the world lock knows that no cycle
/// runs until the count drops). Returns false only if the calling thread could
/// not be registered.
fn collect_when(h: &'static Runtime, release: Release, still_needed: impl FnOnce() -> bool) -> bool {
    let Some(me) = h.current_or_register() else { return false };
    // The program's frames and registers are above this point; the
    // runtime's below it are not scanned (`ThreadState::collect_sp`).
    with_spilled_registers(|entry_sp| {
        let mut w = h.lock_world();
        if h.gc_disabled.load(Relaxed) > 0 || !still_needed() {
            return;
        }
        // SAFETY: our own, live record.
        let collect_sp = unsafe { &(*me).collect_sp };
        collect_sp.store(entry_sp, Relaxed);
        let report = cycle(h, &mut w, me, release);
        collect_sp.store(0, Relaxed);
        drop(w);
        after_cycle(h, &report);
    });
    true
}

/// Where the collecting thread `me`'s stack scan starts, `sp` being the
/// stack address below the registers the cycle spilled: the address its
/// collection began at (`ThreadState::collect_sp`), if that lies a little
/// above `sp` on the same stack, else `sp`.
fn stack_scan_start(me: *mut ThreadState, sp: usize) -> usize {
    /// Farther than this above `sp`, `collect_sp` is not on the same stack.
    const RUNTIME_FRAMES_MAX: usize = 256 << 10;
    // SAFETY: the collecting thread's own, live record.
    let entry = unsafe { (*me).collect_sp.load(Relaxed) };
    if entry > sp && entry - sp < RUNTIME_FRAMES_MAX {
        entry
    } else {
        sp
    }
}

/// Called at the start of every cycle, before the world stops, with the world
/// lock held (libgc's `GC_set_start_callback`); 0 when none. It must not
/// allocate from the heap or wait for another thread.
pub static START_CALLBACK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A heap smaller than this is marked and swept by the collecting thread
/// alone: waking the marker threads and waiting for them to finish would
/// cost more than they save.
pub const PARALLEL_MIN_HEAP: usize = 1 << 20;

/// Pages a sweeping thread claims at a time.
const SWEEP_CHUNK_PAGES: usize = 256;

/// Runs the program's start callback (libgc's), if any.
pub fn run_start_callback() {
    let f = START_CALLBACK.load(Acquire);
    if f != 0 {
        // SAFETY: only `extern "C" fn()` values are stored (libgc::GC_set_start_callback).
        unsafe { std::mem::transmute::<usize, extern "C" fn()>(f)() };
    }
}

/// The marker threads to use for a cycle, started if needed; None when the
/// heap is too small for them to pay (`PARALLEL_MIN_HEAP`) or there is one
/// marker. Before the world stops: creating a thread allocates.
pub fn workers_for_cycle(h: &'static Runtime) -> Option<&'static MarkWorkers> {
    let parallel = h.config.markers > 1 && h.pacer.heap_live.load(Relaxed) >= PARALLEL_MIN_HEAP;
    if parallel {
        h.mark_workers.ensure_threads(h.config.markers - 1);
    }
    (parallel && h.mark_workers.threads() > 0).then_some(&h.mark_workers)
}

/// How many marker threads help the collecting thread while the world runs
/// (a concurrent mark, the sweep after it): a quarter of the markers take
/// part [Go: gcBackgroundUtilization, 25%], at least the collecting thread,
/// and the other cores are left to the program. (On this project's 2-core
/// host both markers marking beside the program made the pause benchmark's
/// requests wait for a core: 1 in 1000 took over 0.8-1.5 ms, and many 4 ms,
/// the scheduler's time slice; with the collecting thread alone, 0.18 ms.)
pub fn helpers_while_running(h: &Runtime) -> usize {
    ((h.config.markers + 2) / 4).max(1) - 1
}

/// The marking of a cycle's stopped part: `mark::mark` for a stop-the-world
/// cycle, the finish of a concurrent one (`concurrent`). Called with the
/// world stopped and the page lock held, with the marker, the threads whose
/// stacks are roots, the collecting thread and its stack pointer, the
/// loader's objects, the page allocator and the marker threads.
pub type MarkStep<'a> = dyn FnMut(&mut Marker, &mark::Threads, *mut ThreadState, usize, &roots::LoadedObjects, &PageAlloc, Option<&MarkWorkers>)
    + 'a;

/// A stop-the-world cycle.
pub fn cycle(
    h: &'static Runtime,
    w: &mut WorldGuard<'_, World>,
    me: *mut ThreadState,
    release: Release,
) -> CycleReport {
    run_start_callback();
    let workers = workers_for_cycle(h);
    let mut full = |m: &mut Marker,
                    all: &mark::Threads,
                    me,
                    sp,
                    loaded: &roots::LoadedObjects,
                    pa: &PageAlloc,
                    ws: Option<&MarkWorkers>| {
        // SAFETY: `stopped_part` calls this with the world stopped and the
        // page lock held; the records are the registry's; `sp` is below the
        // caller's frame; the loader's list is locked around it.
        unsafe { mark::mark(h, m, all, me, sp, loaded, pa, ws) }
    };
    cycle_with(h, w, me, release, workers, false, &mut full)
}

/// Steps 1 to 7 with `mark_step` as the marking; with `sweep_running`, the
/// sweep runs after the restart (see `sweep`), before memory is released.
pub fn cycle_with(
    h: &'static Runtime,
    w: &mut WorldGuard<'_, World>,
    me: *mut ThreadState,
    release: Release,
    workers: Option<&MarkWorkers>,
    sweep_running: bool,
    mark_step: &mut MarkStep<'_>,
) -> CycleReport {
    // The loader's list stays locked from the snapshot of the loaded objects
    // until the world restarts, so no library is unmapped under the scan.
    let mut paused =
        roots::with_loaded_objects(|loaded| stopped_part(h, w, me, release, loaded, workers, sweep_running, mark_step));
    if let Some(high_water) = paused.sweep_below {
        finish_with_world_running(h, workers, high_water, release, &mut paused);
    }
    // With the world running again (we still hold the world lock, so no one can
    // stop us while we hold the page lock), release surplus pages in steps of
    // at most 8 MiB so allocating threads wait for the page lock only briefly.
    h.marker(w).release_memory();
    // The entries the stop killed (it could not free their memory) go now;
    // no one can stop us while we hold these tables' locks, as we hold the
    // world lock.
    h.weak.compact();
    h.links.compact();
    let mut released = 0;
    while released < paused.budget {
        let ask = (paused.budget - released).min(8 << 20);
        let mut pa = h.pages.lock().unwrap_or_else(|e| e.into_inner());
        let step = h.scavenge(&mut pa, paused.retain, ask);
        released += step;
        if step < ask {
            break;
        }
    }
    CycleReport { released, ..paused.report }
}

/// Ends the cycle in the pacer: `live` bytes survived; returns the plan
/// (the next trigger, what to keep committed and release). `pa` locked.
fn end_cycle(h: &Runtime, pa: &mut PageAlloc, live: usize, release: Release) -> pacer::Plan {
    let now = os::nanotime();
    let plan = h.pacer.end_cycle(&pacer::CycleEnd {
        live,
        in_use: pa.in_use * PAGE_SIZE,
        free_held: pa.free_dirty * PAGE_SIZE,
        release,
        since_release_ns: now.saturating_sub(pa.scavenged_at_ns),
    });
    pa.scavenged_at_ns = now;
    if h.config.concurrent {
        h.pacer.trigger_early(live, plan.goal, plan.trigger);
    }
    plan
}

/// What the stopped part of a cycle leaves for the rest: the report so far,
/// and how much to release.
struct Paused {
    report: CycleReport,
    retain: usize,
    budget: usize,
    /// The spans are left to sweep with the world running, below this page.
    sweep_below: Option<usize>,
}

/// After a cycle whose sweep waits for the restart: sweeps every span on this
/// thread and the marker threads, then sets the next goal and what to release.
fn finish_with_world_running(
    h: &Runtime,
    workers: Option<&MarkWorkers>,
    high_water: usize,
    release: Release,
    paused: &mut Paused,
) {
    let counted_at_pause = h.pacer.heap_live.load(Relaxed);
    let _limit = workers.map(|ws| ws.limit(helpers_while_running(h)));
    let r = in_page_chunks(workers, high_water, &|lo, hi, r| sweep::sweep_pages_with_world_running(h, lo, hi, r));
    // Spans an explicit free is sweeping on another thread.
    while h.unswept.load(Acquire) != 0 {
        std::thread::yield_now();
    }
    let mut r = r;
    let (lb, lo, fs, al) = h.stats.lazy.take();
    r.add(&sweep::SweepReport {
        live_bytes: lb,
        live_objects: lo,
        freed_spans: fs,
        finalizers_queued: 0,
        allocated_since_last: al,
    });
    // What was allocated during the sweep is counted towards the next cycle.
    let since = h.pacer.heap_live.load(Relaxed).saturating_sub(counted_at_pause);
    h.stats.total_alloc_swept.fetch_add(r.allocated_since_last as u64, Relaxed);
    let mut pa = h.pages.lock().unwrap_or_else(|e| e.into_inner());
    let plan = end_cycle(h, &mut pa, r.live_bytes, release);
    // (Counted towards the next trigger, not as live: most of it may be garbage.)
    h.pacer.note_allocated(since);
    let next_gc = plan.trigger;
    (paused.retain, paused.budget) = (plan.retain, plan.budget);
    let rep = &mut paused.report;
    rep.heap_after = pa.in_use * PAGE_SIZE;
    rep.live_objects = r.live_objects;
    rep.freed_spans = r.freed_spans;
    rep.next_gc = next_gc;
}

/// Steps 2 to 6: stop the world, mark, sweep, pace, restart.
#[allow(clippy::too_many_arguments)] // the cycle's state, passed down once
fn stopped_part(
    h: &Runtime,
    w: &mut WorldGuard<'_, World>,
    me: *mut ThreadState,
    release: Release,
    loaded: &roots::LoadedObjects,
    workers: Option<&MarkWorkers>,
    sweep_running: bool,
    mark_step: &mut MarkStep<'_>,
) -> Paused {
    let t0 = os::nanotime();
    stop_the_world(w, me);
    for &t in w.threads.iter() {
        // SAFETY: every other thread is parked outside the runtime and we are
        // outside it too, so no one is using these mcaches.
        unsafe {
            (*(*t).mcache.get()).release_all(h, false);
            (*t).pinner_cache.store(0, Relaxed);
        }
    }
    let mut pa = h.pages.lock().unwrap_or_else(|e| e.into_inner());
    let heap_before = pa.in_use * PAGE_SIZE;
    let marker = h.marker(w);
    with_spilled_registers(|sp| {
        let all = mark::Threads { registered: &w.threads, forked_away: &w.forked_away };
        // SAFETY: the world is stopped and the page lock held; the records
        // are the registry's; `sp` is below this frame; the loader's list is
        // locked by with_loaded_objects around us.
        mark_step(marker, &all, me, stack_scan_start(me, sp), loaded, &pa, workers);
    });
    h.weak.clear_unmarked(h);
    let sweep_below = sweep_running.then_some(pa.high_water);
    let swept = if sweep_running {
        let queued = sweep::begin_with_world_running(h, &h.links, &pa);
        sweep::SweepReport { finalizers_queued: queued, ..Default::default() }
    } else {
        sweep_all(h, &mut pa, workers)
    };
    // The next trigger, and what to keep committed: the rest of the free
    // pages go back to the OS after the restart, within the budget. (A sweep
    // with the world running plans when it is done.)
    let (next_gc, retain, budget) = if sweep_running {
        (h.pacer.next_gc.load(Relaxed), 0, 0)
    } else {
        let plan = end_cycle(h, &mut pa, swept.live_bytes, release);
        (plan.trigger, plan.retain, plan.budget)
    };
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
    h.stats.record_cycle(pause_ns, swept.allocated_since_last);
    let report = CycleReport {
        heap_before,
        heap_after,
        live_objects: swept.live_objects,
        freed_spans: swept.freed_spans,
        finalizers_queued: swept.finalizers_queued,
        released: 0,
        pause_ns,
        next_gc,
        start_pause_ns: 0,
        mark_concurrent_ns: 0,
        assist_bytes: 0,
        assist_ns: 0,
    };
    Paused { report, retain, budget, sweep_below }
}

/// Sweeps with the world stopped: the spans' first pass split between this
/// thread and the marker threads, a chunk of pages at a time, then the lists.
fn sweep_all(h: &Runtime, pa: &mut PageAlloc, workers: Option<&MarkWorkers>) -> sweep::SweepReport {
    sweep::begin(h, &h.links);
    let mut r = in_page_chunks(workers, pa.high_water, &|lo, hi, r| {
        // SAFETY: the world is stopped, every mcache emptied and `begin`
        // done; each chunk of pages is claimed by one thread.
        unsafe { sweep::sweep_pages(h, lo, hi, r) }
    });
    sweep::finish(h, &h.links, pa, &mut r);
    r
}

/// Runs `part(lo, hi, report)` over the pages below `high_water`, a chunk at
/// a time, on this thread and the marker threads; returns the sum of the
/// reports.
fn in_page_chunks(
    workers: Option<&MarkWorkers>,
    high_water: usize,
    part: &(dyn Fn(usize, usize, &mut sweep::SweepReport) + Sync),
) -> sweep::SweepReport {
    let next = AtomicUsize::new(0);
    let total = Mutex::new(sweep::SweepReport::default());
    let run = || {
        let mut r = sweep::SweepReport::default();
        loop {
            let lo = next.fetch_add(SWEEP_CHUNK_PAGES, Relaxed);
            if lo >= high_water {
                break;
            }
            part(lo, (lo + SWEEP_CHUNK_PAGES).min(high_water), &mut r);
        }
        total.lock().unwrap_or_else(|e| e.into_inner()).add(&r);
    };
    match workers {
        Some(ws) => ws.run(&|_, _| run(), run),
        None => run(),
    }
    total.into_inner().unwrap_or_else(|e| e.into_inner())
}

pub fn after_cycle(h: &'static Runtime, r: &CycleReport) {
    if r.finalizers_queued > 0 {
        // The finalizer thread may not exist: in a forked child it is gone,
        // and finalizers set before the fork would otherwise wait for an
        // explicit gc_run_finalizers.
        h.ensure_finalizer_thread();
        h.finq.wake();
        h.finq.notify();
    }
    if h.config.trace {
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        let concurrent = if r.mark_concurrent_ns > 0 {
            format!(
                ", concurrent: first pause {:.3} ms, marked {:.1} ms with the world running, \
                 assists scanned {:.1} MiB in {:.1} ms",
                r.start_pause_ns as f64 / 1e6,
                r.mark_concurrent_ns as f64 / 1e6,
                mib(r.assist_bytes as usize),
                r.assist_ns as f64 / 1e6
            )
        } else {
            String::new()
        };
        let line = format!(
            "gcpin: gc {} @{:.3}s: heap {:.1} MiB -> {:.1} MiB, {} objects live, {} spans freed, \
             {} finalizers queued, {:.1} MiB released, pause {:.3} ms, next gc at {:.1} MiB{concurrent}\n",
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
pub fn with_world_stopped<R>(
    h: &'static Runtime,
    f: impl FnOnce(&Heap, &World, &mut crate::pagealloc::PageAlloc) -> R,
) -> Option<R> {
    let me = h.current_or_register()?;
    let mut w = h.lock_world();
    stop_the_world(&mut w, me);
    let mut pa = h.pages.lock().unwrap_or_else(|e| e.into_inner());
    let r = f(h, &w, &mut pa);
    drop(pa);
    start_the_world();
    drop(w);
    Some(r)
}

/// Gathers the statistics, stopping the world briefly for the heap figures.
/// Outside the runtime.
pub fn read_stats(h: &'static Runtime) -> gc_stats {
    let mut out = with_world_stopped(h, |h, _w, pa| {
        let mut st = gc_stats::default();
        let mut since = 0u64;
        // SAFETY: the world is stopped and the page lock held.
        unsafe {
            h.for_each_span(pa.high_water, |s| {
                let n = (*s).count_allocated() as u64;
                st.heap_objects += n;
                st.heap_alloc_bytes += n * (*s).elemsize as u64;
                since += n.saturating_sub((*s).swept_count as u64) * (*s).elemsize as u64;
                pinner::for_each_pinned(s, |_| st.pinned_objects += 1);
            });
        }
        st.heap_sys_bytes = ((pa.in_use + pa.free_dirty) * PAGE_SIZE) as u64;
        st.heap_released_bytes = (pa.released_pages() * PAGE_SIZE) as u64;
        st.total_alloc_bytes = h.stats.total_alloc_swept.load(Relaxed) + since;
        st.finalizers_queued = h.finq.len() as u64;
        st
    })
    .unwrap_or_default();
    out.weak_handles = h.weak.live() as u64;
    out.cleanups_pending = h.cleanups.len() as u64;
    let s = &h.stats;
    out.num_gc = s.num_gc.load(Relaxed);
    out.pause_total_ns = s.pause_total_ns.load(Relaxed);
    out.last_pause_ns = s.last_pause_ns.load(Relaxed);
    out.max_pause_ns = s.max_pause_ns.load(Relaxed);
    out.mark_concurrent_ns = s.mark_concurrent_ns.load(Relaxed);
    let next = h.pacer.next_gc.load(Relaxed);
    out.next_gc_bytes = if next == usize::MAX { u64::MAX } else { next as u64 };
    out
}
