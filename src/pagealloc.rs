//! The page allocator: which pages of the arena are in use, which free ones
//! still hold data [Go: mpagealloc.go, written afresh as a bitmap].
//!
//! Two bitmaps over the arena's pages say which pages belong to a span
//! (`used`) and which free pages still hold data the OS has not taken back
//! (`dirty`); free pages that are not dirty read as zeros. Allocation is first
//! fit from the lowest address, starting at a hint below which no page is free.
//!
//! Invariants (checked by `Heap::verify_pages`):
//! - `in_use` counts the used bits; `free_dirty` counts the bits set in
//!   `dirty`; `dirty` bits are only set on pages that are not `used`.
//! - Page 0 is never handed out (see `heap`).
//! - A `PageAlloc` is only used under the heap's page lock.

use crate::os;
use crate::sizeclass::PAGE_SIZE;

pub struct PageAlloc {
    used: *mut u64,
    dirty: *mut u64,
    pub npages: usize,
    /// Pages below this index have been handed out at least once.
    pub high_water: usize,
    pub in_use: usize,
    pub free_dirty: usize,
    /// No free page below this index.
    hint: usize,
    /// Pages below this index were populated, or left to fault in for a
    /// large object, when the heap first grew into them (`Heap::alloc_span`,
    /// `POPULATE_AHEAD_PAGES`); at least `high_water`.
    pub populated: usize,
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
        let mut pa = PageAlloc {
            used,
            dirty,
            npages,
            high_water: 1,
            in_use: 0,
            free_dirty: 0,
            hint: 1,
            populated: 1,
            scavenged_at_ns: 0,
        };
        set_bit(pa.used, 0, true); // page 0 is reserved, see the invariants
        pa.in_use = 0;
        Some(pa)
    }

    /// Finds `n` free contiguous pages (first fit from the lowest address) and
    /// marks them used. Returns the first page and which of the pages were
    /// dirty (bit i: page start + i), for the caller to zero with
    /// `zero_dirty_pages` once it has let go of the page lock. A run longer than
    /// 64 pages (a large object) is zeroed here instead and reports none.
    pub fn alloc(&mut self, n: usize, arena_lo: usize) -> Option<(usize, u64)> {
        let mut start = self.hint;
        let mut len = 0;
        let mut i = self.hint;
        while i < self.npages {
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

    pub fn free(&mut self, start: usize, n: usize) {
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
    /// mark, ascending, where runs less than `min_gap` free pages apart count
    /// as one (the free pages between them included). Page 0, never handed
    /// out, counts as used.
    pub fn used_runs(&self, min_gap: usize, mut f: impl FnMut(usize, usize)) {
        let mut run: Option<(usize, usize)> = None;
        let mut p = 0;
        while p < self.high_water {
            // Whole free words at a time.
            // SAFETY: p < high_water <= npages: word p / 64 exists.
            if p.is_multiple_of(64) && unsafe { *self.used.add(p / 64) } == 0 {
                p += 64;
                continue;
            }
            if bit(self.used, p) {
                run = match run {
                    Some((first, end)) if p - end < min_gap => Some((first, p + 1)),
                    Some((first, end)) => {
                        f(first, end);
                        Some((p, p + 1))
                    }
                    None => Some((p, p + 1)),
                };
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
    fn used_runs_merge_short_gaps_and_skip_long_ones() {
        let (lo, mut pa) = arena(4096);
        let runs = |pa: &PageAlloc, gap| {
            let mut v = vec![];
            pa.used_runs(gap, |a, b| v.push((a, b)));
            v
        };
        assert_eq!(runs(&pa, 8), vec![(0, 1)], "nothing used but page 0, which is never handed out");
        let (a, _) = pa.alloc(10, lo).unwrap(); // 1..11
        let (b, _) = pa.alloc(200, lo).unwrap(); // 11..211
        let (c, _) = pa.alloc(3, lo).unwrap(); // 211..214
        let (d, _) = pa.alloc(1, lo).unwrap(); // 214
        assert_eq!((a, b, c, d), (1, 11, 211, 214));
        pa.free(b, 200);
        pa.free(d, 1);
        // Used: 0..11 and 211..214; free 11..211 (200 pages) and 214.
        assert_eq!(runs(&pa, 8), vec![(0, 11), (211, 214)]);
        assert_eq!(runs(&pa, 200), vec![(0, 11), (211, 214)], "a gap of exactly min_gap splits");
        assert_eq!(runs(&pa, 201), vec![(0, 214)], "a shorter gap joins");
        // A run that ends at a word boundary, a wholly free word, a run after.
        let (e, _) = pa.alloc(150, lo).unwrap(); // 11..161: reuses the gap
        assert_eq!(e, 11);
        pa.free(64, 64); // free 64..128
        assert_eq!(runs(&pa, 8), vec![(0, 64), (128, 161), (211, 214)]);
        assert_eq!(runs(&pa, 60), vec![(0, 64), (128, 214)], "the 64-page gap splits, the 50-page one joins");
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
