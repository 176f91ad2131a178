//! Finalizers and cleanups: setting them, and who runs the queued ones.
//!
//! `gc_set_finalizer` hangs a finalizer special on an object. When a sweep finds
//! the object unmarked it moves the special to the queue (`finq`) and
//! resurrects the object, which
//! stays alive (with all it reaches: the queue is a root) until its finalizer has
//! run once; the object is freed by a later cycle [Go: SetFinalizer].
//!
//! `add_cleanup` hangs a cleanup special on an object [Go: AddCleanup]: it does
//! not keep the object alive (only its argument), and the sweep that finds the
//! object unmarked with no finalizer left queues it and frees the object. So a
//! cleanup runs after the object's finalizer, if any, once the object is
//! unreachable again. Each has an id (`cleanup`), by which it can be stopped
//! while it is still on its object.
//!
//! Finalizers and cleanups run outside the runtime, never with a lock held: on
//! the runtime's finalizer thread (started with the first finalizer or
//! cleanup) or on a thread calling `gc_run_finalizers`, whichever pops the
//! record first.
//!
//! Lock discipline: the queue lock is taken only inside the runtime, or by the
//! collector with the world stopped. The finalizer thread sleeps on a futex
//! sequence number, with no lock held, so it can be stopped while it sleeps.

use std::sync::atomic::Ordering::*;

use crate::heap::Heap;
use crate::os;
use crate::span::Span;
use crate::specials::{free_special, new_special, CleanupFn, FinalizerFn, KIND_CLEANUP, KIND_FINALIZER};
use crate::threads::{self, InRuntime, World};
use crate::worldlock::WorldLock;

/// Starts the finalizer thread if it is not running. Outside the runtime.
pub fn ensure_thread(h: &'static Heap, world: &'static WorldLock<World>) {
    if !h.finq.claim_thread() {
        return;
    }
    let sig_suspend = h.config.sig_suspend;
    let spawned =
        threads::spawn_runtime_thread(std::thread::Builder::new().name("gcpin-finalizer".into()), move || {
            // The program's process-directed signals (a timer's SIGALRM) go to its
            // own threads: a handler that calls gcpin here, while this thread
            // registers (before its record exists to refuse the call), would wait
            // for the world lock this thread holds. The suspend signal still stops it.
            threads::block_signals_but(sig_suspend);
            if threads::register(h, world).is_none() {
                return;
            }
            loop {
                let seq = h.finq.seq().load(Acquire);
                if h.finq.on_demand.load(Acquire) || run_queued(h, world, usize::MAX) == 0 {
                    os::futex_wait(h.finq.seq(), seq, None);
                }
            }
        });
    if spawned.is_err() {
        // No thread: finalizers still run through gc_run_finalizers.
        h.finq.forget_thread();
    }
}

/// Runs up to `max` queued finalizers on the calling thread (outside the
/// runtime). Returns how many ran.
///
/// Afterwards the stack below the caller is zeroed: the frames that held the
/// finalized objects' addresses are dead, but a thread stopped later (in the
/// suspend handler, deeper down) would have them inside its scanned range, and
/// one stale word would keep the last finalized object, and all it reaches,
/// alive for good. The finalizer thread, which only waits between batches,
/// would otherwise do that every time.
pub fn run_queued(h: &'static Heap, world: &'static WorldLock<World>, max: usize) -> usize {
    let ran = run_queued_here(h, world, max);
    if ran > 0 {
        scrub_stack();
    }
    ran
}

/// Zeroes 16 KiB of stack below the caller's frame.
#[inline(never)]
fn scrub_stack() {
    let mut dead = [0usize; 2048];
    // The array's address escapes, so the zeroing is not optimized away.
    std::hint::black_box(&mut dead);
}

#[inline(never)]
fn run_queued_here(h: &'static Heap, world: &'static WorldLock<World>, max: usize) -> usize {
    let Some(ts) = threads::current_or_register(h, world) else { return 0 };
    let mut ran = 0;
    while ran < max {
        // Pop the record and copy the object's address out of it without leaving
        // the runtime: once off the queue, the record (off-heap, not scanned) is
        // the only place that address lives until it is in our locals, which the
        // collector scans with our stack and registers. A collection between the
        // two would free the object under its finalizer.
        // (A cleanup record has no object; its argument is in the same place.)
        let (func, cleanup, obj, arg) = {
            let _g = InRuntime::enter(ts);
            let sp = h.finq.pop();
            if sp.is_null() {
                break;
            }
            // SAFETY: we popped the record, so it is ours, and it is off every
            // list; the queue kept the object and argument alive until now.
            unsafe {
                let fields = ((*sp).func, (*sp).cleanup, (*sp).obj, (*sp).arg);
                if (*sp).kind == KIND_CLEANUP {
                    h.cleanups.forget((*sp).id);
                }
                free_special(sp);
                fields
            }
        };
        if let Some(f) = func {
            let obj = std::hint::black_box(obj);
            // SAFETY: the user registered this function for this object.
            unsafe { f(obj as *mut libc::c_void, arg) };
            std::hint::black_box(obj);
        } else if let Some(c) = cleanup {
            let arg = std::hint::black_box(arg);
            // SAFETY: the user registered this function with this argument.
            unsafe { c(arg) };
            std::hint::black_box(arg);
        }
        ran += 1;
    }
    ran
}

/// Sets (`Some`) or clears (`None`) the finalizer of object `idx` of span `s`;
/// setting again replaces the function and argument. Inside the runtime; the
/// object is allocated. Fails only when no record can be had.
pub fn set(s: *mut Span, idx: usize, f: Option<FinalizerFn>, arg: *mut libc::c_void) -> Result<(), ()> {
    swap(s, idx, f, arg).map(|_| ())
}

/// `set`, returning the finalizer it replaced (function and argument; `None`
/// when there was none), as libgc's `GC_register_finalizer` reports it.
pub fn swap(
    s: *mut Span,
    idx: usize,
    f: Option<FinalizerFn>,
    arg: *mut libc::c_void,
) -> Result<Option<(FinalizerFn, *mut libc::c_void)>, ()> {
    // SAFETY: `s` is in use; its lock guards its specials.
    let mut list = unsafe { (*s).specials.lock().unwrap_or_else(|e| e.into_inner()) };
    let existing = list.find(idx as u32, KIND_FINALIZER);
    let old = if existing.is_null() {
        None
    } else {
        // SAFETY: a record on the list we hold locked.
        unsafe { (*existing).func.map(|func| (func, (*existing).arg)) }
    };
    match (f, existing.is_null()) {
        (None, true) => {}
        (None, false) => {
            let r = list.remove(idx as u32, KIND_FINALIZER);
            // SAFETY: just unlinked.
            unsafe { free_special(r) };
        }
        (Some(f), false) => {
            // SAFETY: a record on the list we hold locked.
            unsafe {
                (*existing).func = Some(f);
                (*existing).arg = arg;
            }
        }
        (Some(f), true) => {
            let sp = new_special(idx as u32, KIND_FINALIZER);
            if sp.is_null() {
                return Err(());
            }
            // SAFETY: fresh record; the list is locked.
            unsafe {
                (*sp).func = Some(f);
                (*sp).arg = arg;
                list.insert(sp);
                (*s).note_extras();
            }
        }
    }
    Ok(old)
}

/// Hangs a cleanup `f(arg)` on object `idx` of span `s` and returns its id
/// (never 0). Inside the runtime; the object is allocated. Fails only when no
/// record can be had.
pub fn add_cleanup(h: &Heap, s: *mut Span, idx: usize, f: CleanupFn, arg: *mut libc::c_void) -> Result<u64, ()> {
    let sp = new_special(idx as u32, KIND_CLEANUP);
    if sp.is_null() {
        return Err(());
    }
    // SAFETY: `s` is in use and holds object `idx` (contract).
    let base = unsafe { (*s).object_base(idx) };
    // SAFETY: `s` is in use; its lock guards its specials.
    let mut list = unsafe { (*s).specials.lock().unwrap_or_else(|e| e.into_inner()) };
    let id = h.cleanups.add(base);
    // SAFETY: a fresh record on no list; the list is locked.
    unsafe {
        (*sp).cleanup = Some(f);
        (*sp).arg = arg;
        (*sp).id = id;
        list.insert(sp);
        (*s).note_extras();
    }
    Ok(id)
}

/// Cancels cleanup `id` if it is still on its object: true then (it will not
/// run); false for an id that ran, was stopped, is queued to run, or never
/// was. Inside the runtime.
pub fn stop_cleanup(h: &Heap, id: u64) -> bool {
    let Some(obj) = h.cleanups.object_of(id) else { return false };
    // The id is here, so the record is on the object's span or in the queue:
    // the object is allocated, or was freed by the sweep that queued it (the
    // slot may hold another object now; the id tells the records apart).
    let Ok(crate::heap::Target::Object(s, idx)) = h.find_object(obj) else { return false };
    // SAFETY: an in-use span; its lock guards its specials.
    let mut list = unsafe { (*s).specials.lock().unwrap_or_else(|e| e.into_inner()) };
    let sp = list.remove_where(|sp| sp.kind == KIND_CLEANUP && sp.index == idx as u32 && sp.id == id, 1);
    drop(list);
    if sp.is_null() {
        return false;
    }
    h.cleanups.forget(id);
    // SAFETY: just unlinked.
    unsafe { free_special(sp) };
    true
}
