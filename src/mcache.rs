//! Per-thread span caches [Go: mcache].
//!
//! Each registered thread owns one `Mcache`: for every span class, the span it
//! allocates from and a cached word of that span's free bits [Go: allocCache].
//! The fast path takes the lowest set bit (count trailing zeros), sets the
//! object's alloc bit and returns: no lock, no atomic read-modify-write.
//!
//! Invariants:
//! - `entries[c].span` is null or an in-use span of class `c` with `cached` set,
//!   owned by this mcache alone.
//! - `entries[c].free` holds only bits of word `entries[c].word` that are free in
//!   the span's alloc bits (and below `nelems`); bits of words before `word` are
//!   never handed out again until the span is swept.
//! - The mcache is only touched by its thread inside the runtime, or by the
//!   collector while the world is stopped (which empties it, `release_all`).

use std::sync::atomic::Ordering::*;

use crate::heap::{AllocFail, Heap};
use crate::sizeclass::{self, NUM_SPAN_CLASSES};
use crate::span::Span;

#[derive(Clone, Copy)]
pub struct CacheEntry {
    span: *mut Span,
    /// Free bits of alloc word `word` not yet handed out.
    free: u64,
    word: u32,
}

const EMPTY: CacheEntry = CacheEntry { span: std::ptr::null_mut(), free: 0, word: 0 };

pub struct Mcache {
    entries: [CacheEntry; NUM_SPAN_CLASSES],
    /// Bytes this thread reserved for allocation (refills, large objects)
    /// since it last looked (`take_reserved`): what a mark assist pays for.
    reserved: usize,
    /// Mark-assist work (bytes) this thread still owes cycle `assist_cycle`:
    /// what its assists could not do within one slice (`assist`).
    assist_debt: usize,
    assist_cycle: u64,
}

impl Mcache {
    pub const fn new() -> Mcache {
        Mcache { entries: [EMPTY; NUM_SPAN_CLASSES], reserved: 0, assist_debt: 0, assist_cycle: 0 }
    }

    /// The assist work this thread owes `cycle`, which it then no longer
    /// owes; none if what it owed was an earlier cycle's.
    #[inline]
    pub fn take_assist_debt(&mut self, cycle: u64) -> usize {
        let debt = std::mem::take(&mut self.assist_debt);
        if self.assist_cycle == cycle {
            debt
        } else {
            0
        }
    }

    /// Records that this thread owes `cycle` `bytes` of assist work.
    #[inline]
    pub fn owe_assist(&mut self, cycle: u64, bytes: usize) {
        (self.assist_debt, self.assist_cycle) = (bytes, cycle);
    }

    /// Counts `bytes` this thread took for allocation (a refill's free slots,
    /// a large object) towards the trigger and towards `reserved`.
    #[inline]
    pub fn note_allocated(&mut self, h: &Heap, bytes: usize) {
        h.pacer.note_allocated(bytes);
        self.reserved += bytes;
    }

    /// The bytes reserved since the last call.
    #[inline]
    pub fn take_reserved(&mut self) -> usize {
        std::mem::take(&mut self.reserved)
    }

    /// Allocates one object of span class `spc` (a small class). Returns the
    /// address and whether the object may hold old data and must be zeroed.
    #[inline(always)]
    pub fn alloc(&mut self, h: &Heap, spc: usize) -> Result<(usize, bool), AllocFail> {
        match self.alloc_fast(spc) {
            Some(r) => Ok(r),
            None => self.alloc_slow(h, spc),
        }
    }

    /// The fast path of `alloc` [Go: nextFreeFast]: a slot from the cached
    /// word, or None when the word is used up (or there is no span yet).
    #[inline(always)]
    pub fn alloc_fast(&mut self, spc: usize) -> Option<(usize, bool)> {
        // SAFETY: span classes are < NUM_SPAN_CLASSES by construction.
        let e = unsafe { self.entries.get_unchecked_mut(spc) };
        if e.free == 0 {
            return None;
        }
        let bit = e.free.trailing_zeros() as usize;
        e.free &= e.free - 1;
        let idx = e.word as usize * 64 + bit;
        let s = e.span;
        // SAFETY: the span is owned by this mcache (invariant); only this
        // thread sets its alloc bits while it is cached; `word` is below the
        // span's bitmap length.
        unsafe {
            let w = (*s).alloc.get_unchecked(e.word as usize);
            w.store(w.load(Relaxed) | 1 << bit, Relaxed);
            Some(((*s).base + idx * (*s).elemsize, (*s).needzero))
        }
    }

    #[inline(never)]
    fn alloc_slow(&mut self, h: &Heap, spc: usize) -> Result<(usize, bool), AllocFail> {
        // Move to the next word of the current span that has a free slot.
        let e = &mut self.entries[spc];
        if !e.span.is_null() {
            let s = e.span;
            // SAFETY: owned span, see `alloc`.
            let words = unsafe { (*s).bitmap_words() };
            for w in e.word as usize + 1..words {
                // SAFETY: as above.
                let free = unsafe { !(*s).alloc[w].load(Relaxed) & (*s).word_mask(w) };
                if free != 0 {
                    e.word = w as u32;
                    e.free = free;
                    return self.alloc(h, spc);
                }
            }
            // The span is full: it belongs to no list until the next sweep (or
            // an explicit free gives it a free slot again, see `alloc::free`).
            // SAFETY: owned span.
            unsafe { (*s).cached.store(false, Release) };
            *e = EMPTY;
        }
        self.refill(h, spc)?;
        self.alloc(h, spc)
    }

    /// Caches a span of class `spc` with a free slot: a partial one from the
    /// mcentral, or a new one from the page heap.
    fn refill(&mut self, h: &Heap, spc: usize) -> Result<(), AllocFail> {
        let mut s = h.central[spc].take();
        if s.is_null() {
            let class = spc >> 1;
            s = h.alloc_span(sizeclass::CLASS_NPAGES[class] as usize, spc as u8)?;
            // SAFETY: a new span no other thread has seen: marking it cached
            // makes it ours (`take` marks the spans it hands out).
            unsafe { (*s).cached.store(true, Relaxed) };
        }
        // SAFETY: `s` came from the mcentral or was just created; it is ours.
        unsafe {
            let words = (*s).bitmap_words();
            let mut free_slots = 0usize;
            let mut first: Option<(usize, u64)> = None;
            for w in 0..words {
                let free = !(*s).alloc[w].load(Relaxed) & (*s).word_mask(w);
                free_slots += free.count_ones() as usize;
                if first.is_none() && free != 0 {
                    first = Some((w, free));
                }
            }
            let (w, free) =
                first.unwrap_or_else(|| crate::os::throw("heap corruption: a partial span has no free slot"));
            self.entries[spc] = CacheEntry { span: s, free, word: w as u32 };
            self.note_allocated(h, free_slots * (*s).elemsize);
        }
        Ok(())
    }

    /// Gives up every cached span. With `give_back`, spans that still have free
    /// slots go back to their mcentral (thread exit); without, they wait for the
    /// sweep that follows (collection).
    pub fn release_all(&mut self, h: &Heap, give_back: bool) {
        for spc in 0..NUM_SPAN_CLASSES {
            let e = self.entries[spc];
            if e.span.is_null() {
                continue;
            }
            // Whether the span has a free slot is decided before `cached` is cleared: afterwards
            // an explicit free (`free::free`) may clear a bit of a full span and hand the span to
            // its mcentral itself, and it must not be given twice. SAFETY: the span is owned by
            // this mcache until we clear `cached`.
            unsafe {
                let give = give_back && (*e.span).count_allocated() < (*e.span).nelems as usize;
                (*e.span).cached.store(false, Release);
                if give {
                    h.central[spc].give(e.span);
                }
            }
            self.entries[spc] = EMPTY;
        }
    }

    /// Takes back object `idx` of span `s` (class `spc`), explicitly freed, if
    /// `s` is the span this mcache allocates from: its alloc bit is cleared and,
    /// when it lies in the cached word, the slot is handed out again by the
    /// next allocation of the class (zeroed: the span is marked `needzero`).
    /// A slot in a later word is found when the cache moves on to that word;
    /// one in an earlier word waits for the sweep. False, with nothing
    /// changed, when `s` is not this mcache's span of `spc`.
    ///
    /// # Safety
    /// The calling thread owns this mcache and is inside the runtime; object
    /// `idx` of `s` is allocated, unpinned, and has no specials.
    pub unsafe fn take_back(&mut self, spc: usize, s: *mut Span, idx: usize) -> bool {
        let e = &mut self.entries[spc];
        if e.span != s {
            return false;
        }
        let (w, bit) = (idx / 64, 1u64 << (idx % 64));
        // SAFETY: the span is owned by this mcache: only this thread writes its
        // alloc bits and `needzero` (per the contract, inside the runtime).
        unsafe {
            let word = &(*s).alloc[w];
            word.store(word.load(Relaxed) & !bit, Relaxed);
            (*s).needzero = true;
        }
        if w == e.word as usize {
            e.free |= bit;
        }
        true
    }

    /// Checks the invariants at the top of this file. Aborts on a violation.
    /// The world is stopped.
    pub fn verify(&self) {
        for (spc, e) in self.entries.iter().enumerate() {
            if e.span.is_null() {
                continue;
            }
            // SAFETY: a cached span is in use (the invariant checked here),
            // and with the world stopped no one changes it.
            unsafe {
                let s = &*e.span;
                if !s.in_use() || s.spanclass as usize != spc || !s.cached.load(Relaxed) {
                    crate::os::throw(
                        "heap corruption: an mcache holds a span that is free, of another class or not cached",
                    );
                }
                let w = e.word as usize;
                if w >= s.bitmap_words() || e.free & (s.alloc[w].load(Relaxed) | !s.word_mask(w)) != 0 {
                    crate::os::throw("heap corruption: an mcache's free bits name allocated or missing slots");
                }
            }
        }
    }

    /// Spans currently cached (for the heap verifier).
    pub fn cached_spans(&self) -> impl Iterator<Item = *mut Span> + '_ {
        self.entries.iter().map(|e| e.span).filter(|s| !s.is_null())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::sizeclass::{objects_per_span, size_to_class};

    #[test]
    fn assist_debt_is_owed_to_its_cycle_only() {
        let mut mc = Mcache::new();
        assert_eq!(mc.take_assist_debt(0), 0);
        mc.owe_assist(3, 4096);
        assert_eq!(mc.take_assist_debt(3), 4096);
        assert_eq!(mc.take_assist_debt(3), 0, "taken once");
        mc.owe_assist(3, 4096);
        assert_eq!(mc.take_assist_debt(4), 0, "the cycle it was owed to has ended");
        assert_eq!(mc.take_assist_debt(3), 0, "and it is forgotten");
    }

    #[test]
    #[cfg_attr(miri, ignore = "a heap of its own: a 128 MiB arena, too large for Miri")]
    fn a_cache_hands_out_distinct_slots_and_refills_from_new_spans() {
        let h =
            Box::new(Heap::new(Config::from_lookup(|k| (k == "GCPIN_MAX_HEAP").then(|| "64M".to_string()), |_| {})));
        let mut mc = Mcache::new();
        let c = size_to_class(48);
        let spc = c << 1;
        let per_span = objects_per_span(c);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..per_span * 2 + 1 {
            let (a, needzero) = mc.alloc(&h, spc).unwrap();
            assert!(!needzero, "slots of fresh spans are zero");
            assert!(seen.insert(a), "slot {a:#x} handed out twice");
            assert_eq!(a % 16, 0);
            let s = h.span_of_heap(a);
            // SAFETY: a span of the test's heap, used by this thread only.
            assert!(!s.is_null() && unsafe { (*s).is_allocated((*s).index_of(a)) });
        }
        let spans: std::collections::HashSet<usize> = seen.iter().map(|&a| h.span_of_heap(a) as usize).collect();
        assert_eq!(spans.len(), 3, "two full spans and a third");
        assert_eq!(
            h.pacer.heap_live.load(Relaxed),
            3 * per_span * crate::sizeclass::CLASS_SIZE[c] as usize,
            "every refill counts its free slots towards the trigger"
        );
        // Giving the cache back puts the partial span in its mcentral, where
        // the next cache finds it.
        let current = mc.cached_spans().next().unwrap();
        mc.release_all(&h, true);
        assert_eq!(h.central[spc].take(), current);
    }
}
