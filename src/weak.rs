//! Weak references [Go: weak.Pointer, internal/runtime weak handles].
//!
//! A handle (`gc_weak`) is a 16-byte noscan heap object whose first word holds
//! the pointer it was made for. Noscan, the handle keeps nothing alive; the
//! handle itself lives as long as something refers to it, like any object.
//! The word is a short disappearing link (`links`), registered with the
//! pointer as its target: the collection that finds the object unmarked
//! writes 0 into it before the sweep queues any finalizer (so a finalizer that
//! revives the object does not revive the reference), and when the handle is
//! freed its link is dropped. A pinned object is marked as a root, so its
//! handles are never cleared.
//!
//! Handles are canonical, as in Go: this table maps each pointer (exact,
//! interior offset included) to its handle, so that making a handle again for
//! the same pointer gives the same one while that handle and the object live.
//! Before each sweep (mark bits final) an entry whose object or handle is
//! unmarked dies; after that a new handle is made for the pointer.
//!
//! Reading a handle (`get`) is one load, without entering the runtime, from a
//! registered thread: a collection either ran entirely before the load (and
//! it sees 0 if the object was found unreachable) or entirely after it; then
//! the pointer loaded is in the reader's registers or stack, which the
//! collector scans from where the thread was stopped, so that object is marked
//! and neither cleared nor freed. The handle itself is kept alive the same way
//! by the reader's copy of it. A loaded pointer therefore never leads to a freed
//! or reused slot.
//!
//! Lock discipline: as `links` (whose lock is taken inside this one's): inside
//! the runtime, or by the collector with the world stopped (entries are only
//! killed then) or holding the world lock afterwards (`compact`).
//!
//! Invariants: a live entry's pointer is in an allocated object and its handle
//! is an allocated handle whose word holds that pointer, registered as a short
//! link; `live` counts the live entries, `dead` the killed ones not yet removed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::Mutex;

use crate::heap::Heap;
use crate::links::{target_marked, LinkTable};

/// The size of a handle: its word, in the smallest size class.
pub const HANDLE_BYTES: usize = 16;

struct Entries {
    /// Pointer -> its handle (0: a dead entry).
    map: BTreeMap<usize, usize>,
    dead: usize,
}

pub struct WeakTable {
    entries: Mutex<Entries>,
    live: AtomicUsize,
}

/// The handle's word.
///
/// # Safety
/// `handle` is an allocated handle (or one the caller keeps alive).
unsafe fn word<'a>(handle: usize) -> &'a AtomicUsize {
    // SAFETY: per the contract, a live 16-byte object, 16-byte aligned.
    unsafe { &*(handle as *const AtomicUsize) }
}

/// The pointer handle `w` was made for, or 0 once a collection found its
/// object unreachable (see the file comment for why a registered reader may
/// call it at any time).
///
/// # Safety
/// `w` is a handle the caller keeps alive.
#[inline]
pub unsafe fn get(w: usize) -> usize {
    // SAFETY: per the contract.
    unsafe { word(w) }.load(Acquire)
}

impl WeakTable {
    pub const fn new() -> WeakTable {
        WeakTable { entries: Mutex::new(Entries { map: BTreeMap::new(), dead: 0 }), live: AtomicUsize::new(0) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Entries) -> R) -> R {
        f(&mut self.entries.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The live handle made for `ptr`, if any. Inside the runtime.
    pub fn find(&self, ptr: usize) -> Option<usize> {
        self.with(|e| e.map.get(&ptr).copied().filter(|&w| w != 0))
    }

    /// The canonical handle of `ptr`: the live one if there is one, else
    /// `fresh`, which becomes it. Inside the runtime; `ptr` lies in an
    /// allocated object and `fresh` is a new, unused handle-sized object.
    pub fn install(&self, links: &LinkTable, ptr: usize, fresh: usize) -> usize {
        self.with(|e| {
            compact(e);
            if let Some(&w) = e.map.get(&ptr).filter(|&&w| w != 0) {
                return w;
            }
            // SAFETY: `fresh` is allocated and ours alone until returned.
            unsafe { word(fresh) }.store(ptr, Release);
            // A fresh object holds no link: links in freed objects are dropped
            // (by the sweep or by the explicit free) before their slot is reused.
            let registered = links.register(fresh, ptr, false);
            debug_assert!(registered.is_ok(), "a fresh handle already had a link");
            if e.map.insert(ptr, fresh).is_some() {
                e.dead -= 1; // it replaced a dead entry
            }
            self.live.fetch_add(1, Relaxed);
            fresh
        })
    }

    /// Before the sweep, world stopped, mark bits final: kills every entry
    /// whose object or handle is unmarked. (The handle's word is cleared by
    /// its link.)
    pub fn clear_unmarked(&self, h: &Heap) {
        self.with(|e| {
            let mut killed = 0;
            for (&ptr, w) in e.map.iter_mut() {
                if *w != 0 && !(target_marked(h, ptr) && target_marked(h, *w)) {
                    *w = 0;
                    killed += 1;
                }
            }
            e.dead += killed;
            self.live.fetch_sub(killed, Relaxed);
        })
    }

    /// An explicit free of the object `[lo, hi)` (libgc's `GC_free`), inside
    /// the runtime, the object still allocated: the handles of pointers into
    /// it read NULL from now on, and if it is a handle, its entry dies.
    pub fn freed(&self, links: &LinkTable, lo: usize, hi: usize) {
        self.with(|e| {
            if e.map.is_empty() {
                return;
            }
            let mut killed = 0;
            for (_, w) in e.map.range_mut(lo..hi) {
                if *w != 0 {
                    // SAFETY: a live entry's handle is allocated (invariant).
                    unsafe { word(*w) }.store(0, Release);
                    let _ = links.unregister(*w, false);
                    *w = 0;
                    killed += 1;
                }
            }
            // A handle's word is the pointer it was made for (or 0).
            // SAFETY: `lo` is an allocated object of at least 16 bytes.
            let first = unsafe { word(lo) }.load(Relaxed);
            if let Some(w) = e.map.get_mut(&first).filter(|w| **w == lo) {
                *w = 0;
                killed += 1;
            }
            e.dead += killed;
            self.live.fetch_sub(killed, Relaxed);
        })
    }

    /// Removes the dead entries once they outnumber the live ones. Inside the
    /// runtime, or holding the world lock with the world running.
    pub fn compact(&self) {
        self.with(compact)
    }

    /// Handles that still give their pointer (live entries).
    pub fn live(&self) -> usize {
        self.live.load(Relaxed)
    }
}

/// As `links::compact`: at most half the table is dead entries.
fn compact(e: &mut Entries) {
    if e.dead < 64 || e.dead * 2 < e.map.len() {
        return;
    }
    e.map.retain(|_, w| *w != 0);
    e.dead = 0;
}

#[cfg(test)]
mod tests {
    //! Handles on a heap of the test's own (single-threaded, no signals), as
    //! in `mark`'s tests: objects from an mcache the test owns, roots are
    //! ranges it registers.
    use super::*;
    use crate::config::Config;
    use crate::mark::{mark, Marker, Threads};
    use crate::mcache::Mcache;
    use crate::roots::LoadedObjects;
    use crate::sizeclass::size_to_class;
    use crate::sweep::sweep;

    struct World {
        h: Box<Heap>,
        mc: Mcache,
        m: Marker,
        links: LinkTable,
        weak: WeakTable,
    }

    impl World {
        fn new() -> World {
            let config = Config::from_lookup(|k| (k == "GCPIN_MAX_HEAP").then(|| "64M".to_string()), |w| panic!("{w}"));
            World {
                h: Box::new(Heap::new(config)),
                mc: Mcache::new(),
                m: Marker::with_capacity(1024),
                links: LinkTable::new(),
                weak: WeakTable::new(),
            }
        }

        fn alloc(&mut self, size: usize, noscan: bool) -> usize {
            let spc = size_to_class(size) << 1 | noscan as usize;
            self.mc.alloc(&self.h, spc).expect("the test heap has room").0
        }

        /// gc_weak_make's steps, without the C API's thread.
        fn make(&mut self, ptr: usize) -> usize {
            match self.weak.find(ptr) {
                Some(w) => w,
                None => {
                    let fresh = self.alloc(HANDLE_BYTES, true);
                    self.weak.install(&self.links, ptr, fresh)
                }
            }
        }

        /// A cycle as `gc::stopped_part` runs it, with `roots` as the only roots.
        fn collect(&mut self, roots: &[usize]) {
            let (lo, len) = (roots.as_ptr() as usize, std::mem::size_of_val(roots));
            self.h.roots.add(lo, len).unwrap();
            self.mc.release_all(&self.h, false);
            let mut pa = self.h.pages.lock().unwrap();
            let none = Threads { registered: &[], forked_away: &[] };
            // SAFETY: no other thread uses this heap; no thread record is scanned.
            unsafe { mark(&self.h, &mut self.m, &none, std::ptr::null_mut(), 0, &LoadedObjects::default(), &pa, None) };
            self.weak.clear_unmarked(&self.h);
            sweep(&self.h, &self.links, &mut pa);
            drop(pa);
            self.weak.compact();
            self.links.compact();
            self.h.roots.remove(lo, len).unwrap();
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "a heap of its own: a 128 MiB arena, too large for Miri")]
    fn a_handle_is_canonical_and_cleared_with_its_object() {
        let mut t = World::new();
        let obj = t.alloc(64, false);
        let w = t.make(obj + 8);
        assert_eq!(t.make(obj + 8), w, "canonical");
        assert_ne!(t.make(obj), w, "one handle per pointer");
        // SAFETY: `w` is an allocated handle the test keeps (in its roots below).
        assert_eq!(unsafe { get(w) }, obj + 8);
        t.collect(&[obj, w]);
        // SAFETY: as above.
        assert_eq!(unsafe { get(w) }, obj + 8, "the object is reachable");
        assert_eq!(t.make(obj + 8), w);
        t.collect(&[w]);
        // SAFETY: as above.
        assert_eq!(unsafe { get(w) }, 0, "the object was unreachable");
        assert_eq!(t.weak.live(), 0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "a heap of its own: a 128 MiB arena, too large for Miri")]
    fn a_dead_handles_entry_dies_and_the_tables_shrink() {
        let mut t = World::new();
        let objs: Vec<usize> = (0..1000).map(|_| t.alloc(32, false)).collect();
        let first: Vec<usize> = objs.iter().map(|&o| t.make(o)).collect();
        assert_eq!(t.weak.live(), 1000);
        t.collect(&objs); // the handles are garbage, the objects are not
        assert_eq!(t.weak.live(), 0);
        let e = t.weak.entries.lock().unwrap();
        assert_eq!((e.map.len(), e.dead), (0, 0), "compacted after the cycle");
        drop(e);
        assert_eq!(t.links.entries(), 0, "the freed handles' links are gone");
        let again = t.make(objs[0]);
        // SAFETY: `again` is allocated and unused by anyone else.
        assert_eq!(unsafe { get(again) }, objs[0]);
        assert_eq!(t.weak.live(), 1);
        assert!(first.iter().all(|&w| t.weak.find(objs[1]) != Some(w)), "no dead handle is handed out");
    }
}
