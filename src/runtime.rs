//! The runtime: the one process-wide value, its creation, and fork.
//!
//! `Runtime` owns everything the runtime shares between threads: the `Heap`
//! (arena, spans, pacer, finalizer queue, root ranges, statistics,
//! configuration), the world lock around the registry of threads, the marker,
//! the disappearing links and the table of weak handles. It is the only thing that names the
//! process-wide static (`RUNTIME`); everything below it is handed the parts it
//! needs. It derefs to its heap, so `rt.span_of(p)` reads as before.
//!
//! The `Runtime` lives in a mapping of its own, never in this library's data
//! segment: every cycle scans the data and bss of every loaded object —
//! libgcpin's too, and when it is linked statically its statics sit among the
//! program's own globals — and the runtime's records hold span base addresses
//! (the marker's span cache, the central lists), which are the addresses of
//! the spans' first objects. Scanned, they kept such objects alive for ever.
//! Only the address of the mapping (outside the arena) is in the static.
//!
//! fork(): the child has only the forking thread. `fork_prepare` stops the
//! world so that no other thread holds a runtime lock at the moment of the
//! fork; the child then moves every other thread's record to
//! `World::forked_away`. The handlers are registered when the library is
//! loaded (an .init_array constructor), before any thread can be creating the
//! runtime: a fork in the middle of that would leave the child a half-made
//! runtime and a held lock.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicPtr, Ordering::*};
use std::sync::{Mutex, MutexGuard};

use crate::config::Config;
use crate::heap::Heap;
use crate::links::LinkTable;
use crate::mark::{AssistMarkers, MarkWorkers, Marker};
use crate::os;
use crate::stopworld;
use crate::threads::{self, World};
use crate::weak::WeakTable;
use crate::worldlock::{WorldGuard, WorldLock};
use crate::writetrack::WriteTracker;

/// Whether concurrent cycles can track the heap's writes (see `concurrent`).
pub enum Tracking {
    /// Not asked yet: the first concurrent cycle makes the tracker.
    Untried,
    Ready(WriteTracker),
    /// The kernel refused (the reason was traced once): cycles stop the world.
    Unsupported,
}

/// The background thread that runs concurrent cycles (see `concurrent`).
pub struct GcThread {
    /// Whether it was started (in this process: a forked child has none).
    pub started: std::sync::atomic::AtomicBool,
    /// Bumped to wake it; it waits on this word.
    pub wake: std::sync::atomic::AtomicU32,
    /// A concurrent cycle was asked for and has not ended yet.
    pub pending: std::sync::atomic::AtomicBool,
    /// The last concurrent cycle's marking used more than half the room
    /// allocation had before it would wait: the next one marks on every
    /// marker, not on a quarter of them (`concurrent::helpers_for`).
    pub hurry: std::sync::atomic::AtomicBool,
    /// 1 while allocation waits for the running cycle's final stop
    /// (`concurrent::hold`).
    pub held: std::sync::atomic::AtomicU32,
    /// 1 from the request of a concurrent cycle to the end of its final stop
    /// (or of the cycle, if it runs none): a thread past the runway waits,
    /// marking, only while it is (`concurrent::collect_if_wanted`); they
    /// wait on this word.
    pub marking: std::sync::atomic::AtomicU32,
}

pub struct Runtime {
    pub heap: Heap,
    /// The collection lock and the registry of threads (see `threads`).
    pub world: WorldLock<World>,
    /// The mark stack and its span cache: used only by the holder of the world
    /// lock (`marker`).
    marker: UnsafeCell<Marker>,
    /// The marker threads beside the collecting one (see `mark`).
    pub mark_workers: MarkWorkers,
    /// The markers of program threads that assist a concurrent mark.
    pub assist_markers: AssistMarkers,
    /// Disappearing links (libgc's API, and gc_weak handles), cleared by the sweep.
    pub links: LinkTable,
    /// The canonical gc_weak handle of each pointer (see `weak`).
    pub weak: WeakTable,
    /// The write tracker, for the holder of the world lock (`tracking`).
    tracking: UnsafeCell<Tracking>,
    pub gc_thread: GcThread,
}

// SAFETY: the marker and the tracking state are only reached through
// `marker` and `tracking`, which take the world lock's guard; every other
// field is Sync on its own.
unsafe impl Sync for Runtime {}
// SAFETY: as above.
unsafe impl Send for Runtime {}

impl std::ops::Deref for Runtime {
    type Target = Heap;
    fn deref(&self) -> &Heap {
        &self.heap
    }
}

impl Runtime {
    /// A runtime configured by `config`. The process's one is made by
    /// `runtime()`, from the environment; tests make their own.
    pub fn new(config: Config) -> Runtime {
        Runtime {
            heap: Heap::new(config),
            world: WorldLock::new(World::new()),
            marker: UnsafeCell::new(Marker::new()),
            mark_workers: MarkWorkers::new(),
            assist_markers: AssistMarkers::new(),
            links: LinkTable::new(),
            weak: WeakTable::new(),
            tracking: UnsafeCell::new(Tracking::Untried),
            gc_thread: GcThread {
                started: std::sync::atomic::AtomicBool::new(false),
                wake: std::sync::atomic::AtomicU32::new(0),
                pending: std::sync::atomic::AtomicBool::new(false),
                hurry: std::sync::atomic::AtomicBool::new(false),
                held: std::sync::atomic::AtomicU32::new(0),
                marking: std::sync::atomic::AtomicU32::new(0),
            },
        }
    }

    /// The write tracker's state, for the holder of the world lock. (Its
    /// borrow is the runtime's, not the guard's, so that a cycle can use the
    /// tracker while it hands the guard on; it must not keep it past the
    /// lock, nor ask twice at once.)
    #[allow(clippy::mut_from_ref)] // exclusive through the guard
    pub fn tracking(&self, _world: &WorldGuard<'_, World>) -> &mut Tracking {
        // SAFETY: as `marker`: only the world lock's holder has a guard, and
        // the one caller (`concurrent::tracker`) asks once per cycle.
        unsafe { &mut *self.tracking.get() }
    }

    /// The calling thread's record, registering it first if needed.
    #[inline]
    pub fn current_or_register(&'static self) -> Option<*mut threads::ThreadState> {
        threads::current_or_register(&self.heap, &self.world)
    }

    /// The calling thread's record for a gcpin entry point (see
    /// `threads::enter_api`).
    #[inline]
    pub fn enter_api(&'static self) -> Result<*mut threads::ThreadState, threads::Refusal> {
        threads::enter_api(&self.heap, &self.world)
    }

    /// Runs up to `max` queued finalizers on the calling thread (see
    /// `finalizer::run_queued`).
    pub fn run_finalizers(&'static self, max: usize) -> usize {
        crate::finalizer::run_queued(&self.heap, &self.world, max)
    }

    /// Starts the finalizer thread if it is not running. Outside the runtime.
    pub fn ensure_finalizer_thread(&'static self) {
        crate::finalizer::ensure_thread(&self.heap, &self.world)
    }

    /// Locks the world for the calling thread. Outside the runtime.
    pub fn lock_world(&self) -> WorldGuard<'_, World> {
        threads::lock_world(&self.world)
    }

    /// The marker, for the holder of the world lock.
    #[allow(clippy::mut_from_ref)] // exclusive through the guard
    pub fn marker<'a>(&'a self, _world: &'a WorldGuard<'_, World>) -> &'a mut Marker {
        // SAFETY: only the world lock's holder has a guard, and it is borrowed
        // for as long as the marker; the holder asks for it once at a time.
        unsafe { &mut *self.marker.get() }
    }
}

static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());
/// Held while the runtime is created, and by a forking thread across `fork()`,
/// so that a child never inherits a half-made runtime.
static RUNTIME_INIT: Mutex<()> = Mutex::new(());

/// The process's runtime, created on first use.
#[inline]
pub fn runtime() -> &'static Runtime {
    match runtime_if_exists() {
        Some(rt) => rt,
        None => runtime_slow(),
    }
}

#[cold]
fn runtime_slow() -> &'static Runtime {
    // The program's signals wait until the runtime exists: a handler that
    // interrupted the first call here and called gcpin itself would wait for
    // the init lock its own thread holds (a fast timer's SIGALRM did, in
    // `test_signal_handlers`). The handler runs when the mask is restored,
    // and is served.
    let _held = threads::HeldSignals::new();
    let _g = RUNTIME_INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = runtime_if_exists() {
        return rt;
    }
    let mem = os::reserve(std::mem::size_of::<Runtime>())
        .unwrap_or_else(|| os::throw("cannot reserve memory for the runtime's records")) as *mut Runtime;
    const { assert!(std::mem::align_of::<Runtime>() <= 4096) };
    // SAFETY: a fresh private mapping, page-aligned (enough for Runtime) and
    // large enough; published only once written and set up.
    unsafe { mem.write(Runtime::new(Config::from_env())) };
    // SAFETY: just written; never freed or moved.
    let rt: &'static Runtime = unsafe { &*mem };
    // The suspend signal's handler and the thread key, before any thread can
    // register, also under the init lock.
    threads::setup(rt.config.sig_suspend, stopworld::suspend_handler);
    RUNTIME.store(mem, Release);
    rt
}

/// The runtime if it exists already (for paths that must not create it).
#[inline]
pub fn runtime_if_exists() -> Option<&'static Runtime> {
    let p = RUNTIME.load(Acquire);
    // SAFETY: a non-null RUNTIME is a fully written Runtime that lives for the
    // rest of the process.
    (!p.is_null()).then(|| unsafe { &*p })
}

#[used]
#[link_section = ".init_array"]
static REGISTER_FORK_HANDLERS: extern "C" fn() = register_fork_handlers;

extern "C" fn register_fork_handlers() {
    // SAFETY: registers three functions of ours; no other state is touched.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
}

static mut FORK_GUARD: Option<WorldGuard<'static, World>> = None;
static mut FORK_INIT_GUARD: Option<MutexGuard<'static, ()>> = None;

extern "C" fn fork_prepare() {
    // Holding the init lock, no thread is halfway through creating the runtime.
    let init = RUNTIME_INIT.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: only the forking thread touches the FORK_* statics, between
    // prepare and parent/child.
    unsafe { *std::ptr::addr_of_mut!(FORK_INIT_GUARD) = Some(init) };
    let Some(rt) = runtime_if_exists() else { return };
    // The forking thread must be registered: in the child it is the only thread
    // and will own the world.
    let Some(me) = threads::register(&rt.heap, &rt.world) else { return };
    let mut w = threads::lock_world(&rt.world);
    stopworld::stop_the_world(&mut w, me);
    // SAFETY: see above.
    unsafe { *std::ptr::addr_of_mut!(FORK_GUARD) = Some(w) };
}

extern "C" fn fork_parent() {
    // SAFETY: see fork_prepare.
    unsafe {
        if let Some(w) = (*std::ptr::addr_of_mut!(FORK_GUARD)).take() {
            stopworld::start_the_world();
            drop(w);
        }
        drop((*std::ptr::addr_of_mut!(FORK_INIT_GUARD)).take());
    }
}

extern "C" fn fork_child() {
    // SAFETY: see fork_prepare. In the child only this thread exists.
    if let Some(mut w) = unsafe { (*std::ptr::addr_of_mut!(FORK_GUARD)).take() } {
        let rt = runtime();
        let me = threads::current();
        let others: Vec<*mut threads::ThreadState> = w.threads.iter().copied().filter(|&t| t != me).collect();
        for &t in &others {
            // SAFETY: the other threads do not exist in the child; their
            // records stay (as `forked_away`, see World) with their spans
            // back in the central lists and no cached pinner.
            unsafe {
                (*(*t).mcache.get()).release_all(&rt.heap, false);
                (*t).pinner_cache.store(0, Relaxed);
            }
            w.remove(t);
        }
        w.forked_away.extend(others);
        // SAFETY: `me` is our record.
        unsafe {
            (*me).pthread = libc::pthread_self();
            (*me).tid = os::gettid();
        }
        stopworld::forget_stopped_threads();
        rt.finq.forget_thread();
        rt.mark_workers.forget_threads();
        rt.assist_markers.forget_threads();
        // The background collector did not survive the fork either, and the
        // tracker's descriptors name the parent's memory: the child makes its own.
        rt.gc_thread.started.store(false, Relaxed);
        rt.gc_thread.pending.store(false, Relaxed);
        rt.gc_thread.held.store(0, Relaxed);
        rt.gc_thread.marking.store(0, Relaxed);
        rt.heap.marking_concurrently.store(false, Relaxed);
        // SAFETY: we hold the world (w) in the only thread of the child.
        *rt.tracking(&w) = Tracking::Untried;
        drop(w);
        rt.world.forget_waiters();
    }
    // SAFETY: see fork_prepare.
    drop(unsafe { (*std::ptr::addr_of_mut!(FORK_INIT_GUARD)).take() });
}
