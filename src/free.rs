//! Explicit free (libgc's `GC_free`): an object handed back before the
//! collector finds it unreachable.
//!
//! A freed slot is reused at once where that is safe without a lock on the
//! allocation fast path (see `free`), else left to the next sweep. A pinned
//! object is never freed while pinned.

use std::sync::atomic::Ordering::*;

use crate::heap::Heap;
use crate::links::LinkTable;
use crate::pinner;
use crate::span::Span;
use crate::specials::{free_special, KIND_CLEANUP, KIND_UNCOLLECTABLE};
use crate::threads::InRuntime;
use crate::weak::WeakTable;

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
/// finalizer and cleanups are dropped without running, links registered inside
/// it are dropped, weak handles of pointers into it read NULL from now on, and
/// an uncollectable object gives back its own pin first; a pinned object is
/// not freed (`Freed::Pinned`).
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
pub fn free(g: &InRuntime, h: &Heap, links: &LinkTable, weak: &WeakTable, s: *mut Span, idx: usize) -> Freed {
    // The sweep after a concurrent cycle rewrites alloc bits and lists: it
    // must be done with this span before we change them. The object is live
    // (the caller found it so, `Heap::object_live`), so the span stays.
    crate::sweep::ensure_swept(h, s);
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
            if (*chain).kind == KIND_CLEANUP {
                h.cleanups.forget((*chain).id);
            }
            free_special(chain);
            chain = next;
        }
    }
    links.drop_inside(base, base + elemsize);
    weak.freed(links, base, base + elemsize);
    if spc >> 1 == 0 && h.marking_concurrently.load(Acquire) {
        // Concurrent markers may be reading the span: its object is gone,
        // the sweep frees the span.
        // SAFETY: a large span holds only this object; we are inside the
        // runtime, so the sweep (world stopped) does not run meanwhile.
        unsafe { (*s).alloc[0].store(0, Relaxed) };
        return Freed::AtSweep;
    }
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
    // (The slot was counted towards the trigger when the cache reserved it, and is
    // not counted again when reused: no `note_freed`.) SAFETY: the guard's thread is
    // the caller, whose mcache only it touches; the object is unpinned, no specials.
    if unsafe { (*(*g.thread()).mcache.get()).take_back(spc, s, idx) } {
        return Freed::Reused;
    }
    let central = h.central[spc].partial.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: `s` is in use; with the mcentral lock held an uncached span cannot become
    // cached (`Mcentral::take` marks under this lock) and its last owner let go with a
    // Release store: no thread writes its alloc bits or `needzero` while we hold it.
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
