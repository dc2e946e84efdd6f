//! A thin io_uring wrapper shared by the connect scan, the banner grabber and the UDP
//! scan: push SQEs (submitting when the queue is full), wait for completions with a
//! deadline, and drain them; and the one chain all three build, an operation linked to
//! a timeout. Owns the ring; never interprets completions.

use io_uring::{opcode, squeue, types, IoUring};
use std::io;
use std::time::Duration;

/// A ring and a scratch list of completions.
pub struct Ring {
    ring: IoUring,
    done: Vec<(u64, i32)>,
}

impl Ring {
    /// A ring with room for about `inflight` operations of `sqes_per_op` entries each.
    pub fn new(inflight: usize, sqes_per_op: usize) -> io::Result<Ring> {
        let want = (inflight * sqes_per_op).clamp(64, 16384) as u32;
        let sq = want.next_power_of_two();
        let ring = IoUring::builder()
            .setup_cqsize((sq * 2).min(65536))
            .build(sq)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create an io_uring ({e}); io_uring may be disabled (sysctl kernel.io_uring_disabled) or the kernel too old"),
                )
            })?;
        Ok(Ring {
            ring,
            done: Vec::with_capacity(1024),
        })
    }

    /// Queues linked or single entries, submitting first if the queue is full.
    ///
    /// # Safety
    /// Every buffer, address and timespec an entry points to must stay valid and
    /// unmoved until that entry's completion has been reaped.
    pub unsafe fn push(&mut self, entries: &[squeue::Entry]) -> io::Result<()> {
        loop {
            // SAFETY: forwarded to the caller's contract.
            if unsafe { self.ring.submission().push_multiple(entries) }.is_ok() {
                return Ok(());
            }
            self.submit()?;
        }
    }

    /// Hands queued entries to the kernel without waiting.
    pub fn submit(&mut self) -> io::Result<()> {
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EINTR)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Submits and waits until at least one completion is ready or `timeout` passed.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if !self.ring.completion().is_empty() {
            return self.submit();
        }
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Takes every ready completion as `(user_data, result)`.
    pub fn drain(&mut self) -> std::vec::Drain<'_, (u64, i32)> {
        self.done.clear();
        for cqe in self.ring.completion() {
            self.done.push((cqe.user_data(), cqe.result()));
        }
        self.done.drain(..)
    }
}

/// `op` linked to a LINK_TIMEOUT of `ts` tagged `timeout_ud`: the kernel cancels `op`
/// (ECANCELED) when `ts` passes first. `ts` must stay valid and unmoved until both
/// completions have been reaped (see [`Ring::push`]).
pub fn with_timeout(
    op: squeue::Entry,
    ts: &types::Timespec,
    timeout_ud: u64,
) -> [squeue::Entry; 2] {
    [
        op.flags(squeue::Flags::IO_LINK),
        opcode::LinkTimeout::new(ts).build().user_data(timeout_ud),
    ]
}

/// The operation chain a slot is running: its generation (tags its entries, so a late
/// completion of an earlier chain is recognised) and how many completions are still due
/// (the slot's buffers must not be reused before they are all in).
#[derive(Clone, Copy, Debug, Default)]
pub struct Chain {
    generation: u32,
    pending: u8,
}

impl Chain {
    /// Starts a new chain of `entries` completions; returns the generation to tag them
    /// with ([`user_data`]).
    pub fn start(&mut self, entries: u8) -> u32 {
        self.generation = self.generation.wrapping_add(1) & 0x0fff_ffff;
        self.pending = entries;
        self.generation
    }

    /// Counts one completion tagged `generation`; false when it belongs to no running
    /// chain (stale: ignore it).
    pub fn complete(&mut self, generation: u32) -> bool {
        if self.generation != generation || self.pending == 0 {
            return false;
        }
        self.pending -= 1;
        true
    }

    /// Every completion of the chain is in.
    pub fn settled(&self) -> bool {
        self.pending == 0
    }
}

/// Packs a slot index, an operation kind (0..=15) and a slot generation into user_data.
#[inline]
pub fn user_data(slot: usize, kind: u8, generation: u32) -> u64 {
    ((generation as u64) << 36) | ((slot as u64) << 4) | kind as u64
}

/// Unpacks [`user_data`]: `(slot, kind, generation)`.
#[inline]
pub fn unpack(ud: u64) -> (usize, u8, u32) {
    (
        ((ud >> 4) & 0xffff_ffff) as usize,
        (ud & 0xf) as u8,
        (ud >> 36) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        let ud = user_data(123_456, 7, 0xfff_ffff);
        assert_eq!(unpack(ud), (123_456, 7, 0xfff_ffff));
    }

    #[test]
    fn a_chain_counts_its_own_completions_and_ignores_stale_ones() {
        let mut c = Chain::default();
        assert!(c.settled());
        let g1 = c.start(2);
        assert!(!c.complete(g1.wrapping_add(1)));
        assert!(c.complete(g1));
        assert!(!c.settled());
        assert!(c.complete(g1));
        assert!(c.settled());
        assert!(!c.complete(g1), "no completion is due any more");
        let g2 = c.start(1);
        assert_ne!(g1, g2);
        assert!(
            !c.complete(g1),
            "a completion of the earlier chain is stale"
        );
        assert!(c.complete(g2));
        assert!(c.settled());
    }

    #[test]
    fn a_timeout_completes_through_the_ring() {
        let mut r = Ring::new(4, 2).unwrap();
        let ts = types::Timespec::from(Duration::from_millis(5));
        let e = io_uring::opcode::Timeout::new(&ts).build().user_data(42);
        // SAFETY: ts outlives the completion, which we wait for below.
        unsafe { r.push(&[e]).unwrap() };
        let mut got = Vec::new();
        while got.is_empty() {
            r.wait(Duration::from_secs(5)).unwrap();
            got.extend(r.drain());
        }
        assert_eq!(got, vec![(42, -libc::ETIME)]);
    }

    #[test]
    fn a_linked_timeout_cancels_the_operation_it_guards() {
        let mut r = Ring::new(4, 2).unwrap();
        let ts = types::Timespec::from(Duration::from_millis(5));
        // a 10 s timeout op that the 5 ms link timeout cuts short
        let long = types::Timespec::from(Duration::from_secs(10));
        let op = io_uring::opcode::Timeout::new(&long).build().user_data(1);
        let chain = with_timeout(op, &ts, 2);
        // SAFETY: ts and long outlive both completions, which we wait for below.
        unsafe { r.push(&chain).unwrap() };
        let mut got = Vec::new();
        while got.len() < 2 {
            r.wait(Duration::from_secs(5)).unwrap();
            got.extend(r.drain());
        }
        got.sort();
        assert_eq!(got, vec![(1, -libc::ECANCELED), (2, -libc::ETIME)]);
    }
}
