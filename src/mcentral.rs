//! Central free lists [Go: mcentral].
//!
//! One `Mcentral` per span class holds the spans of that class that have free
//! slots and are owned by no thread's mcache. A thread whose cached span is full
//! takes one from here (or, when there is none, a new span from the heap).
//!
//! Invariants:
//! - A span is in at most one partial set, and only while `!cached`.
//! - The sets are rebuilt by every sweep (world stopped): cleared, then every
//!   span with a free slot is pushed back. Between sweeps a span enters a set only
//!   when a thread that cached it unregisters.

use std::sync::Mutex;

use crate::span::Span;
use crate::spanset::SpanSet;

pub struct Mcentral {
    pub partial: Mutex<SpanSet>,
}

impl Mcentral {
    pub const fn new() -> Mcentral {
        Mcentral { partial: Mutex::new(SpanSet::new()) }
    }

    /// A span with free slots, or null. The span is marked cached before the
    /// lock is let go: an explicit free that holds the lock and sees a span
    /// uncached knows no thread allocates from it (see `alloc::free`).
    pub fn take(&self) -> *mut Span {
        let mut set = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        let s = set.pop();
        if !s.is_null() {
            // SAFETY: a span from the partial set is in use and owned by no
            // one; the caller becomes its owner.
            unsafe { (*s).cached.store(true, std::sync::atomic::Ordering::Relaxed) };
        }
        drop(set);
        s
    }

    /// Offers a span with free slots back. Returns false if no memory was left for
    /// the set's bookkeeping (the span then waits for the next sweep).
    pub fn give(&self, s: *mut Span) -> bool {
        self.partial.lock().unwrap_or_else(|e| e.into_inner()).push(s)
    }
}
