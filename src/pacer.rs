//! The pacer: when the next collection starts, and how fast free memory goes
//! back to the OS [Go: mgcpacer.go's gcControllerState, written afresh].
//!
//! `heap_live` counts the bytes allocated (or reserved by mcaches) since the
//! last cycle plus what survived it; when it reaches `next_gc` (the trigger
//! set by the last cycle) the allocating thread sets `gc_wanted` and collects
//! once it is outside the runtime. `next_gc` is stored here only; the
//! statistics read it.
//!
//! The trigger after a cycle that left `live` bytes (`Pacer::plan`):
//! - the goal [GOGC]: `live` grown by `GCPIN_GC_PERCENT`, at least `MIN_HEAP`;
//! - while the heap is being built: a cycle that found almost nothing to free
//!   (at least `GROWING_SURVIVAL` of what was allocated since the previous one
//!   is still live) did no useful work, so the next one waits longer: the
//!   percentage counts `GROWTH_BOOST` hundredths. A live heap growing from 4 MiB
//!   to 128 MiB is then marked 4 times instead of 6;
//! - surplus pages: when the heap holds more committed memory than the goal
//!   needs (`retain_after`), which happens after the live heap shrank (a
//!   program drops a 128 MiB tree), the next cycle waits until the free pages
//!   kept are used, as libgc collects only when its heap is full: collecting
//!   every `goal - live` bytes inside memory that is resident anyway costs time
//!   and saves nothing. The surplus goes back to the OS at the paced rate
//!   (`Release`), and the trigger comes down with it.
//!
//! Invariants:
//! - `gc_wanted` is set only by an allocation that crossed `next_gc`, and
//!   cleared by the cycle that sets the next trigger;
//! - `next_gc` is `usize::MAX` exactly when automatic collection is off;
//!   otherwise it is at least the goal, and above the goal only by free pages
//!   the heap keeps committed after the cycle's release: the surplus rule
//!   never makes the heap take memory from the OS;
//! - `last_live` and the trigger are written only by cycles (world lock held).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};

/// Minimum heap size before the first automatic collection [Go: heapMinimum].
pub const MIN_HEAP: usize = 4 << 20;

/// A cycle after which at least this share (in 1/1024) of what was allocated
/// since the previous cycle is still live found the heap growing: 7/8.
pub const GROWING_SURVIVAL: usize = 896;

/// How many times the percentage counts for the goal after a cycle that found
/// the heap growing, in hundredths.
pub const GROWTH_BOOST: usize = 150;

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
    /// Nothing: after collections the allocator triggered, when the heap is
    /// backed by huge pages (`GCPIN_HUGEPAGES`). A page released inside a
    /// huge page faults back in as a whole 2 MiB page, cleared: with paced
    /// release, GCBench trees spent 58% of its time in the kernel's
    /// `clear_page` and took twice as long.
    Kept,
}

/// What the end of a cycle tells the pacer: the heap it leaves and how much
/// it may release.
#[derive(Clone, Copy, Debug)]
pub struct CycleEnd {
    /// Bytes in objects that survived.
    pub live: usize,
    /// Bytes of pages in spans.
    pub in_use: usize,
    /// Bytes of free pages still committed (not given back to the OS).
    pub free_held: usize,
    pub release: Release,
    /// Time since the previous cycle's release.
    pub since_release_ns: u64,
}

/// The pacer's answer to a cycle's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The live heap grown by the percentage (boosted while growing).
    pub goal: usize,
    /// `next_gc`: the goal, or, when the heap holds surplus pages, the live
    /// heap plus the free pages kept after this cycle's release.
    pub trigger: usize,
    /// Committed bytes (in spans or free) to keep; the rest may go back.
    pub retain: usize,
    /// The most this cycle may release.
    pub budget: usize,
}

pub struct Pacer {
    /// `GCPIN_GC_PERCENT`; `None`: no automatic collection.
    gc_percent: Option<u64>,
    pub heap_live: AtomicUsize,
    pub next_gc: AtomicUsize,
    /// Set when an allocation crossed `next_gc`; the allocating thread collects
    /// once it is outside the runtime.
    pub gc_wanted: AtomicBool,
    /// The live heap the previous cycle left (0 before the first): with
    /// `heap_live` at the next cycle, how much of what was allocated between
    /// the two survived.
    last_live: AtomicUsize,
    /// With concurrent cycles: how far the next cycle lets the heap grow
    /// (`trigger_early`); 0 when there is none.
    concurrent_runway: AtomicUsize,
    /// With concurrent cycles: the heap size the next cycle's mark should
    /// end by (`trigger_early`; 0: none set).
    concurrent_goal: AtomicUsize,
    /// The running concurrent cycle's: the heap size its mark should end by,
    /// and the bytes it expects to scan (`start_concurrent`, `assist_work`).
    assist_goal: AtomicUsize,
    assist_expected: AtomicUsize,
    /// The runway `hold_allocation` took down.
    held_runway: AtomicUsize,
}

/// With concurrent cycles, a cycle starts when the heap has grown this share
/// (in %) of the way from the live heap to the goal, so that marking is
/// (mostly) done when the goal is reached [Go: the trigger ratio].
pub const CONCURRENT_TRIGGER_PCT: usize = 70;

/// The most assist work one allocation adds to what its thread owes (an
/// assist then works it off a slice at a time, `assist::ASSIST_SLICE_BYTES`),
/// so that one allocation past the goal, where the distance left is small,
/// does not make its thread owe most of the cycle's marking.
pub const ASSIST_MAX_BYTES: usize = 256 << 10;

/// The least heap distance `assist_work` divides by.
pub const ASSIST_MIN_DISTANCE: usize = 1 << 20;

impl Pacer {
    pub fn new(gc_percent: Option<u64>) -> Pacer {
        let first = if gc_percent.is_some() { MIN_HEAP } else { usize::MAX };
        Pacer {
            gc_percent,
            heap_live: AtomicUsize::new(0),
            next_gc: AtomicUsize::new(first),
            gc_wanted: AtomicBool::new(false),
            last_live: AtomicUsize::new(0),
            concurrent_runway: AtomicUsize::new(0),
            concurrent_goal: AtomicUsize::new(0),
            assist_goal: AtomicUsize::new(0),
            assist_expected: AtomicUsize::new(0),
            held_runway: AtomicUsize::new(0),
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

    /// The goal after a cycle that left `live` bytes, when `allocated` bytes
    /// were counted since the previous cycle left `last_live`.
    pub fn goal_after(&self, live: usize, last_live: usize, allocated: usize) -> usize {
        let Some(pct) = self.gc_percent else { return usize::MAX };
        let pct = pct as usize;
        let pct = if growing(live, last_live, allocated) { pct.saturating_mul(GROWTH_BOOST) / 100 } else { pct };
        live.saturating_add((live / 100).saturating_mul(pct)).max(MIN_HEAP)
    }

    /// With concurrent cycles, after a cycle left `live` bytes, set `goal` and
    /// the trigger `trigger` (the goal, or later while surplus free pages are
    /// held; see `plan`): the next cycle is asked for `CONCURRENT_TRIGGER_PCT`
    /// of the way from the live heap to that trigger, if that is sooner, and
    /// may run on to `runway_after` (`start_concurrent`). (Counting to the
    /// plain goal instead, as this did first, made the GCBench tree run 25-30
    /// concurrent cycles where stop-the-world ones were 9-10, and took 1.5
    /// times as long.)
    pub fn trigger_early(&self, live: usize, goal: usize, trigger: usize) {
        if goal == usize::MAX || goal <= live {
            return;
        }
        let to = trigger.max(goal);
        self.concurrent_runway.store(runway_after(goal, to), Relaxed);
        self.concurrent_goal.store(to, Relaxed);
        let early = live + (to - live) / 100 * CONCURRENT_TRIGGER_PCT;
        self.next_gc.fetch_min(early, Relaxed);
    }

    /// A concurrent cycle was asked for: while it runs, allocation goes on,
    /// on the fast path (`gc_wanted` cleared), up to the runway the last
    /// cycle set; past that, allocating threads wait for the cycle. Its end
    /// sets the next trigger as usual.
    ///
    /// The mark should end by the goal the last cycle set (or, with none,
    /// the trigger the cycle found), having scanned about what that cycle
    /// left live (or, with none, the heap now): `assist_work` paces the
    /// program's share by these.
    pub fn start_concurrent(&self) {
        // Once: a cycle asked for before the trigger (GCPIN_STRESS) or after
        // a stop-the-world one goes on to twice the trigger it found.
        let found = self.next_gc.load(Relaxed);
        let runway = match self.concurrent_runway.swap(0, Relaxed) {
            0 => found.saturating_mul(2),
            r => r,
        };
        let goal = match self.concurrent_goal.swap(0, Relaxed) {
            0 => found,
            g => g,
        };
        let expected = match self.last_live.load(Relaxed) {
            0 => self.heap_live.load(Relaxed),
            l => l,
        };
        self.assist_goal.store(goal, Relaxed);
        self.assist_expected.store(expected, Relaxed);
        self.next_gc.store(runway, Relaxed);
        self.gc_wanted.store(false, Relaxed);
    }

    /// How many bytes a thread that reserved `bytes` for allocation owes the
    /// scan in the running concurrent cycle, `scanned` bytes having been
    /// scanned so far [Go: gcController.assistWorkPerByte]: its part of
    /// what is left to scan, spread over what is left to allocate before the
    /// goal, at most `ASSIST_MAX_BYTES`. Past the goal, or past the expected
    /// work, the floors (`ASSIST_MIN_DISTANCE`, a sixteenth of the expected
    /// work) keep the share finite and non-zero.
    pub fn assist_work(&self, bytes: usize, scanned: usize) -> usize {
        let goal = self.assist_goal.load(Relaxed);
        let expected = self.assist_expected.load(Relaxed);
        let left = expected.saturating_sub(scanned).max(expected / 16);
        let distance = goal.saturating_sub(self.heap_live.load(Relaxed)).max(goal / 64).max(ASSIST_MIN_DISTANCE);
        let work = bytes as u128 * left as u128 / distance as u128;
        work.min(ASSIST_MAX_BYTES as u128) as usize
    }

    /// The running concurrent cycle's marking does not converge: from now
    /// on allocation waits for the cycle's end (the trigger is brought down
    /// to the heap now, so the next refill crosses it), as at the runway.
    /// `release_hold` puts the runway back. Only the cycle's thread calls
    /// the two.
    pub fn hold_allocation(&self) {
        let runway = self.next_gc.load(Relaxed);
        self.held_runway.store(runway, Relaxed);
        self.next_gc.store(runway.min(self.heap_live.load(Relaxed)), SeqCst);
    }

    /// Ends `hold_allocation`: the running cycle's runway again, and the
    /// fast path for allocation below it.
    pub fn release_hold(&self) {
        self.next_gc.store(self.held_runway.load(Relaxed), SeqCst);
        self.gc_wanted.store(false, SeqCst);
    }

    /// A concurrent cycle asked for was not run (collection disabled): the
    /// trigger stays crossed, so the next allocation asks again.
    pub fn resume_after_skipped_cycle(&self) {
        self.gc_wanted.store(true, Relaxed);
    }

    /// The plan after a cycle that ended as `c` says (nothing is stored).
    pub fn plan(&self, c: &CycleEnd) -> Plan {
        let last_live = self.last_live.load(Relaxed);
        let allocated = self.heap_live.load(Relaxed).saturating_sub(last_live);
        let goal = self.goal_after(c.live, last_live, allocated);
        let retain = retain_after(c.in_use, goal);
        let budget = release_budget(c.release, c.since_release_ns);
        let committed = c.in_use.saturating_add(c.free_held);
        let released = committed.saturating_sub(retain).min(budget).min(c.free_held);
        let kept_free = c.free_held - released;
        let trigger = if goal != usize::MAX && committed - released > retain {
            goal.max(c.live.saturating_add(kept_free))
        } else {
            goal
        };
        Plan { goal, trigger, retain, budget }
    }

    /// Starts the next cycle's count from `c.live` bytes and sets its
    /// trigger; returns the plan.
    pub fn end_cycle(&self, c: &CycleEnd) -> Plan {
        let plan = self.plan(c);
        self.heap_live.store(c.live, Relaxed);
        self.last_live.store(c.live, Relaxed);
        self.next_gc.store(plan.trigger, Relaxed);
        self.gc_wanted.store(false, Relaxed);
        plan
    }
}

/// How far a concurrent cycle lets the heap grow before allocation waits for
/// it, after the last cycle set `goal` and the trigger `trigger >= goal`:
/// twice the goal, or the trigger if that is farther (surplus pages held).
/// Never past the pages held when they reach beyond twice the goal: a
/// runway one goal past the trigger let a cycle that fell behind grow the
/// held pages, which raised the next trigger and runway, cycle after cycle.
pub fn runway_after(goal: usize, trigger: usize) -> usize {
    goal.saturating_mul(2).max(trigger)
}

/// Whether a cycle that left `live` bytes found the heap growing: of the
/// `allocated` bytes counted since the previous cycle left `last_live`, at
/// least `GROWING_SURVIVAL` are still live.
pub fn growing(live: usize, last_live: usize, allocated: usize) -> bool {
    let grew = live.saturating_sub(last_live) as u128;
    allocated > 0 && grew * 1024 >= allocated as u128 * GROWING_SURVIVAL as u128
}

/// How many bytes of committed memory to keep after a cycle that left
/// `in_use` bytes of spans and set the goal `goal`: what the heap may grow
/// to before the next cycle, plus an eighth.
pub fn retain_after(in_use: usize, goal: usize) -> usize {
    let target = if goal == usize::MAX { in_use } else { goal.max(in_use) };
    target.saturating_add(target / 8).max(MIN_HEAP)
}

/// The most a cycle may release, `elapsed_ns` after the previous one.
pub fn release_budget(release: Release, elapsed_ns: u64) -> usize {
    match release {
        Release::All => usize::MAX,
        Release::Kept => 0,
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
    fn a_concurrent_cycle_is_asked_for_ahead_of_the_trigger_and_runs_on_to_twice_the_goal_or_the_trigger() {
        // No surplus pages: the trigger is the goal.
        let p = Pacer::new(Some(100));
        p.next_gc.store(200 << 20, Relaxed);
        p.trigger_early(100 << 20, 200 << 20, 200 << 20);
        let trigger = p.next_gc.load(Relaxed);
        assert_eq!(trigger, (100 << 20) + (100 << 20) / 100 * CONCURRENT_TRIGGER_PCT);
        p.note_allocated(trigger);
        assert!(p.gc_wanted.load(Relaxed));
        p.start_concurrent();
        assert!(!p.gc_wanted.load(Relaxed), "the cycle runs while allocation goes on");
        assert_eq!(p.next_gc.load(Relaxed), 400 << 20, "twice the goal");
        // Surplus pages held: the trigger above the goal counts, as it does
        // for a stop-the-world cycle.
        let p = Pacer::new(Some(100));
        p.next_gc.store(300 << 20, Relaxed);
        p.trigger_early(100 << 20, 200 << 20, 300 << 20);
        assert_eq!(p.next_gc.load(Relaxed), (100 << 20) + (200 << 20) / 100 * CONCURRENT_TRIGGER_PCT);
        p.start_concurrent();
        assert_eq!(p.next_gc.load(Relaxed), 400 << 20, "twice the goal, past the trigger");
        // Many pages held: the runway ends where they do.
        let p = Pacer::new(Some(100));
        p.next_gc.store(170 << 20, Relaxed);
        p.trigger_early(10 << 20, 20 << 20, 170 << 20);
        assert_eq!(p.next_gc.load(Relaxed), (10 << 20) + (160 << 20) / 100 * CONCURRENT_TRIGGER_PCT);
        p.start_concurrent();
        assert_eq!(p.next_gc.load(Relaxed), 170 << 20, "the trigger: no growth past the held pages");
        let off = Pacer::new(None);
        off.trigger_early(1 << 20, usize::MAX, usize::MAX);
        assert_eq!(off.next_gc.load(Relaxed), usize::MAX, "no trigger when collection is off");
    }

    const MIB: usize = 1 << 20;

    /// The end of a cycle that left `live` bytes in `in_use` bytes of spans
    /// and holds `free_held` more, released at the pace, `ms` after the last.
    fn end(live: usize, in_use: usize, free_held: usize, ms: u64) -> CycleEnd {
        CycleEnd { live, in_use, free_held, release: Release::Paced, since_release_ns: ms * 1_000_000 }
    }

    #[test]
    fn paced_release_grows_with_the_time_between_cycles() {
        assert_eq!(release_budget(Release::Paced, 0), 0);
        // 5 ms between cycles: 0.32 MiB at 64 MiB/s.
        assert_eq!(release_budget(Release::Paced, 5_000_000), 64 * MIB / 200);
        assert_eq!(release_budget(Release::Paced, 1_000_000_000), 64 * MIB);
        // A program that collected last long ago may release everything.
        assert_eq!(release_budget(Release::Paced, u64::MAX), (u64::MAX as u128 * (64 << 20) / 1_000_000_000) as usize);
        assert_eq!(release_budget(Release::All, 0), usize::MAX);
        assert_eq!(release_budget(Release::Kept, u64::MAX), 0, "huge pages: nothing between gc_collect calls");
    }

    #[test]
    fn the_trigger_is_crossed_at_the_goal_and_reset_by_the_cycle() {
        let p = Pacer::new(Some(100));
        assert_eq!(p.next_gc.load(Relaxed), MIN_HEAP, "the first goal is the minimum heap");
        p.note_allocated(MIN_HEAP - 16);
        assert!(!p.gc_wanted.load(Relaxed) && !p.trigger_reached());
        p.note_allocated(16);
        assert!(p.gc_wanted.load(Relaxed) && p.trigger_reached());
        // 4 MiB allocated, 1 MiB survived: not growing; 100% over the live
        // heap, but never below the minimum heap.
        let plan = p.end_cycle(&end(MIB, MIB, 3 * MIB, 0));
        assert_eq!((plan.goal, plan.trigger), (MIN_HEAP, MIN_HEAP));
        assert!(!p.gc_wanted.load(Relaxed));
        assert_eq!(p.heap_live.load(Relaxed), MIB);
        // 40 MiB more allocated, 10 MiB live: 100% of whole hundredths.
        p.note_allocated(40 * MIB);
        let plan = p.end_cycle(&end(10 * MIB, 10 * MIB, 0, 0));
        assert_eq!(plan.goal, 10 * MIB + 10 * MIB / 100 * 100);
        assert_eq!(p.next_gc.load(Relaxed), plan.trigger);
        assert_eq!(plan.trigger, plan.goal, "no surplus pages: the trigger is the goal");
        p.note_freed(1 << 30);
        assert_eq!(p.heap_live.load(Relaxed), 0, "an explicit free never goes below zero");
        assert_eq!(Pacer::new(Some(50)).goal_after(100 * MIB, 0, 0), 150 * MIB);
        assert_eq!(Pacer::new(Some(u64::MAX)).goal_after(100 * MIB, 0, 0), usize::MAX, "saturates");
        let off = Pacer::new(None);
        off.note_allocated(1 << 40);
        assert!(!off.gc_wanted.load(Relaxed), "GCPIN_GC_PERCENT=off never triggers");
        let plan = off.end_cycle(&end(MIB << 10, MIB << 10, 1 << 40, 0));
        assert_eq!((plan.goal, plan.trigger), (usize::MAX, usize::MAX));
    }

    #[test]
    fn a_cycle_that_frees_almost_nothing_boosts_the_next_goal() {
        let p = Pacer::new(Some(50));
        // The first cycle: all of the 4 MiB allocated survived.
        p.note_allocated(4 * MIB);
        let plan = p.end_cycle(&end(4 * MIB, 4 * MIB, 0, 0));
        assert_eq!(plan.goal, 4 * MIB + 4 * MIB / 100 * (50 * GROWTH_BOOST / 100));
        // 8 MiB allocated, exactly 7/8 of it survived: still growing.
        p.note_allocated(8 * MIB);
        let plan = p.end_cycle(&end(11 * MIB, 11 * MIB, 0, 0));
        assert_eq!(plan.goal, 11 * MIB + 11 * MIB / 100 * (50 * GROWTH_BOOST / 100));
        // 8 MiB allocated, a little less than 7/8 survived: the plain goal.
        p.note_allocated(8 * MIB);
        let plan = p.end_cycle(&end(18 * MIB - 16, 18 * MIB, 0, 0));
        assert_eq!(plan.goal, (18 * MIB - 16) + (18 * MIB - 16) / 100 * 50);
        // A cycle right after another (gc_collect twice) found nothing to judge.
        let plan = p.end_cycle(&end(18 * MIB, 18 * MIB, 0, 0));
        assert_eq!(plan.goal, 18 * MIB + 18 * MIB / 100 * 50);
        assert!(growing(8, 0, 8) && !growing(8, 8, 0) && !growing(6, 0, 8));
    }

    #[test]
    fn surplus_pages_are_used_before_the_next_cycle() {
        let p = Pacer::new(Some(100));
        let goal = 8 * MIB + 8 * MIB / 100 * 100;
        // A 128 MiB tree was dropped: 8 MiB live, 120 MiB of free pages held.
        p.note_allocated(136 * MIB);
        let plan = p.end_cycle(&end(8 * MIB, 8 * MIB, 120 * MIB, 0));
        assert_eq!((plan.goal, plan.retain), (goal, goal + goal / 8));
        assert_eq!(plan.trigger, 128 * MIB, "every free page held is used first");
        // Half a second later 32 MiB of them go back: the trigger follows.
        p.note_allocated(120 * MIB);
        let plan = p.end_cycle(&end(8 * MIB, 8 * MIB, 120 * MIB, 500));
        assert_eq!(plan.budget, 32 * MIB);
        assert_eq!(plan.trigger, 96 * MIB);
        // After gc_collect everything above what the goal needs goes back,
        // and the trigger is the goal again (no surplus is left).
        let all = CycleEnd { release: Release::All, ..end(8 * MIB, 8 * MIB, 88 * MIB, 0) };
        let plan = p.end_cycle(&all);
        assert_eq!((plan.goal, plan.trigger), (goal, goal));
        // Free pages within what the goal needs are no surplus: 40 MiB live
        // in 44 MiB of spans with 30 MiB free, under the 90 MiB retained.
        p.note_allocated(80 * MIB);
        let plan = p.end_cycle(&end(40 * MIB, 44 * MIB, 30 * MIB, 0));
        assert_eq!(plan.goal, 40 * MIB + 40 * MIB / 100 * 100);
        assert!(plan.retain > 74 * MIB);
        assert_eq!(plan.trigger, plan.goal);
        // One page more than is retained, and the surplus rule applies.
        let plan = p.plan(&end(40 * MIB, 44 * MIB, plan.retain - 44 * MIB + 8192, 0));
        assert_eq!(plan.trigger, plan.retain - 4 * MIB + 8192);
    }

    #[test]
    fn retained_memory_covers_the_growth_to_the_next_goal() {
        assert_eq!(retain_after(8 << 20, 16 << 20), 18 << 20);
        assert_eq!(retain_after(32 << 20, 16 << 20), 36 << 20, "at least what is in use");
        assert_eq!(retain_after(1 << 20, usize::MAX), MIN_HEAP, "GC off: what is in use, at least MIN_HEAP");
    }

    #[test]
    fn an_assist_pays_for_its_bytes_with_the_work_left_over_the_heap_left() {
        let p = Pacer::new(Some(100));
        p.assist_goal.store(100 * MIB, Relaxed);
        p.assist_expected.store(50 * MIB, Relaxed);
        p.heap_live.store(60 * MIB, Relaxed);
        // 40 MiB to scan over 40 MiB to allocate: a byte a byte.
        assert_eq!(p.assist_work(64 << 10, 10 * MIB), 64 << 10);
        // Half the work left: half as much.
        assert_eq!(p.assist_work(64 << 10, 30 * MIB), 32 << 10);
        // Past the expected work, a sixteenth of it counts as left.
        assert_eq!(p.assist_work(64 << 10, 80 * MIB), (64 << 10) * (50 * MIB / 16) / (40 * MIB));
        // Past the goal the distance has a floor, and one assist a ceiling.
        p.heap_live.store(120 * MIB, Relaxed);
        assert_eq!(p.assist_work(64 << 10, 10 * MIB), ASSIST_MAX_BYTES);
        assert_eq!(p.assist_work(16, 10 * MIB), 16 * 40 * MIB / (100 * MIB / 64));
    }

    #[test]
    fn a_cycle_that_holds_allocation_brings_the_trigger_down_and_back() {
        let p = Pacer::new(Some(100));
        p.trigger_early(100 * MIB, 200 * MIB, 200 * MIB);
        p.note_allocated(180 * MIB);
        assert!(p.gc_wanted.load(Relaxed));
        p.start_concurrent();
        let runway = p.next_gc.load(Relaxed);
        assert_eq!(runway, 400 * MIB);
        assert_eq!(p.assist_goal.load(Relaxed), 200 * MIB);
        assert!(!p.gc_wanted.load(Relaxed));
        p.hold_allocation();
        assert_eq!(p.next_gc.load(Relaxed), 180 * MIB);
        p.note_allocated(64 << 10);
        assert!(p.gc_wanted.load(Relaxed), "the next refill crosses the trigger");
        p.release_hold();
        assert_eq!(p.next_gc.load(Relaxed), runway);
        assert!(!p.gc_wanted.load(Relaxed) && !p.trigger_reached());
    }
}
