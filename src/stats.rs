//! Statistics [Go: MemStats].
//!
//! Counters about collections are updated at the end of each cycle. Heap figures
//! (bytes and objects allocated, pinned objects) are computed exactly on demand
//! with the world stopped, from the alloc and pin bits (`gc::read_stats`): the
//! allocation and pin fast paths keep no counters at all.

use std::sync::atomic::{AtomicU64, Ordering::*};

/// What `gc_get_stats` reports. Every field is a plain count in bytes, objects,
/// cycles or nanoseconds.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct gc_stats {
    /// Bytes in allocated objects (rounded up to their size class).
    pub heap_alloc_bytes: u64,
    /// Bytes of heap pages held from the OS: in spans, or free but not yet
    /// released.
    pub heap_sys_bytes: u64,
    /// Allocated objects.
    pub heap_objects: u64,
    /// Completed collections.
    pub num_gc: u64,
    /// Sum of all stop-the-world pauses.
    pub pause_total_ns: u64,
    /// Pause of the most recent collection.
    pub last_pause_ns: u64,
    /// Longest pause so far.
    pub max_pause_ns: u64,
    /// Objects with at least one pin.
    pub pinned_objects: u64,
    /// Finalizers (and cleanups) queued to run.
    pub finalizers_queued: u64,
    /// Free heap pages given back to the OS.
    pub heap_released_bytes: u64,
    /// Heap size at which the next automatic collection starts (UINT64_MAX when
    /// automatic collection is off).
    pub next_gc_bytes: u64,
    /// Cumulative bytes allocated.
    pub total_alloc_bytes: u64,
    /// Weak handles that still give their object: made since the last
    /// collection, or found alive by it with their object. (This field and the
    /// next were added later: the struct grew at its end.)
    pub weak_handles: u64,
    /// Cleanups not yet run nor stopped, queued ones included.
    pub cleanups_pending: u64,
    /// Time spent marking while the program ran, over every concurrent cycle
    /// (`GCPIN_CONCURRENT=1`); the pauses above count only the stops.
    pub mark_concurrent_ns: u64,
}

/// Counts of a concurrent cycle's sweep done by threads other than the
/// collector's (explicit frees sweep their span first), summed into the
/// cycle's at its end.
pub struct SweptElsewhere {
    live_bytes: AtomicU64,
    live_objects: AtomicU64,
    freed_spans: AtomicU64,
    allocated: AtomicU64,
}

impl SweptElsewhere {
    pub fn add(&self, live_bytes: usize, live_objects: usize, freed_spans: usize, allocated: usize) {
        self.live_bytes.fetch_add(live_bytes as u64, Relaxed);
        self.live_objects.fetch_add(live_objects as u64, Relaxed);
        self.freed_spans.fetch_add(freed_spans as u64, Relaxed);
        self.allocated.fetch_add(allocated as u64, Relaxed);
    }

    /// The counts so far, as (live bytes, live objects, freed spans,
    /// allocated bytes), reset to zero.
    pub fn take(&self) -> (usize, usize, usize, usize) {
        let t = |a: &AtomicU64| a.swap(0, Relaxed) as usize;
        (t(&self.live_bytes), t(&self.live_objects), t(&self.freed_spans), t(&self.allocated))
    }
}

pub struct Stats {
    pub num_gc: AtomicU64,
    pub pause_total_ns: AtomicU64,
    pub last_pause_ns: AtomicU64,
    pub max_pause_ns: AtomicU64,
    /// Bytes allocated up to the last sweep.
    pub total_alloc_swept: AtomicU64,
    pub mark_concurrent_ns: AtomicU64,
    /// Bytes scanned by mark assists, and their time, over every cycle (in
    /// the trace; `assist`).
    pub assist_bytes: AtomicU64,
    pub assist_ns: AtomicU64,
    pub lazy: SweptElsewhere,
}

impl Stats {
    pub const fn new() -> Stats {
        Stats {
            num_gc: AtomicU64::new(0),
            pause_total_ns: AtomicU64::new(0),
            last_pause_ns: AtomicU64::new(0),
            max_pause_ns: AtomicU64::new(0),
            total_alloc_swept: AtomicU64::new(0),
            mark_concurrent_ns: AtomicU64::new(0),
            assist_bytes: AtomicU64::new(0),
            assist_ns: AtomicU64::new(0),
            lazy: SweptElsewhere {
                live_bytes: AtomicU64::new(0),
                live_objects: AtomicU64::new(0),
                freed_spans: AtomicU64::new(0),
                allocated: AtomicU64::new(0),
            },
        }
    }

    /// Records a finished cycle (called by the collector, world lock held),
    /// whose last pause took `pause_ns`.
    pub fn record_cycle(&self, pause_ns: u64, allocated: usize) {
        self.num_gc.fetch_add(1, Relaxed);
        self.record_pause(pause_ns);
        self.total_alloc_swept.fetch_add(allocated as u64, Relaxed);
    }

    /// Records one stop of the world (a concurrent cycle stops it twice).
    pub fn record_pause(&self, pause_ns: u64) {
        self.pause_total_ns.fetch_add(pause_ns, Relaxed);
        self.last_pause_ns.store(pause_ns, Relaxed);
        self.max_pause_ns.fetch_max(pause_ns, Relaxed);
    }
}
