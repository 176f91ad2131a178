//! The page heap: the arena, its page allocator and the page→span table [Go: mheap].
//!
//! The arena is one large reservation of address space, made once. Pages are
//! 8 KiB. Two bitmaps over the arena's pages say which pages belong to a span
//! (`used`) and which free pages still hold data the OS has not taken back
//! (`dirty`); free pages that are not dirty read as zeros. A flat table maps
//! every page to the span that holds it, so `span_of(addr)` is a subtraction, a
//! compare and one load [Go: spanOf].
//!
//! Invariants (checked by `verify`):
//! - `table[p]` is non-null iff `used[p]`; then it is the in-use span covering p.
//! - `in_use` counts the used bits; `free_dirty` counts the bits set in `dirty`;
//!   `dirty` bits are only set on pages that are not `used`.
//! - Page 0 is never handed out: the heap's records hold the arena base, and no
//!   word that holds it may be mistaken for a pointer to an object.
//! - The `Heap` lives in a mapping of its own, which no cycle scans (see `HEAP`):
//!   the runtime's memory is never a root.
//! - The page lock (`pages`) is only taken inside the runtime (never by a thread
//!   that can be stopped while holding it), or by the collector while the world
//!   is stopped.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};
use std::sync::Mutex;

use crate::config::{Config, MIN_HEAP};
use crate::finalizer::FinalizerQueue;
use crate::fixalloc::FixAlloc;
use crate::links::LinkTable;
use crate::mcentral::Mcentral;
use crate::os;
use crate::pinner;
use crate::roots::RootSet;
use crate::sizeclass::NUM_SPAN_CLASSES;
use crate::span::{Span, PAGE_SHIFT, PAGE_SIZE, SPAN_FREE};
use crate::stats::Stats;
use crate::threads::{World, WorldLock};

/// Why a span could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocFail {
    /// `GCPIN_MAX_HEAP` would be exceeded: a collection may help.
    Limit,
    /// No room in the arena or the OS refused memory.
    NoMemory,
}

/// Off-heap storage for span records.
pub static SPAN_POOL: FixAlloc = FixAlloc::new(std::mem::size_of::<Span>());

pub struct PageAlloc {
    used: *mut u64,
    dirty: *mut u64,
    npages: usize,
    /// Pages below this index have been handed out at least once.
    pub high_water: usize,
    pub in_use: usize,
    pub free_dirty: usize,
    /// No free page below this index.
    hint: usize,
    /// When surplus pages were last considered for release (`os::nanotime`);
    /// the pace of automatic releases counts from here (see `gc`).
    pub scavenged_at_ns: u64,
}

// SAFETY: the bitmaps are private mappings owned by the PageAlloc, which is only
// used under the heap's page lock.
unsafe impl Send for PageAlloc {}

#[inline]
fn bit(bm: *mut u64, i: usize) -> bool {
    // SAFETY: callers pass i < npages; the bitmap covers npages bits.
    unsafe { *bm.add(i / 64) & (1 << (i % 64)) != 0 }
}

#[inline]
fn set_bit(bm: *mut u64, i: usize, v: bool) {
    // SAFETY: as in `bit`.
    unsafe {
        let w = bm.add(i / 64);
        if v {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }
}

impl PageAlloc {
    fn new(npages: usize) -> Option<PageAlloc> {
        let bytes = npages.div_ceil(64) * 8;
        let used = os::reserve(bytes)? as *mut u64;
        let dirty = os::reserve(bytes)? as *mut u64;
        let mut pa = PageAlloc { used, dirty, npages, high_water: 1, in_use: 0, free_dirty: 0, hint: 1, scavenged_at_ns: 0 };
        set_bit(pa.used, 0, true); // page 0 is reserved, see the invariants
        pa.in_use = 0;
        Some(pa)
    }

    /// Finds `n` free contiguous pages (first fit from the lowest address) and
    /// marks them used. Returns the first page and which of the pages were
    /// dirty (bit i: page start + i), for the caller to zero with
    /// `zero_dirty_pages` once it has let go of the page lock. A run longer than
    /// 64 pages (a large object) is zeroed here instead and reports none.
    fn alloc(&mut self, n: usize, arena_lo: usize) -> Option<(usize, u64)> {
        let mut start = self.hint;
        let mut len = 0;
        let mut i = self.hint;
        while i < self.npages {
            // Skip whole words quickly.
            if i % 64 == 0 && i + 64 <= self.npages {
                // SAFETY: word i/64 exists since i + 64 <= npages.
                let w = unsafe { *self.used.add(i / 64) };
                if w == !0 {
                    len = 0;
                    i += 64;
                    continue;
                }
                if w == 0 {
                    if len == 0 {
                        start = i;
                    }
                    len += 64;
                    i += 64;
                    if len >= n {
                        break;
                    }
                    continue;
                }
            }
            if bit(self.used, i) {
                len = 0;
            } else {
                if len == 0 {
                    start = i;
                }
                len += 1;
                if len >= n {
                    break;
                }
            }
            i += 1;
        }
        if len < n || start + n > self.npages {
            return None;
        }
        if n == 1 || start == self.hint {
            self.hint = start + n;
        }
        let mut dirty = 0u64;
        for p in start..start + n {
            set_bit(self.used, p, true);
            if bit(self.dirty, p) {
                set_bit(self.dirty, p, false);
                self.free_dirty -= 1;
                if n <= 64 {
                    dirty |= 1 << (p - start);
                } else {
                    // SAFETY: page p is in the arena and now ours; it may hold old data.
                    unsafe { std::ptr::write_bytes((arena_lo + p * PAGE_SIZE) as *mut u8, 0, PAGE_SIZE) };
                }
            }
        }
        self.in_use += n;
        self.high_water = self.high_water.max(start + n);
        Some((start, dirty))
    }

    fn free(&mut self, start: usize, n: usize) {
        for p in start..start + n {
            debug_assert!(bit(self.used, p) && !bit(self.dirty, p));
            set_bit(self.used, p, false);
            set_bit(self.dirty, p, true);
        }
        self.in_use -= n;
        self.free_dirty += n;
        self.hint = self.hint.min(start);
    }

    /// Returns free dirty pages to the OS, highest addresses first, until at most
    /// `retain` pages are in use or dirty, or `max` pages were released. Returns
    /// the pages released.
    fn scavenge(&mut self, retain: usize, max: usize, arena_lo: usize) -> usize {
        let mut released = 0;
        let mut p = self.high_water;
        while p > 1 && self.in_use + self.free_dirty > retain && released < max {
            p -= 1;
            if bit(self.dirty, p) {
                // Extend the run downwards while pages are dirty and we still need to.
                let end = p + 1;
                let mut lo = p;
                while lo > 1
                    && bit(self.dirty, lo - 1)
                    && self.in_use + self.free_dirty - (end - lo) > retain
                    && released + (end - lo) < max
                {
                    lo -= 1;
                }
                for q in lo..end {
                    set_bit(self.dirty, q, false);
                }
                self.free_dirty -= end - lo;
                released += end - lo;
                os::release(arena_lo + lo * PAGE_SIZE, (end - lo) * PAGE_SIZE);
                p = lo;
            }
        }
        released
    }

    /// Free pages below the high-water mark that were given back to the OS.
    pub fn released_pages(&self) -> usize {
        self.high_water - 1 - self.in_use - self.free_dirty
    }

    pub fn is_used(&self, p: usize) -> bool {
        bit(self.used, p)
    }

    pub fn is_dirty(&self, p: usize) -> bool {
        bit(self.dirty, p)
    }
}

/// Zeroes the pages of `dirty` (bit i: page start + i), as `PageAlloc::alloc`
/// reported them. The pages must be the caller's.
fn zero_dirty_pages(arena_lo: usize, start: usize, mut dirty: u64) {
    while dirty != 0 {
        let i = dirty.trailing_zeros() as usize;
        // Zero each run of dirty pages with one call.
        let run = (dirty >> i).trailing_ones() as usize;
        // SAFETY: pages start+i .. start+i+run are in the arena and the caller's.
        unsafe { std::ptr::write_bytes((arena_lo + (start + i) * PAGE_SIZE) as *mut u8, 0, run * PAGE_SIZE) };
        dirty &= !((u64::MAX >> (64 - run)) << i);
    }
}

/// The heap: everything the runtime shares between threads.
pub struct Heap {
    pub arena_lo: usize,
    pub arena_size: usize,
    table: *const AtomicUsize,
    pub pages: Mutex<PageAlloc>,
    pub central: [Mcentral; NUM_SPAN_CLASSES],
    pub config: Config,
    /// The collection lock and the registry of threads (see `threads`).
    pub world: WorldLock,
    /// Bytes allocated or reserved by mcaches since the last collection, plus
    /// what survived it: compared against `next_gc` to trigger a collection.
    pub heap_live: AtomicUsize,
    pub next_gc: AtomicUsize,
    /// Set when an allocation crossed `next_gc`; the allocating thread collects
    /// once it is outside the runtime.
    pub gc_wanted: AtomicBool,
    pub stats: Stats,
    pub roots: RootSet,
    pub finq: FinalizerQueue,
    pub start_ns: u64,
    /// Disappearing links (libgc's API), cleared by the sweep.
    pub links: LinkTable,
    /// While nonzero no collection runs, explicit or automatic (libgc's
    /// `GC_disable`/`GC_enable` count; see `gc::collect_when`).
    pub gc_disabled: AtomicUsize,
    /// A heap limit set at run time (libgc's `GC_set_max_heap_size`), in
    /// bytes, beside `config.max_heap`; `usize::MAX` when none. The smaller
    /// of the two applies.
    pub max_heap_bytes: AtomicUsize,
}

// SAFETY: `table` points into a mapping owned by the heap for the life of the
// process; every other field is Sync on its own.
unsafe impl Sync for Heap {}
// SAFETY: as above.
unsafe impl Send for Heap {}

/// The process's heap. The `Heap` itself lives in a mapping of its own, never
/// in this library's data segment: every cycle scans the data and bss of every
/// loaded object — libgcpin's too, and when it is linked statically its statics
/// sit among the program's own globals — and the heap's records hold span base
/// addresses (the marker's span cache, the central lists), which are the
/// addresses of the spans' first objects. Scanned, they kept such objects alive
/// for ever. Only the address of the mapping (outside the arena) is here.
static HEAP: AtomicPtr<Heap> = AtomicPtr::new(std::ptr::null_mut());
/// Held while the heap is created, and by a forking thread across `fork()`, so
/// that a child never inherits a half-made heap.
pub static HEAP_INIT: Mutex<()> = Mutex::new(());

/// The process's heap, created on first use.
#[inline]
pub fn heap() -> &'static Heap {
    match heap_if_exists() {
        Some(h) => h,
        None => heap_slow(),
    }
}

#[cold]
fn heap_slow() -> &'static Heap {
    let _g = HEAP_INIT.lock().unwrap_or_else(|e| e.into_inner());
    let h = match heap_if_exists() {
        Some(h) => h,
        None => {
            let mem = os::reserve(std::mem::size_of::<Heap>())
                .unwrap_or_else(|| os::throw("cannot reserve memory for the heap's records")) as *mut Heap;
            const { assert!(std::mem::align_of::<Heap>() <= 4096) };
            // SAFETY: a fresh private mapping, page-aligned (enough for Heap)
            // and large enough; published only once written.
            unsafe { mem.write(Heap::new()) };
            HEAP.store(mem, Release);
            // SAFETY: just written; never freed or moved.
            unsafe { &*mem }
        }
    };
    // Signal handler, thread key and fork handlers, also under the init lock.
    crate::threads::setup(h);
    h
}

/// The heap if it exists already (for paths that must not create it).
#[inline]
pub fn heap_if_exists() -> Option<&'static Heap> {
    let p = HEAP.load(Acquire);
    // SAFETY: a non-null HEAP is a fully written Heap that lives for the rest
    // of the process.
    (!p.is_null()).then(|| unsafe { &*p })
}

impl Heap {
    fn new() -> Heap {
        let config = Config::from_env();
        let mut size = config.arena_bytes;
        let (lo, size) = loop {
            if let Some(base) = os::reserve_arena(size + PAGE_SIZE) {
                break ((base + PAGE_SIZE - 1) & !(PAGE_SIZE - 1), size);
            }
            if size <= 256 << 20 {
                os::throw("cannot reserve address space for the heap");
            }
            size /= 2;
        };
        if let Some(max) = config.max_heap {
            if max > size {
                let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
                let msg = format!(
                    "gcpin: GCPIN_MAX_HEAP={:.1} GiB: the system let gcpin reserve only {:.1} GiB of address \
                     space; the heap cannot grow past that\n",
                    gib(max),
                    gib(size)
                );
                os::write_stderr(&[&msg]);
            }
        }
        let npages = size >> PAGE_SHIFT;
        let table = os::reserve(npages * std::mem::size_of::<AtomicUsize>())
            .unwrap_or_else(|| os::throw("cannot reserve the page table")) as *const AtomicUsize;
        let pages = PageAlloc::new(npages).unwrap_or_else(|| os::throw("cannot reserve the page bitmaps"));
        let next_gc = MIN_HEAP;
        let h = Heap {
            arena_lo: lo,
            arena_size: size,
            table,
            pages: Mutex::new(pages),
            central: [const { Mcentral::new() }; NUM_SPAN_CLASSES],
            config,
            world: WorldLock::new(World::new()),
            heap_live: AtomicUsize::new(0),
            next_gc: AtomicUsize::new(next_gc),
            gc_wanted: AtomicBool::new(false),
            stats: Stats::new(),
            roots: RootSet::new(),
            finq: FinalizerQueue::new(),
            start_ns: os::nanotime(),
            links: LinkTable::new(),
            gc_disabled: AtomicUsize::new(0),
            max_heap_bytes: AtomicUsize::new(usize::MAX),
        };
        h.stats.next_gc.store(next_gc as u64, Relaxed);
        h
    }

    /// Whether `addr` lies in the arena.
    #[inline]
    pub fn in_arena(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.arena_lo) < self.arena_size
    }

    #[inline]
    fn table_entry(&self, page: usize) -> &AtomicUsize {
        // SAFETY: callers pass page < arena pages; the table covers them all.
        unsafe { &*self.table.add(page) }
    }

    /// The span covering `addr`, or null for addresses outside any span
    /// [Go: spanOf]. The span may be in any state; see `span_of_heap`.
    #[inline]
    pub fn span_of(&self, addr: usize) -> *mut Span {
        let off = addr.wrapping_sub(self.arena_lo);
        if off >= self.arena_size {
            return std::ptr::null_mut();
        }
        self.table_entry(off >> PAGE_SHIFT).load(Acquire) as *mut Span
    }

    /// The in-use span covering `addr`, or null [Go: spanOfHeap].
    #[inline]
    pub fn span_of_heap(&self, addr: usize) -> *mut Span {
        let s = self.span_of(addr);
        // SAFETY: span records are type-stable, so reading the state of a
        // possibly stale record is a read of valid memory.
        if s.is_null() || !unsafe { (*s).in_use() } {
            return std::ptr::null_mut();
        }
        s
    }

    /// Allocates a span of `npages` pages for `spanclass` and publishes it in
    /// the page table. Must be called inside the runtime (see `threads`).
    ///
    /// The span record comes from its pool, and the dirty pages of a small span
    /// are zeroed, outside the page lock: two threads refilling their caches
    /// then wait for each other only for the bitmap search. (Nobody else can
    /// use the span before we return it, and no collection can look at its
    /// pages meanwhile: we are inside the runtime.)
    pub fn alloc_span(&self, npages: usize, spanclass: u8) -> Result<*mut Span, AllocFail> {
        let s = SPAN_POOL.alloc() as *mut Span;
        if s.is_null() {
            return Err(AllocFail::NoMemory);
        }
        let give_back = |e| {
            // SAFETY: the record is ours and was never published.
            unsafe { SPAN_POOL.free(s as *mut u8) };
            Err(e)
        };
        let mut pa = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        let max = self.config.max_heap.unwrap_or(usize::MAX).min(self.max_heap_bytes.load(Relaxed));
        if (pa.in_use + npages).saturating_mul(PAGE_SIZE) > max {
            drop(pa);
            return give_back(AllocFail::Limit);
        }
        let Some((start, dirty)) = pa.alloc(npages, self.arena_lo) else {
            drop(pa);
            return give_back(AllocFail::NoMemory);
        };
        // SAFETY: `s` is a fresh zeroed record only we know of.
        unsafe { (*s).init(self.arena_lo + start * PAGE_SIZE, npages, spanclass) };
        for p in start..start + npages {
            self.table_entry(p).store(s as usize, Release);
        }
        drop(pa);
        zero_dirty_pages(self.arena_lo, start, dirty);
        Ok(s)
    }

    /// Frees an in-use span: unpublishes it, frees its pages, pin bits and record.
    ///
    /// # Safety
    /// The world is stopped (or the span was never visible to other threads, or
    /// it is a large object's span freed explicitly by a thread inside the
    /// runtime, see `alloc::free`), the span holds no allocated object, and no
    /// mcache or partial set refers to it.
    pub unsafe fn free_span(&self, s: *mut Span, pa: &mut PageAlloc) {
        // SAFETY: per the contract we have exclusive use of the span.
        unsafe {
            let start = ((*s).base - self.arena_lo) >> PAGE_SHIFT;
            let npages = (*s).npages;
            for p in start..start + npages {
                self.table_entry(p).store(0, Release);
            }
            (*s).state.store(SPAN_FREE, Release);
            pinner::free_pin_bits(s);
            pa.free(start, npages);
            SPAN_POOL.free(s as *mut u8);
        }
    }

    /// Calls `f` on every in-use span below page `high_water` (take it from the
    /// locked `PageAlloc`), in address order. `f` may free the span it is given.
    ///
    /// # Safety
    /// The world is stopped or the caller holds the page lock, so no other thread
    /// creates or frees spans meanwhile.
    pub unsafe fn for_each_span(&self, high_water: usize, mut f: impl FnMut(*mut Span)) {
        let mut p = 1;
        while p < high_water {
            let s = self.table_entry(p).load(Relaxed) as *mut Span;
            if s.is_null() {
                p += 1;
                continue;
            }
            // SAFETY: a published span is live while spans cannot be freed.
            let npages = unsafe { (*s).npages };
            f(s);
            p += npages;
        }
    }

    /// Returns free pages to the OS so that at most `retain_bytes` of heap stay
    /// committed, releasing at most `max_bytes` in this call. Returns the bytes
    /// released.
    pub fn scavenge(&self, pa: &mut PageAlloc, retain_bytes: usize, max_bytes: usize) -> usize {
        pa.scavenge(retain_bytes.div_ceil(PAGE_SIZE), max_bytes / PAGE_SIZE, self.arena_lo) * PAGE_SIZE
    }

    /// The trigger after a collection left `live` bytes.
    pub fn goal_after(&self, live: usize) -> usize {
        match self.config.gc_percent {
            Some(pct) => live.saturating_add(live / 100 * pct as usize).max(MIN_HEAP),
            None => usize::MAX,
        }
    }

    /// Checks the page-level invariants listed at the top of this file. Aborts on
    /// a violation. World stopped or page lock held.
    pub fn verify_pages(&self, pa: &PageAlloc) {
        let mut used = 0;
        let mut dirty = 0;
        for p in 1..pa.npages.min(pa.high_water + 64) {
            let s = self.table_entry(p).load(Relaxed) as *mut Span;
            let u = pa.is_used(p);
            if u != !s.is_null() {
                os::throw("heap corruption: page table and page bitmap disagree");
            }
            if u {
                used += 1;
                // SAFETY: a published span is live (world stopped / lock held).
                let (base, np, live) = unsafe { ((*s).base, (*s).npages, (*s).in_use()) };
                let addr = self.arena_lo + p * PAGE_SIZE;
                if !live || addr < base || addr >= base + np * PAGE_SIZE {
                    os::throw("heap corruption: page maps to a span that does not cover it");
                }
            }
            if pa.is_dirty(p) {
                if u {
                    os::throw("heap corruption: a used page is marked dirty-free");
                }
                dirty += 1;
            }
        }
        if used != pa.in_use || dirty != pa.free_dirty {
            os::throw("heap corruption: page counts do not match the bitmaps");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arena(pages: usize) -> (usize, PageAlloc) {
        (os::reserve(pages * PAGE_SIZE).unwrap(), PageAlloc::new(pages).unwrap())
    }

    #[test]
    fn first_fit_reuses_freed_runs_and_zeroes_dirty_pages() {
        let (lo, mut pa) = arena(1024);
        let (a, dirty_a) = pa.alloc(3, lo).unwrap();
        let (b, _) = pa.alloc(100, lo).unwrap();
        assert_eq!(a, 1, "page 0 is reserved");
        assert_eq!(b, 4);
        assert_eq!(dirty_a, 0, "fresh pages are clean");
        // SAFETY: the pages of `a` are ours; dirty them.
        unsafe { std::ptr::write_bytes((lo + a * PAGE_SIZE) as *mut u8, 0xFF, 3 * PAGE_SIZE) };
        pa.free(a, 3);
        assert_eq!(pa.free_dirty, 3);
        let (c, dirty_c) = pa.alloc(2, lo).unwrap();
        assert_eq!(c, a, "first fit takes the lowest free run");
        assert_eq!(dirty_c, 0b11, "both reused pages are reported dirty");
        zero_dirty_pages(lo, c, dirty_c);
        // SAFETY: reading pages we own.
        let bytes = unsafe { std::slice::from_raw_parts((lo + c * PAGE_SIZE) as *const u8, 2 * PAGE_SIZE) };
        assert!(bytes.iter().all(|&x| x == 0), "dirty pages are zeroed on reuse");
        assert_eq!(pa.free_dirty, 1);
        // Dirty, clean, dirty, dirty: only the pages in the mask are written.
        // SAFETY: pages 4..8 are b's, ours in this test.
        unsafe { std::ptr::write_bytes((lo + 4 * PAGE_SIZE) as *mut u8, 0xEE, 4 * PAGE_SIZE) };
        zero_dirty_pages(lo, 4, 0b1101);
        for (page, want) in [(4, 0), (5, 0xEE), (6, 0), (7, 0)] {
            // SAFETY: as above.
            let bytes = unsafe { std::slice::from_raw_parts((lo + page * PAGE_SIZE) as *const u8, PAGE_SIZE) };
            assert!(bytes.iter().all(|&x| x == want), "page {page}");
        }
        assert!(pa.alloc(2000, lo).is_none(), "a run larger than the arena fails");
        assert_eq!(pa.in_use, 102);
    }

    #[test]
    fn scavenge_releases_highest_dirty_pages_first() {
        let (lo, mut pa) = arena(4096);
        let (a, _) = pa.alloc(1000, lo).unwrap();
        pa.free(a, 1000);
        assert_eq!(pa.free_dirty, 1000);
        assert_eq!(pa.scavenge(400, 100, lo), 100, "at most max pages per call");
        let released = 100 + pa.scavenge(400, usize::MAX, lo);
        assert_eq!(released, 600);
        assert_eq!(pa.free_dirty, 400);
        assert!(pa.is_dirty(a) && !pa.is_dirty(a + 999));
        assert_eq!(pa.released_pages(), 600);
    }
}
