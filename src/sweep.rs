//! Sweeping: free what marking did not reach [Go: mgcsweep.go].
//!
//! Runs with the world stopped, right after marking, over every in-use span:
//! 0. short disappearing links (`links`) whose object is unmarked are cleared;
//! 1. each finalizer special whose object is unmarked moves to the finalizer
//!    queue, and its object is marked again (resurrected) so it survives until
//!    its finalizer has run; a later cycle frees it. Then each cleanup special
//!    whose object is still unmarked (it had no finalizer queued now: a cleanup
//!    runs after the finalizer, once the object is unreachable again) moves to
//!    the queue too, without its object (`obj` 0): the object is freed now, and
//!    only the cleanup's argument stays alive;
//! 2. the alloc bits become the mark bits: unmarked objects are free. Pinned
//!    objects were marked as roots, so they are never freed;
//! 3. a span with no object left goes back to the page heap; one with a free
//!    slot goes to its mcentral's partial set; mark bits are cleared;
//! 4. long disappearing links whose object was freed are cleared, and links
//!    that lay in freed objects are dropped.
//!
//! Invariant afterwards: no span is cached, every partial set holds exactly the
//! in-use spans with a free slot, all mark bits are clear.

use std::sync::atomic::Ordering::*;

use crate::heap::Heap;
use crate::links::LinkTable;
use crate::pagealloc::PageAlloc;
use crate::span::{MarkBits, Span};
use crate::specials::{KIND_CLEANUP, KIND_FINALIZER};

pub struct SweepReport {
    pub live_bytes: usize,
    pub live_objects: usize,
    pub freed_spans: usize,
    /// Finalizers and cleanups queued.
    pub finalizers_queued: usize,
    /// Bytes allocated since the previous sweep (for the cumulative statistic).
    pub allocated_since_last: usize,
}

/// Sweeps the whole heap. World stopped, `pa` locked.
pub fn sweep(h: &Heap, links: &LinkTable, pa: &mut PageAlloc) -> SweepReport {
    for c in &h.central {
        c.partial.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
    let mut r =
        SweepReport { live_bytes: 0, live_objects: 0, freed_spans: 0, finalizers_queued: 0, allocated_since_last: 0 };
    links.clear_unmarked(h);
    let high_water = pa.high_water;
    // SAFETY: the world is stopped: no thread allocates, pins or frees, and no
    // span is cached (the cycle emptied every mcache).
    unsafe {
        h.for_each_span(high_water, |s| {
            sweep_span(h, s, &mut r);
            if (*s).swept_count == 0 {
                h.free_span(s, pa);
                r.freed_spans += 1;
            } else if ((*s).swept_count as usize) < (*s).nelems as usize {
                h.central[(*s).spanclass as usize].give(s);
            }
        });
    }
    links.clear_freed(h);
    r
}

/// Sweeps one span; leaves the count of surviving objects in `swept_count`.
///
/// # Safety
/// World stopped; `s` is an in-use span cached by no one.
unsafe fn sweep_span(h: &Heap, s: *mut Span, r: &mut SweepReport) {
    // SAFETY: per the contract, we have the span to ourselves.
    unsafe {
        let list = (*s).specials.get_mut().unwrap_or_else(|e| e.into_inner());
        if !list.is_empty() {
            let mark = &(*s).mark;
            let mut chain = list.remove_where(|sp| sp.kind == KIND_FINALIZER && !mark[sp.index as usize], usize::MAX);
            while !chain.is_null() {
                let sp = chain;
                chain = (*sp).next;
                let idx = (*sp).index as usize;
                (*sp).obj = (*s).object_base(idx);
                (*s).mark.set(idx, true);
                h.finq.push(sp);
                r.finalizers_queued += 1;
            }
            let mark = &(*s).mark;
            let mut chain = list.remove_where(|sp| sp.kind == KIND_CLEANUP && !mark[sp.index as usize], usize::MAX);
            while !chain.is_null() {
                let sp = chain;
                chain = (*sp).next;
                (*sp).obj = 0;
                h.finq.push(sp);
                r.finalizers_queued += 1;
            }
        }
        let before = (*s).count_allocated();
        r.allocated_since_last += before.saturating_sub((*s).swept_count as usize) * (*s).elemsize;
        let words = (*s).bitmap_words();
        let marks = (*s).mark.as_raw_slice();
        let mut live = 0usize;
        for (w, &mark) in marks.iter().enumerate().take(words) {
            let m = mark & (*s).word_mask(w);
            (*s).alloc[w].store(m, Relaxed);
            live += m.count_ones() as usize;
        }
        if live < before {
            (*s).needzero = true;
        }
        (*s).swept_count = live as u32;
        (*s).mark = MarkBits::ZERO;
        r.live_objects += live;
        r.live_bytes += live * (*s).elemsize;
    }
}
