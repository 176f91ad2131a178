//! Stopping the world [libgc: pthread_stop_world.c, written afresh].
//!
//! The collector
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
//! A thread inside the runtime defers its stop (see `threads`' in-runtime
//! guard). The collector's own registers are spilled to its stack
//! (`with_spilled_registers`) so that its frames are scanned like the others.

use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering::*};

use crate::heap::STOP_WANTED;
use crate::os;
use crate::threads::{current, sig_suspend, ThreadState, World, SAVED_REGS};

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

pub extern "C" fn suspend_handler(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
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
/// The scan starts at the interrupted stack pointer, less the 128-byte red
/// zone below it (where the interrupted function may keep live data), when
/// that lies in the thread's stack: the signal frame and our own frames,
/// below it, are not scanned. The registers are scanned from `saved_regs`
/// instead. (Scanning from our own frame took in the signal frame, whose
/// vector-state area the kernel writes only in part: the rest held stale
/// words of the thread's earlier, deeper calls — the mark FIFO of a
/// collection it ran — and kept dead objects alive.) If the signal was taken
/// on an alternate signal stack and the interrupted stack pointer is not on
/// the thread's stack, the whole stack is scanned, and the used part of the
/// alternate stack too.
#[inline(never)]
fn park(ts: *mut ThreadState, seq: u32, interrupted_sp: usize) {
    PARKED.fetch_add(1, AcqRel);
    let marker = 0usize;
    let here = std::hint::black_box(&marker) as *const usize as usize;
    // SAFETY: `ts` is this thread's live record.
    let (lo, hi) = unsafe { ((*ts).stack_lo, (*ts).stack_hi) };
    let on_thread_stack = here >= lo && here < hi;
    let sp = if interrupted_sp >= lo && interrupted_sp < hi {
        interrupted_sp.saturating_sub(128).max(lo) // and the red zone below it
    } else if on_thread_stack {
        here
    } else {
        lo
    };
    // On an alternate signal stack, the frames of a program's handler that
    // the suspend signal interrupted there may hold the only reference to an
    // object: scan that stack from the interrupted stack pointer to its top.
    let (mut alt_lo, mut alt_hi) = (0, 0);
    if !on_thread_stack {
        // SAFETY: stack_t is a plain C struct; all-zero is a valid value.
        let mut cur: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigaltstack with a null new stack only reads the current one
        // into `cur`; it is a system call, async-signal-safe.
        let got = unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) } == 0;
        if got && cur.ss_flags & libc::SS_ONSTACK != 0 {
            let (base, top) = (cur.ss_sp as usize, cur.ss_sp as usize + cur.ss_size);
            if interrupted_sp >= base && interrupted_sp < top {
                // From the interrupted handler's stack pointer, as above.
                (alt_lo, alt_hi) = (interrupted_sp.saturating_sub(128).max(base), top);
            } else if !(interrupted_sp >= lo && interrupted_sp < hi) && here >= base && here < top {
                // Interrupted on neither stack: all above our frame.
                (alt_lo, alt_hi) = (here, top);
            }
            // (Interrupted on the thread stack: only our frames are here.)
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
pub fn stop_the_world(world: &mut World, me: *mut ThreadState) {
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
    STOP_WANTED.store(true, Relaxed);
    let seq = STOP_SEQ.fetch_add(1, SeqCst) + 1;
    debug_assert!(seq & 1 == 1);
    signal_unacked(world, me, seq);
    let mut last_send = os::nanotime();
    loop {
        let bell = ACK_BELL.load(Acquire);
        // SAFETY: records in the registry are live while we hold the world lock.
        let all = world.threads.iter().all(|&t| t == me || unsafe { (*t).acked_seq.load(Acquire) } == seq);
        if all {
            return;
        }
        os::futex_wait(&ACK_BELL, bell, Some(1_000_000));
        if os::nanotime() - last_send > 100_000_000 {
            signal_unacked(world, me, seq);
            last_send = os::nanotime();
        }
    }
}

/// Sends the suspend signal to every registered thread but `me` that has not
/// acknowledged stop `seq`. A thread that no longer exists — it exited
/// registered, because a key destructor of the program called gcpin in
/// glibc's last round of destructors, after gcpin's own had unregistered it —
/// leaves the registry here: it cannot acknowledge, and its stack is gone.
/// Its record is freed after the restart (`start_the_world`): nothing is
/// freed with the world stopped.
fn signal_unacked(world: &mut World, me: *mut ThreadState, seq: u32) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut i = 0;
    while i < world.threads.len() {
        let t = world.threads[i];
        // SAFETY: records in the registry are live while we hold the world
        // lock; tgkill only names a thread of this process by its id.
        let gone = unsafe {
            t != me
                && (*t).acked_seq.load(Acquire) != seq
                && libc::syscall(libc::SYS_tgkill, pid, (*t).tid as libc::c_long, sig_suspend() as libc::c_long) != 0
                && *libc::__errno_location() == libc::ESRCH
        };
        if !gone {
            i += 1;
            continue;
        }
        world.remove(t);
        // SAFETY: the thread is gone: its mcache and record are ours; its
        // spans wait for the sweep like every other thread's, and the record
        // goes on the list of gone ones (no allocation: an intrusive link).
        unsafe {
            (*(*t).mcache.get()).release_all((*t).heap, false);
            let mut head = GONE.load(Relaxed);
            loop {
                (*t).next_gone.store(head, Relaxed);
                match GONE.compare_exchange_weak(head, t, Release, Relaxed) {
                    Ok(_) => break,
                    Err(h) => head = h,
                }
            }
        }
    }
}

/// Records of threads found gone by a stop, freed after the restart.
static GONE: AtomicPtr<ThreadState> = AtomicPtr::new(std::ptr::null_mut());

/// Frees the records `signal_unacked` took out of the registry. The world runs.
fn free_gone() {
    let mut t = GONE.swap(std::ptr::null_mut(), Acquire);
    while !t.is_null() {
        // SAFETY: records on the list are out of the registry, and their
        // threads do not exist: no one refers to them.
        unsafe {
            let next = (*t).next_gone.load(Relaxed);
            drop(Box::from_raw(t));
            t = next;
        }
    }
}

/// Restarts the threads stopped by `stop_the_world`, and returns once every one
/// of them has left its suspend handler (see `PARKED`); then frees the records
/// of threads the stop found gone.
pub fn start_the_world() {
    LAST_RESTART_NS.store(os::nanotime(), Relaxed);
    STOP_WANTED.store(false, Relaxed);
    STOP_SEQ.fetch_add(1, SeqCst);
    os::futex_wake(&STOP_SEQ, i32::MAX);
    loop {
        let n = PARKED.load(Acquire);
        if n == 0 {
            break;
        }
        os::futex_wait(&PARKED, n, Some(1_000_000));
    }
    free_gone();
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
