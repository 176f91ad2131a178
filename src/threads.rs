//! Threads: registration, the in-runtime guard, the suspend signal.
//!
//! Every thread that calls into gcpin is registered (its first call does it, or
//! `gc_thread_register`): a `ThreadState` records its stack bounds and owns its
//! mcache. A pthread key destructor unregisters it when it exits. How the
//! world is stopped is in `stopworld`; this file installs its handler.
//!
//! The in-runtime guard: a thread must never be stopped halfway through an update
//! of the heap (its mcache, a span's bits, a lock held). While `in_runtime` is
//! set, the handler only notes `suspend_pending` and returns; the thread suspends
//! itself (re-raising the signal) the moment it leaves the runtime. Both flags are
//! only ever touched by the thread itself and its own signal handler, so
//! compiler fences suffice.
//!
//! Lock discipline that makes this deadlock-free:
//! - Every runtime lock (page heap, mcentral, specials, pools, roots, finalizer
//!   queue) is taken only inside the runtime, so no stopped thread holds one.
//! - Nothing inside the runtime ever waits for the world lock or for a collection.
//!   A thread that wants to collect leaves the runtime first.
//! - The world lock is held by collectors and by (un)registration, outside the
//!   runtime. A thread waiting for it can be stopped; a thread holding it is
//!   never stopped, because stopping requires it.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering::*};
use std::sync::Once;

use crate::heap::Heap;
use crate::mcache::Mcache;
use crate::os;
use crate::worldlock::{WorldGuard, WorldLock};

pub struct ThreadState {
    /// Set while the thread is inside the runtime (see the guard).
    pub in_runtime: AtomicBool,
    /// A stop request arrived while in the runtime.
    pub suspend_pending: AtomicBool,
    /// Stack pointer saved by the suspend handler; 0 when not stopped.
    pub stopped_sp: AtomicUsize,
    /// When the thread parked on an alternate signal stack (the suspend signal
    /// interrupted a handler running there): the used part of that stack,
    /// `[lo, hi)`, scanned like the thread's stack; 0, 0 otherwise.
    pub stopped_alt_lo: AtomicUsize,
    pub stopped_alt_hi: AtomicUsize,
    /// The stack pointer on the thread stack at a concurrent cycle's first
    /// pause (0 when it was elsewhere, or for a `runtime_only` thread), set
    /// by the collector in that pause:
    /// the cycle's catch-up passes scan the stack from there up while the
    /// thread runs (`mark::mark_roots_running`).
    pub first_pause_sp: AtomicUsize,
    /// While this thread collects: the stack address below its callee-saved
    /// registers, spilled where the collection began (`gc::collect_when`).
    /// Its stack is scanned from there, not from the collector's deeper
    /// frames, whose unused slots hold stale words of earlier runtime calls
    /// (span and object addresses of a previous sweep) that would keep dead
    /// objects alive. 0 otherwise.
    pub collect_sp: AtomicUsize,
    /// The stop (`STOP_SEQ` value) this thread last parked for.
    pub acked_seq: AtomicU32,
    /// The interrupted general registers, copied by the suspend handler from
    /// its signal context: scanned as a root while the thread is stopped. (They
    /// are also in the signal frame on the stack, except when the signal was
    /// taken on an alternate signal stack.)
    pub saved_regs: UnsafeCell<[usize; SAVED_REGS]>,
    pub stack_lo: usize,
    pub stack_hi: usize,
    pub pthread: libc::pthread_t,
    /// The kernel's id of the thread (`gettid`), for messages and the pinner's
    /// owner word.
    pub tid: u32,
    /// The thread pointer, through which `tls` finds the thread's TLS blocks;
    /// 0 where they are not scanned.
    pub tp: usize,
    /// Set from before the thread asks for the world lock until it releases
    /// it. With `in_runtime`, what makes a gcpin call on this thread (from a
    /// signal handler) a deadlock: see `reentered`.
    pub holds_world: AtomicBool,
    /// This record's index in `World::threads`; changed under the world lock.
    registry_index: Cell<usize>,
    /// The heap and the world lock the thread is registered with (for its
    /// unregistration at exit, from the thread key's destructor).
    pub heap: &'static Heap,
    pub world: &'static WorldLock<World>,
    pub mcache: UnsafeCell<Mcache>,
    /// A free inner pinner for reuse, or 0 [Go: p.pinnerCache]. Emptied by
    /// every collection: this memory is not scanned.
    pub pinner_cache: AtomicUsize,
    /// Allocations left before a stress collection (`GCPIN_STRESS`); only the
    /// thread itself touches it.
    pub stress_left: std::cell::Cell<u64>,
    /// Link of the list of records of threads found gone (see
    /// `stopworld::reap`); null otherwise.
    pub next_gone: AtomicPtr<ThreadState>,
    /// A thread of the runtime's own (the background collector): it holds no
    /// pointer of the program's, so its stack, registers and TLS are not
    /// roots; the addresses marking leaves there would otherwise keep the
    /// objects they name. Set by the thread right after it registers.
    pub runtime_only: AtomicBool,
}

/// The registry of threads, guarded by the world lock.
pub struct World {
    pub threads: Vec<*mut ThreadState>,
    /// In a forked child: the records of the parent's other threads, which do
    /// not exist here. Their stacks, registers and TLS blocks were copied into
    /// the child as they were when the fork stopped them, and stay roots: an
    /// object (or a pinner, with its pins) that only such a thread held is
    /// kept, never freed or reported as leaked in the child.
    pub forked_away: Vec<*mut ThreadState>,
}

// SAFETY: the thread records are owned by the registry and only used under the
// world lock or by their own thread.
unsafe impl Send for World {}

impl World {
    pub fn new() -> World {
        World { threads: Vec::new(), forked_away: Vec::new() }
    }

    /// Adds a record to the registry. O(1).
    fn add(&mut self, ts: *mut ThreadState) {
        // SAFETY: a live record, not yet in the registry; we hold the lock.
        unsafe { (*ts).registry_index.set(self.threads.len()) };
        self.threads.push(ts);
    }

    /// Removes a record from the registry. O(1): the last record takes its
    /// place.
    pub fn remove(&mut self, ts: *mut ThreadState) {
        // SAFETY: records in the registry are live; we hold the lock.
        unsafe {
            let i = (*ts).registry_index.get();
            debug_assert!(self.threads[i] == ts);
            self.threads.swap_remove(i);
            if let Some(&moved) = self.threads.get(i) {
                (*moved).registry_index.set(i);
            }
        }
    }
}

/// General registers saved per stopped thread.
pub const SAVED_REGS: usize = 32;

/// The calling thread's record: one word of thread-local storage.
///
/// On x86-64 Linux the word is declared in assembly with the initial-exec TLS
/// model: every access is one load at a fixed offset from the thread pointer.
/// Rust's `thread_local!` in a shared library uses the general-dynamic model,
/// a call to `__tls_get_addr` per access — a fifth of gc_alloc's fast path in
/// libgcpin.so, and a call that is not safe in a signal handler for a library
/// loaded with dlopen (it may allocate), which the suspend handler is.
/// Initial-exec needs a few bytes of the static TLS area that glibc reserves
/// for such libraries. Elsewhere (and under Miri) it is a `thread_local!`.
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
mod current_tls {
    use super::ThreadState;

    std::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl gcpin_current_thread",
        ".hidden gcpin_current_thread",
        ".type gcpin_current_thread, @object",
        ".size gcpin_current_thread, 8",
        "gcpin_current_thread:",
        ".zero 8",
        ".popsection",
    );

    #[inline(always)]
    pub fn get() -> *mut ThreadState {
        let p: *mut ThreadState;
        // SAFETY: loads the calling thread's own word of the TLS block, at the
        // offset (from the GOT) the loader fixed, from the thread pointer.
        unsafe {
            std::arch::asm!(
                "mov {p}, qword ptr [rip + gcpin_current_thread@GOTTPOFF]",
                "mov {p}, qword ptr fs:[{p}]",
                p = out(reg) p,
                options(nostack, preserves_flags, readonly, pure),
            )
        };
        p
    }

    #[inline(always)]
    pub fn set(v: *mut ThreadState) {
        // SAFETY: stores into the calling thread's own word, as `get` reads it.
        unsafe {
            std::arch::asm!(
                "mov {t}, qword ptr [rip + gcpin_current_thread@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {v}",
                t = out(reg) _,
                v = in(reg) v,
                options(nostack, preserves_flags),
            )
        };
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
mod current_tls {
    use super::ThreadState;
    use std::cell::Cell;

    thread_local! {
        static CURRENT: Cell<*mut ThreadState> = const { Cell::new(std::ptr::null_mut()) };
    }

    #[inline(always)]
    pub fn get() -> *mut ThreadState {
        CURRENT.with(|c| c.get())
    }

    #[inline(always)]
    pub fn set(v: *mut ThreadState) {
        CURRENT.with(|c| c.set(v))
    }
}

static SETUP: Once = Once::new();
static mut SIG_SUSPEND: i32 = 0;
static mut THREAD_KEY: libc::pthread_key_t = 0;

/// The suspend signal (`GCPIN_SIG_SUSPEND`), set once by `setup`.
pub fn sig_suspend() -> i32 {
    // SAFETY: written once inside SETUP before any thread can read it.
    unsafe { SIG_SUSPEND }
}

/// The calling thread's record, or null if it is not registered.
#[inline]
pub fn current() -> *mut ThreadState {
    current_tls::get()
}

/// The calling thread's record, registering it first (with `h` and `world`)
/// if needed.
#[inline]
pub fn current_or_register(h: &'static Heap, world: &'static WorldLock<World>) -> Option<*mut ThreadState> {
    let t = current();
    if !t.is_null() {
        return Some(t);
    }
    register(h, world)
}

/// Why a gcpin call refused to run on the calling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The thread could not be registered (its stack bounds are unknown).
    Thread,
    /// A signal handler called gcpin on a thread that it interrupted inside
    /// gcpin (see `reentered`): serving the call would deadlock.
    Reentered,
}

/// Whether `ts`, the calling thread's record, is inside the runtime or holds
/// (or waits for) the world lock. Only a signal handler can see this from a
/// gcpin entry point: the thread itself is not running gcpin code when it
/// enters one. Serving such a call would deadlock (on a lock the interrupted
/// code holds, or on the world lock behind its own ticket), so the entry
/// points refuse it.
#[inline(always)]
pub fn reentered(ts: *mut ThreadState) -> bool {
    // SAFETY: the caller's own live record.
    unsafe { (*ts).in_runtime.load(Relaxed) || (*ts).holds_world.load(Relaxed) }
}

/// The calling thread's record for a gcpin entry point: registers the thread
/// if needed, and refuses a call from a signal handler that interrupted the
/// thread inside gcpin.
#[inline]
pub fn enter_api(h: &'static Heap, world: &'static WorldLock<World>) -> Result<*mut ThreadState, Refusal> {
    let ts = current_or_register(h, world).ok_or(Refusal::Thread)?;
    if reentered(ts) {
        return Err(Refusal::Reentered);
    }
    Ok(ts)
}

/// Marks the thread as inside the runtime for the guard's lifetime.
pub struct InRuntime(*mut ThreadState);

impl InRuntime {
    #[inline]
    pub fn enter(ts: *mut ThreadState) -> InRuntime {
        // SAFETY: `ts` is the calling thread's live record.
        unsafe { (*ts).in_runtime.store(true, Relaxed) };
        compiler_fence(SeqCst);
        InRuntime(ts)
    }

    #[inline]
    pub fn thread(&self) -> *mut ThreadState {
        self.0
    }
}

impl Drop for InRuntime {
    #[inline]
    fn drop(&mut self) {
        compiler_fence(SeqCst);
        // SAFETY: `self.0` is the calling thread's live record.
        unsafe {
            (*self.0).in_runtime.store(false, Relaxed);
            compiler_fence(SeqCst);
            if (*self.0).suspend_pending.load(Relaxed) {
                deliver_deferred_stop(self.0);
            }
        }
    }
}

/// Delivers a stop that arrived while the thread was inside the runtime to the
/// thread itself: the handler runs before pthread_kill returns and parks us
/// until the world restarts. Out of line: the fast paths around it then need
/// no saved registers.
#[cold]
#[inline(never)]
fn deliver_deferred_stop(ts: *mut ThreadState) {
    // SAFETY: `ts` is the calling thread's live record; signalling ourselves.
    unsafe {
        (*ts).suspend_pending.store(false, Relaxed);
        libc::pthread_kill(libc::pthread_self(), sig_suspend());
    }
}

/// Locks the world for the calling thread (whose `holds_world` the guard sets
/// until it is dropped). Must be called outside the runtime.
pub fn lock_world(world: &WorldLock<World>) -> WorldGuard<'_, World> {
    debug_assert!({
        let t = current();
        // SAFETY: a non-null current() is this thread's live record.
        t.is_null() || !unsafe { (*t).in_runtime.load(Relaxed) }
    });
    let t = current();
    // SAFETY: a non-null current() is this thread's live record, which
    // outlives the guard (unregistration drops its guard before freeing it).
    world.lock(if t.is_null() { std::ptr::null() } else { unsafe { &(*t).holds_world } })
}

/// Stack range `[lo, hi)` of the calling thread.
fn stack_bounds() -> Option<(usize, usize)> {
    // SAFETY: pthread_getattr_np fills the attr we own; we destroy it after use.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if r != 0 {
            return None;
        }
        Some((addr as usize, addr as usize + size))
    }
}

extern "C" fn thread_exit_destructor(p: *mut libc::c_void) {
    let ts = p as *mut ThreadState;
    if !ts.is_null() && current() == ts {
        unregister(ts);
    }
}

/// The suspend signal's handler (`stopworld::suspend_handler`).
pub type SuspendHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// Installs `handler` for the suspend signal `sig` and creates the thread key
/// whose destructor unregisters exiting threads. Once, before any thread
/// registers (the runtime's creation calls it).
pub fn setup(sig: i32, handler: SuspendHandler) {
    SETUP.call_once(|| {
        // SAFETY: one-time process setup inside Once: installs our handler for the
        // suspend signal and creates the key whose destructor unregisters threads.
        unsafe {
            SIG_SUSPEND = sig;
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            // While parked, no other handler of the program may run on this
            // thread: one that left with siglongjmp would leave the thread
            // counted as parked and running at once. Faults stay deliverable.
            libc::sigfillset(&mut sa.sa_mask);
            for sync_sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP, libc::SIGABRT] {
                libc::sigdelset(&mut sa.sa_mask, sync_sig);
            }
            if libc::sigaction(SIG_SUSPEND, &sa, std::ptr::null_mut()) != 0 {
                os::throw("cannot install the suspend signal handler");
            }
            if libc::pthread_key_create(std::ptr::addr_of_mut!(THREAD_KEY), Some(thread_exit_destructor)) != 0 {
                os::throw("cannot create the thread key");
            }
        }
    });
}

/// Blocks every signal but `sig` (the suspend signal) on the calling thread:
/// for the runtime's own threads, which must not run the program's handlers.
pub fn block_signals_but(sig: i32) {
    block_signals_except(&[sig]);
}

/// Blocks every signal but those in `keep` on the calling thread; returns the
/// mask it replaced.
pub fn block_signals_except(keep: &[i32]) -> libc::sigset_t {
    // SAFETY: signal sets on our stack, filled by sigfillset; the mask set is
    // this thread's alone.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for &sig in keep {
            libc::sigdelset(&mut set, sig);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

/// Registers the calling thread with heap `h` and the registry behind
/// `world`. Returns its record, or None when its stack bounds cannot be
/// determined. `setup` has run.
pub fn register(h: &'static Heap, world: &'static WorldLock<World>) -> Option<*mut ThreadState> {
    let t = current();
    if !t.is_null() {
        return Some(t);
    }
    debug_assert!(SETUP.is_completed());
    // The program's signals wait until the thread is registered: a handler
    // that called gcpin meanwhile would find it unregistered and register it
    // again, behind its own ticket for the world lock, which it would then
    // wait for for ever. (The suspend signal is not sent to a thread outside
    // the registry; faults stay deliverable.)
    let _held = HeldSignals::new();
    let (lo, hi) = stack_bounds()?;
    let ts = Box::into_raw(Box::new(ThreadState {
        in_runtime: AtomicBool::new(false),
        suspend_pending: AtomicBool::new(false),
        stopped_sp: AtomicUsize::new(0),
        stopped_alt_lo: AtomicUsize::new(0),
        stopped_alt_hi: AtomicUsize::new(0),
        first_pause_sp: AtomicUsize::new(0),
        collect_sp: AtomicUsize::new(0),
        acked_seq: AtomicU32::new(0),
        saved_regs: UnsafeCell::new([0; SAVED_REGS]),
        stack_lo: lo,
        stack_hi: hi,
        // SAFETY: pthread_self has no preconditions.
        pthread: unsafe { libc::pthread_self() },
        tid: os::gettid(),
        tp: crate::tls::thread_pointer(),
        holds_world: AtomicBool::new(false),
        runtime_only: AtomicBool::new(false),
        registry_index: Cell::new(usize::MAX),
        heap: h,
        world,
        mcache: UnsafeCell::new(Mcache::new()),
        pinner_cache: AtomicUsize::new(0),
        stress_left: Cell::new(0),
        next_gone: AtomicPtr::new(std::ptr::null_mut()),
    }));
    {
        // SAFETY: our new record, live until unregistration.
        let mut w = world.lock(unsafe { &(*ts).holds_world });
        w.add(ts);
        // Publish before we can be signalled: the handler finds us through TLS.
        current_tls::set(ts);
    }
    // SAFETY: the key was created in setup; the value is our record.
    unsafe { libc::pthread_setspecific(THREAD_KEY, ts as *const libc::c_void) };
    Some(ts)
}

/// Starts one of the runtime's own threads (a marker, the finalizer thread,
/// the background collector) with the program's signals blocked from its
/// first instruction: they are blocked on the calling thread around the
/// spawn, and a new thread starts with its creator's mask. (Blocking them
/// in the new thread's own first lines left a window: a process-directed
/// signal, a timer's SIGALRM, could be handed to the new thread there, and a
/// handler that calls gcpin then waited for the world lock while the thread
/// that held it waited for this one, a marker, to join the mark:
/// `test_signal_handlers` hung so under load.) The thread then sets the mask
/// it keeps itself.
pub fn spawn_runtime_thread(b: std::thread::Builder, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let _held = HeldSignals::new();
    b.spawn(f).map(drop)
}

/// The calling thread's signals, but the suspend signal and the faults,
/// blocked until the value is dropped, which restores the mask it found.
pub struct HeldSignals(libc::sigset_t);

impl HeldSignals {
    pub fn new() -> HeldSignals {
        HeldSignals(block_signals_except(&[
            sig_suspend(),
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGABRT,
        ]))
    }
}

impl Drop for HeldSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask `new` saved, for this thread.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// Unregisters `ts`, the calling thread's record: its cached spans go back to the
/// central lists and the record is freed. Outside the runtime.
pub fn unregister(ts: *mut ThreadState) {
    // SAFETY: `ts` is the caller's own live record.
    let (h, world) = unsafe { ((*ts).heap, (*ts).world) };
    // A thread that left a signal handler by a program's siglongjmp (or was
    // unwound out of one) may still have the suspend signal blocked; until it
    // leaves the registry, collections must be able to stop it.
    // SAFETY: a signal set on our stack; unblocking one signal for this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, SIG_SUSPEND);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    let mut w = lock_world(world);
    // SAFETY: `ts` is our own record; holding the world lock, no collector can be
    // reading our mcache.
    unsafe {
        let _g = InRuntime::enter(ts);
        (*(*ts).mcache.get()).release_all(h, true);
    }
    w.remove(ts);
    current_tls::set(std::ptr::null_mut());
    drop(w);
    // SAFETY: key created in setup; clearing our own value.
    unsafe { libc::pthread_setspecific(THREAD_KEY, std::ptr::null()) };
    // SAFETY: the record is out of the registry and TLS; nobody refers to it.
    drop(unsafe { Box::from_raw(ts) });
}
