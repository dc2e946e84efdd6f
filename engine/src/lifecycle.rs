//! The scan lifecycle every whole-scan runner shares (the SYN engine's
//! [`crate::scan::run`] and the connect/UDP [`crate::connect::run::run`]): the events
//! — ScanStarted or Resumed at the start, Checkpoint + Paused on a pause or hold,
//! Checkpoint + Finished at the end — and the [`Lifecycle`] driver that decides when
//! a periodic checkpoint or a sample is due, records a hold and its release, and
//! never lets a checkpoint go backwards or land inside a hold.
//!
//! Owns the shape and the cadence of these events; never decides what position is
//! safe to checkpoint (the caller passes it: the SYN loop a lagged position, the
//! connect loops the position with nothing in flight) nor when a scan ends.

use crate::metrics;
use crate::scan::{RunOptions, ScanControl, ScanPlan};
use prtip_store::event::{
    now_us, Checkpoint, Counters, Event, EventSink, Finished, Paused, Resumed, Sample, ScanStarted,
    SinkError, Versions, SCHEMA_VERSION,
};
use std::time::{Duration, Instant};

/// Checkpoint, sample and hold bookkeeping of one run.
pub(crate) struct Lifecycle<'a> {
    control: &'a ScanControl,
    opts: &'a RunOptions<'a>,
    ck_every: Duration,
    last_ck: Instant,
    last_ck_pos: u64,
    last_sample: Instant,
    last_counts: (u64, u64),
    cpu: metrics::CpuMeter,
    held_at: Option<u64>,
}

/// What a sample reports besides the counters (zero where a runner cannot tell).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SampleExtras {
    /// Interface bytes (received, sent).
    pub net: (u64, u64),
    /// RTT percentiles, µs.
    pub rtt_us: [u32; 4],
}

impl<'a> Lifecycle<'a> {
    /// A run starting at walk position `from` with `counters`.
    pub fn new(
        control: &'a ScanControl,
        opts: &'a RunOptions<'a>,
        from: u64,
        counters: &Counters,
    ) -> Lifecycle<'a> {
        let now = Instant::now();
        Lifecycle {
            control,
            opts,
            ck_every: checkpoint_interval(opts),
            last_ck: now,
            last_ck_pos: from,
            last_sample: now,
            last_counts: (counters.sent, counters.replies),
            cpu: metrics::CpuMeter::default(),
            held_at: None,
        }
    }

    /// The walk position of the last checkpoint written (or the start).
    pub fn last_checkpoint(&self) -> u64 {
        self.last_ck_pos
    }

    /// Whether a hold is on record (Paused written, Resumed not yet).
    pub fn holding(&self) -> bool {
        self.held_at.is_some()
    }

    /// Whether a periodic checkpoint is due with the walk at `pos`: the interval
    /// has passed, or `checkpoint_every_probes` positions went by.
    pub fn checkpoint_due(&self, now: Instant, pos: u64) -> bool {
        let every = self.opts.checkpoint_every_probes;
        now.duration_since(self.last_ck) >= self.ck_every
            || (every > 0 && pos.saturating_sub(self.last_ck_pos) >= every)
    }

    /// A due checkpoint at `safe` (every position below it sent and its answers in
    /// the sink): written only if it advances and no hold is on record. Either way
    /// the interval starts again.
    pub fn checkpoint(
        &mut self,
        sink: &mut dyn EventSink,
        now: Instant,
        safe: Option<u64>,
        counters: Counters,
    ) -> Result<(), SinkError> {
        if let Some(p) = safe.filter(|p| *p > self.last_ck_pos && self.held_at.is_none()) {
            sink.checkpoint(Checkpoint {
                next_index: p,
                counters,
                time_us: now_us(),
            })?;
            self.last_ck_pos = p;
        }
        self.last_ck = now;
        Ok(())
    }

    /// Record a hold with nothing in flight below `pos`: Checkpoint + Paused.
    pub fn hold(
        &mut self,
        sink: &mut dyn EventSink,
        pos: u64,
        counters: Counters,
    ) -> Result<(), SinkError> {
        self.hold_for(sink, pos, counters, self.control.reason())
    }

    /// [`Lifecycle::hold`] for `reason` (a failed uplink's, not the user's).
    pub fn hold_for(
        &mut self,
        sink: &mut dyn EventSink,
        pos: u64,
        counters: Counters,
        reason: String,
    ) -> Result<(), SinkError> {
        push_paused(sink, pos, counters, reason)?;
        self.held_at = Some(pos);
        self.last_ck_pos = pos;
        Ok(())
    }

    /// After a release: Resumed from the hold's position, if a hold was on record.
    /// Returns whether it was.
    pub fn release(&mut self, sink: &mut dyn EventSink) -> Result<bool, SinkError> {
        match self.held_at.take() {
            Some(at) => push_resumed(sink, at).map(|_| true),
            None => Ok(false),
        }
    }

    /// Whether a sample is due.
    pub fn sample_due(&self, now: Instant) -> bool {
        now.duration_since(self.last_sample) >= self.opts.sample_every
    }

    /// A Sample with `counters` (rates over the time since the last one).
    pub fn sample(
        &mut self,
        sink: &mut dyn EventSink,
        counters: Counters,
        extras: SampleExtras,
    ) -> Result<(), SinkError> {
        let now = Instant::now();
        let dt = now.duration_since(self.last_sample).as_secs_f64().max(1e-6);
        sink.push(Event::Sample(Sample {
            time_us: now_us(),
            pps: counters.sent.saturating_sub(self.last_counts.0) as f64 / dt,
            rps: counters.replies.saturating_sub(self.last_counts.1) as f64 / dt,
            counters,
            cpu_percent: self.cpu.percent(),
            rss_bytes: metrics::rss_bytes(),
            net_tx_bytes: extras.net.1,
            net_rx_bytes: extras.net.0,
            log_bytes: self.opts.log_bytes.map(|f| f()).unwrap_or(0),
            rtt_us: extras.rtt_us,
        }))?;
        self.last_sample = now;
        self.last_counts = (counters.sent, counters.replies);
        Ok(())
    }
}

/// ScanStarted for a new scan of `total` probes, or Resumed from `from` when
/// `opts.resume_from` is set.
pub(crate) fn push_start(
    plan: &ScanPlan,
    opts: &RunOptions<'_>,
    sink: &mut dyn EventSink,
    total: u64,
    from: u64,
) -> Result<(), SinkError> {
    match opts.resume_from {
        None => sink.push(Event::ScanStarted(Box::new(ScanStarted {
            scan_id: opts.scan_id,
            time_us: now_us(),
            spec: plan.spec.clone(),
            versions: Versions {
                prtip: env!("CARGO_PKG_VERSION").to_string(),
                schema: SCHEMA_VERSION,
            },
            command_line: opts.command_line.clone(),
            total_probes: total,
            total_targets: plan.total_targets(),
            pid: std::process::id(),
        }))),
        Some(_) => push_resumed(sink, from),
    }
}

/// Resumed from walk position `from` (by this process).
pub(crate) fn push_resumed(sink: &mut dyn EventSink, from: u64) -> Result<(), SinkError> {
    sink.push(Event::Resumed(Resumed {
        from_index: from,
        time_us: now_us(),
        pid: std::process::id(),
    }))
}

/// A checkpoint at `next` with `counters`, then Paused at `next` for `reason`.
pub(crate) fn push_paused(
    sink: &mut dyn EventSink,
    next: u64,
    counters: Counters,
    reason: String,
) -> Result<(), SinkError> {
    sink.checkpoint(Checkpoint {
        next_index: next,
        counters,
        time_us: now_us(),
    })?;
    sink.push(Event::Paused(Paused {
        next_index: next,
        time_us: now_us(),
        reason,
    }))
}

/// The final checkpoint (at `total`: nothing left) and Finished with `counters`.
pub(crate) fn push_finished(
    sink: &mut dyn EventSink,
    total: u64,
    counters: Counters,
) -> Result<(), SinkError> {
    sink.checkpoint(Checkpoint {
        next_index: total,
        counters,
        time_us: now_us(),
    })?;
    sink.push(Event::Finished(Finished {
        time_us: now_us(),
        counters,
    }))
}

/// How often to checkpoint by time: `checkpoint_every_ms`, or 1 s when neither it nor
/// `checkpoint_every_probes` is set, or never (only by count) when only the count is.
pub(crate) fn checkpoint_interval(opts: &RunOptions<'_>) -> Duration {
    if opts.checkpoint_every_ms == 0 && opts.checkpoint_every_probes == 0 {
        Duration::from_millis(1000)
    } else if opts.checkpoint_every_ms == 0 {
        Duration::MAX
    } else {
        Duration::from_millis(opts.checkpoint_every_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_interval_defaults_to_one_second_and_is_off_with_only_a_count() {
        let mut o = RunOptions {
            checkpoint_every_ms: 0,
            checkpoint_every_probes: 0,
            ..RunOptions::default()
        };
        assert_eq!(checkpoint_interval(&o), Duration::from_secs(1));
        o.checkpoint_every_probes = 500;
        assert_eq!(checkpoint_interval(&o), Duration::MAX);
        o.checkpoint_every_ms = 250;
        assert_eq!(checkpoint_interval(&o), Duration::from_millis(250));
    }

    fn counters(sent: u64) -> Counters {
        Counters {
            sent,
            ..Counters::default()
        }
    }

    #[test]
    fn checkpoints_are_due_by_count_and_never_go_backwards() {
        let control = ScanControl::new();
        let opts = RunOptions {
            checkpoint_every_ms: 0,
            checkpoint_every_probes: 10,
            ..RunOptions::default()
        };
        let mut lc = Lifecycle::new(&control, &opts, 5, &counters(5));
        let now = Instant::now();
        assert!(!lc.checkpoint_due(now, 14));
        assert!(lc.checkpoint_due(now, 15));
        let mut sink: Vec<Event> = Vec::new();
        lc.checkpoint(&mut sink, now, Some(12), counters(15))
            .unwrap();
        lc.checkpoint(&mut sink, now, Some(12), counters(15))
            .unwrap();
        lc.checkpoint(&mut sink, now, Some(9), counters(15))
            .unwrap();
        lc.checkpoint(&mut sink, now, None, counters(15)).unwrap();
        assert_eq!(sink.len(), 1, "only the first advances: {sink:?}");
        assert!(matches!(&sink[0], Event::Checkpoint(k) if k.next_index == 12));
        assert!(!lc.checkpoint_due(now, 21) && lc.checkpoint_due(now, 22));
    }

    #[test]
    fn a_hold_is_paused_then_resumed_at_its_position_and_blocks_checkpoints() {
        let control = ScanControl::new();
        control.hold("monitor");
        let opts = RunOptions::default();
        let mut lc = Lifecycle::new(&control, &opts, 0, &counters(0));
        let mut sink: Vec<Event> = Vec::new();
        assert!(!lc.release(&mut sink).unwrap(), "nothing on record");
        lc.hold(&mut sink, 40, counters(40)).unwrap();
        assert!(lc.holding());
        lc.checkpoint(&mut sink, Instant::now(), Some(50), counters(50))
            .unwrap();
        assert!(lc.release(&mut sink).unwrap());
        assert!(!lc.holding());
        assert_eq!(sink.len(), 3, "{sink:?}");
        assert!(matches!(&sink[0], Event::Checkpoint(k) if k.next_index == 40));
        assert!(
            matches!(&sink[1], Event::Paused(p) if p.next_index == 40 && p.reason == "monitor")
        );
        assert!(matches!(&sink[2], Event::Resumed(r) if r.from_index == 40));
        // After the hold, checkpoints go on from its position.
        lc.checkpoint(&mut sink, Instant::now(), Some(50), counters(50))
            .unwrap();
        assert!(matches!(&sink[3], Event::Checkpoint(k) if k.next_index == 50));
    }

    #[test]
    fn samples_carry_the_counters_and_extras_given() {
        let control = ScanControl::new();
        let opts = RunOptions {
            sample_every: Duration::from_secs(3600),
            ..RunOptions::default()
        };
        let mut lc = Lifecycle::new(&control, &opts, 0, &counters(0));
        assert!(!lc.sample_due(Instant::now()));
        assert!(lc.sample_due(Instant::now() + Duration::from_secs(3600)));
        let mut sink: Vec<Event> = Vec::new();
        let extras = SampleExtras {
            net: (7, 9),
            rtt_us: [1, 2, 3, 4],
        };
        lc.sample(&mut sink, counters(100), extras).unwrap();
        let Event::Sample(s) = &sink[0] else {
            panic!("{sink:?}")
        };
        assert_eq!(s.counters, counters(100));
        assert_eq!(
            (s.net_rx_bytes, s.net_tx_bytes, s.rtt_us),
            (7, 9, [1, 2, 3, 4])
        );
        assert!(s.pps > 0.0 && s.rps == 0.0);
        lc.sample(&mut sink, counters(100), SampleExtras::default())
            .unwrap();
        let Event::Sample(s) = &sink[1] else {
            panic!("{sink:?}")
        };
        assert_eq!(s.pps, 0.0, "rates count from the last sample");
    }

    #[test]
    fn paused_and_finished_follow_their_checkpoint() {
        let mut sink: Vec<Event> = Vec::new();
        let c = Counters {
            sent: 7,
            ..Counters::default()
        };
        push_paused(&mut sink, 5, c, "user".into()).unwrap();
        push_finished(&mut sink, 9, c).unwrap();
        assert_eq!(sink.len(), 4);
        assert!(matches!(&sink[0], Event::Checkpoint(k) if k.next_index == 5 && k.counters == c));
        assert!(matches!(&sink[1], Event::Paused(p) if p.next_index == 5 && p.reason == "user"));
        assert!(matches!(&sink[2], Event::Checkpoint(k) if k.next_index == 9 && k.counters == c));
        assert!(matches!(&sink[3], Event::Finished(f) if f.counters == c));
    }
}
