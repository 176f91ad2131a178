//! The page allocator: which pages of the arena are in use, which free ones
//! still hold data [Go: mpagealloc.go, written afresh as a bitmap].
//!
//! Two bitmaps over the arena's pages say which pages belong to a span
//! (`used`) and which free pages still hold data the OS has not taken back
//! (`dirty`); free pages that are not dirty read as zeros. Allocation is first
//! fit from the lowest address, starting at a hint (one per kind, below) below
//! which no free page is open to the span.
//!
//! Scan and noscan spans keep to chunks of their own (`CHUNK_PAGES`, 2 MiB):
//! a span's pages are never placed in a chunk that holds pages of the other
//! kind only. Each chunk counts its pages of either kind, and a chunk with no
//! scan page holds nothing a concurrent mark has to track: `scan_runs` leaves
//! it out, and so do the write tracking's protecting and scanning
//! (`concurrent`), which then cost what the scanned objects take, not what
//! the I/O buffers beside them take. The placement is only a policy: what
//! is tracked follows the counts, which are exact whatever the placement.
//!
//! Invariants (checked by `Heap::verify_pages`):
//! - `in_use` counts the used bits; `free_dirty` counts the bits set in
//!   `dirty`; `dirty` bits are only set on pages that are not `used`.
//! - `chunks[c]` counts the used pages of chunk `c` that belong to scan
//!   spans (`[0]`) and to noscan spans (`[1]`).
//! - `hints[k]`: no free page that a span of kind `k` may take lies below.
//! - Page 0 is never handed out (see `heap`).
//! - A `PageAlloc` is only used under the heap's page lock.

use crate::os;
use crate::sizeclass::PAGE_SIZE;

/// Pages per chunk of one kind (scan or noscan spans): 2 MiB.
pub const CHUNK_PAGES: usize = 256;

/// Which spans a run of pages is for: `Scan` spans hold pointers the
/// collector follows, `Noscan` ones (`spanclass & 1`) hold none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Scan = 0,
    Noscan = 1,
}

impl Kind {
    pub fn of_spanclass(spanclass: u8) -> Kind {
        if spanclass & 1 != 0 {
            Kind::Noscan
        } else {
            Kind::Scan
        }
    }
}

pub struct PageAlloc {
    used: *mut u64,
    dirty: *mut u64,
    /// Per chunk: its used pages of scan spans, of noscan spans.
    chunks: *mut [u32; 2],
    pub npages: usize,
    /// Pages below this index have been handed out at least once.
    pub high_water: usize,
    pub in_use: usize,
    pub free_dirty: usize,
    /// Per kind: no free page a span of that kind may take below this index.
    hints: [usize; 2],
    /// Per chunk: how many of its pages, from its first, were populated or
    /// left to fault in for a large object when the heap first grew into
    /// them (`populate_for_span`).
    populated: *mut u32,
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
    pub fn new(npages: usize) -> Option<PageAlloc> {
        let bytes = npages.div_ceil(64) * 8;
        let used = os::reserve(bytes)? as *mut u64;
        let dirty = os::reserve(bytes)? as *mut u64;
        let chunks = os::reserve(npages.div_ceil(CHUNK_PAGES) * 8)? as *mut [u32; 2];
        let populated = os::reserve(npages.div_ceil(CHUNK_PAGES) * 4)? as *mut u32;
        let mut pa = PageAlloc {
            used,
            dirty,
            chunks,
            npages,
            high_water: 1,
            in_use: 0,
            free_dirty: 0,
            hints: [1, 1],
            populated,
            scavenged_at_ns: 0,
        };
        set_bit(pa.used, 0, true); // page 0 is reserved, see the invariants
        pa.in_use = 0;
        Some(pa)
    }

    /// The used pages of chunk `c`: of scan spans, of noscan spans.
    pub fn chunk_pages(&self, c: usize) -> [u32; 2] {
        // SAFETY: callers pass c < npages / CHUNK_PAGES, rounded up: the
        // table's length.
        unsafe { *self.chunks.add(c) }
    }

    /// The page below which chunk `c`'s pages were populated or left to
    /// fault in (`populate_for_span`).
    pub fn populated_to(&self, c: usize) -> usize {
        // SAFETY: as in `chunk_pages`.
        c * CHUNK_PAGES + unsafe { *self.populated.add(c) } as usize
    }

    /// The pages to make resident for a new span on `[start, start + n)`
    /// (`Heap::alloc_span`), as a range of pages: for a small span
    /// (`ahead > 0`), those of its pages that its chunks have not populated
    /// yet and up to `ahead` pages past it, in its last chunk; none for a
    /// large one, whose pages fault in as the program touches them. Either
    /// way the chunks count the span's pages as populated from now on. (Per
    /// chunk, since scan and noscan spans grow into chunks of their own.)
    pub fn populate_for_span(&mut self, start: usize, n: usize, ahead: usize) -> Option<(usize, usize)> {
        let end = start + n;
        let mut range: Option<(usize, usize)> = None;
        let mut p = start;
        while p < end {
            let c = p / CHUNK_PAGES;
            let (c_lo, c_hi) = (c * CHUNK_PAGES, ((c + 1) * CHUNK_PAGES).min(self.npages));
            let upto = end.min(c_hi);
            let frontier = self.populated_to(c);
            if upto > frontier {
                let to = if upto == end { (end + ahead).min(c_hi) } else { upto };
                if ahead > 0 {
                    let from = frontier.max(p);
                    range = Some((range.map_or(from, |r| r.0), to));
                }
                // SAFETY: c < the table's length (p < npages).
                unsafe { *self.populated.add(c) = (to - c_lo) as u32 };
            }
            p = upto;
        }
        range
    }

    /// Whether a span of kind `k` keeps out of chunk `c`: it holds pages of
    /// the other kind and none of `k`.
    #[inline]
    fn closed_to(&self, c: usize, k: Kind) -> bool {
        let counts = self.chunk_pages(c);
        counts[k as usize] == 0 && counts[1 - k as usize] != 0
    }

    /// Adds the pages of `[start, start + n)`, of kind `k`, to the counts of
    /// the chunks they lie in (takes them away if `add` is false).
    fn count(&mut self, start: usize, n: usize, k: Kind, add: bool) {
        let mut p = start;
        while p < start + n {
            let c = p / CHUNK_PAGES;
            let here = ((c + 1) * CHUNK_PAGES).min(start + n) - p;
            // SAFETY: c < the table's length (p < npages).
            let slot = unsafe { &mut (*self.chunks.add(c))[k as usize] };
            if add {
                *slot += here as u32;
            } else {
                *slot -= here as u32;
            }
            p += here;
        }
    }

    /// Finds `n` free contiguous pages for a span of kind `k` (first fit from
    /// the lowest address, outside chunks closed to `k`) and marks them
    /// used. Returns the first page and which of the pages were dirty (bit
    /// i: page start + i), for the caller to zero with `zero_dirty_pages` once
    /// it has let go of the page lock. A run longer than 64 pages (a large
    /// object) is zeroed here instead and reports none.
    pub fn alloc(&mut self, n: usize, arena_lo: usize, k: Kind) -> Option<(usize, u64)> {
        let hint = self.hints[k as usize];
        let mut start = hint;
        let mut len = 0;
        let mut i = hint;
        // The first free page this kind may take (the new hint, unless the
        // run taken begins there).
        let mut first_free = usize::MAX;
        while i < self.npages {
            // A chunk closed to this kind breaks the run; skip all of it.
            if (i == hint || i.is_multiple_of(CHUNK_PAGES)) && self.closed_to(i / CHUNK_PAGES, k) {
                len = 0;
                i = (i / CHUNK_PAGES + 1) * CHUNK_PAGES;
                continue;
            }
            // Skip whole words quickly.
            if i.is_multiple_of(64) && i + 64 <= self.npages {
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
                    first_free = first_free.min(i);
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
                first_free = first_free.min(i);
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
        // No free page this kind may take lies below the first one the
        // search met, nor, if the run taken begins there, below its end.
        self.hints[k as usize] = if start == first_free { start + n } else { first_free };
        self.count(start, n, k, true);
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

    /// Frees the `n` pages from `start`, a span of kind `k`. A chunk this
    /// empties of `k`'s pages may open to the other kind: both hints go back.
    pub fn free(&mut self, start: usize, n: usize, k: Kind) {
        for p in start..start + n {
            debug_assert!(bit(self.used, p) && !bit(self.dirty, p));
            set_bit(self.used, p, false);
            set_bit(self.dirty, p, true);
        }
        self.count(start, n, k, false);
        self.in_use -= n;
        self.free_dirty += n;
        let own = &mut self.hints[k as usize];
        *own = (*own).min(start);
        // The other kind may take the free pages of a chunk left without
        // pages of `k` (the first such chunk is enough for its hint).
        let other = 1 - k as usize;
        for c in start / CHUNK_PAGES..(start + n).div_ceil(CHUNK_PAGES) {
            if self.chunk_pages(c)[k as usize] == 0 {
                self.hints[other] = self.hints[other].min((c * CHUNK_PAGES).max(1));
                break;
            }
        }
    }

    /// Returns free dirty pages to the OS, highest addresses first, until at most
    /// `retain` pages are in use or dirty, or `max` pages were released. Returns
    /// the pages released.
    pub fn scavenge(&mut self, retain: usize, max: usize, arena_lo: usize) -> usize {
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

    /// Calls `f(first, end)` for each run of used pages below the high-water
    /// mark in the chunks that hold scan pages (the pages a concurrent mark
    /// tracks writes to), ascending, where runs less than `min_gap` free
    /// pages apart count as one (the free pages between them included).
    /// Chunks of noscan pages alone count as free; the noscan pages in a
    /// chunk with scan pages come with them. Page 0, never handed out, counts
    /// as used.
    pub fn scan_runs(&self, min_gap: usize, mut f: impl FnMut(usize, usize)) {
        let mut run: Option<(usize, usize)> = None;
        let mut p = 0;
        while p < self.high_water {
            if p.is_multiple_of(CHUNK_PAGES) && self.chunk_pages(p / CHUNK_PAGES)[Kind::Scan as usize] == 0 {
                p += CHUNK_PAGES;
                continue;
            }
            // Whole free or used words at a time (a full word lies below the
            // high water: no page past it was ever used). Over 460,000 used
            // pages (3.6 GB, the pause benchmark at 1024 MiB live): 722 us a
            // page at a time, 15 us so (best of 20), under the page lock and,
            // at a concurrent cycle's end, inside its final pause.
            if p.is_multiple_of(64) {
                // SAFETY: p < high_water <= npages: word p / 64 exists.
                match unsafe { *self.used.add(p / 64) } {
                    0 => {
                        p += 64;
                        continue;
                    }
                    u64::MAX => {
                        extend_run(&mut run, p, p + 64, min_gap, &mut f);
                        p += 64;
                        continue;
                    }
                    _ => {}
                }
            }
            if bit(self.used, p) {
                extend_run(&mut run, p, p + 1, min_gap, &mut f);
            }
            p += 1;
        }
        if let Some((first, end)) = run {
            f(first, end);
        }
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

/// Adds the used pages `[a, b)` to the run being built (`PageAlloc::scan_runs`):
/// joins it if less than `min_gap` free pages lie between, else reports the
/// run so far to `f` and starts a new one.
fn extend_run(run: &mut Option<(usize, usize)>, a: usize, b: usize, min_gap: usize, f: &mut impl FnMut(usize, usize)) {
    *run = match *run {
        Some((first, end)) if a - end < min_gap => Some((first, b)),
        Some((first, end)) => {
            f(first, end);
            Some((a, b))
        }
        None => Some((a, b)),
    };
}

/// Zeroes the pages of `dirty` (bit i: page start + i), as `PageAlloc::alloc`
/// reported them. The pages must be the caller's.
pub fn zero_dirty_pages(arena_lo: usize, start: usize, mut dirty: u64) {
    while dirty != 0 {
        let i = dirty.trailing_zeros() as usize;
        // Zero each run of dirty pages with one call.
        let run = (dirty >> i).trailing_ones() as usize;
        // SAFETY: pages start+i .. start+i+run are in the arena and the caller's.
        unsafe { std::ptr::write_bytes((arena_lo + (start + i) * PAGE_SIZE) as *mut u8, 0, run * PAGE_SIZE) };
        dirty &= !((u64::MAX >> (64 - run)) << i);
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
        let (a, dirty_a) = pa.alloc(3, lo, Kind::Scan).unwrap();
        let (b, _) = pa.alloc(100, lo, Kind::Scan).unwrap();
        assert_eq!(a, 1, "page 0 is reserved");
        assert_eq!(b, 4);
        assert_eq!(dirty_a, 0, "fresh pages are clean");
        // SAFETY: the pages of `a` are ours; dirty them.
        unsafe { std::ptr::write_bytes((lo + a * PAGE_SIZE) as *mut u8, 0xFF, 3 * PAGE_SIZE) };
        pa.free(a, 3, Kind::Scan);
        assert_eq!(pa.free_dirty, 3);
        let (c, dirty_c) = pa.alloc(2, lo, Kind::Scan).unwrap();
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
        assert!(pa.alloc(2000, lo, Kind::Scan).is_none(), "a run larger than the arena fails");
        assert_eq!(pa.in_use, 102);
    }

    #[test]
    fn scan_runs_merge_short_gaps_and_skip_long_ones() {
        let (lo, mut pa) = arena(4096);
        let runs = |pa: &PageAlloc, gap| {
            let mut v = vec![];
            pa.scan_runs(gap, |a, b| v.push((a, b)));
            v
        };
        assert_eq!(runs(&pa, 8), vec![], "no chunk holds a scan page yet");
        // All in chunk 0, whose scan pages bring page 0 (never handed out,
        // counted as used) into the first run.
        let (a, _) = pa.alloc(10, lo, Kind::Scan).unwrap(); // 1..11
        let (b, _) = pa.alloc(200, lo, Kind::Scan).unwrap(); // 11..211
        let (c, _) = pa.alloc(3, lo, Kind::Scan).unwrap(); // 211..214
        let (d, _) = pa.alloc(1, lo, Kind::Scan).unwrap(); // 214
        assert_eq!((a, b, c, d), (1, 11, 211, 214));
        pa.free(b, 200, Kind::Scan);
        pa.free(d, 1, Kind::Scan);
        // Used: 0..11 and 211..214; free 11..211 (200 pages) and 214.
        assert_eq!(runs(&pa, 8), vec![(0, 11), (211, 214)]);
        assert_eq!(runs(&pa, 200), vec![(0, 11), (211, 214)], "a gap of exactly min_gap splits");
        assert_eq!(runs(&pa, 201), vec![(0, 214)], "a shorter gap joins");
        // A run that ends at a word boundary, a wholly free word, a run after.
        let (e, _) = pa.alloc(150, lo, Kind::Scan).unwrap(); // 11..161: reuses the gap
        assert_eq!(e, 11);
        pa.free(64, 64, Kind::Scan); // free 64..128
        assert_eq!(runs(&pa, 8), vec![(0, 64), (128, 161), (211, 214)]);
        assert_eq!(runs(&pa, 60), vec![(0, 64), (128, 214)], "the 64-page gap splits, the 50-page one joins");
    }

    #[test]
    fn scan_and_noscan_spans_keep_to_chunks_of_their_own() {
        const C: usize = CHUNK_PAGES;
        let (lo, mut pa) = arena(8 * C);
        let scan_runs = |pa: &PageAlloc| {
            let mut v = vec![];
            pa.scan_runs(1, |a, b| v.push((a, b)));
            v
        };
        let (a, _) = pa.alloc(10, lo, Kind::Scan).unwrap();
        let (b, _) = pa.alloc(1, lo, Kind::Noscan).unwrap();
        let (c, _) = pa.alloc(2, lo, Kind::Scan).unwrap();
        assert_eq!((a, b, c), (1, C, 11), "the noscan span opens chunk 1; the scan one stays in chunk 0");
        assert_eq!(pa.chunk_pages(0), [12, 0]);
        assert_eq!(pa.chunk_pages(1), [0, 1]);
        assert_eq!(scan_runs(&pa), vec![(0, 13)], "the noscan chunk is left out");
        // A scan run longer than a chunk does not cross the noscan chunk.
        let (d, _) = pa.alloc(C + 10, lo, Kind::Scan).unwrap();
        assert_eq!(d, 2 * C);
        assert_eq!((pa.chunk_pages(2), pa.chunk_pages(3)), ([C as u32, 0], [10, 0]));
        // Noscan spans fill their chunk before opening another, and keep out
        // of chunk 3, which holds scan pages.
        let (e, _) = pa.alloc(C - 1, lo, Kind::Noscan).unwrap();
        let (f, _) = pa.alloc(1, lo, Kind::Noscan).unwrap();
        assert_eq!((e, f), (C + 1, 4 * C));
        assert_eq!(scan_runs(&pa), vec![(0, 13), (2 * C, 3 * C + 10)]);
        // Chunk 0 emptied of scan spans opens to noscan ones.
        pa.free(a, 10, Kind::Scan);
        pa.free(c, 2, Kind::Scan);
        assert_eq!(pa.chunk_pages(0), [0, 0]);
        let (g, _) = pa.alloc(4, lo, Kind::Noscan).unwrap();
        assert_eq!(g, 1);
        let (h, _) = pa.alloc(4, lo, Kind::Scan).unwrap();
        assert_eq!(h, 3 * C + 10, "chunk 0 holds noscan pages now");
        assert_eq!(scan_runs(&pa), vec![(2 * C, 3 * C + 14)]);
        pa.free(d, C + 10, Kind::Scan);
        assert_eq!((pa.chunk_pages(2), pa.chunk_pages(3)), ([0, 0], [4, 0]));
        assert_eq!(scan_runs(&pa), vec![(3 * C + 10, 3 * C + 14)]);
        assert_eq!(pa.in_use, 4 + C + 1 + 4);
    }

    #[test]
    fn scavenge_releases_highest_dirty_pages_first() {
        let (lo, mut pa) = arena(4096);
        let (a, _) = pa.alloc(1000, lo, Kind::Scan).unwrap();
        pa.free(a, 1000, Kind::Scan);
        assert_eq!(pa.free_dirty, 1000);
        assert_eq!(pa.scavenge(400, 100, lo), 100, "at most max pages per call");
        let released = 100 + pa.scavenge(400, usize::MAX, lo);
        assert_eq!(released, 600);
        assert_eq!(pa.free_dirty, 400);
        assert!(pa.is_dirty(a) && !pa.is_dirty(a + 999));
        assert_eq!(pa.released_pages(), 600);
    }
}
