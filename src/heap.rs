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
//! - The mark-byte side table (`marks`) has one byte per `MARK_GRANULE` bytes
//!   of the arena, reserved with it; a span's mark bytes are its pages' part
//!   of it (`Span::marks`), written once when the span is made, so that no
//!   marker's store lands on the kernel's zero page (`Span::touch_marks`).
//!   Like the page table it is the runtime's own memory, outside the arena
//!   and never scanned.
//! - A chunk's pages past the span pages in it, below its populated
//!   frontier (`PageAlloc::populated_to`), were made resident ahead of use
//!   (`POPULATE_AHEAD_PAGES`) and are free and zero.
//! - Page 0 is never handed out: the heap's records hold the arena base, and no
//!   word that holds it may be mistaken for a pointer to an object.
//! - The `Heap` lives in a mapping of its own, which no cycle scans (see `HEAP`):
//!   the runtime's memory is never a root.
//! - The page lock (`pages`) is only taken inside the runtime (never by a thread
//!   that can be stopped while holding it), or by the collector while the world
//!   is stopped.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Mutex;

use crate::cleanup::CleanupTable;
use crate::config::Config;
use crate::finq::FinalizerQueue;
use crate::fixalloc::FixAlloc;
use crate::mcentral::Mcentral;
use crate::os;
use crate::pacer::Pacer;
use crate::pagealloc::{zero_dirty_pages, Kind, PageAlloc, CHUNK_PAGES};
use crate::roots::RootSet;
use crate::sizeclass::NUM_SPAN_CLASSES;
use crate::sizeclass::{PAGE_SHIFT, PAGE_SIZE};
use crate::span::{Span, MARK_GRANULE, SPAN_FREE};
use crate::stats::Stats;

/// Why a span could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocFail {
    /// `GCPIN_MAX_HEAP` would be exceeded: a collection may help.
    Limit,
    /// No room in the arena or the OS refused memory.
    NoMemory,
}

/// The address every zero-size allocation returns [Go: zerobase]. It is not in
/// the heap, so it is never freed, and pinning it changes nothing.
#[repr(C, align(16))]
pub struct ZeroBase([u8; 16]);
pub static ZERO_BASE: ZeroBase = ZeroBase([0; 16]);

#[inline]
pub fn zero_base() -> usize {
    &ZERO_BASE as *const ZeroBase as usize
}

/// Where a pointer points [Go: findObject's answer].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The shared zero-size address.
    Zero,
    /// Object `idx` of span `s`, allocated.
    Object(*mut Span, usize),
}

/// Why a pointer is at no object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindError {
    Null,
    /// Outside the arena: memory the collector does not manage.
    NotGcPointer,
    /// In the arena, but at no allocated object (a free slot, a free page).
    NotAllocated,
}

/// When the heap first grows into the arena's untouched pages, they are made
/// resident this many (64 KiB) past a new span at a time, in one system call,
/// rather than by one page fault at the first write to each 4 KiB. (GCBench
/// trees, whose heap grows to 155 MiB: 44,000 page faults -> 4,400, system
/// time 103-109 -> 69-77 ms, `perf stat -r 3`, with 64 pages ahead; 8 ahead
/// makes as few faults, 4,323 against 4,322, since every page is populated
/// either way, only in more calls.) Why not more at a time: on a virtual
/// machine whose host takes back the guest's free memory (virtio-balloon
/// free page reporting, as on the machine these figures come from), a first
/// touch costs 20-190 us per 4 KiB, and the request that populates waits for
/// it: 64 pages ahead took 2-9 ms a call, the longest requests of the pause
/// benchmark; 8 ahead puts the same cost on 8 times as many requests, a
/// fraction each. Populated pages not used yet are free and zero, and not
/// `dirty`: the scavenger never sees them, so at most this many per chunk
/// (`pagealloc::CHUNK_PAGES`) stay resident unused.
pub const POPULATE_AHEAD_PAGES: usize = 8;

/// `populate` works in pieces of this many bytes (4 OS pages): a stop of the
/// world waits for one piece at most (64 KiB took up to 3 ms on the host
/// above).
const POPULATE_PIECE: usize = 16 << 10;

/// Set from the start of a stop of the world to the restart (by
/// `stopworld`). A thread inside the runtime defers its stop until it leaves,
/// and a system call ends before its thread sees the signal, so long work
/// there (populating pages) checks it and cuts itself short: a stop then
/// waits for one piece at most, not for the whole range.
pub static STOP_WANTED: AtomicBool = AtomicBool::new(false);

/// Populates `[lo, hi)` (page-aligned) piece by piece (`os::populate`),
/// giving up when a stop of the world is wanted: the pages left out are
/// committed by faults, as without populating.
fn populate_unless_stopping(lo: usize, hi: usize) {
    let mut at = lo;
    while at < hi && !STOP_WANTED.load(Relaxed) {
        let end = hi.min(at + POPULATE_PIECE);
        os::populate(at, end - at);
        at = end;
    }
}

/// Off-heap storage for span records.
pub static SPAN_POOL: FixAlloc = FixAlloc::new(std::mem::size_of::<Span>());

/// The heap: the arena, its pages and spans, and the state every allocation
/// reads (the pacer, the limit, the configuration); with the finalizer queue,
/// the root ranges and the statistics. What names the layers above it (the
/// registry of threads, the marker, the disappearing links) is in `Runtime`.
pub struct Heap {
    pub arena_lo: usize,
    pub arena_size: usize,
    table: *const AtomicUsize,
    /// The mark-byte side table: `arena_size / MARK_GRANULE` bytes.
    marks: usize,
    /// Two bitmaps, interleaved a word of each (`2 i`: pages `64 i ..`, then
    /// `2 i + 1`): the spans with extras, a bit set at the first page of a span
    /// that has pin bits or special records (`Span::flag_extras`) and cleared
    /// when it is freed, so that the pauses visit those spans only, not every
    /// span; and, for the final pause of a concurrent cycle, the spans whose
    /// pinned objects the cycle marked and that nobody pinned since
    /// (`Span::set_walked`, cleared by `Span::note_extras` and at that pause).
    extras: *const AtomicU64,
    pub pages: Mutex<PageAlloc>,
    pub central: [Mcentral; NUM_SPAN_CLASSES],
    pub config: Config,
    /// When the next collection starts.
    pub pacer: Pacer,
    pub stats: Stats,
    pub roots: RootSet,
    pub finq: FinalizerQueue,
    /// The ids of the cleanups not yet run (`gc_add_cleanup`).
    pub cleanups: CleanupTable,
    pub start_ns: u64,
    /// While nonzero no collection runs, explicit or automatic (libgc's
    /// `GC_disable`/`GC_enable` count; see `gc::collect_when`).
    pub gc_disabled: AtomicUsize,
    /// A heap limit set at run time (libgc's `GC_set_max_heap_size`), in
    /// bytes, beside `config.max_heap`; `usize::MAX` when none. The smaller
    /// of the two applies.
    pub max_heap_bytes: AtomicUsize,
    /// Set while a concurrent mark runs with the world started: no span may
    /// be freed then (an explicit free leaves a large object's span to the
    /// sweep), since markers may be reading it.
    pub marking_concurrently: std::sync::atomic::AtomicBool,
    /// The sweep generation [Go: mheap.sweepgen]: raised by 2 at the end of
    /// a concurrent cycle's final pause, which leaves every span to be swept
    /// with the world running (see `sweep`); new spans are born swept.
    pub sweepgen: std::sync::atomic::AtomicU32,
    /// Spans left to sweep after a concurrent cycle (see `sweep`).
    pub unswept: AtomicUsize,
    /// In-use spans (changed under the page lock).
    pub spans_in_use: AtomicUsize,
}

// SAFETY: `table` and `extras` point into mappings owned by the heap for the
// life of the process (`extras` is used through atomics); every other field is
// Sync on its own.
unsafe impl Sync for Heap {}
// SAFETY: as above.
unsafe impl Send for Heap {}

impl Heap {
    /// A heap configured by `config`. The process's heap is made once, from
    /// the environment (`heap()`); tests make their own.
    pub fn new(mut config: Config) -> Heap {
        let mut size = config.arena_bytes;
        if os::running_on_valgrind() {
            // Memcheck keeps state for every page of a reservation, at about
            // 2 s per GiB on this machine's kind when it is made: 4 TiB would
            // take hours, the old 32 GiB took 78 s for each test process.
            size = size.min(crate::config::VALGRIND_ARENA);
        }
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
        // Fewer TLB misses for a mark that visits the heap in random order;
        // see `GCPIN_HUGEPAGES` in the README for the costs. Where the kernel
        // will not give huge pages, the setting is dropped (and with it the
        // release it changes, `gc::automatic_release`).
        config.huge_pages = config.huge_pages && os::huge_pages_available() && os::advise_huge_pages(lo, size);
        let npages = size >> PAGE_SHIFT;
        let table = os::reserve(npages * std::mem::size_of::<AtomicUsize>())
            .unwrap_or_else(|| os::throw("cannot reserve the page table")) as *const AtomicUsize;
        let pages = PageAlloc::new(npages).unwrap_or_else(|| os::throw("cannot reserve the page bitmaps"));
        let marks = os::reserve(size / MARK_GRANULE).unwrap_or_else(|| os::throw("cannot reserve the mark bytes"));
        let extras = os::reserve(npages.div_ceil(64) * 16)
            .unwrap_or_else(|| os::throw("cannot reserve the bitmap of spans with extras"))
            as *const AtomicU64;
        Heap {
            arena_lo: lo,
            arena_size: size,
            table,
            marks,
            extras,
            pages: Mutex::new(pages),
            central: [const { Mcentral::new() }; NUM_SPAN_CLASSES],
            pacer: Pacer::new(config.gc_percent),
            config,
            stats: Stats::new(),
            roots: RootSet::new(),
            finq: FinalizerQueue::new(),
            cleanups: CleanupTable::new(),
            start_ns: os::nanotime(),
            gc_disabled: AtomicUsize::new(0),
            max_heap_bytes: AtomicUsize::new(usize::MAX),
            marking_concurrently: std::sync::atomic::AtomicBool::new(false),
            sweepgen: std::sync::atomic::AtomicU32::new(0),
            unswept: AtomicUsize::new(0),
            spans_in_use: AtomicUsize::new(0),
        }
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

    /// The span published for page `p` of the arena, or null (any state; see
    /// `span_of_heap`).
    #[inline]
    pub fn span_at_page(&self, p: usize) -> *mut Span {
        self.table_entry(p).load(Acquire) as *mut Span
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

    /// The allocated object that contains `ptr` (interior pointers allowed)
    /// [Go: findObject]. Inside the runtime, so the answer stays true until
    /// the caller leaves it.
    pub fn find_object(&self, ptr: usize) -> Result<Target, FindError> {
        if ptr == 0 {
            return Err(FindError::Null);
        }
        if ptr == zero_base() {
            return Ok(Target::Zero);
        }
        if !self.in_arena(ptr) {
            return Err(FindError::NotGcPointer);
        }
        let s = self.span_of_heap(ptr);
        if s.is_null() {
            return Err(FindError::NotAllocated);
        }
        // SAFETY: an in-use span; its geometry does not change while in use.
        let idx = unsafe { (*s).index_of(ptr) };
        if !self.object_live(s, idx) {
            return Err(FindError::NotAllocated);
        }
        Ok(Target::Object(s, idx))
    }

    /// Whether object `idx` of in-use span `s` is allocated and stays so: in a
    /// span left to the sweep after a concurrent cycle, only the objects the
    /// cycle marked are (the sweep frees the rest); inside the runtime, where
    /// no cycle starts meanwhile. A span being swept is waited for.
    pub fn object_live(&self, s: *mut Span, idx: usize) -> bool {
        let sg = self.sweepgen.load(Acquire);
        loop {
            // SAFETY: an in-use span record (type-stable); the mark bytes
            // and alloc bits are read as atomics.
            unsafe {
                let before = (*s).sweepgen.load(Acquire);
                if before == sg {
                    return (*s).is_allocated(idx);
                }
                if before == sg.wrapping_sub(2) {
                    let live = (*s).is_allocated(idx) && (*s).is_marked(idx);
                    // Unchanged meanwhile: no sweeper touched the span.
                    if (*s).sweepgen.load(Acquire) == before {
                        return live;
                    }
                    continue;
                }
            }
            std::hint::spin_loop();
            std::thread::yield_now();
        }
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
        let Some((start, dirty)) = pa.alloc(npages, self.arena_lo, Kind::of_spanclass(spanclass)) else {
            drop(pa);
            return give_back(AllocFail::NoMemory);
        };
        // `s` is a fresh zeroed record only we know of; `marks` is the side
        // table's part for its pages, cleared by the sweep that freed them.
        let marks = (self.marks + start * (PAGE_SIZE / MARK_GRANULE)) as *const std::sync::atomic::AtomicU8;
        let sweepgen = self.sweepgen.load(Acquire);
        // SAFETY: as above.
        unsafe {
            (*s).init(self.arena_lo + start * PAGE_SIZE, npages, spanclass, marks, sweepgen);
            (*s).init_extras(self.extras.add(2 * (start / 64)), 1 << (start % 64));
        }
        for p in start..start + npages {
            self.table_entry(p).store(s as usize, Release);
        }
        self.spans_in_use.fetch_add(1, Relaxed);
        // A small-object span on pages its chunk has not populated yet:
        // populate them and up to `POPULATE_AHEAD_PAGES` beyond, outside the
        // lock. A large object's pages stay unpopulated, committed as the
        // program touches them, as with malloc (a sparse 40 GiB array must
        // not be made resident); the pages ahead are populated by the next
        // small span.
        let ahead = if spanclass >> 1 == 0 { 0 } else { POPULATE_AHEAD_PAGES };
        let populate = pa.populate_for_span(start, npages, ahead);
        drop(pa);
        if let Some((from, to)) = populate {
            populate_unless_stopping(self.arena_lo + from * PAGE_SIZE, self.arena_lo + to * PAGE_SIZE);
        }
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
            (*s).unflag_extras();
            crate::span::free_pin_bits(s);
            pa.free(start, npages, Kind::of_spanclass((*s).spanclass));
            self.spans_in_use.fetch_sub(1, Relaxed);
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

    /// Calls `f` on every in-use span below page `high_water` that has pin
    /// bits or special records (and maybe on some that had them), in address
    /// order; with `skip_walked`, not on those a concurrent cycle marked and
    /// nobody pinned since (see `extras`).
    ///
    /// # Safety
    /// As `for_each_span`; `f` must not free spans.
    pub unsafe fn for_each_span_with_extras(&self, high_water: usize, skip_walked: bool, mut f: impl FnMut(*mut Span)) {
        for wi in 0..high_water.div_ceil(64) {
            // SAFETY: the bitmaps cover every page.
            let mut bits = unsafe { (*self.extras.add(2 * wi)).load(SeqCst) };
            if skip_walked {
                // SAFETY: as above.
                bits &= !unsafe { (*self.extras.add(2 * wi + 1)).load(SeqCst) };
            }
            while bits != 0 {
                let p = wi * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let s = self.span_at_page(p);
                // SAFETY: spans are not freed meanwhile (the contract); a
                // bit is set only at a span's first page.
                if !s.is_null() && unsafe { (*s).in_use() && (*s).base == self.arena_lo + p * PAGE_SIZE } {
                    f(s);
                }
            }
        }
    }

    /// Forgets which spans a concurrent cycle walked (see `extras`). World
    /// stopped.
    pub fn forget_walked(&self, high_water: usize) {
        for wi in 0..high_water.div_ceil(64) {
            // SAFETY: the bitmaps cover every page.
            unsafe { (*self.extras.add(2 * wi + 1)).store(0, Relaxed) };
        }
    }

    /// Calls `f` on every in-use span whose first page lies in `[lo, hi)`, in
    /// address order: threads given disjoint ranges see disjoint spans, and
    /// ranges that tile `[0, high_water)` see every span once.
    ///
    /// # Safety
    /// As `for_each_span`; `f` must not free spans.
    pub unsafe fn for_each_span_starting_in(&self, lo: usize, hi: usize, mut f: impl FnMut(*mut Span)) {
        let mut p = lo.max(1);
        while p < hi {
            let s = self.table_entry(p).load(Relaxed) as *mut Span;
            if s.is_null() {
                p += 1;
                continue;
            }
            // SAFETY: a published span is live while spans cannot be freed.
            let (first, npages) = unsafe { (((*s).base - self.arena_lo) >> PAGE_SHIFT, (*s).npages) };
            if first == p {
                f(s);
            }
            p = first + npages;
        }
    }

    /// Returns free pages to the OS so that at most `retain_bytes` of heap stay
    /// committed, releasing at most `max_bytes` in this call. Returns the bytes
    /// released.
    pub fn scavenge(&self, pa: &mut PageAlloc, retain_bytes: usize, max_bytes: usize) -> usize {
        pa.scavenge(retain_bytes.div_ceil(PAGE_SIZE), max_bytes / PAGE_SIZE, self.arena_lo) * PAGE_SIZE
    }

    /// Checks the page-level invariants listed at the top of this file. Aborts on
    /// a violation. World stopped or page lock held.
    pub fn verify_pages(&self, pa: &PageAlloc) {
        let mut used = 0;
        let mut dirty = 0;
        let mut chunk = [0u32; 2];
        let end = pa.npages.min(pa.high_water + 64);
        for p in 1..end {
            let s = self.table_entry(p).load(Relaxed) as *mut Span;
            let u = pa.is_used(p);
            if u == s.is_null() {
                os::throw("heap corruption: page table and page bitmap disagree");
            }
            if u {
                used += 1;
                // SAFETY: a published span is live (world stopped / lock held).
                let (base, np, live, class) = unsafe { ((*s).base, (*s).npages, (*s).in_use(), (*s).spanclass) };
                let addr = self.arena_lo + p * PAGE_SIZE;
                if !live || addr < base || addr >= base + np * PAGE_SIZE {
                    os::throw("heap corruption: page maps to a span that does not cover it");
                }
                chunk[Kind::of_spanclass(class) as usize] += 1;
            }
            if (p + 1).is_multiple_of(CHUNK_PAGES) || p + 1 == end {
                if chunk != pa.chunk_pages(p / CHUNK_PAGES) {
                    os::throw("heap corruption: a chunk's page counts do not match its spans");
                }
                chunk = [0; 2];
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

    /// How many of the `n` pages of 4 KiB from `lo` are resident (`mincore`).
    fn resident(lo: usize, n: usize) -> usize {
        let mut vec = vec![0u8; n];
        // SAFETY: mincore writes one byte per page into `vec`; the range is
        // inside the heap's reservation.
        assert_eq!(unsafe { libc::mincore(lo as *mut libc::c_void, n * 4096, vec.as_mut_ptr()) }, 0);
        vec.iter().filter(|&&b| b & 1 != 0).count()
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no madvise or mincore")]
    fn growing_into_untouched_pages_populates_ahead_once() {
        let h = Box::new(Heap::new(Config::from_lookup(|_| None, |_| {})));
        let os_pages = |pages: usize| pages * PAGE_SIZE / 4096;
        // Page 0 is never handed out: the first span is page 1.
        let s = h.alloc_span(1, 2).unwrap();
        // SAFETY: the span was just published and is ours.
        let base = unsafe { (*s).base };
        assert_eq!(base, h.arena_lo + PAGE_SIZE);
        let ahead = os_pages(1 + POPULATE_AHEAD_PAGES);
        assert_eq!(resident(base, ahead), ahead, "the span and the pages ahead of it are resident");
        assert_eq!(resident(base + ahead * 4096, 64), 0, "nothing past the populated pages");
        assert_eq!(h.pages.lock().unwrap().populated_to(0), 2 + POPULATE_AHEAD_PAGES);
        // Spans inside the populated pages populate nothing more.
        let t = h.alloc_span(8, 2).unwrap();
        assert_eq!(h.pages.lock().unwrap().populated_to(0), 2 + POPULATE_AHEAD_PAGES);
        // A large object past them: its pages are not populated (only the
        // ones that were ahead already are resident).
        let big = CHUNK_PAGES;
        let u = h.alloc_span(big, 0).unwrap();
        // SAFETY: as above.
        let (u_lo, u_end) = unsafe { ((*u).base, (*u).base + (*u).npages * PAGE_SIZE) };
        let u_end_page = (u_end - h.arena_lo) / PAGE_SIZE;
        assert_eq!(u_end_page, CHUNK_PAGES + 10, "it reaches into the second chunk");
        let pa = h.pages.lock().unwrap();
        assert_eq!((pa.populated_to(0), pa.populated_to(1)), (CHUNK_PAGES, u_end_page));
        drop(pa);
        assert!(resident(u_lo, os_pages(big)) <= ahead, "a large object is committed as it is touched");
        // The next small span populates from its own first page.
        let v = h.alloc_span(1, 2).unwrap();
        // SAFETY: as above.
        let v_lo = unsafe { (*v).base };
        assert_eq!(v_lo, u_end);
        assert_eq!(resident(v_lo, ahead), ahead);
        let mut pa = h.pages.lock().unwrap();
        for s in [s, t, u, v] {
            // SAFETY: no object is allocated in them and nobody else knows them.
            unsafe { h.free_span(s, &mut pa) };
        }
    }
}
