//! [`SyncGate`]: keeps the log's helper threads off the CPU while the writer waits
//! for an `msync`.
//!
//! Writing a page back write-protects it in every page table that maps it
//! writable, and each of those changes is a TLB shootdown: an inter-processor
//! interrupt to every core that is running a thread of this process at that
//! moment (an idle core is skipped). On a virtual machine each interrupt is a
//! VM exit: with the spare-segment thread faulting pages in on the other core, a
//! 1 MiB checkpoint (256 pages) spent a third of its CPU time sending them and
//! took 3-5 ms instead of 0.75 ms (`perf record -g`: `ptep_clear_flush` ->
//! `smp_call_function_many_cond`). Helper threads call [`SyncGate::pass`] between
//! small pieces of work, and sleep while a sync is in progress. The gate also
//! tells them to give up (`cancel`): the log is being finished, so the work
//! (say, a spare segment nobody will use) would only delay it.

use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct State {
    syncing: bool,
    cancelled: bool,
}

/// Closed while the writer is inside `msync`; helper threads wait at it.
#[derive(Debug, Default)]
pub struct SyncGate {
    state: Mutex<State>,
    opened: Condvar,
}

impl SyncGate {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the flags inconsistent: they are plain bools.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Close the gate until the returned guard is dropped.
    pub fn close(&self) -> Closed<'_> {
        self.state().syncing = true;
        Closed(self)
    }

    /// Tell every helper to stop at its next [`SyncGate::pass`], for good.
    pub fn cancel(&self) {
        self.state().cancelled = true;
        self.opened.notify_all();
    }

    /// `true` at once if no sync is in progress, otherwise when it ends; `false`
    /// once [`SyncGate::cancel`] was called: the helper should give up.
    pub fn pass(&self) -> bool {
        let mut s = self.state();
        while s.syncing && !s.cancelled {
            s = self.opened.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        !s.cancelled
    }
}

/// The gate is closed while this lives (also on an early return with an error).
pub struct Closed<'a>(&'a SyncGate);

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        self.0.state().syncing = false;
        self.0.opened.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn pass_returns_at_once_when_open() {
        let g = SyncGate::default();
        assert!(g.pass());
        drop(g.close());
        assert!(g.pass());
    }

    #[test]
    fn pass_waits_until_the_guard_is_dropped() {
        let g = Arc::new(SyncGate::default());
        let passed = Arc::new(AtomicBool::new(false));
        let closed = g.close();
        let t = {
            let (g, passed) = (g.clone(), passed.clone());
            std::thread::spawn(move || {
                assert!(g.pass());
                passed.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!passed.load(Ordering::SeqCst), "passed a closed gate");
        drop(closed);
        t.join().unwrap();
        assert!(passed.load(Ordering::SeqCst));
    }

    #[test]
    fn cancel_releases_a_waiter_and_every_later_pass() {
        let g = Arc::new(SyncGate::default());
        let _closed = g.close();
        let t = {
            let g = g.clone();
            std::thread::spawn(move || g.pass())
        };
        std::thread::sleep(Duration::from_millis(20));
        g.cancel();
        assert!(!t.join().unwrap(), "a cancelled pass must say stop");
        assert!(!g.pass());
    }
}
