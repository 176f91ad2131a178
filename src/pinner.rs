//! Pinning: Go's `runtime.Pinner` for C [Go: pinner.go].
//!
//! Pin state. Every object has two pin bits in its span's lazily allocated
//! `PinBits` array [Go: pinnerBits], read as a small count:
//!
//! | bits | meaning                                                        |
//! |------|----------------------------------------------------------------|
//! | 0    | not pinned                                                     |
//! | 1, 2 | pinned once, twice                                             |
//! | 3    | pinned `2 + count` times; `count >= 1` lives in a pin-counter special |
//!
//! Moves between 0, 1 and 2 are one compare-and-swap on the word and take no lock,
//! so the common pin, the common unpin and an object pinned by two pinners never
//! serialize on anything. Only the move into and out of state 3, and changes of
//! its counter, take the span's specials lock — a per-span lock, never a global
//! one (Go's `speciallock` was one). Who can change what:
//! - state 3 is entered and left only with the specials lock held, and the
//!   counter special exists exactly while the state is 3;
//! - a thread that sees state 3 takes the lock before touching anything.
//!
//! A pinned object is a root (see `mark`), so it is never freed or reused, and
//! the pin bits of free slots are always 0. The pin-bit arrays come from an
//! off-heap pool and are type-stable, so `is_pinned` may read them without the
//! thread being registered.
//!
//! The inner pinner. A `gc_pinner` (one word, zeroed by the user) points to an
//! `InnerPinner`: a 64-byte collected object with room for 5 references inline;
//! more spill into a collected array that is kept across unpins, so a pinner
//! reused for a big batch allocates nothing [Go: "runtime: let Pinner preallocate a reusable ref array"]. Each thread caches one
//! free inner pinner; `pinner_unpin` puts it there, every collection empties the
//! caches [Go: "runtime: cache inner pinner on P"]. Every inner pinner carries a finalizer set when it is first
//! allocated: if a collection finds it unreachable while it still holds pins, the
//! leak handler runs (default: message and abort). The objects of a leaked pinner
//! stay pinned for ever: the kernel may still write into them. (Go's cgocheck
//! for C, which reads pin states, is `cgocheck`.)

use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering::*};

use crate::alloc::malloc;
use crate::heap::{AllocFail, FindError, Heap, Target};
use crate::os;
use crate::pinbits::{self, slot, PinBits, STATE_MASK};
use crate::sizeclass::BITMAP_WORDS;
use crate::span::Span;
use crate::specials::{free_special, new_special, KIND_PIN_COUNTER};
use crate::threads::InRuntime;

/// The pin state (0..=3) of object `idx`.
#[inline]
pub fn pin_state(s: *const Span, idx: usize) -> u64 {
    // SAFETY: span records and pin-bit arrays are type-stable (see fixalloc), so
    // these reads are of valid memory even if the span is being recycled.
    unsafe {
        let pb = (*s).pins.load(Acquire);
        if pb.is_null() {
            return 0;
        }
        let (w, sh) = slot(idx);
        // `w` is below 16 for any index of an in-use span; the mask keeps a racy
        // read of a recycled record in bounds, and lets the compiler drop the
        // bounds check on this hot path.
        ((*pb).words[w & (BITMAP_WORDS * 2 - 1)].load(Relaxed) >> sh) & STATE_MASK
    }
}

/// The span's pin bits, allocating them on first use. Inside the runtime.
fn pin_bits(s: *mut Span) -> Result<*mut PinBits, AllocFail> {
    // SAFETY: `s` is an in-use span; `pins` is only ever set by CAS from null.
    unsafe {
        let pb = (*s).pins.load(Acquire);
        if !pb.is_null() {
            return Ok(pb);
        }
        let new = pinbits::alloc();
        if new.is_null() {
            return Err(AllocFail::NoMemory);
        }
        match (*s).pins.compare_exchange(std::ptr::null_mut(), new, AcqRel, Acquire) {
            Ok(_) => Ok(new),
            Err(winner) => {
                pinbits::free(new);
                Ok(winner)
            }
        }
    }
}

/// Calls `f(idx)` for every pinned object of `s`. World stopped (or a racy
/// snapshot otherwise).
pub fn for_each_pinned(s: *mut Span, mut f: impl FnMut(usize)) {
    // SAFETY: see pin_state.
    unsafe {
        let pb = (*s).pins.load(Acquire);
        if pb.is_null() {
            return;
        }
        let nwords = (*s).nelems as usize * 2;
        for (w, word) in (*pb).words.iter().enumerate().take(nwords.div_ceil(64)) {
            let mut v = word.load(Relaxed);
            while v != 0 {
                let bit = v.trailing_zeros();
                let idx = w * 32 + bit as usize / 2;
                f(idx);
                v &= !(STATE_MASK << (bit & !1));
            }
        }
    }
}

/// A concurrent mark's walk over the noscan span `s`, with the world running:
/// marks its pinned objects, and leaves its walked bit set when it has no
/// special records, so that the final pause skips it (`Roots::Final`, and the
/// sweep's walk over the specials) unless an object of it is pinned again
/// (`Span::note_extras`) or a record added. Run by the collector over every
/// flagged noscan span (`mark::mark_pinned_concurrently`), and by a thread
/// that unpinned in an unwalked one while a concurrent mark runs
/// (`walk_after_unpin`), so that the spans of I/O buffers pinned and unpinned
/// during the mark (most of them made during it) are not walked at the final
/// pause (at 256 MiB live in the pause benchmark: 600-3,500 spans, 20-150 µs
/// of it).
///
/// Why no pin is lost. The bit is set first, then the pin bits are read
/// (SeqCst, with a fence between); a pin is a SeqCst compare-and-swap, then
/// `note_extras` reads the bit. So either this walk sees the pin and marks the
/// object, or the pinner sees the bit and clears it, and the final pause
/// visits the span. Records are added under the specials lock, with the bit
/// read before it is released, and this walk takes the lock after setting
/// the bit: either it sees the record and clears the bit, or the adder sees
/// the bit and clears it. (Reading the records first and setting the bit
/// after could leave a span with a finalizer walked.) A noscan object needs
/// nothing but its mark: the kernel's writes into it hold no pointers.
///
/// # Safety
/// A concurrent mark runs and has not reached its final pause (the caller
/// is the collector in that phase, or inside the runtime, which the final
/// stop waits for, having read `Heap::marking_concurrently` set), so the mark
/// bytes are this cycle's and no span is freed; `s` is in use and noscan.
pub unsafe fn walk_noscan(s: *mut Span) {
    // SAFETY: per the contract.
    unsafe {
        (*s).set_walked();
        std::sync::atomic::fence(SeqCst);
        if !(*s).specials.lock().map(|l| l.is_empty()).unwrap_or(false) {
            (*s).clear_walked();
        }
        for_each_pinned(s, |idx| {
            if (*s).is_allocated(idx) {
                (*s).set_marked(idx);
            }
        });
    }
}

/// After an unpin in `s` while a concurrent mark may run: walks the span
/// again (`walk_noscan`) if it is noscan and a pin since the last walk left
/// it to the final pause. Inside the runtime.
#[inline]
pub(crate) fn walk_after_unpin(h: &Heap, s: *mut Span) {
    // Relaxed: a stale "not marking" only leaves the span to the final pause;
    // a stale "marking" is impossible inside the runtime (the flag is cleared
    // before the final stop, which waits for this thread, and set after the
    // first one).
    if !h.marking_concurrently.load(Relaxed) {
        return;
    }
    // SAFETY: the object just unpinned keeps `s` in use until the final
    // pause's sweep, which cannot start while we are inside the runtime.
    unsafe {
        if (*s).noscan() && !(*s).walked() {
            walk_noscan(s);
        }
    }
}

/// Adds one pin to object `idx` of `s`. Inside the runtime; the object is
/// allocated. The common case — pin bits present, fewer than two pins, no
/// interference — is one compare-and-swap, inlined into the caller.
#[inline]
pub fn pin_object(s: *mut Span, idx: usize) -> Result<(), AllocFail> {
    let r = if pin_object_fast(s, idx) { Ok(()) } else { pin_object_slow(s, idx) };
    // The collector's walks over pinned objects visit flagged spans only (and
    // a concurrent cycle's final pause skips those it walked): see
    // `Span::note_extras`.
    // SAFETY: `s` is in use.
    unsafe { (*s).note_extras() };
    r
}

/// The common case of `pin_object`: pin bits present, fewer than two pins, and
/// the compare-and-swap succeeds. False (nothing changed) otherwise. A caller
/// that pins with it alone must call `Span::note_extras` afterwards, as
/// `pin_object` does.
#[inline(always)]
fn pin_object_fast(s: *mut Span, idx: usize) -> bool {
    // SAFETY: `s` is in use; a non-null `pins` is its live pin-bit array.
    let pb = unsafe { (*s).pins.load(Acquire) };
    if pb.is_null() {
        return false;
    }
    let (w, sh) = slot(idx);
    // SAFETY: as above; `w` < BITMAP_WORDS * 2 for an index of an in-use span,
    // and the mask makes that visible to the compiler.
    let word = unsafe { &(*pb).words[w & (BITMAP_WORDS * 2 - 1)] };
    let old = word.load(Relaxed);
    // SeqCst: the pin is ordered before `note_extras`' read of the walked bit
    // (see `walk_noscan`).
    (old >> sh) & STATE_MASK < 2 && word.compare_exchange(old, old + (1 << sh), SeqCst, Relaxed).is_ok()
}

#[cold]
#[inline(never)]
fn pin_object_slow(s: *mut Span, idx: usize) -> Result<(), AllocFail> {
    let pb = pin_bits(s)?;
    let (w, sh) = slot(idx);
    // SAFETY: `pb` is the live pin-bit array of the in-use span `s`.
    let word = unsafe { &(*pb).words[w] };
    let mut old = word.load(Relaxed);
    loop {
        let st = (old >> sh) & STATE_MASK;
        if st < 2 {
            // SeqCst: as in `pin_object_fast`.
            match word.compare_exchange_weak(old, old + (1 << sh), SeqCst, Relaxed) {
                Ok(_) => return Ok(()),
                Err(o) => old = o,
            }
            continue;
        }
        // Two or more pins already: the counter path, under the span's lock.
        // SAFETY: `s` is in use; the lock guards its specials.
        let mut list = unsafe { (*s).specials.lock().unwrap_or_else(|e| e.into_inner()) };
        old = word.load(Relaxed);
        match (old >> sh) & STATE_MASK {
            3 => {
                let sp = list.find(idx as u32, KIND_PIN_COUNTER);
                if sp.is_null() {
                    os::throw("pin state 3 without a pin counter");
                }
                // SAFETY: the record is on the list we hold locked.
                unsafe { (*sp).count += 1 };
                return Ok(());
            }
            2 => {
                if word.compare_exchange(old, old + (1 << sh), AcqRel, Relaxed).is_err() {
                    old = word.load(Relaxed);
                    continue; // a lock-free move happened meanwhile; start over
                }
                let sp = new_special(idx as u32, KIND_PIN_COUNTER);
                if sp.is_null() {
                    // Undo: back to 2 pins, under the lock nobody else leaves 3.
                    word.fetch_sub(1 << sh, AcqRel);
                    return Err(AllocFail::NoMemory);
                }
                // SAFETY: fresh record; the list is locked.
                unsafe {
                    (*sp).count = 1;
                    list.insert(sp);
                    (*s).pin_counters.fetch_add(1, Relaxed);
                }
                return Ok(());
            }
            _ => {
                drop(list);
                old = word.load(Relaxed);
            }
        }
    }
}

/// Removes one pin from object `idx` of `s`. Inside the runtime. Aborts if the
/// object is not pinned: a pinner only unpins what it pinned, so that is a broken
/// invariant (or a `gc_pinner` used by two threads at once). The common case is
/// one inlined compare-and-swap.
#[inline]
pub fn unpin_object(s: *mut Span, idx: usize) {
    if unpin_object_fast(s, idx) {
        return;
    }
    unpin_object_slow(s, idx)
}

/// The common case of `unpin_object`: state 1 or 2, and the compare-and-swap
/// succeeds. False (nothing changed) otherwise.
#[inline(always)]
fn unpin_object_fast(s: *mut Span, idx: usize) -> bool {
    // SAFETY: a pinned object keeps its span in use and its pin bits.
    let pb = unsafe { (*s).pins.load(Acquire) };
    if pb.is_null() {
        return false;
    }
    let (w, sh) = slot(idx);
    // SAFETY: live pin-bit array; the mask as in `pin_object_fast`.
    let word = unsafe { &(*pb).words[w & (BITMAP_WORDS * 2 - 1)] };
    let old = word.load(Relaxed);
    let st = (old >> sh) & STATE_MASK;
    (st == 1 || st == 2) && word.compare_exchange(old, old - (1 << sh), AcqRel, Relaxed).is_ok()
}

#[cold]
#[inline(never)]
fn unpin_object_slow(s: *mut Span, idx: usize) {
    // SAFETY: an object with a pin keeps its span in use and its pin bits.
    let pb = unsafe { (*s).pins.load(Acquire) };
    if pb.is_null() {
        os::throw("unpin of an object that is not pinned");
    }
    let (w, sh) = slot(idx);
    // SAFETY: live pin-bit array.
    let word = unsafe { &(*pb).words[w] };
    let mut old = word.load(Relaxed);
    loop {
        match (old >> sh) & STATE_MASK {
            0 => os::throw("unpin of an object that is not pinned"),
            1 | 2 => match word.compare_exchange_weak(old, old - (1 << sh), AcqRel, Relaxed) {
                Ok(_) => return,
                Err(o) => old = o,
            },
            _ => {
                // SAFETY: `s` is in use; the lock guards its specials.
                let mut list = unsafe { (*s).specials.lock().unwrap_or_else(|e| e.into_inner()) };
                if (word.load(Relaxed) >> sh) & STATE_MASK != 3 {
                    drop(list);
                    old = word.load(Relaxed);
                    continue;
                }
                let sp = list.find(idx as u32, KIND_PIN_COUNTER);
                if sp.is_null() {
                    os::throw("pin state 3 without a pin counter");
                }
                // SAFETY: the record is on the list we hold locked.
                unsafe {
                    (*sp).count -= 1;
                    if (*sp).count == 0 {
                        let r = list.remove(idx as u32, KIND_PIN_COUNTER);
                        free_special(r);
                        (*s).pin_counters.fetch_sub(1, Relaxed);
                        word.fetch_sub(1 << sh, AcqRel); // 3 -> 2, only we leave 3
                    }
                }
                return;
            }
        }
    }
}

/// Outstanding pins on object `idx` of `s` [Go: GetPinCounter + 1].
pub fn pin_count(s: *mut Span, idx: usize) -> usize {
    let st = pin_state(s, idx);
    if st < 3 {
        return st as usize;
    }
    // SAFETY: `s` is in use; the lock guards its specials.
    let list = unsafe { (*s).specials.lock().unwrap_or_else(|e| e.into_inner()) };
    let sp = list.find(idx as u32, KIND_PIN_COUNTER);
    if sp.is_null() {
        // The count dropped to 2 between our two reads.
        return pin_state(s, idx) as usize;
    }
    // SAFETY: the record is on the list we hold locked.
    2 + unsafe { (*sp).count }
}

/// Why a pointer cannot be pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinError {
    Null,
    NotGcPointer,
    NotAllocated,
    NoMemory,
    Invalid,
}

impl From<FindError> for PinError {
    fn from(e: FindError) -> PinError {
        match e {
            FindError::Null => PinError::Null,
            FindError::NotGcPointer => PinError::NotGcPointer,
            FindError::NotAllocated => PinError::NotAllocated,
        }
    }
}

/// A pinner's reference to a pinned object: its span record and object index,
/// packed in one word (span records live below 2^48; indices are < 2^16). Not a
/// heap address, so a kept reference never retains an object conservatively,
/// and unpinning needs no page-table lookup.
#[inline]
fn pack_ref(s: *mut Span, idx: usize) -> usize {
    debug_assert!((s as usize) >> 48 == 0 && idx < 1 << 16);
    s as usize | idx << 48
}

#[inline]
fn unpack_ref(r: usize) -> (*mut Span, usize) {
    ((r & ((1 << 48) - 1)) as *mut Span, r >> 48)
}

/// Number of references an inner pinner holds inline [Go: pinner.go's pinnerRefStoreSize, from "runtime: let Pinner preallocate a reusable ref array"].
pub const INLINE_REFS: usize = 5;
const PINNER_MAGIC: u32 = 0x5049_4e52; // "PINR"

/// The collected state behind a `gc_pinner`. Exactly 64 bytes.
#[repr(C)]
pub struct InnerPinner {
    magic: u32,
    len: u32,
    spill_cap: u32,
    /// Who uses it (see `Claim`): the kernel thread id of the thread inside a
    /// pinner call with it, `USER_CACHED` while it sits in a thread's cache,
    /// 0 otherwise.
    user: AtomicU32,
    /// A collected noscan array of `spill_cap` references (`pack_ref`); once
    /// present, all references live there. Kept across unpins.
    spill: *mut usize,
    store: [usize; INLINE_REFS],
}

const _: () = assert!(std::mem::size_of::<InnerPinner>() == 64);

impl InnerPinner {
    fn refs(&mut self) -> *mut usize {
        if self.spill.is_null() {
            self.store.as_mut_ptr()
        } else {
            self.spill
        }
    }

    fn cap(&self) -> usize {
        if self.spill.is_null() {
            INLINE_REFS
        } else {
            self.spill_cap as usize
        }
    }

    /// Number of pinned references held.
    pub fn len(&self) -> usize {
        self.len as usize
    }
}

/// The user's pinner handle. A zeroed `gc_pinner` is ready to use; it must live
/// where the collector looks (stack, globals, GC heap, added roots).
#[repr(C)]
/// cbindgen:field-names=[impl]
pub struct gc_pinner {
    pub impl_: *mut c_void,
}

/// Leak handler: receives the number of objects the leaked pinner still pins.
pub type gc_leak_fn = Option<unsafe extern "C" fn(pinned_objects: usize, arg: *mut c_void)>;

static LEAK_HANDLER: AtomicUsize = AtomicUsize::new(0);
static LEAK_ARG: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

pub fn set_leak_handler(f: gc_leak_fn, arg: *mut c_void) {
    LEAK_ARG.store(arg, Release);
    LEAK_HANDLER.store(f.map_or(0, |f| f as usize), Release);
}

/// The finalizer of every inner pinner: a no-op for an empty one, the leak
/// report for one that still holds pins (which then stay pinned). Runs on the
/// finalizer thread or in gc_run_finalizers, outside the runtime.
unsafe extern "C" fn inner_pinner_finalizer(obj: *mut c_void, _arg: *mut c_void) {
    let inner = obj as *mut InnerPinner;
    // The inner pinner is unreachable and will be freed: without its magic, a
    // stale gc_pinner still pointing here (a copy the collector did not see, an
    // uninitialised one) gets GC_ERR_INVALID instead of reviving it.
    // SAFETY: the object is alive until our caller returns.
    unsafe { (*inner).magic = 0 };
    // SAFETY: the object is an inner pinner kept alive by the finalizer queue
    // and then by our caller's stack; refs() points at `len` valid entries.
    let mut objects: Vec<usize> = unsafe {
        let refs = (*inner).refs();
        (0..(*inner).len())
            .map(|i| {
                let (s, idx) = unpack_ref(*refs.add(i));
                (*s).object_base(idx)
            })
            .collect()
    };
    if objects.is_empty() {
        return;
    }
    // The handler gets the number of objects: an object pinned twice through
    // this pinner counts once.
    objects.sort_unstable();
    objects.dedup();
    let n = objects.len();
    let handler = LEAK_HANDLER.load(Acquire);
    if handler != 0 {
        // SAFETY: stored from a valid gc_leak_fn by set_leak_handler.
        let f: unsafe extern "C" fn(usize, *mut c_void) = unsafe { std::mem::transmute(handler) };
        // SAFETY: calling the user's handler with its own argument.
        unsafe { f(n, LEAK_ARG.load(Acquire)) };
        return;
    }
    let mut msg = String::from("gcpin: found leaking pinned pointer; forgot to call pinner_unpin()?\n");
    msg.push_str(&format!("gcpin: the leaked pinner holds {n} pinned object(s):"));
    for a in objects.iter().take(16) {
        msg.push_str(&format!(" {a:#x}"));
    }
    if n > 16 {
        msg.push_str(" ...");
    }
    msg.push('\n');
    os::write_stderr(&[&msg]);
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() };
}

/// Validates `p.impl_`: null, or an inner pinner: a 64-byte-aligned arena
/// address carrying the magic. The whole arena is mapped, so the magic read is
/// safe for any arena address; the check costs two compares and one load of a
/// line the caller touches next anyway. (A gc_pinner copied out of the
/// collector's sight can point to a freed inner pinner; that is a use after free
/// by the caller, as with any collected object.)
#[inline]
fn inner_of(h: &Heap, p: &gc_pinner) -> Result<*mut InnerPinner, PinError> {
    let a = p.impl_ as usize;
    if a == 0 {
        return Ok(std::ptr::null_mut());
    }
    // SAFETY: the arena is one readable mapping; `a` is inside it and aligned.
    if a & 63 == 0 && h.in_arena(a) && unsafe { (*(a as *const InnerPinner)).magic } == PINNER_MAGIC {
        Ok(a as *mut InnerPinner)
    } else {
        Err(PinError::Invalid)
    }
}

/// `InnerPinner::user` of an inner pinner in a thread's cache.
const USER_CACHED: u32 = u32::MAX;

/// A pinner call's use of an inner pinner: one thread at a time [Go: a
/// Pinner is not safe for concurrent use]. Two threads pinning or unpinning
/// through one `gc_pinner` at once would corrupt it (a lost reference, a pin
/// undone twice), so each call announces itself in the owner word when it
/// starts and checks, when it ends, that the word is still its own and (when
/// the call changed the `gc_pinner`) that it still holds what the call left in
/// it: two calls that overlap find each other's mark at one end or the other,
/// and the process
/// stops with a message that names the cause, instead of a crash later in an
/// unrelated call. Plain loads and stores on lines the call writes anyway: no
/// atomic read-modify-write on the pin path (a compare-and-swap to install an
/// inner pinner cost pin+unpin 12 ns, a quarter).
struct Claim {
    pinner: *const gc_pinner,
    inner: *mut InnerPinner,
    tid: u32,
    /// Set when the call parked the inner pinner in the thread's cache (and
    /// cleared the `gc_pinner`).
    cached: bool,
    /// Set when the call made `inner` the `gc_pinner`'s. (A call that leaves
    /// the `gc_pinner` as it found it needs no check of it: a thread that
    /// changes it meanwhile checks it itself, or claims our inner pinner.)
    installed: bool,
}

impl Claim {
    /// Claims `p`'s inner pinner `inner` (validated) for the calling thread.
    #[inline(always)]
    fn new(p: &gc_pinner, inner: *mut InnerPinner, g: &InRuntime) -> Claim {
        // SAFETY: the guard's thread is the caller's own live record.
        let tid = unsafe { (*g.thread()).tid };
        // SAFETY: a validated inner pinner; the word is atomic.
        let user = unsafe { &(*inner).user };
        let now = user.load(Relaxed);
        if now != 0 && now != tid {
            used_by_two_threads(now, tid);
        }
        user.store(tid, Relaxed);
        Claim { pinner: p, inner, tid, cached: false, installed: false }
    }

    /// Aborts, naming the misuse, if another thread has claimed the inner
    /// pinner since this call did.
    #[inline(always)]
    fn check_owner(&self) {
        // SAFETY: the claimed inner pinner is live for the call; atomic word.
        let now = unsafe { (*self.inner).user.load(Relaxed) };
        if now != self.tid {
            used_by_two_threads(now, self.tid);
        }
    }

    /// Makes `inner`, an inner pinner the calling thread owns alone (fresh, or
    /// taken from its own cache), the inner pinner of `p` (whose `impl` it saw
    /// null), claimed for this call.
    #[inline(always)]
    fn install(p: &mut gc_pinner, inner: *mut InnerPinner, g: &InRuntime) -> Claim {
        // SAFETY: the guard's thread is the caller's own live record; the
        // inner pinner is ours alone.
        let tid = unsafe { (*g.thread()).tid };
        // SAFETY: as above.
        unsafe { (*inner).user.store(tid, Relaxed) };
        p.impl_ = inner as *mut c_void;
        Claim { pinner: p, inner, tid, cached: false, installed: true }
    }
}

impl Drop for Claim {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: the inner pinner lives for the whole call (reachable from the caller's
        // gc_pinner or thread cache).
        let user = unsafe { &(*self.inner).user };
        let now = user.load(Relaxed);
        if now != self.tid {
            used_by_two_threads(now, self.tid);
        }
        if self.cached || self.installed {
            let expect = if self.cached { std::ptr::null_mut() } else { self.inner as *mut c_void };
            // SAFETY: the gc_pinner is the caller's; the read races only with the misuse it
            // is there to catch.
            if unsafe { std::ptr::read_volatile(&(*self.pinner).impl_) } != expect {
                used_by_two_threads(0, self.tid);
            }
        }
        user.store(if self.cached { USER_CACHED } else { 0 }, Relaxed);
    }
}

#[cold]
#[inline(never)]
fn used_by_two_threads(other: u32, me: u32) -> ! {
    let other = match other {
        0 => String::from("another thread"),
        USER_CACHED => String::from("another thread (whose cache it was in)"),
        t => format!("thread {t}"),
    };
    let msg = format!(
        "a gc_pinner was used by two threads at once ({other} and thread {me}); a gc_pinner is \
         not thread-safe: give each thread its own, or serialize the calls with a lock"
    );
    os::throw(&msg)
}

/// Pins one pointer through `p`. Inside the runtime. Returns whether a new inner
/// pinner was made (its finalizer needs the finalizer thread).
#[inline]
pub fn pin_one(g: &InRuntime, h: &Heap, p: &mut gc_pinner, ptr: usize) -> Result<bool, PinError> {
    let (s, idx) = match h.find_object(ptr)? {
        Target::Zero => return Ok(false),
        Target::Object(s, idx) => (s, idx),
    };
    let (inner, fresh, _claim) = claim_inner(g, h, p)?;
    // SAFETY: a validated inner pinner owned by `p`.
    unsafe {
        if (*inner).len() == (*inner).cap() {
            reserve(g, h, inner, 1)?;
        }
        pin_object(s, idx).map_err(|_| PinError::NoMemory)?;
        *(*inner).refs().add((*inner).len()) = pack_ref(s, idx);
        (*inner).len += 1;
    }
    Ok(fresh)
}

/// `p`'s inner pinner, claimed for this call, or (when it has none) the
/// thread's cached one or a fresh one, installed in `p`. The flag says
/// whether it was freshly allocated.
#[inline(always)]
fn claim_inner(g: &InRuntime, h: &Heap, p: &mut gc_pinner) -> Result<(*mut InnerPinner, bool, Claim), PinError> {
    let inner = inner_of(h, p)?;
    if !inner.is_null() {
        return Ok((inner, false, Claim::new(p, inner, g)));
    }
    let (inner, fresh) = new_inner(g, h)?;
    let claim = Claim::install(p, inner, g);
    Ok((inner, fresh, claim))
}

/// The common case of `pin_one`, for the C API's path before its panic
/// boundary: `p` has an inner pinner with room (or takes the thread's cached
/// one, as after an unpin), `ptr` is an allocated object, and its pin is one
/// compare-and-swap (`pin_object_fast`). Returns false when anything else is
/// needed, having pinned nothing (it may have given `p` the cached inner
/// pinner, as `pin_one` would); `pin_one` then does the whole job. Allocates
/// nothing and cannot panic (every index is bounded by an in-use span's
/// geometry).
#[inline(always)]
pub fn pin_one_fast(g: &InRuntime, h: &Heap, p: &mut gc_pinner, ptr: usize) -> bool {
    let Ok(Target::Object(s, idx)) = h.find_object(ptr) else { return false };
    let (inner, _claim) = match inner_of(h, p) {
        Ok(inner) if !inner.is_null() => (inner, Claim::new(p, inner, g)),
        Ok(_) => {
            let cached = take_cached_inner(g);
            if cached.is_null() {
                return false;
            }
            (cached, Claim::install(p, cached, g))
        }
        Err(_) => return false,
    };
    // SAFETY: a validated inner pinner owned by `p`; `len < cap` is checked
    // before the store.
    unsafe {
        let len = (*inner).len();
        if len == (*inner).cap() || !pin_object_fast(s, idx) {
            return false;
        }
        // As `pin_object` does after a pin.
        (*s).note_extras();
        *(*inner).refs().add(len) = pack_ref(s, idx);
        (*inner).len += 1;
    }
    true
}

/// The thread's cached inner pinner, or a fresh one with its leak finalizer.
/// The flag says whether it was freshly allocated.
fn new_inner(g: &InRuntime, h: &Heap) -> Result<(*mut InnerPinner, bool), PinError> {
    let cached = take_cached_inner(g);
    if !cached.is_null() {
        return Ok((cached, false));
    }
    let a = malloc(g, h, 64, false).map_err(|_| PinError::NoMemory)?;
    let inner = a as *mut InnerPinner;
    // SAFETY: a fresh zeroed 64-byte object we own.
    unsafe { (*inner).magic = PINNER_MAGIC };
    let s = h.span_of_heap(a);
    // SAFETY: `a` is the object we just allocated in span `s`.
    let idx = unsafe { (*s).index_of(a) };
    crate::finalizer::set(s, idx, Some(inner_pinner_finalizer), std::ptr::null_mut())
        .map_err(|_| PinError::NoMemory)?;
    Ok((inner, true))
}

/// Takes the thread's cached inner pinner (empty, with its leak finalizer), or
/// null if there is none.
#[inline(always)]
fn take_cached_inner(g: &InRuntime) -> *mut InnerPinner {
    // SAFETY: the guard's thread is the caller's own record; only it and a
    // collector (with this thread stopped outside the runtime) touch the cache.
    let cache = unsafe { &(*g.thread()).pinner_cache };
    let cached = cache.load(Relaxed);
    if cached != 0 {
        cache.store(0, Relaxed);
    }
    cached as *mut InnerPinner
}

/// Makes room for `extra` more references. Inside the runtime.
fn reserve(g: &InRuntime, h: &Heap, inner: *mut InnerPinner, extra: usize) -> Result<(), PinError> {
    // SAFETY: `inner` is a live inner pinner owned by the caller's gc_pinner.
    unsafe {
        let need = (*inner).len() + extra;
        if need <= (*inner).cap() {
            return Ok(());
        }
        let new_cap = need.max((*inner).cap() * 2).max(16);
        let arr =
            malloc(g, h, new_cap * std::mem::size_of::<usize>(), true).map_err(|_| PinError::NoMemory)? as *mut usize;
        std::ptr::copy_nonoverlapping((*inner).refs(), arr, (*inner).len());
        (*inner).store = [0; INLINE_REFS];
        (*inner).spill = arr;
        (*inner).spill_cap = new_cap as u32;
    }
    Ok(())
}

/// Pins every pointer in `ptrs` through `p`: all or nothing. Inside the runtime.
pub fn pin_all(g: &InRuntime, h: &Heap, p: &mut gc_pinner, ptrs: &[usize]) -> Result<bool, PinError> {
    let mut heap_objects = 0;
    for &ptr in ptrs {
        if let Target::Object(..) = h.find_object(ptr)? {
            heap_objects += 1;
        }
    }
    if heap_objects == 0 {
        return Ok(false);
    }
    let (inner, fresh, _claim) = claim_inner(g, h, p)?;
    reserve(g, h, inner, heap_objects)?;
    let mut done = 0usize;
    for &ptr in ptrs {
        let Ok(Target::Object(s, idx)) = h.find_object(ptr) else { continue };
        if pin_object(s, idx).is_err() {
            // Out of memory for a pin counter: undo this call's pins.
            // SAFETY: the refs we appended below are ours to undo.
            unsafe {
                let refs = (*inner).refs();
                let start = (*inner).len() - done;
                for i in start..(*inner).len() {
                    let (s2, i2) = unpack_ref(*refs.add(i));
                    unpin_object(s2, i2);
                }
                (*inner).len = start as u32;
            }
            return Err(PinError::NoMemory);
        }
        // SAFETY: capacity reserved above; the object is allocated.
        unsafe {
            *(*inner).refs().add((*inner).len()) = pack_ref(s, idx);
            (*inner).len += 1;
        }
        done += 1;
    }
    Ok(fresh)
}

/// Removes the pins of the references at `refs` that share the first one's
/// pin-bit word (a run of distinct objects of one span, as a batch of pins of
/// neighbouring objects leaves them) with one compare-and-swap, and returns how
/// many references it consumed (at least 1). Objects in state 1 or 2 only;
/// anything else goes through `unpin_object` one by one.
///
/// # Safety
/// Inside the runtime; `refs[..n]` are references this pinner holds (`n >= 1`).
unsafe fn unpin_group(refs: *const usize, n: usize) -> usize {
    // SAFETY: per the contract, each reference is a pinned object, so its span
    // is in use and keeps its pin bits.
    unsafe {
        let (s, idx) = unpack_ref(*refs);
        let pb = (*s).pins.load(Acquire);
        if pb.is_null() || n == 1 {
            unpin_object(s, idx);
            return 1;
        }
        let (w, sh) = slot(idx);
        // The run: following references into the same span and word, each a
        // slot not yet in the run.
        let mut ones = 1u64 << sh; // the low bit of each slot in the run
        let mut len = 1;
        while len < n {
            let (s2, i2) = unpack_ref(*refs.add(len));
            let (w2, sh2) = slot(i2);
            if s2 != s || w2 != w || ones & (1 << sh2) != 0 {
                break;
            }
            ones |= 1 << sh2;
            len += 1;
        }
        if len == 1 {
            unpin_object(s, idx);
            return 1;
        }
        let word = &(*pb).words[w];
        let mut old = word.load(Relaxed);
        loop {
            // Every slot of the run must be in state 1 or 2: its low and high
            // bits must not be equal (0 is unpinned, 3 the counter).
            let lo = old & ones;
            let hi = (old >> 1) & ones;
            if lo ^ hi != ones {
                break;
            }
            match word.compare_exchange_weak(old, old - ones, AcqRel, Relaxed) {
                Ok(_) => return len,
                Err(now) => old = now,
            }
        }
        for k in 0..len {
            let (s2, i2) = unpack_ref(*refs.add(k));
            unpin_object(s2, i2);
        }
        len
    }
}

/// Undoes every pin `p` made and parks its inner pinner in the thread's cache
/// when the cache is empty. Inside the runtime. A `gc_pinner` whose `impl` is
/// not an inner pinner is left alone (there is nothing safe to undo).
pub fn unpin_all(g: &InRuntime, h: &Heap, p: &mut gc_pinner) {
    let Ok(inner) = inner_of(h, p) else { return };
    if inner.is_null() {
        return;
    }
    let mut claim = Claim::new(p, inner, g);
    // SAFETY: a valid inner pinner; each reference is an object this pinner
    // pinned, hence allocated and in an in-use span.
    unsafe {
        let refs = (*inner).refs();
        let n = (*inner).len();
        let mut i = 0;
        while i < n {
            // Another thread that claimed this pinner meanwhile would change
            // the references under us, and an unpin of what it changed would
            // abort with a less telling message than this one.
            claim.check_owner();
            i += unpin_group(refs.add(i), n - i);
        }
        if h.marking_concurrently.load(Relaxed) {
            let mut last = std::ptr::null_mut();
            for i in 0..n {
                let (s, _) = unpack_ref(*refs.add(i));
                if s != last {
                    walk_after_unpin(h, s);
                    last = s;
                }
            }
        }
        (*inner).len = 0;
        cache_empty_inner(g, p, &mut claim);
    }
}

/// The common case of `unpin_all`, for the C API's path before its panic
/// boundary: the pinner holds one reference, to an object pinned once or
/// twice, and the compare-and-swap succeeds. False, with nothing changed,
/// otherwise. Cannot panic.
#[inline(always)]
pub fn unpin_one_fast(g: &InRuntime, h: &Heap, p: &mut gc_pinner) -> bool {
    let inner = match inner_of(h, p) {
        Ok(inner) if !inner.is_null() => inner,
        _ => return false,
    };
    let mut claim = Claim::new(p, inner, g);
    // SAFETY: a validated inner pinner; its one reference is an object it
    // pinned, so the span is in use and keeps its pin bits.
    unsafe {
        if (*inner).len() != 1 {
            return false;
        }
        let (s, idx) = unpack_ref(*(*inner).refs());
        if !unpin_object_fast(s, idx) {
            return false;
        }
        walk_after_unpin(h, s);
        (*inner).len = 0;
        cache_empty_inner(g, p, &mut claim);
    }
    true
}

/// After an unpin: the now empty inner pinner becomes the thread's cached one
/// (and `p` lets go of it) unless the thread has one already [Go: "runtime: cache inner pinner on P"].
///
/// # Safety
/// `claim` holds `p`'s valid inner pinner, which holds no references.
#[inline(always)]
unsafe fn cache_empty_inner(g: &InRuntime, p: &mut gc_pinner, claim: &mut Claim) {
    // SAFETY: the guard's thread is the caller's own record (see take_cached_inner).
    let cache = unsafe { &(*g.thread()).pinner_cache };
    if cache.load(Relaxed) == 0 {
        cache.store(claim.inner as usize, Relaxed);
        p.impl_ = std::ptr::null_mut();
        claim.cached = true;
    }
}

/// Whether `ptr` is pinned: true for memory the collector does not manage. A
/// few loads; needs no registration [Go: isPinned].
#[inline(always)]
pub fn is_pinned(h: &Heap, ptr: usize) -> bool {
    let s = h.span_of(ptr);
    if s.is_null() {
        // Outside the arena: memory the collector never moves or frees. Inside
        // it but on free pages: no object, so nothing is pinned there.
        return ptr != 0 && !h.in_arena(ptr);
    }
    // SAFETY: type-stable span record (see fixalloc).
    let idx = unsafe { (*s).index_of(ptr) };
    pin_state(s, idx) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::free_pin_bits;
    use crate::span::Span;
    use std::sync::atomic::AtomicU8;

    fn span() -> Box<Span> {
        // SAFETY: all-zero is a valid Span (see span tests).
        let mut s: Box<Span> = unsafe { Box::new(std::mem::zeroed()) };
        let marks = Box::leak(Box::new([const { AtomicU8::new(0) }; 512])).as_ptr();
        s.init(1 << 30, 1, 2, marks, 0); // class 1: 16-byte objects, 512 of them; never marked
        for w in 0..8 {
            s.alloc[w].store(!0, Relaxed);
        }
        s
    }

    #[test]
    fn grouped_unpin_undoes_runs_across_words_duplicates_and_counters() {
        let mut s = span();
        let sp: *mut Span = &mut *s;
        // Objects 0..40 once (two pin words), object 10 once more (state 2),
        // object 3 twice more (a counter): the order a pinner would record.
        let mut refs: Vec<usize> = (0..40).collect();
        refs.extend([10, 3, 3]);
        for &i in &refs {
            pin_object(sp, i).unwrap();
        }
        assert_eq!((pin_count(sp, 3), pin_state(sp, 3)), (3, 3));
        assert_eq!((pin_count(sp, 10), pin_state(sp, 10)), (2, 2));
        let packed: Vec<usize> = refs.iter().map(|&i| pack_ref(sp, i)).collect();
        let mut at = 0;
        while at < packed.len() {
            // SAFETY: each reference is an object pinned above.
            let used = unsafe { unpin_group(packed.as_ptr().add(at), packed.len() - at) };
            assert!(used >= 1);
            at += used;
        }
        for i in 0..64 {
            assert_eq!(pin_count(sp, i), 0, "object {i}");
        }
        assert_eq!(s.pin_counters.load(Relaxed), 0);
        // SAFETY: nothing is pinned any more.
        unsafe { free_pin_bits(sp) };
    }

    #[test]
    fn counts_move_through_bits_and_counter() {
        let mut s = span();
        let sp: *mut Span = &mut *s;
        for n in 1..=100 {
            pin_object(sp, 7).unwrap();
            assert_eq!(pin_count(sp, 7), n);
            assert_eq!(pin_state(sp, 7), n.min(3) as u64);
        }
        assert_eq!(s.pin_counters.load(Relaxed), 1);
        assert_eq!(pin_count(sp, 6), 0);
        assert_eq!(pin_count(sp, 8), 0);
        for n in (0..100).rev() {
            unpin_object(sp, 7);
            assert_eq!(pin_count(sp, 7), n);
        }
        assert_eq!(s.pin_counters.load(Relaxed), 0);
        assert!(s.specials.lock().unwrap().is_empty());
        // SAFETY: nothing is pinned any more.
        unsafe { free_pin_bits(sp) };
    }

    #[test]
    fn for_each_pinned_lists_exactly_the_pinned() {
        let mut s = span();
        let sp: *mut Span = &mut *s;
        for i in [0usize, 31, 32, 200, 511] {
            pin_object(sp, i).unwrap();
        }
        pin_object(sp, 200).unwrap();
        pin_object(sp, 200).unwrap();
        let mut seen = Vec::new();
        for_each_pinned(sp, |i| seen.push(i));
        assert_eq!(seen, vec![0, 31, 32, 200, 511]);
        for i in [0usize, 31, 32, 200, 200, 200, 511] {
            unpin_object(sp, i);
        }
        let mut n = 0;
        for_each_pinned(sp, |_| n += 1);
        assert_eq!(n, 0);
        // SAFETY: nothing is pinned any more.
        unsafe { free_pin_bits(sp) };
    }

    #[test]
    fn concurrent_pins_and_unpins_keep_exact_counts() {
        let mut s = span();
        let addr = &mut *s as *mut Span as usize;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let sp = addr as *mut Span;
                    // Miri interprets every step: fewer rounds still interleave.
                    for round in 0..if cfg!(miri) { 200 } else { 20_000 } {
                        // Objects 0..4 are shared by all threads; 10+t is private.
                        let shared = round % 4;
                        let reps = 1 + (round + t) % 4; // 1..=4 pins each: crosses into state 3
                        for _ in 0..reps {
                            pin_object(sp, shared).unwrap();
                            pin_object(sp, 10 + t).unwrap();
                        }
                        assert!(pin_count(sp, shared) >= reps);
                        for _ in 0..reps {
                            unpin_object(sp, shared);
                            unpin_object(sp, 10 + t);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let sp: *mut Span = &mut *s;
        for i in 0..16 {
            assert_eq!(pin_count(sp, i), 0, "object {i}");
        }
        assert_eq!(s.pin_counters.load(Relaxed), 0);
        assert!(s.specials.lock().unwrap().is_empty());
        // SAFETY: nothing is pinned any more.
        unsafe { free_pin_bits(sp) };
    }
}
