//! Disappearing links: words the collector clears when an object dies
//! [libgc: GC_general_register_disappearing_link, GC_register_long_link].
//!
//! A link is the address of a word (in the heap, a data segment, or any memory
//! the program keeps) that refers to an object, usually in hidden form
//! (`GC_HIDE_POINTER`), so that the word itself keeps nothing alive. When a
//! collection finds the object unreachable, the word is set to 0 and the link
//! is dropped. Two kinds, as in libgc:
//! - a short link is cleared as soon as the object is unreachable from the
//!   roots, even if a finalizer resurrects it (checked against the mark bits,
//!   before the sweep queues finalizers);
//! - a long link is cleared only when the object is really freed (checked
//!   against the alloc bits after the sweep, which keeps objects waiting for
//!   their finalizer).
//!
//! A link that lies inside a heap object is dropped, without a write, when
//! that object is freed (by a sweep or by an explicit free): its memory may be
//! reused, and the registration must not outlive it.
//!
//! Lock discipline: the table's lock is taken inside the runtime (registration
//! calls), or by the collector with the world stopped (or holding the world
//! lock, after a cycle). With the world stopped nothing is allocated or freed:
//! a dead entry is only marked (`target == 0`) and counted; dead entries are
//! removed later (`compact`), by registration calls inside the runtime and by
//! the collector after the restart, once they outnumber the live ones, so that
//! a registration costs a logarithmic time on average, not a pass over the
//! table.
//!
//! gc_weak handles (`weak`) are short links: the handle's word is the link.
//!
//! Invariants: every live entry's target was an allocated heap object, or
//! memory outside the heap, when it was registered; an entry whose link lies in
//! the heap refers to a word of an allocated object.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::heap::Heap;

/// Why a registration call failed, in libgc's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// The link is registered already (`GC_DUPLICATE`).
    Duplicate,
    /// The link is not registered (`GC_NOT_FOUND`).
    NotFound,
}

/// Link address -> the object whose death clears it (0: a dead entry).
type Table = BTreeMap<usize, usize>;

const SHORT: usize = 0;
const LONG: usize = 1;

/// Two tables, short links (index 0) and long links (1), keyed by the link's
/// address: libgc keeps the kinds apart, so one word may be both.
pub struct LinkTable {
    tables: Mutex<Tables>,
}

/// Invariant: `dead` is the number of entries of both kinds whose target is 0.
struct Tables {
    kinds: [Table; 2],
    dead: usize,
}

impl Tables {
    /// Kills a live entry, counting it.
    fn kill(dead: &mut usize, target: &mut usize) {
        *target = 0;
        *dead += 1;
    }
}

impl LinkTable {
    pub const fn new() -> LinkTable {
        LinkTable { tables: Mutex::new(Tables { kinds: [BTreeMap::new(), BTreeMap::new()], dead: 0 }) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Tables) -> R) -> R {
        f(&mut self.tables.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Registers `link` to be cleared when `target` dies. Inside the runtime;
    /// `target` is an allocated heap object or memory outside the heap (which
    /// never dies). A link registered already keeps its target and gives
    /// `Duplicate`, as in libgc.
    pub fn register(&self, link: usize, target: usize, long: bool) -> Result<(), LinkError> {
        self.with(|t| {
            compact(t);
            let table = &mut t.kinds[long as usize];
            if registered(table, link) {
                return Err(LinkError::Duplicate);
            }
            if table.insert(link, target).is_some() {
                t.dead -= 1; // it replaced a dead entry
            }
            Ok(())
        })
    }

    /// Drops the registration of `link`. Inside the runtime.
    pub fn unregister(&self, link: usize, long: bool) -> Result<(), LinkError> {
        self.with(|t| {
            compact(t);
            match t.kinds[long as usize].remove(&link) {
                Some(l) if l != 0 => Ok(()),
                Some(_) => {
                    t.dead -= 1;
                    Err(LinkError::NotFound)
                }
                None => Err(LinkError::NotFound),
            }
        })
    }

    /// Moves the registration of `link` to `new_link` (libgc's
    /// `GC_move_disappearing_link`). Inside the runtime.
    pub fn relocate(&self, link: usize, new_link: usize, long: bool) -> Result<(), LinkError> {
        self.with(|t| {
            compact(t);
            let table = &mut t.kinds[long as usize];
            if !registered(table, link) {
                return Err(LinkError::NotFound);
            }
            if link == new_link {
                return Ok(());
            }
            if registered(table, new_link) {
                return Err(LinkError::Duplicate);
            }
            let l = table.remove(&link).expect("checked above");
            if table.insert(new_link, l).is_some() {
                t.dead -= 1;
            }
            Ok(())
        })
    }

    /// Drops, without writing, every link inside `[lo, hi)`: the memory of an
    /// object being freed explicitly. Inside the runtime.
    pub fn drop_inside(&self, lo: usize, hi: usize) {
        self.with(|t| {
            let Tables { kinds, dead } = t;
            for table in kinds.iter_mut() {
                if table.is_empty() {
                    continue;
                }
                for (_, target) in table.range_mut(lo..hi) {
                    if *target != 0 {
                        Tables::kill(dead, target);
                    }
                }
            }
        })
    }

    /// Before the sweep (world stopped, mark bits final): clears every short
    /// link whose target is unmarked. Returns how many were cleared.
    pub fn clear_unmarked(&self, h: &Heap) -> usize {
        self.with(|t| {
            let mut cleared = 0;
            for (&link, target) in t.kinds[SHORT].iter_mut() {
                if *target != 0 && !target_marked(h, *target) {
                    clear(link, target);
                    cleared += 1;
                }
            }
            t.dead += cleared;
            cleared
        })
    }

    /// After the sweep (world stopped, alloc bits final): drops every link in
    /// a freed object, and clears every long link whose target was freed.
    /// Returns how many long links were cleared.
    pub fn clear_freed(&self, h: &Heap) -> usize {
        self.with(|t| {
            let mut cleared = 0;
            let Tables { kinds, dead } = t;
            for (kind, table) in kinds.iter_mut().enumerate() {
                for (&link, target) in table.iter_mut() {
                    if *target == 0 {
                        continue;
                    }
                    if h.in_arena(link) && !allocated(h, link) {
                        Tables::kill(dead, target);
                    } else if kind == LONG && !allocated_or_outside(h, *target) {
                        clear(link, target);
                        *dead += 1;
                        cleared += 1;
                    }
                }
            }
            cleared
        })
    }

    /// Removes the dead entries if they outnumber the live ones. Inside the
    /// runtime, or holding the world lock with the world running (it frees
    /// memory).
    pub fn compact(&self) {
        self.with(compact)
    }

    /// Entries of both kinds, dead ones included (for tests).
    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.with(|t| t.kinds[SHORT].len() + t.kinds[LONG].len())
    }
}

/// Whether `link` has a live entry in `table`.
fn registered(table: &Table, link: usize) -> bool {
    table.get(&link).is_some_and(|&target| target != 0)
}

/// Removes the dead entries once they are at least as many as the live ones
/// (and more than a few): the table's size stays within twice its live count,
/// and each removal pass is paid for by as many kills. Not with the world
/// stopped (it frees memory).
fn compact(t: &mut Tables) {
    let total = t.kinds[SHORT].len() + t.kinds[LONG].len();
    if t.dead < 64 || t.dead * 2 < total {
        return;
    }
    for table in t.kinds.iter_mut() {
        table.retain(|_, target| *target != 0);
    }
    t.dead = 0;
}

/// Writes 0 into the link's word and kills the entry. World stopped.
fn clear(link: usize, target: &mut usize) {
    // SAFETY: `link` is a word the program keeps (libgc's contract); a link inside a
    // freed heap object was dropped already (`drop_inside`, `clear_freed`), so the word
    // is outside the heap or in an object that still exists.
    unsafe { (link as *mut usize).write_volatile(0) };
    *target = 0;
}

/// Whether the object containing `addr` (in the arena) is allocated and
/// stays so (`Heap::object_live`: a span left to a concurrent cycle's sweep
/// keeps only its marked objects).
fn allocated(h: &Heap, addr: usize) -> bool {
    let s = h.span_of_heap(addr);
    // SAFETY: an in-use span's geometry is fixed; the world is stopped.
    !s.is_null() && h.object_live(s, unsafe { (*s).index_of(addr) })
}

fn allocated_or_outside(h: &Heap, target: usize) -> bool {
    !h.in_arena(target) || allocated(h, target)
}

/// Whether the target survives marking: outside the heap, or a marked object.
/// World stopped, mark bits final.
pub fn target_marked(h: &Heap, target: usize) -> bool {
    if !h.in_arena(target) {
        return true;
    }
    let s = h.span_of_heap(target);
    if s.is_null() {
        return false;
    }
    // SAFETY: an in-use span; the world is stopped, so its mark bits are the
    // collector's, final for this cycle.
    unsafe {
        let idx = (*s).index_of(target);
        idx < (*s).nelems as usize && (*s).is_marked(idx)
    }
}
