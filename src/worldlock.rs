//! The world lock: a fair lock around the registry of threads [Go: worldsema].
//!
//! A FIFO ticket lock. Fair on purpose: a thread looping on `gc_collect` must
//! not starve another that waits to collect (or to register, unregister or
//! fork). Waiters sleep on a futex, so a thread that waits for the lock (outside
//! the runtime) can be stopped while it waits.
//!
//! The waiter for ticket `t` sleeps on `slots[t % WAIT_SLOTS]`, and a release
//! wakes only the slot of the next ticket: with one futex word for all, every
//! release woke every waiter, and 4,000 threads exiting at once (each
//! unregisters under this lock) took 55 s instead of milliseconds.
//!
//! A guard may carry a flag of its holder's (`lock`'s argument), set from before
//! the ticket is taken until the guard is dropped: what tells the holder's own
//! signal handlers that the thread holds, or waits for, the lock.

use std::cell::UnsafeCell;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicU32, Ordering::*};

use crate::os;

pub struct WorldLock<T> {
    next: AtomicU32,
    serving: AtomicU32,
    slots: [AtomicU32; WAIT_SLOTS],
    value: UnsafeCell<T>,
}

/// Futex words of the lock; waiters beyond this many share slots (and are
/// woken a few at a time).
const WAIT_SLOTS: usize = 1024;

// SAFETY: the value inside is only reached through a WorldGuard, of which the
// ticket discipline allows one at a time.
unsafe impl<T: Send> Sync for WorldLock<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for WorldLock<T> {}

pub struct WorldGuard<'a, T> {
    lock: &'a WorldLock<T>,
    /// The holder's flag (or null), cleared when the guard is dropped.
    flag: *const AtomicBool,
}

impl<T> WorldLock<T> {
    pub fn new(value: T) -> WorldLock<T> {
        WorldLock {
            next: AtomicU32::new(0),
            serving: AtomicU32::new(0),
            slots: [const { AtomicU32::new(0) }; WAIT_SLOTS],
            value: UnsafeCell::new(value),
        }
    }

    /// Waits for our turn. `flag` (null for none) is set until the guard is
    /// dropped; it must outlive the guard.
    pub fn lock(&self, flag: *const AtomicBool) -> WorldGuard<'_, T> {
        if !flag.is_null() {
            // SAFETY: per the contract the flag is live; compiler-ordered
            // before the ticket for the holder's own signal handlers, its only
            // other readers.
            unsafe { (*flag).store(true, Relaxed) };
            compiler_fence(SeqCst);
        }
        let ticket = self.next.fetch_add(1, SeqCst);
        let slot = &self.slots[ticket as usize % WAIT_SLOTS];
        loop {
            // Read the slot before `serving`: a release bumps `serving`, then
            // the slot, so a release we miss here changes the slot and the
            // futex wait returns at once.
            let seen = slot.load(SeqCst);
            if self.serving.load(SeqCst) == ticket {
                return WorldGuard { lock: self, flag };
            }
            os::futex_wait(slot, seen, None);
        }
    }

    /// In a forked child: forget the tickets of threads that do not exist there
    /// (they were waiting in the parent). Only the forking thread runs.
    pub fn forget_waiters(&self) {
        self.next.store(self.serving.load(Acquire), Release);
    }
}

impl<T> std::ops::Deref for WorldGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: holding the guard, we are the only one using the value.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> std::ops::DerefMut for WorldGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for WorldGuard<'_, T> {
    fn drop(&mut self) {
        let next = self.lock.serving.fetch_add(1, SeqCst).wrapping_add(1);
        let slot = &self.lock.slots[next as usize % WAIT_SLOTS];
        slot.fetch_add(1, SeqCst);
        os::futex_wake(slot, i32::MAX);
        if !self.flag.is_null() {
            compiler_fence(SeqCst);
            // SAFETY: the flag outlives the guard (`lock`'s contract).
            unsafe { (*self.flag).store(false, Relaxed) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "futexes")]
    fn holders_take_turns_and_the_flag_is_held_exactly_while_locked() {
        let lock = std::sync::Arc::new(WorldLock::new(0u64));
        let flag = AtomicBool::new(false);
        {
            let mut g = lock.lock(&flag);
            assert!(flag.load(Relaxed));
            *g += 1;
        }
        assert!(!flag.load(Relaxed));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        *lock.lock(std::ptr::null()) += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(std::ptr::null()), 8001);
    }
}
