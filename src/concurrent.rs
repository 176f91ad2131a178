//! Mostly-concurrent marking [Boehm, Demers and Shenker, "Mostly parallel
//! garbage collection", 1991; Go: mgc.go's concurrent mark], with the
//! kernel's write tracker (`writetrack`) in place of `mprotect`.
//!
//! With `GCPIN_CONCURRENT=1` an allocation that crosses the trigger does not
//! collect: it wakes the background collector thread (`gcpin-gc`, a
//! registered thread that holds no pointer of the program's) and goes on. That
//! thread holds the world lock for the whole cycle and runs:
//!
//! 1. protect the runs of used pages of the arena in the chunks that hold
//!    scan spans (`pagealloc`: noscan spans, the I/O buffers, keep to chunks
//!    of their own, which are never protected, scanned or faulted on) (the
//!    world running: a write after this is tracked; a page left unprotected
//!    counts as written, so the free pages the program allocates into
//!    meanwhile need no fault);
//! 2. a short stop: the roots that change fastest — data and bss segments,
//!    added ranges, stacks, registers, TLS — are scanned onto the mark stack;
//! 3. with the world started again, a quarter of the markers (at least
//!    this thread; all of them if the last cycle was nearly too slow,
//!    `helpers_for`) drain from there
//!    (`mark::drain_all_open`) while the program allocates, writes, pins and
//!    does I/O into its objects; threads that allocate meanwhile mark a
//!    share paid by their allocation (`assist`). Objects allocated now are
//!    allocated white: the final stop finds those that are reachable;
//! 4. catch-up passes, the world running: scan the roots that can be read
//!    while the program runs (`mark::mark_roots_running`: segments, added
//!    ranges, the stacks above the first pause's stack pointers), take the
//!    pages written since they were protected (the tracker protects them
//!    again in the same call), push what marked objects hold on them
//!    (`mark::push_written`), drain;
//!    until a pass finds few pages (`FEW_WRITTEN_PAGES`) or `CATCH_UP_PASSES`
//!    passes have run; when the passes do not converge (the program writes
//!    as fast as they scan), allocation waits for the final stop (`hold`);
//! 5. the final stop (`gc::cycle_with`): the pages written since the last
//!    pass (listed, not protected again: step 6 unprotects them), every root
//!    again, pinned objects (scannable ones scanned again whether marked or
//!    not: the kernel writes into pinned memory — fixed io_uring buffers,
//!    O_DIRECT — without the page tables seeing it; noscan spans walked
//!    during the mark and not pinned in since skipped, `pinner::walk_noscan`),
//!    finalizer state; drain; then the weak tables and the sweep as in a
//!    stop-the-world cycle;
//! 6. unprotect, with the world running, and release memory as usual.
//!
//! Why nothing is lost: at the final stop every marked object either lies on
//! a page not written since it was scanned — so what it points to was pushed
//! when it was scanned — or on a written page, which step 5 scans again;
//! roots are scanned again whole; so marking from there reaches every object
//! reachable at the stop. Allocation never frees, explicit frees leave spans
//! to the sweep while markers read them (`Heap::marking_concurrently`), and
//! a weak handle read during marking hands the program a pointer that is
//! then on its stack or in its objects, where the final stop finds it.
//!
//! Where the kernel has no tracker (no userfaultfd, seccomp, an unprivileged
//! process under `vm.unprivileged_userfaultfd=0` without user-mode-only
//! support, no PAGEMAP_SCAN) cycles stop the world, and the trace says so
//! once. If tracking fails in the middle of a cycle, the final stop rescans
//! every marked object (as after a mark-stack overflow), which is correct
//! without any record of writes.
//!
//! `gc_collect()` stays a full stop-the-world collection: it waits for a
//! running concurrent cycle (the world lock) and then collects.
//!
//! Invariants: a concurrent cycle runs only on the background thread, with
//! the world lock held from step 1 to 6; `GcThread::pending` is set from the
//! request to the end of that cycle; `Heap::marking_concurrently` is set
//! exactly while markers may run with the world started.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};

use crate::assist;
use crate::gc::{self, CycleReport};
use crate::mark::{self, MarkWorkers, Marker, Roots};
use crate::os;
use crate::pacer::Release;
use crate::pagealloc::PageAlloc;
use crate::roots::{self, LoadedObjects};
use crate::runtime::{Runtime, Tracking};
use crate::sizeclass::PAGE_SIZE;
use crate::stopworld::{start_the_world, stop_the_world, with_spilled_registers};
use crate::threads::{self, InRuntime, ThreadState, World};
use crate::worldlock::WorldGuard;
use crate::writetrack::WriteTracker;

/// Catch-up passes at most before the final stop.
const CATCH_UP_PASSES: usize = 8;
/// A pass that found fewer written pages than this is the last.
const FEW_WRITTEN_PAGES: usize = 64;
/// After this many passes, one that found at least `HOLD_MIN_PAGES`, and
/// more than half the pages of the one before, makes allocation wait for
/// the final stop (see `cycle`). (Fewer pages make a final pause short
/// anyway: 0.2-0.35 ms for 50-200 pages at 256 MiB live on a quiet host,
/// 1-1.5 ms for 100-250 on one about 3 times slower; a hold from 64 pages
/// there gave no clearly shorter pause and no better requests.)
const HOLD_AFTER_PASSES: usize = 2;
const HOLD_MIN_PAGES: usize = 512;

/// The final pause takes the written pages this many bytes of the arena at a
/// time, on every marker thread.
const WRITTEN_CHUNK: usize = 64 << 20;

/// Whether automatic cycles of this runtime are concurrent.
fn enabled(h: &Runtime) -> bool {
    h.config.concurrent
}

/// Collects if an allocation asked for it: starts a concurrent cycle, or,
/// when cycles are not concurrent or one is already running and the heap
/// has grown past the goal it set, collects (waiting for that cycle first,
/// which holds the world lock). Outside the runtime.
pub fn collect_if_wanted(h: &'static Runtime) {
    if !h.pacer.gc_wanted.load(Relaxed) {
        return;
    }
    if !enabled(h) {
        gc::collect_if_wanted(h);
        return;
    }
    if request(h) {
        return;
    }
    // A cycle is on its way and the heap has run past the goal it set: wait
    // for its mark to end, marking meanwhile, then ask for the next if the
    // heap is still past the trigger. Never a stop-the-world cycle here:
    // after a long concurrent cycle that would be the long pause concurrent
    // marking exists to avoid (1024 MiB live: 799 ms).
    let Some(ts) = h.current_or_register() else { return };
    // Until the final stop of the cycle asked for, not merely until the
    // world lock is free once: the background thread may not have taken the
    // lock yet, and this thread, going on first, would allocate on past the
    // runway (in `test_collect`, 64 KiB chunks of garbage grew the heap from
    // 8 to 50-78 MiB between two cycles so). `marking` is set from the
    // request to the final stop (`end_marking`; to the cycle's end if it
    // runs none: collection disabled, no tracker; a forked child clears
    // it). Not until the cycle's end: its sweep, its release of memory and
    // its unprotecting run with the world started (5-15 ms at 200 MiB,
    // GCBench trees), and allocation sweeps what it needs meanwhile. While
    // the cycle holds allocation (`hold`), likewise.
    while h.pacer.trigger_reached() && h.gc_thread.marking.load(SeqCst) != 0 {
        // The thread's core would idle: it marks instead. (GCBench trees,
        // with the background thread alone marking while this one slept,
        // waited 40-90 ms at the runway in one cycle of 200 MiB.)
        if !assist::while_waiting(h, ts) {
            os::futex_wait(&h.gc_thread.marking, 1, Some(WAIT_POLL_NS));
        }
    }
    if h.pacer.gc_wanted.load(Relaxed) {
        request(h);
    }
}

/// A thread waiting for a mark that had no work for it looks again after
/// this long (the markers share work when an assist asks, `gcwork`).
const WAIT_POLL_NS: u64 = 50_000;

/// A stress collection (`GCPIN_STRESS`): a concurrent cycle if none is on its
/// way, else nothing; stop-the-world when cycles are not concurrent.
pub fn collect_stress(h: &'static Runtime) {
    if !enabled(h) {
        gc::collect_stress(h);
        return;
    }
    request(h);
}

/// Asks the background thread for a concurrent cycle. False when one was
/// already asked for and has not ended: the caller is past the goal that
/// cycle set (`Pacer::start_concurrent`) and should wait for it; also when
/// the background thread cannot be started.
///
/// From setting `pending` to waking the background thread, the caller is
/// inside the runtime. A signal handler that interrupted it between the two
/// and called gcpin would otherwise see the cycle asked for, and wait for it
/// to end, while the wake that starts it waits for the handler to return
/// (`test_signal_handlers` hung so, 6 times in 21 runs on a loaded host): it
/// is refused instead (`threads::reentered`).
fn request(h: &'static Runtime) -> bool {
    // Started first, outside the runtime: a new thread's first look at
    // `pending` finds it unset and it waits for the wake below.
    if !ensure_thread(h) {
        return false;
    }
    let Some(ts) = h.current_or_register() else { return false };
    let _inside = InRuntime::enter(ts);
    if h.gc_thread.pending.swap(true, AcqRel) {
        return false;
    }
    h.gc_thread.marking.store(1, SeqCst);
    // Until the cycle ends, allocation runs on towards a goal farther out,
    // on the fast path; past that it waits for the cycle.
    h.pacer.start_concurrent();
    h.gc_thread.wake.fetch_add(1, Release);
    os::futex_wake(&h.gc_thread.wake, 1);
    true
}

/// Starts the background collector if it is not running. False if it cannot
/// be started (the caller collects itself).
fn ensure_thread(h: &'static Runtime) -> bool {
    if h.gc_thread.started.swap(true, AcqRel) {
        return true;
    }
    let spawned = threads::spawn_runtime_thread(std::thread::Builder::new().name("gcpin-gc".into()), move || {
        // The program's signals go to its own threads (a handler here would
        // run holding the world lock); the suspend signal still stops us.
        threads::block_signals_but(h.config.sig_suspend);
        let Some(me) = threads::register(&h.heap, &h.world) else {
            h.gc_thread.started.store(false, Release);
            return;
        };
        // SAFETY: our own, live record.
        unsafe { (*me).runtime_only.store(true, Relaxed) };
        loop {
            let seen = h.gc_thread.wake.load(Acquire);
            if h.gc_thread.pending.load(Acquire) {
                run(h);
            }
            if h.gc_thread.wake.load(Acquire) == seen {
                os::futex_wait(&h.gc_thread.wake, seen, None);
            }
        }
    });
    if spawned.is_err() {
        h.gc_thread.started.store(false, Release);
        return false;
    }
    true
}

/// One concurrent cycle on the background thread, start to end.
fn run(h: &'static Runtime) {
    let Some(me) = h.current_or_register() else { return };
    let mut w = h.lock_world();
    let report = if h.gc_disabled.load(Relaxed) > 0 {
        // Collection is off: leave the trigger crossed, for when it is on.
        h.pacer.resume_after_skipped_cycle();
        None
    } else {
        Some(match tracker(h, &w) {
            Some(t) => cycle(h, &mut w, me, t),
            None => gc::cycle(h, &mut w, me, Release::Paced),
        })
    };
    end_marking(h);
    h.gc_thread.pending.store(false, Release);
    drop(w);
    if let Some(r) = report {
        gc::after_cycle(h, &r);
    }
}

/// The write tracker, made on first use; None (said once in the trace) when
/// the kernel has none for us.
fn tracker(h: &'static Runtime, w: &WorldGuard<'_, World>) -> Option<&'static WriteTracker> {
    let state = h.tracking(w);
    if let Tracking::Untried = state {
        *state = match WriteTracker::new(h.arena_lo, h.arena_size) {
            Ok(t) => Tracking::Ready(t),
            Err(why) => {
                if h.config.trace {
                    let line = format!(
                        "gcpin: GCPIN_CONCURRENT=1: the kernel cannot track writes to the heap ({why}); \
                         collections stop the world\n"
                    );
                    os::write_stderr(&[&line]);
                }
                Tracking::Unsupported
            }
        };
    }
    match state {
        Tracking::Ready(t) => Some(t),
        _ => None,
    }
}

/// Steps 1 to 6 (see the top of this file).
fn cycle(h: &'static Runtime, w: &mut WorldGuard<'_, World>, me: *mut ThreadState, t: &WriteTracker) -> CycleReport {
    gc::run_start_callback();
    let workers = gc::workers_for_cycle(h);
    let t_start = os::nanotime();
    // 1. Protect what holds objects the mark scans: the runs of used pages
    // below the page allocator's high water now, in chunks that hold scan
    // spans (`scan_pieces`). Pages above it, chunks of noscan spans, and runs
    // of free pages (`PROTECT_MIN_GAP` or more), are left unprotected: a page never
    // protected counts as written (`writetrack`), so the first catch-up
    // pass (which protects what it reports) or the final stop scans what
    // the program allocated there meanwhile, and the program's first
    // writes to those pages, the ones it allocates into, do not fault.
    let mut tracking_lost = protect_scan_runs(h, t).is_err();
    // 2. The short stop.
    let start_pause_ns = roots::with_loaded_objects(|loaded| start_pause(h, w, me, loaded));
    // 3. Mark with the world running, on a quarter of the markers or all
    // (`helpers_for`). (Marking on this thread alone made the cycles so long
    // on 2 cores that allocation reached its runway and waited: the pause
    // benchmark's longest request went from 8-12 ms to 285-466 ms before the
    // runway, 81 ms after it; hence `hurry`.)
    h.marking_concurrently.store(true, Release);
    h.mark_workers.pool.reset_scanned();
    let assists_before = (h.stats.assist_bytes.load(Relaxed), h.stats.assist_ns.load(Relaxed));
    let limit = workers.map(|ws| ws.limit(helpers_for(h)));
    // How much room allocation has before it waits for us (the runway
    // `Pacer::start_concurrent` set), and how much of it marking uses.
    let live_at_start = h.pacer.heap_live.load(Relaxed);
    let room = h.pacer.next_gc.load(Relaxed).saturating_sub(live_at_start);
    let m = h.marker(w);
    // SAFETY: no span is freed while `marking_concurrently` is set (explicit
    // frees leave spans to the sweep; no sweep runs: we hold the world lock).
    unsafe {
        mark::drain_all_open(h, m, workers, &h.mark_workers.pool);
        mark::mark_pinned_concurrently(h, m, used_bytes(h) / PAGE_SIZE);
        // An overflow is recovered now rather than in the final pause, where
        // rescanning every marked object would take as long as a
        // stop-the-world mark (1024 MiB live: 414-640 ms).
        recover_overflow(h, m);
    }
    // 4. Catch-up passes.
    let mut passes = 0;
    let mut last_pages = usize::MAX;
    let mut held = false;
    while !tracking_lost && passes < CATCH_UP_PASSES {
        passes += 1;
        // The roots first: what the program's stacks and globals reach now
        // (in a tree being built, the subtrees made since the first pause)
        // is then marked before the final pause, not by it.
        roots::with_loaded_objects(|loaded| {
            let all = mark::Threads { registered: &w.threads, forked_away: &w.forked_away };
            // SAFETY: we hold the world lock, the loader's list is locked
            // around us, and no span is freed (`marking_concurrently`).
            unsafe { mark::mark_roots_running(h, m, &all, loaded) };
        });
        let mut pieces = [(0usize, 0usize); SCAN_MAX_PIECES];
        let n = scan_pieces(h, &h.pages.lock().unwrap_or_else(|e| e.into_inner()), &mut pieces);
        let mut pages = 0;
        for &(lo, hi) in &pieces[..n] {
            let r = t.take_written(lo, hi - lo, |lo, hi| {
                // SAFETY: as for the drain above.
                unsafe { mark::push_written(h, m, lo, hi) };
            });
            match r {
                Ok(p) => pages += p,
                Err(_) => {
                    tracking_lost = true;
                    break;
                }
            }
        }
        // SAFETY: as above.
        unsafe {
            mark::drain_all_open(h, m, workers, &h.mark_workers.pool);
            recover_overflow(h, m);
        }
        if pages < FEW_WRITTEN_PAGES {
            break;
        }
        // A program that writes as fast as the passes scan (a table being
        // built) never lets them converge, and the final stop would scan
        // what it wrote last (the pause benchmark building 256 MiB with
        // assists: 2,600 pages a pass, 10-22 ms of final pause). Then
        // allocation waits for the final stop from here on: its writes stop,
        // and the next pass finds few pages (0-4 instead of 2,600).
        if !held && passes >= HOLD_AFTER_PASSES && pages >= HOLD_MIN_PAGES && pages > last_pages / 2 {
            hold(h);
            held = true;
        }
        last_pages = pages;
    }
    drop(limit);
    let used = h.pacer.heap_live.load(Relaxed).saturating_sub(live_at_start);
    h.gc_thread.hurry.store(used > room / 2, Relaxed);
    h.marking_concurrently.store(false, Release);
    let mark_ns = os::nanotime() - t_start;
    h.stats.mark_concurrent_ns.fetch_add(mark_ns, Relaxed);
    // 5. The final stop. Every marker takes pieces of the scan runs and the
    // written pages in them.
    let lost = AtomicBool::new(tracking_lost);
    let mut finish = |m: &mut Marker,
                      all: &mark::Threads,
                      me: *mut ThreadState,
                      sp: usize,
                      loaded: &LoadedObjects,
                      pa: &PageAlloc,
                      ws: Option<&MarkWorkers>| {
        let mut pieces = [(0usize, 0usize); SCAN_MAX_PIECES];
        let n = scan_pieces(h, pa, &mut pieces);
        let next = AtomicUsize::new(0);
        let written = |m: &mut Marker| {
            while !lost.load(Relaxed) {
                let i = next.fetch_add(1, Relaxed);
                if i >= n {
                    break;
                }
                let (lo, hi) = pieces[i];
                // Listed, not protected again: step 6 unprotects them all.
                let r = t.list_written(lo, hi - lo, |lo, hi| {
                    // SAFETY: the world is stopped.
                    unsafe { mark::push_written(h, m, lo, hi) };
                });
                if r.is_err() {
                    lost.store(true, Relaxed);
                }
            }
        };
        // SAFETY: `cycle_with` calls this with the world stopped, the page
        // lock held and the loader's list locked.
        unsafe {
            mark::drain_all_with(h, m, ws, None, &written, |m| {
                mark::mark_roots(h, m, all, me, sp, loaded, pa, Roots::Final)
            });
            if lost.load(Relaxed) {
                // No record of what was written: scan every marked object again.
                m.overflowed = true;
            }
            m.recover_overflow(h, pa);
            // The stop has what the held threads wrote: they may go on
            // once the world starts again, and those past the runway too.
            end_marking(h);
        }
    };
    let mut report = gc::cycle_with(h, w, me, Release::Paced, workers, true, &mut finish);
    end_marking(h);
    // 6. Writes run at full speed again.
    let _ = t.unprotect(h.arena_lo, used_bytes(h));
    report.start_pause_ns = start_pause_ns;
    report.mark_concurrent_ns = mark_ns;
    report.assist_bytes = h.stats.assist_bytes.load(Relaxed) - assists_before.0;
    report.assist_ns = h.stats.assist_ns.load(Relaxed) - assists_before.1;
    report
}

/// How many marker threads help this one mark with the world running: a
/// quarter of the markers (`gc::helpers_while_running`), or all of them when
/// the last cycle's marking used more than half of the allocation's room
/// (`GcThread::hurry`): an allocation past it would wait for the cycle,
/// which is worse for the program than sharing its cores. (The pause
/// benchmark at 256 MiB, 2 cores, allocating 1.6 GB/s: one marker took
/// 450-650 ms and a request waited 81 ms.) Mark assists (`assist`) did not
/// make the second marker unneeded there: without it, the longest request
/// was 8.2 ms against 3.8 ms with it (medians of 5 interleaved runs).
fn helpers_for(h: &Runtime) -> usize {
    if h.gc_thread.hurry.load(Relaxed) {
        usize::MAX
    } else {
        gc::helpers_while_running(h)
    }
}

/// Makes allocation wait for the running cycle's final stop: a thread whose
/// next refill crosses the trigger, brought down to the heap now, waits in
/// `collect_if_wanted` until `end_marking`.
fn hold(h: &Runtime) {
    h.gc_thread.held.store(1, SeqCst);
    h.pacer.hold_allocation();
}

/// The running cycle's mark is over: ends `hold`, if it is on (allocation
/// goes on to the runway), and wakes the threads that wait past the runway.
fn end_marking(h: &Runtime) {
    if h.gc_thread.held.load(Relaxed) != 0 {
        h.pacer.release_hold();
        h.gc_thread.held.store(0, SeqCst);
    }
    if h.gc_thread.marking.swap(0, SeqCst) != 0 {
        os::futex_wake(&h.gc_thread.marking, i32::MAX);
    }
}

/// Recovers a mark-stack overflow of the concurrent mark, with the world
/// running, over the spans in use now (the page lock is taken only then).
///
/// # Safety
/// As `Marker::recover_overflow_below` in a concurrent mark: no span is
/// freed meanwhile.
unsafe fn recover_overflow(h: &Runtime, m: &mut Marker) {
    if m.overflowed {
        // SAFETY: per the contract.
        unsafe { m.recover_overflow_below(h, used_bytes(h) / PAGE_SIZE) };
    }
}

/// Runs of free pages at least this long are not protected at a cycle's
/// start (see `cycle`). GCBench trees under `GCPIN_CONCURRENT=1`, 4
/// interleaved runs each: the program thread's `exc_page_fault` samples
/// 99-113 -> 49-69, its samples in all 1521-1868 -> 1506-1742 (`perf
/// record`), most of the faults having been first writes to the free pages
/// it allocated into.
const PROTECT_MIN_GAP: usize = 16;

/// At most this many pieces of the scan runs are protected or taken one by
/// one; the last one reaches to the last run's end (protecting or taking
/// more than needed is always correct).
const SCAN_MAX_PIECES: usize = 1024;

/// The pages a concurrent mark tracks, as byte ranges of at most
/// `WRITTEN_CHUNK` into `out` (returns how many): the runs of used pages in
/// chunks that hold scan spans (`PageAlloc::scan_runs`; free runs of
/// `PROTECT_MIN_GAP` pages or more left out). Nothing else can hold an
/// object that points anywhere: free pages hold no object, and a chunk of
/// noscan spans only holds objects the mark never scans. A page that
/// becomes a scan page later was never protected, so it counts as written
/// when the final stop lists it (`cycle`, step 5). The caller holds the
/// page lock; the array is on its stack: nothing is allocated under it.
fn scan_pieces(h: &Runtime, pa: &PageAlloc, out: &mut [(usize, usize)]) -> usize {
    let mut n = 0;
    pa.scan_runs(PROTECT_MIN_GAP, |a, b| {
        let (mut lo, hi) = (h.arena_lo + a * PAGE_SIZE, h.arena_lo + b * PAGE_SIZE);
        while lo < hi {
            if n == out.len() {
                out[n - 1].1 = hi;
                return;
            }
            let end = hi.min(lo + WRITTEN_CHUNK);
            out[n] = (lo, end);
            n += 1;
            lo = end;
        }
    });
    n
}

/// Step 1's protection: the pages `scan_pieces` lists, listed under the page
/// lock and protected after it.
fn protect_scan_runs(h: &Runtime, t: &WriteTracker) -> Result<(), crate::writetrack::Error> {
    let mut pieces = [(0usize, 0usize); SCAN_MAX_PIECES];
    let n = scan_pieces(h, &h.pages.lock().unwrap_or_else(|e| e.into_inner()), &mut pieces);
    for &(lo, hi) in &pieces[..n] {
        t.protect(lo, hi - lo)?;
    }
    Ok(())
}

/// The arena's bytes up to the page allocator's high water.
fn used_bytes(h: &Runtime) -> usize {
    h.pages.lock().unwrap_or_else(|e| e.into_inner()).high_water * PAGE_SIZE
}

/// Step 2: stops the world, pushes the fast-changing roots, restarts it.
/// Returns the pause.
fn start_pause(h: &Runtime, w: &mut WorldGuard<'_, World>, me: *mut ThreadState, loaded: &LoadedObjects) -> u64 {
    let t0 = os::nanotime();
    stop_the_world(w, me);
    let pa = h.pages.lock().unwrap_or_else(|e| e.into_inner());
    let m = h.marker(w);
    m.reset();
    with_spilled_registers(|sp| {
        let all = mark::Threads { registered: &w.threads, forked_away: &w.forked_away };
        // SAFETY: the world is stopped and the page lock held; the records
        // are the registry's; `sp` is below this frame; the loader's list
        // is locked by with_loaded_objects around us.
        unsafe { mark::mark_roots(h, m, &all, me, sp, loaded, &pa, Roots::Start) };
    });
    for &t in w.threads.iter() {
        // SAFETY: a record of the registry, whose thread is stopped.
        unsafe {
            let (lo, hi, sp) = ((*t).stack_lo, (*t).stack_hi, (*t).stopped_sp.load(Acquire));
            let on_stack = sp > lo && sp < hi && !(*t).runtime_only.load(Relaxed);
            (*t).first_pause_sp.store(if on_stack { sp } else { 0 }, Relaxed);
        }
    }
    drop(pa);
    let pause_ns = os::nanotime() - t0;
    start_the_world();
    h.stats.record_pause(pause_ns);
    pause_ns
}
