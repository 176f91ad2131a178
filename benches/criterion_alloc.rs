//! Criterion benchmarks of gcpin's allocation and collection paths, called
//! through the crate's exported C API.
//!
//! Run with `cargo bench --bench criterion_alloc`.

// The entry points may be declared `unsafe extern "C"` or safe `extern "C"`;
// the calls below sit in `unsafe` blocks either way.
#![allow(unused_unsafe)]

use std::ffi::c_void;
use std::hint::black_box;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use gcpin::{gc_alloc, gc_alloc_noscan, gc_collect};

/// The root of the live data for the collection benchmark, in .bss (scanned).
static LIVE: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

fn bench_alloc(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc");
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for &size in &[16usize, 64, 1024] {
        g.bench_function(format!("scan_{size}"), |b| b.iter(|| unsafe { black_box(gc_alloc(black_box(size))) }));
    }
    g.bench_function("noscan_16", |b| b.iter(|| unsafe { black_box(gc_alloc_noscan(black_box(16))) }));
    g.finish();
}

/// A linked list of `n` 32-byte nodes: word 0 points to the next node.
unsafe fn build_list(n: usize) -> *mut c_void {
    let mut head: *mut c_void = ptr::null_mut();
    for _ in 0..n {
        let node = gc_alloc(32) as *mut *mut c_void;
        assert!(!node.is_null());
        *node = head;
        head = node as *mut c_void;
        LIVE.store(head, Ordering::Relaxed);
    }
    head
}

fn bench_collect(c: &mut Criterion) {
    let mut g = c.benchmark_group("collect");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    unsafe { build_list((8 << 20) / 32) };
    g.bench_function("full_8mib_live", |b| b.iter(|| unsafe { gc_collect() }));
    LIVE.store(ptr::null_mut(), Ordering::Relaxed);
    unsafe { gc_collect() };
    g.bench_function("full_empty", |b| b.iter(|| unsafe { gc_collect() }));
    g.finish();
}

criterion_group!(benches, bench_alloc, bench_collect);
criterion_main!(benches);
