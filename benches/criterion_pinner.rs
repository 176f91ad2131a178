//! Criterion benchmarks of gcpin's pinning paths, called through the crate's
//! exported C API exactly as a C program calls them.
//!
//! Run with `cargo bench --bench criterion_pinner` (or `make bench`, which also
//! runs the C harness against libgc and Go and writes BENCHMARKS.md).

// The entry points may be declared `unsafe extern "C"` or safe `extern "C"`;
// the calls below sit in `unsafe` blocks either way.
#![allow(unused_unsafe)]

use std::ffi::c_void;
use std::hint::black_box;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use gcpin::{gc_alloc, gc_alloc_noscan, gc_pin_count, gc_pinner, is_pinned, pinner_pin, pinner_unpin};

/// Go's `obj` in the runtime's Pinner benchmarks: three int64s.
const OBJ_SIZE: usize = 24;
const BATCH: usize = 1000;

/// Objects for the batch benchmarks live in .bss, which the collector scans,
/// so they stay allocated between iterations while unpinned.
#[allow(clippy::declare_interior_mutable_const)]
const NULL_SLOT: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
static BATCH_OBJS: [AtomicPtr<c_void>; BATCH] = [NULL_SLOT; BATCH];
static BATCH_TINY: [AtomicPtr<c_void>; BATCH] = [NULL_SLOT; BATCH];
static PROBE: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

fn new_pinner() -> gc_pinner {
    gc_pinner { impl_: ptr::null_mut() }
}

fn pin(p: &mut gc_pinner, obj: *const c_void) {
    let st = unsafe { pinner_pin(p, obj) };
    assert!(st as u32 == 0, "pinner_pin failed");
}

fn bench_pin_unpin(c: &mut Criterion) {
    let mut g = c.benchmark_group("pinner");
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));

    let mut p = new_pinner();
    g.bench_function("pin_unpin", |b| {
        b.iter(|| unsafe {
            pin(&mut p, gc_alloc(OBJ_SIZE));
            pinner_unpin(&mut p);
        })
    });
    g.bench_function("pin_unpin_tiny", |b| {
        b.iter(|| unsafe {
            pin(&mut p, gc_alloc_noscan(1));
            pinner_unpin(&mut p);
        })
    });
    g.bench_function("pin_unpin_double", |b| {
        b.iter(|| unsafe {
            let o = gc_alloc(OBJ_SIZE);
            pin(&mut p, o);
            pin(&mut p, o);
            pinner_unpin(&mut p);
        })
    });

    for i in 0..BATCH {
        unsafe {
            BATCH_OBJS[i].store(gc_alloc(OBJ_SIZE), Ordering::Relaxed);
            BATCH_TINY[i].store(gc_alloc_noscan(1), Ordering::Relaxed);
        }
    }
    g.bench_function("batch1000", |b| {
        b.iter(|| unsafe {
            for o in BATCH_OBJS.iter() {
                pin(&mut p, o.load(Ordering::Relaxed));
            }
            pinner_unpin(&mut p);
        })
    });
    g.bench_function("batch1000_double", |b| {
        b.iter(|| unsafe {
            for o in BATCH_OBJS.iter() {
                let o = o.load(Ordering::Relaxed);
                pin(&mut p, o);
                pin(&mut p, o);
            }
            pinner_unpin(&mut p);
        })
    });
    g.bench_function("batch1000_tiny", |b| {
        b.iter(|| unsafe {
            for o in BATCH_TINY.iter() {
                pin(&mut p, o.load(Ordering::Relaxed));
            }
            pinner_unpin(&mut p);
        })
    });

    // is_pinned and gc_pin_count on a pinned object, then on an unpinned one.
    let obj = unsafe { gc_alloc(OBJ_SIZE) };
    PROBE.store(obj, Ordering::Relaxed);
    pin(&mut p, obj);
    assert!(unsafe { is_pinned(obj) });
    g.bench_function("is_pinned_on_pinned", |b| b.iter(|| unsafe { is_pinned(black_box(obj)) }));
    g.bench_function("pin_count_on_pinned", |b| b.iter(|| unsafe { gc_pin_count(black_box(obj)) }));
    unsafe { pinner_unpin(&mut p) };
    assert!(!unsafe { is_pinned(obj) });
    g.bench_function("is_pinned_on_unpinned", |b| b.iter(|| unsafe { is_pinned(black_box(obj)) }));
    g.finish();
    PROBE.store(ptr::null_mut(), Ordering::Relaxed);
}

criterion_group!(benches, bench_pin_unpin);
criterion_main!(benches);
