//! Span sets and the lock-free pool of their blocks [Go: mspanset.go, "runtime: manage a pool of spanSetBlocks and free them eagerly"].
//!
//! A `SpanSet` holds span pointers in fixed-size blocks chained as a stack. Blocks
//! come from one process-wide `BlockPool` and go back to it as soon as they empty,
//! so sets that swell during a burst give their memory back for other sets.
//!
//! The pool is a Treiber stack. Memory reclamation: blocks are carved from chunks
//! that are never unmapped and are only ever blocks (type-stable), so a thread
//! that read a stale head may still dereference it safely. The ABA problem (a
//! block popped and pushed back between our load and our compare-and-swap) is
//! prevented by a 16-bit version tag packed above the 48-bit pointer in the head
//! word: every successful push or pop bumps it. This is our own reasoning instead
//! of an epoch scheme, which would have to allocate per thread.
//!
//! Invariants:
//! - A block is either in the pool or in exactly one set, never both.
//! - In a set, every block but the top one is full; the top one is non-empty.
//! - A `SpanSet` itself is not synchronized: its owner (an mcentral) locks it.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};

use crate::fixalloc::FixAlloc;
use crate::span::Span;

const BLOCK_ENTRIES: usize = 509;
const PTR_BITS: u64 = 48;
const PTR_MASK: u64 = (1 << PTR_BITS) - 1;

#[repr(C)]
pub struct SetBlock {
    /// Link while the block is in the pool.
    pool_next: AtomicPtr<SetBlock>,
    /// Link to the next (full) block below this one in a set.
    below: *mut SetBlock,
    used: usize,
    spans: [*mut Span; BLOCK_ENTRIES],
}

/// A lock-free stack of free blocks.
pub struct BlockPool {
    head: AtomicU64,
    chunks: FixAlloc,
}

impl BlockPool {
    pub const fn new() -> BlockPool {
        BlockPool { head: AtomicU64::new(0), chunks: FixAlloc::new(std::mem::size_of::<SetBlock>()) }
    }

    /// A block from the pool, or a new one; null only when the OS refuses memory.
    pub fn alloc(&self) -> *mut SetBlock {
        let mut head = self.head.load(Acquire);
        loop {
            let top = (head & PTR_MASK) as *mut SetBlock;
            if top.is_null() {
                return self.chunks.alloc() as *mut SetBlock;
            }
            // SAFETY: blocks are type-stable (never unmapped), so even if `top` was
            // popped by another thread meanwhile this reads a valid atomic; the
            // tag makes the CAS fail in that case.
            let next = unsafe { (*top).pool_next.load(Relaxed) } as u64;
            let new = next | ((head >> PTR_BITS).wrapping_add(1) << PTR_BITS);
            match self.head.compare_exchange_weak(head, new, AcqRel, Acquire) {
                Ok(_) => return top,
                Err(h) => head = h,
            }
        }
    }

    /// Gives `b` back to the pool.
    ///
    /// # Safety
    /// `b` came from `alloc` and is in no set.
    pub unsafe fn free(&self, b: *mut SetBlock) {
        debug_assert!((b as u64) & !PTR_MASK == 0);
        let mut head = self.head.load(Relaxed);
        loop {
            // SAFETY: we own `b` until the CAS publishes it.
            unsafe { (*b).pool_next.store((head & PTR_MASK) as *mut SetBlock, Relaxed) };
            let new = b as u64 | ((head >> PTR_BITS).wrapping_add(1) << PTR_BITS);
            match self.head.compare_exchange_weak(head, new, Release, Relaxed) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }
}

/// The one pool all span sets draw from.
pub static BLOCK_POOL: BlockPool = BlockPool::new();

/// A stack of spans in pooled blocks.
pub struct SpanSet {
    top: *mut SetBlock,
    len: usize,
}

// SAFETY: a SpanSet is only used under its owner's lock; the blocks it links are
// owned by it.
unsafe impl Send for SpanSet {}

impl SpanSet {
    pub const fn new() -> SpanSet {
        SpanSet { top: std::ptr::null_mut(), len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `s`. Returns false only if no block could be had (out of memory).
    pub fn push(&mut self, s: *mut Span) -> bool {
        // SAFETY: `self.top` is null or a block owned by this set.
        unsafe {
            if self.top.is_null() || (*self.top).used == BLOCK_ENTRIES {
                let b = BLOCK_POOL.alloc();
                if b.is_null() {
                    return false;
                }
                (*b).below = self.top;
                (*b).used = 0;
                self.top = b;
            }
            let b = self.top;
            (*b).spans[(*b).used] = s;
            (*b).used += 1;
        }
        self.len += 1;
        true
    }

    /// Removes and returns the most recently pushed span, or null. A block that
    /// empties goes straight back to the pool.
    pub fn pop(&mut self) -> *mut Span {
        if self.top.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: the top block is owned by this set and non-empty (invariant).
        unsafe {
            let b = self.top;
            (*b).used -= 1;
            let s = (*b).spans[(*b).used];
            if (*b).used == 0 {
                self.top = (*b).below;
                BLOCK_POOL.free(b);
            }
            self.len -= 1;
            s
        }
    }

    /// Empties the set, returning every block to the pool.
    pub fn clear(&mut self) {
        while !self.top.is_null() {
            // SAFETY: blocks on the chain are owned by this set.
            unsafe {
                let b = self.top;
                self.top = (*b).below;
                BLOCK_POOL.free(b);
            }
        }
        self.len = 0;
    }

    /// Checks the invariants at the top of this file that a set can see of
    /// itself: every block but the top one is full, the top one is non-empty,
    /// and `len` counts the entries. Aborts on a violation. The owner's lock
    /// is held.
    pub fn verify(&self) {
        let mut b = self.top;
        let mut n = 0;
        // SAFETY: blocks on the chain are owned by this set.
        unsafe {
            if !b.is_null() && (*b).used == 0 {
                crate::os::throw("heap corruption: a span set's top block is empty");
            }
            while !b.is_null() {
                if b != self.top && (*b).used != BLOCK_ENTRIES {
                    crate::os::throw("heap corruption: a span set block below the top is not full");
                }
                n += (*b).used;
                b = (*b).below;
            }
        }
        if n != self.len {
            crate::os::throw("heap corruption: a span set's length does not count its entries");
        }
    }

    /// Calls `f` on every span in the set.
    pub fn for_each(&self, mut f: impl FnMut(*mut Span)) {
        let mut b = self.top;
        while !b.is_null() {
            // SAFETY: blocks on the chain are owned by this set; the first `used`
            // entries are initialized.
            unsafe {
                for i in 0..(*b).used {
                    f((*b).spans[i]);
                }
                b = (*b).below;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(i: usize) -> *mut Span {
        (0x1000 + i * 16) as *mut Span
    }

    #[test]
    fn push_pop_is_lifo_and_blocks_return_to_the_pool() {
        let mut s = SpanSet::new();
        let n = BLOCK_ENTRIES * 3 + 7;
        for i in 0..n {
            assert!(s.push(fake(i)));
        }
        assert_eq!(s.len(), n);
        let mut count = 0;
        s.for_each(|_| count += 1);
        assert_eq!(count, n);
        for i in (0..n).rev() {
            assert_eq!(s.pop(), fake(i));
        }
        assert!(s.pop().is_null());
        assert!(s.top.is_null(), "emptied blocks are freed eagerly");
        for i in 0..10 {
            s.push(fake(i));
        }
        s.clear();
        assert!(s.is_empty());
    }

    #[test]
    fn pool_survives_concurrent_alloc_and_free() {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    // Miri interprets every step: fewer rounds still interleave.
                    for i in 0..if cfg!(miri) { 300 } else { 20_000 } {
                        let b = BLOCK_POOL.alloc();
                        assert!(!b.is_null());
                        // SAFETY: we own `b` until we free it; write a marker.
                        unsafe { (*b).used = t * 1_000_000 + i };
                        held.push(b);
                        if held.len() > 8 {
                            let b = held.swap_remove(i % held.len());
                            // SAFETY: still ours: nobody else can have popped it.
                            unsafe {
                                assert!((*b).used / 1_000_000 == t, "block shared by two owners");
                                BLOCK_POOL.free(b);
                            }
                        }
                    }
                    for b in held {
                        // SAFETY: ours, as above.
                        unsafe { BLOCK_POOL.free(b) };
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
