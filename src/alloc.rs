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
use crate::links::LinkTable;
use crate::pinner;
use crate::sizeclass::{self, MAX_SMALL_SIZE};
use crate::sizeclass::PAGE_SIZE;
use crate::span::Span;
use crate::specials::{free_special, KIND_UNCOLLECTABLE};
use crate::threads::InRuntime;

/// The address every zero-size allocation returns [Go: zerobase]. It is not in
/// the heap, so it is never freed, and pinning it changes nothing.
#[repr(C, align(16))]
pub struct ZeroBase([u8; 16]);
pub static ZERO_BASE: ZeroBase = ZeroBase([0; 16]);

#[inline]
pub fn zero_base() -> usize {
    &ZERO_BASE as *const ZeroBase as usize
}

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
        malloc_large(h, size, noscan)
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
fn malloc_large(h: &Heap, size: usize, noscan: bool) -> Result<usize, AllocFail> {
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
        h.pacer.note_allocated(npages * PAGE_SIZE);
        Ok((*s).base)
    }
}

/// What an explicit free did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freed {
    /// The slot (or the large object's pages) can be handed out again now.
    Reused,
    /// Its span is in another thread's cache, whose alloc bits only that
    /// thread may set: the object stays allocated (its finalizer and links
    /// are gone) until the next sweep finds it unreachable and frees it.
    AtSweep,
    /// The object is pinned: it stays allocated and in place until it is
    /// unpinned, and is then collected as usual.
    Pinned,
}

/// Frees object `idx` of span `s` explicitly (libgc's `GC_free`). Its
/// finalizer is dropped without running, links registered inside it are
/// dropped, and an uncollectable object gives back its own pin first; a pinned
/// object is not freed (`Freed::Pinned`).
///
/// Where the slot goes:
/// - a large object's span goes back to the page heap at once;
/// - a slot of a span that this thread's mcache allocates from is handed out
///   by its next allocations (`Mcache::take_back`);
/// - a slot of a span no mcache holds (full, or in its mcentral's partial
///   set) is cleared under the mcentral lock, which `Mcentral::take` holds
///   while it marks a span cached; a span that was full goes to the partial
///   set, so the slot is reused by the next refill;
/// - a slot of a span in another thread's mcache is left to the next sweep
///   (`Freed::AtSweep`): that thread sets alloc bits of its span without
///   atomics.
///
/// Inside the runtime: no collection runs meanwhile (the collector waits for
/// this thread to leave), so alloc bits, spans and lists are not swept under us.
/// The object is allocated (the caller classified the pointer).
pub fn free(g: &InRuntime, h: &Heap, links: &LinkTable, s: *mut Span, idx: usize) -> Freed {
    // SAFETY: `s` is an in-use span holding allocated object `idx` (contract).
    let (base, elemsize, spc) = unsafe { ((*s).object_base(idx), (*s).elemsize, (*s).spanclass as usize) };
    {
        // SAFETY: as above; the lock guards the span's specials.
        let mut list = unsafe { (*s).specials.lock().unwrap_or_else(|e| e.into_inner()) };
        let own_pin = list.remove(idx as u32, KIND_UNCOLLECTABLE);
        drop(list);
        if !own_pin.is_null() {
            // SAFETY: just unlinked from the list.
            unsafe { free_special(own_pin) };
            pinner::unpin_object(s, idx);
        }
    }
    if pinner::pin_state(s, idx) != 0 {
        return Freed::Pinned;
    }
    // SAFETY: as above.
    let mut chain = unsafe { (*s).specials.lock().unwrap_or_else(|e| e.into_inner()) }
        .remove_where(|sp| sp.index == idx as u32, usize::MAX);
    while !chain.is_null() {
        // SAFETY: records unlinked from the list above, ours to give back.
        unsafe {
            let next = (*chain).next;
            free_special(chain);
            chain = next;
        }
    }
    links.drop_inside(base, base + elemsize);
    if spc >> 1 == 0 {
        h.pacer.note_freed(elemsize);
        let mut pa = h.pages.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: a large span holds only this object, which we clear; large
        // spans are in no mcache or partial set; we are inside the runtime
        // with the page lock held, so no collection or span walk runs.
        unsafe {
            (*s).alloc[0].store(0, Relaxed);
            h.free_span(s, &mut pa);
        }
        return Freed::Reused;
    }
    // SAFETY: the guard's thread is the caller; its mcache is only touched by
    // itself inside the runtime. The object is unpinned and has no specials.
    // (The slot was counted towards the trigger when the cache reserved it,
    // and is not counted again when reused: no `note_freed`.)
    if unsafe { (*(*g.thread()).mcache.get()).take_back(spc, s, idx) } {
        return Freed::Reused;
    }
    let central = h.central[spc].partial.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: `s` is in use. With the mcentral lock held, a span that is not
    // cached cannot become cached (`Mcentral::take` marks spans under this
    // lock), and its last owner let go of it with a Release store: no thread
    // writes its alloc bits or `needzero` while we hold the lock.
    unsafe {
        if (*s).cached.load(Acquire) {
            return Freed::AtSweep;
        }
        let was_full = (*s).count_allocated() == (*s).nelems as usize;
        (*s).alloc[idx / 64].fetch_and(!(1u64 << (idx % 64)), Relaxed);
        (*s).needzero = true;
        drop(central);
        h.pacer.note_freed(elemsize);
        if was_full {
            // A full span is in no list; now it has a free slot. If the set
            // has no room, the slot waits for the sweep.
            h.central[spc].give(s);
        }
    }
    Freed::Reused
}
