//! The C API: thin `extern "C"` shims over the runtime.
//!
//! Every function here catches panics at the boundary (a panic never unwinds
//! into C; the documented value is returned instead), checks NULL, registers the
//! calling thread when needed, enters the runtime for the duration of the work,
//! and collects — after leaving the runtime — when an allocation asked for it.
//! Five hot paths run before the boundary, on code that cannot panic (no
//! allocation, no bounds check that can fail), and hand everything else to the
//! guarded path: `is_pinned`, `gc_weak_get` from a registered thread, and the
//! common cases of `gc_alloc` / `gc_alloc_noscan` (`alloc_fast`), `pinner_pin`
//! (`pin_fast`) and `pinner_unpin` (`unpin_fast`). The guarded path is a call
//! into a full frame (saved registers, slow cases inline); the fast paths are
//! straight-line code without one.
//! Errors are `gc_status` values, never prints; the only aborts are a broken
//! heap invariant and the default pinner-leak handler.

// Every extern "C" function takes its pointers from C, checks them for NULL
// and documents what else it needs of them; marking them `unsafe` would only
// matter to Rust callers, and the contract is the C header's.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::alloc::{malloc, zero_base};
use crate::cgocheck::{self, CheckError};
use crate::finalizer;
use crate::gc;
use crate::heap::{AllocFail, Heap, Target};
use crate::pinner::{self, gc_leak_fn, gc_pinner, PinError};
use crate::runtime::{runtime as heap, Runtime};
use crate::stats::gc_stats;
use crate::threads::{self, InRuntime, Refusal, ThreadState};
use crate::verify;
use crate::weak;

/// Status of every fallible call. 0 is success; numbers are never reused.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum gc_status {
    GC_OK = 0,
    /// NULL where an object was required.
    GC_ERR_NULL = 1,
    /// The pointer is not into the collected heap.
    GC_ERR_NOT_GC_POINTER = 2,
    /// Into the heap, but at no live object.
    GC_ERR_NOT_ALLOCATED = 3,
    /// gc_check_pointer found an unpinned heap pointer.
    GC_ERR_UNPINNED_POINTER = 4,
    GC_ERR_NO_MEMORY = 5,
    /// A bad argument: range, size, flags.
    GC_ERR_INVALID = 6,
    /// Thread registration problem.
    GC_ERR_THREAD = 7,
    /// A signal handler called gcpin on a thread it interrupted inside gcpin:
    /// serving the call would deadlock, so it was refused (nothing done).
    GC_ERR_WOULD_DEADLOCK = 8,
}

use gc_status::*;

/// Runs `body`, turning a panic into `on_panic`.
macro_rules! ffi_boundary {
    ($on_panic:expr, $body:block) => {
        match catch_unwind(AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => $on_panic,
        }
    };
}
pub(crate) use ffi_boundary;

impl From<Refusal> for gc_status {
    fn from(r: Refusal) -> gc_status {
        match r {
            Refusal::Thread => GC_ERR_THREAD,
            Refusal::Reentered => GC_ERR_WOULD_DEADLOCK,
        }
    }
}

/// The calling thread for an entry point without a status to return: None
/// (with errno set: EDEADLK for a refused re-entry from a signal handler,
/// ENOMEM when the thread cannot be registered) when the call must do nothing.
fn api_thread_or_errno() -> Option<*mut ThreadState> {
    match heap().enter_api() {
        Ok(ts) => Some(ts),
        Err(r) => {
            set_errno(if r == Refusal::Reentered { libc::EDEADLK } else { libc::ENOMEM });
            None
        }
    }
}

impl From<PinError> for gc_status {
    fn from(e: PinError) -> gc_status {
        match e {
            PinError::Null => GC_ERR_NULL,
            PinError::NotGcPointer => GC_ERR_NOT_GC_POINTER,
            PinError::NotAllocated => GC_ERR_NOT_ALLOCATED,
            PinError::NoMemory => GC_ERR_NO_MEMORY,
            PinError::Invalid => GC_ERR_INVALID,
        }
    }
}

fn set_errno(e: i32) {
    // SAFETY: errno is thread-local storage of the calling thread.
    unsafe { *libc::__errno_location() = e };
}

/// The common case of gc_alloc and gc_alloc_noscan, before the panic
/// boundary: a registered thread, no stress mode, no collection wanted, and a
/// free slot in the thread's cached word of the size class. It makes no call
/// (so the callers save no registers on it) and cannot panic (no allocation,
/// no failing bounds check). Null sends the caller to `alloc_entry`, which
/// does the whole job, collecting when the heap has crossed its trigger.
#[inline(always)]
fn alloc_fast(size: usize, noscan: bool) -> *mut c_void {
    let Some((h, g)) = fast_path_enter() else { return std::ptr::null_mut() };
    if h.config.stress != 0 || h.pacer.gc_wanted.load(std::sync::atomic::Ordering::Relaxed) {
        return std::ptr::null_mut();
    }
    crate::alloc::malloc_fast(&g, size, noscan) as *mut c_void
}

/// The prologue of the fast paths: the heap, if it exists, and the calling
/// thread inside the runtime, if it is registered. None sends the caller to
/// its guarded path, which makes the heap or registers the thread.
#[inline(always)]
fn fast_path_enter() -> Option<(&'static Runtime, InRuntime)> {
    let h = crate::runtime::runtime_if_exists()?;
    let ts = threads::current();
    if ts.is_null() || threads::reentered(ts) {
        return None;
    }
    Some((h, InRuntime::enter(ts)))
}

#[inline(never)]
fn alloc_entry(size: usize, noscan: bool) -> *mut c_void {
    if size == 0 {
        return zero_base() as *mut c_void;
    }
    let Some(ts) = api_thread_or_errno() else { return std::ptr::null_mut() };
    let h = heap();
    if h.config.stress > 0 {
        // SAFETY: our own record; the stress counter is only touched by us.
        let left = unsafe { &(*ts).stress_left };
        if left.get() == 0 {
            left.set(h.config.stress);
            crate::concurrent::collect_stress(h);
        }
        left.set(left.get() - 1);
    }
    let mut tries = 0;
    loop {
        let r = {
            let g = InRuntime::enter(ts);
            let r = malloc(&g, h, size, noscan);
            crate::assist::after_alloc(h, &g);
            r
        };
        match r {
            Ok(a) => {
                if h.pacer.gc_wanted.load(std::sync::atomic::Ordering::Relaxed) {
                    let a = std::hint::black_box(a); // keep it visible to the scan
                    crate::concurrent::collect_if_wanted(h);
                    return std::hint::black_box(a) as *mut c_void;
                }
                return a as *mut c_void;
            }
            Err(AllocFail::Limit) | Err(AllocFail::NoMemory) if tries == 0 => {
                tries += 1;
                gc::collect(h);
            }
            Err(_) => {
                set_errno(libc::ENOMEM);
                return std::ptr::null_mut();
            }
        }
    }
}

/// Allocates `size` bytes of zeroed, 16-byte aligned memory that the collector
/// scans for pointers. Returns NULL with errno = ENOMEM when the heap limit is
/// reached even after a full collection. Size 0 returns one shared non-NULL
/// address that is never freed.
#[no_mangle]
pub extern "C" fn gc_alloc(size: usize) -> *mut c_void {
    let p = alloc_fast(size, false);
    if !p.is_null() {
        return p;
    }
    ffi_boundary!(std::ptr::null_mut(), { alloc_entry(size, false) })
}

/// Like gc_alloc, but the memory is never scanned for pointers: use it for I/O
/// buffers and numbers.
#[no_mangle]
pub extern "C" fn gc_alloc_noscan(size: usize) -> *mut c_void {
    let p = alloc_fast(size, true);
    if !p.is_null() {
        return p;
    }
    ffi_boundary!(std::ptr::null_mut(), { alloc_entry(size, true) })
}

/// Runs a full stop-the-world collection, and gives every free page beyond what
/// the heap may grow to before the next collection back to the OS at once.
/// (Automatic collections release such pages at a paced rate instead, so a
/// heap that shrinks and grows again does not fault its pages back in.)
#[no_mangle]
pub extern "C" fn gc_collect() {
    ffi_boundary!((), {
        if api_thread_or_errno().is_some() {
            gc::collect(heap());
        }
    })
}

static STATUS_TEXT: [&[u8]; 9] = [
    b"success\0",
    b"NULL where an object was required\0",
    b"pointer is not into the collected heap\0",
    b"pointer is into the heap but at no live object\0",
    b"object holds a pointer to an unpinned heap object\0",
    b"out of memory\0",
    b"invalid argument\0",
    b"thread registration problem\0",
    b"refused: a signal handler called gcpin while its thread was inside gcpin\0",
];

/// A description of a status; never NULL (unknown values get a text too).
/// Declared in the header by hand (cbindgen.toml) so that any integer value a C
/// caller passes is well-defined here.
#[no_mangle]
pub extern "C" fn gc_strerror(status: u32) -> *const c_char {
    match STATUS_TEXT.get(status as usize) {
        Some(t) => t.as_ptr() as *const c_char,
        None => c"unknown gcpin status".as_ptr(),
    }
}

#[inline]
fn pin_entry(pinner: *mut gc_pinner, ptrs: &[usize]) -> gc_status {
    let ts = match heap().enter_api() {
        Ok(ts) => ts,
        Err(r) => return r.into(),
    };
    let h = heap();
    let mut r = pin_attempt(ts, h, pinner, ptrs);
    if r == Err(PinError::NoMemory) {
        r = pin_after_collecting(ts, h, pinner, ptrs);
    }
    match r {
        Ok(fresh) => {
            if fresh {
                // A new inner pinner: its leak finalizer needs the finalizer
                // thread, and its allocation may have crossed the trigger.
                h.ensure_finalizer_thread();
                crate::concurrent::collect_if_wanted(h);
            }
            GC_OK
        }
        Err(e) => e.into(),
    }
}

/// The common case of pinner_pin, before the panic boundary (it cannot
/// panic, see `pinner::pin_one_fast`): a registered thread, a pinner with
/// room, an allocated object pinned by one compare-and-swap. False, with
/// nothing changed, sends the caller to `pin_entry`.
#[inline(always)]
fn pin_fast(pinner: *mut gc_pinner, ptr: usize) -> bool {
    if pinner.is_null() {
        return false;
    }
    let Some((h, g)) = fast_path_enter() else { return false };
    // SAFETY: a non-NULL gc_pinner from the caller.
    pinner::pin_one_fast(&g, h, unsafe { &mut *pinner }, ptr)
}

/// The common case of pinner_unpin, before the panic boundary (it cannot
/// panic, see `pinner::unpin_one_fast`): a registered thread whose pinner
/// holds one pin. False, with nothing changed, sends the caller on.
#[inline(always)]
fn unpin_fast(pinner: *mut gc_pinner) -> bool {
    if pinner.is_null() {
        return false;
    }
    let Some((h, g)) = fast_path_enter() else { return false };
    // SAFETY: a non-NULL gc_pinner from the caller.
    pinner::unpin_one_fast(&g, h, unsafe { &mut *pinner })
}

/// One try at pinning `ptrs` through `pinner`, inside the runtime.
#[inline(always)]
fn pin_attempt(ts: *mut ThreadState, h: &Heap, pinner: *mut gc_pinner, ptrs: &[usize]) -> Result<bool, PinError> {
    let g = InRuntime::enter(ts);
    // SAFETY: the caller passed a valid, non-NULL gc_pinner (checked).
    let p = unsafe { &mut *pinner };
    match ptrs {
        [one] => pinner::pin_one(&g, h, p, *one),
        _ => pinner::pin_all(&g, h, p, ptrs),
    }
}

/// The heap limit stopped a pin, as it can stop gc_alloc: collect once and try
/// again. The objects to pin stay alive through the collection: a single
/// pointer is in our caller's frame, and a list (which may be in memory the
/// collector does not scan) is a root meanwhile.
#[cold]
#[inline(never)]
fn pin_after_collecting(
    ts: *mut ThreadState,
    h: &'static Runtime,
    pinner: *mut gc_pinner,
    ptrs: &[usize],
) -> Result<bool, PinError> {
    let (lo, len) = (ptrs.as_ptr() as usize, std::mem::size_of_val(ptrs));
    let added = {
        let _g = InRuntime::enter(ts);
        h.roots.add(lo, len).is_ok()
    };
    gc::collect(h);
    let r = pin_attempt(ts, h, pinner, ptrs);
    if added {
        let _g = InRuntime::enter(ts);
        let _ = h.roots.remove(lo, len);
    }
    r
}

/// Pins the object that contains `ptr` (interior pointers allowed): it is neither
/// freed nor reused until unpinned, and what it points to stays alive. Pins
/// count: an object pinned n times (through any pinners) stays pinned until all
/// n are undone. NULL -> GC_ERR_NULL; not a heap pointer -> GC_ERR_NOT_GC_POINTER;
/// a free slot -> GC_ERR_NOT_ALLOCATED; a gc_pinner that is not zeroed or
/// previously used -> GC_ERR_INVALID. Nothing is pinned on error. A gc_pinner
/// must not be used by two threads at once.
#[no_mangle]
pub extern "C" fn pinner_pin(pinner: *mut gc_pinner, ptr: *const c_void) -> gc_status {
    if pin_fast(pinner, ptr as usize) {
        return GC_OK;
    }
    ffi_boundary!(GC_ERR_INVALID, {
        if pinner.is_null() || ptr.is_null() {
            return GC_ERR_NULL;
        }
        pin_entry(pinner, &[ptr as usize])
    })
}

/// Pins ptrs[0..n) through one pinner: all or nothing (on error nothing new is
/// pinned, and the status is the first bad pointer's).
#[no_mangle]
pub extern "C" fn pinner_pin_many(pinner: *mut gc_pinner, ptrs: *const *const c_void, n: usize) -> gc_status {
    ffi_boundary!(GC_ERR_INVALID, {
        if pinner.is_null() || (ptrs.is_null() && n > 0) {
            return GC_ERR_NULL;
        }
        if n == 0 {
            return GC_OK;
        }
        // SAFETY: the caller passed n readable pointers at `ptrs` (non-NULL).
        let list = unsafe { std::slice::from_raw_parts(ptrs as *const usize, n) };
        pin_entry(pinner, list)
    })
}

/// Undoes every pin this pinner made. A second call, or a call on a pinner that
/// never pinned, does nothing.
#[no_mangle]
pub extern "C" fn pinner_unpin(pinner: *mut gc_pinner) {
    if unpin_fast(pinner) {
        return;
    }
    ffi_boundary!((), {
        if pinner.is_null() {
            return;
        }
        // SAFETY: non-NULL gc_pinner from the caller.
        if unsafe { (*pinner).impl_.is_null() } {
            return;
        }
        let Some(ts) = api_thread_or_errno() else { return };
        let h = heap();
        let g = InRuntime::enter(ts);
        // SAFETY: as above.
        pinner::unpin_all(&g, h, unsafe { &mut *pinner });
    })
}

/// True for a pinned heap object, false for an unpinned one (and for NULL), and
/// true for memory the collector does not manage. A few loads; lock-free; does
/// not register the calling thread.
#[no_mangle]
pub extern "C" fn is_pinned(ptr: *const c_void) -> bool {
    // No panic can happen on this path (no allocation; the page index is
    // bounds-checked by `span_of`, the pin-word index masked), so it needs no
    // panic boundary. Without a heap there is no GC object: everything else
    // counts as pinned, NULL as not.
    match crate::runtime::runtime_if_exists() {
        Some(h) => pinner::is_pinned(h, ptr as usize),
        None => !ptr.is_null(),
    }
}

/// The number of outstanding pins on the object containing `ptr`; 0 when not
/// pinned or not a heap object.
#[no_mangle]
pub extern "C" fn gc_pin_count(ptr: *const c_void) -> usize {
    ffi_boundary!(0, {
        let Some(ts) = api_thread_or_errno() else { return 0 };
        let h = heap();
        let _g = InRuntime::enter(ts);
        match h.find_object(ptr as usize) {
            Ok(Target::Object(s, idx)) => pinner::pin_count(s, idx),
            _ => 0,
        }
    })
}

/// Sets the function called when a collection finds an unreachable pinner that
/// still holds pins (once per such pinner, with the number of objects it pins,
/// on the finalizer thread or in gc_run_finalizers). NULL restores the default,
/// which prints "gcpin: found leaking pinned pointer; forgot to call
/// pinner_unpin()?" and the objects' addresses, and aborts. The leaked objects
/// stay pinned.
#[no_mangle]
pub extern "C" fn gc_set_pinner_leak_handler(f: gc_leak_fn, arg: *mut c_void) {
    ffi_boundary!((), { pinner::set_leak_handler(f, arg) })
}

/// Finalizer function type: called once with the object's base address and the
/// argument given to gc_set_finalizer.
pub type gc_finalizer_fn = Option<unsafe extern "C" fn(obj: *mut c_void, arg: *mut c_void)>;

/// Sets the finalizer of the object containing `obj`: once the object is
/// unreachable, `fn(obj_base, arg)` runs once (on the finalizer thread or in
/// gc_run_finalizers); the object and what it reaches stay alive until then, and
/// a later collection frees it. Setting again replaces; `fn` NULL clears.
#[no_mangle]
pub extern "C" fn gc_set_finalizer(obj: *mut c_void, f: gc_finalizer_fn, arg: *mut c_void) -> gc_status {
    ffi_boundary!(GC_ERR_INVALID, {
        if obj.is_null() {
            return GC_ERR_NULL;
        }
        let ts = match heap().enter_api() {
            Ok(ts) => ts,
            Err(r) => return r.into(),
        };
        let h = heap();
        let r = {
            let _g = InRuntime::enter(ts);
            match h.find_object(obj as usize) {
                Ok(Target::Object(s, idx)) => finalizer::set(s, idx, f, arg).map_err(|_| GC_ERR_NO_MEMORY).map(|_| ()),
                Ok(Target::Zero) => Err(GC_ERR_INVALID),
                Err(e) => Err(PinError::from(e).into()),
            }
        };
        match r {
            Ok(()) => {
                if f.is_some() {
                    h.ensure_finalizer_thread();
                }
                GC_OK
            }
            Err(e) => e,
        }
    })
}

/// Runs the queued finalizers on the calling thread; returns how many ran.
#[no_mangle]
pub extern "C" fn gc_run_finalizers() -> usize {
    ffi_boundary!(0, {
        if api_thread_or_errno().is_none() {
            return 0;
        }
        heap().run_finalizers(usize::MAX)
    })
}

fn roots_entry(start: *const c_void, len: usize, add: bool) -> gc_status {
    if start.is_null() {
        return GC_ERR_NULL;
    }
    let ts = match heap().enter_api() {
        Ok(ts) => ts,
        Err(r) => return r.into(),
    };
    // A range the next collection could not read would make it fault. (Where
    // /proc is not mounted this cannot be checked, and the range is taken.)
    if add && len > 0 && crate::os::is_readable(start as usize, len) == Some(false) {
        return GC_ERR_INVALID;
    }
    let h = heap();
    let _g = InRuntime::enter(ts);
    let r = if add { h.roots.add(start as usize, len) } else { h.roots.remove(start as usize, len) };
    match r {
        Ok(()) => GC_OK,
        Err(_) => GC_ERR_INVALID,
    }
}

/// Registers `[start, start + len)` as a root range, scanned conservatively by
/// every collection. A range whose end wraps around, or that is not mapped
/// readable -> GC_ERR_INVALID. Unmapping a registered range without removing
/// it first is the caller's error (the next collection would fault).
#[no_mangle]
pub extern "C" fn gc_add_roots(start: *const c_void, len: usize) -> gc_status {
    ffi_boundary!(GC_ERR_INVALID, { roots_entry(start, len, true) })
}

/// Unregisters a range added with exactly this start and length; any other
/// range -> GC_ERR_INVALID.
#[no_mangle]
pub extern "C" fn gc_remove_roots(start: *const c_void, len: usize) -> gc_status {
    ffi_boundary!(GC_ERR_INVALID, { roots_entry(start, len, false) })
}

/// Registers the calling thread (its first gcpin call that works on the heap does
/// this anyway; see the README for which calls do).
/// Registering twice is fine.
#[no_mangle]
pub extern "C" fn gc_thread_register() -> gc_status {
    ffi_boundary!(GC_ERR_THREAD, {
        match heap().current_or_register() {
            Some(_) => GC_OK,
            None => GC_ERR_THREAD,
        }
    })
}

/// Unregisters the calling thread now rather than at exit. Its stack is no
/// longer scanned: it must not hold the only reference to a GC object
/// afterwards. GC_ERR_THREAD if it is not registered.
#[no_mangle]
pub extern "C" fn gc_thread_unregister() -> gc_status {
    ffi_boundary!(GC_ERR_THREAD, {
        let t = threads::current();
        if t.is_null() {
            return GC_ERR_THREAD;
        }
        if threads::reentered(t) {
            return GC_ERR_WOULD_DEADLOCK;
        }
        threads::unregister(t);
        GC_OK
    })
}

/// cgocheck for C: for a pointer into the heap, GC_ERR_UNPINNED_POINTER if the
/// object holds a pointer to an unpinned heap object (following pinned objects
/// recursively), else GC_OK. NULL -> GC_ERR_NULL; a free slot ->
/// GC_ERR_NOT_ALLOCATED; memory outside the heap is not checked (GC_OK).
#[no_mangle]
pub extern "C" fn gc_check_pointer(ptr: *const c_void) -> gc_status {
    ffi_boundary!(GC_ERR_INVALID, {
        if ptr.is_null() {
            return GC_ERR_NULL;
        }
        let ts = match heap().enter_api() {
            Ok(ts) => ts,
            Err(r) => return r.into(),
        };
        let h = heap();
        let _g = InRuntime::enter(ts);
        match cgocheck::check_pointer(h, ptr as usize) {
            Ok(()) => GC_OK,
            Err(CheckError::Null) => GC_ERR_NULL,
            Err(CheckError::NotAllocated) => GC_ERR_NOT_ALLOCATED,
            Err(CheckError::Unpinned) => GC_ERR_UNPINNED_POINTER,
        }
    })
}

/// Fills `*out` with the collector's statistics (exact heap figures: the world
/// is stopped briefly, like Go's ReadMemStats). NULL is ignored.
#[no_mangle]
pub extern "C" fn gc_get_stats(out: *mut gc_stats) {
    ffi_boundary!((), {
        if out.is_null() || api_thread_or_errno().is_none() {
            return;
        }
        let st = gc::read_stats(heap());
        // SAFETY: non-NULL out-parameter from the caller.
        unsafe { *out = st };
    })
}

/// Checks every heap invariant with the world stopped. Returns GC_OK; a broken
/// invariant (heap corruption) aborts with a message saying which.
#[no_mangle]
pub extern "C" fn gc_verify_heap() -> gc_status {
    ffi_boundary!(GC_ERR_INVALID, {
        if let Err(r) = heap().enter_api() {
            return r.into();
        }
        match gc::with_world_stopped(heap(), verify::verify) {
            Some(()) => GC_OK,
            None => GC_ERR_THREAD,
        }
    })
}

/// A weak reference: a handle managed by the collector (see gc_weak_make).
pub struct gc_weak {
    _opaque: [u8; 0],
}

/// Cleanup function type: called once with the argument given to
/// gc_add_cleanup.
pub type gc_cleanup_fn = Option<unsafe extern "C" fn(arg: *mut c_void)>;

/// The allocated object containing `ptr`, classified inside the runtime;
/// errno = EINVAL for a pointer outside the heap (or the zero-size address)
/// and for a free slot.
fn object_or_einval(h: &Heap, ptr: usize) -> Option<(*mut crate::span::Span, usize)> {
    match h.find_object(ptr) {
        Ok(Target::Object(s, idx)) => Some((s, idx)),
        _ => {
            set_errno(libc::EINVAL);
            None
        }
    }
}

/// A weak reference to the object containing `ptr` (interior pointers
/// allowed): gc_weak_get gives `ptr` back while the object is reachable, and
/// NULL from the collection that finds it unreachable on (before any finalizer
/// of it runs, even one that revives it). The handle is itself a collected
/// object: it lives while something refers to it and does not keep the object
/// alive. Canonical: gc_weak_make(p) returns the same handle while that handle
/// and p's object are alive, so handles can be compared. A pinned object's
/// weak references are never cleared. NULL for NULL; NULL with errno = EINVAL
/// for a pointer outside the heap (stack, malloc, globals, the zero-size
/// address) and for a free slot; NULL with errno = ENOMEM when no handle can
/// be allocated.
#[no_mangle]
pub extern "C" fn gc_weak_make(ptr: *const c_void) -> *mut gc_weak {
    ffi_boundary!(std::ptr::null_mut(), {
        if ptr.is_null() {
            return std::ptr::null_mut();
        }
        let Some(ts) = api_thread_or_errno() else { return std::ptr::null_mut() };
        weak_make_entry(ts, ptr as usize) as *mut gc_weak
    })
}

/// gc_weak_make for a non-NULL pointer: the existing handle, or a new one.
/// The handle is allocated outside the runtime, as by gc_alloc_noscan (which
/// may collect): meanwhile `ptr`, live in this frame, keeps its object alive.
#[inline(never)]
fn weak_make_entry(ts: *mut ThreadState, ptr: usize) -> usize {
    let h = heap();
    {
        let _g = InRuntime::enter(ts);
        if object_or_einval(h, ptr).is_none() {
            return 0;
        }
        if let Some(w) = h.weak.find(ptr) {
            return w;
        }
    }
    let fresh = alloc_entry(weak::HANDLE_BYTES, true) as usize;
    if fresh == 0 {
        return 0;
    }
    let ptr = std::hint::black_box(ptr);
    let _g = InRuntime::enter(ts);
    if object_or_einval(h, ptr).is_none() {
        return 0;
    }
    h.weak.install(&h.links, ptr, fresh)
}

/// The pointer `w` was made for while its object is reachable; NULL once a
/// collection found it unreachable, and for NULL. A load and a compare from a
/// registered thread (an unregistered one is registered first); lock-free and
/// safe concurrently with collections: the pointer returned is never to a
/// freed or reused slot, because the caller's registers and stack, which then
/// hold it, keep its object alive.
#[no_mangle]
pub extern "C" fn gc_weak_get(w: *const gc_weak) -> *mut c_void {
    // No panic can happen on this path (a thread-local read and a load), so it
    // needs no panic boundary; the registration path has one.
    if w.is_null() {
        return std::ptr::null_mut();
    }
    if !threads::current().is_null() {
        // SAFETY: a handle from gc_weak_make, which the caller holds.
        return unsafe { weak::get(w as usize) } as *mut c_void;
    }
    ffi_boundary!(std::ptr::null_mut(), {
        if api_thread_or_errno().is_none() {
            return std::ptr::null_mut();
        }
        // SAFETY: as above; now the caller's stack is scanned too.
        unsafe { weak::get(w as usize) as *mut c_void }
    })
}

/// Arranges for `fn(arg)` to run once, on the finalizer thread or in
/// gc_run_finalizers, after the object containing `ptr` (interior pointers
/// allowed) became unreachable: after its finalizer, if it has one, and once
/// it is unreachable again. An object may have several cleanups. The cleanup
/// does not keep the object alive, but `arg` is kept alive until the cleanup
/// runs or is stopped: if `arg` reaches the object, the object stays reachable
/// and the cleanup never runs. An explicit free (GC_free) drops the object's
/// cleanups without running them. Returns the cleanup's id (never 0), or 0 for
/// a NULL `fn`, a NULL `ptr`, a pointer outside the heap or at a free slot
/// (errno = EINVAL), or when out of memory (errno = ENOMEM).
#[no_mangle]
pub extern "C" fn gc_add_cleanup(ptr: *const c_void, f: gc_cleanup_fn, arg: *mut c_void) -> u64 {
    ffi_boundary!(0, {
        let Some(f) = f else { return 0 };
        if ptr.is_null() {
            return 0;
        }
        let Some(ts) = api_thread_or_errno() else { return 0 };
        let h = heap();
        let id = {
            let _g = InRuntime::enter(ts);
            let Some((s, idx)) = object_or_einval(h, ptr as usize) else { return 0 };
            match finalizer::add_cleanup(h, s, idx, f, arg) {
                Ok(id) => id,
                Err(()) => {
                    set_errno(libc::ENOMEM);
                    return 0;
                }
            }
        };
        h.ensure_finalizer_thread();
        id
    })
}

/// Cancels the cleanup `id`: true if it was pending and now will not run;
/// false if it already ran or is queued to run, was stopped, or `id` is
/// unknown (0 included).
#[no_mangle]
pub extern "C" fn gc_stop_cleanup(id: u64) -> bool {
    ffi_boundary!(false, {
        if id == 0 {
            return false;
        }
        let Some(ts) = api_thread_or_errno() else { return false };
        let h = heap();
        let _g = InRuntime::enter(ts);
        finalizer::stop_cleanup(h, id)
    })
}
