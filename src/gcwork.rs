//! The work the marker threads share [Go: mgcwork.go's work.full list and
//! gcMarkDone's termination, written afresh].
//!
//! Each marker thread keeps its grey objects on its own mark stack (`mark`)
//! and reaches this pool only to balance the load: a marker that runs out of
//! work waits here (`take`), and a busy marker that sees someone waiting
//! (`hungry`) moves the older half of its stack, at most `PACKET_ENTRIES`
//! entries, into a packet (`share`). The older entries are the ones pushed
//! first — a structure's upper parts, whose subtrees are the largest — so
//! one packet usually keeps its taker busy for a long time.
//!
//! Packets are a fixed reservation (the pool runs while the world is stopped,
//! when `malloc` may be held by a stopped thread); when all are in use a
//! marker keeps its work, it only balances worse.
//!
//! Mark assists [Go: gcAssistAlloc]: in a phase opened to them (`begin`
//! with `open`, the concurrent mark), a program thread that allocates may
//! take a packet (`take_as_assist`), mark a bounded share of it on a
//! marker of its own, and give back what is left (`share`) before it leaves
//! (`leave_as_assist`). An assist never waits here: finding no packet, it
//! asks the busy markers for one (`hungry`) and goes on allocating.
//!
//! Termination: a marker is idle when it waits in `take`. When the last one
//! goes idle while no assist holds work, no packet is left and no one has
//! work, and none can get any: work comes only from a busy marker or an
//! assist that holds some. Then every `take` (and `take_as_assist`)
//! returns false until the next `begin`.
//!
//! Invariants (under the lock): `nfull + nfree == PACKETS`; `idle <=
//! markers`; `done` only when `idle == markers`, `assisting == 0` and
//! `nfull == 0`; `assisting > 0` only while `open` and not `done`;
//! `hungry` mirrors `idle - nfull` (saturating), plus one while an assist
//! wants a packet and none is full, written under the lock, read without it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};

/// The sum of every pool's `hungry`: one load of a static tells a marker's
/// loop that no one waits (nearly always), without touching its pool.
static HUNGRY_ANYWHERE: AtomicUsize = AtomicUsize::new(0);

/// Whether a marker of any pool waits for work (a hint: then ask the pool).
#[inline(always)]
pub fn someone_hungry() -> bool {
    HUNGRY_ANYWHERE.load(Relaxed) != 0
}
use std::sync::{Condvar, Mutex};

use crate::os;

/// Entries (address, length) a packet holds.
pub const PACKET_ENTRIES: usize = 256;
/// Packets in the pool: 1024 × 4 KiB of address space, touched on demand.
const PACKETS: usize = 1024;
/// Full packets beyond this many are a surplus the busy markers take back.
const SURPLUS_PACKETS: usize = PACKETS / 4;

#[repr(C)]
struct Packet {
    len: usize,
    entries: [(usize, usize); PACKET_ENTRIES],
}

struct PoolState {
    /// Indices of the packets holding work, and of the free ones.
    full: [u16; PACKETS],
    nfull: usize,
    free: [u16; PACKETS],
    nfree: usize,
    /// Markers taking part in this cycle, and how many of them wait.
    markers: usize,
    idle: usize,
    done: bool,
    /// Whether program threads may assist in this phase, how many hold
    /// work now, whether one found no packet since a packet was last
    /// taken, and whether an assist's mark stack overflowed.
    open: bool,
    assisting: usize,
    assist_wants: bool,
    assist_overflowed: bool,
}

pub struct WorkPool {
    packets: *mut Packet,
    state: Mutex<PoolState>,
    wake: Condvar,
    /// Markers waiting for work beyond the packets there are for them (and
    /// one more while there is a surplus).
    hungry: AtomicUsize,
    /// More than `SURPLUS_PACKETS` packets are full.
    surplus: AtomicBool,
    /// `open` of the state, for a look without the lock.
    open_hint: AtomicBool,
    /// Bytes scanned in this phase, as the markers and assists report them
    /// (`add_scanned`): the assists' pace reads it.
    scanned: AtomicUsize,
}

// SAFETY: the packets are a private mapping; a packet is touched only by the
// marker that holds its index, which it got from the state under the lock.
unsafe impl Sync for WorkPool {}
// SAFETY: as above.
unsafe impl Send for WorkPool {}

impl WorkPool {
    pub fn new() -> WorkPool {
        let bytes = PACKETS * std::mem::size_of::<Packet>();
        let packets = os::reserve(bytes).unwrap_or_else(|| os::throw("cannot reserve the mark work packets")) as *mut _;
        WorkPool {
            packets,
            state: Mutex::new(PoolState {
                full: [0; PACKETS],
                nfull: 0,
                free: [0; PACKETS],
                nfree: 0,
                markers: 0,
                idle: 0,
                done: false,
                open: false,
                assisting: 0,
                assist_wants: false,
                assist_overflowed: false,
            }),
            wake: Condvar::new(),
            hungry: AtomicUsize::new(0),
            surplus: AtomicBool::new(false),
            open_hint: AtomicBool::new(false),
            scanned: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Readies the pool for a marking phase of `markers` threads, open to
    /// assists if `open`. No marker of the previous phase may still be
    /// using it (and no assist is: they hold work only before `done`).
    pub fn begin(&self, markers: usize, open: bool) {
        let mut st = self.lock();
        st.open = open;
        st.assisting = 0;
        st.assist_wants = false;
        self.open_hint.store(open, Relaxed);
        for i in 0..PACKETS {
            st.free[i] = i as u16;
        }
        st.nfree = PACKETS;
        st.nfull = 0;
        st.markers = markers;
        st.idle = 0;
        st.done = false;
        self.set_hungry(&st);
    }

    /// Updates `hungry` (and the sum of all pools') from the state. Under the lock.
    fn set_hungry(&self, st: &PoolState) {
        let surplus = !st.done && st.nfull > SURPLUS_PACKETS;
        self.surplus.store(surplus, Relaxed);
        let now = if st.done {
            0
        } else {
            st.idle.saturating_sub(st.nfull) + (st.assist_wants && st.nfull == 0) as usize + surplus as usize
        };
        let before = self.hungry.swap(now, Relaxed);
        if now > before {
            HUNGRY_ANYWHERE.fetch_add(now - before, Relaxed);
        } else if before > now {
            HUNGRY_ANYWHERE.fetch_sub(before - now, Relaxed);
        }
    }

    /// Whether a marker waits for work: a busy marker should `share`.
    #[inline]
    pub fn hungry(&self) -> bool {
        self.hungry.load(Relaxed) != 0
    }

    /// Whether more than `SURPLUS_PACKETS` packets wait (assists gave back
    /// more than they took): a busy marker should take one (`take_surplus`).
    #[inline]
    pub fn surplus(&self) -> bool {
        self.surplus.load(Relaxed)
    }

    /// A busy marker takes a packet while there is a surplus, without
    /// going idle; false if there is none any more.
    pub fn take_surplus(&self, f: impl FnOnce(&[(usize, usize)])) -> bool {
        let st = self.lock();
        if st.nfull <= SURPLUS_PACKETS {
            return false;
        }
        self.hand_over(st, f);
        true
    }

    /// Takes the last full packet (there is one) off the list, hands its
    /// entries to `f` outside the lock, and frees it.
    fn hand_over(&self, mut st: std::sync::MutexGuard<'_, PoolState>, f: impl FnOnce(&[(usize, usize)])) {
        st.nfull -= 1;
        let i = st.full[st.nfull];
        self.set_hungry(&st);
        drop(st);
        // SAFETY: we took index i off the full list: the packet is ours
        // until we put it back on the free list.
        let p = unsafe { &*self.packets.add(i as usize) };
        f(&p.entries[..p.len]);
        let mut st = self.lock();
        let n = st.nfree;
        st.free[n] = i;
        st.nfree += 1;
    }

    /// Offers `entries` (at most `PACKET_ENTRIES`) to the waiting markers.
    /// False if no packet was free: the caller keeps them.
    pub fn share(&self, entries: &[(usize, usize)]) -> bool {
        debug_assert!(!entries.is_empty() && entries.len() <= PACKET_ENTRIES);
        let mut st = self.lock();
        if st.nfree == 0 {
            return false;
        }
        st.nfree -= 1;
        let i = st.free[st.nfree];
        // SAFETY: i < PACKETS indexes the reservation; the packet was free,
        // so no other marker touches it until we publish it below.
        unsafe {
            let p = &mut *self.packets.add(i as usize);
            p.len = entries.len();
            p.entries[..entries.len()].copy_from_slice(entries);
        }
        let n = st.nfull;
        st.full[n] = i;
        st.nfull += 1;
        self.set_hungry(&st);
        drop(st);
        self.wake.notify_one();
        true
    }

    /// Waits for a packet and hands its entries to `f`; false once marking
    /// is over (every marker waits and no packet is left).
    pub fn take(&self, f: impl FnOnce(&[(usize, usize)])) -> bool {
        let mut st = self.lock();
        st.idle += 1;
        loop {
            if st.nfull > 0 {
                st.idle -= 1;
                self.hand_over(st, f);
                return true;
            }
            if st.idle == st.markers && st.assisting == 0 {
                st.done = true;
                st.open = false;
                self.open_hint.store(false, Relaxed);
            }
            if st.done {
                self.set_hungry(&st);
                drop(st);
                self.wake.notify_all();
                return false;
            }
            self.set_hungry(&st);
            st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl WorkPool {
    /// Whether the phase may take assists (a hint, without the lock).
    #[inline]
    pub fn open_to_assists(&self) -> bool {
        self.open_hint.load(Relaxed)
    }

    /// Counts `bytes` scanned by a marker or an assist of this phase.
    pub fn add_scanned(&self, bytes: usize) {
        self.scanned.fetch_add(bytes, Relaxed);
    }

    /// Bytes scanned since the last `reset_scanned`.
    pub fn scanned(&self) -> usize {
        self.scanned.load(Relaxed)
    }

    /// Starts the count of `scanned` over (a concurrent cycle's start).
    pub fn reset_scanned(&self) {
        self.scanned.store(0, Relaxed);
    }

    /// An assist takes a packet, if the phase is open to assists and one is
    /// full, and hands its entries to `f`; it then holds work (the phase
    /// cannot end) until `leave_as_assist`, which it must call once after
    /// the first `take_as_assist` that returned true (`joined` false), and
    /// not otherwise. Never waits: with no packet full it asks the busy
    /// markers for one (`hungry`) and returns false.
    pub fn take_as_assist(&self, joined: bool, f: impl FnOnce(&[(usize, usize)])) -> bool {
        let mut st = self.lock();
        if !st.open || st.done {
            return false;
        }
        if st.nfull == 0 {
            if !st.assist_wants {
                st.assist_wants = true;
                self.set_hungry(&st);
            }
            return false;
        }
        st.assist_wants = false;
        if !joined {
            st.assisting += 1;
        }
        self.hand_over(st, f);
        true
    }

    /// An assist that joined (`take_as_assist`) and gave back all its work
    /// (`share`) leaves; `overflowed` says whether its mark stack dropped a
    /// push (the phase's markers then recover it, `take_assist_overflow`).
    pub fn leave_as_assist(&self, overflowed: bool) {
        let mut st = self.lock();
        debug_assert!(st.assisting > 0);
        st.assisting -= 1;
        st.assist_overflowed |= overflowed;
        drop(st);
        // An idle marker may now find the phase over.
        self.wake.notify_all();
    }

    /// Whether an assist of the phase just ended overflowed (and forgets it).
    pub fn take_assist_overflow(&self) -> bool {
        std::mem::take(&mut self.lock().assist_overflowed)
    }
}

impl Default for WorkPool {
    fn default() -> WorkPool {
        WorkPool::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_marker_ends_at_once_and_shared_work_reaches_a_taker() {
        let pool = WorkPool::new();
        pool.begin(1, false);
        assert!(!pool.take(|_| panic!("no work was shared")));

        pool.begin(2, false);
        let got = std::thread::scope(|s| {
            let taker = s.spawn(|| {
                let mut got = Vec::new();
                while pool.take(|e| got.extend_from_slice(e)) {}
                got
            });
            // Wait until the taker asks, then give it work twice.
            for round in 0..2 {
                while !pool.hungry() {
                    std::thread::yield_now();
                }
                assert!(pool.share(&[(round, 1), (round, 2)]));
            }
            while !pool.hungry() {
                std::thread::yield_now();
            }
            // This marker runs out too: both idle, marking ends for both.
            assert!(!pool.take(|_| panic!("the packets were all taken")));
            taker.join().unwrap()
        });
        assert_eq!(got, vec![(0, 1), (0, 2), (1, 1), (1, 2)]);
    }

    #[test]
    fn sharing_stops_when_the_packets_run_out() {
        let pool = WorkPool::new();
        pool.begin(2, false);
        for _ in 0..PACKETS {
            assert!(pool.share(&[(1, 1)]));
        }
        assert!(!pool.share(&[(1, 1)]), "more packets than the pool has");
        // A taker empties one and frees it for the next share.
        assert!(pool.take(|e| assert_eq!(e, &[(1, 1)])));
        assert!(pool.share(&[(2, 2)]));
    }

    #[test]
    fn an_assist_never_waits_and_the_phase_waits_for_its_work() {
        let pool = WorkPool::new();
        pool.begin(1, true);
        assert!(pool.open_to_assists());
        // Nothing to take: the assist asks the busy marker for a packet.
        assert!(!pool.take_as_assist(false, |_| panic!("no work was shared")));
        assert!(pool.hungry(), "an assist that found no packet asks for one");
        assert!(pool.share(&[(1, 1)]));
        assert!(!pool.hungry());
        assert!(pool.take_as_assist(false, |e| assert_eq!(e, &[(1, 1)])));
        // The marker runs out while the assist holds work: it waits for the
        // assist, and gets what it gives back before leaving.
        let got = std::thread::scope(|s| {
            let marker = s.spawn(|| {
                let mut got = Vec::new();
                while pool.take(|e| got.extend_from_slice(e)) {}
                got
            });
            while !pool.hungry() {
                std::thread::yield_now();
            }
            assert!(pool.share(&[(2, 2)]));
            pool.leave_as_assist(true);
            marker.join().unwrap()
        });
        assert_eq!(got, vec![(2, 2)]);
        // The phase is over: closed to assists, its overflow reported once.
        assert!(!pool.open_to_assists());
        assert!(!pool.take_as_assist(false, |_| panic!("the phase is over")));
        assert!(pool.take_assist_overflow());
        assert!(!pool.take_assist_overflow());
        // A phase not opened to assists gives them nothing and asks for nothing.
        pool.begin(2, false);
        assert!(pool.share(&[(3, 3)]));
        assert!(!pool.take_as_assist(false, |_| panic!("closed to assists")));
    }

    #[test]
    fn a_surplus_of_packets_is_taken_back_by_a_busy_marker() {
        let pool = WorkPool::new();
        pool.begin(1, true);
        for _ in 0..SURPLUS_PACKETS {
            assert!(pool.share(&[(1, 1)]));
        }
        assert!(!pool.surplus() && !pool.hungry());
        assert!(!pool.take_surplus(|_| panic!("no surplus yet")));
        assert!(pool.share(&[(2, 2)]));
        assert!(pool.surplus() && pool.hungry(), "the busy marker is asked to take one");
        assert!(pool.take_surplus(|e| assert_eq!(e, &[(2, 2)])));
        assert!(!pool.surplus() && !pool.hungry());
    }
}
