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
//! Termination: a marker is idle when it waits in `take`. When the last one
//! goes idle no packet is left and no marker has work, and none can get any:
//! work comes only from a busy marker. Then every `take` returns false.
//!
//! Invariants (under the lock): `nfull + nfree == PACKETS`; `idle <=
//! markers`; `done` only when `idle == markers` and `nfull == 0`; `hungry`
//! mirrors `idle - nfull` (saturating), written under the lock, read without it.

use std::sync::atomic::{AtomicUsize, Ordering::*};

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
}

pub struct WorkPool {
    packets: *mut Packet,
    state: Mutex<PoolState>,
    wake: Condvar,
    /// Markers waiting for work beyond the packets there are for them.
    hungry: AtomicUsize,
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
            }),
            wake: Condvar::new(),
            hungry: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Readies the pool for a marking phase of `markers` threads. No marker
    /// of the previous phase may still be using it.
    pub fn begin(&self, markers: usize) {
        let mut st = self.lock();
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
        let now = if st.done { 0 } else { st.idle.saturating_sub(st.nfull) };
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
                st.nfull -= 1;
                st.idle -= 1;
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
                return true;
            }
            if st.idle == st.markers {
                st.done = true;
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
        pool.begin(1);
        assert!(!pool.take(|_| panic!("no work was shared")));

        pool.begin(2);
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
        pool.begin(2);
        for _ in 0..PACKETS {
            assert!(pool.share(&[(1, 1)]));
        }
        assert!(!pool.share(&[(1, 1)]), "more packets than the pool has");
        // A taker empties one and frees it for the next share.
        assert!(pool.take(|e| assert_eq!(e, &[(1, 1)])));
        assert!(pool.share(&[(2, 2)]));
    }
}
