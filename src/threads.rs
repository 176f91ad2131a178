//! Threads: registration, the in-runtime guard, and stopping the world.
//!
//! Every thread that calls into gcpin is registered (its first call does it, or
//! `gc_thread_register`): a `ThreadState` records its stack bounds and owns its
//! mcache. A pthread key destructor unregisters it when it exits.
//!
//! Stopping the world [libgc: pthread_stop_world.c, written afresh]: the collector
//! holds the world lock, sends the suspend signal (SIGPWR unless
//! `GCPIN_SIG_SUSPEND` says otherwise) to every other registered thread and waits
//! until each has acknowledged. The handler records the thread's stack pointer —
//! the kernel saved every register of the interrupted code in the signal frame,
//! which lies on the thread's stack above that point, so scanning from there to
//! the stack base covers registers and stack alike — then waits on a futex until
//! the world restarts. No restart signal is needed. The handler is installed with
//! `SA_RESTART`, so interrupted system calls resume. Each stop has a sequence
//! number and each thread acknowledges the number it parked for, so a signal
//! that arrives late (after its stop ended) or twice is never miscounted; a
//! thread that has not acknowledged after 100 ms is signalled again.
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
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicU32, AtomicUsize, Ordering::*};
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

/// Copies the interrupted registers out of a signal context; returns the
/// interrupted stack pointer (0 when unknown).
///
/// # Safety
/// `ctx` is the `ucontext_t` the kernel passed to a SA_SIGINFO handler.
unsafe fn save_context(ctx: *mut libc::c_void, out: &mut [usize; SAVED_REGS]) -> usize {
    if ctx.is_null() {
        return 0;
    }
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    // SAFETY: per the contract, ctx is a valid ucontext_t.
    unsafe {
        let uc = &*(ctx as *const libc::ucontext_t);
        let g = &uc.uc_mcontext.gregs;
        for (o, r) in out.iter_mut().zip(g.iter()) {
            *o = *r as usize;
        }
        return g[libc::REG_RSP as usize] as usize;
    }
    #[cfg(all(target_arch = "aarch64", target_os = "linux"))]
    // SAFETY: per the contract, ctx is a valid ucontext_t.
    unsafe {
        let uc = &*(ctx as *const libc::ucontext_t);
        for (o, r) in out.iter_mut().zip(uc.uc_mcontext.regs.iter()) {
            *o = *r as usize;
        }
        return uc.uc_mcontext.sp as usize;
    }
    #[allow(unreachable_code)]
    0
}

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

/// The stop sequence number: odd while a collector stops (or has stopped) the
/// world, even otherwise. Each stop and each restart bumps it by one. A parked
/// thread acknowledges the exact stop it parked for (`ThreadState::acked_seq`)
/// and waits until the number changes, so a late or repeated signal can never be
/// counted for the wrong stop.
static STOP_SEQ: AtomicU32 = AtomicU32::new(0);
/// Rung (incremented and futex-woken) by every acknowledgement, to wake the
/// collector; the acknowledgements themselves are per thread.
static ACK_BELL: AtomicU32 = AtomicU32::new(0);
/// Threads inside `park`. A restart waits until every parked thread has left,
/// so that each stopped thread runs again before the next stop: without this, a
/// thread looping on gc_collect could keep a slow-to-wake thread stopped (or
/// keep interrupting its nanosleep) indefinitely.
static PARKED: AtomicU32 = AtomicU32::new(0);
/// When the world last restarted, and the least time it then runs (see
/// `stop_the_world`).
static LAST_RESTART_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const MIN_RUN_NS: u64 = 50_000;

static SETUP: Once = Once::new();
static mut SIG_SUSPEND: i32 = 0;
static mut THREAD_KEY: libc::pthread_key_t = 0;

fn sig_suspend() -> i32 {
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

extern "C" fn suspend_handler(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: errno is thread-local; we restore it so the interrupted code does
    // not see our futex calls' errors.
    let saved_errno = unsafe { *libc::__errno_location() };
    let ts = current();
    let seq = STOP_SEQ.load(Acquire);
    if !ts.is_null() && seq & 1 == 1 {
        // SAFETY: `ts` is this thread's record; only it and this handler touch
        // the two flags.
        unsafe {
            if (*ts).in_runtime.load(Relaxed) {
                (*ts).suspend_pending.store(true, Relaxed);
            } else {
                let interrupted_sp = save_context(ctx, &mut *(*ts).saved_regs.get());
                park(ts, seq, interrupted_sp);
            }
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Records where the stack ends, acknowledges, and waits for the restart.
///
/// Normally the handler runs on the thread's stack, below the signal frame, and
/// the scan starts at our own frame. If the signal was taken on an alternate
/// signal stack, the scan starts at the interrupted stack pointer (if it lies in
/// the thread's stack) or covers the whole stack, and the used part of the
/// alternate stack is scanned too; the registers are scanned from `saved_regs`
/// either way.
#[inline(never)]
fn park(ts: *mut ThreadState, seq: u32, interrupted_sp: usize) {
    PARKED.fetch_add(1, AcqRel);
    let marker = 0usize;
    let here = std::hint::black_box(&marker) as *const usize as usize;
    // SAFETY: `ts` is this thread's live record.
    let (lo, hi) = unsafe { ((*ts).stack_lo, (*ts).stack_hi) };
    let on_thread_stack = here >= lo && here < hi;
    let sp = if on_thread_stack {
        here
    } else if interrupted_sp >= lo && interrupted_sp < hi {
        interrupted_sp.saturating_sub(128).max(lo) // and the red zone below it
    } else {
        lo
    };
    // On an alternate signal stack, the frames above ours there (a program's
    // handler that the suspend signal interrupted) may hold the only reference
    // to an object: scan from here to the top of that stack.
    let (mut alt_lo, mut alt_hi) = (0, 0);
    if !on_thread_stack {
        // SAFETY: stack_t is a plain C struct; all-zero is a valid value.
        let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigaltstack with a null new stack only reads the current one
        // into `cur`; it is a system call, async-signal-safe.
        let got = unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) } == 0;
        if got && cur.ss_flags & libc::SS_ONSTACK != 0 {
            let (base, top) = (cur.ss_sp as usize, cur.ss_sp as usize + cur.ss_size);
            if here >= base && here < top {
                (alt_lo, alt_hi) = (here, top);
            }
        }
    }
    // SAFETY: `ts` is this thread's live record.
    unsafe {
        (*ts).stopped_alt_lo.store(alt_lo, Relaxed);
        (*ts).stopped_alt_hi.store(alt_hi, Relaxed);
        (*ts).stopped_sp.store(sp, Release);
        (*ts).acked_seq.store(seq, Release);
    }
    ACK_BELL.fetch_add(1, Release);
    os::futex_wake(&ACK_BELL, 1);
    // If the world restarted before we got here (a late signal), this returns
    // at once.
    while STOP_SEQ.load(Acquire) == seq {
        os::futex_wait(&STOP_SEQ, seq, None);
    }
    // SAFETY: as above.
    unsafe { (*ts).stopped_sp.store(0, Relaxed) };
    if PARKED.fetch_sub(1, AcqRel) == 1 {
        os::futex_wake(&PARKED, i32::MAX);
    }
}

/// Stops every registered thread but `me`. The caller holds the world lock and is
/// outside the runtime. Returns when all of them are parked for this stop.
/// A thread that has not acknowledged within 100 ms is signalled again (a
/// thread inside the runtime acknowledges when it leaves it; signals are not
/// queued, so re-sending is harmless).
pub fn stop_the_world(world: &World, me: *mut ThreadState) {
    // Leave the world running for at least MIN_RUN_NS between two stops. A
    // thread in nanosleep (never restarted by SA_RESTART) or just leaving its
    // handler needs that time to make progress; without it, back-to-back
    // collections (a gc_collect loop, GCPIN_STRESS=1) can starve it.
    let since = os::nanotime().saturating_sub(LAST_RESTART_NS.load(Relaxed));
    if since < MIN_RUN_NS {
        let ts = libc::timespec { tv_sec: 0, tv_nsec: (MIN_RUN_NS - since) as libc::c_long };
        // SAFETY: nanosleep reads the timespec we own; an early wake-up is fine.
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
    }
    let seq = STOP_SEQ.fetch_add(1, SeqCst) + 1;
    debug_assert!(seq & 1 == 1);
    let signal_unacked = || {
        for &t in &world.threads {
            // SAFETY: records in the registry are live while we hold the world lock.
            unsafe {
                if t != me && (*t).acked_seq.load(Acquire) != seq {
                    libc::pthread_kill((*t).pthread, sig_suspend());
                }
            }
        }
    };
    signal_unacked();
    let mut last_send = os::nanotime();
    loop {
        let bell = ACK_BELL.load(Acquire);
        // SAFETY: as above.
        let all = world.threads.iter().all(|&t| t == me || unsafe { (*t).acked_seq.load(Acquire) } == seq);
        if all {
            return;
        }
        os::futex_wait(&ACK_BELL, bell, Some(1_000_000));
        if os::nanotime() - last_send > 100_000_000 {
            signal_unacked();
            last_send = os::nanotime();
        }
    }
}

/// Restarts the threads stopped by `stop_the_world`, and returns once every one
/// of them has left its suspend handler (see `PARKED`).
pub fn start_the_world() {
    LAST_RESTART_NS.store(os::nanotime(), Relaxed);
    STOP_SEQ.fetch_add(1, SeqCst);
    os::futex_wake(&STOP_SEQ, i32::MAX);
    loop {
        let n = PARKED.load(Acquire);
        if n == 0 {
            return;
        }
        os::futex_wait(&PARKED, n, Some(1_000_000));
    }
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

/// Installs the suspend handler for signal `sig` and creates the thread key
/// whose destructor unregisters exiting threads. Once, before any thread
/// registers (the runtime's creation calls it).
pub fn setup(sig: i32) {
    SETUP.call_once(|| {
        // SAFETY: one-time process setup inside Once: installs our handler for the
        // suspend signal and creates the key whose destructor unregisters threads.
        unsafe {
            SIG_SUSPEND = sig;
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = suspend_handler as *const () as usize;
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

/// Registers the calling thread with heap `h` and the registry behind
/// `world`. Returns its record, or None when its stack bounds cannot be
/// determined. `setup` has run.
pub fn register(h: &'static Heap, world: &'static WorldLock<World>) -> Option<*mut ThreadState> {
    let t = current();
    if !t.is_null() {
        return Some(t);
    }
    debug_assert!(SETUP.is_completed());
    let (lo, hi) = stack_bounds()?;
    let ts = Box::into_raw(Box::new(ThreadState {
        in_runtime: AtomicBool::new(false),
        suspend_pending: AtomicBool::new(false),
        stopped_sp: AtomicUsize::new(0),
        stopped_alt_lo: AtomicUsize::new(0),
        stopped_alt_hi: AtomicUsize::new(0),
        acked_seq: AtomicU32::new(0),
        saved_regs: UnsafeCell::new([0; SAVED_REGS]),
        stack_lo: lo,
        stack_hi: hi,
        // SAFETY: pthread_self has no preconditions.
        pthread: unsafe { libc::pthread_self() },
        tid: os::gettid(),
        tp: crate::tls::thread_pointer(),
        holds_world: AtomicBool::new(false),
        registry_index: Cell::new(usize::MAX),
        heap: h,
        world,
        mcache: UnsafeCell::new(Mcache::new()),
        pinner_cache: AtomicUsize::new(0),
        stress_left: Cell::new(0),
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

/// Runs `f` with the caller's callee-saved registers spilled to the stack, and
/// gives it a stack address below them: scanning from there to the stack base
/// sees every pointer the caller's frames hold in registers or on the stack.
#[inline(never)]
pub fn with_spilled_registers<R>(f: impl FnOnce(usize) -> R) -> R {
    let mut regs = [0usize; 12];
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only stores the callee-saved registers into our local array.
    unsafe {
        std::arch::asm!(
            "mov [{0}], rbx", "mov [{0} + 8], rbp", "mov [{0} + 16], r12",
            "mov [{0} + 24], r13", "mov [{0} + 32], r14", "mov [{0} + 40], r15",
            in(reg) regs.as_mut_ptr(), options(nostack, preserves_flags)
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: only stores the callee-saved registers into our local array.
    unsafe {
        std::arch::asm!(
            "stp x19, x20, [{0}]", "stp x21, x22, [{0}, #16]", "stp x23, x24, [{0}, #32]",
            "stp x25, x26, [{0}, #48]", "stp x27, x28, [{0}, #64]", "stp x29, x30, [{0}, #80]",
            in(reg) regs.as_mut_ptr(), options(nostack, preserves_flags)
        );
    }
    let sp = std::hint::black_box(&regs) as *const _ as usize;
    let r = f(sp);
    std::hint::black_box(&regs);
    r
}

/// In a forked child, where the threads the fork stopped do not exist: the
/// world runs again and no thread is parked.
pub fn forget_stopped_threads() {
    STOP_SEQ.fetch_add(1, SeqCst); // even again: the world runs
    PARKED.store(0, SeqCst);
}
