//! Spans: runs of pages holding objects of one span class [Go: mspan].
//!
//! A span is `npages` contiguous 8 KiB pages of the arena. A small-object span is
//! cut into `nelems` objects of `elemsize` bytes (one size class); a large-object
//! span holds exactly one object. The `Span` record itself lives off-heap
//! (`fixalloc`) and is type-stable.
//!
//! Who may touch what:
//! - `base`, `npages`, `elemsize`, `nelems`, `div_magic`, `spanclass` are written
//!   when the span is created, before it is published in the page table, and never
//!   change while it is in use.
//! - `alloc` bits: set by the one thread whose mcache owns the span (`cached`),
//!   and rewritten only while the world is stopped (sweep). Other threads read
//!   them (pin validation), so the words are atomics used with relaxed ordering:
//!   on the platforms we support that compiles to plain loads and stores.
//! - `mark` bits: only the collector, only while the world is stopped.
//! - `cached`, `needzero`, `swept_count`: the owning mcache's thread, the mcentral
//!   lock holder, or the collector while the world is stopped.
//! - `pins`: lazily allocated, installed by compare-and-swap, freed only with the
//!   span (world stopped); the bits are atomics (see `pinner`).
//! - `specials`: a list sorted by object index, under the span's own lock; the
//!   count of pin-counter specials beside it is read without the lock.
//!
//! Invariant: an object slot `i < nelems` is allocated iff its alloc bit is set;
//! bits `>= nelems` are always clear. A pinned object is always allocated.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use std::sync::Mutex;

use bitvec::array::BitArray;
use bitvec::order::Lsb0;

use crate::pinbits::{self, PinBits};
use crate::sizeclass::{self, BITMAP_WORDS, PAGE_SIZE};
use crate::specials::SpecialList;

/// Mark bits: one per object, touched only by the collector.
pub type MarkBits = BitArray<[u64; BITMAP_WORDS], Lsb0>;

/// `Span::state` values.
pub const SPAN_FREE: u8 = 0;
pub const SPAN_IN_USE: u8 = 1;

#[repr(C)]
pub struct Span {
    pub base: usize,
    pub npages: usize,
    pub elemsize: usize,
    pub nelems: u32,
    pub div_magic: u32,
    /// `size_class << 1 | noscan`; size class 0 is a large object.
    pub spanclass: u8,
    pub state: AtomicU8,
    /// Owned by some thread's mcache: only that thread allocates from it. Set
    /// by `Mcentral::take` under the mcentral lock (or on a new span before any
    /// other thread can see it); cleared by the owner (Release) when it gives
    /// the span up, so an explicit free (`alloc::free`) that reads false
    /// (Acquire) under the mcentral lock knows no mcache uses the span.
    pub cached: AtomicBool,
    /// Freed slots may hold old data: zero objects as they are handed out.
    pub needzero: bool,
    /// Allocated objects right after the last sweep (or 0 for a new span):
    /// the difference to the alloc bits is what was allocated since.
    pub swept_count: u32,
    pub alloc: [AtomicU64; BITMAP_WORDS],
    pub mark: MarkBits,
    pub pins: AtomicPtr<PinBits>,
    /// Number of pin-counter specials in `specials`.
    pub pin_counters: AtomicU32,
    pub specials: Mutex<SpecialList>,
}

impl Span {
    #[inline]
    pub fn size_class(&self) -> usize {
        (self.spanclass >> 1) as usize
    }

    #[inline]
    pub fn noscan(&self) -> bool {
        self.spanclass & 1 != 0
    }

    #[inline]
    pub fn limit(&self) -> usize {
        self.base + self.npages * PAGE_SIZE
    }

    #[inline]
    pub fn in_use(&self) -> bool {
        self.state.load(Relaxed) == SPAN_IN_USE
    }

    /// Index of the object containing `addr` (which must lie in the span); may be
    /// `>= nelems` for the unused tail of a small-object span.
    #[inline]
    pub fn index_of(&self, addr: usize) -> usize {
        // Large spans have div_magic 0, so their one object is index 0 without a
        // branch.
        let off = addr.wrapping_sub(self.base);
        ((off as u64).wrapping_mul(self.div_magic as u64) >> 32) as usize
    }

    #[inline]
    pub fn object_base(&self, idx: usize) -> usize {
        self.base + idx * self.elemsize
    }

    #[inline]
    pub fn is_allocated(&self, idx: usize) -> bool {
        // Unchecked: this is on the mark loop's path. SAFETY: idx < nelems <= MAX_OBJECTS_PER_SPAN
        // (checked first; sizeclass's invariant; a zeroed record has nelems 0): idx / 64 < BITMAP_WORDS.
        idx < self.nelems as usize
            && unsafe { self.alloc.get_unchecked(idx / 64) }.load(Relaxed) & (1 << (idx % 64)) != 0
    }

    /// Number of allocated objects.
    pub fn count_allocated(&self) -> usize {
        self.alloc.iter().map(|w| w.load(Relaxed).count_ones() as usize).sum()
    }

    /// Number of words of the bitmaps that cover `nelems`.
    #[inline]
    pub fn bitmap_words(&self) -> usize {
        (self.nelems as usize).div_ceil(64)
    }

    /// Mask of valid object bits in bitmap word `w`.
    #[inline]
    pub fn word_mask(&self, w: usize) -> u64 {
        let n = self.nelems as usize;
        let lo = w * 64;
        if n >= lo + 64 {
            !0
        } else if n <= lo {
            0
        } else {
            (1u64 << (n - lo)) - 1
        }
    }

    /// Initializes a span record for pages `[base, base + npages * PAGE_SIZE)`.
    /// Called on a zeroed record before it is published.
    pub fn init(&mut self, base: usize, npages: usize, spanclass: u8) {
        self.base = base;
        self.npages = npages;
        self.spanclass = spanclass;
        let class = (spanclass >> 1) as usize;
        if class == 0 {
            self.elemsize = npages * PAGE_SIZE;
            self.nelems = 1;
            self.div_magic = 0;
        } else {
            self.elemsize = sizeclass::CLASS_SIZE[class] as usize;
            self.nelems = sizeclass::objects_per_span(class) as u32;
            self.div_magic = sizeclass::CLASS_DIV_MAGIC[class];
        }
        self.cached.store(false, Relaxed);
        self.needzero = false;
        self.swept_count = 0;
        for w in &self.alloc {
            w.store(0, Relaxed);
        }
        self.mark = MarkBits::ZERO;
        self.pins.store(std::ptr::null_mut(), Relaxed);
        self.pin_counters.store(0, Relaxed);
        *self.specials.get_mut().unwrap_or_else(|e| e.into_inner()) = SpecialList::new();
        self.state.store(SPAN_IN_USE, Release);
    }
}

/// Frees a span's pin bits. World stopped, span being freed.
///
/// # Safety
/// No object of `s` is pinned and no thread can reach `s` meanwhile.
pub unsafe fn free_pin_bits(s: *mut Span) {
    // SAFETY: per the contract.
    unsafe {
        let pb = (*s).pins.swap(std::ptr::null_mut(), std::sync::atomic::Ordering::AcqRel);
        if !pb.is_null() {
            pinbits::free(pb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizeclass::{size_to_class, NUM_CLASSES};

    fn blank() -> Box<Span> {
        // SAFETY: every field of Span is valid when zeroed (integers, atomics,
        // null pointers, an unlocked Mutex around an empty list).
        unsafe { Box::new(std::mem::zeroed()) }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "too slow under Miri: every byte offset of every class (millions of \
                  multiplications), and pure arithmetic"
    )]
    fn index_of_matches_division_for_every_offset_of_every_class() {
        for c in 1..NUM_CLASSES {
            let mut s = blank();
            let npages = sizeclass::CLASS_NPAGES[c] as usize;
            s.init(1 << 30, npages, (c << 1) as u8);
            for off in 0..npages * PAGE_SIZE {
                assert_eq!(s.index_of(s.base + off), off / s.elemsize, "class {c} offset {off}");
            }
        }
    }

    #[test]
    fn index_of_every_object_in_every_class() {
        for c in 1..NUM_CLASSES {
            let mut s = blank();
            let npages = sizeclass::CLASS_NPAGES[c] as usize;
            s.init(1 << 30, npages, (c << 1) as u8);
            for i in 0..s.nelems as usize {
                let b = s.object_base(i);
                assert_eq!(s.index_of(b), i);
                assert_eq!(s.index_of(b + s.elemsize - 1), i);
            }
        }
        let _ = size_to_class(1);
    }

    #[test]
    fn word_masks_cover_exactly_nelems() {
        let mut s = blank();
        s.init(1 << 30, 1, (size_to_class(48) << 1) as u8); // 170 objects
        let total: u32 = (0..BITMAP_WORDS).map(|w| s.word_mask(w).count_ones()).sum();
        assert_eq!(total, s.nelems);
        assert_eq!(s.bitmap_words(), 3);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "bitvec 1.1.1's BitSlice::set violates Stacked Borrows (ferrilab/bitvec#193); \
                  scripts/rust-sanitizers.sh runs it under -Zmiri-tree-borrows, where it passes"
    )]
    fn mark_bits_are_a_bitvec_array() {
        let mut s = blank();
        s.init(1 << 30, 1, 2);
        s.mark.set(5, true);
        s.mark.set(511, true);
        assert_eq!(s.mark.count_ones(), 2);
        assert!(s.mark[5] && s.mark[511] && !s.mark[6]);
        assert_eq!(s.mark.as_raw_slice()[7], 1 << 63);
    }
}
