//! Marking: find every object reachable from the roots [Go: mgcmark.go].
//!
//! The scan is conservative: any aligned word whose value points into an
//! allocated object, at its start or inside it, marks that object. Grey objects
//! wait on an explicit mark stack (never recursion) as (address, length) ranges;
//! `noscan` objects are marked but never pushed. The scans of `drain` push the
//! words they find outside the last span as (word, 0), unmarked, and mark
//! their objects as they leave the stack, through a prefetching ring (see
//! `drain`); no grey range has length 0.
//!
//! The mark stack is a fixed reservation outside the heap and outside `malloc`
//! (the world is stopped). When it is full, a push is dropped and `overflowed` is
//! set: the object is already marked, only its scan is missing (or a word
//! was lost whose object, marked, is rescanned). After the stack
//! drains, `recover_overflow` rescans every marked object of every scannable
//! span, pushing what they reach; that repeats until a pass finishes without
//! overflow, so nothing is lost [libgc: GC_mark_stack_too_small handling].
//!
//! Roots, in order: the data and bss segments of the program and its libraries,
//! the ranges of `gc_add_roots`, every registered thread's stack (but the
//! runtime's own, `ThreadState::runtime_only`) (from its saved
//! stack pointer, registers included, and the used part of its alternate signal
//! stack when it was stopped there) and its TLS blocks (`tls`), the same for
//! the parent's other threads in a forked child (`World::forked_away`), pinned
//! objects, what objects with
//! finalizers point to (not the objects themselves, so they can be finalized),
//! finalizer and cleanup arguments (not the objects of cleanups), and the
//! objects and arguments waiting in the finalizer queue.
//!
//! Parallel marking: with `GCPIN_MARKERS` above 1 (default: every online
//! core), `MarkWorkers` keeps that many marker threads minus one, started once
//! and parked between cycles. The collecting thread scans the roots; every
//! marker, it included, drains its own stack and shares work through a
//! `gcwork::WorkPool` when another waits. Mark bytes are set with plain
//! stores (see `span`): two markers may scan one object twice, never lose one.
//! An object larger than `SCAN_CHUNK` is scanned a chunk at a time, the rest
//! pushed back first, so one big array (a hash table's buckets) is shared
//! too. Overflow is recovered on the collecting thread alone, once every
//! marker has stopped.
//!
//! The marker threads are the runtime's own: they never register, never run
//! the program's code, block every signal, and their stacks are not roots.
//!
//! Mark assists (`assist`): in a concurrent mark, program threads that
//! allocate take work from the pool, mark a bounded share of it on markers
//! of their own (`AssistMarkers`, `Marker::assist`: `drain_bounded`, which
//! puts the prefetching ring's entries back on the stack when the budget is
//! spent) and give the rest back; a phase open to them (`drain_all_open`)
//! ends only when no assist holds work.
//!
//! Invariant: only markers touch mark bytes (the collector's threads, with
//! the world stopped or, in a concurrent mark, running, and assists inside
//! an open phase); they are all clear outside a cycle (the sweep clears them).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::*};

use crate::gcwork::{self, WorkPool, PACKET_ENTRIES};
use crate::heap::Heap;
use crate::os;
use crate::pagealloc::PageAlloc;
use crate::pinner;
use crate::roots::LoadedObjects;
use crate::sizeclass::PAGE_SIZE;
use crate::span::Span;
use crate::specials::{KIND_CLEANUP, KIND_FINALIZER};
use crate::threads::ThreadState;
use crate::tls;

const WORD: usize = std::mem::size_of::<usize>();

/// Hints the CPU to bring the cache line at `addr` in; a no-op where there is
/// no such instruction. Never faults.
#[inline(always)]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(addr as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
/// Entries in `drain`'s ring, and how many before leaving it an entry's span
/// record is read (see `drain`).
const RING: usize = 16;
const RESOLVE_AHEAD: usize = 8;

/// An entry of `drain`'s ring.
#[derive(Clone, Copy)]
struct Grey {
    kind: u8,
    a: usize,
    b: usize,
    /// The span the entry lies in, as the page table gave it when it entered
    /// (null for a range outside the heap, which markers never push).
    span: *mut Span,
}

impl Grey {
    /// Nothing (a word that resolved to no object).
    const NONE: Grey = Grey { kind: 0, a: 0, b: 0, span: std::ptr::null_mut() };
    /// `a..a + b`, marked, to scan.
    const RANGE: u8 = 1;
    /// A word `a` found by a scan.
    const WORD: u8 = 2;
    /// Object `b`, allocated, to mark (and scan).
    const OBJECT: u8 = 3;
}

/// Default mark stack: 4 Mi entries (64 MiB of address space, touched on demand).
const DEFAULT_STACK_ENTRIES: usize = 1 << 22;

/// Up to this many entries on its stack, a marker that shares keeps the rest
/// in order (see `Marker::share`): a 1 MiB move at most.
const SHARE_MOVE_MAX: usize = 1 << 16;

/// Objects larger than this are scanned this many bytes at a time (see the top).
const SCAN_CHUNK: usize = 16 << 10;

/// A bounded drain (a mark assist's) counts each word it takes off its stack
/// as this many bytes of its budget, besides the bytes it scans: a word that
/// points to an object already marked scans nothing, but costs a cache miss
/// or two to find so, and late in a cycle most words do. (An assist of the
/// pause benchmark that counted only bytes resolved 20,828 words for 74 KiB
/// scanned, in 875 us; another 2,201 words for 147 KiB in 530 us: about
/// 31 ns a word against 3 ns a byte; counted with a probe not kept here.)
pub const ASSIST_WORD_COST: isize = 16;

/// A sharing marker reports its scanned bytes to the pool this often.
const REPORT_SCANNED: usize = 256 << 10;

pub struct Marker {
    /// The span of the last object marked, and its address range: consecutive
    /// pointers tend to land in the same span, and this saves the page-table load.
    last_span: *mut Span,
    last_lo: usize,
    last_len: usize,
    /// The grey entries are `stack[..len]`, pushed and popped at `len`.
    stack: *mut (usize, usize),
    cap: usize,
    len: usize,
    high_water: usize,
    /// Where to share work with other markers; null when marking alone.
    pool: *const WorkPool,
    pub overflowed: bool,
    /// Rescans done by `recover_overflow` over the marker's life.
    pub overflow_rescans: usize,
    /// Bytes scanned by `drain` not yet reported to the pool (a sharing
    /// marker reports them as it goes, see `drain_here`).
    scanned: usize,
}

// SAFETY: the stack is a private mapping owned by the marker, used under the
// world lock only.
unsafe impl Send for Marker {}

impl Default for Marker {
    fn default() -> Marker {
        Marker::new()
    }
}

impl Marker {
    pub fn new() -> Marker {
        Marker::with_capacity(DEFAULT_STACK_ENTRIES)
    }

    /// A marker whose stack holds `cap` ranges (small ones test overflow).
    pub fn with_capacity(cap: usize) -> Marker {
        let bytes = cap * std::mem::size_of::<(usize, usize)>();
        let stack = os::reserve(bytes).unwrap_or_else(|| os::throw("cannot reserve the mark stack"));
        Marker {
            last_span: std::ptr::null_mut(),
            last_lo: 0,
            last_len: 0,
            stack: stack as *mut _,
            cap,
            len: 0,
            high_water: 0,
            pool: std::ptr::null(),
            overflowed: false,
            overflow_rescans: 0,
            scanned: 0,
        }
    }

    pub fn reset(&mut self) {
        self.last_span = std::ptr::null_mut();
        self.last_lo = 0;
        self.last_len = 0;
        self.len = 0;
        self.overflowed = false;
        self.pool = std::ptr::null();
        self.scanned = 0;
    }

    /// Moves the older half of the waiting entries (at most a packet) to the
    /// pool, if it has a packet free. The rest move down, in order, so that
    /// the next share gives the next oldest (a structure's upper parts, the
    /// most work); on a deep stack, where that move would cost more than the
    /// work shared, the newest entries fill the hole instead.
    ///
    /// # Safety
    /// `pool` is non-null and live.
    #[cold]
    unsafe fn share(&mut self) {
        let k = (self.len / 2).min(PACKET_ENTRIES);
        if k == 0 {
            return;
        }
        // SAFETY: stack[..len] are pushed entries, and k <= len / 2, so the
        // oldest k and the newest k do not overlap; the pool is live per the
        // contract.
        unsafe {
            let oldest = std::slice::from_raw_parts(self.stack, k);
            if (*self.pool).share(oldest) {
                if self.len <= SHARE_MOVE_MAX {
                    std::ptr::copy(self.stack.add(k), self.stack, self.len - k);
                } else {
                    std::ptr::copy_nonoverlapping(self.stack.add(self.len - k), self.stack, k);
                }
                self.len -= k;
            }
        }
    }

    /// What a busy marker does when someone may want work: shares it if a
    /// marker (or an assist) waits, takes a packet if there is a surplus.
    ///
    /// # Safety
    /// `pool` is non-null and live.
    #[cold]
    unsafe fn balance(&mut self) {
        // SAFETY: per the contract.
        let pool = unsafe { &*self.pool };
        if pool.hungry() {
            if pool.surplus() {
                pool.take_surplus(|e| self.push_all(e));
            } else {
                // SAFETY: per the contract.
                unsafe { self.share() };
            }
        }
    }

    /// Pushes entries another marker shared.
    fn push_all(&mut self, entries: &[(usize, usize)]) {
        for &(base, len) in entries {
            self.push(base, len);
        }
    }

    /// Gives the pages of a deep stack back to the OS after a cycle.
    pub fn release_memory(&mut self) {
        if self.high_water > 4096 {
            os::release(self.stack as usize, self.high_water * std::mem::size_of::<(usize, usize)>());
        }
        self.high_water = 0;
    }

    #[inline]
    fn push(&mut self, base: usize, len: usize) {
        if self.len == self.cap {
            self.overflowed = true;
            return;
        }
        // SAFETY: len < cap, inside our reservation.
        unsafe { *self.stack.add(self.len) = (base, len) };
        self.len += 1;
        // (`high_water` is updated by `drain`, which every push is followed by.)
    }

    /// Marks the object `idx` of span `s` if it is allocated and unmarked, and
    /// queues it for scanning unless it is noscan.
    ///
    /// # Safety
    /// World stopped; `s` is an in-use span.
    #[inline]
    pub unsafe fn mark_object(&mut self, s: *mut Span, idx: usize) {
        // SAFETY: per the contract the span is live, and only markers touch
        // its mark bytes.
        unsafe {
            if !(*s).is_allocated(idx) || !(*s).try_mark(idx) {
                return;
            }
            if !(*s).noscan() {
                self.push((*s).object_base(idx), (*s).elemsize);
            }
        }
    }

    /// Treats `w` as a possible pointer.
    ///
    /// # Safety
    /// World stopped.
    #[inline]
    pub unsafe fn mark_word(&mut self, h: &Heap, w: usize) {
        let s = if w.wrapping_sub(self.last_lo) < self.last_len {
            self.last_span
        } else {
            let s = h.span_of(w);
            if s.is_null() {
                return;
            }
            // SAFETY: a published span is live while the world is stopped.
            unsafe {
                self.last_span = s;
                self.last_lo = (*s).base;
                self.last_len = (*s).npages << crate::sizeclass::PAGE_SHIFT;
            }
            s
        };
        // SAFETY: a span published in the page table is in use while the world
        // is stopped.
        unsafe {
            let idx = (*s).index_of(w);
            self.mark_object(s, idx);
        }
    }

    /// Scans the aligned words of `[lo, hi)`.
    ///
    /// # Safety
    /// World stopped; the range is readable.
    pub unsafe fn scan_range(&mut self, h: &Heap, lo: usize, hi: usize) {
        let mut p = (lo + WORD - 1) & !(WORD - 1);
        while p + WORD <= hi {
            // SAFETY: p is aligned and inside the readable range. An atomic
            // load (a plain one on the platforms we support): in a concurrent
            // mark the program may be writing the word meanwhile.
            let w = unsafe { (*(p as *const AtomicUsize)).load(Relaxed) };
            if h.in_arena(w) {
                // SAFETY: world stopped, per the contract.
                unsafe { self.mark_word(h, w) };
            }
            p += WORD;
        }
    }

    /// Scans a grey heap object, from its last word to its first.
    ///
    /// The order matters for speed: the mark stack is LIFO, so what the first
    /// field points to is pushed last and scanned next. Marking then follows a
    /// structure depth-first in field order, which is the order in which a
    /// program that builds it top-down (a list, a tree, a parse tree) allocated
    /// it, so consecutive scans touch consecutive memory and the same span.
    /// (100 MiB of 32-byte tree nodes built that way: 39 ms instead of 50 ms.)
    ///
    /// # Safety
    /// As `scan_range`.
    #[inline(always)]
    pub unsafe fn scan_object(&mut self, h: &Heap, lo: usize, hi: usize) {
        // SAFETY: per the contract.
        unsafe { self.scan_words::<false>(h, lo, hi) }
    }

    /// The loop of `scan_object`: each aligned word of `[lo, hi)` that points
    /// into the arena, last to first, is marked now (`mark_word`) or, inside
    /// `drain` (`VIA_RING`), handed to `push_word`. (A const parameter, not a
    /// closure: a closure passed to a shared loop was left out of line, a
    /// call per word.)
    ///
    /// # Safety
    /// As `scan_range`.
    #[inline(always)]
    unsafe fn scan_words<const VIA_RING: bool>(&mut self, h: &Heap, lo: usize, hi: usize) {
        let mut p = hi & !(WORD - 1);
        while p >= lo + WORD {
            p -= WORD;
            // SAFETY: p is aligned and inside the readable range. An atomic
            // load (a plain one on the platforms we support): in a concurrent
            // mark the program may be writing the word meanwhile.
            let w = unsafe { (*(p as *const AtomicUsize)).load(Relaxed) };
            if h.in_arena(w) {
                // SAFETY: world stopped, per the contract.
                unsafe {
                    if VIA_RING {
                        self.push_word(w)
                    } else {
                        self.mark_word(h, w)
                    }
                };
            }
        }
    }

    /// Scans queued objects until the stack is empty.
    ///
    /// The scans of `drain` do not mark what they find outside the last
    /// span: they push the word itself (`push_word`), and it is resolved on
    /// its way out of the stack, through a ring of `RING` entries, in three
    /// steps a few entries apart: entering the ring, the word's span record
    /// is prefetched (the page table gives its address); `RESOLVE_AHEAD`
    /// entries before it leaves, the record is read (object index, alloc
    /// bit) and the object's mark byte and memory are prefetched; leaving,
    /// the object is marked and, if it was not and is scannable, scanned.
    /// Ranges pushed already marked (objects of the last span, big objects'
    /// remaining chunks) take the same ring, their memory and span record
    /// prefetched as they enter. An object's span is the last span while it
    /// is scanned: what it points to is most often there.
    ///
    /// In a heap marked in random order (hash buckets) a word otherwise costs
    /// three dependent cache misses — span record, mark byte, object — and
    /// the ring overlaps them across `RING` words [Cher et al., "Software
    /// prefetching for mark-sweep garbage collection", 2004; Garner et al.,
    /// "Effective prefetch for mark-sweep garbage collection", 2007]. The
    /// words are pushed in the order the scan finds them and resolved in the
    /// order they leave the stack, so the order of the traversal (depth-first
    /// in field order, see `scan_object`) is kept: delaying the marks instead
    /// (a queue of found words between the scan and the push) reordered a
    /// tree's traversal and made its full collection 25% slower. (Medians of
    /// interleaved runs against the FIFO of objects this replaced, which
    /// prefetched only the object: the pause benchmark at 256 MiB, its
    /// longest stop-the-world collection 188 -> 150 ms; GCBench trees 377 ->
    /// 374 ms; the full collection of a 100 MiB tree, which hits the cache
    /// anyway and pays for the ring's bookkeeping, 31.9 -> 35.5 ms.)
    ///
    /// # Safety
    /// World stopped.
    pub unsafe fn drain(&mut self, h: &Heap) {
        // Work on a copy in a local: the marker's fields (stack length, the
        // span cache) then live in registers, where through `self` every store
        // to the mark stack could alias them and force a reload. The copy is
        // written back when the stack is empty. (Marker has no Drop; the copy
        // is a plain move of its words.)
        // SAFETY: a bitwise copy of a Drop-less struct of plain words, written
        // back over the original before anyone else can see it.
        unsafe {
            let mut local = std::ptr::read(self);
            // Two copies of the loop: one that never looks at the pool.
            if local.pool.is_null() {
                local.drain_here::<false, false>(h, 0);
            } else {
                local.drain_here::<true, false>(h, 0);
            }
            std::ptr::write(self, local);
        }
    }

    /// `drain` until about `budget` bytes are used, never sharing: a mark
    /// assist's share of the work. The bytes scanned count (whole entries, at
    /// most `SCAN_CHUNK` each), and every word taken off the stack counts
    /// `ASSIST_WORD_COST`. What is left stays on the stack. Returns the
    /// budget left (at most 0 if it was used up, else the stack is empty).
    ///
    /// # Safety
    /// As `drain` in a concurrent mark.
    pub unsafe fn drain_bounded(&mut self, h: &Heap, budget: isize) -> isize {
        // SAFETY: as in `drain`.
        unsafe {
            let mut local = std::ptr::read(self);
            let left = local.drain_here::<false, true>(h, budget);
            std::ptr::write(self, local);
            left
        }
    }

    /// `drain` on the marker in place; with `BOUNDED`, until `budget` bytes
    /// are scanned (see `drain_bounded`), else to the end (the result is
    /// then meaningless). A sharing marker reports what it scanned to the
    /// pool every `REPORT_SCANNED` bytes (the assists' pace reads it).
    ///
    /// # Safety
    /// As `drain`.
    #[inline(always)]
    unsafe fn drain_here<const SHARING: bool, const BOUNDED: bool>(&mut self, h: &Heap, budget: isize) -> isize {
        let mut ring = [Grey::NONE; RING];
        // Counters, not indices (`% RING`): `head <= resolved <= tail`;
        // entries before `resolved` have had their record read.
        let (mut head, mut resolved, mut tail) = (0usize, 0usize, 0usize);
        let mut left = budget;
        loop {
            // The stack is at a local peak here: after the pushes of the last
            // scan (or of the roots before the first), before any pop.
            self.high_water = self.high_water.max(self.len);
            if BOUNDED && left <= 0 {
                // SAFETY: resolved objects' spans are live, per the contract.
                unsafe { self.unring(&ring, head, tail) };
                return left;
            }
            if SHARING && self.scanned >= REPORT_SCANNED {
                // SAFETY: a non-null pool is live for the whole marking phase.
                unsafe { (*self.pool).add_scanned(std::mem::take(&mut self.scanned)) };
            }
            if SHARING && gcwork::someone_hungry() {
                // SAFETY: as above.
                unsafe { self.balance() };
            }
            while tail - head < RING && self.len > 0 {
                self.len -= 1;
                // SAFETY: entries below len were pushed by us.
                let (x, len) = unsafe { *self.stack.add(self.len) };
                if BOUNDED && len == 0 {
                    left -= ASSIST_WORD_COST;
                }
                let g = if len == 0 {
                    let s = h.span_of(x);
                    if s.is_null() {
                        continue;
                    }
                    prefetch(s as usize);
                    Grey { kind: Grey::WORD, a: x, b: 0, span: s }
                } else {
                    prefetch(x);
                    let s = h.span_of(x);
                    prefetch(s as usize);
                    Grey { kind: Grey::RANGE, a: x, b: len, span: s }
                };
                ring[tail % RING] = g;
                tail += 1;
            }
            if head == tail {
                return left;
            }
            while resolved < tail && resolved - head < RESOLVE_AHEAD {
                // SAFETY: a word's span came from the page table (live, per
                // the contract).
                unsafe { self.resolve(&mut ring[resolved % RING]) };
                resolved += 1;
            }
            let g = ring[head % RING];
            head += 1;
            // SAFETY: a range is a marked, allocated heap object (or a part
            // of one); an object was resolved to an allocated slot of a live
            // span.
            unsafe {
                let s = g.span;
                let (lo, len) = match g.kind {
                    Grey::RANGE => (g.a, g.b),
                    Grey::OBJECT if (*s).try_mark(g.b) && !(*s).noscan() => ((*s).object_base(g.b), (*s).elemsize),
                    _ => continue,
                };
                // What an object points to is most often in its own span (a
                // tree built in allocation order).
                if !s.is_null() {
                    self.last_span = s;
                    self.last_lo = (*s).base;
                    self.last_len = (*s).npages << crate::sizeclass::PAGE_SHIFT;
                }
                self.scan_entry(h, lo, len);
                let scanned = len.min(SCAN_CHUNK);
                self.scanned += scanned;
                if BOUNDED {
                    left -= scanned as isize;
                }
            }
        }
    }

    /// Puts the entries of `drain`'s ring (`head..tail`) back on the stack,
    /// the next to leave on top, as they were taken off: ranges as they
    /// are, words and resolved objects as words (resolved again later).
    ///
    /// # Safety
    /// An `OBJECT`'s span is live.
    #[cold]
    unsafe fn unring(&mut self, ring: &[Grey; RING], head: usize, tail: usize) {
        for i in (head..tail).rev() {
            let g = ring[i % RING];
            match g.kind {
                Grey::RANGE => self.push(g.a, g.b),
                Grey::WORD => self.push(g.a, 0),
                // SAFETY: per the contract.
                Grey::OBJECT => self.push(unsafe { (*g.span).object_base(g.b) }, 0),
                _ => {}
            }
        }
    }

    /// The middle step of `drain`'s ring: a word's span record is read; an
    /// allocated object becomes `OBJECT`, its mark byte and memory
    /// prefetched; anything else is dropped.
    ///
    /// # Safety
    /// A `WORD`'s span is live.
    #[inline(always)]
    unsafe fn resolve(&mut self, g: &mut Grey) {
        if g.kind != Grey::WORD {
            return;
        }
        let (w, s) = (g.a, g.span);
        // SAFETY: per the contract.
        unsafe {
            let idx = (*s).index_of(w);
            if !(*s).is_allocated(idx) {
                *g = Grey::NONE;
                return;
            }
            prefetch((*s).marks.add(idx) as usize);
            if !(*s).noscan() {
                prefetch((*s).object_base(idx));
            }
            *g = Grey { kind: Grey::OBJECT, a: 0, b: idx, span: s };
        }
    }

    /// What a scan in `drain` does with a word `w` in the arena: marks it now
    /// if it is in the last span (its record and mark bytes are in cache),
    /// else pushes it to be resolved on its way out (see `drain`).
    ///
    /// # Safety
    /// As `mark_word`.
    #[inline(always)]
    unsafe fn push_word(&mut self, w: usize) {
        if w.wrapping_sub(self.last_lo) < self.last_len {
            // SAFETY: the cached span is live (per the contract).
            unsafe {
                let idx = (*self.last_span).index_of(w);
                self.mark_object(self.last_span, idx);
            }
        } else {
            self.push(w, 0);
        }
    }

    /// Scans a grey entry: a whole object, or its first `SCAN_CHUNK` bytes
    /// with the rest pushed back (before the scan, so what the chunk reaches
    /// is scanned first, and the rest can be shared meanwhile), in the
    /// backward order of `scan_object`, through `push_word`.
    ///
    /// # Safety
    /// As `scan_range`.
    #[inline(always)]
    unsafe fn scan_entry(&mut self, h: &Heap, base: usize, len: usize) {
        let hi = if len > SCAN_CHUNK {
            self.push(base + SCAN_CHUNK, len - SCAN_CHUNK);
            base + SCAN_CHUNK
        } else {
            base + len
        };
        // SAFETY: per the contract.
        unsafe { self.scan_words::<true>(h, base, hi) }
    }

    /// Drains this marker's stack, then takes shared work until every marker
    /// has run out.
    ///
    /// # Safety
    /// World stopped; `pool` is the phase's live pool.
    unsafe fn drain_shared(&mut self, h: &Heap, pool: &WorkPool) {
        self.pool = pool;
        // SAFETY: per the contract.
        unsafe {
            self.drain(h);
            while pool.take(|e| self.push_all(e)) {
                self.drain(h);
            }
        }
        pool.add_scanned(std::mem::take(&mut self.scanned));
        self.pool = std::ptr::null();
    }

    /// A mark assist on this marker (its own, `AssistMarkers`): takes work
    /// from `pool`, if a packet is there, and works through about `budget`
    /// bytes of it (as `drain_bounded` counts them), then gives back what is
    /// left and leaves (see `gcwork`). Returns the bytes scanned (0: no work
    /// was there to take).
    ///
    /// # Safety
    /// A concurrent mark phase of `pool` may be open: no span is freed while
    /// one is (its end waits for us).
    pub unsafe fn assist(&mut self, h: &Heap, pool: &WorkPool, budget: usize) -> usize {
        self.reset();
        if !pool.take_as_assist(false, |e| self.push_all(e)) {
            return 0;
        }
        let budget = budget.min(isize::MAX as usize) as isize;
        let mut left = budget;
        // SAFETY: we hold work, so the phase, and the contract, last.
        unsafe {
            loop {
                left = self.drain_bounded(h, left);
                if left <= 0 || !pool.take_as_assist(true, |e| self.push_all(e)) {
                    break;
                }
            }
            // Give back about what was taken, not more: a big object's chunk
            // leaves thousands of words, and a pool that grows with each
            // assist would fill. Up to the budget again is used for that.
            let mut extra = budget;
            while self.len > PACKET_ENTRIES && extra > 0 {
                let step = extra.min(SCAN_CHUNK as isize);
                extra -= step - self.drain_bounded(h, step);
            }
            // Give back, a packet at a time; with every packet in use, mark
            // on until the rest fits.
            while self.len > 0 {
                let k = self.len.min(PACKET_ENTRIES);
                let newest = std::slice::from_raw_parts(self.stack.add(self.len - k), k);
                if pool.share(newest) {
                    self.len -= k;
                } else {
                    self.drain_bounded(h, 4 * SCAN_CHUNK as isize);
                }
            }
        }
        let done = std::mem::take(&mut self.scanned);
        pool.add_scanned(done);
        pool.leave_as_assist(std::mem::take(&mut self.overflowed));
        done
    }

    /// Rescans every marked scannable object until no push was dropped.
    ///
    /// # Safety
    /// World stopped; `pa` is the locked page allocator.
    pub unsafe fn recover_overflow(&mut self, h: &Heap, pa: &PageAlloc) {
        // SAFETY: the caller's contract.
        unsafe { self.recover_overflow_below(h, pa.high_water) }
    }

    /// `recover_overflow` over the spans below page `high_water`.
    ///
    /// # Safety
    /// The world is stopped and the page lock held, or (a concurrent mark)
    /// no span is freed meanwhile: spans made meanwhile are published whole,
    /// so the walk reads only records that are set up.
    pub unsafe fn recover_overflow_below(&mut self, h: &Heap, high_water: usize) {
        while self.overflowed {
            self.overflowed = false;
            self.overflow_rescans += 1;
            // SAFETY: the caller's contract.
            unsafe {
                h.for_each_span(high_water, |s| {
                    if (*s).noscan() {
                        return;
                    }
                    for idx in 0..(*s).nelems as usize {
                        if (*s).is_marked(idx) {
                            let b = (*s).object_base(idx);
                            self.scan_object(h, b, b + (*s).elemsize);
                            self.drain(h);
                        }
                    }
                });
            }
        }
    }
}

/// The thread records whose stacks, registers and TLS are roots (see
/// `threads::World`).
pub struct Threads<'a> {
    pub registered: &'a [*mut ThreadState],
    pub forked_away: &'a [*mut ThreadState],
}

/// The stack ranges of thread `t` to scan, as `f(lo, hi)` calls. `me` is the
/// collecting thread, whose stack is scanned from `sp` (below the registers
/// spilled where its collection began, `ThreadState::collect_sp`); every
/// other thread from its interrupted stack pointer less the red zone, as its
/// suspend handler saved it (`stopworld::park`), and the used part of the
/// alternate signal stack it was interrupted on.
///
/// Where the scan cannot start at a known stack pointer of the thread's own
/// stack — the collector runs on an alternate signal stack (a collection from
/// an `SA_ONSTACK` handler) or on a stack of the program's own (a coroutine),
/// or a thread parked on its alternate stack — the frames there are scanned
/// from the stack pointer to the end of that stack, and the thread stack as a
/// whole: its mapped part, since the main thread's stack is mapped only as far
/// as it has grown.
///
/// # Safety
/// The world is stopped; `t` is a registered (or forked-away) record.
unsafe fn for_each_stack_range(t: *mut ThreadState, me: *mut ThreadState, sp: usize, mut f: impl FnMut(usize, usize)) {
    use std::sync::atomic::Ordering::*;
    // SAFETY: per the contract, the record is live and its thread stopped.
    let (lo, hi) = unsafe { ((*t).stack_lo, (*t).stack_hi) };
    let whole_stack = |f: &mut dyn FnMut(usize, usize)| f(os::mapped_run_down(lo, hi), hi);
    if t != me {
        // SAFETY: as above.
        let (sp, alt_lo, alt_hi) = unsafe {
            ((*t).stopped_sp.load(Acquire), (*t).stopped_alt_lo.load(Relaxed), (*t).stopped_alt_hi.load(Relaxed))
        };
        if sp == 0 || sp >= hi {
            return;
        }
        if alt_hi != 0 {
            f(alt_lo, alt_hi);
        }
        // `park` saves the stack's low end when the interrupted stack pointer
        // is not on the thread stack (the thread was on its alternate one).
        if sp <= lo {
            whole_stack(&mut f);
        } else {
            f(sp, hi);
        }
        return;
    }
    if sp > lo && sp < hi {
        f(sp, hi);
        return;
    }
    // The collector is not on its thread stack.
    // SAFETY: stack_t is a plain C struct; all-zero is a valid value.
    let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigaltstack with a null new stack only reads the current one.
    let on_alt = unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) } == 0 && cur.ss_flags & libc::SS_ONSTACK != 0;
    let (alt_lo, alt_hi) = (cur.ss_sp as usize, cur.ss_sp as usize + cur.ss_size);
    if on_alt && sp >= alt_lo && sp < alt_hi {
        f(sp, alt_hi);
    } else {
        // A stack of the program's own: up to the end of its mapping, at most
        // OTHER_STACK_MAX above the stack pointer.
        f(sp, os::mapped_run_up(sp, sp.saturating_add(OTHER_STACK_MAX)));
    }
    whole_stack(&mut f);
}

/// How far above its stack pointer a collector running on a stack that is
/// neither its thread stack nor its alternate signal stack is scanned.
const OTHER_STACK_MAX: usize = 8 << 20;

/// Marks everything reachable: see the list of roots at the top of this file.
/// `me` is the collecting thread, whose stack is scanned from `sp`; `loaded`
/// the loader's objects (their list locked). With `workers`, its marker
/// threads mark beside this one.
///
/// # Safety
/// The world is stopped, `pa` is the locked page allocator, the records in `w`
/// are live, `sp` is on the calling thread's current stack (below every frame
/// that may hold a pointer) and `loaded` was read with the loader's list
/// locked, which it still is.
#[allow(clippy::too_many_arguments)] // the cycle's state, passed down once
pub unsafe fn mark(
    h: &Heap,
    m: &mut Marker,
    w: &Threads,
    me: *mut ThreadState,
    sp: usize,
    loaded: &LoadedObjects,
    pa: &PageAlloc,
    workers: Option<&MarkWorkers>,
) {
    m.reset();
    // SAFETY: the caller's contract.
    unsafe {
        drain_all(h, m, workers, |m| mark_roots(h, m, w, me, sp, loaded, pa, Roots::All));
        m.recover_overflow(h, pa);
    }
}

/// Runs `roots` on `m` (the calling thread's marker, which shares what it
/// pushes with the others), then drains every marker's stack until all of
/// them have run out. Overflow is left in `m.overflowed` for the caller.
///
/// # Safety
/// World stopped, or (a concurrent mark, `concurrent`) the heap's memory may
/// change under the scan but no span is freed meanwhile.
pub unsafe fn drain_all(h: &Heap, m: &mut Marker, workers: Option<&MarkWorkers>, roots: impl FnOnce(&mut Marker)) {
    // SAFETY: the caller's contract.
    unsafe { drain_all_with(h, m, workers, None, &|_| {}, roots) }
}

/// `drain_all` with the world running, open to mark assists (`Marker::assist`)
/// through `pool`, the workers' pool (`MarkWorkers::pool`): the phase then
/// goes through the pool even when no marker thread helps, and ends only
/// when no assist holds work. An assist's overflow is left in `m.overflowed`.
///
/// # Safety
/// A concurrent mark: the heap's memory may change under the scan but no
/// span is freed meanwhile.
pub unsafe fn drain_all_open(h: &Heap, m: &mut Marker, workers: Option<&MarkWorkers>, pool: &WorkPool) {
    // SAFETY: the caller's contract.
    unsafe { drain_all_with(h, m, workers, Some(pool), &|_| {}, |_| {}) }
}

/// `drain_all`, where every marker, the calling thread's included, first
/// runs `every` on its own marker (a share of the roots it claims); open to
/// assists through `open` (see `drain_all_open`).
///
/// # Safety
/// As `drain_all`.
pub unsafe fn drain_all_with(
    h: &Heap,
    m: &mut Marker,
    workers: Option<&MarkWorkers>,
    open: Option<&WorkPool>,
    every: &(dyn Fn(&mut Marker) + Sync),
    roots: impl FnOnce(&mut Marker),
) {
    let workers = workers.filter(|ws| ws.threads() > 0);
    let pool = match (workers, open) {
        (Some(ws), _) => &ws.pool,
        (None, Some(pool)) => pool,
        (None, None) => {
            every(m);
            roots(m);
            // SAFETY: the caller's contract.
            unsafe { m.drain(h) };
            return;
        }
    };
    debug_assert!(open.is_none_or(|p| std::ptr::eq(p, pool)), "assists share the workers' pool");
    pool.begin(workers.map_or(0, |ws| ws.threads()) + 1, open.is_some());
    let overflowed = std::sync::atomic::AtomicBool::new(false);
    let helper = |_: usize, wm: &mut Marker| {
        wm.reset();
        wm.pool = pool;
        every(wm);
        // SAFETY: the caller's contract holds until `run` has waited for us.
        unsafe { wm.drain_shared(h, pool) };
        if wm.overflowed {
            overflowed.store(true, Relaxed);
        }
    };
    let here = || {
        m.pool = pool;
        every(m);
        roots(m);
        // SAFETY: the caller's contract.
        unsafe { m.drain_shared(h, pool) };
    };
    match workers {
        Some(ws) => ws.run(&helper, here),
        None => here(),
    }
    // Every marker has stopped, and no assist holds work.
    m.overflowed |= overflowed.load(Relaxed) | pool.take_assist_overflow();
}

/// How many program threads may assist at once (more just allocate on).
const ASSIST_MARKERS: usize = 4;
/// An assist's mark stack: its share is bounded, so a small one does.
const ASSIST_STACK_ENTRIES: usize = 1 << 18;

/// The markers mark assists run on (`Marker::assist`), each used by one
/// program thread at a time, made on first use [Go: each P's gcWork].
pub struct AssistMarkers {
    slots: [AssistSlot; ASSIST_MARKERS],
}

struct AssistSlot {
    /// Held by the thread that uses `marker`.
    busy: std::sync::atomic::AtomicBool,
    marker: UnsafeCell<Option<Marker>>,
}

// SAFETY: a slot's marker is touched only by the thread that set its `busy`
// (Acquire), until it clears it (Release).
unsafe impl Sync for AssistMarkers {}
// SAFETY: as above.
unsafe impl Send for AssistMarkers {}

impl AssistMarkers {
    pub const fn new() -> AssistMarkers {
        AssistMarkers {
            slots: [const { AssistSlot { busy: std::sync::atomic::AtomicBool::new(false), marker: UnsafeCell::new(None) } };
                ASSIST_MARKERS],
        }
    }

    /// Runs `f` on a free assist marker; None when every one is in use.
    pub fn with<R>(&self, f: impl FnOnce(&mut Marker) -> R) -> Option<R> {
        let slot = self.slots.iter().find(|s| !s.busy.load(Relaxed) && !s.busy.swap(true, Acquire))?;
        struct Free<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Free<'_> {
            fn drop(&mut self) {
                self.0.store(false, Release);
            }
        }
        let _free = Free(&slot.busy);
        // SAFETY: we set `busy`: the marker is ours until `_free` drops.
        let m = unsafe { (*slot.marker.get()).get_or_insert_with(|| Marker::with_capacity(ASSIST_STACK_ENTRIES)) };
        Some(f(m))
    }

    /// In a forked child: the threads that held slots are gone.
    pub fn forget_threads(&self) {
        for s in &self.slots {
            s.busy.store(false, Relaxed);
        }
    }
}

impl Default for AssistMarkers {
    fn default() -> AssistMarkers {
        AssistMarkers::new()
    }
}

/// Which roots `mark_roots` scans.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// Everything (a stop-the-world mark).
    All,
    /// The first pause of a concurrent mark: segments, added ranges, stacks,
    /// registers and TLS, pushed but not drained (the drain runs with the
    /// world started again). Pinned objects and finalizer state wait for the
    /// final pause, whose walk over the spans needs the world stopped.
    Start,
    /// The final pause of a concurrent mark: everything, and every pinned
    /// scannable object scanned again even if it is marked, since the kernel
    /// writes into pinned memory without the write tracker seeing it.
    Final,
}

/// During a concurrent mark, with the world running: marks the pinned objects
/// of the flagged spans (see `Heap::for_each_span_with_extras`), and marks
/// the noscan spans without special records walked (`pinner::walk_noscan`),
/// so that the final pause walks only the spans pinned since, those with
/// specials, and scannable ones (whose pinned objects it scans again: the
/// kernel may have written them). A pin after that clears the span's walked
/// bit; an unpin while the mark runs walks the span again.
///
/// # Safety
/// No span is freed meanwhile (`Heap::marking_concurrently`), and the final
/// pause has not begun.
pub unsafe fn mark_pinned_concurrently(h: &Heap, m: &mut Marker, high_water: usize) {
    // SAFETY: per the contract, flagged spans stay in use; pin bits are read
    // as atomics, the specials under their lock.
    unsafe {
        h.for_each_span_with_extras(high_water, false, |s| {
            if (*s).noscan() {
                pinner::walk_noscan(s);
                return;
            }
            pinner::for_each_pinned(s, |idx| m.mark_object(s, idx));
            m.drain(h);
        });
    }
}

/// Pushes, for the written pages `[lo, hi)` of a concurrent mark, the part of
/// every marked object of a scannable span that lies in them: a pointer
/// written since the object was scanned is in a written page (and drains
/// when the stack fills up). Returns the count of entries pushed.
///
/// # Safety
/// No span is freed meanwhile (the world is stopped, or a concurrent mark
/// runs: explicit frees leave spans to the sweep then).
pub unsafe fn push_written(h: &Heap, m: &mut Marker, lo: usize, hi: usize) -> usize {
    let mut pushed = 0;
    let mut p = lo;
    while p < hi {
        let s = h.span_of_heap(p);
        if s.is_null() {
            p = (p | (PAGE_SIZE - 1)) + 1;
            continue;
        }
        // SAFETY: an in-use span stays in use (contract); its geometry is fixed.
        unsafe {
            let end = hi.min((*s).limit());
            if !(*s).noscan() {
                // The objects that overlap [p, end), 64 at a time: most of a
                // written page is often new, unmarked objects.
                // (The span's tail past its last object has no index.)
                let n = (*s).nelems as usize;
                let first = (*s).index_of(p);
                let last = (*s).index_of(end - 1).min(n.wrapping_sub(1));
                let mut w = first / 64;
                while first < n && w * 64 <= last {
                    let mut bits = (*s).mark_word(w) & (*s).alloc[w].load(Relaxed);
                    if w == first / 64 {
                        bits &= !0u64 << (first % 64);
                    }
                    if w == last / 64 && last % 64 < 63 {
                        bits &= (1u64 << (last % 64 + 1)) - 1;
                    }
                    while bits != 0 {
                        let idx = w * 64 + bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        let ob = (*s).object_base(idx);
                        let (a, b) = (ob.max(p), (ob + (*s).elemsize).min(end));
                        m.push(a, b - a);
                        pushed += 1;
                    }
                    w += 1;
                }
            }
            // A pass over many written pages would otherwise fill the mark
            // stack with them (and overflow, whose recovery rescans the heap).
            if m.len > m.cap / 8 {
                m.drain(h);
            }
            p = end;
        }
    }
    pushed
}

/// Scans the roots `which` into `m`, draining it between them unless
/// `which` is `Roots::Start`.
///
/// # Safety
/// As `mark`: the world is stopped.
#[allow(clippy::too_many_arguments)] // the cycle's state, passed down once
pub unsafe fn mark_roots(
    h: &Heap,
    m: &mut Marker,
    w: &Threads,
    me: *mut ThreadState,
    sp: usize,
    loaded: &LoadedObjects,
    pa: &PageAlloc,
    which: Roots,
) {
    let drain = |m: &mut Marker| {
        if which != Roots::Start {
            // SAFETY: the world is stopped (the contract).
            unsafe { m.drain(h) };
        }
    };
    // SAFETY: the caller's contract: the world is stopped; every range scanned below
    // is mapped and readable: loaded segments (the loader's list is locked),
    // registered roots, the mapped parts of stacks, TLS blocks checked mapped.
    unsafe {
        scan_segments_and_ranges(h, m, loaded, drain);
        for &t in w.registered.iter().chain(w.forked_away.iter()) {
            if (*t).runtime_only.load(Relaxed) {
                continue;
            }
            for_each_stack_range(t, me, sp, |lo, hi| m.scan_range(h, lo, hi));
            if t != me {
                let regs = (*t).saved_regs.get() as usize;
                m.scan_range(h, regs, regs + std::mem::size_of::<[usize; crate::threads::SAVED_REGS]>());
            }
            tls::for_each_block((*t).tp, &loaded.tls, |lo, hi| m.scan_range(h, lo, hi));
            drain(m);
        }
        if which == Roots::Start {
            return;
        }
        h.for_each_span_with_extras(pa.high_water, which == Roots::Final, |s| {
            let noscan = (*s).noscan();
            pinner::for_each_pinned(s, |idx| {
                if which == Roots::Final && !noscan {
                    (*s).set_marked(idx);
                    m.push((*s).object_base(idx), (*s).elemsize);
                } else {
                    m.mark_object(s, idx);
                }
            });
            if (*s).specials.get_mut().map(|l| l.is_empty()).unwrap_or(false) {
                return;
            }
            let list = (*s).specials.get_mut().unwrap_or_else(|e| e.into_inner());
            list.for_each(|sp| {
                if sp.kind == KIND_FINALIZER {
                    if !noscan {
                        let b = (*s).object_base(sp.index as usize);
                        m.push(b, (*s).elemsize);
                    }
                    m.mark_word(h, sp.arg as usize);
                } else if sp.kind == KIND_CLEANUP {
                    m.mark_word(h, sp.arg as usize);
                }
            });
            drain(m);
        });
        h.finq.for_each_queued(|obj, arg| {
            m.mark_word(h, obj);
            m.mark_word(h, arg);
        });
    }
}

/// Scans the data and bss segments of `loaded`, then the ranges of
/// `gc_add_roots` (under their lock), calling `after` after each range.
///
/// # Safety
/// The segments are mapped (the loader's list is locked) and the marker may
/// mark (as `mark`, or `mark_roots_running`).
unsafe fn scan_segments_and_ranges(h: &Heap, m: &mut Marker, loaded: &LoadedObjects, after: impl Fn(&mut Marker)) {
    // SAFETY: per the contract.
    unsafe {
        for &(lo, hi) in &loaded.segments {
            m.scan_range(h, lo, hi);
            after(m);
        }
        h.roots.for_each(|lo, hi| {
            m.scan_range(h, lo, hi);
            after(m);
        });
    }
}

/// During a concurrent mark's catch-up passes, with the world running: scans
/// the roots that can be read safely while their owners run, so that what
/// they reach now is marked before the final pause, which scans every root
/// again: the data and bss segments, the ranges of `gc_add_roots` (under
/// their lock: a range removed waits for the scan before the program can
/// unmap it), and each registered thread's stack from the stack pointer
/// the first pause found (`ThreadState::first_pause_sp`) up. That part is
/// mapped while the thread lives, and no registered thread can exit while
/// the cycle holds the world lock; its deeper frames, registers, TLS and
/// alternate signal stack are left to the final pause. What these words
/// hold may change under the scan: any value read is a possible pointer,
/// and nothing is lost that the final pause would not find. Pushes without
/// draining.
///
/// # Safety
/// The caller holds the world lock (the registry `w` is stable) and the
/// loader's list locked (`loaded` is mapped); no span is freed meanwhile
/// (`Heap::marking_concurrently`).
pub unsafe fn mark_roots_running(h: &Heap, m: &mut Marker, w: &Threads, loaded: &LoadedObjects) {
    // SAFETY: per the contract, every range below stays mapped and readable
    // during the scan; the words are read as atomics.
    unsafe {
        scan_segments_and_ranges(h, m, loaded, |_| {});
        for &t in w.registered {
            // (0 for the runtime's own threads too: their stacks are no roots.)
            let sp = (*t).first_pause_sp.load(Relaxed);
            if sp != 0 {
                m.scan_range(h, sp, (*t).stack_hi);
            }
        }
    }
}

/// The most marker threads a cycle uses, the collecting thread included.
pub use crate::config::MAX_MARKERS;

/// A job for the marker threads: called with the thread's number (1 and up)
/// and its own marker.
type Job<'a> = dyn Fn(usize, &mut Marker) + Sync + 'a;

/// The marker threads: started once, parked on a futex between jobs (see
/// the top of this file). Driven only by the holder of the world lock.
pub struct MarkWorkers {
    /// The threads started (the collecting thread not counted).
    threads: AtomicUsize,
    /// Bumped to start a job; the threads wait on it. Its top bits hold how
    /// many threads the job runs on (`EPOCH_THREADS_SHIFT`): one load tells
    /// a thread both that a job started and whether it is one of its
    /// threads. (Read apart, a thread left out of one job could take the
    /// count of the next, run that job, and then run it again.)
    epoch: AtomicU32,
    /// Threads still in the current job; the driver waits on it.
    running: AtomicU32,
    /// The current job, valid while `running` is nonzero.
    job: UnsafeCell<Option<*const Job<'static>>>,
    /// How many threads a job runs on (`limit`): the first `helpers` by
    /// number; the others skip it.
    helpers: AtomicUsize,
    /// Where the markers share work.
    pub pool: WorkPool,
}

// SAFETY: `job` is written by the driver only while no thread runs a job
// (before bumping `epoch`, Release) and read by the threads after they see
// the bump (Acquire); the pointee is Sync.
unsafe impl Sync for MarkWorkers {}
// SAFETY: as above.
unsafe impl Send for MarkWorkers {}

impl MarkWorkers {
    pub fn new() -> MarkWorkers {
        MarkWorkers {
            threads: AtomicUsize::new(0),
            epoch: AtomicU32::new(0),
            running: AtomicU32::new(0),
            job: UnsafeCell::new(None),
            helpers: AtomicUsize::new(usize::MAX),
            pool: WorkPool::new(),
        }
    }

    /// Marker threads a job runs on (beside the collecting thread): those
    /// started, at most the `limit` in force.
    pub fn threads(&self) -> usize {
        self.threads.load(Relaxed).min(self.helpers.load(Relaxed))
    }

    /// Until the guard drops, jobs run on at most `helpers` marker threads
    /// (phases with the world running leave the other cores to the program).
    pub fn limit(&self, helpers: usize) -> HelperLimit<'_> {
        self.helpers.store(helpers, Relaxed);
        HelperLimit(self)
    }

    /// Starts marker threads until `want` run (at most `MAX_MARKERS - 1`).
    /// Must be called before the world stops (thread creation allocates);
    /// a thread that cannot be created leaves the cycle with fewer markers.
    pub fn ensure_threads(&'static self, want: usize) {
        let want = want.min(MAX_MARKERS - 1);
        while self.threads.load(Relaxed) < want {
            let number = self.threads.load(Relaxed) + 1;
            // No job runs: every thread started sees this epoch as its last.
            let epoch = self.epoch.load(Acquire);
            let spawned = crate::threads::spawn_runtime_thread(
                std::thread::Builder::new().name(format!("gcpin-mark{number}")).stack_size(256 << 10),
                move || self.thread_main(number, epoch),
            );
            if spawned.is_err() {
                break;
            }
            self.threads.store(number, Relaxed);
        }
    }

    /// In a forked child: the marker threads did not survive the fork.
    pub fn forget_threads(&self) {
        self.threads.store(0, Relaxed);
    }

    fn thread_main(&self, number: usize, mut seen: u32) {
        // The program's signals go to its own threads, never to ours.
        crate::threads::block_signals_except(&[]);
        let mut m = Marker::new();
        loop {
            let now = loop {
                let e = self.epoch.load(Acquire);
                if e != seen {
                    break e;
                }
                os::futex_wait(&self.epoch, seen, None);
            };
            seen = now;
            if number > (now >> EPOCH_THREADS_SHIFT) as usize {
                // Not one of this job's threads: it does not wait for us.
                continue;
            }
            // SAFETY: the driver wrote the job before the bump we saw, and
            // keeps it (and what it borrows) alive until `running` drops to 0.
            if let Some(job) = unsafe { *self.job.get() } {
                // SAFETY: as above.
                unsafe { (*job)(number, &mut m) };
            }
            m.release_memory();
            if self.running.fetch_sub(1, AcqRel) == 1 {
                os::futex_wake(&self.running, 1);
            }
        }
    }

    /// Runs `job` on every marker thread while the calling thread runs `here`,
    /// and returns when all are done.
    pub fn run(&self, job: &Job<'_>, here: impl FnOnce()) {
        let n = self.threads();
        if n == 0 {
            here();
            return;
        }
        // SAFETY: no thread runs a job (the last `run` waited for them all);
        // the lifetime is erased only until we wait for them below.
        unsafe {
            *self.job.get() = Some(std::mem::transmute::<&Job<'_>, &'static Job<'static>>(job) as *const Job<'static>)
        };
        self.running.store(n as u32, Relaxed);
        // Only this thread (the world lock's holder) writes the epoch.
        let bumped = (self.epoch.load(Relaxed) + 1) & EPOCH_COUNT_MASK;
        self.epoch.store(bumped | (n as u32) << EPOCH_THREADS_SHIFT, Release);
        os::futex_wake(&self.epoch, i32::MAX);
        // Waits for the threads even if `here` unwinds: they borrow the job.
        struct WaitForThreads<'a>(&'a MarkWorkers);
        impl Drop for WaitForThreads<'_> {
            fn drop(&mut self) {
                loop {
                    let left = self.0.running.load(Acquire);
                    if left == 0 {
                        break;
                    }
                    os::futex_wait(&self.0.running, left, None);
                }
                // SAFETY: every thread is done with the job.
                unsafe { *self.0.job.get() = None };
            }
        }
        let _wait = WaitForThreads(self);
        here();
    }
}

/// Where `MarkWorkers::epoch` keeps the job's thread count (at most
/// `MAX_MARKERS - 1`, 7 bits), and the mask of its counter below.
const EPOCH_THREADS_SHIFT: u32 = 24;
const EPOCH_COUNT_MASK: u32 = (1 << EPOCH_THREADS_SHIFT) - 1;
const _: () = assert!(MAX_MARKERS < 1 << (32 - EPOCH_THREADS_SHIFT));

/// Lifts a `MarkWorkers::limit` when dropped.
pub struct HelperLimit<'a>(&'a MarkWorkers);

impl Drop for HelperLimit<'_> {
    fn drop(&mut self) {
        self.0.helpers.store(usize::MAX, Relaxed);
    }
}

impl Default for MarkWorkers {
    fn default() -> MarkWorkers {
        MarkWorkers::new()
    }
}

#[cfg(test)]
mod tests {
    //! Marking and sweeping on a heap of the test's own (single-threaded, no
    //! signals): objects come from an mcache the test owns, roots are ranges
    //! it registers, and no thread is scanned.
    use super::*;
    use crate::config::Config;
    use crate::links::LinkTable;
    use crate::mcache::Mcache;
    use crate::sizeclass::size_to_class;
    use crate::sweep::sweep;

    fn test_heap() -> Box<Heap> {
        Box::new(Heap::new(Config::from_lookup(
            |k| (k == "GCPIN_MAX_HEAP").then(|| "64M".to_string()),
            |w| panic!("{w}"),
        )))
    }

    /// Span class of scanned (or noscan) objects of `size` bytes.
    fn class(size: usize, noscan: bool) -> usize {
        size_to_class(size) << 1 | noscan as usize
    }

    fn alloc(h: &Heap, mc: &mut Mcache, spc: usize) -> usize {
        mc.alloc(h, spc).expect("the test heap has room").0
    }

    fn allocated(h: &Heap, p: usize) -> bool {
        let s = h.span_of_heap(p);
        // SAFETY: a span of the test's heap, which no other thread uses.
        !s.is_null() && unsafe { (*s).is_allocated((*s).index_of(p)) }
    }

    /// A full cycle on the test heap: mcache emptied, mark from the root
    /// ranges, sweep. Returns the sweep's report and the marker.
    fn collect(h: &Heap, mc: &mut Mcache, m: &mut Marker) -> crate::sweep::SweepReport {
        collect_with(h, mc, m, None)
    }

    /// `collect`, marking with `workers`' threads beside this one.
    fn collect_with(
        h: &Heap,
        mc: &mut Mcache,
        m: &mut Marker,
        workers: Option<&MarkWorkers>,
    ) -> crate::sweep::SweepReport {
        collect_by(h, mc, |pa, none| {
            // SAFETY: no other thread uses this heap (the world is trivially
            // stopped); no thread record is scanned.
            unsafe { mark(h, m, none, std::ptr::null_mut(), 0, &LoadedObjects::default(), pa, workers) }
        })
    }

    /// A cycle on the test heap whose marking is `mark_step` (given the
    /// locked page allocator and no threads to scan): mcache emptied, mark,
    /// sweep.
    fn collect_by(
        h: &Heap,
        mc: &mut Mcache,
        mark_step: impl FnOnce(&PageAlloc, &Threads),
    ) -> crate::sweep::SweepReport {
        mc.release_all(h, false);
        let mut pa = h.pages.lock().unwrap();
        mark_step(&pa, &Threads { registered: &[], forked_away: &[] });
        sweep(h, &LinkTable::new(), &mut pa)
    }

    /// A binary tree of `n` 32-byte nodes (words 0 and 1 the children), built
    /// top-down, and its root.
    fn tree(h: &Heap, mc: &mut Mcache, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let node = alloc(h, mc, class(32, false));
        let rest = n - 1;
        let (l, r) = (tree(h, mc, rest / 2), tree(h, mc, rest - rest / 2));
        // SAFETY: a fresh 32-byte object of the test's heap.
        unsafe {
            *(node as *mut usize) = l;
            *(node as *mut usize).add(1) = r;
        }
        node
    }

    #[test]
    #[cfg_attr(miri, ignore = "a heap of its own and marker threads: too large for Miri")]
    fn parallel_markers_find_exactly_what_one_marker_finds() {
        let h = test_heap();
        let mut mc = Mcache::new();
        // A deep tree (shared down its spine), a table larger than a scan
        // chunk whose slots head lists (shared a chunk at a time), and a
        // garbage tree beside them.
        const TREE: usize = 60_000;
        const SLOTS: usize = 2 * SCAN_CHUNK / 8; // the largest small object
        const LIST: usize = 6;
        let root = tree(&h, &mut mc, TREE);
        let table = alloc(&h, &mut mc, class(SLOTS * 8, false));
        for i in 0..SLOTS {
            let mut next = 0;
            for _ in 0..LIST {
                let n = alloc(&h, &mut mc, class(16, false));
                // SAFETY: a fresh 16-byte object.
                unsafe { *(n as *mut usize) = next };
                next = n;
            }
            // SAFETY: `table` has SLOTS words.
            unsafe { *(table as *mut usize).add(i) = next };
        }
        let _garbage = tree(&h, &mut mc, 5_000);
        let roots = Box::new([root, table]);
        h.roots.add(roots.as_ptr() as usize, std::mem::size_of_val(&*roots)).unwrap();
        let want = TREE + 1 + SLOTS * LIST;
        let mut m = Marker::new();
        assert_eq!(collect(&h, &mut mc, &mut m).live_objects, want, "one marker");
        let workers: &'static MarkWorkers = Box::leak(Box::new(MarkWorkers::new()));
        workers.ensure_threads(3);
        assert_eq!(workers.threads(), 3);
        for round in 0..20 {
            let r = collect_with(&h, &mut mc, &mut m, Some(workers));
            assert_eq!(r.live_objects, want, "four markers, round {round}");
        }
        h.roots.remove(roots.as_ptr() as usize, std::mem::size_of_val(&*roots)).unwrap();
        assert_eq!(collect_with(&h, &mut mc, &mut m, Some(workers)).live_objects, 0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "marker threads")]
    fn marker_threads_run_every_job_and_are_waited_for() {
        let workers: &'static MarkWorkers = Box::leak(Box::new(MarkWorkers::new()));
        workers.ensure_threads(2);
        let seen = [const { AtomicUsize::new(0) }; 3];
        for _ in 0..100 {
            workers.run(&|i, _| _ = seen[i].fetch_add(1, Relaxed), || _ = seen[0].fetch_add(1, Relaxed));
        }
        // `run` returned only after both threads ran each job.
        assert_eq!(seen.map(|s| s.load(Relaxed)), [100, 100, 100]);
    }

    #[test]
    fn a_limit_leaves_the_other_marker_threads_out_of_every_job_once() {
        let workers: &'static MarkWorkers = Box::leak(Box::new(MarkWorkers::new()));
        workers.ensure_threads(3);
        let seen = [const { AtomicUsize::new(0) }; 4];
        // Jobs on one helper, then on all, alternating: a thread left out of
        // one job must run the next exactly once.
        for round in 0..200 {
            let limit = (round % 2 == 0).then(|| workers.limit(1));
            assert_eq!(workers.threads(), if limit.is_some() { 1 } else { 3 });
            workers.run(&|i, _| _ = seen[i].fetch_add(1, Relaxed), || _ = seen[0].fetch_add(1, Relaxed));
        }
        assert_eq!(seen.map(|s| s.load(Relaxed)), [200, 200, 100, 100]);
        assert_eq!(workers.threads(), 3, "the limit is lifted with its guard");
    }

    #[test]
    #[cfg_attr(miri, ignore = "a heap of its own: a 128 MiB arena, too large for Miri")]
    fn what_a_root_range_reaches_survives_and_the_rest_is_freed() {
        let h = test_heap();
        let mut mc = Mcache::new();
        let spc = class(32, false);
        let (a, b, c) = (alloc(&h, &mut mc, spc), alloc(&h, &mut mc, spc), alloc(&h, &mut mc, spc));
        let d = alloc(&h, &mut mc, class(32, true));
        let e = alloc(&h, &mut mc, spc);
        // SAFETY: a and d are fresh 32-byte objects of the test's heap.
        unsafe {
            *(a as *mut usize).add(3) = b + 8; // an interior pointer, in the last word
            *(d as *mut usize) = e; // inside a noscan object: keeps nothing
        }
        let roots = Box::new([a, d]);
        h.roots.add(roots.as_ptr() as usize, std::mem::size_of_val(&*roots)).unwrap();
        let mut m = Marker::with_capacity(64);
        let r = collect(&h, &mut mc, &mut m);
        assert_eq!(r.live_objects, 3, "a, b (through a) and d (a root)");
        assert!(allocated(&h, a) && allocated(&h, b) && allocated(&h, d));
        assert!(!allocated(&h, c), "c was never referenced");
        assert!(!allocated(&h, e), "e was referenced only from inside a noscan object");
        h.roots.remove(roots.as_ptr() as usize, std::mem::size_of_val(&*roots)).unwrap();
        assert_eq!(collect(&h, &mut mc, &mut m).live_objects, 0, "without the root range nothing is live");
    }

    #[test]
    #[cfg_attr(miri, ignore = "a heap of its own: a 128 MiB arena, too large for Miri")]
    fn an_overflowing_mark_stack_loses_nothing() {
        let h = test_heap();
        let mut mc = Mcache::new();
        const WIDE: usize = 500;
        let table = alloc(&h, &mut mc, class(WIDE * 8, false));
        let leaves: Vec<usize> = (0..WIDE).map(|_| alloc(&h, &mut mc, class(48, false))).collect();
        for (i, &leaf) in leaves.iter().enumerate() {
            // SAFETY: `table` has WIDE words; each leaf has 6.
            unsafe {
                *(table as *mut usize).add(i) = leaf;
                *(leaf as *mut usize) = leaves[(i + 1) % WIDE];
            }
        }
        let roots = Box::new([table]);
        h.roots.add(roots.as_ptr() as usize, 8).unwrap();
        let mut m = Marker::with_capacity(4);
        let r = collect(&h, &mut mc, &mut m);
        assert!(m.overflow_rescans > 0, "the mark stack did not overflow");
        assert_eq!(r.live_objects, WIDE + 1);
        assert!(leaves.iter().all(|&l| allocated(&h, l)));
    }

    #[test]
    #[cfg_attr(miri, ignore = "a heap of its own: a 128 MiB arena, too large for Miri")]
    fn a_pinned_object_is_a_root_and_stays_allocated() {
        let h = test_heap();
        let mut mc = Mcache::new();
        let spc = class(64, false);
        let (pinned, reached, lost) = (alloc(&h, &mut mc, spc), alloc(&h, &mut mc, spc), alloc(&h, &mut mc, spc));
        // SAFETY: fresh objects of the test's heap.
        unsafe { *(pinned as *mut usize) = reached };
        let s = h.span_of_heap(pinned);
        // SAFETY: `pinned` is allocated in `s`.
        let idx = unsafe { (*s).index_of(pinned) };
        pinner::pin_object(s, idx).unwrap();
        let mut m = Marker::with_capacity(64);
        let r = collect(&h, &mut mc, &mut m);
        assert_eq!(r.live_objects, 2);
        assert!(allocated(&h, pinned) && allocated(&h, reached) && !allocated(&h, lost));
        pinner::unpin_object(s, idx);
        assert_eq!(collect(&h, &mut mc, &mut m).live_objects, 0, "unpinned, it is garbage");
    }

    #[test]
    #[cfg_attr(miri, ignore = "a heap of its own: a 128 MiB arena, too large for Miri")]
    fn a_noscan_span_walked_during_a_concurrent_mark_is_left_out_of_the_final_walk() {
        let h = test_heap();
        let mut mc = Mcache::new();
        let spc = class(64, true);
        let (a, b, c) = (alloc(&h, &mut mc, spc), alloc(&h, &mut mc, spc), alloc(&h, &mut mc, spc));
        let s = h.span_of_heap(a);
        assert!(s == h.span_of_heap(b) && s == h.span_of_heap(c), "one span holds the three");
        // SAFETY: the three are allocated in `s`, which no other thread uses.
        let (ia, ib, ic) = unsafe { ((*s).index_of(a), (*s).index_of(b), (*s).index_of(c)) };
        // SAFETY: as above.
        let marked = |i: usize| unsafe { (*s).mark_word(i / 64) & (1 << (i % 64)) != 0 };
        let high_water = h.pages.lock().unwrap().high_water;
        let final_walk_visits = || {
            let mut n = 0;
            // SAFETY: no span is freed meanwhile.
            unsafe { h.for_each_span_with_extras(high_water, true, |v| n += (v == s) as usize) };
            n
        };
        pinner::pin_object(s, ia).unwrap();
        h.marking_concurrently.store(true, Relaxed);
        let mut m = Marker::new();
        // SAFETY: no span is freed; the test's own heap.
        unsafe { mark_pinned_concurrently(&h, &mut m, high_water) };
        // SAFETY: as above.
        assert!(unsafe { (*s).walked() } && marked(ia) && !marked(ib), "the walk marks the pinned object");
        assert_eq!(final_walk_visits(), 0);
        pinner::pin_object(s, ib).unwrap();
        assert_eq!(final_walk_visits(), 1, "a pin since the walk leaves the span to the final pause");
        pinner::unpin_object(s, ib);
        pinner::walk_after_unpin(&h, s);
        assert_eq!(final_walk_visits(), 0, "an unpin during the mark walks it again");
        assert!(marked(ia) && !marked(ib), "and marks what is pinned, not what was");
        // With no mark running, an unpin leaves the span to the final pause.
        pinner::pin_object(s, ib).unwrap();
        h.marking_concurrently.store(false, Relaxed);
        pinner::unpin_object(s, ib);
        pinner::walk_after_unpin(&h, s);
        assert_eq!(final_walk_visits(), 1);
        // A span with a special record is never left out.
        extern "C" fn fin(_: *mut libc::c_void, _: *mut libc::c_void) {}
        crate::finalizer::set(s, ic, Some(fin), std::ptr::null_mut()).unwrap();
        h.marking_concurrently.store(true, Relaxed);
        // SAFETY: as above.
        unsafe { pinner::walk_noscan(s) };
        assert_eq!(final_walk_visits(), 1, "a span with a finalizer stays in the final walk");
        crate::finalizer::set(s, ic, None, std::ptr::null_mut()).unwrap();
        // SAFETY: as above.
        unsafe { pinner::walk_noscan(s) };
        assert_eq!(final_walk_visits(), 0);
        h.marking_concurrently.store(false, Relaxed);
        // The final pause skips the span: the pinned object lives on its
        // mark, the others are garbage.
        let r = collect_by(&h, &mut mc, |pa, none| {
            // SAFETY: no other thread uses this heap; no thread record is scanned.
            unsafe {
                mark_roots(&h, &mut m, none, std::ptr::null_mut(), 0, &LoadedObjects::default(), pa, Roots::Final);
                m.drain(&h);
            }
        });
        assert!(allocated(&h, a) && !allocated(&h, b) && !allocated(&h, c));
        assert_eq!(r.live_objects, 1);
        pinner::unpin_object(s, ia);
    }

    /// A phase open to assists on the test heap, its one packet a table of
    /// more than one scan chunk whose slots head 3-node lists (marked, as a
    /// root scan would leave it), with garbage beside it. Returns the pool,
    /// the bytes the mark scans and the objects it keeps.
    fn phase_on_a_table(h: &Heap) -> (WorkPool, usize, usize) {
        const SLOTS: usize = 4096;
        let mut mc = Mcache::new();
        let table = alloc(h, &mut mc, class(SLOTS * 8, false));
        let mut live = 1;
        for i in 0..SLOTS {
            let mut head = 0;
            for _ in 0..3 {
                let n = alloc(h, &mut mc, class(32, false));
                // SAFETY: fresh objects of the test's heap.
                unsafe { *(n as *mut usize) = head };
                head = n;
                live += 1;
            }
            // SAFETY: `table` has SLOTS words.
            unsafe { *(table as *mut usize).add(i) = head };
        }
        tree(h, &mut mc, 1000);
        mc.release_all(h, false);
        let pool = WorkPool::new();
        pool.begin(1, true);
        let s = h.span_of(table);
        // SAFETY: a live span of the test's heap; no other marker runs.
        unsafe { assert!((*s).try_mark((*s).index_of(table))) };
        assert!(pool.share(&[(table, SLOTS * 8)]));
        (pool, SLOTS * 8 + (live - 1) * 32, live)
    }

    #[test]
    #[cfg_attr(miri, ignore = "a heap of its own: a 128 MiB arena, too large for Miri")]
    fn an_assist_marks_its_share_and_gives_the_rest_back() {
        let h = test_heap();
        let (pool, all, live) = phase_on_a_table(&h);
        let mut a = Marker::with_capacity(ASSIST_STACK_ENTRIES);
        // SAFETY: no other thread uses the heap; no span is freed.
        let done = unsafe { a.assist(&h, &pool, 1024) };
        assert!(done >= 1024 && done < all / 4, "an assist of 1 KiB scanned {done} of {all} bytes");
        assert_eq!(a.len, 0, "the assist gave back what it did not mark");
        // The phase's marker finishes from what the assist gave back.
        let mut m = Marker::new();
        // SAFETY: as above.
        unsafe { m.drain_shared(&h, &pool) };
        assert!(!pool.open_to_assists(), "the phase ended");
        let r = sweep(&h, &LinkTable::new(), &mut h.pages.lock().unwrap());
        assert_eq!(r.live_objects, live);
    }

    #[test]
    #[cfg_attr(miri, ignore = "a heap of its own: a 128 MiB arena, too large for Miri")]
    fn a_bounded_drain_counts_the_words_it_resolves() {
        // Words that all point to one object already marked: draining them
        // scans nothing, yet each one is work.
        const WORDS: usize = 10_000;
        const PAID: usize = 1_000;
        let h = test_heap();
        let mut mc = Mcache::new();
        let obj = alloc(&h, &mut mc, class(32, false));
        mc.release_all(&h, false);
        let s = h.span_of(obj);
        // SAFETY: a live span of the test's heap; no other marker runs.
        unsafe { assert!((*s).try_mark((*s).index_of(obj))) };
        let mut m = Marker::with_capacity(ASSIST_STACK_ENTRIES);
        for _ in 0..WORDS {
            m.push(obj, 0);
        }
        // SAFETY: no other thread uses the heap; no span is freed.
        let left = unsafe { m.drain_bounded(&h, PAID as isize * ASSIST_WORD_COST) };
        let resolved = WORDS - m.len;
        assert!(left <= 0, "the budget was used up ({left} left)");
        // A word is paid for as it enters the ring, and the ring's words
        // not yet resolved when the budget runs out go back on the stack.
        assert!((PAID - RING..=PAID).contains(&resolved), "{resolved} words resolved for {PAID} paid");
        assert_eq!(m.scanned, 0, "nothing was scanned");
    }

    #[test]
    #[cfg_attr(miri, ignore = "a heap of its own and threads: too large for Miri")]
    fn assists_beside_a_marker_lose_nothing() {
        let h = test_heap();
        let (pool, _, live) = phase_on_a_table(&h);
        let assisted = std::thread::scope(|s| {
            let assists = s.spawn(|| {
                let mut a = Marker::with_capacity(ASSIST_STACK_ENTRIES);
                let mut bytes = 0;
                while pool.open_to_assists() {
                    // SAFETY: the phase frees no span; the heap is the test's.
                    bytes += unsafe { a.assist(&h, &pool, 512) };
                }
                bytes
            });
            let mut m = Marker::new();
            // The marker starts with nothing: what it marks, it takes from
            // the pool, and it ends only once the assists hold no work.
            // SAFETY: as above.
            unsafe { m.drain_shared(&h, &pool) };
            assists.join().unwrap()
        });
        let r = sweep(&h, &LinkTable::new(), &mut h.pages.lock().unwrap());
        assert_eq!(r.live_objects, live, "assists scanned {assisted} bytes");
    }
}
