//! Pin bits: two bits per object of a span, read as a small count [Go:
//! pinnerBits in mheap.go]. The array of a span is allocated the first time one
//! of its objects is pinned (`pinner`), from an off-heap pool, and freed with
//! the span.
//!
//! | bits | meaning                                                        |
//! |------|----------------------------------------------------------------|
//! | 0    | not pinned                                                     |
//! | 1, 2 | pinned once, twice                                             |
//! | 3    | pinned `2 + count` times; the count lives in a pin-counter special |
//!
//! Invariants: the arrays are type-stable (a freed one is only ever reused as
//! another span's pin bits), so a racy read of a stale array reads valid
//! memory; the bits of free slots are 0.

use std::sync::atomic::AtomicU64;

use crate::fixalloc::FixAlloc;
use crate::sizeclass::BITMAP_WORDS;

/// Two bits per object: 32 objects per word.
pub struct PinBits {
    pub words: [AtomicU64; BITMAP_WORDS * 2],
}

static PINBITS_POOL: FixAlloc = FixAlloc::new(std::mem::size_of::<PinBits>());

/// The two bits of one object.
pub const STATE_MASK: u64 = 3;

/// The word and the shift of object `idx`'s bits.
#[inline]
pub fn slot(idx: usize) -> (usize, u32) {
    (idx / 32, (idx % 32) as u32 * 2)
}

/// A zeroed array, or null when the pool has no memory.
pub fn alloc() -> *mut PinBits {
    PINBITS_POOL.alloc() as *mut PinBits
}

/// Gives an array back to the pool.
///
/// # Safety
/// `pb` came from `alloc`, no span refers to it any more, and none of its bits
/// is set.
pub unsafe fn free(pb: *mut PinBits) {
    // SAFETY: per the contract.
    unsafe { PINBITS_POOL.free(pb as *mut u8) };
}
