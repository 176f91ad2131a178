//! The write tracker: which pages of the heap were written since they were
//! write-protected, by the program or by the kernel on its behalf, for
//! mostly-concurrent marking (Boehm–Demers–Shenker's "mostly parallel" scheme).
//!
//! A concurrent mark protects the pages that hold objects (`protect`), marks
//! while the program runs, then asks which pages were written meanwhile
//! (`take_written`) and rescans the marked objects on them; asking again
//! reports only what was written since the last answer. `unprotect` ends the
//! cycle so that the program's writes are not slowed outside marking.
//!
//! libgc's incremental mode tracks writes with `mprotect` and a SIGSEGV
//! handler: a `read()` or an io_uring completion into a protected page then
//! fails with EFAULT, because the kernel does not take a user signal handler's
//! detour. This tracker uses the kernel's own write tracking instead, which
//! resolves every write fault, the kernel's included, by itself:
//!
//! - `userfaultfd` with `UFFD_FEATURE_WP_ASYNC` (Linux 6.7): a write to a page
//!   protected with `UFFDIO_WRITEPROTECT` in a range registered with
//!   `UFFDIO_REGISTER_MODE_WP` faults, and the kernel clears the page's
//!   uffd-wp bit, makes it writable and retries the write; no message is
//!   queued on the descriptor and no handler thread exists. A fault of the
//!   kernel's own `copy_to_user` (`read()`, `readv()`, io_uring reads into
//!   ordinary buffers, `process_vm_writev`) takes the same path, so those
//!   writes succeed and are tracked. Because no fault is ever handed to the
//!   descriptor, it can be opened with `UFFD_USER_MODE_ONLY`, which
//!   unprivileged processes may do even under `vm.unprivileged_userfaultfd=0`.
//! - `UFFD_FEATURE_WP_UNPOPULATED` (Linux 6.4): protecting a page that was
//!   never touched (or was given back with `MADV_DONTNEED`) installs a
//!   uffd-wp *marker* in its empty page-table entry, so its first write is
//!   tracked too. Protection therefore allocates page tables for the whole
//!   protected range: 4 KiB per 2 MiB, whether the pages are touched or not.
//!   Protect only what holds objects, never a whole 4 TiB reservation (8 GiB
//!   of page tables).
//! - `ioctl(/proc/self/pagemap, PAGEMAP_SCAN)` (Linux 6.7) with
//!   `PM_SCAN_WP_MATCHING`, `PM_SCAN_CHECK_WPASYNC` and `PAGE_IS_WRITTEN` as
//!   the one required category reports the written pages of a range as
//!   `page_region` runs and protects them again, page by page under the
//!   page-table lock, so a write is either in this answer or faults and is in
//!   the next. The output vector is ours (on the stack here); when it fills,
//!   the kernel stops, says where in `walk_end`, and protects only what it
//!   reported, and we call again from there. With `PM_SCAN_CHECK_WPASYNC` a
//!   mapping in the range that is not registered makes the call fail (EPERM)
//!   instead of being skipped silently.
//!
//! What "written" means (`PAGE_IS_WRITTEN`) in a registered range: an entry
//! present or swapped without the uffd-wp bit; and, on Linux 6.18 (found by
//! the tests), an empty one without a marker, or no page table at all. So a
//! page never protected counts as written, whether it was ever touched or
//! not, and so does a protected page given back with `MADV_DONTNEED` (on
//! anonymous memory the zap drops the marker with the page; it reads zeros).
//! A scan arms what it reports, page tables included: scanning a range that
//! was never protected costs as much as protecting it. (A kernel that skips
//! empty entries would leave out only pages that read zeros.) The answer is a
//! superset of the pages whose contents changed since they were protected:
//! for a collector, an unreported page holds no pointer it has not seen.
//!
//! Invariants:
//! - Every page of a registered range is, at any time, either protected (its
//!   next write faults and makes it written) or written (the next
//!   `take_written` over it reports it). `protect` and `take_written` return
//!   only after the TLBs are flushed, so a write that lands after they return
//!   on a page they left protected faults. Callers rescan what a
//!   `take_written` reported after it returns.
//! - `take_written` reports a page at most once per write-after-protect, and
//!   leaves every page it reports protected; `list_written` reports the same
//!   pages and leaves them written.
//! - No call allocates with `malloc` (system calls and a buffer on the stack),
//!   so all of them are safe while the world is stopped. None needs it
//!   stopped either: `protect` and `take_written` can run while the program
//!   writes (each page is tested and protected under its page-table lock),
//!   and calls on disjoint ranges can run in parallel (the kernel takes the
//!   address space's lock for reading).
//! - A tracker is only used by the process that made it: after `fork()` its
//!   descriptors still name the parent's address space (both the userfaultfd
//!   context and the opened pagemap file hold the parent's mm), and the child's
//!   mappings are not tracked (no `UFFD_FEATURE_EVENT_FORK`). Every call checks
//!   the process id and fails in a child.
//!
//! Kernel facts the design relies on, checked by the tests below on the
//! running kernel:
//! - Registration is per mapping (vma) and costs nothing per page: registering
//!   a whole `MAP_NORESERVE` reservation of terabytes, touched or not, is one
//!   cheap call, and it survives `mprotect` (a vma split or merge keeps it) and
//!   `MADV_DONTNEED`; holes and `PROT_NONE` parts are allowed. A mapping made
//!   over the range with `MAP_FIXED` replaces the vma and is not registered
//!   (protecting it fails with ENOENT, scanning it with EPERM); `register`
//!   must be called for it again.
//!   gcpin's arena is one `PROT_READ|PROT_WRITE` `MAP_NORESERVE` mapping that
//!   is committed by touching it and released with `MADV_DONTNEED`, so one
//!   registration of the whole arena at start covers it for good.
//! - Closing the userfaultfd unregisters its ranges and clears their uffd-wp
//!   bits and markers (dropping a tracker leaves no page protected).
//! - A transparent huge page that is written while protected is split by the
//!   fault into 4 KiB entries; a scan that covers part of one splits it.
//! - Kernel writes through long-term pinned pages are NOT reported: io_uring's
//!   registered (fixed) buffers and O_DIRECT or other DMA reach the pages
//!   through their physical address, not through the page tables. The pin
//!   itself (`FOLL_WRITE`) makes the page written when it is taken, but no
//!   write after that is seen. The collector must rescan pinned scanned
//!   objects at the final pause itself (noscan buffers need nothing).

// `concurrent` uses the tracker through `WriteTracker::new` and its calls;
// `probe` (a cached yes or no, with the reason) is used by the tests only.
#![cfg_attr(not(test), allow(dead_code))]

use crate::os;
use std::fmt;
use std::sync::OnceLock;

// The kernel's interface, from its uapi headers (linux/userfaultfd.h,
// linux/fs.h), which Debian 12's headers predate in part.

/// The ioctl request encoding: direction, size, type and number.
#[cfg(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
mod ioc {
    pub const NONE: u64 = 1;
    pub const READ: u64 = 2;
    pub const WRITE: u64 = 4;
    pub const SIZE_BITS: u32 = 13;
}
#[cfg(not(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
mod ioc {
    pub const NONE: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const READ: u64 = 2;
    pub const SIZE_BITS: u32 = 14;
}

/// An ioctl request number: `_IOC(dir, ty, nr, size)`.
const fn ioc(dir: u64, ty: u8, nr: u8, size: usize) -> u64 {
    dir << (16 + ioc::SIZE_BITS) | (size as u64) << 16 | (ty as u64) << 8 | nr as u64
}

/// `_IOWR(ty, nr, T)`.
const fn iowr<T>(ty: u8, nr: u8) -> u64 {
    ioc(ioc::READ | ioc::WRITE, ty, nr, std::mem::size_of::<T>())
}

/// The one userfaultfd API version (`UFFD_API`), also the ioctl type.
const UFFD_API: u64 = 0xaa;
/// userfaultfd(2) flag: only faults of user mode are handed to the descriptor.
const UFFD_USER_MODE_ONLY: i32 = 1;
const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;
/// The ioctl numbers (`_UFFDIO_*`), also their bits in `UffdioRegister::ioctls`.
const NR_UFFDIO_REGISTER: u8 = 0x00;
const NR_UFFDIO_WRITEPROTECT: u8 = 0x06;
const NR_UFFDIO_API: u8 = 0x3f;

/// `struct uffdio_api`.
#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

/// `struct uffdio_range`.
#[repr(C)]
struct UffdioRange {
    start: u64,
    len: u64,
}

/// `struct uffdio_register`.
#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

/// `struct uffdio_writeprotect`.
#[repr(C)]
struct UffdioWriteprotect {
    range: UffdioRange,
    mode: u64,
}

const UFFDIO_API: u64 = iowr::<UffdioApi>(UFFD_API as u8, NR_UFFDIO_API);
const UFFDIO_REGISTER: u64 = iowr::<UffdioRegister>(UFFD_API as u8, NR_UFFDIO_REGISTER);
const UFFDIO_WRITEPROTECT: u64 = iowr::<UffdioWriteprotect>(UFFD_API as u8, NR_UFFDIO_WRITEPROTECT);
/// `/dev/userfaultfd`'s one ioctl (Linux 6.1): a new userfaultfd, its argument
/// the flags of userfaultfd(2).
const USERFAULTFD_IOC_NEW: u64 = ioc(ioc::NONE, UFFD_API as u8, 0x00, 0);

/// `struct page_region`: the pages `[start, end)`, all of the categories.
#[repr(C)]
#[derive(Clone, Copy)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// `struct pm_scan_arg`. A page matches when `(categories ^ category_inverted)`
/// has every bit of `category_mask` and, if `category_anyof_mask` is not 0, one
/// of its bits; matching pages are reported with `categories & return_mask`.
#[repr(C)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    /// Written by the kernel: where the walk stopped (`end` when it finished).
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

const PAGEMAP_SCAN: u64 = iowr::<PmScanArg>(b'f', 16);
const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
const PAGE_IS_WRITTEN: u64 = 1 << 1;

/// Regions one `PAGEMAP_SCAN` call reports at most (6 KiB of stack); more
/// written runs take more calls.
const SCAN_REGIONS: usize = 256;

/// Why write tracking is not available here: the step that failed, and the
/// errno it failed with (0 when the kernel answered but lacked something).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsupported {
    pub reason: &'static str,
    pub errno: i32,
}

/// A call of a working tracker that failed: the operation and its errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    pub what: &'static str,
    pub errno: i32,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            0 => f.write_str(self.reason),
            e => write!(f, "{} (errno {e})", self.reason),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.what, self.errno)
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Whether `[lo, lo + len)` is whole OS pages and does not wrap.
fn page_range(lo: usize, len: usize) -> bool {
    let page = os::os_page();
    lo.is_multiple_of(page) && len.is_multiple_of(page) && lo.checked_add(len).is_some()
}

/// Closes a descriptor we opened.
fn close(fd: i32) {
    // SAFETY: `fd` is a descriptor this module opened and nothing else uses.
    unsafe { libc::close(fd) };
}

/// One ioctl on a descriptor of ours, again while interrupted by a signal
/// (EINTR) or asked to retry (EAGAIN: the address space is changing under a
/// non-cooperative event, which we do not ask for; bounded). Returns the
/// result or the errno.
///
/// # Safety
/// `arg` must be what `req` reads and writes, valid for the call.
unsafe fn ioctl<T>(fd: i32, req: u64, arg: *mut T) -> Result<i32, i32> {
    let mut again = 0;
    loop {
        // SAFETY: the caller passes the argument `req` expects.
        let r = unsafe { libc::ioctl(fd, req as libc::Ioctl, arg) };
        if r >= 0 {
            return Ok(r);
        }
        match errno() {
            libc::EINTR => {}
            libc::EAGAIN if again < 1000 => again += 1,
            e => return Err(e),
        }
    }
}

/// A new userfaultfd, non-blocking and closed on exec: by the system call,
/// user-mode faults only first (allowed unprivileged), then plain, then
/// through `/dev/userfaultfd` (whose file permissions decide instead of the
/// `vm.unprivileged_userfaultfd` sysctl).
fn open_userfaultfd() -> Result<i32, Unsupported> {
    let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
    // The errno of the plain call names the reason (a kernel before 5.11
    // refuses the first flag with EINVAL).
    let mut plain = 0;
    for f in [flags | UFFD_USER_MODE_ONLY, flags] {
        // SAFETY: userfaultfd(2) takes only flags and returns a new descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, f) };
        if fd >= 0 {
            return Ok(fd as i32);
        }
        plain = errno();
    }
    // SAFETY: a NUL-terminated path; open returns a new descriptor or -1.
    let dev = unsafe { libc::open(c"/dev/userfaultfd".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if dev >= 0 {
        for f in [flags | UFFD_USER_MODE_ONLY, flags] {
            // SAFETY: USERFAULTFD_IOC_NEW takes the flags by value and returns a
            // new descriptor.
            let fd = unsafe { libc::ioctl(dev, USERFAULTFD_IOC_NEW as libc::Ioctl, f) };
            if fd >= 0 {
                close(dev);
                return Ok(fd);
            }
        }
        close(dev);
    }
    Err(Unsupported {
        reason: match plain {
            libc::ENOSYS => "userfaultfd(2): not in this kernel or blocked by seccomp (ENOSYS)",
            libc::EPERM => {
                "userfaultfd(2) refused (EPERM: vm.unprivileged_userfaultfd=0 or seccomp) and /dev/userfaultfd not usable"
            }
            _ => "userfaultfd(2) failed and /dev/userfaultfd not usable",
        },
        errno: plain,
    })
}

/// The features a fresh userfaultfd offers (`UFFDIO_API` asking for none),
/// to say which of ours is missing. 0 when even that fails.
fn offered_features() -> u64 {
    let Ok(fd) = open_userfaultfd() else { return 0 };
    let mut api = UffdioApi { api: UFFD_API, features: 0, ioctls: 0 };
    // SAFETY: UFFDIO_API reads and writes one uffdio_api, ours.
    let r = unsafe { ioctl(fd, UFFDIO_API, &mut api) };
    close(fd);
    if r.is_ok() {
        api.features
    } else {
        0
    }
}

/// Asks `fd` for asynchronous write protection with markers in empty entries.
fn enable_features(fd: i32) -> Result<(), Unsupported> {
    let want = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
    let mut api = UffdioApi { api: UFFD_API, features: want, ioctls: 0 };
    // SAFETY: UFFDIO_API reads and writes one uffdio_api, ours.
    let r = unsafe { ioctl(fd, UFFDIO_API, &mut api) };
    let have = match r {
        Ok(_) => api.features,
        Err(_) => offered_features(),
    };
    if have & UFFD_FEATURE_WP_ASYNC == 0 {
        return Err(Unsupported { reason: "UFFDIO_API: UFFD_FEATURE_WP_ASYNC not offered (Linux < 6.7)", errno: 0 });
    }
    if have & UFFD_FEATURE_WP_UNPOPULATED == 0 {
        return Err(Unsupported {
            reason: "UFFDIO_API: UFFD_FEATURE_WP_UNPOPULATED not offered (Linux < 6.4)",
            errno: 0,
        });
    }
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(Unsupported { reason: "UFFDIO_API: the write-protect features were refused", errno: e }),
    }
}

/// The pages written since they were protected, in ranges registered for
/// asynchronous write protection; see the module comment.
#[derive(Debug)]
pub struct WriteTracker {
    uffd: i32,
    /// `/proc/self/pagemap` of the process that made the tracker.
    pagemap: i32,
    /// That process (see the invariants: the descriptors name its address
    /// space, not a forked child's).
    pid: i32,
}

impl WriteTracker {
    /// A tracker over `[lo, lo + len)` (whole OS pages, mapped anonymous
    /// private memory in any protection; holes are allowed), registered for
    /// write protection, nothing protected yet. Fails, saying why, where the
    /// kernel lacks a part of it.
    pub fn new(lo: usize, len: usize) -> Result<WriteTracker, Unsupported> {
        if !page_range(lo, len) || len == 0 {
            return Err(Unsupported { reason: "WriteTracker::new: not a range of whole pages", errno: libc::EINVAL });
        }
        let uffd = open_userfaultfd()?;
        // SAFETY: a NUL-terminated path; open returns a new descriptor or -1.
        let pagemap = unsafe { libc::open(c"/proc/self/pagemap".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if pagemap < 0 {
            let e = errno();
            close(uffd);
            return Err(Unsupported { reason: "/proc/self/pagemap cannot be opened (no /proc?)", errno: e });
        }
        // SAFETY: getpid has no preconditions.
        let t = WriteTracker { uffd, pagemap, pid: unsafe { libc::getpid() } };
        enable_features(uffd)?;
        t.register_range(lo, len)?;
        t.check_scan(lo, len)?;
        Ok(t)
    }

    /// Registers `[lo, lo + len)` too: memory mapped anew (a `MAP_FIXED`
    /// mapping replaces a registered one with an unregistered one), or
    /// beside the first range.
    pub fn register(&self, lo: usize, len: usize) -> Result<(), Error> {
        self.check(lo, len, "register")?;
        self.register_range(lo, len).map_err(|u| Error { what: u.reason, errno: u.errno })
    }

    fn register_range(&self, lo: usize, len: usize) -> Result<(), Unsupported> {
        let mut reg = UffdioRegister {
            range: UffdioRange { start: lo as u64, len: len as u64 },
            mode: UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER reads and writes one uffdio_register, ours.
        if let Err(e) = unsafe { ioctl(self.uffd, UFFDIO_REGISTER, &mut reg) } {
            return Err(Unsupported {
                reason: "UFFDIO_REGISTER (write-protect mode) refused: the range is not all private anonymous memory, or is registered elsewhere",
                errno: e,
            });
        }
        if reg.ioctls & 1 << NR_UFFDIO_WRITEPROTECT == 0 {
            return Err(Unsupported { reason: "UFFDIO_REGISTER: no UFFDIO_WRITEPROTECT for the range", errno: 0 });
        }
        Ok(())
    }

    /// One `PAGEMAP_SCAN` that reads and changes nothing over the first page
    /// of the range, to learn whether the kernel has it and takes the range.
    fn check_scan(&self, lo: usize, len: usize) -> Result<(), Unsupported> {
        let mut one = [PageRegion { start: 0, end: 0, categories: 0 }];
        let mut arg = scan_arg(lo, lo + os::os_page().min(len), &mut one, PM_SCAN_CHECK_WPASYNC);
        // SAFETY: PAGEMAP_SCAN reads one pm_scan_arg, writes its walk_end and at
        // most vec_len (1) regions into `one`.
        match unsafe { ioctl(self.pagemap, PAGEMAP_SCAN, &mut arg) } {
            Ok(_) => Ok(()),
            Err(e @ (libc::ENOTTY | libc::EINVAL)) => {
                Err(Unsupported { reason: "PAGEMAP_SCAN: not in this kernel (Linux < 6.7)", errno: e })
            }
            Err(e @ libc::EPERM) => Err(Unsupported {
                reason: "PAGEMAP_SCAN: the range is not write-protected asynchronously (PM_SCAN_CHECK_WPASYNC)",
                errno: e,
            }),
            Err(e) => Err(Unsupported { reason: "PAGEMAP_SCAN failed", errno: e }),
        }
    }

    /// Fails for a range that is not whole pages, and in a forked child.
    fn check(&self, lo: usize, len: usize, what: &'static str) -> Result<(), Error> {
        if !page_range(lo, len) {
            return Err(Error { what, errno: libc::EINVAL });
        }
        // SAFETY: getpid has no preconditions.
        if unsafe { libc::getpid() } != self.pid {
            return Err(Error { what: "write tracker used after fork(): it tracks the parent", errno: libc::ECHILD });
        }
        Ok(())
    }

    fn write_protect(&self, lo: usize, len: usize, mode: u64, what: &'static str) -> Result<(), Error> {
        self.check(lo, len, what)?;
        if len == 0 {
            return Ok(());
        }
        let mut from = lo;
        while from < lo + len {
            let n = CALL_RANGE.min(lo + len - from);
            let mut wp = UffdioWriteprotect { range: UffdioRange { start: from as u64, len: n as u64 }, mode };
            // SAFETY: UFFDIO_WRITEPROTECT reads one uffdio_writeprotect, ours.
            if let Err(errno) = unsafe { ioctl(self.uffd, UFFDIO_WRITEPROTECT, &mut wp) } {
                return Err(Error { what, errno });
            }
            from += n;
        }
        Ok(())
    }

    /// Write-protects `[lo, lo + len)` (registered): from the return on, a
    /// write to any of its pages makes the page written. Costs time and page
    /// tables for the whole range, touched or not (see the module comment).
    pub fn protect(&self, lo: usize, len: usize) -> Result<(), Error> {
        self.write_protect(lo, len, UFFDIO_WRITEPROTECT_MODE_WP, "UFFDIO_WRITEPROTECT (protect)")
    }

    /// Removes the protection of `[lo, lo + len)`: writes no longer fault
    /// (and `take_written` would report every page in memory).
    pub fn unprotect(&self, lo: usize, len: usize) -> Result<(), Error> {
        self.write_protect(lo, len, 0, "UFFDIO_WRITEPROTECT (unprotect)")
    }

    /// Calls `f(page_lo, page_hi)` for each run of pages of `[lo, lo + len)`
    /// written since they were protected (or last reported), ascending, and
    /// protects them again as it reports them. Returns how many OS pages it
    /// reported. Allocates nothing; the runs are reported between system calls,
    /// after the pages are protected again.
    pub fn take_written(&self, lo: usize, len: usize, f: impl FnMut(usize, usize)) -> Result<usize, Error> {
        self.scan_written(lo, len, PM_SCAN_WP_MATCHING, "PAGEMAP_SCAN (take_written)", f)
    }

    /// As `take_written`, but leaves the pages it reports written: a later
    /// call reports them again. For a last look before `unprotect` (the
    /// final pause of a concurrent mark), where protecting them again would
    /// be wasted: the pause benchmark at 256 MiB live, 28 final pauses each,
    /// median time in these calls 114 -> 90 µs (of a pause of 226-259 µs).
    pub fn list_written(&self, lo: usize, len: usize, f: impl FnMut(usize, usize)) -> Result<usize, Error> {
        self.scan_written(lo, len, 0, "PAGEMAP_SCAN (list_written)", f)
    }

    /// `take_written` (`wp`: `PM_SCAN_WP_MATCHING`) or `list_written` (0).
    fn scan_written(
        &self,
        lo: usize,
        len: usize,
        wp: u64,
        what: &'static str,
        mut f: impl FnMut(usize, usize),
    ) -> Result<usize, Error> {
        self.check(lo, len, what)?;
        let page = os::os_page();
        let hi = lo + len;
        let mut buf = [PageRegion { start: 0, end: 0, categories: 0 }; SCAN_REGIONS];
        let mut from = lo;
        let mut pages = 0;
        while from < hi {
            let to = hi.min(from + CALL_RANGE);
            let mut arg = scan_arg(from, to, &mut buf, wp | PM_SCAN_CHECK_WPASYNC);
            // SAFETY: PAGEMAP_SCAN reads one pm_scan_arg, writes its walk_end
            // and at most vec_len regions into `buf`.
            let n = match unsafe { ioctl(self.pagemap, PAGEMAP_SCAN, &mut arg) } {
                Ok(n) => (n as usize).min(SCAN_REGIONS),
                Err(errno) => return Err(Error { what, errno }),
            };
            for r in &buf[..n] {
                pages += (r.end - r.start) as usize / page;
                f(r.start as usize, r.end as usize);
            }
            let end = arg.walk_end as usize;
            if end <= from {
                // No progress: the kernel would say the same again.
                return Err(Error { what: "PAGEMAP_SCAN made no progress", errno: libc::EIO });
            }
            from = end;
        }
        Ok(pages)
    }
}

/// The most of the arena one protecting or scanning system call covers. The
/// call holds the address-space lock for reading, and a thread of the
/// program that needs it for writing (an `mmap`) waits for the whole call:
/// behind one call over 700 MiB (15 ms) a request of the pause benchmark took
/// 13 ms. A 16 MiB call takes about 0.3 ms.
const CALL_RANGE: usize = 16 << 20;

/// A `PAGEMAP_SCAN` argument over `[lo, hi)` reporting written pages into `vec`.
fn scan_arg(lo: usize, hi: usize, vec: &mut [PageRegion], flags: u64) -> PmScanArg {
    PmScanArg {
        size: std::mem::size_of::<PmScanArg>() as u64,
        flags,
        start: lo as u64,
        end: hi as u64,
        walk_end: 0,
        vec: vec.as_mut_ptr() as u64,
        vec_len: vec.len() as u64,
        max_pages: 0,
        category_inverted: 0,
        category_mask: PAGE_IS_WRITTEN,
        category_anyof_mask: 0,
        return_mask: PAGE_IS_WRITTEN,
    }
}

impl Drop for WriteTracker {
    /// Closing the userfaultfd unregisters its ranges and clears their
    /// protection. In a forked child only the child's copies are closed.
    fn drop(&mut self) {
        close(self.pagemap);
        close(self.uffd);
    }
}

/// Whether write tracking works in this process, found once: a tracker over a
/// small mapping of its own, a write and a `read()` from a pipe into protected
/// pages, both reported and nothing else. The first call maps memory and
/// makes some twenty system calls; later ones read the answer.
pub fn probe() -> Result<(), Unsupported> {
    static PROBED: OnceLock<Result<(), Unsupported>> = OnceLock::new();
    *PROBED.get_or_init(probe_now)
}

fn probe_now() -> Result<(), Unsupported> {
    let page = os::os_page();
    let len = 4 * page;
    let Some(base) = os::reserve(len) else {
        return Err(Unsupported { reason: "probe: no memory to map", errno: libc::ENOMEM });
    };
    let r = probe_range(base, len);
    // SAFETY: the probe's own mapping, which nothing else uses.
    unsafe { libc::munmap(base as *mut libc::c_void, len) };
    r
}

fn probe_range(base: usize, len: usize) -> Result<(), Unsupported> {
    const BROKEN: &str = "probe: the kernel offers write tracking but it does not work";
    let broken = |e: Error| Unsupported { reason: BROKEN, errno: e.errno };
    let page = os::os_page();
    // SAFETY: the probe's own mapping, writable, 4 pages long.
    unsafe { (base as *mut u8).write_volatile(1) };
    let t = WriteTracker::new(base, len)?;
    t.protect(base, len).map_err(broken)?;
    // SAFETY: as above; page 1 of 4.
    unsafe { ((base + page) as *mut u8).write_volatile(1) };
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Unsupported { reason: "probe: pipe2 failed", errno: errno() });
    }
    // SAFETY: write reads one byte of ours; read writes one byte into page 2
    // of the probe's mapping.
    let ok = unsafe {
        libc::write(fds[1], [7u8].as_ptr() as *const libc::c_void, 1) == 1
            && libc::read(fds[0], (base + 2 * page) as *mut libc::c_void, 1) == 1
    };
    let e = errno();
    close(fds[0]);
    close(fds[1]);
    if !ok {
        return Err(Unsupported { reason: "probe: read() into a write-protected page failed", errno: e });
    }
    let mut runs = [(0usize, 0usize); 2];
    let mut n = 0;
    t.take_written(base, len, |lo, hi| {
        if n < runs.len() {
            runs[n] = (lo, hi);
        }
        n += 1;
    })
    .map_err(broken)?;
    if n != 1 || runs[0] != (base + page, base + 3 * page) {
        return Err(Unsupported { reason: BROKEN, errno: 0 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> usize {
        os::os_page()
    }

    /// A private anonymous mapping of `pages` OS pages, readable and writable.
    /// Held for writing while `holes_in_the_range_are_skipped` keeps a hole
    /// of 8 pages open, and for reading while another test maps memory: a
    /// new small mapping could land in the hole (the io_uring test's 8 pages
    /// did, and the two tests then protected and unmapped each other's
    /// pages).
    static HOLE: std::sync::RwLock<()> = std::sync::RwLock::new(());

    /// Held for reading by the tests that fork, until their child is
    /// reaped, and for writing by the test that needs a closed tracker to be
    /// gone: a child forked meanwhile holds a copy of its descriptor, so the
    /// range stays registered (a new tracker over it got EBUSY).
    static FORKS: std::sync::RwLock<()> = std::sync::RwLock::new(());

    fn map(pages: usize) -> usize {
        let _no_hole = HOLE.read().unwrap_or_else(|e| e.into_inner());
        map_in_hole_test(pages)
    }

    fn map_in_hole_test(pages: usize) -> usize {
        os::reserve(pages * page()).expect("mmap")
    }

    fn unmap(base: usize, pages: usize) {
        // SAFETY: a test's own mapping, which nothing uses any more.
        unsafe { libc::munmap(base as *mut libc::c_void, pages * page()) };
    }

    fn poke(addr: usize, v: u8) {
        // SAFETY: tests poke only into their own writable mappings.
        unsafe { (addr as *mut u8).write_volatile(v) };
    }

    fn peek(addr: usize) -> u8 {
        // SAFETY: tests peek only into their own readable mappings.
        unsafe { (addr as *const u8).read_volatile() }
    }

    /// A tracker over the range, or None (the test skips, saying why) where
    /// the kernel lacks write tracking.
    fn tracker(lo: usize, len: usize) -> Option<WriteTracker> {
        match WriteTracker::new(lo, len) {
            Ok(t) => Some(t),
            Err(u) => {
                println!("skipped: no write tracking here: {u}");
                None
            }
        }
    }

    /// `n` pages of a mapping of the test's own, each in memory, under a
    /// tracker that protects them all; None (the pages unmapped) where the
    /// kernel lacks write tracking.
    fn protected(n: usize) -> Option<(usize, WriteTracker)> {
        let base = map(n);
        for i in 0..n {
            poke(base + i * page(), 1);
        }
        let Some(t) = tracker(base, n * page()) else {
            unmap(base, n);
            return None;
        };
        t.protect(base, n * page()).unwrap();
        Some((base, t))
    }

    /// The written pages of the range, as page indices from `base`.
    fn written(t: &WriteTracker, base: usize, pages: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let n = t
            .take_written(base, pages * page(), |lo, hi| {
                assert!(lo < hi && lo >= base && hi <= base + pages * page(), "run outside the range");
                out.extend((lo - base) / page()..(hi - base) / page());
            })
            .expect("take_written");
        assert_eq!(n, out.len(), "take_written's count");
        out
    }

    #[test]
    fn ioctl_structs_have_the_uapi_sizes() {
        assert_eq!(std::mem::size_of::<UffdioApi>(), 24);
        assert_eq!(std::mem::size_of::<UffdioRegister>(), 32);
        assert_eq!(std::mem::size_of::<UffdioWriteprotect>(), 24);
        assert_eq!(std::mem::size_of::<PageRegion>(), 24);
        assert_eq!(std::mem::size_of::<PmScanArg>(), 96);
        // What the numbers are is checked by the tests that use them: a wrong
        // one is ENOTTY or EINVAL.
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn reports_exactly_the_pages_written_since_protect() {
        let n = 16;
        let base = map(n);
        for i in 0..n {
            poke(base + i * page(), 1); // all in memory
        }
        let Some(t) = tracker(base, n * page()) else { return unmap(base, n) };
        let all: Vec<usize> = (0..n).collect();
        assert_eq!(written(&t, base, n), all, "never protected: every page in memory counts as written");
        assert_eq!(written(&t, base, n), Vec::<usize>::new(), "take_written protects what it reports");
        t.unprotect(base, n * page()).unwrap();
        t.protect(base, n * page()).unwrap();
        for i in [2, 5, 11] {
            poke(base + i * page() + 100, 2);
        }
        assert_eq!(written(&t, base, n), vec![2, 5, 11]);
        assert_eq!(written(&t, base, n), Vec::<usize>::new(), "a second take_written reports none");
        poke(base + 5 * page(), 3);
        poke(base + 6 * page(), 3);
        assert_eq!(written(&t, base, n), vec![5, 6], "a write after a take_written is reported again");
        // Part of the range only: the rest keeps its state.
        poke(base + page(), 4);
        poke(base + 9 * page(), 4);
        assert_eq!(written(&t, base + 8 * page(), 8), vec![1]);
        assert_eq!(written(&t, base, n), vec![1]);
        assert_eq!(peek(base + 5 * page()), 3, "writes land");
        t.unprotect(base, n * page()).unwrap();
        assert_eq!(written(&t, base, n), all, "unprotected: every page in memory counts as written");
        drop(t);
        unmap(base, n);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn list_written_reports_without_protecting_again() {
        let n = 8;
        let Some((base, t)) = protected(n) else { return };
        poke(base + 3 * page(), 2);
        let listed = |t: &WriteTracker| {
            let mut out = Vec::new();
            let k = t
                .list_written(base, n * page(), |lo, hi| out.extend((lo - base) / page()..(hi - base) / page()))
                .expect("list_written");
            assert_eq!(k, out.len(), "list_written's count");
            out
        };
        assert_eq!(listed(&t), vec![3]);
        assert_eq!(listed(&t), vec![3], "a listed page stays written");
        poke(base + 3 * page(), 3); // no fault needed: the page is writable
        poke(base + 6 * page(), 3);
        assert_eq!(written(&t, base, n), vec![3, 6], "take_written still sees both");
        assert_eq!(listed(&t), Vec::<usize>::new());
        drop(t);
        unmap(base, n);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn untouched_pages_are_tracked_from_their_first_write() {
        let n = 16;
        let base = map(n);
        let Some(t) = tracker(base, n * page()) else { return unmap(base, n) };
        // Never protected, nothing in memory: an empty entry without a marker
        // counts as written, a range without a page table does not; which
        // these pages are depends on their neighbours in the address space.
        // (The call protects them too.)
        written(&t, base, n);
        t.protect(base, n * page()).unwrap();
        assert_eq!(written(&t, base, n), Vec::<usize>::new(), "protected, nothing written");
        assert_eq!(peek(base + 3 * page()), 0);
        assert_eq!(written(&t, base, n), Vec::<usize>::new(), "a read maps the zero page, protected");
        poke(base + 3 * page(), 1);
        poke(base + 7 * page(), 1);
        assert_eq!(written(&t, base, n), vec![3, 7], "first writes of unpopulated pages (UFFD_FEATURE_WP_UNPOPULATED)");
        assert_eq!(written(&t, base, n), Vec::<usize>::new());
        drop(t);
        unmap(base, n);
    }

    /// A pipe with `data` in it: (read end, write end).
    fn pipe_with(data: &[u8]) -> (i32, i32) {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: write reads `data`, ours.
        let w = unsafe { libc::write(fds[1], data.as_ptr() as *const libc::c_void, data.len()) };
        assert_eq!(w, data.len() as isize);
        (fds[0], fds[1])
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn kernel_writes_into_protected_pages_succeed_and_are_reported() {
        let n = 16;
        let Some((base, t)) = protected(n) else { return };
        let data = [0x5au8; 200];

        // read(): page 1.
        let (r, w) = pipe_with(&data[..10]);
        // SAFETY: read writes 10 bytes into page 1 of our mapping.
        let got = unsafe { libc::read(r, (base + page() + 8) as *mut libc::c_void, 10) };
        assert_eq!(got, 10, "read() into a protected page: errno {}", errno());
        // readv(): one iovec across pages 3 and 4, one into page 13.
        // SAFETY: write reads `data`, ours.
        assert_eq!(unsafe { libc::write(w, data.as_ptr() as *const libc::c_void, 200) }, 200);
        let iov = [
            libc::iovec { iov_base: (base + 4 * page() - 100) as *mut libc::c_void, iov_len: 150 },
            libc::iovec { iov_base: (base + 13 * page()) as *mut libc::c_void, iov_len: 50 },
        ];
        // SAFETY: readv writes into the two ranges of our mapping `iov` names.
        let got = unsafe { libc::readv(r, iov.as_ptr(), 2) };
        assert_eq!(got, 200, "readv() into protected pages: errno {}", errno());
        close(r);
        close(w);
        // process_vm_writev() to ourselves: page 6.
        let local = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: 8 };
        let remote = libc::iovec { iov_base: (base + 6 * page()) as *mut libc::c_void, iov_len: 8 };
        // SAFETY: reads 8 bytes of `data`, writes 8 bytes into page 6 of our mapping.
        let got = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
        assert_eq!(got, 8, "process_vm_writev into a protected page: errno {}", errno());
        // pwrite() to /proc/self/mem: page 8 (the kernel writes through
        // get_user_pages with FOLL_FORCE).
        // SAFETY: a NUL-terminated path.
        let mem = unsafe { libc::open(c"/proc/self/mem".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        assert!(mem >= 0);
        // SAFETY: pwrite reads 8 bytes of `data`; the kernel writes them into page 8.
        let got = unsafe { libc::pwrite(mem, data.as_ptr() as *const libc::c_void, 8, (base + 8 * page()) as i64) };
        assert_eq!(got, 8, "pwrite to /proc/self/mem: errno {}", errno());
        close(mem);

        assert_eq!(written(&t, base, n), vec![1, 3, 4, 6, 8, 13]);
        for a in [
            base + page() + 8,
            base + 4 * page() - 100,
            base + 4 * page() + 49,
            base + 13 * page(),
            base + 6 * page(),
            base + 8 * page(),
        ] {
            assert_eq!(peek(a), 0x5a, "the kernel's writes land");
        }
        drop(t);
        unmap(base, n);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn more_runs_than_one_scan_holds_are_all_reported() {
        let n = 4 * SCAN_REGIONS + 10;
        let Some((base, t)) = protected(n) else { return };
        let odd: Vec<usize> = (1..n).step_by(2).collect();
        for &i in &odd {
            poke(base + i * page(), 2);
        }
        let mut runs = 0;
        t.take_written(base, n * page(), |_, _| runs += 1).unwrap();
        assert_eq!(runs, odd.len(), "every other page written: one run each");
        assert_eq!(written(&t, base, n), Vec::<usize>::new(), "and all of them protected again");
        for &i in &odd {
            poke(base + i * page(), 3);
        }
        assert_eq!(written(&t, base, n), odd);
        drop(t);
        unmap(base, n);
    }

    /// Checks what a scan said of pages that are empty without a marker (never
    /// protected, or released since): written on Linux 6.18, where the tests
    /// were written; a kernel that skips them is as good for a collector
    /// (they read zeros), so either answer passes, and which one is printed.
    fn empty_entries(got: Vec<usize>, all: Vec<usize>, what: &str) {
        if got.is_empty() {
            println!("{what}: not reported (empty entries skipped)");
        } else {
            assert_eq!(got, all, "{what}: reported, but not all of them");
        }
    }

    /// A `MAP_NORESERVE` mapping of `bytes` with protection `prot`.
    fn reserve(bytes: usize, prot: i32) -> usize {
        // SAFETY: a new private anonymous mapping at an address of the kernel's choosing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap of {bytes} bytes");
        p as usize
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn a_terabyte_reservation_is_registered_at_once_and_stays_registered() {
        // As gcpin's arena: one huge read-write MAP_NORESERVE mapping,
        // committed by touching, released with MADV_DONTNEED.
        let len = 1usize << 40;
        let base = reserve(len, libc::PROT_READ | libc::PROT_WRITE);
        let Some(t) = tracker(base, len) else {
            // SAFETY: our own mapping.
            unsafe { libc::munmap(base as *mut libc::c_void, len) };
            return;
        };
        let p = page();
        // A window of 64 pages, 100 GiB in, touched after registration.
        let w = base + (100 << 30);
        for i in 0..64 {
            poke(w + i * p, 1);
        }
        t.protect(w, 64 * p).unwrap();
        poke(w + 10 * p, 2);
        assert_eq!(written(&t, w, 64), vec![10], "pages touched after registration are tracked");

        // MADV_DONTNEED of protected pages drops their markers with them (on
        // anonymous memory a zap drops everything): they read zeros and count
        // as written, as any empty entry of a registered range without a marker.
        // SAFETY: pages 20..24 of the window, whose contents we drop.
        assert_eq!(unsafe { libc::madvise((w + 20 * p) as *mut libc::c_void, 4 * p, libc::MADV_DONTNEED) }, 0);
        assert_eq!(peek(w + 21 * p), 0);
        empty_entries(written(&t, w, 64), vec![20, 21, 22, 23], "protected pages released with MADV_DONTNEED");
        assert_eq!(written(&t, w, 64), Vec::<usize>::new(), "and are protected again by the scan");
        poke(w + 22 * p, 3);
        assert_eq!(written(&t, w, 64), vec![22], "and a write into one is reported");

        // mprotect splits the vma; the parts stay registered and protected.
        // SAFETY: pages 30..34 of the window, ours.
        assert_eq!(unsafe { libc::mprotect((w + 30 * p) as *mut libc::c_void, 4 * p, libc::PROT_READ) }, 0);
        assert_eq!(written(&t, w, 64), Vec::<usize>::new());
        // SAFETY: as above.
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        assert_eq!(unsafe { libc::mprotect((w + 30 * p) as *mut libc::c_void, 4 * p, rw) }, 0);
        poke(w + 31 * p, 4);
        poke(w + 40 * p, 4);
        assert_eq!(written(&t, w, 64), vec![31, 40], "mprotect keeps registration and protection");

        // A mapping made over the range with MAP_FIXED is a new vma, not
        // registered: a scan over it fails until it is registered.
        // SAFETY: replaces pages 48..56 of the window, ours, with fresh ones.
        let fixed = unsafe {
            libc::mmap(
                (w + 48 * p) as *mut libc::c_void,
                8 * p,
                rw,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        assert_eq!(fixed as usize, w + 48 * p);
        let e = t.take_written(w, 64 * p, |_, _| {}).unwrap_err();
        assert_eq!(e.errno, libc::EPERM, "an unregistered vma in the scanned range");
        assert_eq!(t.protect(w + 48 * p, 8 * p).unwrap_err().errno, libc::ENOENT, "protecting an unregistered vma");
        t.register(w + 48 * p, 8 * p).unwrap();
        t.protect(w + 48 * p, 8 * p).unwrap();
        poke(w + 50 * p, 5);
        assert_eq!(written(&t, w, 64), vec![50], "registered again");

        // Untouched and never protected, 1 GiB in: no page table at all, and
        // yet written (an empty entry of a registered range without a marker);
        // the scan protects it (allocating its page table).
        let u = base + (1 << 30);
        empty_entries(written(&t, u, 512), (0..512).collect(), "a never protected untouched range");
        assert_eq!(written(&t, u, 512), Vec::<usize>::new());
        drop(t);
        // SAFETY: our own mapping.
        unsafe { libc::munmap(base as *mut libc::c_void, len) };
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn a_prot_none_reservation_committed_later_is_tracked() {
        let len = 64usize << 30;
        let base = reserve(len, libc::PROT_NONE);
        let Some(t) = tracker(base, len) else {
            // SAFETY: our own mapping.
            unsafe { libc::munmap(base as *mut libc::c_void, len) };
            return;
        };
        let p = page();
        let huge = 2 << 20;
        let w = (base + (5 << 30)) & !(huge - 1); // at the start of a page table
                                                  // SAFETY: commits 32 pages of our reservation.
        assert_eq!(unsafe { libc::mprotect(w as *mut libc::c_void, 32 * p, libc::PROT_READ | libc::PROT_WRITE) }, 0);
        t.protect(w, 32 * p).unwrap();
        poke(w + 4 * p, 1);
        assert_eq!(written(&t, w, 32), vec![4]);
        // The never protected pages next to the window (in the same page
        // table, 2 MiB-aligned) count as written, PROT_NONE as they are.
        let rest: Vec<usize> = (32..huge / p).collect();
        empty_entries(written(&t, w, huge / p), rest, "PROT_NONE pages beside the committed ones");
        drop(t);
        // SAFETY: our own mapping.
        unsafe { libc::munmap(base as *mut libc::c_void, len) };
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn holes_in_the_range_are_skipped() {
        let _hole = HOLE.write().unwrap_or_else(|e| e.into_inner());
        let n = 32;
        let base = map_in_hole_test(n);
        let p = page();
        // SAFETY: unmaps pages 8..16 of our mapping.
        unsafe { libc::munmap((base + 8 * p) as *mut libc::c_void, 8 * p) };
        let Some(t) = tracker(base, n * p) else { return unmap(base, n) };
        t.protect(base, 8 * p).unwrap();
        t.protect(base + 16 * p, 16 * p).unwrap();
        poke(base + 2 * p, 1);
        poke(base + 20 * p, 1);
        assert_eq!(written(&t, base, n), vec![2, 20]);
        t.protect(base, n * p).unwrap(); // UFFDIO_WRITEPROTECT skips holes too
        poke(base + 3 * p, 1);
        assert_eq!(written(&t, base, n), vec![3]);
        drop(t);
        unmap(base, n);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn a_range_is_tracked_by_one_tracker_and_freed_when_it_is_dropped() {
        let _no_fork = FORKS.write().unwrap_or_else(|e| e.into_inner());
        let n = 8;
        let Some((base, t)) = protected(n) else { return };
        let e = WriteTracker::new(base, n * page()).unwrap_err();
        assert_eq!(e.errno, libc::EBUSY, "a second tracker over the range: {e}");
        drop(t);
        // Dropping the tracker cleared the protection: a new one sees every
        // page in memory as written (its uffd-wp bits are gone).
        let t = WriteTracker::new(base, n * page()).unwrap();
        assert_eq!(written(&t, base, n), (0..n).collect::<Vec<_>>());
        drop(t);
        unmap(base, n);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no fork")]
    fn a_forked_child_cannot_use_the_parents_tracker() {
        let _forking = FORKS.read().unwrap_or_else(|e| e.into_inner());
        let n = 8;
        let Some((base, t)) = protected(n) else { return };
        // SAFETY: the child only makes system calls and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            poke(base + 3 * page(), 9); // the child's own copy
            let code = match t.take_written(base, n * page(), |_, _| {}) {
                Err(e) if e.errno == libc::ECHILD => 0,
                _ => 1,
            };
            // SAFETY: leaves the child without running the parent's atexit work.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child's take_written did not refuse");
        assert_eq!(written(&t, base, n), Vec::<usize>::new(), "the child's write is not the parent's");
        poke(base + 4 * page(), 9);
        assert_eq!(written(&t, base, n), vec![4], "the parent's tracking goes on");
        drop(t);
        unmap(base, n);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn probe_agrees_with_new() {
        let base = map(1);
        let supported = WriteTracker::new(base, page()).is_ok();
        unmap(base, 1);
        match probe() {
            Ok(()) => assert!(supported),
            Err(u) => {
                assert!(!supported, "a tracker can be made but the probe says: {u}");
                println!("skipped: no write tracking here: {u}");
            }
        }
        assert_eq!(probe(), probe(), "found once");
    }

    #[test]
    fn bad_ranges_are_refused_without_a_system_call() {
        assert_eq!(WriteTracker::new(4096 + 1, 4096).unwrap_err().errno, libc::EINVAL);
        assert_eq!(WriteTracker::new(4096, 0).unwrap_err().errno, libc::EINVAL);
        assert_eq!(WriteTracker::new(usize::MAX & !4095, 8192).unwrap_err().errno, libc::EINVAL);
    }

    /// How many pages of `[lo, lo + len)` are mapped by transparent huge
    /// pages (`PAGE_IS_HUGE`), changing nothing.
    fn huge_pages(t: &WriteTracker, lo: usize, len: usize) -> usize {
        const PAGE_IS_HUGE: u64 = 1 << 6;
        let mut buf = [PageRegion { start: 0, end: 0, categories: 0 }; 16];
        let mut arg = scan_arg(lo, lo + len, &mut buf, 0);
        arg.category_mask = PAGE_IS_HUGE;
        arg.return_mask = PAGE_IS_HUGE;
        // SAFETY: PAGEMAP_SCAN reads `arg` and writes at most 16 regions into `buf`.
        let n = unsafe { ioctl(t.pagemap, PAGEMAP_SCAN, &mut arg) }.unwrap() as usize;
        buf[..n].iter().map(|r| (r.end - r.start) as usize / page()).sum()
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn a_written_huge_page_is_reported_by_the_4k_page() {
        let huge = 2 << 20;
        let raw = reserve(2 * huge, libc::PROT_READ | libc::PROT_WRITE);
        let base = (raw + huge - 1) & !(huge - 1);
        let n = huge / page();
        let Some(t) = tracker(base, huge) else {
            // SAFETY: our own mapping.
            unsafe { libc::munmap(raw as *mut libc::c_void, 2 * huge) };
            return;
        };
        // SAFETY: asks for a transparent huge page in our mapping.
        unsafe { libc::madvise(base as *mut libc::c_void, huge, libc::MADV_HUGEPAGE) };
        poke(base, 1);
        let thp = huge_pages(&t, base, huge);
        println!("huge page in memory after the first touch: {}", thp == n);
        written(&t, base, n); // protects
        assert_eq!(huge_pages(&t, base, huge), thp, "a whole huge page is protected as one");
        poke(base + 10 * page(), 2);
        assert_eq!(written(&t, base, n), vec![10], "the write fault splits the huge page");
        assert_eq!(huge_pages(&t, base, huge), 0);
        drop(t);
        // SAFETY: our own mapping.
        unsafe { libc::munmap(raw as *mut libc::c_void, 2 * huge) };
    }

    /// Just enough of io_uring, by its raw system calls (the kernel's uapi,
    /// linux/io_uring.h), to run one read at a time.
    mod uring {
        use std::sync::atomic::{AtomicU32, Ordering};

        #[repr(C)]
        #[derive(Default)]
        struct RingOffsets {
            head: u32,
            tail: u32,
            ring_mask: u32,
            ring_entries: u32,
            /// sq: flags; cq: overflow.
            a: u32,
            /// sq: dropped; cq: cqes.
            b: u32,
            /// sq: array; cq: flags.
            c: u32,
            resv1: u32,
            user_addr: u64,
        }

        /// `struct io_uring_params`.
        #[repr(C)]
        #[derive(Default)]
        struct Params {
            sq_entries: u32,
            cq_entries: u32,
            flags: u32,
            sq_thread_cpu: u32,
            sq_thread_idle: u32,
            features: u32,
            wq_fd: u32,
            resv: [u32; 3],
            sq_off: RingOffsets,
            cq_off: RingOffsets,
        }

        /// `struct io_uring_sqe`, the fields a read uses.
        #[repr(C)]
        #[derive(Default)]
        pub struct Sqe {
            pub opcode: u8,
            pub flags: u8,
            pub ioprio: u16,
            pub fd: i32,
            pub off: u64,
            pub addr: u64,
            pub len: u32,
            pub rw_flags: u32,
            pub user_data: u64,
            pub buf_index: u16,
            pub personality: u16,
            pub splice_fd_in: i32,
            pub addr3: u64,
            pub pad: u64,
        }

        /// `struct io_uring_cqe`.
        #[repr(C)]
        struct Cqe {
            user_data: u64,
            res: i32,
            flags: u32,
        }

        pub const OP_READ_FIXED: u8 = 4;
        pub const OP_READ: u8 = 22;
        /// `IOSQE_ASYNC`: run it on an io-wq worker thread.
        pub const SQE_ASYNC: u8 = 1 << 4;
        const FEAT_SINGLE_MMAP: u32 = 1;
        const ENTER_GETEVENTS: u32 = 1;
        const OFF_SQES: i64 = 0x1000_0000;
        const REGISTER_BUFFERS: u32 = 0;

        pub struct Ring {
            fd: i32,
            rings: *mut u8,
            rings_len: usize,
            sqes: *mut Sqe,
            p: Params,
        }

        impl Ring {
            /// A ring of 4 entries, or why not.
            pub fn new() -> Result<Ring, String> {
                let mut p = Params::default();
                // SAFETY: io_uring_setup reads and writes one io_uring_params, ours.
                let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, &mut p) } as i32;
                if fd < 0 {
                    return Err(format!("io_uring_setup: {}", std::io::Error::last_os_error()));
                }
                if p.features & FEAT_SINGLE_MMAP == 0 {
                    // SAFETY: our descriptor.
                    unsafe { libc::close(fd) };
                    return Err("io_uring without IORING_FEAT_SINGLE_MMAP".into());
                }
                let sq_len = p.sq_off.c as usize + p.sq_entries as usize * 4;
                let cq_len = p.cq_off.b as usize + p.cq_entries as usize * std::mem::size_of::<Cqe>();
                let rings_len = sq_len.max(cq_len);
                let prot = libc::PROT_READ | libc::PROT_WRITE;
                let flags = libc::MAP_SHARED | libc::MAP_POPULATE;
                // SAFETY: maps the ring's shared memory, as io_uring_setup(2) says.
                let rings = unsafe { libc::mmap(std::ptr::null_mut(), rings_len, prot, flags, fd, 0) };
                let sqes_len = p.sq_entries as usize * std::mem::size_of::<Sqe>();
                // SAFETY: as above, the submission entries.
                let sqes = unsafe { libc::mmap(std::ptr::null_mut(), sqes_len, prot, flags, fd, OFF_SQES) };
                assert!(rings != libc::MAP_FAILED && sqes != libc::MAP_FAILED);
                Ok(Ring { fd, rings: rings as *mut u8, rings_len, sqes: sqes as *mut Sqe, p })
            }

            fn word(&self, off: u32) -> &AtomicU32 {
                // SAFETY: an offset the kernel gave into the ring mapping, of a
                // 4-byte aligned u32 shared with the kernel.
                unsafe { &*(self.rings.add(off as usize) as *const AtomicU32) }
            }

            /// Registers `[addr, addr + len)` as fixed buffer 0.
            pub fn register_buffer(&self, addr: usize, len: usize) -> Result<(), String> {
                let iov = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
                // SAFETY: io_uring_register reads one iovec, ours.
                let r = unsafe { libc::syscall(libc::SYS_io_uring_register, self.fd, REGISTER_BUFFERS, &iov, 1) };
                if r < 0 {
                    return Err(format!("IORING_REGISTER_BUFFERS: {}", std::io::Error::last_os_error()));
                }
                Ok(())
            }

            /// Submits `sqe`, waits for its completion, returns its result.
            pub fn run(&self, sqe: Sqe) -> i32 {
                let tail = self.word(self.p.sq_off.tail).load(Ordering::Relaxed);
                let idx = tail & self.word(self.p.sq_off.ring_mask).load(Ordering::Relaxed);
                // SAFETY: idx is below sq_entries: the entry and the array slot
                // are ours until the tail is published.
                unsafe {
                    self.sqes.add(idx as usize).write(sqe);
                    (self.rings.add(self.p.sq_off.c as usize) as *mut u32).add(idx as usize).write(idx);
                }
                self.word(self.p.sq_off.tail).store(tail.wrapping_add(1), Ordering::Release);
                // SAFETY: io_uring_enter on our ring, no signal mask.
                let r = unsafe {
                    libc::syscall(libc::SYS_io_uring_enter, self.fd, 1, 1, ENTER_GETEVENTS, std::ptr::null::<u8>(), 0)
                };
                assert_eq!(r, 1, "io_uring_enter: {}", std::io::Error::last_os_error());
                let head = self.word(self.p.cq_off.head).load(Ordering::Relaxed);
                assert_ne!(head, self.word(self.p.cq_off.tail).load(Ordering::Acquire), "no completion");
                let i = head & self.word(self.p.cq_off.ring_mask).load(Ordering::Relaxed);
                // SAFETY: a completion the kernel published (tail read with Acquire).
                let res = unsafe { (*(self.rings.add(self.p.cq_off.b as usize) as *const Cqe).add(i as usize)).res };
                self.word(self.p.cq_off.head).store(head.wrapping_add(1), Ordering::Release);
                res
            }
        }

        impl Drop for Ring {
            fn drop(&mut self) {
                // SAFETY: the ring's own mappings and descriptor.
                unsafe {
                    libc::munmap(
                        self.sqes as *mut libc::c_void,
                        self.p.sq_entries as usize * std::mem::size_of::<Sqe>(),
                    );
                    libc::munmap(self.rings as *mut libc::c_void, self.rings_len);
                    libc::close(self.fd);
                }
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no userfaultfd")]
    fn io_uring_reads_into_protected_pages_succeed_and_are_reported() {
        let n = 8;
        let base = map(n);
        for i in 0..n {
            poke(base + i * page(), 1);
        }
        let Some(t) = tracker(base, n * page()) else { return unmap(base, n) };
        let ring = match HOLE.read().map(|_no_hole| uring::Ring::new()).unwrap_or_else(|e| panic!("{e}")) {
            Ok(r) => r,
            Err(why) => {
                println!("skipped: {why}");
                return unmap(base, n);
            }
        };
        t.protect(base, n * page()).unwrap();
        let (r, w) = pipe_with(&[0x66u8; 96]);
        let read = |addr: usize, flags: u8| uring::Sqe {
            opcode: uring::OP_READ,
            flags,
            fd: r,
            off: u64::MAX, // the pipe's current position
            addr: addr as u64,
            len: 32,
            ..Default::default()
        };
        // In the submitting thread, then on an io-wq worker.
        assert_eq!(ring.run(read(base + page() + 16, 0)), 32, "IORING_OP_READ into a protected page");
        assert_eq!(ring.run(read(base + 3 * page(), uring::SQE_ASYNC)), 32, "the same on an io-wq worker");
        assert_eq!(written(&t, base, n), vec![1, 3]);
        assert_eq!(peek(base + page() + 16), 0x66);
        assert_eq!(peek(base + 3 * page() + 31), 0x66);

        // A registered (fixed) buffer: the registration pins the pages for
        // writing, which counts as a write; reads into it after that go
        // through the pinned pages, not the page tables, and are not seen.
        ring.register_buffer(base + 5 * page(), 2 * page()).unwrap();
        assert_eq!(written(&t, base, n), vec![5, 6], "pinning for writing is a write");
        let fixed = uring::Sqe { opcode: uring::OP_READ_FIXED, buf_index: 0, ..read(base + 5 * page() + 8, 0) };
        assert_eq!(ring.run(fixed), 32, "IORING_OP_READ_FIXED into a protected page");
        assert_eq!(peek(base + 5 * page() + 8), 0x66);
        // Not asserted: a kernel that reported it would only make the
        // collector's rescan of pinned objects redundant. Linux 6.18: [].
        let seen = written(&t, base, n);
        println!("a fixed-buffer read into a protected page reported: {seen:?} (6.18: [])");
        close(r);
        close(w);
        drop(ring);
        drop(t);
        unmap(base, n);
    }

    /// The process's page-table memory (`VmPTE`), in KiB.
    fn vm_pte_kib() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmPTE:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The median of `reps` timings of `f` (after `setup` each time), in µs.
    fn median_us(reps: usize, mut setup: impl FnMut(), mut f: impl FnMut()) -> f64 {
        let mut v: Vec<u64> = (0..reps)
            .map(|_| {
                setup();
                let t0 = os::nanotime();
                f();
                os::nanotime() - t0
            })
            .collect();
        v.sort();
        v[reps / 2] as f64 / 1000.0
    }

    /// The figures of the write tracker's costs, for the notes (not a test of
    /// speed): `cargo test --release --lib writetrack::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing figures, run by hand"]
    fn timing() {
        let p = page();
        let arena = 4usize << 40;
        let big = reserve(arena, libc::PROT_READ | libc::PROT_WRITE);
        let t0 = os::nanotime();
        let Some(t) = tracker(big, arena) else { return };
        println!(
            "new() over a 4 TiB MAP_NORESERVE reservation (register): {:.1} us",
            (os::nanotime() - t0) as f64 / 1e3
        );
        drop(t);
        // SAFETY: our own mapping.
        unsafe { libc::munmap(big as *mut libc::c_void, arena) };

        let len = 256usize << 20;
        let n = len / p;
        let base = reserve(len, libc::PROT_READ | libc::PROT_WRITE);
        for i in 0..n {
            poke(base + i * p, 1);
        }
        let t = tracker(base, len).unwrap();
        let reps = 9;
        let protect = median_us(reps, || t.unprotect(base, len).unwrap(), || t.protect(base, len).unwrap());
        println!("protect 256 MiB, all touched: {protect:.0} us");
        let unprotect = median_us(reps, || t.protect(base, len).unwrap(), || t.unprotect(base, len).unwrap());
        println!("unprotect 256 MiB, all touched: {unprotect:.0} us");
        t.protect(base, len).unwrap();
        let few = median_us(
            reps,
            || {
                for i in [7, n / 2, n - 3] {
                    poke(base + i * p, 2);
                }
            },
            || assert_eq!(t.take_written(base, len, |_, _| {}).unwrap(), 3),
        );
        println!("take_written 256 MiB, 3 pages written: {few:.0} us");
        let none = median_us(reps, || {}, || assert_eq!(t.take_written(base, len, |_, _| {}).unwrap(), 0));
        println!("take_written 256 MiB, nothing written: {none:.0} us");
        let all = median_us(
            5,
            || (0..n).for_each(|i| poke(base + i * p, 3)),
            || assert_eq!(t.take_written(base, len, |_, _| {}).unwrap(), n),
        );
        println!("take_written 256 MiB, every page written (one run of {n}): {all:.0} us");
        let odd = median_us(
            5,
            || (1..n).step_by(2).for_each(|i| poke(base + i * p, 4)),
            || assert_eq!(t.take_written(base, len, |_, _| {}).unwrap(), n / 2),
        );
        println!("take_written 256 MiB, every other page written ({} runs): {odd:.0} us", n / 2);

        // The first write to a protected page, against a write to a writable one.
        let stride = |v: u8| {
            let t0 = os::nanotime();
            for i in 0..n {
                poke(base + i * p + 64, v);
            }
            (os::nanotime() - t0) as f64 / n as f64
        };
        let mut faulting = Vec::new();
        let mut plain = Vec::new();
        for r in 0..5u8 {
            t.take_written(base, len, |_, _| {}).unwrap(); // all protected
            faulting.push(stride(10 + r));
            plain.push(stride(20 + r)); // now writable
        }
        faulting.sort_by(f64::total_cmp);
        plain.sort_by(f64::total_cmp);
        println!(
            "a write to a page: {:.2} us the first after protection, {:.3} us the next ({n} pages, medians of 5)",
            faulting[2] / 1e3,
            plain[2] / 1e3
        );
        drop(t);
        // SAFETY: our own mapping.
        unsafe { libc::munmap(base as *mut libc::c_void, len) };

        // Untouched memory: protection installs markers and page tables.
        let fresh = reserve(len, libc::PROT_READ | libc::PROT_WRITE);
        let t = tracker(fresh, len).unwrap();
        let pte0 = vm_pte_kib();
        let t0 = os::nanotime();
        t.protect(fresh, len).unwrap();
        let us = (os::nanotime() - t0) as f64 / 1e3;
        println!("protect 256 MiB, never touched: {us:.0} us, page tables +{} KiB", vm_pte_kib() - pte0);
        let none = median_us(reps, || {}, || assert_eq!(t.take_written(fresh, len, |_, _| {}).unwrap(), 0));
        println!("take_written 256 MiB, never touched, protected: {none:.0} us");
        drop(t);
        // SAFETY: our own mapping.
        unsafe { libc::munmap(fresh as *mut libc::c_void, len) };
        let fresh = reserve(len, libc::PROT_READ | libc::PROT_WRITE);
        let t = tracker(fresh, len).unwrap();
        let pte0 = vm_pte_kib();
        let t0 = os::nanotime();
        assert_eq!(t.take_written(fresh, len, |_, _| {}).unwrap(), n);
        let us = (os::nanotime() - t0) as f64 / 1e3;
        println!(
            "take_written 256 MiB, never touched, never protected (all reported): {us:.0} us, page tables +{} KiB",
            vm_pte_kib() - pte0
        );
        drop(t);
        // SAFETY: our own mapping.
        unsafe { libc::munmap(fresh as *mut libc::c_void, len) };
    }

    /// In a forked child that cannot reach /dev/userfaultfd (not root) and
    /// whose userfaultfd(2) a seccomp filter fails with `err`: what `new` says.
    /// The child's exit code: 0 for Unsupported naming userfaultfd(2) and
    /// `err`, else a number saying what went wrong.
    fn refused_with(err: i32) -> i32 {
        let _forking = FORKS.read().unwrap_or_else(|e| e.into_inner());
        let filter = [
            libc::sock_filter { code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, jt: 0, jf: 0, k: 0 },
            libc::sock_filter {
                code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                jt: 0,
                jf: 1,
                k: libc::SYS_userfaultfd as u32,
            },
            libc::sock_filter {
                code: (libc::BPF_RET | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_ERRNO | err as u32,
            },
            libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
        ];
        let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut libc::sock_filter };
        // SAFETY: the child only makes system calls and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: prctl and setresuid change only this child; the filter
            // outlives the call that installs it (the kernel copies it).
            let code = unsafe {
                if libc::setresuid(65534, 65534, 65534) != 0 && libc::geteuid() == 0 {
                    2
                } else if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog) != 0
                {
                    3
                } else {
                    let base = os::reserve(os::os_page()).unwrap_or(0);
                    match WriteTracker::new(base, os::os_page()) {
                        Err(u) if u.errno == err && u.reason.starts_with("userfaultfd(2)") => 0,
                        Err(_) => 4,
                        Ok(_) => 5,
                    }
                }
            };
            // SAFETY: leaves the child without running the parent's atexit work.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        libc::WEXITSTATUS(status)
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no fork")]
    fn a_refused_userfaultfd_is_unsupported_and_says_why() {
        assert_eq!(refused_with(libc::EPERM), 0, "EPERM (vm.unprivileged_userfaultfd=0, seccomp)");
        assert_eq!(refused_with(libc::ENOSYS), 0, "ENOSYS (no userfaultfd)");
    }
}
