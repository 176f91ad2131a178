//! Specials: per-object records hung off a span [Go: mspan.specials].
//!
//! Four kinds exist: a finalizer (function and argument to run once the object
//! is unreachable), a cleanup (a function and argument to run once the object
//! is unreachable and has no finalizer left, that does not keep the object
//! alive [Go: specialCleanup]), a pin counter (the pins beyond the two that an
//! object's pin bits count, see `pinner`), and the mark of an uncollectable object (libgc's
//! `GC_malloc_uncollectable`: the object holds one pin of its own, which only
//! an explicit free takes back, see `alloc::free`). Records come from an off-heap pool so the sweeper can
//! free them while the world is stopped.
//!
//! Invariants:
//! - A span's list is sorted by (object index, kind) and holds at most one record
//!   of each kind per object, but for cleanups (any number, each with its own
//!   id); it is only read or changed with the span's `specials` lock held, or
//!   while the world is stopped.
//! - Every record refers to an allocated object of its span.
//! - `Span::pin_counters` equals the number of pin-counter records in the list.

use std::ffi::c_void;

use crate::fixalloc::FixAlloc;

pub const KIND_FINALIZER: u8 = 1;
pub const KIND_PIN_COUNTER: u8 = 2;
pub const KIND_UNCOLLECTABLE: u8 = 3;
pub const KIND_CLEANUP: u8 = 4;

pub type FinalizerFn = unsafe extern "C" fn(obj: *mut c_void, arg: *mut c_void);
pub type CleanupFn = unsafe extern "C" fn(arg: *mut c_void);

#[repr(C)]
pub struct Special {
    pub next: *mut Special,
    pub index: u32,
    pub kind: u8,
    /// Pin counter: extra pins beyond the two held in the pin bits.
    pub count: usize,
    /// Finalizer: what to call, and with what.
    pub func: Option<FinalizerFn>,
    pub arg: *mut c_void,
    /// Finalizer, once queued: the object's address (a queued cleanup: 0, so
    /// that the queue does not keep its object alive).
    pub obj: usize,
    /// Cleanup: what to call with `arg`, and the id `gc_add_cleanup` returned.
    pub cleanup: Option<CleanupFn>,
    pub id: u64,
}

/// Off-heap storage for special records.
pub static SPECIAL_POOL: FixAlloc = FixAlloc::new(std::mem::size_of::<Special>());

/// Allocates a zeroed record, or null when out of memory.
pub fn new_special(index: u32, kind: u8) -> *mut Special {
    let sp = SPECIAL_POOL.alloc() as *mut Special;
    if !sp.is_null() {
        // SAFETY: a fresh zeroed record that only we reference.
        unsafe {
            (*sp).index = index;
            (*sp).kind = kind;
        }
    }
    sp
}

/// Returns a record to the pool.
///
/// # Safety
/// `sp` is not on any list and nothing refers to it.
pub unsafe fn free_special(sp: *mut Special) {
    // SAFETY: per the contract, the record is ours to give back.
    unsafe { SPECIAL_POOL.free(sp as *mut u8) }
}

/// A sorted singly linked list of specials.
pub struct SpecialList {
    head: *mut Special,
}

// SAFETY: the list is only used under its span's lock or with the world stopped;
// the records it links are owned by the list.
unsafe impl Send for SpecialList {}

impl SpecialList {
    pub const fn new() -> SpecialList {
        SpecialList { head: std::ptr::null_mut() }
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// The record of `kind` for object `index`, or null.
    pub fn find(&self, index: u32, kind: u8) -> *mut Special {
        let mut p = self.head;
        // SAFETY: records on the list are live and owned by it.
        unsafe {
            while !p.is_null() {
                if (*p).index == index && (*p).kind == kind {
                    return p;
                }
                if ((*p).index, (*p).kind) > (index, kind) {
                    break;
                }
                p = (*p).next;
            }
        }
        std::ptr::null_mut()
    }

    /// Links `sp` in order. The caller checked there is no record of the same kind.
    ///
    /// # Safety
    /// `sp` is a live record on no list.
    pub unsafe fn insert(&mut self, sp: *mut Special) {
        let mut link: *mut *mut Special = &mut self.head;
        // SAFETY: `link` always points at the head or at a live record's `next`.
        unsafe {
            let key = ((*sp).index, (*sp).kind);
            while !(*link).is_null() && ((**link).index, (**link).kind) < key {
                link = &mut (**link).next;
            }
            (*sp).next = *link;
            *link = sp;
        }
    }

    /// Unlinks and returns the record of `kind` for object `index`, or null.
    pub fn remove(&mut self, index: u32, kind: u8) -> *mut Special {
        self.remove_where(|sp| sp.index == index && sp.kind == kind, 1)
    }

    /// Unlinks up to `max` records for which `pred` holds and returns them as a
    /// chain linked through `next` (in list order).
    pub fn remove_where(&mut self, mut pred: impl FnMut(&Special) -> bool, max: usize) -> *mut Special {
        let mut out_head: *mut Special = std::ptr::null_mut();
        let mut out_tail: *mut *mut Special = &mut out_head;
        let mut link: *mut *mut Special = &mut self.head;
        let mut taken = 0;
        // SAFETY: `link` points at the head or a live record's `next`; records
        // moved to the output chain are unlinked before being relinked.
        unsafe {
            while !(*link).is_null() && taken < max {
                let p = *link;
                if pred(&*p) {
                    *link = (*p).next;
                    (*p).next = std::ptr::null_mut();
                    *out_tail = p;
                    out_tail = &mut (*p).next;
                    taken += 1;
                } else {
                    link = &mut (*p).next;
                }
            }
        }
        out_head
    }

    /// Calls `f` on every record in order.
    pub fn for_each(&self, mut f: impl FnMut(&Special)) {
        let mut p = self.head;
        // SAFETY: records on the list are live and owned by it.
        unsafe {
            while !p.is_null() {
                f(&*p);
                p = (*p).next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_stays_sorted_and_finds_by_kind() {
        let mut l = SpecialList::new();
        for (i, k) in [(5, KIND_FINALIZER), (1, KIND_PIN_COUNTER), (5, KIND_PIN_COUNTER), (3, KIND_FINALIZER)] {
            // SAFETY: fresh records, not on any list.
            unsafe { l.insert(new_special(i, k)) };
        }
        let mut seen = Vec::new();
        l.for_each(|s| seen.push((s.index, s.kind)));
        assert_eq!(seen, vec![(1, 2), (3, 1), (5, 1), (5, 2)]);
        assert!(!l.find(5, KIND_PIN_COUNTER).is_null());
        assert!(l.find(3, KIND_PIN_COUNTER).is_null());
        let r = l.remove(5, KIND_FINALIZER);
        assert!(!r.is_null());
        // SAFETY: `r` was unlinked above.
        unsafe { free_special(r) };
        let rest = l.remove_where(|_| true, usize::MAX);
        let mut n = 0;
        let mut p = rest;
        while !p.is_null() {
            // SAFETY: `p` walks the chain we just unlinked.
            let next = unsafe { (*p).next };
            // SAFETY: unlinked record.
            unsafe { free_special(p) };
            p = next;
            n += 1;
        }
        assert_eq!(n, 3);
        assert!(l.is_empty());
    }
}
