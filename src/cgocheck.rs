//! cgocheck for C [Go: cgocheck.go's pointer checks, written afresh]: may
//! this object be handed to C code that keeps it?
//!
//! An object passed to C (an iovec array, an io_uring submission) must not
//! point to heap objects that are not pinned, or the collector may free them
//! while C still uses them. `check_pointer` follows the object's words, and
//! the pinned objects they reach (a pinned object handed to C must not lead to
//! unpinned ones either). Memory outside the heap is not checked.

use crate::heap::Heap;
use crate::heap::{FindError, Target};
use crate::pinner::pin_state;

/// Go's cgocheck for C: `Err(Unpinned)` if the object at `ptr` holds a pointer
/// to an unpinned heap object, following pinned objects recursively (a pinned
/// object handed to C must not lead to unpinned ones either). Non-heap memory is
/// not checked. Inside the runtime.
pub fn check_pointer(h: &Heap, ptr: usize) -> Result<(), CheckError> {
    let (s, idx) = match h.find_object(ptr) {
        Ok(Target::Zero) => return Ok(()),
        Ok(Target::Object(s, idx)) => (s, idx),
        Err(FindError::NotGcPointer) => return Ok(()),
        Err(FindError::Null) => return Err(CheckError::Null),
        Err(FindError::NotAllocated) => return Err(CheckError::NotAllocated),
    };
    let mut visited = std::collections::HashSet::new();
    let mut work = vec![(s, idx)];
    while let Some((s, idx)) = work.pop() {
        // SAFETY: in-use span, allocated object (classified inside the runtime).
        let (base, size, noscan) = unsafe { ((*s).object_base(idx), (*s).elemsize, (*s).noscan()) };
        if noscan || !visited.insert(base) {
            continue;
        }
        let mut p = base;
        while p < base + size {
            // SAFETY: inside an allocated object, aligned.
            let w = unsafe { *(p as *const usize) };
            p += std::mem::size_of::<usize>();
            let Ok(Target::Object(s2, i2)) = h.find_object(w) else { continue };
            if pin_state(s2, i2) == 0 {
                return Err(CheckError::Unpinned);
            }
            work.push((s2, i2));
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum CheckError {
    Null,
    NotAllocated,
    Unpinned,
}
