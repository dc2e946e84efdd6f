//! The scan-lifecycle events every whole-scan runner writes the same way (the SYN
//! engine's [`crate::scan::run`] and the connect/UDP [`crate::connect::run::run`]):
//! ScanStarted or Resumed at the start, Checkpoint + Paused on a pause or hold,
//! Checkpoint + Finished at the end, and the checkpoint interval the run options ask for.
//! Owns only the shape of these events; never decides when a scan pauses or ends.

use crate::scan::{RunOptions, ScanPlan};
use prtip_store::event::{
    now_us, Checkpoint, Counters, Event, EventSink, Finished, Paused, Resumed, ScanStarted,
    SinkError, Versions, SCHEMA_VERSION,
};
use std::time::Duration;

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
