//! The heap-invariant checker [mimalloc: _mi_page_is_valid].
//!
//! `verify` walks the whole heap with the world stopped and aborts with a
//! message naming the first broken invariant. `gc_verify_heap` exposes it; debug
//! builds also check the page invariants after every cycle. It allocates nothing.

use crate::heap::Heap;
use crate::os::throw;
use crate::pagealloc::PageAlloc;
use crate::pinner;
use crate::sizeclass::BITMAP_WORDS;
use crate::span::Span;
use crate::specials::{KIND_CLEANUP, KIND_FINALIZER, KIND_PIN_COUNTER, KIND_UNCOLLECTABLE};
use crate::threads::World;

/// Checks every invariant stated in the runtime's files. World stopped, page
/// lock held.
pub fn verify(h: &Heap, w: &World, pa: &mut PageAlloc) {
    h.verify_pages(pa);
    // SAFETY: the world is stopped and the page lock held: spans, mcaches,
    // specials and sets are quiescent.
    unsafe {
        h.for_each_span(pa.high_water, |s| verify_span(s, w));
        for &t in &w.threads {
            (*(*t).mcache.get()).verify();
        }
        for (spc, c) in h.central.iter().enumerate() {
            let set = c.partial.lock().unwrap_or_else(|e| e.into_inner());
            set.verify();
            set.for_each(|s| {
                if !(*s).in_use() || (*s).cached.load(std::sync::atomic::Ordering::Relaxed) {
                    throw("heap corruption: a partial set holds a free or cached span");
                }
                if (*s).spanclass as usize != spc {
                    throw("heap corruption: a partial set holds a span of another class");
                }
                if (*s).count_allocated() >= (*s).nelems as usize {
                    throw("heap corruption: a partial set holds a full span");
                }
            });
        }
        h.finq.for_each_queued(|obj, _| {
            let s = h.span_of_heap(obj);
            if s.is_null() || !(*s).is_allocated((*s).index_of(obj)) {
                throw("heap corruption: a queued finalizer's object is not allocated");
            }
        });
    }
}

/// # Safety
/// World stopped; `s` is in use.
unsafe fn verify_span(s: *mut Span, w: &World) {
    // SAFETY: per the contract.
    unsafe {
        let sp = &*s;
        if sp.nelems == 0 || !sp.base.is_multiple_of(crate::sizeclass::PAGE_SIZE) {
            throw("heap corruption: bad span geometry");
        }
        if sp.nelems as usize * sp.elemsize > sp.npages * crate::sizeclass::PAGE_SIZE {
            throw("heap corruption: span objects overrun its pages");
        }
        for wd in 0..BITMAP_WORDS {
            let a = sp.alloc[wd].load(std::sync::atomic::Ordering::Relaxed);
            if a & !sp.word_mask(wd) != 0 {
                throw("heap corruption: alloc bit set beyond the span's objects");
            }
        }
        if sp.any_marked() {
            throw("heap corruption: mark bytes left set outside a collection");
        }
        if sp.swept_count > sp.nelems {
            throw("heap corruption: swept count exceeds the object count");
        }
        if sp.cached.load(std::sync::atomic::Ordering::Relaxed) {
            let owned = w.threads.iter().any(|&t| (*(*t).mcache.get()).cached_spans().any(|c| c == s));
            if !owned {
                throw("heap corruption: a span is marked cached but no thread caches it");
            }
        }
        pinner::for_each_pinned(s, |idx| {
            if !sp.is_allocated(idx) {
                throw("heap corruption: a free slot is pinned");
            }
        });
        let list = sp.specials.lock().unwrap_or_else(|e| e.into_inner());
        let mut prev: Option<(u32, u8)> = None;
        let mut counters = 0u32;
        list.for_each(|r| {
            // Sorted, one record of a kind per object but for cleanups.
            if prev.is_some_and(|p| p > (r.index, r.kind) || (p == (r.index, r.kind) && r.kind != KIND_CLEANUP)) {
                throw("heap corruption: specials out of order");
            }
            prev = Some((r.index, r.kind));
            if !sp.is_allocated(r.index as usize) {
                throw("heap corruption: a special refers to a free slot");
            }
            match r.kind {
                KIND_PIN_COUNTER => {
                    counters += 1;
                    if r.count == 0 || pinner::pin_state(s, r.index as usize) != 3 {
                        throw("heap corruption: pin counter without pin state 3");
                    }
                }
                KIND_FINALIZER => {}
                KIND_UNCOLLECTABLE => {
                    if pinner::pin_state(s, r.index as usize) == 0 {
                        throw("heap corruption: an uncollectable object without its own pin");
                    }
                }
                KIND_CLEANUP => {
                    if r.cleanup.is_none() || r.id == 0 {
                        throw("heap corruption: a cleanup without function or id");
                    }
                }
                _ => throw("heap corruption: unknown special kind"),
            }
        });
        if counters != sp.pin_counters.load(std::sync::atomic::Ordering::Relaxed) {
            throw("heap corruption: pin counter count mismatch");
        }
        let mut threes = 0u32;
        pinner::for_each_pinned(s, |idx| {
            if pinner::pin_state(s, idx) == 3 {
                threes += 1;
            }
        });
        if threes != counters {
            throw("heap corruption: pin state 3 without a pin counter");
        }
    }
}
