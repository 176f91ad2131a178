//! Fixed-size off-heap allocation for the runtime's own records [Go: fixalloc].
//!
//! Spans, specials and pin-bit arrays live outside the collected heap and outside
//! `malloc`: the collector frees them while the world is stopped, when a stopped
//! thread might hold a `malloc` lock. Records come from 256 KiB chunks reserved
//! with `os::reserve` and go back to a free list; chunks are never unmapped.
//!
//! Invariants:
//! - Memory handed out is type-stable: once a chunk holds `T`s it holds `T`s
//!   forever, so a racy reader that follows a stale pointer reads a `T` (possibly
//!   a recycled one), never unmapped memory. `is_pinned` relies on this.
//! - A record on the free list is never referenced by the heap's live structures.

use std::sync::Mutex;

use crate::os;

const CHUNK_BYTES: usize = 256 << 10;

struct FixState {
    free: *mut FreeNode,
    chunk_next: usize,
    chunk_end: usize,
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
        FixAlloc { size, state: Mutex::new(FixState { free: std::ptr::null_mut(), chunk_next: 0, chunk_end: 0 }) }
    }

    /// Returns zeroed memory for one record, or null when the OS refuses memory.
    pub fn alloc(&self) -> *mut u8 {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.free.is_null() {
            if st.chunk_next + self.size > st.chunk_end {
                let Some(base) = os::reserve(CHUNK_BYTES) else {
                    return std::ptr::null_mut();
                };
                st.chunk_next = base;
                st.chunk_end = base + CHUNK_BYTES;
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
}
