//! The pacer: when the next collection starts, and how fast free memory goes
//! back to the OS [Go: mgcpacer.go's gcControllerState, written afresh].
//!
//! `heap_live` counts the bytes allocated (or reserved by mcaches) since the
//! last cycle plus what survived it; when it reaches `next_gc` (the goal set by
//! the last cycle: the live heap grown by `GCPIN_GC_PERCENT`, at least
//! `MIN_HEAP`) the allocating thread sets `gc_wanted` and collects once it is
//! outside the runtime. `next_gc` is stored here only; the statistics read it.
//!
//! Invariants: `gc_wanted` is set only by an allocation that crossed
//! `next_gc`, and cleared by the cycle that sets the next goal; `next_gc` is
//! `usize::MAX` exactly when automatic collection is off.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};

/// Minimum heap size before the first automatic collection [Go: heapMinimum].
pub const MIN_HEAP: usize = 4 << 20;

/// The pace of release after automatic cycles [Go: the background scavenger,
/// paced to a small share of one CPU]. A heap that swings between cycles keeps
/// its pages instead of faulting them in again a few milliseconds later (on
/// GCBench, which drops a 134 MiB tree and then grows to 76 MiB again, an
/// unpaced release cost 36k page faults: 103k instead of 67k); memory freed by
/// a spike still goes back within seconds of a program that keeps collecting.
pub const RELEASE_BYTES_PER_SEC: u64 = 64 << 20;

/// How much of the surplus of free pages a cycle gives back to the OS.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Release {
    /// Everything above what the heap may grow to before the next cycle: after
    /// `gc_collect` (the program asked, as with Go's `debug.FreeOSMemory`) and
    /// before failing an allocation at the heap limit.
    All,
    /// At most `RELEASE_BYTES_PER_SEC` for each second since the previous
    /// cycle: after collections the allocator triggered.
    Paced,
}

pub struct Pacer {
    /// `GCPIN_GC_PERCENT`; `None`: no automatic collection.
    gc_percent: Option<u64>,
    pub heap_live: AtomicUsize,
    pub next_gc: AtomicUsize,
    /// Set when an allocation crossed `next_gc`; the allocating thread collects
    /// once it is outside the runtime.
    pub gc_wanted: AtomicBool,
}

impl Pacer {
    pub fn new(gc_percent: Option<u64>) -> Pacer {
        let first = if gc_percent.is_some() { MIN_HEAP } else { usize::MAX };
        Pacer {
            gc_percent,
            heap_live: AtomicUsize::new(0),
            next_gc: AtomicUsize::new(first),
            gc_wanted: AtomicBool::new(false),
        }
    }

    /// Counts `bytes` towards the next collection's trigger.
    #[inline]
    pub fn note_allocated(&self, bytes: usize) {
        let live = self.heap_live.fetch_add(bytes, Relaxed) + bytes;
        if live >= self.next_gc.load(Relaxed) && !self.gc_wanted.load(Relaxed) {
            self.gc_wanted.store(true, Relaxed);
        }
    }

    /// Takes `bytes` freed explicitly off the count towards the next trigger
    /// (for memory that is counted again when a refill or a large allocation
    /// reserves it).
    #[inline]
    pub fn note_freed(&self, bytes: usize) {
        let _ = self.heap_live.fetch_update(Relaxed, Relaxed, |live| Some(live.saturating_sub(bytes)));
    }

    /// Whether the heap has reached the trigger (a cycle is still needed).
    pub fn trigger_reached(&self) -> bool {
        self.heap_live.load(Relaxed) >= self.next_gc.load(Relaxed)
    }

    /// The goal after a collection left `live` bytes.
    pub fn goal_after(&self, live: usize) -> usize {
        match self.gc_percent {
            Some(pct) => live.saturating_add(live / 100 * pct as usize).max(MIN_HEAP),
            None => usize::MAX,
        }
    }

    /// A concurrent cycle was asked for: allocation goes on towards a goal
    /// half as far again while it runs (past it, allocating threads wait for
    /// the cycle), on the fast path (`gc_wanted` cleared). The cycle's end
    /// sets the next goal as usual.
    pub fn start_concurrent(&self) {
        let next = self.next_gc.load(Relaxed);
        self.next_gc.store(next.saturating_add(next / 2), Relaxed);
        self.gc_wanted.store(false, Relaxed);
    }

    /// A concurrent cycle asked for was not run (collection disabled): the
    /// trigger stays crossed, so the next allocation asks again.
    pub fn resume_after_skipped_cycle(&self) {
        self.gc_wanted.store(true, Relaxed);
    }

    /// Starts the next cycle's count from `live` bytes; returns its goal.
    pub fn end_cycle(&self, live: usize) -> usize {
        let next = self.goal_after(live);
        self.heap_live.store(live, Relaxed);
        self.next_gc.store(next, Relaxed);
        self.gc_wanted.store(false, Relaxed);
        next
    }
}

/// How many bytes of committed memory to keep after a cycle that left
/// `in_use` bytes of spans and set the goal `next_gc`: what the heap may grow
/// to before the next cycle, plus an eighth.
pub fn retain_after(in_use: usize, next_gc: usize) -> usize {
    let target = if next_gc == usize::MAX { in_use } else { next_gc.max(in_use) };
    target.saturating_add(target / 8).max(MIN_HEAP)
}

/// The most a cycle may release, `elapsed_ns` after the previous one.
pub fn release_budget(release: Release, elapsed_ns: u64) -> usize {
    match release {
        Release::All => usize::MAX,
        Release::Paced => {
            let bytes = elapsed_ns as u128 * RELEASE_BYTES_PER_SEC as u128 / 1_000_000_000;
            bytes.min(usize::MAX as u128) as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_release_grows_with_the_time_between_cycles() {
        let mib = 1usize << 20;
        assert_eq!(release_budget(Release::Paced, 0), 0);
        // 5 ms between cycles: 0.32 MiB at 64 MiB/s.
        assert_eq!(release_budget(Release::Paced, 5_000_000), 64 * mib / 200);
        assert_eq!(release_budget(Release::Paced, 1_000_000_000), 64 * mib);
        // A program that collected last long ago may release everything.
        assert_eq!(release_budget(Release::Paced, u64::MAX), (u64::MAX as u128 * (64 << 20) / 1_000_000_000) as usize);
        assert_eq!(release_budget(Release::All, 0), usize::MAX);
    }

    #[test]
    fn the_trigger_is_crossed_at_the_goal_and_reset_by_the_cycle() {
        let p = Pacer::new(Some(100));
        assert_eq!(p.next_gc.load(Relaxed), MIN_HEAP, "the first goal is the minimum heap");
        p.note_allocated(MIN_HEAP - 16);
        assert!(!p.gc_wanted.load(Relaxed) && !p.trigger_reached());
        p.note_allocated(16);
        assert!(p.gc_wanted.load(Relaxed) && p.trigger_reached());
        // 100% over a 10 MiB live heap (the percentage of whole hundredths).
        assert_eq!(p.end_cycle(10 << 20), (10 << 20) + (10 << 20) / 100 * 100);
        assert!(!p.gc_wanted.load(Relaxed));
        assert_eq!(p.heap_live.load(Relaxed), 10 << 20);
        p.note_freed(1 << 30);
        assert_eq!(p.heap_live.load(Relaxed), 0, "an explicit free never goes below zero");
        assert_eq!(Pacer::new(Some(50)).goal_after(1 << 20), MIN_HEAP, "never below the minimum heap");
        assert_eq!(Pacer::new(Some(50)).goal_after(100 << 20), 150 << 20);
        let off = Pacer::new(None);
        off.note_allocated(1 << 40);
        assert!(!off.gc_wanted.load(Relaxed), "GCPIN_GC_PERCENT=off never triggers");
        assert_eq!(off.end_cycle(1 << 30), usize::MAX);
    }

    #[test]
    fn retained_memory_covers_the_growth_to_the_next_goal() {
        assert_eq!(retain_after(8 << 20, 16 << 20), 18 << 20);
        assert_eq!(retain_after(32 << 20, 16 << 20), 36 << 20, "at least what is in use");
        assert_eq!(retain_after(1 << 20, usize::MAX), MIN_HEAP, "GC off: what is in use, at least MIN_HEAP");
    }
}
