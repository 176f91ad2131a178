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
//! - mark bytes (`marks`): one byte per object, in the heap's side table (see
//!   `heap`), not in the record: only the collector touches them, only while
//!   the world is stopped, and possibly from several marker threads at once.
//!   A byte is a unit of memory no store to a neighbour can clobber, so a
//!   marker sets its object's byte with a plain store, never a locked
//!   read-modify-write (which cost 60 to 80% of a full collection's time on
//!   this project's 2-core host when the marks were bits set by `fetch_or`).
//!   Two markers may both see a byte clear and both set it: the object is then
//!   scanned twice, which finds the same pointers. Marks are never cleared
//!   while marking runs, so no mark is lost.
//! - `cached`, `needzero`, `swept_count`: the owning mcache's thread, the mcentral
//!   lock holder, or the collector while the world is stopped.
//! - `pins`: lazily allocated, installed by compare-and-swap, freed only with the
//!   span (world stopped); the bits are atomics (see `pinner`).
//! - `specials`: a list sorted by object index, under the span's own lock; the
//!   count of pin-counter specials beside it is read without the lock.
//!
//! Invariants: an object slot `i < nelems` is allocated iff its alloc bit is set;
//! bits `>= nelems` are always clear. A pinned object is always allocated. Mark
//! bytes are 0 or 1; outside a cycle every one of them is 0, in the whole side
//! table (the sweep clears those it finds set), so a span made over pages of
//! a freed one starts unmarked.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use std::sync::Mutex;

use crate::pinbits::{self, PinBits};
use crate::sizeclass::{self, BITMAP_WORDS, PAGE_SIZE};
use crate::specials::SpecialList;

/// Side-table bytes per arena byte: one mark byte per 16 bytes (the smallest
/// object), so a span's `npages * PAGE_SIZE / MARK_GRANULE` bytes of the table
/// hold a byte for each of its objects.
pub const MARK_GRANULE: usize = 16;

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
    /// The span's slot of the heap's mark-byte side table: byte `idx` is
    /// object `idx`'s mark (see the top of this file). The fields a marker
    /// reads for every pointer it finds (`base` .. `marks`, and the first
    /// alloc words) share the record's first cache line: in a heap marked in
    /// random order each line of the record is a miss of its own.
    pub marks: *const AtomicU8,
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
    /// Sweep generation [Go: mspan.sweepgen]: equal to the heap's when the
    /// span is swept, one less while a thread sweeps it, two less when it
    /// waits for the sweep that follows a concurrent cycle (see `sweep`).
    pub sweepgen: AtomicU32,
    /// The word of the heap's bitmap of spans with extras (pin bits or
    /// special records) that holds this span's bit, and the bit: set by
    /// `flag_extras`, cleared when the span is freed; the next word holds its
    /// bit of the walked bitmap (see `heap`).
    pub extras_word: *const AtomicU64,
    pub extras_bit: u64,
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

    /// The mark byte of object `idx < nelems`.
    #[inline]
    fn mark_byte(&self, idx: usize) -> &AtomicU8 {
        debug_assert!(idx < self.nelems as usize);
        // SAFETY: `marks` is the span's slot of the side table, at least
        // `npages * PAGE_SIZE / MARK_GRANULE >= nelems` bytes (set by `init`).
        unsafe { &*self.marks.add(idx) }
    }

    /// Whether object `idx < nelems` is marked.
    #[inline]
    pub fn is_marked(&self, idx: usize) -> bool {
        self.mark_byte(idx).load(Relaxed) != 0
    }

    /// Marks object `idx < nelems`.
    #[inline]
    pub fn set_marked(&self, idx: usize) {
        self.mark_byte(idx).store(1, Relaxed);
    }

    /// Marks object `idx < nelems`; false if it was marked already. Markers
    /// racing for one object may both get true (see the top of this file).
    #[inline]
    pub fn try_mark(&self, idx: usize) -> bool {
        let b = self.mark_byte(idx);
        if b.load(Relaxed) != 0 {
            return false;
        }
        b.store(1, Relaxed);
        true
    }

    /// The mark bytes of objects `64 w .. 64 w + 64` as a bitmap word (bit `i`:
    /// object `64 w + i`), masked to `nelems`.
    pub fn mark_word(&self, w: usize) -> u64 {
        let mut bits = 0u64;
        for k in 0..8 {
            let first = w * 64 + k * 8;
            if first >= self.nelems as usize {
                break;
            }
            // SAFETY: the slot holds at least 512 bytes (one page's worth) and
            // a whole multiple of 64 of them (npages * 512), and first + 8 <=
            // 64 (w + 1) <= that size for every w < bitmap_words().
            let eight = unsafe { std::ptr::read_unaligned(self.marks.add(first) as *const u64) };
            bits |= pack_mark_bytes(eight) << (k * 8);
        }
        bits & self.word_mask(w)
    }

    /// Whether any object is marked.
    pub fn any_marked(&self) -> bool {
        (0..self.bitmap_words()).any(|w| self.mark_word(w) != 0)
    }

    /// Clears every mark byte of the span.
    pub fn clear_marks(&self) {
        for first in (0..self.nelems as usize).step_by(8) {
            let p = self.marks.wrapping_add(first) as *mut u64;
            // Read first: a page of the side table on which nothing was ever
            // marked stays the shared zero page, costing no memory.
            // SAFETY: inside the slot, as in `mark_word`; only the collector
            // touches mark bytes, and it clears a span's on one thread.
            unsafe {
                if std::ptr::read_unaligned(p) != 0 {
                    std::ptr::write_unaligned(p, 0);
                }
            }
        }
    }

    /// Sets where the span's bit in the heap's bitmap of spans with extras
    /// is (null: no bitmap, as in unit tests of lone spans).
    pub fn init_extras(&mut self, word: *const AtomicU64, bit: u64) {
        self.extras_word = word;
        self.extras_bit = bit;
    }

    /// Records that the span has pin bits or special records, so that the
    /// collector's walks over such spans find it (`Heap::for_each_span_with_extras`).
    #[inline]
    fn flag_extras(&self) {
        if self.extras_word.is_null() {
            return;
        }
        // SAFETY: the word lies in the heap's bitmap, which lives as long as
        // the heap; atomics.
        let w = unsafe { &*self.extras_word };
        if w.load(SeqCst) & self.extras_bit == 0 {
            w.fetch_or(self.extras_bit, SeqCst);
        }
    }

    /// Clears both of the span's bits (see `heap`'s `extras`): it is freed.
    pub fn unflag_extras(&self) {
        if !self.extras_word.is_null() {
            // SAFETY: as in `flag_extras`; the walked bitmap's word follows.
            unsafe {
                (*self.extras_word).fetch_and(!self.extras_bit, SeqCst);
                (*self.extras_word.add(1)).fetch_and(!self.extras_bit, SeqCst);
            }
        }
    }

    /// A concurrent cycle is about to mark the span's pinned objects: unless
    /// it is pinned again (`note_extras`), the final pause need not (see
    /// `pinner::walk_noscan`).
    pub fn set_walked(&self) {
        if !self.extras_word.is_null() {
            // SAFETY: as in `unflag_extras`.
            unsafe { (*self.extras_word.add(1)).fetch_or(self.extras_bit, SeqCst) };
        }
    }

    /// Whether the span's walked bit is set (see `set_walked`).
    #[inline]
    pub fn walked(&self) -> bool {
        // SAFETY: as in `unflag_extras`.
        !self.extras_word.is_null() && unsafe { (*self.extras_word.add(1)).load(SeqCst) } & self.extras_bit != 0
    }

    /// Clears the span's walked bit: the final pause of a concurrent cycle
    /// visits it.
    pub fn clear_walked(&self) {
        if !self.extras_word.is_null() {
            // SAFETY: as in `unflag_extras`.
            unsafe { (*self.extras_word.add(1)).fetch_and(!self.extras_bit, SeqCst) };
        }
    }

    /// An object of the span was pinned, or a special record was added: flags
    /// the span, and clears its walked bit (after the pin or record is in: a
    /// concurrent mark sets the bit and then reads the pin bits, so it sees
    /// the pin or the final pause visits the span).
    #[inline]
    pub fn note_extras(&self) {
        if self.extras_word.is_null() {
            return;
        }
        self.flag_extras();
        if self.walked() {
            self.clear_walked();
        }
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

    /// Initializes a span record for pages `[base, base + npages * PAGE_SIZE)`,
    /// whose mark bytes are at `marks` (the span's slot of the side table:
    /// `npages * PAGE_SIZE / MARK_GRANULE` bytes, all 0), swept as of heap
    /// generation `sweepgen`. Called on a zeroed record before it is published.
    pub fn init(&mut self, base: usize, npages: usize, spanclass: u8, marks: *const AtomicU8, sweepgen: u32) {
        self.init_extras(std::ptr::null(), 0);
        self.base = base;
        self.marks = marks;
        self.sweepgen.store(sweepgen, Relaxed);
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
        self.pins.store(std::ptr::null_mut(), Relaxed);
        self.pin_counters.store(0, Relaxed);
        *self.specials.get_mut().unwrap_or_else(|e| e.into_inner()) = SpecialList::new();
        self.touch_marks();
        self.state.store(SPAN_IN_USE, Release);
    }

    /// Writes (0, its value) one mark byte in each OS page of the span's
    /// used mark bytes. The side table is reserved, not committed: a page of it
    /// that a marker first reads is the kernel's shared zero page, and its first
    /// store then takes a copy-on-write fault whose TLB flush interrupts every
    /// other core running one of the process's threads (`perf` put 8% of a
    /// GCBench run there, inside the mark). A write here maps a fresh page with
    /// no flush, before any marker can find the span.
    fn touch_marks(&self) {
        const OS_PAGE: usize = 4096;
        let first = self.marks as usize;
        let end = first + self.nelems as usize;
        let mut at = first;
        while at < end {
            // A volatile store: the compiler turns an idempotent atomic
            // read-modify-write into a load, which maps the zero page.
            // SAFETY: `first <= at < end` is in the span's slot of the side
            // table, all 0 (see `init`), unseen by others until published.
            unsafe { std::ptr::write_volatile(at as *mut u8, 0) };
            at = (at | (OS_PAGE - 1)) + 1;
        }
    }
}

/// Packs eight mark bytes (each 0 or 1; byte `i` at bits `8 i`) into bits 0..8
/// (byte `i` to bit `i`): the multiplication adds each byte's bit, shifted,
/// into the top byte, where no two of them collide.
#[inline]
pub fn pack_mark_bytes(eight: u64) -> u64 {
    eight.wrapping_mul(0x0102_0408_1020_4080) >> 56
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

    /// A side-table slot for a one-page span (512 mark bytes), never freed.
    fn marks() -> *const AtomicU8 {
        marks_for(1)
    }

    /// A side-table slot for an `npages`-page span, never freed.
    fn marks_for(npages: usize) -> *const AtomicU8 {
        Vec::leak((0..npages * PAGE_SIZE / MARK_GRANULE).map(|_| AtomicU8::new(0)).collect()).as_ptr()
    }

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
            s.init(1 << 30, npages, (c << 1) as u8, marks_for(npages), 0);
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
            s.init(1 << 30, npages, (c << 1) as u8, marks_for(npages), 0);
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
        s.init(1 << 30, 1, (size_to_class(48) << 1) as u8, marks(), 0); // 170 objects
        let total: u32 = (0..BITMAP_WORDS).map(|w| s.word_mask(w).count_ones()).sum();
        assert_eq!(total, s.nelems);
        assert_eq!(s.bitmap_words(), 3);
    }

    /// Whether the page holding `addr` is mapped privately to this process
    /// (`/proc/self/pagemap`: present, bit 63, and exclusively mapped, bit 56;
    /// the shared zero page is neither exclusive nor a normal page).
    #[cfg(not(miri))]
    fn privately_mapped(addr: usize) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open("/proc/self/pagemap").unwrap();
        f.seek(SeekFrom::Start((addr / 4096 * 8) as u64)).unwrap();
        let mut e = [0u8; 8];
        f.read_exact(&mut e).unwrap();
        let e = u64::from_le_bytes(e);
        e >> 63 & 1 == 1 && e >> 56 & 1 == 1
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc/self/pagemap")]
    fn init_maps_the_mark_bytes_before_a_marker_stores_to_them() {
        // A reserved side table read before it is written: its pages are the
        // zero page, where a marker's first store would fault and flush.
        let pages = 3;
        let table = crate::os::reserve(pages * 4096).unwrap();
        for p in 0..pages {
            // SAFETY: inside the reservation just made, readable.
            unsafe { std::ptr::read_volatile((table + p * 4096) as *const u8) };
        }
        assert!(!privately_mapped(table), "the reservation should start on the zero page");
        // A one-page span of 16-byte objects (512 mark bytes) at the end of
        // the first page, so its bytes straddle two pages; the third page is
        // outside every span and stays as it was.
        let mut s = blank();
        s.init(1 << 30, 1, (size_to_class(16) << 1) as u8, (table + 4096 - 100) as *const AtomicU8, 0);
        assert_eq!(s.nelems, 512);
        assert!(privately_mapped(table) && privately_mapped(table + 4096));
        assert!(!privately_mapped(table + 2 * 4096));
        assert!((0..512).all(|i| !s.is_marked(i)));
    }

    #[test]
    fn mark_bytes_pack_into_bitmap_words() {
        for pattern in [0u64, 1, 0x8000_0000_0000_0001, 0xdead_beef_0123_4567, !0] {
            let eight = (0..8).fold(0u64, |acc, i| acc | ((pattern >> i) & 1) << (8 * i));
            assert_eq!(pack_mark_bytes(eight), pattern & 0xff);
        }
        let mut s = blank();
        let table = marks();
        s.init(1 << 30, 1, (size_to_class(48) << 1) as u8, table, 0); // 170 objects
        assert!(!s.any_marked());
        for idx in [0, 5, 63, 64, 169] {
            assert!(s.try_mark(idx));
            assert!(!s.try_mark(idx), "marked twice");
        }
        assert!(s.is_marked(5) && s.is_marked(169) && !s.is_marked(6));
        assert_eq!(s.mark_word(0), 1 | 1 << 5 | 1 << 63);
        assert_eq!(s.mark_word(1), 1);
        assert_eq!(s.mark_word(2), 1 << (169 - 128));
        assert!(s.any_marked());
        s.clear_marks();
        assert!(!s.any_marked() && !s.is_marked(169));
        // SAFETY: `marks()` leaked a buffer of 512 AtomicU8.
        assert!((0..512).all(|i| unsafe { (*table.add(i)).load(Relaxed) } == 0), "a byte stayed set");
    }
}
