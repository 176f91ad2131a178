//! Sweeping: free what marking did not reach [Go: mgcsweep.go].
//!
//! Runs with the world stopped, right after marking, over every in-use span,
//! in two passes. The first (`sweep_pages`) works on each span alone, so the
//! collector splits the arena's pages between its marker threads for it
//! (steps 1 and 2, and the mark bytes cleared); the second (`finish`) is one
//! thread's walk over the spans that hands each to its list (step 3):
//! 0. short disappearing links (`links`) whose object is unmarked are cleared;
//! 1. each finalizer special whose object is unmarked moves to the finalizer
//!    queue, and its object is marked again (resurrected) so it survives until
//!    its finalizer has run; a later cycle frees it. Then each cleanup special
//!    whose object is still unmarked (it had no finalizer queued now: a cleanup
//!    runs after the finalizer, once the object is unreachable again) moves to
//!    the queue too, without its object (`obj` 0): the object is freed now, and
//!    only the cleanup's argument stays alive;
//! 2. the alloc bits become the mark bits (of objects still allocated: a
//!    concurrent mark may have reached one the program freed explicitly
//!    afterwards): unmarked objects are free. Pinned objects were marked as
//!    roots, so they are never freed;
//! 3. a span with no object left goes back to the page heap; one with a free
//!    slot goes to its mcentral's partial set;
//! 4. long disappearing links whose object was freed are cleared, and links
//!    that lay in freed objects are dropped.
//!
//! Invariant afterwards: no span is cached, every partial set holds exactly the
//! in-use spans with a free slot, all mark bytes are clear.

use std::sync::atomic::Ordering::*;

use crate::heap::Heap;
use crate::links::LinkTable;
use crate::pagealloc::PageAlloc;
use crate::span::Span;
use crate::specials::{KIND_CLEANUP, KIND_FINALIZER};

#[derive(Default)]
pub struct SweepReport {
    pub live_bytes: usize,
    pub live_objects: usize,
    pub freed_spans: usize,
    /// Finalizers and cleanups queued.
    pub finalizers_queued: usize,
    /// Bytes allocated since the previous sweep (for the cumulative statistic).
    pub allocated_since_last: usize,
}

impl SweepReport {
    /// Adds the counts of `o` (a part of the sweep done by another thread).
    pub fn add(&mut self, o: &SweepReport) {
        self.live_bytes += o.live_bytes;
        self.live_objects += o.live_objects;
        self.freed_spans += o.freed_spans;
        self.finalizers_queued += o.finalizers_queued;
        self.allocated_since_last += o.allocated_since_last;
    }
}

/// Sweeps the whole heap on the calling thread (the unit tests' sweep; a
/// cycle splits the first pass between its markers, `gc::sweep_all`). World
/// stopped, `pa` locked.
#[cfg(test)]
pub fn sweep(h: &Heap, links: &LinkTable, pa: &mut PageAlloc) -> SweepReport {
    begin(h, links);
    let mut r = SweepReport::default();
    // SAFETY: the world is stopped (the contract) and no span is cached.
    unsafe { sweep_pages(h, 0, pa.high_water, &mut r) };
    finish(h, links, pa, &mut r);
    r
}

/// Before the first pass: empties the partial sets (the second pass refills
/// them) and clears the short links whose object is unmarked (step 0).
/// World stopped.
pub fn begin(h: &Heap, links: &LinkTable) {
    for c in &h.central {
        c.partial.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
    links.clear_unmarked(h);
}

/// The first pass over the spans that start at pages `[lo, hi)`: steps 1 and
/// 2, counted into `r`. Threads may sweep disjoint page ranges at once.
///
/// # Safety
/// The world is stopped, no span is cached (the cycle emptied every mcache),
/// `begin` ran, and no other thread sweeps these pages.
pub unsafe fn sweep_pages(h: &Heap, lo: usize, hi: usize, r: &mut SweepReport) {
    // SAFETY: per the contract we have these spans to ourselves.
    unsafe { h.for_each_span_starting_in(lo, hi, |s| sweep_span(h, s, r)) };
}

/// The second pass: frees the spans left empty, gives those with a free slot
/// to their partial sets (step 3), then drops the links in freed objects
/// (step 4). World stopped, `pa` locked, every page swept.
pub fn finish(h: &Heap, links: &LinkTable, pa: &mut PageAlloc, r: &mut SweepReport) {
    let high_water = pa.high_water;
    // SAFETY: the world is stopped and every span swept: none is cached, and
    // only this thread changes the lists now.
    unsafe {
        h.for_each_span(high_water, |s| {
            if (*s).swept_count == 0 {
                h.free_span(s, pa);
                r.freed_spans += 1;
            } else if ((*s).swept_count as usize) < (*s).nelems as usize {
                h.central[(*s).spanclass as usize].give(s);
            }
        });
    }
    links.clear_freed(h);
}

/// Sweeps one span; leaves the count of surviving objects in `swept_count`.
///
/// # Safety
/// World stopped; `s` is an in-use span cached by no one.
unsafe fn sweep_span(h: &Heap, s: *mut Span, r: &mut SweepReport) {
    // SAFETY: per the contract.
    unsafe {
        queue_specials(h, s, r);
        convert(s, r);
    }
}

/// Step 1 for one span: queues the finalizers of its unmarked objects
/// (marking them again) and then the cleanups of those still unmarked.
///
/// # Safety
/// World stopped; `s` is an in-use span.
unsafe fn queue_specials(h: &Heap, s: *mut Span, r: &mut SweepReport) {
    // SAFETY: per the contract, no other thread touches the span's specials.
    unsafe {
        let list = (*s).specials.get_mut().unwrap_or_else(|e| e.into_inner());
        if list.is_empty() {
            return;
        }
        let span = &*s;
        let mut chain =
            list.remove_where(|sp| sp.kind == KIND_FINALIZER && !span.is_marked(sp.index as usize), usize::MAX);
        while !chain.is_null() {
            let sp = chain;
            chain = (*sp).next;
            let idx = (*sp).index as usize;
            (*sp).obj = (*s).object_base(idx);
            (*s).set_marked(idx);
            h.finq.push(sp);
            r.finalizers_queued += 1;
        }
        let span = &*s;
        let mut chain =
            list.remove_where(|sp| sp.kind == KIND_CLEANUP && !span.is_marked(sp.index as usize), usize::MAX);
        while !chain.is_null() {
            let sp = chain;
            chain = (*sp).next;
            (*sp).obj = 0;
            h.finq.push(sp);
            r.finalizers_queued += 1;
        }
    }
}

/// Step 2 for one span: its mark bytes become its alloc bits, and are cleared.
///
/// # Safety
/// `s` is an in-use span cached by no one, whose alloc bits no other thread
/// writes meanwhile (the world is stopped, or we claimed it, see `try_claim`).
unsafe fn convert(s: *mut Span, r: &mut SweepReport) {
    // SAFETY: per the contract.
    unsafe {
        let before = (*s).count_allocated();
        r.allocated_since_last += before.saturating_sub((*s).swept_count as usize) * (*s).elemsize;
        let mut live = 0usize;
        for w in 0..(*s).bitmap_words() {
            // Marked and still allocated: an object a concurrent mark reached
            // before the program freed it explicitly (`free`) stays free.
            let m = (*s).mark_word(w) & (*s).alloc[w].load(Relaxed);
            (*s).alloc[w].store(m, Relaxed);
            live += m.count_ones() as usize;
        }
        if live < before {
            (*s).needzero = true;
        }
        (*s).swept_count = live as u32;
        (*s).clear_marks();
        r.live_objects += live;
        r.live_bytes += live * (*s).elemsize;
    }
}

// ------------------------------------------------ sweeping with the world running
//
// After a concurrent cycle the sweep runs with the world started [Go: the
// background sweeper, mgcsweep.go's sweepone]. The final pause does what
// needs the marks of every span at once: it empties the partial sets, clears
// the short links and queues the finalizers and cleanups (step 0 and 1 for
// every span), then raises the heap's sweep generation by 2 — every in-use
// span now waits for its sweep — and clears the links of objects the sweep
// will free (`Heap::object_live` answers for unswept spans from their marks).
// Then, with the world running, the collector's threads claim spans one by one
// (`try_claim`: a compare-and-swap of the span's generation from two below
// the heap's to one below) and sweep them (`sweep_claimed`: step 2, the
// generation set to the heap's, then the span freed or given to its partial
// set). A thread that frees an object explicitly sweeps its span first
// (`ensure_swept`). Unswept spans are in no mcache and no partial set, so no
// thread allocates from them; the cycle ends, and the next can begin, only
// when `Heap::unswept` is back to 0.

/// The final pause of a concurrent cycle (world stopped, `pa` locked, marking
/// done): steps 0 and 1 for every span, which are then left to be swept with
/// the world running. Returns the count of finalizers and cleanups queued.
pub fn begin_with_world_running(h: &Heap, links: &LinkTable, pa: &PageAlloc) -> usize {
    begin(h, links);
    let mut r = SweepReport::default();
    // SAFETY: the world is stopped and the page lock held.
    unsafe { h.for_each_span_with_extras(pa.high_water, true, |s| queue_specials(h, s, &mut r)) };
    // (Walked spans have no specials.) The next cycle walks afresh.
    h.forget_walked(pa.high_water);
    h.unswept.store(h.spans_in_use.load(Relaxed), Release);
    h.sweepgen.fetch_add(2, AcqRel);
    links.clear_freed(h);
    r.finalizers_queued
}

/// Claims unswept span `s` for sweeping; false if it is swept or another
/// thread has it.
pub fn try_claim(h: &Heap, s: *mut Span) -> bool {
    let sg = h.sweepgen.load(Acquire);
    // SAFETY: span records are type-stable; a span two generations behind is
    // in use until its claimer frees it.
    unsafe { (*s).sweepgen.compare_exchange(sg.wrapping_sub(2), sg.wrapping_sub(1), AcqRel, Relaxed).is_ok() }
}

/// Sweeps span `s`, which this thread claimed: step 2, then the span is
/// marked swept and freed if empty, or given to its partial set if it has a
/// free slot.
///
/// # Safety
/// `try_claim(h, s)` returned true on this thread.
pub unsafe fn sweep_claimed(h: &Heap, s: *mut Span, r: &mut SweepReport) {
    // SAFETY: we claimed the span: no mcache holds it, no partial set has it,
    // no other thread sweeps it or frees objects in it (`ensure_swept` waits).
    unsafe {
        convert(s, r);
        let (live, nelems, spc) = ((*s).swept_count as usize, (*s).nelems as usize, (*s).spanclass as usize);
        (*s).sweepgen.store(h.sweepgen.load(Acquire), Release);
        if live == 0 {
            let mut pa = h.pages.lock().unwrap_or_else(|e| e.into_inner());
            h.free_span(s, &mut pa);
            r.freed_spans += 1;
        } else if live < nelems {
            h.central[spc].give(s);
        }
    }
    h.unswept.fetch_sub(1, AcqRel);
}

/// Sweeps the unswept spans that start at pages `[lo, hi)` (below the high
/// water of the final pause), skipping those another thread has. World
/// running, the world lock held by the cycle.
pub fn sweep_pages_with_world_running(h: &Heap, lo: usize, hi: usize, r: &mut SweepReport) {
    let mut p = lo.max(1);
    while p < hi {
        let s = h.span_at_page(p);
        // Only a claimed span is ours to read further: others may be made or
        // freed meanwhile, so step one page at a time past them.
        if s.is_null() || !try_claim(h, s) {
            p += 1;
            continue;
        }
        // SAFETY: claimed just now; its geometry is fixed while it is ours.
        let next = unsafe { (((*s).base - h.arena_lo) >> crate::sizeclass::PAGE_SHIFT) + (*s).npages };
        // SAFETY: claimed.
        unsafe { sweep_claimed(h, s, r) };
        p = next;
    }
}

/// Makes sure span `s` is swept, sweeping it on this thread if it waits for
/// its sweep (for an explicit free, which changes alloc bits and lists the
/// sweep would overwrite). Inside the runtime. Its counts go to the
/// statistics' share of this cycle's sweep done by other threads.
pub fn ensure_swept(h: &Heap, s: *mut Span) {
    loop {
        let sg = h.sweepgen.load(Acquire);
        // SAFETY: a type-stable record, read atomically.
        let ssg = unsafe { (*s).sweepgen.load(Acquire) };
        if ssg == sg {
            return;
        }
        if ssg == sg.wrapping_sub(2) && try_claim(h, s) {
            let mut r = SweepReport::default();
            // SAFETY: claimed just now.
            unsafe { sweep_claimed(h, s, &mut r) };
            h.stats.lazy.add(r.live_bytes, r.live_objects, r.freed_spans, r.allocated_since_last);
            return;
        }
        std::thread::yield_now();
    }
}
