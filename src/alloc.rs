//! Allocation: from a size to an object [Go: mallocgc].
//!
//! Small sizes (up to 32 KiB) are rounded to a size class and served by the
//! calling thread's mcache; larger ones get a span of their own from the page
//! heap. Every object comes back zeroed and 16-byte aligned.
//!
//! The functions here run inside the runtime (the caller holds an `InRuntime`
//! guard). They never collect: when the heap crosses its trigger they set
//! `gc_wanted`, and when the heap limit stops them they return `AllocFail::Limit`;
//! the caller collects once it has left the runtime (see `capi`).

use std::sync::atomic::Ordering::*;

use crate::heap::{AllocFail, Heap};
use crate::mcache::Mcache;
use crate::sizeclass::PAGE_SIZE;
use crate::sizeclass::{self, MAX_SMALL_SIZE};
use crate::threads::InRuntime;

pub use crate::heap::zero_base;

/// Allocates `size > 0` bytes; `noscan` objects are never scanned for pointers.
#[inline(always)]
pub fn malloc(g: &InRuntime, h: &Heap, size: usize, noscan: bool) -> Result<usize, AllocFail> {
    if size <= MAX_SMALL_SIZE {
        let class = sizeclass::size_to_class(size);
        let spc = class << 1 | noscan as usize;
        // SAFETY: the guard's thread is the caller; its mcache is only touched by
        // itself inside the runtime (or by a collector, which cannot run now).
        let mc = unsafe { &mut *(*g.thread()).mcache.get() };
        let (addr, needzero) = mc.alloc(h, spc)?;
        if needzero {
            zero_object(addr, sizeclass::CLASS_SIZE[class] as usize);
        }
        Ok(addr)
    } else {
        // SAFETY: as above.
        malloc_large(h, unsafe { &mut *(*g.thread()).mcache.get() }, size, noscan)
    }
}

/// The allocation fast path: a small size whose class has a free slot in the
/// thread's cached word. Returns 0 when anything more is needed (a refill, a
/// large object, size 0); the caller then goes through `malloc`. Makes no
/// call — zeroing of up to 256 bytes is inline — and cannot panic.
#[inline(always)]
pub fn malloc_fast(g: &InRuntime, size: usize, noscan: bool) -> usize {
    if size.wrapping_sub(1) >= MAX_SMALL_SIZE {
        return 0;
    }
    let class = sizeclass::size_to_class(size);
    // SAFETY: as in `malloc`.
    let mc = unsafe { &mut *(*g.thread()).mcache.get() };
    match mc.alloc_fast(class << 1 | noscan as usize) {
        Some((addr, needzero)) => {
            if needzero {
                // SAFETY: class < NUM_CLASSES (size_to_class of a small size).
                zero_object(addr, unsafe { *sizeclass::CLASS_SIZE.get_unchecked(class) } as usize);
            }
            addr
        }
        None => 0,
    }
}

/// Zeroes a recycled slot: inline 16-byte stores for small objects (a call to
/// memset costs more than the stores), memset for the rest.
#[inline(always)]
fn zero_object(addr: usize, size: usize) {
    if size <= 256 {
        let mut p = addr;
        while p < addr + size {
            // SAFETY: the slot [addr, addr + size) is ours and 16-byte aligned;
            // sizes are multiples of 16.
            unsafe { (p as *mut u128).write(0) };
            p += 16;
        }
    } else {
        // SAFETY: as above.
        unsafe { std::ptr::write_bytes(addr as *mut u8, 0, size) };
    }
}

#[inline(never)]
fn malloc_large(h: &Heap, mc: &mut Mcache, size: usize, noscan: bool) -> Result<usize, AllocFail> {
    let npages = size.div_ceil(PAGE_SIZE);
    if npages > h.arena_size / PAGE_SIZE {
        return Err(AllocFail::NoMemory);
    }
    let s = h.alloc_span(npages, noscan as u8)?;
    // SAFETY: the span is new; the heap hands its pages out zeroed. Setting the
    // one alloc bit makes the object live; no collection can run while we are
    // in the runtime.
    unsafe {
        (*s).alloc[0].store(1, Relaxed);
        mc.note_allocated(h, npages * PAGE_SIZE);
        Ok((*s).base)
    }
}
