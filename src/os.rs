//! The operating-system layer: address-space reservation, page release, futexes.
//!
//! Everything above this file is platform-free. Nothing here allocates with
//! `malloc`, so these calls are safe while the world is stopped (a stopped thread
//! may hold a `malloc` arena lock).

use std::sync::atomic::AtomicU32;

/// Reserves `bytes` of zeroed, readable and writable address space. Pages are
/// committed by the kernel on first touch (`MAP_NORESERVE`), so a large
/// reservation costs nothing until used. Returns the base, or `None`.
pub fn reserve(bytes: usize) -> Option<usize> {
    // Miri maps only plain private anonymous memory (and really allocates it:
    // its tests keep reservations small).
    #[cfg(miri)]
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    #[cfg(not(miri))]
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing
    // touches no existing memory; failure is reported as MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        Some(p as usize)
    }
}

/// Reserves `bytes` like `reserve`, for the heap arena: at one of Go's arena
/// hints if the kernel will place it there (`0x00c0 << 32`, then the same
/// plus 1 TiB, 2 TiB, …), else wherever `reserve` gets it.
///
/// Left to itself, the kernel puts a new mapping right below the libraries and
/// the last mappings made, where the loader and libc leave stale words behind
/// (addresses of freed mappings, aligned masks of nearby ones). A conservative
/// scan reads such a word as a pointer into the heap and keeps garbage alive:
/// with a 128 MiB arena, tests found a stale stack word inside a 64 MiB dead
/// object in about 3% of runs. Far from everything else, the arena is reached
/// almost only by real pointers to it [Go: arenaHints].
pub fn reserve_arena(bytes: usize) -> Option<usize> {
    #[cfg(not(miri))]
    for i in 0..0x40usize {
        let hint = i << 40 | 0x00c0 << 32;
        // SAFETY: a hint only (no MAP_FIXED): the kernel maps elsewhere rather
        // than replace anything, and we undo a mapping it put elsewhere.
        let p = unsafe {
            libc::mmap(
                hint as *mut libc::c_void,
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            break; // out of address space or over a limit: the fallback decides
        }
        if p as usize == hint {
            return Some(hint);
        }
        // SAFETY: the mapping we just made, elsewhere than asked; nothing uses it.
        unsafe { libc::munmap(p, bytes) };
    }
    reserve(bytes)
}

/// Gives the physical pages of `[addr, addr+len)` back to the OS. The range stays
/// reserved and reads as zeros afterwards (`MADV_DONTNEED` on private anonymous
/// memory).
pub fn release(addr: usize, len: usize) {
    // SAFETY: callers pass page-aligned ranges inside a reservation made by
    // `reserve` that hold no live data; DONTNEED only drops their contents.
    #[cfg(not(miri))]
    unsafe {
        libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED);
    }
    // SAFETY: as above; under Miri (no madvise) zeroing has the same effect on
    // what the range reads as.
    #[cfg(miri)]
    unsafe {
        std::ptr::write_bytes(addr as *mut u8, 0, len);
    }
}

/// Blocks while `*word == expected`, for at most `timeout_ns` when given.
/// Async-signal-safe (a bare system call), so the suspend handler may use it.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout_ns: Option<u64>) {
    let ts;
    let tsp = match timeout_ns {
        Some(ns) => {
            ts = libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            };
            &ts as *const libc::timespec
        }
        None => std::ptr::null(),
    };
    // SAFETY: FUTEX_WAIT only reads the 32-bit word, which `word` keeps alive;
    // the timespec outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            tsp,
        );
    }
}

/// Wakes up to `n` waiters blocked in `futex_wait` on `word`. Async-signal-safe.
pub fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: FUTEX_WAKE does not touch memory; the address only names the queue.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            n,
        );
    }
}

/// Monotonic clock in nanoseconds.
pub fn nanotime() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writes a message to stderr and aborts the process: the runtime's answer to a
/// broken invariant (heap corruption), as Go's `throw`. Never returns.
pub fn throw(msg: &str) -> ! {
    write_stderr(&["gcpin: fatal error: ", msg, "\n"]);
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// Writes the pieces to stderr with write(2), without allocating, so it is safe
/// while the world is stopped or inside a signal handler.
pub fn write_stderr(pieces: &[&str]) {
    for p in pieces {
        // SAFETY: write(2) on fd 2 reads `p.len()` bytes from a buffer we borrow.
        unsafe {
            libc::write(2, p.as_ptr() as *const libc::c_void, p.len());
        }
    }
}
