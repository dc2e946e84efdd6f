//! The walk bookkeeping shared by the `-sT` and `-sU` loops: taking jobs in walk
//! order, remembering which positions are still unfinished (so a checkpoint never
//! skips a port), and the checkpoint cadence (every N finished ports and/or every T).
//! Owns no sockets and no ring; never decides a port's state.

use super::Job;
use prtip_store::event::{now_us, Checkpoint, Counters, EventSink, SinkError};
use std::collections::BTreeSet;
use std::time::Duration;

/// Jobs taken from the caller's iterator and the positions not finished yet.
pub(crate) struct Walk<'a> {
    jobs: &'a mut dyn Iterator<Item = Job>,
    unfinished: BTreeSet<u64>,
    /// One past the highest position taken from `jobs`.
    issued_upto: u64,
    exhausted: bool,
    every_probes: u64,
    every: Duration,
    since_ckpt: u64,
    last_ckpt_ns: u64,
}

impl<'a> Walk<'a> {
    /// A walk over `jobs` that checkpoints every `every_probes` finished ports (0 = only
    /// by time) and at least every `every` (zero = only by count), starting its clock at
    /// `now_ns`.
    pub(crate) fn new(
        jobs: &'a mut dyn Iterator<Item = Job>,
        every_probes: u64,
        every: Duration,
        now_ns: u64,
    ) -> Walk<'a> {
        Walk {
            jobs,
            unfinished: BTreeSet::new(),
            issued_upto: 0,
            exhausted: false,
            every_probes,
            every,
            since_ckpt: 0,
            last_ckpt_ns: now_ns,
        }
    }

    /// The next new job (now unfinished), or None once the jobs ran out.
    pub(crate) fn next_job(&mut self) -> Option<Job> {
        if self.exhausted {
            return None;
        }
        match self.jobs.next() {
            Some(j) => {
                self.issued_upto = j.position + 1;
                self.unfinished.insert(j.position);
                Some(j)
            }
            None => {
                self.exhausted = true;
                None
            }
        }
    }

    /// Every job has been taken.
    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted
    }

    /// The port at `position` has its verdict.
    pub(crate) fn finish(&mut self, position: u64) {
        self.unfinished.remove(&position);
        self.since_ckpt += 1;
    }

    /// The first walk position not finished: resuming from it never skips a port.
    pub(crate) fn next_position(&self) -> u64 {
        self.unfinished.first().copied().unwrap_or(self.issued_upto)
    }

    /// Writes a checkpoint with `counters` when the count or the time says so.
    pub(crate) fn checkpoint_if_due(
        &mut self,
        sink: &mut dyn EventSink,
        counters: Counters,
        now_ns: u64,
    ) -> Result<(), SinkError> {
        let by_count = self.every_probes > 0 && self.since_ckpt >= self.every_probes;
        let by_time = !self.every.is_zero()
            && now_ns - self.last_ckpt_ns >= self.every.as_nanos() as u64
            && self.since_ckpt > 0;
        if by_count || by_time {
            sink.checkpoint(Checkpoint {
                next_index: self.next_position(),
                counters,
                time_us: now_us(),
            })?;
            self.since_ckpt = 0;
            self.last_ckpt_ns = now_ns;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn job(position: u64) -> Job {
        Job {
            position,
            addr: SocketAddr::from(([127, 0, 0, 1], 1000 + position as u16)),
        }
    }

    #[derive(Default)]
    struct Ckpts(Vec<u64>);

    impl EventSink for Ckpts {
        fn push(&mut self, _e: prtip_store::event::Event) -> Result<(), SinkError> {
            Ok(())
        }
        fn checkpoint(&mut self, c: Checkpoint) -> Result<(), SinkError> {
            self.0.push(c.next_index);
            Ok(())
        }
    }

    #[test]
    fn next_position_is_the_lowest_unfinished_then_one_past_the_last_taken() {
        let mut it = [job(3), job(5), job(9)].into_iter();
        let mut w = Walk::new(&mut it, 0, Duration::ZERO, 0);
        assert_eq!(w.next_position(), 0);
        assert_eq!(w.next_job(), Some(job(3)));
        assert_eq!(w.next_job(), Some(job(5)));
        assert_eq!(w.next_position(), 3);
        w.finish(5);
        assert_eq!(w.next_position(), 3);
        w.finish(3);
        assert_eq!(w.next_position(), 6);
        assert_eq!(w.next_job(), Some(job(9)));
        assert!(!w.exhausted());
        assert_eq!(w.next_job(), None);
        assert!(w.exhausted());
        assert_eq!(w.next_job(), None);
        w.finish(9);
        assert_eq!(w.next_position(), 10);
    }

    #[test]
    fn checkpoints_by_count_and_by_time() {
        let mut it = (0..10).map(job);
        let mut w = Walk::new(&mut it, 2, Duration::from_nanos(1000), 0);
        let mut sink = Ckpts::default();
        let c = Counters::default();
        w.next_job();
        w.next_job();
        w.next_job();
        w.finish(0);
        w.checkpoint_if_due(&mut sink, c, 10).unwrap(); // 1 finished, 10 ns: not due
        w.finish(1);
        w.checkpoint_if_due(&mut sink, c, 20).unwrap(); // 2 finished: due by count
        w.checkpoint_if_due(&mut sink, c, 5000).unwrap(); // nothing finished since: not due
        w.finish(2);
        w.checkpoint_if_due(&mut sink, c, 1019).unwrap(); // 999 ns since the last: not due
        w.checkpoint_if_due(&mut sink, c, 1020).unwrap(); // 1000 ns: due by time
        assert_eq!(sink.0, vec![2, 3]);
    }
}
