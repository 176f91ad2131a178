//! libgc compatibility: the Boehm–Demers–Weiser collector's API (libgc 8.2)
//! under its own names, over gcpin's heap.
//!
//! The declarations are the hand-written `include/gc.h` (cbindgen skips this
//! module: `include/gcpin.h` stays gcpin's own API). The same symbols are in
//! `libgcpin.so`, `libgcpin.a` and `libgc.so.1` (SONAME `libgc.so.1`, for
//! binaries linked against Debian's `libgc1`). It is one heap: `GC_malloc`
//! memory is `gc_alloc` memory, and can be pinned with `pinner_pin`.
//!
//! Every function is a thin shim in the style of `capi`: it catches panics at
//! the boundary (returning libgc's failure value), checks NULL, and enters the
//! runtime only for the work on the heap. Bad pointers given to `GC_free`,
//! `GC_realloc` and `GC_size` never touch the heap: they get a warning through
//! the warn proc (libgc's `GC_set_warn_proc`) and are otherwise ignored.
//! Where libgc has a knob gcpin has no use for, the function is a documented
//! no-op or returns `GC_UNIMPLEMENTED` (README, "Coming from libgc").

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Mutex;

use crate::capi::{ffi_boundary, gc_alloc, gc_alloc_noscan};
use crate::finalizer;
use crate::free::Freed;
use crate::gc;
use crate::heap::{Heap, Target};
use crate::links::LinkError;
use crate::pinner::{self, PinError};
use crate::runtime::{runtime as heap, runtime_if_exists as heap_if_exists, Runtime};
use crate::sizeclass::PAGE_SIZE;
use crate::sizeclass::{CLASS_SIZE, MAX_SMALL_SIZE, NUM_CLASSES};
use crate::span::Span;
use crate::specials::{free_special, new_special, KIND_UNCOLLECTABLE};
use crate::threads::{self, InRuntime};

/// libgc's `GC_word`: an unsigned integer the size of a pointer.
pub type GC_word = usize;
pub type GC_finalization_proc = Option<unsafe extern "C" fn(obj: *mut c_void, client_data: *mut c_void)>;
pub type GC_warn_proc = Option<unsafe extern "C" fn(msg: *mut c_char, arg: GC_word)>;
pub type GC_oom_func = Option<unsafe extern "C" fn(bytes: usize) -> *mut c_void>;
pub type GC_stop_func = Option<unsafe extern "C" fn() -> c_int>;
pub type GC_start_callback_proc = Option<unsafe extern "C" fn()>;
pub type GC_finalizer_notifier_proc = Option<unsafe extern "C" fn()>;
pub type GC_fn_type = Option<unsafe extern "C" fn(client_data: *mut c_void) -> *mut c_void>;
pub type GC_stack_base_func = Option<unsafe extern "C" fn(sb: *mut GC_stack_base, arg: *mut c_void) -> *mut c_void>;
type StartRoutine = Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>;

/// libgc's `struct GC_stack_base` on Linux: the hot end of a stack.
#[repr(C)]
pub struct GC_stack_base {
    pub mem_base: *mut c_void,
}

/// libgc's `struct GC_prof_stats_s` (every field a `GC_word`).
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct GC_prof_stats_s {
    pub heapsize_full: GC_word,
    pub free_bytes_full: GC_word,
    pub unmapped_bytes: GC_word,
    pub bytes_allocd_since_gc: GC_word,
    pub allocd_bytes_before_gc: GC_word,
    pub non_gc_bytes: GC_word,
    pub gc_no: GC_word,
    pub markers_m1: GC_word,
    pub bytes_reclaimed_since_gc: GC_word,
    pub reclaimed_bytes_before_gc: GC_word,
    pub expl_freed_bytes_since_gc: GC_word,
    pub obtained_from_os_bytes: GC_word,
}

// libgc's status codes (gc.h).
pub const GC_SUCCESS: c_int = 0;
pub const GC_DUPLICATE: c_int = 1;
pub const GC_NO_MEMORY: c_int = 2;
pub const GC_UNIMPLEMENTED: c_int = 3;
pub const GC_NOT_FOUND: c_int = 4;

/// The libgc API level these shims follow: 8.2.0, as `GC_get_version` packs it.
const VERSION: GC_word = 8 << 16 | 2 << 8;

// ------------------------------------------------------------ process state

/// The warn proc, or 0 for `GC_default_warn_proc`.
static WARN_PROC: AtomicUsize = AtomicUsize::new(0);
/// The OOM function, or 0 for the default (which returns NULL).
static OOM_FN: AtomicUsize = AtomicUsize::new(0);
static INIT_CALLED: AtomicBool = AtomicBool::new(false);
static FREE_SPACE_DIVISOR: AtomicUsize = AtomicUsize::new(3);
static JAVA_FINALIZATION: AtomicBool = AtomicBool::new(true);
static MANUAL_VDB_ALLOWED: AtomicBool = AtomicBool::new(true);
/// Bytes in uncollectable objects (libgc's `non_gc_bytes`).
static NON_GC_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Collection number, and bytes freed with `GC_free` since it. Locked only
/// inside the runtime.
static EXPL_FREED: Mutex<(u64, usize)> = Mutex::new((0, 0));
/// `GC_noop1`'s sink: a store the compiler cannot drop.
static NOOP_SINK: AtomicUsize = AtomicUsize::new(0);
/// Serializes `GC_call_with_alloc_lock` callers, as libgc's allocation lock does.
static ALLOC_LOCK: Mutex<()> = Mutex::new(());
/// The ranges added with `GC_add_roots`, `[lo, hi)`, each registered with the
/// heap's root set; `GC_remove_roots` cuts pieces out of them.
static LIBGC_ROOTS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Reads a C function pointer kept in an `AtomicUsize` (0: none).
///
/// # Safety
/// Only values of type `F` (a C function pointer) are stored in `slot`.
unsafe fn load_fn<F: Copy>(slot: &AtomicUsize) -> Option<F> {
    let v = slot.load(Acquire);
    // SAFETY: per the contract, a non-zero value is an `F`, which is
    // pointer-sized.
    (v != 0).then(|| unsafe { std::mem::transmute_copy::<usize, F>(&v) })
}

/// Warns through the warn proc; `msg` is a printf format with one `GC_word`
/// conversion (libgc's convention), NUL-terminated.
fn warn(msg: &'static [u8], arg: usize) {
    debug_assert_eq!(msg.last(), Some(&0));
    // SAFETY: only warn procs are stored in WARN_PROC.
    match unsafe { load_fn::<unsafe extern "C" fn(*mut c_char, GC_word)>(&WARN_PROC) } {
        // SAFETY: the program's warn proc, called as libgc calls it.
        Some(f) => unsafe { f(msg.as_ptr() as *mut c_char, arg) },
        None => GC_default_warn_proc(msg.as_ptr() as *mut c_char, arg),
    }
}

extern "C" {
    /// printf to a file descriptor (glibc); the `libc` crate does not declare it.
    fn dprintf(fd: c_int, format: *const c_char, ...) -> c_int;
}

/// The default warn proc: prints the message, formatted with `arg`, on stderr.
#[no_mangle]
pub extern "C" fn GC_default_warn_proc(msg: *mut c_char, arg: GC_word) {
    if msg.is_null() {
        return;
    }
    // SAFETY: a NUL-terminated printf format with at most one word-sized
    // conversion (libgc's convention for warnings).
    unsafe { dprintf(2, msg, arg) };
}

/// A warn proc that ignores every warning.
#[no_mangle]
pub extern "C" fn GC_ignore_warn_proc(_msg: *mut c_char, _arg: GC_word) {}

#[no_mangle]
pub extern "C" fn GC_set_warn_proc(f: GC_warn_proc) {
    WARN_PROC.store(f.map_or(0, |f| f as usize), Release);
}

#[no_mangle]
pub extern "C" fn GC_get_warn_proc() -> GC_warn_proc {
    // SAFETY: only warn procs are stored in WARN_PROC.
    let set = unsafe { load_fn(&WARN_PROC) };
    Some(set.unwrap_or(GC_default_warn_proc as unsafe extern "C" fn(*mut c_char, GC_word)))
}

#[no_mangle]
pub extern "C" fn GC_set_oom_fn(f: GC_oom_func) {
    OOM_FN.store(f.map_or(0, |f| f as usize), Release);
}

#[no_mangle]
pub extern "C" fn GC_get_oom_fn() -> GC_oom_func {
    // SAFETY: only OOM functions are stored in OOM_FN.
    let set = unsafe { load_fn(&OOM_FN) };
    Some(set.unwrap_or(default_oom_fn as unsafe extern "C" fn(usize) -> *mut c_void))
}

unsafe extern "C" fn default_oom_fn(_bytes: usize) -> *mut c_void {
    std::ptr::null_mut()
}

/// What an allocation that failed returns: the OOM function's result (libgc
/// calls it with the size asked for).
fn out_of_memory(bytes: usize) -> *mut c_void {
    // SAFETY: only OOM functions are stored in OOM_FN.
    match unsafe { load_fn::<unsafe extern "C" fn(usize) -> *mut c_void>(&OOM_FN) } {
        // SAFETY: the program's OOM function, called as libgc calls it.
        Some(f) => unsafe { f(bytes) },
        None => std::ptr::null_mut(),
    }
}

// --------------------------------------------------------------- allocation

/// Allocates like libgc: size 0 gets a distinct smallest object (libgc's
/// result), not gcpin's shared zero-size address; failure goes to the OOM
/// function.
fn malloc_kind(bytes: usize, scan: bool) -> *mut c_void {
    let n = bytes.max(1);
    let p = if scan { gc_alloc(n) } else { gc_alloc_noscan(n) };
    if p.is_null() {
        return out_of_memory(bytes);
    }
    p
}

#[no_mangle]
pub extern "C" fn GC_malloc(bytes: usize) -> *mut c_void {
    malloc_kind(bytes, true)
}

#[no_mangle]
pub extern "C" fn GC_malloc_atomic(bytes: usize) -> *mut c_void {
    malloc_kind(bytes, false)
}

/// gcpin recognizes every interior pointer, so the hint changes nothing.
#[no_mangle]
pub extern "C" fn GC_malloc_ignore_off_page(bytes: usize) -> *mut c_void {
    malloc_kind(bytes, true)
}

#[no_mangle]
pub extern "C" fn GC_malloc_atomic_ignore_off_page(bytes: usize) -> *mut c_void {
    malloc_kind(bytes, false)
}

/// Deprecated in libgc (stubborn objects are ordinary ones there too).
#[no_mangle]
pub extern "C" fn GC_malloc_stubborn(bytes: usize) -> *mut c_void {
    malloc_kind(bytes, true)
}

/// The calling thread for an entry point (`threads::enter_api`): registered,
/// and not a signal handler that interrupted it inside gcpin (such a call is
/// refused: it would deadlock). None when the call must do nothing.
fn api_thread() -> Option<*mut threads::ThreadState> {
    heap().enter_api().ok()
}

/// The calling thread (see `api_thread`) inside the runtime, with the heap.
fn enter() -> Option<(&'static Runtime, InRuntime)> {
    let ts = api_thread()?;
    Some((heap(), InRuntime::enter(ts)))
}

/// The allocated object `p` points into (at its start or inside it).
fn object_of(h: &Heap, p: *const c_void) -> Result<(*mut Span, usize), PinError> {
    match h.find_object(p as usize)? {
        Target::Object(s, idx) => Ok((s, idx)),
        Target::Zero => Err(PinError::NotGcPointer),
    }
}

/// An uncollectable object: allocated, then held by a pin of its own (a
/// pinned object is a root, so it and what it points to stay alive) that only
/// `GC_free` takes back (`alloc::free`).
fn malloc_uncollectable(bytes: usize, scan: bool) -> *mut c_void {
    let p = malloc_kind(bytes, scan);
    if p.is_null() {
        return p;
    }
    let held = ffi_boundary!(false, {
        let Some((h, _g)) = enter() else { return false };
        let Ok((s, idx)) = object_of(h, p) else {
            return false;
        };
        let mark = new_special(idx as u32, KIND_UNCOLLECTABLE);
        if mark.is_null() {
            return false;
        }
        if pinner::pin_object(s, idx).is_err() {
            // SAFETY: the record is on no list.
            unsafe { free_special(mark) };
            return false;
        }
        // SAFETY: `s` is in use; its lock guards its specials; a fresh object
        // has no uncollectable mark yet.
        unsafe {
            (*s).specials.lock().unwrap_or_else(|e| e.into_inner()).insert(mark);
            (*s).note_extras();
        }
        // SAFETY: as above.
        NON_GC_BYTES.fetch_add(unsafe { (*s).elemsize }, Relaxed);
        true
    });
    if held {
        p
    } else {
        out_of_memory(bytes)
    }
}

#[no_mangle]
pub extern "C" fn GC_malloc_uncollectable(bytes: usize) -> *mut c_void {
    malloc_uncollectable(bytes, true)
}

#[no_mangle]
pub extern "C" fn GC_malloc_atomic_uncollectable(bytes: usize) -> *mut c_void {
    malloc_uncollectable(bytes, false)
}

/// Whether object `idx` of `s` was allocated uncollectable. Inside the runtime.
fn is_uncollectable(s: *mut Span, idx: usize) -> bool {
    // SAFETY: an in-use span (classified inside the runtime); its specials are
    // read under their lock.
    let list = unsafe { (*s).specials.lock().unwrap_or_else(|e| e.into_inner()) };
    !list.find(idx as u32, KIND_UNCOLLECTABLE).is_null()
}

/// `GC_free` of a non-NULL pointer: frees the object starting at `p`, or
/// warns and changes nothing.
fn free_inner(p: *mut c_void) {
    let Some((h, g)) = enter() else { return };
    let (s, idx) = match object_of(h, p) {
        Ok(o) => o,
        Err(e) => {
            drop(g);
            match e {
                PinError::NotAllocated => {
                    warn(b"GC Warning: GC_free of a free heap slot (double free?): %p; ignored\n\0", p as usize)
                }
                _ => warn(
                    b"GC Warning: GC_free of a pointer the collector did not allocate: %p; ignored\n\0",
                    p as usize,
                ),
            }
            return;
        }
    };
    // SAFETY: an in-use span (classified inside the runtime).
    let (base, size) = unsafe { ((*s).object_base(idx), (*s).elemsize) };
    if base != p as usize {
        drop(g);
        warn(b"GC Warning: GC_free of a pointer inside an object, not at its start: %p; ignored\n\0", p as usize);
        return;
    }
    let uncollectable = is_uncollectable(s, idx);
    match crate::free::free(&g, h, &h.links, &h.weak, s, idx) {
        Freed::Pinned => {}
        Freed::Reused | Freed::AtSweep => {
            let gc_no = h.stats.num_gc.load(Relaxed);
            let mut f = EXPL_FREED.lock().unwrap_or_else(|e| e.into_inner());
            if f.0 != gc_no {
                *f = (gc_no, 0);
            }
            f.1 += size;
        }
    }
    if uncollectable {
        NON_GC_BYTES.fetch_sub(size, Relaxed);
    }
}

/// Frees an object explicitly: its memory is reused at once (see
/// `alloc::free` for the one case where it waits for the next sweep). NULL is
/// ignored; a pointer that is not the start of an allocated object gets a
/// warning and is ignored. A pinned object stays until unpinned.
#[no_mangle]
pub extern "C" fn GC_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    ffi_boundary!((), {
        free_inner(p);
    })
}

/// Base, size and kind (scanned, uncollectable) of the object starting at `p`,
/// or None (with a warning) when `p` is not an object's start.
fn object_info(p: *mut c_void, who: &'static [u8]) -> Option<(usize, bool, bool)> {
    let (h, g) = enter()?;
    let r = object_of(h, p).ok().and_then(|(s, idx)| {
        // SAFETY: an in-use span (classified inside the runtime).
        let (base, size, noscan) = unsafe { ((*s).object_base(idx), (*s).elemsize, (*s).noscan()) };
        (base == p as usize).then(|| (size, !noscan, is_uncollectable(s, idx)))
    });
    drop(g);
    if r.is_none() {
        warn(who, p as usize);
    }
    r
}

/// libgc's rules: NULL -> `GC_malloc(bytes)`; size 0 -> `GC_free(p)`, NULL;
/// a new size within the object's and at least half of it -> `p` (the tail is
/// zeroed); otherwise a new object of the same kind, the contents up to the
/// smaller size copied, and `p` freed. A pointer that is not an object's start
/// gets a warning and NULL, and nothing changes.
#[no_mangle]
pub extern "C" fn GC_realloc(p: *mut c_void, bytes: usize) -> *mut c_void {
    if p.is_null() {
        return GC_malloc(bytes);
    }
    if bytes == 0 {
        GC_free(p);
        return std::ptr::null_mut();
    }
    ffi_boundary!(std::ptr::null_mut(), {
        let Some((cap, scan, uncollectable)) = object_info(
            p,
            b"GC Warning: GC_realloc of a pointer that is not the start of an allocated object: %p; NULL returned\n\0",
        ) else {
            return std::ptr::null_mut();
        };
        if bytes <= cap && bytes >= cap / 2 {
            // SAFETY: [p + bytes, p + cap) lies in the object.
            unsafe { std::ptr::write_bytes((p as *mut u8).add(bytes), 0, cap - bytes) };
            return p;
        }
        let q = if uncollectable { malloc_uncollectable(bytes, scan) } else { malloc_kind(bytes, scan) };
        if !q.is_null() {
            // SAFETY: both objects hold at least min(cap, bytes) bytes; they
            // are distinct (p is still allocated).
            unsafe { std::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, cap.min(bytes)) };
            GC_free(p);
        }
        q
    })
}

/// The start of the object `p` points into, or NULL for anything else.
#[no_mangle]
pub extern "C" fn GC_base(p: *mut c_void) -> *mut c_void {
    if p.is_null() {
        return p;
    }
    ffi_boundary!(std::ptr::null_mut(), {
        let Some((h, _g)) = enter() else {
            return std::ptr::null_mut();
        };
        match object_of(h, p) {
            // SAFETY: an in-use span.
            Ok((s, idx)) => unsafe { (*s).object_base(idx) as *mut c_void },
            Err(_) => std::ptr::null_mut(),
        }
    })
}

/// The usable size of the object starting at `p` (its size class); 0, with a
/// warning, for anything else (NULL: 0 silently).
#[no_mangle]
pub extern "C" fn GC_size(p: *const c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    ffi_boundary!(0, {
        object_info(
            p as *mut c_void,
            b"GC Warning: GC_size of a pointer that is not the start of an allocated object: %p; 0 returned\n\0",
        )
        .map_or(0, |(size, _, _)| size)
    })
}

/// Whether `p` points into the collected heap (an object or a free slot).
#[no_mangle]
pub extern "C" fn GC_is_heap_ptr(p: *const c_void) -> c_int {
    match heap_if_exists() {
        Some(h) => !h.span_of_heap(p as usize).is_null() as c_int,
        None => 0,
    }
}

/// Returns `p`; warns when `p` and `q` are heap pointers into different
/// objects (libgc's check, minus its abort).
#[no_mangle]
pub extern "C" fn GC_same_obj(p: *mut c_void, q: *mut c_void) -> *mut c_void {
    ffi_boundary!(p, {
        let (bp, bq) = (GC_base(p), GC_base(q));
        if !bp.is_null() && bp != bq {
            warn(b"GC Warning: GC_same_obj: the second pointer is not in the object of the first, %p\n\0", p as usize);
        }
        p
    })
}

/// Returns `p` (gcpin scans every memory the program can reach, so every
/// pointer is visible).
#[no_mangle]
pub extern "C" fn GC_is_visible(p: *mut c_void) -> *mut c_void {
    p
}

/// Returns `p` (every interior pointer is valid for gcpin).
#[no_mangle]
pub extern "C" fn GC_is_valid_displacement(p: *mut c_void) -> *mut c_void {
    p
}

/// No-op: gcpin recognizes pointers to anywhere inside an object.
#[no_mangle]
pub extern "C" fn GC_register_displacement(_offset: usize) {}

/// A string copy in atomic (unscanned) memory; NULL for NULL.
fn strndup_inner(s: *const c_char, max: usize) -> *mut c_char {
    if s.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `s` is a C string, or at least `max` readable bytes.
    let len = unsafe { libc::strnlen(s, max) };
    let Some(size) = len.checked_add(1) else {
        return std::ptr::null_mut();
    };
    let q = GC_malloc_atomic(size) as *mut c_char;
    if !q.is_null() {
        // SAFETY: `len` bytes readable at `s`, `len + 1` writable at `q`.
        unsafe {
            std::ptr::copy_nonoverlapping(s, q, len);
            *q.add(len) = 0;
        }
    }
    q
}

#[no_mangle]
pub extern "C" fn GC_strdup(s: *const c_char) -> *mut c_char {
    strndup_inner(s, usize::MAX)
}

#[no_mangle]
pub extern "C" fn GC_strndup(s: *const c_char, n: usize) -> *mut c_char {
    strndup_inner(s, n)
}

/// `align`-aligned memory. Objects are 16-byte aligned, large ones page
/// aligned; a size class whose size is a multiple of `align` gives aligned
/// objects (spans start on pages). Beyond a page the object is made larger and
/// an interior pointer returned (as libgc does): `GC_free` refuses it.
#[no_mangle]
pub extern "C" fn GC_memalign(align: usize, bytes: usize) -> *mut c_void {
    if align <= 16 {
        return GC_malloc(bytes);
    }
    if align.is_power_of_two() && align <= PAGE_SIZE {
        let class = (1..NUM_CLASSES)
            .find(|&c| CLASS_SIZE[c] as usize >= bytes && (CLASS_SIZE[c] as usize).is_multiple_of(align));
        let size = match class {
            Some(c) => CLASS_SIZE[c] as usize,
            None => bytes.max(MAX_SMALL_SIZE + 1),
        };
        return GC_malloc(size);
    }
    let Some(size) = bytes.checked_add(align) else {
        return out_of_memory(bytes);
    };
    let p = GC_malloc(size) as usize;
    if p == 0 {
        return std::ptr::null_mut();
    }
    (p.next_multiple_of(align)) as *mut c_void
}

#[no_mangle]
pub extern "C" fn GC_posix_memalign(out: *mut *mut c_void, align: usize, bytes: usize) -> c_int {
    if out.is_null() {
        return libc::EINVAL;
    }
    if !align.is_power_of_two() || !align.is_multiple_of(std::mem::size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let p = GC_memalign(align, bytes);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: non-NULL out-parameter from the caller.
    unsafe { *out = p };
    0
}

/// A list of objects of `bytes` bytes, linked through their first word (read
/// it with `GC_NEXT`), about a page's worth; NULL when none can be had.
#[no_mangle]
pub extern "C" fn GC_malloc_many(bytes: usize) -> *mut c_void {
    let size = bytes.max(std::mem::size_of::<*mut c_void>());
    let n = (PAGE_SIZE / size).clamp(1, 64);
    let mut head: *mut c_void = std::ptr::null_mut();
    for _ in 0..n {
        let p = gc_alloc(size);
        if p.is_null() {
            break;
        }
        // SAFETY: a fresh object of at least one word.
        unsafe { *(p as *mut *mut c_void) = head };
        head = p;
    }
    head
}

// ---------------------------------------------------------------- collection

/// Creates the heap and registers the calling thread. Safe to call again.
#[no_mangle]
pub extern "C" fn GC_init() {
    ffi_boundary!((), {
        heap();
        if api_thread().is_some() {
            INIT_CALLED.store(true, Release);
        }
    })
}

#[no_mangle]
pub extern "C" fn GC_is_init_called() -> c_int {
    (INIT_CALLED.load(Acquire) || heap_if_exists().is_some()) as c_int
}

/// A full collection, unless collection is disabled (`GC_disable`), as in libgc.
#[no_mangle]
pub extern "C" fn GC_gcollect() {
    ffi_boundary!((), {
        if api_thread().is_some() {
            gc::collect(heap());
        }
    })
}

/// gcpin's full collections give free pages back to the OS anyway.
#[no_mangle]
pub extern "C" fn GC_gcollect_and_unmap() {
    GC_gcollect()
}

/// Asks `stop` once, before the collection (gcpin's cycle cannot be stopped
/// halfway): 0 if it asked to stop or collection is disabled, else collects
/// and returns 1.
#[no_mangle]
pub extern "C" fn GC_try_to_collect(stop: GC_stop_func) -> c_int {
    ffi_boundary!(0, {
        let h = heap();
        // SAFETY: the program's stop function, called as libgc calls it.
        if api_thread().is_none() || h.gc_disabled.load(Relaxed) > 0 || stop.is_some_and(|f| unsafe { f() } != 0) {
            return 0;
        }
        gc::collect(h);
        1
    })
}

/// gcpin has no incremental work: collects if an allocation asked for a
/// collection, then returns 0 (nothing left to do).
#[no_mangle]
pub extern "C" fn GC_collect_a_little() -> c_int {
    ffi_boundary!(0, {
        if api_thread().is_some() {
            crate::concurrent::collect_if_wanted(heap());
        }
        0
    })
}

/// Disables collection, explicit and automatic, until the matching `GC_enable`
/// (calls nest). Returns once a cycle that was running has finished.
#[no_mangle]
pub extern "C" fn GC_disable() {
    ffi_boundary!((), {
        let h = heap();
        h.gc_disabled.fetch_add(1, AcqRel);
        // From a signal handler that interrupted its thread inside gcpin the
        // wait would deadlock: the count still holds off later cycles.
        if api_thread().is_some() {
            drop(h.lock_world());
        }
    })
}

#[no_mangle]
pub extern "C" fn GC_enable() {
    ffi_boundary!((), {
        let h = heap();
        if h.gc_disabled.fetch_update(AcqRel, Acquire, |n| n.checked_sub(1)).is_err() {
            warn(b"GC Warning: GC_enable without a matching GC_disable (count %lu); ignored\n\0", 0);
        }
    })
}

#[no_mangle]
pub extern "C" fn GC_is_disabled() -> c_int {
    heap_if_exists().is_some_and(|h| h.gc_disabled.load(Acquire) > 0) as c_int
}

/// libgc's name for enabling and disabling automatic collection only; gcpin's
/// count covers explicit collections too (as `GC_disable`'s does in libgc).
#[no_mangle]
pub extern "C" fn GC_get_gc_no() -> GC_word {
    heap_if_exists().map_or(0, |h| h.stats.num_gc.load(Relaxed) as GC_word)
}

fn read_stats() -> crate::stats::gc_stats {
    crate::gc::read_stats(heap())
}

/// Heap pages held from the OS (used or free, not given back), in bytes.
#[no_mangle]
pub extern "C" fn GC_get_heap_size() -> usize {
    ffi_boundary!(0, { read_stats().heap_sys_bytes as usize })
}

/// Free bytes in the pages the heap holds (not counting given-back pages).
#[no_mangle]
pub extern "C" fn GC_get_free_bytes() -> usize {
    ffi_boundary!(0, {
        let st = read_stats();
        st.heap_sys_bytes.saturating_sub(st.heap_alloc_bytes) as usize
    })
}

#[no_mangle]
pub extern "C" fn GC_get_unmapped_bytes() -> usize {
    ffi_boundary!(0, { read_stats().heap_released_bytes as usize })
}

#[no_mangle]
pub extern "C" fn GC_get_total_bytes() -> usize {
    ffi_boundary!(0, { read_stats().total_alloc_bytes as usize })
}

fn bytes_since_gc(h: &Heap, st: &crate::stats::gc_stats) -> usize {
    st.total_alloc_bytes.saturating_sub(h.stats.total_alloc_swept.load(Relaxed)) as usize
}

#[no_mangle]
pub extern "C" fn GC_get_bytes_since_gc() -> usize {
    ffi_boundary!(0, { bytes_since_gc(heap(), &read_stats()) })
}

/// Bytes freed with `GC_free` since the last collection.
#[no_mangle]
pub extern "C" fn GC_get_expl_freed_bytes_since_gc() -> usize {
    ffi_boundary!(0, {
        // Inside the runtime, as in `free_inner`: a thread is never stopped
        // (or forked away) holding the lock.
        let Some((h, _g)) = enter() else { return 0 };
        let gc_no = h.stats.num_gc.load(Relaxed);
        let f = EXPL_FREED.lock().unwrap_or_else(|e| e.into_inner());
        if f.0 == gc_no {
            f.1
        } else {
            0
        }
    })
}

#[no_mangle]
pub extern "C" fn GC_get_non_gc_bytes() -> usize {
    NON_GC_BYTES.load(Relaxed)
}

/// Fills each non-NULL out-parameter (libgc's order: heap size, free bytes,
/// unmapped bytes, bytes since the last collection, total bytes).
#[no_mangle]
pub extern "C" fn GC_get_heap_usage_safe(
    heap_size: *mut GC_word,
    free_bytes: *mut GC_word,
    unmapped_bytes: *mut GC_word,
    since_gc: *mut GC_word,
    total: *mut GC_word,
) {
    ffi_boundary!((), {
        let st = read_stats();
        let values = [
            st.heap_sys_bytes as usize,
            st.heap_sys_bytes.saturating_sub(st.heap_alloc_bytes) as usize,
            st.heap_released_bytes as usize,
            bytes_since_gc(heap(), &st),
            st.total_alloc_bytes as usize,
        ];
        for (out, v) in [heap_size, free_bytes, unmapped_bytes, since_gc, total].into_iter().zip(values) {
            if !out.is_null() {
                // SAFETY: a non-NULL out-parameter from the caller.
                unsafe { *out = v };
            }
        }
    })
}

/// Fills up to `size` bytes of `*out` and returns how many bytes it filled.
/// Figures gcpin does not keep (bytes reclaimed by sweeps) are `(GC_word)-1`,
/// libgc's "unknown"; bytes of `*out` beyond the struct are set to -1 too.
#[no_mangle]
pub extern "C" fn GC_get_prof_stats(out: *mut GC_prof_stats_s, size: usize) -> usize {
    if out.is_null() {
        return 0;
    }
    ffi_boundary!(0, {
        let h = heap();
        let st = read_stats();
        let since = bytes_since_gc(h, &st);
        let full = GC_prof_stats_s {
            heapsize_full: (st.heap_sys_bytes + st.heap_released_bytes) as usize,
            free_bytes_full: (st.heap_sys_bytes.saturating_sub(st.heap_alloc_bytes) + st.heap_released_bytes) as usize,
            unmapped_bytes: st.heap_released_bytes as usize,
            bytes_allocd_since_gc: since,
            allocd_bytes_before_gc: (st.total_alloc_bytes as usize).saturating_sub(since),
            non_gc_bytes: NON_GC_BYTES.load(Relaxed),
            gc_no: st.num_gc as usize,
            markers_m1: 0,
            bytes_reclaimed_since_gc: usize::MAX,
            reclaimed_bytes_before_gc: usize::MAX,
            expl_freed_bytes_since_gc: GC_get_expl_freed_bytes_since_gc(),
            obtained_from_os_bytes: (st.heap_sys_bytes + st.heap_released_bytes) as usize,
        };
        let n = size.min(std::mem::size_of::<GC_prof_stats_s>());
        // SAFETY: the caller gave `size` writable bytes at `out`.
        unsafe {
            std::ptr::copy_nonoverlapping(&full as *const _ as *const u8, out as *mut u8, n);
            if size > n {
                std::ptr::write_bytes((out as *mut u8).add(n), 0xff, size - n);
            }
        }
        n
    })
}

/// A heap limit in bytes (0: none), beside `GCPIN_MAX_HEAP` (the smaller one
/// applies). Allocation past it, after a collection, fails (the OOM function).
#[no_mangle]
pub extern "C" fn GC_set_max_heap_size(bytes: GC_word) {
    ffi_boundary!((), {
        heap().max_heap_bytes.store(if bytes == 0 { usize::MAX } else { bytes }, Relaxed);
    })
}

/// gcpin reserves its arena at start and commits pages as they are used, so
/// there is nothing to expand: 1 if `bytes` more would fit under the heap
/// limit and in the arena, else 0.
#[no_mangle]
pub extern "C" fn GC_expand_hp(bytes: usize) -> c_int {
    ffi_boundary!(0, {
        let h = heap();
        let limit = h.config.max_heap.unwrap_or(usize::MAX).min(h.max_heap_bytes.load(Relaxed)).min(h.arena_size);
        let held = read_stats().heap_sys_bytes as usize;
        (held.saturating_add(bytes) <= limit) as c_int
    })
}

/// Kept and reported back; gcpin's pacing is `GCPIN_GC_PERCENT`'s.
#[no_mangle]
pub extern "C" fn GC_set_free_space_divisor(d: GC_word) {
    FREE_SPACE_DIVISOR.store(d, Relaxed);
}

#[no_mangle]
pub extern "C" fn GC_get_free_space_divisor() -> GC_word {
    FREE_SPACE_DIVISOR.load(Relaxed)
}

#[no_mangle]
pub extern "C" fn GC_get_version() -> GC_word {
    VERSION
}

/// gcpin marks on one thread: libgc's "no parallel markers" answer.
#[no_mangle]
pub extern "C" fn GC_get_parallel() -> c_int {
    0
}

/// No-op: gcpin always recognizes interior pointers (`GC_get_all_interior_pointers`
/// says 1).
#[no_mangle]
pub extern "C" fn GC_set_all_interior_pointers(_value: c_int) {}

#[no_mangle]
pub extern "C" fn GC_get_all_interior_pointers() -> c_int {
    1
}

/// Leak-finding mode is not supported: asking for it gets a warning, and
/// `GC_get_find_leak` keeps saying 0.
#[no_mangle]
pub extern "C" fn GC_set_find_leak(value: c_int) {
    if value != 0 {
        warn(
            b"GC Warning: gcpin does not support leak-finding mode (GC_set_find_leak(%ld)); ignored\n\0",
            value as usize,
        );
    }
}

#[no_mangle]
pub extern "C" fn GC_get_find_leak() -> c_int {
    0
}

/// `f` runs at the start of every collection, before the world stops, and
/// must not allocate (libgc's rule).
#[no_mangle]
pub extern "C" fn GC_set_start_callback(f: GC_start_callback_proc) {
    gc::START_CALLBACK.store(f.map_or(0, |f| f as usize), Release);
}

#[no_mangle]
pub extern "C" fn GC_get_start_callback() -> GC_start_callback_proc {
    // SAFETY: only `extern "C" fn()` values are stored in START_CALLBACK.
    unsafe { load_fn(&gc::START_CALLBACK) }
}

/// A store the compiler must keep: makes `x` look used.
#[no_mangle]
pub extern "C" fn GC_noop1(x: GC_word) {
    NOOP_SINK.store(x, Relaxed);
}

/// Accepted: gcpin's collections are its own (stop-the-world, or concurrent
/// where `GCPIN_CONCURRENT` asks); `GC_is_incremental_mode` says 0.
#[no_mangle]
pub extern "C" fn GC_enable_incremental() {}

#[no_mangle]
pub extern "C" fn GC_is_incremental_mode() -> c_int {
    0
}

/// Kept and reported back: gcpin needs no dirty bits from the program.
#[no_mangle]
pub extern "C" fn GC_set_manual_vdb_allowed(value: c_int) {
    MANUAL_VDB_ALLOWED.store(value != 0, Relaxed);
}

#[no_mangle]
pub extern "C" fn GC_get_manual_vdb_allowed() -> c_int {
    MANUAL_VDB_ALLOWED.load(Relaxed) as c_int
}

/// No-op: gcpin starts no marker threads.
#[no_mangle]
pub extern "C" fn GC_start_mark_threads() {}

/// `*(void **)p = q` (the write barrier gcpin does not need).
#[no_mangle]
pub extern "C" fn GC_ptr_store_and_dirty(p: *mut c_void, q: *const c_void) {
    if !p.is_null() {
        // SAFETY: the program passes a writable pointer-sized location.
        unsafe { *(p as *mut *const c_void) = q };
    }
}

/// No-op: gcpin needs no notice of changed objects.
#[no_mangle]
pub extern "C" fn GC_end_stubborn_change(_p: *const c_void) {}

/// No-op, as in libgc 8.2.
#[no_mangle]
pub extern "C" fn GC_change_stubborn(_p: *const c_void) {}

/// A summary of the heap on stderr.
#[no_mangle]
pub extern "C" fn GC_dump() {
    ffi_boundary!((), {
        let st = read_stats();
        let text = format!(
            "gcpin heap (GC_dump): {} collections; {} bytes held from the OS, {} in {} live objects, \
             {} given back to the OS; {} bytes allocated in all; {} objects pinned, {} finalizers queued; \
             pauses {} ns in all, {} ns the longest; next collection at {} bytes\n",
            st.num_gc,
            st.heap_sys_bytes,
            st.heap_alloc_bytes,
            st.heap_objects,
            st.heap_released_bytes,
            st.total_alloc_bytes,
            st.pinned_objects,
            st.finalizers_queued,
            st.pause_total_ns,
            st.max_pause_ns,
            st.next_gc_bytes,
        );
        crate::os::write_stderr(&[&text]);
    })
}

// --------------------------------------------------------------------- roots

/// Adds `[lo, hi)` as a root range (an empty range is ignored).
#[no_mangle]
pub extern "C" fn GC_add_roots(lo: *mut c_void, hi: *mut c_void) {
    let (lo, hi) = (lo as usize, hi as usize);
    if lo >= hi {
        return;
    }
    ffi_boundary!((), {
        let Some((h, _g)) = enter() else { return };
        let mut mine = LIBGC_ROOTS.lock().unwrap_or_else(|e| e.into_inner());
        if h.roots.add(lo, hi - lo).is_ok() {
            mine.push((lo, hi));
        }
    })
}

/// Removes `[lo, hi)` from the ranges added with `GC_add_roots`: any part of
/// one, splitting it when the hole is in its middle.
#[no_mangle]
pub extern "C" fn GC_remove_roots(lo: *mut c_void, hi: *mut c_void) {
    let (lo, hi) = (lo as usize, hi as usize);
    if lo >= hi {
        return;
    }
    ffi_boundary!((), {
        let Some((h, _g)) = enter() else { return };
        let mut mine = LIBGC_ROOTS.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = Vec::with_capacity(mine.len() + 1);
        for &(a, b) in mine.iter() {
            if b <= lo || a >= hi {
                kept.push((a, b));
                continue;
            }
            let _ = h.roots.remove(a, b - a);
            for (x, y) in [(a, lo.max(a)), (hi.min(b), b)] {
                if x < y && h.roots.add(x, y - x).is_ok() {
                    kept.push((x, y));
                }
            }
        }
        *mine = kept;
    })
}

/// Removes every range added with `GC_add_roots` (the data segments stay
/// roots: gcpin finds them itself).
#[no_mangle]
pub extern "C" fn GC_clear_roots() {
    ffi_boundary!((), {
        let Some((h, _g)) = enter() else { return };
        let mut mine = LIBGC_ROOTS.lock().unwrap_or_else(|e| e.into_inner());
        for (a, b) in mine.drain(..) {
            let _ = h.roots.remove(a, b - a);
        }
    })
}

/// No-op: gcpin scans every data segment whole (more retention, never less).
#[no_mangle]
pub extern "C" fn GC_exclude_static_roots(_lo: *mut c_void, _hi: *mut c_void) {}

// -------------------------------------------------------------- finalization

/// Registers (or, with `f` NULL, clears) the finalizer of the object `obj`
/// points into, reporting the old one through `ofn`/`ocd` (each may be NULL).
/// A pointer outside the heap changes nothing and reports no old finalizer.
/// Order: an object reachable from another finalizable object is finalized
/// after it (libgc's `GC_register_finalizer` order, used for every variant).
fn register_finalizer(
    obj: *mut c_void,
    f: GC_finalization_proc,
    cd: *mut c_void,
    ofn: *mut GC_finalization_proc,
    ocd: *mut *mut c_void,
) {
    let old = ffi_boundary!(None, {
        if obj.is_null() {
            return None;
        }
        let (h, g) = enter()?;
        let (s, idx) = object_of(h, obj).ok()?;
        let old = finalizer::swap(s, idx, f, cd).ok()?;
        drop(g);
        if f.is_some() {
            h.ensure_finalizer_thread();
        }
        old
    });
    if !ofn.is_null() {
        // SAFETY: a non-NULL out-parameter from the caller.
        unsafe { *ofn = old.map(|(func, _)| func) };
    }
    if !ocd.is_null() {
        // SAFETY: as above.
        unsafe { *ocd = old.map_or(std::ptr::null_mut(), |(_, arg)| arg) };
    }
}

/// Defines the finalizer-registration entry points, each `register_finalizer`
/// under another of libgc's names.
macro_rules! finalizer_entry_points {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[no_mangle]
        pub extern "C" fn $name(
            obj: *mut c_void,
            f: GC_finalization_proc,
            cd: *mut c_void,
            ofn: *mut GC_finalization_proc,
            ocd: *mut *mut c_void,
        ) {
            register_finalizer(obj, f, cd, ofn, ocd)
        }
    )*};
}

finalizer_entry_points! {
    GC_register_finalizer;
    /// A pointer from the object to itself still keeps it from being
    /// finalized (see the README).
    GC_register_finalizer_ignore_self;
    /// Ordered as `GC_register_finalizer` (see the README).
    GC_register_finalizer_no_order;
    /// Ordered as `GC_register_finalizer` (see the README).
    GC_register_finalizer_unreachable;
    GC_debug_register_finalizer;
    GC_debug_register_finalizer_ignore_self;
    GC_debug_register_finalizer_no_order;
    GC_debug_register_finalizer_unreachable;
}

/// Runs the queued finalizers on the calling thread; returns how many ran.
#[no_mangle]
pub extern "C" fn GC_invoke_finalizers() -> c_int {
    ffi_boundary!(0, { heap().run_finalizers(usize::MAX).min(c_int::MAX as usize) as c_int })
}

#[no_mangle]
pub extern "C" fn GC_should_invoke_finalizers() -> c_int {
    heap_if_exists().is_some_and(|h| !h.finq.is_empty()) as c_int
}

/// Nonzero: finalizers run only in `GC_invoke_finalizers` (and
/// `gc_run_finalizers`), never on gcpin's finalizer thread.
#[no_mangle]
pub extern "C" fn GC_set_finalize_on_demand(value: c_int) {
    ffi_boundary!((), {
        let h = heap();
        h.finq.on_demand.store(value != 0, Release);
        if value == 0 {
            h.finq.wake();
        }
    })
}

#[no_mangle]
pub extern "C" fn GC_get_finalize_on_demand() -> c_int {
    heap_if_exists().is_some_and(|h| h.finq.on_demand.load(Acquire)) as c_int
}

/// `f` is called after each collection that queued finalizers.
#[no_mangle]
pub extern "C" fn GC_set_finalizer_notifier(f: GC_finalizer_notifier_proc) {
    ffi_boundary!((), { heap().finq.notifier.store(f.map_or(0, |f| f as usize), Release) })
}

#[no_mangle]
pub extern "C" fn GC_get_finalizer_notifier() -> GC_finalizer_notifier_proc {
    // SAFETY: only `extern "C" fn()` values are stored in the notifier.
    heap_if_exists().and_then(|h| unsafe { load_fn(&h.finq.notifier) })
}

/// Kept and reported back: gcpin's finalization order is always the
/// topological one (see `register_finalizer`).
#[no_mangle]
pub extern "C" fn GC_set_java_finalization(value: c_int) {
    JAVA_FINALIZATION.store(value != 0, Relaxed);
}

#[no_mangle]
pub extern "C" fn GC_get_java_finalization() -> c_int {
    JAVA_FINALIZATION.load(Relaxed) as c_int
}

// -------------------------------------------------------- disappearing links

fn link_ok(link: *mut *mut c_void, who: &'static [u8]) -> bool {
    let ok = !link.is_null() && (link as usize).is_multiple_of(std::mem::align_of::<*mut c_void>());
    if !ok {
        warn(who, link as usize);
    }
    ok
}

/// Registers a link to `obj` (a heap object: its start or inside it, or
/// memory outside the heap, which never dies). `obj` at a free heap slot gets
/// a warning and `GC_UNIMPLEMENTED`.
fn register_link(link: *mut *mut c_void, obj: *const c_void, long: bool) -> c_int {
    if !link_ok(link, b"GC Warning: a disappearing link must be a non-NULL, aligned address, not %p\n\0") {
        return GC_UNIMPLEMENTED;
    }
    ffi_boundary!(GC_NO_MEMORY, {
        let Some((h, g)) = enter() else {
            return GC_NO_MEMORY;
        };
        let target = match object_of(h, obj) {
            // SAFETY: an in-use span.
            Ok((s, idx)) => unsafe { (*s).object_base(idx) },
            Err(PinError::NotGcPointer) | Err(PinError::Null) => obj as usize,
            Err(_) => {
                drop(g);
                warn(b"GC Warning: a disappearing link to a free heap slot, %p; not registered\n\0", obj as usize);
                return GC_UNIMPLEMENTED;
            }
        };
        if target == 0 {
            drop(g);
            warn(b"GC Warning: a disappearing link to NULL (link %p); not registered\n\0", link as usize);
            return GC_UNIMPLEMENTED;
        }
        match h.links.register(link as usize, target, long) {
            Ok(()) => GC_SUCCESS,
            Err(_) => GC_DUPLICATE,
        }
    })
}

#[no_mangle]
pub extern "C" fn GC_general_register_disappearing_link(link: *mut *mut c_void, obj: *const c_void) -> c_int {
    register_link(link, obj, false)
}

/// libgc's older form: the link is cleared when the object that contains the
/// link itself dies; a link outside the heap gets a warning and
/// `GC_UNIMPLEMENTED`.
#[no_mangle]
pub extern "C" fn GC_register_disappearing_link(link: *mut *mut c_void) -> c_int {
    let base = GC_base(link as *mut c_void);
    if base.is_null() {
        warn(b"GC Warning: GC_register_disappearing_link of a link outside the heap, %p\n\0", link as usize);
        return GC_UNIMPLEMENTED;
    }
    register_link(link, base, false)
}

#[no_mangle]
pub extern "C" fn GC_register_long_link(link: *mut *mut c_void, obj: *const c_void) -> c_int {
    register_link(link, obj, true)
}

fn unregister_link(link: *mut *mut c_void, long: bool) -> c_int {
    ffi_boundary!(0, {
        let Some((h, _g)) = enter() else { return 0 };
        h.links.unregister(link as usize, long).is_ok() as c_int
    })
}

/// 1 if the link was registered (and is not any more), else 0.
#[no_mangle]
pub extern "C" fn GC_unregister_disappearing_link(link: *mut *mut c_void) -> c_int {
    unregister_link(link, false)
}

#[no_mangle]
pub extern "C" fn GC_unregister_long_link(link: *mut *mut c_void) -> c_int {
    unregister_link(link, true)
}

fn move_link(link: *mut *mut c_void, new_link: *mut *mut c_void, long: bool) -> c_int {
    if !link_ok(new_link, b"GC Warning: a disappearing link must be a non-NULL, aligned address, not %p\n\0") {
        return GC_UNIMPLEMENTED;
    }
    ffi_boundary!(GC_NO_MEMORY, {
        let Some((h, _g)) = enter() else {
            return GC_NO_MEMORY;
        };
        match h.links.relocate(link as usize, new_link as usize, long) {
            Ok(()) => GC_SUCCESS,
            Err(LinkError::Duplicate) => GC_DUPLICATE,
            Err(LinkError::NotFound) => GC_NOT_FOUND,
        }
    })
}

/// `GC_SUCCESS`, `GC_DUPLICATE` (`new_link` is registered already) or
/// `GC_NOT_FOUND` (`link` is not registered).
#[no_mangle]
pub extern "C" fn GC_move_disappearing_link(link: *mut *mut c_void, new_link: *mut *mut c_void) -> c_int {
    move_link(link, new_link, false)
}

#[no_mangle]
pub extern "C" fn GC_move_long_link(link: *mut *mut c_void, new_link: *mut *mut c_void) -> c_int {
    move_link(link, new_link, true)
}

// ------------------------------------------------------------------- threads

/// What a thread started by `GC_pthread_create` runs: kept in an uncollectable
/// object until the new thread is registered, so `arg` stays alive meanwhile.
#[repr(C)]
struct StartInfo {
    start: StartRoutine,
    arg: *mut c_void,
}

extern "C" fn thread_start(info: *mut c_void) -> *mut c_void {
    let _ = ffi_boundary!(None, { heap().current_or_register() });
    // SAFETY: `info` is the StartInfo GC_pthread_create made for us.
    let (start, arg) = unsafe { ((*(info as *mut StartInfo)).start, (*(info as *mut StartInfo)).arg) };
    GC_free(info);
    let arg = std::hint::black_box(arg);
    match start {
        // SAFETY: the program's start routine, called as pthread_create would.
        Some(f) => unsafe { f(arg) },
        None => std::ptr::null_mut(),
    }
}

/// `pthread_create`, with the new thread registered before `start` runs.
///
/// # Safety
/// As `pthread_create`.
#[no_mangle]
pub unsafe extern "C" fn GC_pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: StartRoutine,
    arg: *mut c_void,
) -> c_int {
    if thread.is_null() || start.is_none() {
        return libc::EINVAL;
    }
    let info = GC_malloc_uncollectable(std::mem::size_of::<StartInfo>()) as *mut StartInfo;
    if info.is_null() {
        return libc::EAGAIN;
    }
    // SAFETY: a fresh object of the right size.
    unsafe { info.write(StartInfo { start, arg }) };
    // SAFETY: the caller's arguments, as pthread_create takes them; our start
    // routine and its argument.
    let rc = unsafe { libc::pthread_create(thread, attr, thread_start, info as *mut c_void) };
    if rc != 0 {
        GC_free(info as *mut c_void);
    }
    rc
}

/// # Safety
/// As `pthread_join`.
#[no_mangle]
pub unsafe extern "C" fn GC_pthread_join(thread: libc::pthread_t, retval: *mut *mut c_void) -> c_int {
    // SAFETY: the caller's arguments, as pthread_join takes them.
    unsafe { libc::pthread_join(thread, retval) }
}

/// # Safety
/// As `pthread_detach`.
#[no_mangle]
pub unsafe extern "C" fn GC_pthread_detach(thread: libc::pthread_t) -> c_int {
    // SAFETY: as pthread_detach.
    unsafe { libc::pthread_detach(thread) }
}

/// # Safety
/// As `pthread_cancel`.
#[no_mangle]
pub unsafe extern "C" fn GC_pthread_cancel(thread: libc::pthread_t) -> c_int {
    // SAFETY: as pthread_cancel.
    unsafe { libc::pthread_cancel(thread) }
}

/// `pthread_exit`: the thread is unregistered by gcpin's key destructor as it
/// exits. "C-unwind": glibc unwinds the thread's frames, this one included.
///
/// # Safety
/// As `pthread_exit`.
#[no_mangle]
pub unsafe extern "C-unwind" fn GC_pthread_exit(retval: *mut c_void) -> ! {
    // SAFETY: as pthread_exit; this frame has nothing to drop.
    unsafe { libc::pthread_exit(retval) }
}

/// `pthread_sigmask`, except that gcpin's suspend signal is never blocked (a
/// thread that blocked it could not be stopped for a collection).
///
/// # Safety
/// As `pthread_sigmask`.
#[no_mangle]
pub unsafe extern "C" fn GC_pthread_sigmask(how: c_int, set: *const libc::sigset_t, old: *mut libc::sigset_t) -> c_int {
    if set.is_null() || how == libc::SIG_UNBLOCK {
        // SAFETY: as pthread_sigmask.
        return unsafe { libc::pthread_sigmask(how, set, old) };
    }
    let sig = heap().config.sig_suspend;
    // SAFETY: a copy of the caller's set; sigdelset on our copy.
    unsafe {
        let mut mine = *set;
        libc::sigdelset(&mut mine, sig);
        libc::pthread_sigmask(how, &mine, old)
    }
}

/// `dlopen` (libgc redirects it to keep its list of libraries current; gcpin
/// reads the loaded libraries at each collection).
///
/// # Safety
/// As `dlopen`.
#[no_mangle]
pub unsafe extern "C" fn GC_dlopen(path: *const c_char, flags: c_int) -> *mut c_void {
    // SAFETY: as dlopen.
    unsafe { libc::dlopen(path, flags) }
}

/// Registers the calling thread: `GC_SUCCESS`, `GC_DUPLICATE` if it was
/// registered, `GC_NO_MEMORY` if its stack bounds cannot be had. The stack
/// base given is not used: gcpin reads the thread's stack bounds itself.
#[no_mangle]
pub extern "C" fn GC_register_my_thread(_sb: *const GC_stack_base) -> c_int {
    if !threads::current().is_null() {
        return GC_DUPLICATE;
    }
    ffi_boundary!(GC_NO_MEMORY, {
        match heap().current_or_register() {
            Some(_) => GC_SUCCESS,
            None => GC_NO_MEMORY,
        }
    })
}

/// Unregisters the calling thread (a thread that is not registered is left
/// as it is). Always `GC_SUCCESS`, as in libgc.
#[no_mangle]
pub extern "C" fn GC_unregister_my_thread() -> c_int {
    ffi_boundary!(GC_SUCCESS, {
        let t = threads::current();
        if !t.is_null() {
            threads::unregister(t);
        }
        GC_SUCCESS
    })
}

#[no_mangle]
pub extern "C" fn GC_thread_is_registered() -> c_int {
    !threads::current().is_null() as c_int
}

/// No-op: any thread may register with gcpin at any time.
#[no_mangle]
pub extern "C" fn GC_allow_register_threads() {}

/// The calling thread's stack base (its highest address): `GC_SUCCESS`, or
/// `GC_UNIMPLEMENTED` when the system cannot tell.
#[no_mangle]
pub extern "C" fn GC_get_stack_base(sb: *mut GC_stack_base) -> c_int {
    if sb.is_null() {
        return GC_UNIMPLEMENTED;
    }
    // SAFETY: pthread_getattr_np fills the attr we own; destroyed after use.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return GC_UNIMPLEMENTED;
        }
        let mut addr: *mut c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if r != 0 {
            return GC_UNIMPLEMENTED;
        }
        (*sb).mem_base = (addr as *mut u8).add(size) as *mut c_void;
    }
    GC_SUCCESS
}

/// Calls `f(sb, arg)` with the calling thread's stack base.
#[no_mangle]
pub extern "C" fn GC_call_with_stack_base(f: GC_stack_base_func, arg: *mut c_void) -> *mut c_void {
    let mut sb = GC_stack_base { mem_base: std::ptr::null_mut() };
    if GC_get_stack_base(&mut sb) != GC_SUCCESS {
        // The frame we are in is as good a base as libgc's own fallback.
        sb.mem_base = std::ptr::addr_of_mut!(sb) as *mut c_void;
    }
    match f {
        // SAFETY: the program's function, called as libgc calls it.
        Some(f) => unsafe { f(&mut sb, arg) },
        None => std::ptr::null_mut(),
    }
}

fn call(f: GC_fn_type, arg: *mut c_void) -> *mut c_void {
    match f {
        // SAFETY: the program's function, called as libgc calls it.
        Some(f) => unsafe { f(arg) },
        None => std::ptr::null_mut(),
    }
}

/// Calls `f(arg)`: gcpin stops threads by signal wherever they are, so a
/// thread blocked in a system call needs no notice.
#[no_mangle]
pub extern "C" fn GC_do_blocking(f: GC_fn_type, arg: *mut c_void) -> *mut c_void {
    call(f, arg)
}

/// Calls `f(arg)` (see `GC_do_blocking`).
#[no_mangle]
pub extern "C" fn GC_call_with_gc_active(f: GC_fn_type, arg: *mut c_void) -> *mut c_void {
    call(f, arg)
}

/// Calls `f(arg)` with no collection running or starting meanwhile, and with
/// other callers of this function waiting (libgc's allocation lock). Unlike
/// libgc, `f` may allocate.
#[no_mangle]
pub extern "C" fn GC_call_with_alloc_lock(f: GC_fn_type, arg: *mut c_void) -> *mut c_void {
    let _serial = ALLOC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    GC_disable();
    let r = call(f, arg);
    GC_enable();
    r
}

#[no_mangle]
pub extern "C" fn GC_get_suspend_signal() -> c_int {
    ffi_boundary!(-1, { heap().config.sig_suspend })
}

/// -1: gcpin restarts stopped threads without a signal.
#[no_mangle]
pub extern "C" fn GC_get_thr_restart_signal() -> c_int {
    -1
}

/// No-op: the suspend signal is `GCPIN_SIG_SUSPEND`'s, read at start.
#[no_mangle]
pub extern "C" fn GC_set_suspend_signal(_sig: c_int) {}

/// No-op: gcpin uses no restart signal.
#[no_mangle]
pub extern "C" fn GC_set_thr_restart_signal(_sig: c_int) {}

// ------------------------------------------------------------ GC_debug_* API
//
// The debugging versions take libgc's GC_EXTRAS (file and line) and forward
// to the plain ones; gcpin's own checks (bad pointers, warnings) apply to both.

/// Defines `GC_debug_*` allocation functions, each taking libgc's
/// GC_EXTRAS (file and line) and calling the plain function.
macro_rules! debug_allocators {
    ($($name:ident => $plain:ident;)*) => {$(
        #[no_mangle]
        pub extern "C" fn $name(bytes: usize, _file: *const c_char, _line: c_int) -> *mut c_void {
            $plain(bytes)
        }
    )*};
}

debug_allocators! {
    GC_debug_malloc => GC_malloc;
    GC_debug_malloc_atomic => GC_malloc_atomic;
    GC_debug_malloc_uncollectable => GC_malloc_uncollectable;
    GC_debug_malloc_atomic_uncollectable => GC_malloc_atomic_uncollectable;
    GC_debug_malloc_ignore_off_page => GC_malloc_ignore_off_page;
    GC_debug_malloc_atomic_ignore_off_page => GC_malloc_atomic_ignore_off_page;
    GC_debug_malloc_stubborn => GC_malloc;
}

#[no_mangle]
pub extern "C" fn GC_debug_malloc_replacement(bytes: usize) -> *mut c_void {
    GC_malloc(bytes)
}

#[no_mangle]
pub extern "C" fn GC_debug_realloc(p: *mut c_void, bytes: usize, _file: *const c_char, _line: c_int) -> *mut c_void {
    GC_realloc(p, bytes)
}

#[no_mangle]
pub extern "C" fn GC_debug_realloc_replacement(p: *mut c_void, bytes: usize) -> *mut c_void {
    GC_realloc(p, bytes)
}

#[no_mangle]
pub extern "C" fn GC_debug_free(p: *mut c_void) {
    GC_free(p)
}

#[no_mangle]
pub extern "C" fn GC_debug_strdup(s: *const c_char, _file: *const c_char, _line: c_int) -> *mut c_char {
    GC_strdup(s)
}

#[no_mangle]
pub extern "C" fn GC_debug_strndup(s: *const c_char, n: usize, _file: *const c_char, _line: c_int) -> *mut c_char {
    GC_strndup(s, n)
}

#[no_mangle]
pub extern "C" fn GC_debug_end_stubborn_change(p: *const c_void) {
    GC_end_stubborn_change(p)
}

#[no_mangle]
pub extern "C" fn GC_debug_change_stubborn(p: *const c_void) {
    GC_change_stubborn(p)
}

#[no_mangle]
pub extern "C" fn GC_debug_ptr_store_and_dirty(p: *mut c_void, q: *const c_void) {
    GC_ptr_store_and_dirty(p, q)
}

#[no_mangle]
pub extern "C" fn GC_debug_register_displacement(offset: usize) {
    GC_register_displacement(offset)
}

// ------------------------------------------------------------- gc_backptr.h

/// libgc's `GC_NO_SPACE` (of `GC_ref_kind`): no back-pointer information.
const GC_NO_SPACE: c_int = 1;

/// gcpin keeps no back pointers: clears the out-parameters and answers
/// `GC_NO_SPACE`, as libgc does when built without them.
#[no_mangle]
pub extern "C" fn GC_get_back_ptr_info(_dest: *mut c_void, base: *mut *mut c_void, offset: *mut usize) -> c_int {
    if !base.is_null() {
        // SAFETY: a non-NULL out-parameter from the caller.
        unsafe { *base = std::ptr::null_mut() };
    }
    if !offset.is_null() {
        // SAFETY: as above.
        unsafe { *offset = 0 };
    }
    GC_NO_SPACE
}

#[no_mangle]
pub extern "C" fn GC_generate_random_backtrace() {
    crate::os::write_stderr(&["gcpin: GC_generate_random_backtrace: no back pointers are kept\n"]);
}

/// Prints the base and size of the object containing `p` on stderr.
#[no_mangle]
pub extern "C" fn GC_print_backtrace(p: *mut c_void) {
    ffi_boundary!((), {
        let base = GC_base(p);
        let line = if base.is_null() {
            format!("gcpin: GC_print_backtrace: {p:p} is not in an allocated object\n")
        } else {
            format!("gcpin: GC_print_backtrace: {p:p} is in the object at {base:p} of {} bytes; no back pointers are kept\n", GC_size(base))
        };
        crate::os::write_stderr(&[&line]);
    })
}
