//! Thread-local storage as a root: every registered thread's `__thread` blocks.
//!
//! A C program may keep its only reference to an object in a `__thread`
//! variable: of the program, of a library loaded at start (both in the thread's
//! static TLS block) or of a library loaded with `dlopen` (a block glibc
//! allocates with `malloc` the first time the thread touches it). None of these
//! is reliably inside the thread's stack mapping (the main thread's static
//! block is in memory the dynamic loader allocated; dynamic blocks are in the
//! malloc heap), so they are scanned on their own.
//!
//! Where the blocks are [glibc's TLS ABI, x86-64 and AArch64]: the thread
//! pointer (`fs` base on x86-64, `tpidr_el0` on AArch64) addresses the thread
//! control block, whose `dtv` word (at offset 8 on x86-64, 0 on AArch64) points
//! to the thread's dynamic thread vector: `dtv[-1]` is the number of module
//! slots it has room for, and `dtv[m]` for a module id `m >= 1` is a pair
//! `(block address, pointer to free)`, the block address being `-1` while the
//! thread has no block for that module. Static and dynamic blocks alike are
//! listed there. The module ids and block sizes come from `dl_iterate_phdr`
//! (`dlpi_tls_modid`, the `PT_TLS` header's `p_memsz`), read with the loader's
//! list locked for the whole cycle (see `roots::with_loaded_objects`), so no
//! module is unloaded while its blocks are scanned.
//!
//! Invariants:
//! - Only the thread itself changes its DTV, and every thread but the collector
//!   is stopped while the DTVs are read. A thread stopped while glibc resizes its
//!   DTV (a `__tls_get_addr` after a `dlopen`) may leave a stale vector; every
//!   range is therefore checked to be mapped before it is read, so a stale or
//!   torn entry can cost a missed or extra root, never a fault.
//! - The runtime's own TLS word (`threads::current_tls`) holds a record outside
//!   the heap, so scanning libgcpin's block retains nothing.
//!
//! Elsewhere (other libcs or architectures) `thread_pointer` returns 0 and no
//! TLS block is scanned; the README says so.

/// A module (the program or a library) with a TLS block: its module id and
/// the size of the block each thread has for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsModule {
    pub modid: usize,
    pub size: usize,
}

/// The calling thread's thread pointer, or 0 where TLS is not scanned.
pub fn thread_pointer() -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64", not(miri)))]
    {
        let tp: usize;
        // SAFETY: reads the first word of the thread control block, which the
        // x86-64 TLS ABI defines as the TCB's own address.
        unsafe {
            std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags))
        };
        tp
    }
    #[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "aarch64", not(miri)))]
    {
        let tp: usize;
        // SAFETY: reads the thread pointer register; no memory is touched.
        unsafe { std::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nomem, nostack, preserves_flags)) };
        tp
    }
    #[cfg(not(all(
        target_os = "linux",
        target_env = "gnu",
        any(target_arch = "x86_64", target_arch = "aarch64"),
        not(miri)
    )))]
    0
}

/// Offset of the DTV pointer in the thread control block.
#[cfg(target_arch = "aarch64")]
const DTV_OFFSET: usize = 0;
#[cfg(not(target_arch = "aarch64"))]
const DTV_OFFSET: usize = 8;

/// A DTV slot: `(block, to_free)`.
const SLOT: usize = 2 * std::mem::size_of::<usize>();
const UNALLOCATED: usize = usize::MAX;

/// Whether `[lo, hi)` is mapped (one `mincore` per 1 MiB).
fn mapped(lo: usize, hi: usize) -> bool {
    lo != 0 && lo <= hi && crate::os::mapped_run_up(lo, hi) == hi
}

/// Calls `f(lo, hi)` for every TLS block of the thread whose thread pointer is
/// `tp`, among `modules`, that the thread has and that is mapped.
///
/// # Safety
/// The thread is stopped or is the caller, and the loader's list is locked
/// (the modules cannot be unloaded meanwhile).
pub unsafe fn for_each_block(tp: usize, modules: &[TlsModule], mut f: impl FnMut(usize, usize)) {
    const WORD: usize = std::mem::size_of::<usize>();
    let Some(max_modid) = modules.iter().map(|m| m.modid).max() else {
        return;
    };
    if tp == 0 || !tp.is_multiple_of(WORD) || !mapped(tp + DTV_OFFSET, tp + DTV_OFFSET + WORD) {
        return;
    }
    // SAFETY: aligned and mapped (checked); stopped threads unmap nothing.
    let dtv = unsafe { std::ptr::read_volatile((tp + DTV_OFFSET) as *const usize) };
    // The slot count, dtv[-1], and the slots up to the highest module id.
    let (Some(lo), Some(hi)) = (dtv.checked_sub(SLOT), dtv.checked_add((max_modid + 1) * SLOT)) else {
        return;
    };
    if !dtv.is_multiple_of(WORD) || !mapped(lo, hi) {
        return;
    }
    // SAFETY: as above, for the whole vector read below.
    let slots = unsafe { std::ptr::read_volatile(lo as *const usize) };
    for m in modules {
        if m.modid == 0 || m.modid > slots {
            continue;
        }
        // SAFETY: inside the range checked above.
        let block = unsafe { std::ptr::read_volatile((dtv + m.modid * SLOT) as *const usize) };
        if block == UNALLOCATED {
            continue;
        }
        if let Some(end) = block.checked_add(m.size) {
            if mapped(block, end) {
                f(block, end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this build can find TLS blocks (glibc on x86-64 or AArch64).
    pub const SUPPORTED: bool = cfg!(all(
        target_os = "linux",
        target_env = "gnu",
        any(target_arch = "x86_64", target_arch = "aarch64"),
        not(miri)
    ));

    thread_local! {
        static WORDS: std::cell::Cell<[usize; 4]> = const { std::cell::Cell::new([0; 4]) };
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no thread pointer or dl_iterate_phdr")]
    fn the_calling_threads_blocks_include_its_thread_locals() {
        if !SUPPORTED {
            return;
        }
        let addr = WORDS.with(|w| w.as_ptr() as usize);
        let tp = thread_pointer();
        crate::roots::with_loaded_objects(|objs| {
            let mut found = false;
            // SAFETY: the calling thread's own blocks, the loader list locked.
            unsafe { for_each_block(tp, &objs.tls, |lo, hi| found |= lo <= addr && addr < hi) };
            assert!(found, "no TLS block holds {addr:#x} (modules {:?})", objs.tls);
        });
    }
}
