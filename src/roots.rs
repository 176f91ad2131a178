//! Roots outside the heap and the stacks: data segments, TLS modules and
//! registered ranges.
//!
//! `with_loaded_objects` lists the writable `PT_LOAD` segments (data, bss) and
//! the `PT_TLS` modules of the program and every loaded library through
//! `dl_iterate_phdr`, and runs the cycle inside that call: glibc holds the
//! loader's list lock (`dl_load_write_lock`, recursive) during the callbacks,
//! and `dlclose` unmaps a library and unlinks it from the list only while
//! holding it. So a library another thread unloads meanwhile is either not in
//! the list or still mapped until the cycle ends, and one it loads is scanned
//! from the next cycle on (it cannot hold a heap pointer before its
//! constructors run, which is after it joins the list). Lock order: the world
//! lock, then the loader's. A thread that waits for the loader's lock can be
//! stopped as usual; no thread holds it while the world is stopped, because the
//! collector does. (A program that calls gcpin from inside its own
//! `dl_iterate_phdr` callback must not make it collect: the README says so.)
//!
//! `RootSet` holds the ranges of `gc_add_roots`. Its lock is taken inside the
//! runtime by the adding thread, and by the collector with the world stopped, so
//! a range added before a collection starts is always scanned by it.
//!
//! Invariants: every registered range satisfies `start + len` without wrapping
//! and was mapped readable when it was added (unmapping it without removing it
//! first is the caller's error); `remove` takes exactly a range that was added
//! (the same start and length).

use std::sync::Mutex;

use crate::tls::TlsModule;

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

    /// Registers `[start, start + len)`, which must be mapped readable (the
    /// caller checks, see `os::is_readable`: that allocates). Inside the runtime.
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

/// What the dynamic loader has mapped: the roots it contributes.
#[derive(Default, Debug)]
pub struct LoadedObjects {
    /// Writable segments (data, bss) of every loaded object, as `[lo, hi)`.
    pub segments: Vec<(usize, usize)>,
    /// The objects with thread-local storage.
    pub tls: Vec<TlsModule>,
}

/// Reads one object's program headers into `out`.
///
/// # Safety
/// `info` is what `dl_iterate_phdr` passed to its callback.
unsafe fn add_object(info: &libc::dl_phdr_info, out: &mut LoadedObjects) {
    for i in 0..info.dlpi_phnum as usize {
        // SAFETY: the loader's headers for this object, dlpi_phnum of them.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_W != 0 && ph.p_memsz > 0 {
            let lo = info.dlpi_addr as usize + ph.p_vaddr as usize;
            out.segments.push((lo, lo + ph.p_memsz as usize));
        }
        if ph.p_type == libc::PT_TLS && ph.p_memsz > 0 && info.dlpi_tls_modid != 0 {
            out.tls.push(TlsModule { modid: info.dlpi_tls_modid, size: ph.p_memsz as usize });
        }
    }
}

/// Lists the loaded objects and calls `f` with them while the loader's list
/// stays locked (see the top of this file): nothing in the list is unloaded
/// until `f` returns. `f` may allocate before it stops the world.
pub fn with_loaded_objects<R, F: FnOnce(&LoadedObjects) -> R>(f: F) -> R {
    #[cfg(miri)]
    {
        f(&LoadedObjects::default())
    }
    #[cfg(not(miri))]
    {
        struct Call<F, R> {
            f: Option<F>,
            result: Option<std::thread::Result<R>>,
        }
        extern "C" fn collect_one(
            info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            data: *mut libc::c_void,
        ) -> libc::c_int {
            // SAFETY: dl_iterate_phdr passes a valid info for the duration of
            // the call, and `data` is the LoadedObjects below.
            unsafe { add_object(&*info, &mut *(data as *mut LoadedObjects)) };
            0
        }
        extern "C" fn first<F: FnOnce(&LoadedObjects) -> R, R>(
            _info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            data: *mut libc::c_void,
        ) -> libc::c_int {
            // SAFETY: `data` is the Call below, used by this thread only.
            let call = unsafe { &mut *(data as *mut Call<F, R>) };
            if let Some(f) = call.f.take() {
                // The list lock is ours (recursive): list every object, then
                // run `f`, still inside this callback. A panic is carried out
                // of the C frames and resumed after them.
                let mut objs = LoadedObjects::default();
                // SAFETY: the callback only reads the headers and pushes.
                unsafe { libc::dl_iterate_phdr(Some(collect_one), &mut objs as *mut _ as *mut libc::c_void) };
                call.result = Some(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&objs))));
            }
            1 // stop the outer iteration
        }
        let mut call = Call { f: Some(f), result: None };
        // SAFETY: `first` runs `f` once with the headers it is given.
        unsafe { libc::dl_iterate_phdr(Some(first::<F, R>), &mut call as *mut _ as *mut libc::c_void) };
        match call.result {
            Some(Ok(r)) => r,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            // No object at all (impossible for a running program): no segments.
            None => (call.f.take().expect("f runs at most once"))(&LoadedObjects::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SOME_DATA: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(7);

    #[test]
    #[cfg_attr(miri, ignore = "Miri does not support dl_iterate_phdr")]
    fn data_segments_include_our_statics() {
        let a = &SOME_DATA as *const _ as usize;
        with_loaded_objects(|objs| {
            let segs = &objs.segments;
            assert!(segs.iter().any(|&(lo, hi)| lo <= a && a < hi), "{segs:x?} lacks {a:x}");
        });
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
