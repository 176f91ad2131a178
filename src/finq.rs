//! The finalizer queue: finalizer records whose objects a sweep found
//! unreachable, waiting to run [Go: finq in mfinal.go].
//!
//! A data structure only: who fills it (the sweep), who runs it and the
//! finalizer thread are in `finalizer`.
//!
//! Lock discipline: the queue lock is taken only inside the runtime, or by the
//! collector with the world stopped. The finalizer thread sleeps on the futex
//! word `seq`, with no lock held, so it can be stopped while it sleeps.
//! Invariant: `len` is the length of the list `head`..`tail`; every record on
//! it is owned by the queue, off its span's list, and its object (a
//! finalizer's; a cleanup record's `obj` is 0) and argument are roots (marked
//! through `for_each_queued`) until a runner pops it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::*};
use std::sync::Mutex;

use crate::os;
use crate::specials::Special;

struct QueueState {
    head: *mut Special,
    tail: *mut Special,
    len: usize,
}

// SAFETY: the records are owned by the queue and only touched under its lock
// (or with the world stopped).
unsafe impl Send for QueueState {}

pub struct FinalizerQueue {
    q: Mutex<QueueState>,
    seq: AtomicU32,
    thread_started: AtomicBool,
    /// Finalizers run only when the program asks (`gc_run_finalizers`), never
    /// on the finalizer thread (libgc's `GC_set_finalize_on_demand`).
    pub on_demand: AtomicBool,
    /// An `extern "C" fn()` called after a cycle that queued finalizers, or 0
    /// (libgc's `GC_set_finalizer_notifier`).
    pub notifier: AtomicUsize,
}

impl FinalizerQueue {
    pub const fn new() -> FinalizerQueue {
        FinalizerQueue {
            q: Mutex::new(QueueState { head: std::ptr::null_mut(), tail: std::ptr::null_mut(), len: 0 }),
            seq: AtomicU32::new(0),
            thread_started: AtomicBool::new(false),
            on_demand: AtomicBool::new(false),
            notifier: AtomicUsize::new(0),
        }
    }

    /// Appends a finalizer record (its `obj` set). World stopped.
    pub fn push(&self, sp: *mut Special) {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `sp` was unlinked from its span by the sweeper; the queue owns it.
        unsafe {
            (*sp).next = std::ptr::null_mut();
            if q.tail.is_null() {
                q.head = sp;
            } else {
                (*q.tail).next = sp;
            }
        }
        q.tail = sp;
        q.len += 1;
    }

    /// Takes the oldest record off the queue (null when empty): the caller owns
    /// it. Inside the runtime.
    pub fn pop(&self) -> *mut Special {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        let sp = q.head;
        if !sp.is_null() {
            // SAFETY: queued records are live and owned by the queue.
            q.head = unsafe { (*sp).next };
            if q.head.is_null() {
                q.tail = std::ptr::null_mut();
            }
            q.len -= 1;
        }
        sp
    }

    pub fn len(&self) -> usize {
        self.q.lock().unwrap_or_else(|e| e.into_inner()).len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f(obj, arg)` for every queued record. World stopped.
    pub fn for_each_queued(&self, mut f: impl FnMut(usize, usize)) {
        let q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = q.head;
        while !p.is_null() {
            // SAFETY: queued records are live.
            unsafe {
                f((*p).obj, (*p).arg as usize);
                p = (*p).next;
            }
        }
    }

    /// Tells the finalizer thread there is work. Outside the world stop.
    pub fn wake(&self) {
        self.seq.fetch_add(1, Release);
        os::futex_wake(&self.seq, i32::MAX);
    }

    /// Calls the notifier, if one is set: a cycle queued finalizers. Outside
    /// the world stop and the runtime.
    pub fn notify(&self) {
        let f = self.notifier.load(Acquire);
        if f != 0 {
            // SAFETY: only `extern "C" fn()` values are stored in `notifier`.
            unsafe { std::mem::transmute::<usize, extern "C" fn()>(f)() };
        }
    }

    /// The sequence number the finalizer thread sleeps on (`wake` bumps it).
    pub fn seq(&self) -> &AtomicU32 {
        &self.seq
    }

    /// Claims the right to start the finalizer thread: true once, until
    /// `forget_thread` (or a failed start) gives it back.
    pub fn claim_thread(&self) -> bool {
        !self.thread_started.load(Acquire) && !self.thread_started.swap(true, AcqRel)
    }

    /// In a forked child the finalizer thread is gone (and after a failed
    /// start there is none): the next finalizer starts a new one.
    pub fn forget_thread(&self) {
        self.thread_started.store(false, Release);
    }
}
