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
    let p = unsafe { libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
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

/// Whether the kernel gives transparent huge pages to memory advised for
/// them (`/sys/kernel/mm/transparent_hugepage/enabled` reads `[always]` or
/// `[madvise]`). Read into a buffer on the stack, with bare system calls.
pub fn huge_pages_available() -> bool {
    let mut buf = [0u8; 128];
    // SAFETY: a NUL-terminated path; `read` writes at most `buf.len()` bytes
    // into our buffer; the descriptor is ours and closed here.
    let n = unsafe {
        let fd = libc::open(c"/sys/kernel/mm/transparent_hugepage/enabled".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let n = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
        libc::close(fd);
        n
    };
    let mode = &buf[..n.max(0) as usize];
    let has = |word: &[u8]| mode.windows(word.len()).any(|w| w == word);
    has(b"[always]") || has(b"[madvise]")
}

/// Asks the kernel to back `[addr, addr+len)` with transparent huge pages
/// where it can (`MADV_HUGEPAGE`; a hint: false if refused, and nothing
/// changes where THP is off).
pub fn advise_huge_pages(addr: usize, len: usize) -> bool {
    #[cfg(not(miri))]
    // SAFETY: callers pass a reservation made by `reserve`; the advice
    // changes how pages are backed, never their contents.
    unsafe {
        libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) == 0
    }
    #[cfg(miri)]
    {
        let _ = (addr, len);
        false
    }
}

/// Makes the pages of `[addr, addr+len)` resident and writable in one call
/// (`MADV_POPULATE_WRITE`, Linux 5.14), instead of a fault at the first
/// write to each. A hint: on an older kernel nothing happens.
pub fn populate(addr: usize, len: usize) {
    const MADV_POPULATE_WRITE: i32 = 23;
    #[cfg(not(miri))]
    // SAFETY: callers pass page-aligned ranges inside a reservation made by
    // `reserve` (private, anonymous, writable); populating changes no byte.
    unsafe {
        libc::madvise(addr as *mut libc::c_void, len, MADV_POPULATE_WRITE);
    }
    #[cfg(miri)]
    let _ = (addr, len);
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
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, expected, tsp);
    }
}

/// Wakes up to `n` waiters blocked in `futex_wait` on `word`. Async-signal-safe.
pub fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: FUTEX_WAKE does not touch memory; the address only names the queue.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, n);
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

/// Whether the process runs under valgrind: its "running on valgrind" client
/// request, the documented instruction sequence of valgrind.h's ABI (four
/// rotations of rdi by 128 bits in all, then `xchg rbx, rbx`: no-ops on a real
/// CPU, which leaves the default answer, 0, in rdx). Valgrind's memcheck
/// keeps state for every page of a reservation, so the heap reserves less
/// address space there (see `heap`).
pub fn running_on_valgrind() -> bool {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        const RUNNING_ON_VALGRIND: u64 = 0x1001;
        let args: [u64; 6] = [RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0];
        let result: u64;
        // SAFETY: on a real CPU the sequence changes only the flags (rdi rotated back, rbx
        // exchanged with itself); valgrind reads the six-word request block at rax and
        // writes its answer to rdx.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3", "rol rdi, 13", "rol rdi, 61", "rol rdi, 51", "xchg rbx, rbx",
                in("rax") args.as_ptr(),
                inout("rdx") 0u64 => result,
                inout("rdi") 0u64 => _,
                options(nostack),
            );
        }
        result != 0
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    false
}

/// The kernel's page size, for `mincore` and the write tracker (4 KiB on every
/// platform gcpin runs on; sysconf reads it from the auxiliary vector).
pub fn os_page() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Whether every page of `[lo, lo + npages * os_page)` is mapped (in any
/// protection), `npages <= 256`, `lo` page-aligned. One `mincore` call: it
/// fails with ENOMEM when part of the range is not mapped. A system call and
/// a buffer on the stack: safe while the world is stopped.
fn pages_mapped(lo: usize, npages: usize) -> bool {
    debug_assert!(npages <= 256);
    let mut vec = [0u8; 256];
    // SAFETY: mincore writes one byte per page into `vec`, which has room for
    // 256; it reads no user memory.
    unsafe { libc::mincore(lo as *mut libc::c_void, npages * os_page(), vec.as_mut_ptr()) == 0 }
}

/// The end of the run of mapped pages that starts at the page of `lo`, at
/// most `hi`: `lo` itself when that page is not mapped. Safe while the world
/// is stopped.
pub fn mapped_run_up(lo: usize, hi: usize) -> usize {
    let page = os_page();
    let mut p = lo & !(page - 1);
    while p < hi {
        let n = ((hi - p).div_ceil(page)).min(256);
        if pages_mapped(p, n) {
            p += n * page;
            continue;
        }
        // Part of this chunk is not mapped: find the first hole page by page.
        while p < hi && pages_mapped(p, 1) {
            p += page;
        }
        return p.max(lo).min(hi);
    }
    hi
}

/// The start of the run of mapped pages that ends at `hi`, at least `lo`:
/// `hi` when the page below `hi` is not mapped. For the main thread's stack,
/// whose lower part (down to the limit `pthread_getattr_np` reports) the
/// kernel maps only as the stack grows. Safe while the world is stopped.
pub fn mapped_run_down(lo: usize, hi: usize) -> usize {
    let page = os_page();
    let mut p = (hi + page - 1) & !(page - 1);
    while p > lo {
        let n = ((p - lo).div_ceil(page)).min(256);
        let start = p - n * page;
        if pages_mapped(start, n) {
            p = start;
            continue;
        }
        while p > lo && pages_mapped(p - page, 1) {
            p -= page;
        }
        return p.max(lo).min(hi);
    }
    lo
}

/// Whether `[lo, lo + len)` is mapped readable, from `/proc/self/maps`; `None`
/// when that file cannot be read (no /proc). Allocates: never with the world
/// stopped.
pub fn is_readable(lo: usize, len: usize) -> Option<bool> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    Some(readable_in_maps(&maps, lo, len))
}

/// Whether the mappings listed in `maps` (the format of /proc/self/maps) cover
/// `[lo, lo + len)` without a gap, all of them readable.
fn readable_in_maps(maps: &str, lo: usize, len: usize) -> bool {
    let Some(hi) = lo.checked_add(len) else { return false };
    let mut covered = lo;
    for line in maps.lines() {
        if covered >= hi {
            break;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
        if b <= covered {
            continue;
        }
        if a > covered || !perms.starts_with('r') {
            return false;
        }
        covered = b;
    }
    covered >= hi
}

/// The calling thread's kernel thread id.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_must_cover_the_range_readable_without_gaps() {
        let maps = "1000-3000 r-xp 00000000 00:00 0 /bin/x\n\
                    3000-4000 rw-p 00000000 00:00 0\n\
                    5000-6000 ---p 00000000 00:00 0\n\
                    6000-8000 rw-p 00000000 00:00 0\n";
        assert!(readable_in_maps(maps, 0x1000, 0x3000));
        assert!(readable_in_maps(maps, 0x2ff8, 0x10));
        assert!(!readable_in_maps(maps, 0x3800, 0x1000), "a gap at 0x4000");
        assert!(!readable_in_maps(maps, 0x5000, 0x10), "not readable");
        assert!(readable_in_maps(maps, 0x6000, 0x2000));
        assert!(!readable_in_maps(maps, 0x7000, 0x2000), "past the last mapping");
        assert!(!readable_in_maps(maps, 0x500, 0x10), "below the first");
        assert!(!readable_in_maps(maps, usize::MAX - 4, 8), "wraps");
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri does not support mincore")]
    fn mapped_runs_stop_at_holes() {
        let page = os_page();
        // Far above where the kernel places mappings of its own choosing (and
        // above the heap's arena hints), so that no other test's mmap, in a
        // thread beside this one, fills the hole made below.
        let want = 0x5a00_0000_0000usize;
        // SAFETY: a new private mapping at an address nothing uses; with
        // MAP_FIXED_NOREPLACE the kernel fails rather than replace a mapping.
        let base = unsafe {
            libc::mmap(
                want as *mut libc::c_void,
                8 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        } as usize;
        assert_eq!(base, want, "cannot map the test range");
        // SAFETY: unmapping the third page of our own mapping.
        unsafe { libc::munmap((base + 2 * page) as *mut libc::c_void, page) };
        assert_eq!(mapped_run_up(base, base + 8 * page), base + 2 * page);
        assert_eq!(mapped_run_up(base + 3 * page, base + 8 * page), base + 8 * page);
        assert_eq!(mapped_run_up(base + 2 * page, base + 8 * page), base + 2 * page);
        assert_eq!(mapped_run_down(base, base + 8 * page), base + 3 * page);
        assert_eq!(mapped_run_down(base, base + 2 * page), base);
        assert!(is_readable(base, page).unwrap());
        assert!(!is_readable(base, 3 * page).unwrap());
        // SAFETY: our own mapping, hole included.
        unsafe { libc::munmap(base as *mut libc::c_void, 8 * page) };
    }
}
