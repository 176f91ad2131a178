//! The ids of the cleanups not yet run [Go: runtime.Cleanup's id].
//!
//! `gc_add_cleanup` hangs a cleanup special (`specials::KIND_CLEANUP`) on an
//! object and returns a fresh id; this table maps the id to the object's
//! address, so that `gc_stop_cleanup` can find the record on the object's span.
//! An id stays here while its cleanup is pending or queued; it leaves when the
//! cleanup runs, is stopped, or its object is freed explicitly.
//!
//! Lock discipline: the table is only touched inside the runtime, never by
//! the collector (the sweep moves records to the queue, ids and all), so it
//! may allocate and free.
//!
//! Invariants: ids are never reused (a 64-bit counter from 1; 0 means "no
//! cleanup"); `len` is the number of entries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Mutex;

pub struct CleanupTable {
    /// Id -> the address of the object the cleanup is for.
    ids: Mutex<BTreeMap<u64, usize>>,
    next: AtomicU64,
    len: AtomicUsize,
}

impl CleanupTable {
    pub const fn new() -> CleanupTable {
        CleanupTable { ids: Mutex::new(BTreeMap::new()), next: AtomicU64::new(1), len: AtomicUsize::new(0) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<u64, usize>) -> R) -> R {
        f(&mut self.ids.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A fresh id for a cleanup of the object at `obj`. Inside the runtime.
    pub fn add(&self, obj: usize) -> u64 {
        let id = self.next.fetch_add(1, Relaxed);
        self.with(|t| t.insert(id, obj));
        self.len.fetch_add(1, Relaxed);
        id
    }

    /// The object of cleanup `id`, if the id is still here. Inside the runtime.
    pub fn object_of(&self, id: u64) -> Option<usize> {
        self.with(|t| t.get(&id).copied())
    }

    /// Drops `id`: its cleanup ran, was stopped, or its object was freed.
    /// Inside the runtime.
    pub fn forget(&self, id: u64) {
        if self.with(|t| t.remove(&id)).is_some() {
            self.len.fetch_sub(1, Relaxed);
        }
    }

    /// Cleanups not yet run nor stopped (queued ones included).
    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_and_forgotten_once() {
        let t = CleanupTable::new();
        let (a, b) = (t.add(0x1000), t.add(0x1000));
        assert!(a != 0 && b != 0 && a != b);
        assert_eq!(t.len(), 2);
        assert_eq!(t.object_of(a), Some(0x1000));
        t.forget(a);
        t.forget(a);
        assert_eq!(t.len(), 1);
        assert_eq!(t.object_of(a), None);
        assert_eq!(t.object_of(b), Some(0x1000));
    }
}
