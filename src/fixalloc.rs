//! Fixed-size off-heap allocation for the runtime's own records [Go: fixalloc].
//!
//! Spans, specials and pin-bit arrays live outside the collected heap and outside
//! `malloc`: the collector frees them while the world is stopped, when a stopped
//! thread might hold a `malloc` lock. Records come from chunks reserved with
//! `os::reserve` and go back to a free list; chunks are never unmapped. A
//! pool's chunks double in size, from 256 KiB up to 64 MiB (reserved, not
//! committed: pages are touched as records are handed out), so a growing heap
//! maps a new chunk rarely: an `mmap` waits for the address-space lock,
//! which the write tracker's calls hold for up to a millisecond at a time
//! during a concurrent cycle (with 256 KiB chunks the pause benchmark's
//! request loop, making spans and pin bits, waited 5-8 ms so at 256 MiB).
//!
//! Invariants:
//! - Memory handed out is type-stable: once a chunk holds `T`s it holds `T`s
//!   forever, so a racy reader that follows a stale pointer reads a `T` (possibly
//!   a recycled one), never unmapped memory. `is_pinned` relies on this.
//! - A record on the free list is never referenced by the heap's live structures.

use std::sync::Mutex;

use crate::os;

const FIRST_CHUNK_BYTES: usize = 256 << 10;
const MAX_CHUNK_BYTES: usize = 64 << 20;

struct FixState {
    free: *mut FreeNode,
    chunk_next: usize,
    chunk_end: usize,
    /// Bytes reserved so far: the next chunk's size, within the bounds above.
    reserved: usize,
}

struct FreeNode {
    next: *mut FreeNode,
}

/// A pool of `size`-byte records.
pub struct FixAlloc {
    size: usize,
    state: Mutex<FixState>,
}

// SAFETY: the raw pointers in FixState are only touched with the mutex held and
// point into chunks that are never unmapped.
unsafe impl Send for FixState {}

impl FixAlloc {
    /// A pool for records of `size` bytes, aligned to 64 bytes.
    pub const fn new(size: usize) -> FixAlloc {
        let size = (size + 63) & !63;
        FixAlloc {
            size,
            state: Mutex::new(FixState { free: std::ptr::null_mut(), chunk_next: 0, chunk_end: 0, reserved: 0 }),
        }
    }

    /// Returns zeroed memory for one record, or null when the OS refuses memory.
    pub fn alloc(&self) -> *mut u8 {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.free.is_null() {
            if st.chunk_next + self.size > st.chunk_end {
                let bytes = st.reserved.clamp(FIRST_CHUNK_BYTES, MAX_CHUNK_BYTES);
                let Some(base) = os::reserve(bytes) else {
                    return std::ptr::null_mut();
                };
                st.chunk_next = base;
                st.chunk_end = base + bytes;
                st.reserved += bytes;
            }
            let p = st.chunk_next as *mut u8;
            st.chunk_next += self.size;
            return p; // fresh chunk memory is already zero
        }
        let node = st.free;
        // SAFETY: nodes on the free list are records of this pool that nobody
        // references; reading the link is reading our own bookkeeping.
        st.free = unsafe { (*node).next };
        drop(st);
        let p = node as *mut u8;
        // SAFETY: `p` is a whole record of `self.size` bytes owned by the caller now.
        unsafe { std::ptr::write_bytes(p, 0, self.size) };
        p
    }

    /// Returns a record to the pool.
    ///
    /// # Safety
    /// `p` came from `self.alloc()` and nothing uses it any more.
    pub unsafe fn free(&self, p: *mut u8) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let node = p as *mut FreeNode;
        // SAFETY: the caller gives the record up; its first word becomes the link.
        unsafe { (*node).next = st.free };
        st.free = node;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_zeroed_distinct_and_reused() {
        let pool = FixAlloc::new(100);
        let a = pool.alloc();
        let b = pool.alloc();
        assert!(!a.is_null() && !b.is_null() && a != b);
        assert_eq!(a as usize % 64, 0);
        // SAFETY: `a` is a 128-byte record we own.
        unsafe { std::ptr::write_bytes(a, 0xAB, 100) };
        // SAFETY: `a` came from this pool and is no longer used.
        unsafe { pool.free(a) };
        let c = pool.alloc();
        assert_eq!(c, a, "the freed record is reused first");
        // SAFETY: `c` is a live record of at least 100 bytes.
        let bytes = unsafe { std::slice::from_raw_parts(c, 100) };
        assert!(bytes.iter().all(|&x| x == 0), "reused records are zeroed");
        assert!(pool.alloc() != b, "a record in use is not handed out again");
    }

    #[test]
    fn chunks_double_so_a_large_pool_maps_few() {
        let pool = FixAlloc::new(256);
        let mut chunks = 0;
        let mut last = 0usize;
        for _ in 0..100_000 {
            let p = pool.alloc() as usize;
            assert!(p != 0);
            if p != last + 256 {
                chunks += 1;
            }
            last = p;
        }
        // 25 MB of records: 256 KiB, 256 KiB, 512 KiB, ... 16 MiB.
        assert!(chunks <= 8, "{chunks} chunks for 100,000 records");
        assert_eq!(pool.state.lock().unwrap().reserved, 32 << 20);
    }
}
