//! Roots outside the heap: data segments and registered ranges.
//!
//! `data_segments` lists the writable `PT_LOAD` segments (data, bss) of the
//! program and every loaded library, through `dl_iterate_phdr`. It may allocate,
//! so a cycle calls it before stopping the world. (A library loaded between that
//! call and the stop is scanned from the next cycle on; libgc's window is the
//! same.)
//!
//! `RootSet` holds the ranges of `gc_add_roots`. Its lock is taken inside the
//! runtime by the adding thread, and by the collector with the world stopped, so
//! a range added before a collection starts is always scanned by it.
//!
//! Invariants: every registered range satisfies `start + len` without wrapping;
//! `remove` takes exactly a range that was added (the same start and length).

use std::sync::Mutex;

pub struct RootSet {
    ranges: Mutex<Vec<(usize, usize)>>,
}

/// Why a root range was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum RootError {
    Invalid,
}

impl RootSet {
    pub const fn new() -> RootSet {
        RootSet { ranges: Mutex::new(Vec::new()) }
    }

    /// Registers `[start, start + len)`. Inside the runtime.
    pub fn add(&self, start: usize, len: usize) -> Result<(), RootError> {
        start.checked_add(len).ok_or(RootError::Invalid)?;
        self.ranges.lock().unwrap_or_else(|e| e.into_inner()).push((start, len));
        Ok(())
    }

    /// Unregisters a range added with exactly this start and length. Inside the
    /// runtime.
    pub fn remove(&self, start: usize, len: usize) -> Result<(), RootError> {
        let mut r = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        let i = r.iter().rposition(|&x| x == (start, len)).ok_or(RootError::Invalid)?;
        r.swap_remove(i);
        Ok(())
    }

    /// Calls `f(lo, hi)` for every range. World stopped (the lock is free).
    pub fn for_each(&self, mut f: impl FnMut(usize, usize)) {
        let r = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        for &(s, l) in r.iter() {
            f(s, s + l);
        }
    }
}

/// Writable loaded segments of every object in the process, as `[lo, hi)`.
pub fn data_segments() -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(32);
    extern "C" fn each(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of the
        // call, and `data` is the Vec we passed in.
        unsafe {
            let out = &mut *(data as *mut Vec<(usize, usize)>);
            let info = &*info;
            for i in 0..info.dlpi_phnum as usize {
                let ph = &*info.dlpi_phdr.add(i);
                if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_W != 0 && ph.p_memsz > 0 {
                    let lo = info.dlpi_addr as usize + ph.p_vaddr as usize;
                    out.push((lo, lo + ph.p_memsz as usize));
                }
            }
        }
        0
    }
    // SAFETY: the callback only reads the headers and pushes into `out`.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut out as *mut _ as *mut libc::c_void) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static SOME_DATA: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(7);

    #[test]
    #[cfg_attr(miri, ignore = "Miri does not support dl_iterate_phdr")]
    fn data_segments_include_our_statics() {
        let segs = data_segments();
        let a = &SOME_DATA as *const _ as usize;
        assert!(segs.iter().any(|&(lo, hi)| lo <= a && a < hi), "{segs:x?} lacks {a:x}");
    }

    #[test]
    fn ranges_must_not_wrap_and_removal_must_match() {
        let r = RootSet::new();
        assert_eq!(r.add(usize::MAX - 4, 8), Err(RootError::Invalid));
        assert!(r.add(0x1000, 64).is_ok());
        assert_eq!(r.remove(0x1000, 32), Err(RootError::Invalid));
        assert!(r.remove(0x1000, 64).is_ok());
        assert_eq!(r.remove(0x1000, 64), Err(RootError::Invalid));
        let mut n = 0;
        r.for_each(|_, _| n += 1);
        assert_eq!(n, 0);
    }
}
