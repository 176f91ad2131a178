//! Collector behaviour through the Rust API, in its own process (one global heap).

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering::*};

use gcpin::*;

#[repr(C)]
struct Node {
    next: *mut Node,
    value: usize,
}

const HIDE: usize = 0x5a5a_5a5a_5a5a_5a5a;

/// The tests share one heap (and its mark stack): run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[inline(never)]
fn build_list(n: usize) -> usize {
    let mut head: *mut Node = std::ptr::null_mut();
    for i in 0..n {
        let node = gc_alloc(std::mem::size_of::<Node>()) as *mut Node;
        assert!(!node.is_null());
        // SAFETY: a fresh 16-byte object.
        unsafe {
            (*node).next = head;
            (*node).value = i;
        }
        head = node;
    }
    head as usize
}

fn check_list(head: *mut Node, n: usize) {
    let mut p = head;
    let mut expect = n;
    while !p.is_null() {
        expect -= 1;
        // SAFETY: list nodes are alive while the list head is on our stack.
        unsafe {
            assert_eq!((*p).value, expect, "node contents changed: freed too early?");
            p = (*p).next;
        }
    }
    assert_eq!(expect, 0, "list lost nodes");
}

/// A mark stack far too small for a deep list forces overflow recovery; nothing
/// reachable may be lost.
#[test]
#[cfg_attr(
    miri,
    ignore = "needs the real runtime: a 32 GiB arena, stop-the-world signals, futexes and \
              dl_iterate_phdr, which Miri does not support"
)]
fn mark_stack_overflow_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A wide structure: one array of 20 000 pointers to short lists, so marking
    // the array pushes far more entries than the stack holds.
    const WIDTH: usize = 20_000;
    let table = gc_alloc(WIDTH * 8) as *mut usize;
    for i in 0..WIDTH {
        // SAFETY: `table` has WIDTH slots.
        unsafe { *table.add(i) = build_list(5) };
    }
    {
        let rt = gcpin::runtime::runtime();
        let w = rt.lock_world();
        *rt.marker(&w) = gcpin::mark::Marker::with_capacity(8);
    }
    gc_collect();
    gc_collect();
    for i in 0..WIDTH {
        // SAFETY: as above.
        check_list(unsafe { *table.add(i) } as *mut Node, 5);
    }
    assert_eq!(gc_verify_heap(), gc_status::GC_OK);
    let rt = gcpin::runtime::runtime();
    let w = rt.lock_world();
    assert!(rt.marker(&w).overflow_rescans > 0, "the test did not overflow the mark stack");
    *rt.marker(&w) = gcpin::mark::Marker::new();
}

static FINALIZED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_finalized(_obj: *mut c_void, _arg: *mut c_void) {
    FINALIZED.fetch_add(1, SeqCst);
}

#[inline(never)]
fn make_finalizable(n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| {
            let p = gc_alloc(48);
            assert_eq!(gc_set_finalizer(p, Some(count_finalized), std::ptr::null_mut()), gc_status::GC_OK);
            p as usize ^ HIDE
        })
        .collect()
}

#[inline(never)]
fn scrub_stack() {
    let mut buf = [0u8; 32 << 10];
    std::hint::black_box(&mut buf);
}

/// Threads allocating concurrently with collections from another thread keep
/// every reachable node, and garbage with finalizers gets finalized.
#[test]
#[cfg_attr(
    miri,
    ignore = "needs the real runtime: a 32 GiB arena, stop-the-world signals, futexes and \
              dl_iterate_phdr, which Miri does not support"
)]
fn threads_allocate_while_another_collects() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Relaxed) {
                gc_collect();
                n += 1;
            }
            n
        })
    };
    let workers: Vec<_> = (0..3)
        .map(|t| {
            std::thread::spawn(move || {
                for round in 0..20 {
                    let n = 20_000 + t * 1000 + round;
                    let head = build_list(n) as *mut Node;
                    check_list(head, n);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Relaxed);
    assert!(collector.join().unwrap() > 0);

    let hidden = make_finalizable(1000);
    for _ in 0..5 {
        scrub_stack();
        gc_collect();
        gc_run_finalizers();
        if FINALIZED.load(SeqCst) >= 990 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let done = FINALIZED.load(SeqCst);
    assert!(done >= 990, "only {done} of 1000 unreachable objects were finalized");
    assert!(done <= 1000, "a finalizer ran twice");
    drop(hidden);
    assert_eq!(gc_verify_heap(), gc_status::GC_OK);
}
