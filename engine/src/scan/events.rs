//! The event thread (the caller's): turns verdicts into `Reply` events and
//! counters, and drives the run's lifecycle through the shared
//! [`Lifecycle`](crate::lifecycle::Lifecycle) — lagged periodic checkpoints, samples,
//! a hold (gate the sender, drain, Paused; Resumed on release) — then a pause
//! (drain, Checkpoint + Paused) or the finish (late replies, a last sample,
//! Checkpoint + Finished). Silent ports are never written: readers project them.
//!
//! Owns the sink for the whole run; never sends or receives frames.

use super::shared::{Msg, Shared};
use super::{RunOptions, ScanControl, ScanError, ScanOutcome, ScanPlan};
use crate::governor::Decision;
use crate::lifecycle::{Lifecycle, SampleExtras};
use crate::metrics;
use prtip_store::event::{
    now_us, Addr, Counters, Event, EventSink, Governor, GovernorReason, PortState, Protocol,
    Reason, Reply,
};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::*;
use std::time::{Duration, Instant};

/// The event thread's state for one run.
pub(super) struct EventThread<'a> {
    plan: &'a ScanPlan,
    control: &'a ScanControl,
    sh: &'a Shared,
    vrx: &'a crossbeam_channel::Receiver<Msg>,
    lifecycle: Lifecycle<'a>,
    counters: Counters,
    /// Probes sent by earlier processes of this scan (resume).
    sent_before: u64,
    /// Late-reply wait.
    wait: Duration,
    /// How far behind the sender a periodic checkpoint stays.
    lag: Duration,
    iface: String,
    /// (time, sender position) of recent ticks, for the lagged checkpoint.
    history: VecDeque<(Instant, u64)>,
    /// The preload's counts are in `counters`.
    merged: bool,
    /// The rate of the last Governor event written, and when.
    gov_logged: (u64, Instant),
    /// The hold on record is the uplink's (not the user's).
    uplink_hold: bool,
    start: Instant,
}

impl<'a> EventThread<'a> {
    /// The event thread of a run from the walk position `sh` starts at, with `counters`.
    pub(super) fn new(
        plan: &'a ScanPlan,
        control: &'a ScanControl,
        opts: &'a RunOptions<'a>,
        sh: &'a Shared,
        vrx: &'a crossbeam_channel::Receiver<Msg>,
        counters: Counters,
    ) -> EventThread<'a> {
        let from = sh.position.load(Acquire);
        let wait = Duration::from_millis(plan.timing.wait_ms);
        EventThread {
            plan,
            control,
            sh,
            vrx,
            lifecycle: Lifecycle::new(control, opts, from, &counters),
            sent_before: counters.sent,
            counters,
            wait,
            lag: wait.min(Duration::from_secs(2)),
            iface: plan.spec.interface.clone().unwrap_or_default(),
            history: VecDeque::new(),
            merged: false,
            gov_logged: (0, Instant::now()),
            uplink_hold: false,
            start: Instant::now(),
        }
    }

    /// Run with `start` as the instant the other threads count nanoseconds from.
    pub(super) fn started_at(mut self, start: Instant) -> Self {
        self.start = start;
        self
    }

    /// A Governor event for `d` (the whole scan's when `d.net` is `None`).
    fn governor_event(&self, d: Decision) -> Event {
        let g = self.sh.gov.lock().unwrap();
        let (net, net_prefix, net_rate) = match d.net {
            Some((k, r)) => {
                let (a, len) = k.network();
                (Some(Addr::from(a)), len, r)
            }
            None => (None, 0, 0),
        };
        Event::Governor(Governor {
            time_us: now_us(),
            reason: d.reason,
            adaptive: g.adaptive(),
            net_prefix,
            rate_mpps: d.rate_mpps,
            ceiling_mpps: self.plan.timing.rate_mpps,
            floor_mpps: g.floor_mpps(),
            net_rate_mpps: net_rate,
            refs_sent: d.refs.0,
            refs_answered: d.refs.1,
            slow_nets: d.slow_nets,
            net,
        })
    }

    /// A Governor event about the whole scan at its current rate (`Learned`:
    /// the rate it learned).
    fn governor_now(&self, reason: GovernorReason) -> Event {
        let (rate, slow) = {
            let g = self.sh.gov.lock().unwrap();
            let r = if reason == GovernorReason::Learned {
                g.learned_mpps()
            } else {
                g.rate_mpps()
            };
            (r, g.slow_nets())
        };
        self.governor_event(Decision {
            reason,
            rate_mpps: rate,
            refs: (0, 0),
            net: None,
            slow_nets: slow,
        })
    }

    /// Write the governor's decisions: every decrease and network change, an
    /// increase when the rate grew by a quarter since the last one written or a
    /// second went by.
    fn log_governor(&mut self, sink: &mut dyn EventSink) -> Result<(), ScanError> {
        if !self.sh.adaptive {
            return Ok(());
        }
        let ds = self.sh.gov.lock().unwrap().take_decisions();
        let n = ds.len();
        for (i, d) in ds.into_iter().enumerate() {
            let (last, at) = self.gov_logged;
            let write = d.reason != GovernorReason::Clear
                || d.rate_mpps >= last + last / 4
                || at.elapsed() >= Duration::from_secs(1)
                || i + 1 == n && d.rate_mpps != last && at.elapsed() >= Duration::from_millis(250);
            if write {
                sink.push(self.governor_event(d))?;
                if d.net.is_none() {
                    self.gov_logged = (d.rate_mpps, Instant::now());
                }
            }
        }
        Ok(())
    }

    /// Run until the walk is done (finish), a pause, an abort or an error.
    pub(super) fn run(mut self, sink: &mut dyn EventSink) -> Result<ScanOutcome, ScanError> {
        let first = self.governor_now(GovernorReason::Start);
        if let Event::Governor(g) = &first {
            self.gov_logged = (g.rate_mpps, Instant::now());
        }
        sink.push(first)?;
        loop {
            if self.control.is_aborted() {
                return Ok(ScanOutcome::Aborted);
            }
            self.take_verdicts(sink)?;
            if let Some(e) = self.sh.sender_error.lock().unwrap().take() {
                return Err(ScanError::Backend(e));
            }
            let now = Instant::now();
            let pos = self.sh.position.load(Acquire);
            self.history.push_back((now, pos));
            while self.history.len() > 2 && self.history[1].0 + self.lag <= now {
                self.history.pop_front();
            }
            self.refresh();
            self.log_governor(sink)?;
            self.hold(sink)?;
            self.merge_preload();
            let done = self.sh.sender_done.load(SeqCst);
            if self.control.pause_requested() && (done || !self.control.is_aborted()) {
                return self.pause(sink);
            }
            if done {
                if let Some(e) = self.sh.sender_error.lock().unwrap().take() {
                    return Err(ScanError::Backend(e));
                }
                return self.finish(sink);
            }
            if !self.lifecycle.holding() && self.lifecycle.checkpoint_due(now, pos) {
                // Probes deferred for a slow network are not sent yet.
                let deferred = self.sh.deferred_min.load(Acquire);
                let lagged = self.lagged(now).map(|p| p.min(deferred));
                self.lifecycle
                    .checkpoint(sink, now, lagged, self.counters)?;
            }
            if self.lifecycle.sample_due(now) {
                self.sample(sink)?;
            }
        }
    }

    /// Wait up to 20 ms for verdicts, then take a burst of what is queued.
    fn take_verdicts(&mut self, sink: &mut dyn EventSink) -> Result<(), ScanError> {
        if let Ok(m) = self.vrx.recv_timeout(Duration::from_millis(20)) {
            self.apply(m, sink)?;
            // Keep up with bursts before doing periodic work.
            for _ in 0..4096 {
                match self.vrx.try_recv() {
                    Ok(m) => self.apply(m, sink)?,
                    Err(_) => break,
                }
            }
        }
        Ok(())
    }

    /// One verdict: counters, progress, a Reply event.
    fn apply(&mut self, m: Msg, sink: &mut dyn EventSink) -> Result<(), ScanError> {
        let Msg::Verdict(v, rtt) = m;
        let c = &mut self.counters;
        c.replies += 1;
        let progress = &self.control.progress;
        match v.state {
            // A host up is a host result, not an open port.
            PortState::Open if v.proto == Protocol::Host => {
                progress.hosts_up.fetch_add(1, Relaxed);
            }
            PortState::Open => c.open += 1,
            PortState::Closed => c.closed += 1,
            _ => {}
        }
        progress.replies.fetch_add(1, Relaxed);
        progress.open.store(c.open, Relaxed);
        progress.closed.store(c.closed, Relaxed);
        sink.push(Event::Reply(Reply {
            addr: Addr::from(v.addr),
            // A host result's port is 0 (store/FORMAT.md), not the probe's number.
            port: if v.proto == Protocol::Host { 0 } else { v.port },
            proto: v.proto,
            state: v.state,
            reason: v.reason,
            ttl: v.ttl,
            icmp_code: v.icmp_code,
            rtt_us: rtt,
            time_us: now_us(),
        }))?;
        Ok(())
    }

    /// The counters the other threads keep.
    fn refresh(&mut self) {
        // Walk probes only (the governor's references are in its events).
        let refs = self.sh.refs_sent.load(Acquire);
        let sent = self.sh.sent.load(Acquire).saturating_sub(refs);
        self.counters.sent = self.sent_before + sent;
        self.counters.invalid = self.sh.invalid.load(Relaxed);
        self.counters.drops = self.sh.drops.load(Relaxed);
    }

    /// Take verdicts for `d`, or until everything is answered and nothing queued.
    fn drain(&mut self, d: Duration, sink: &mut dyn EventSink) -> Result<(), ScanError> {
        let end = Instant::now() + d;
        loop {
            if self.control.is_aborted() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= end || (self.plan.all_answered() && self.vrx.is_empty()) {
                return Ok(());
            }
            match self
                .vrx
                .recv_timeout((end - now).min(Duration::from_millis(20)))
            {
                Ok(m) => self.apply(m, sink)?,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(_) => return Ok(()),
            }
        }
    }

    /// Add the resume preload's counts once it is done.
    fn merge_preload(&mut self) {
        if !self.merged && self.sh.loaded.load(SeqCst) {
            let [o, c, r, h] = *self.sh.loaded_counts.lock().unwrap();
            self.counters.open += o;
            self.counters.closed += c;
            self.counters.replies += r;
            let progress = &self.control.progress;
            progress.hosts_up.fetch_add(h, Relaxed);
            progress.open.store(self.counters.open, Relaxed);
            progress.closed.store(self.counters.closed, Relaxed);
            self.merged = true;
        }
    }

    /// Pause in place (SIGUSR1 / monitor): close the gate; once the sender idles
    /// behind it, wait, Checkpoint + Paused. The gate stays closed until Resumed is
    /// written, so no probe sent after the hold is answered before it.
    fn hold(&mut self, sink: &mut dyn EventSink) -> Result<(), ScanError> {
        let user = self.control.is_held();
        let uplink = self.sh.uplink_held.load(SeqCst);
        if (user || uplink) && !self.lifecycle.holding() {
            self.sh.hold_gate.store(true, SeqCst);
            if self.sh.sender_idle.load(SeqCst) {
                let reason = if user {
                    self.control.reason()
                } else {
                    self.rewind_before_the_failure();
                    let why = self.sh.uplink_down.lock().unwrap().clone();
                    format!("uplink: {}", why.unwrap_or_default())
                };
                if uplink {
                    // Its references went into the failed link: they say nothing.
                    let now = self.start.elapsed().as_nanos() as u64;
                    let sent = self.sh.sent.load(Relaxed);
                    self.sh.gov.lock().unwrap().forget_refs(now, sent);
                    sink.push(self.governor_now(GovernorReason::UplinkDown))?;
                }
                self.drain(self.wait, sink)?;
                self.refresh();
                self.log_governor(sink)?;
                let p = self.sh.position.load(Acquire);
                self.uplink_hold = !user;
                self.lifecycle.hold_for(sink, p, self.counters, reason)?;
            }
        }
        if !self.control.is_held() && !self.sh.uplink_held.load(SeqCst) {
            if self.lifecycle.release(sink)? {
                self.history.clear();
                if std::mem::take(&mut self.uplink_hold) {
                    sink.push(self.governor_now(GovernorReason::UplinkUp))?;
                }
            }
            // Released (before or after the hold was on record): let the sender go.
            self.sh.hold_gate.store(false, SeqCst);
        }
        Ok(())
    }

    /// The uplink failed: probes sent since it last worked went nowhere. Move
    /// the walk back to the first batch sent after that (within the pass, never
    /// below the last checkpoint); answered ports are skipped when it goes on.
    fn rewind_before_the_failure(&self) {
        let ok_ns = self
            .sh
            .uplink_ok_ns
            .load(Acquire)
            .saturating_sub(50_000_000);
        let p = self.sh.position.load(Acquire);
        let span = self.plan.walk.span().max(1);
        let floor = (p.saturating_sub(1) / span * span).max(self.lifecycle.last_checkpoint());
        let back = {
            let c = self.sh.clock.lock().unwrap();
            c.iter()
                .rev()
                .take_while(|(_, t)| *t >= ok_ns)
                .last()
                .map(|(first, _)| *first)
        };
        if let Some(b) = back {
            let to = b.clamp(floor.min(p), p);
            self.sh.position.store(to, Release);
            self.control.progress.position.store(to, Relaxed);
        }
    }

    /// The sender position of at least `lag` ago: every probe below it has had
    /// `lag` for its answer.
    fn lagged(&self, now: Instant) -> Option<u64> {
        self.history
            .iter()
            .rev()
            .find(|(t, _)| *t + self.lag <= now)
            .map(|(_, p)| *p)
    }

    /// A pause: the sender stopped, late replies drained, Checkpoint + Paused.
    fn pause(mut self, sink: &mut dyn EventSink) -> Result<ScanOutcome, ScanError> {
        while !self.sh.sender_done.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.drain(self.wait, sink)?;
        if self.control.is_aborted() || !self.sh.wait_loaded(self.control) {
            return Ok(ScanOutcome::Aborted);
        }
        self.merge_preload();
        if self.control.is_aborted() {
            return Ok(ScanOutcome::Aborted);
        }
        self.refresh();
        self.log_governor(sink)?;
        if self.sh.adaptive {
            sink.push(self.governor_now(GovernorReason::Learned))?;
        }
        let p = self.sh.position.load(Acquire);
        crate::lifecycle::push_paused(sink, p, self.counters, self.control.reason())?;
        Ok(ScanOutcome::Paused {
            next_index: p,
            total: self.plan.walk.len(),
            counters: self.counters,
        })
    }

    /// The walk is done: late replies, a last sample, Checkpoint + Finished.
    fn finish(mut self, sink: &mut dyn EventSink) -> Result<ScanOutcome, ScanError> {
        // Wait for late replies (not needed when everything answered).
        if !self.sh.wait_loaded(self.control) {
            return Ok(ScanOutcome::Aborted);
        }
        self.merge_preload();
        self.drain(self.wait, sink)?;
        if self.control.is_aborted() {
            return Ok(ScanOutcome::Aborted);
        }
        while let Ok(m) = self.vrx.try_recv() {
            self.apply(m, sink)?;
        }
        self.refresh();
        // Silent ports get no event: readers project them from the checkpoints
        // (`prtip_store::space`), so the end of a wide scan costs nothing. A host
        // discovery scan writes its hosts down (one per host, not per probe).
        if self.plan.is_discovery() {
            self.hosts_down(sink)?;
        }
        self.sample(sink)?;
        self.log_governor(sink)?;
        if self.sh.adaptive {
            sink.push(self.governor_now(GovernorReason::Learned))?;
        }
        crate::lifecycle::push_finished(sink, self.plan.walk.len(), self.counters)?;
        Ok(ScanOutcome::Finished {
            counters: self.counters,
        })
    }

    /// Host discovery: a host none of whose probes drew an answer after every pass
    /// is down (`no-response`), one `Reply` through its first probe.
    fn hosts_down(&self, sink: &mut dyn EventSink) -> Result<(), ScanError> {
        let plan = self.plan;
        for q in 0..plan.walk.span() {
            let (v, _) = plan.walk.at(q);
            if plan.answered.contains(v) {
                continue;
            }
            let (addr, proto, port) = plan.probe_of(v);
            if proto == Protocol::Host && port != 0 {
                continue; // a host is down once, through its first probe
            }
            sink.push(Event::Reply(Reply {
                addr: Addr::from(addr),
                port,
                proto,
                state: self.plan.spec.scan_type.silence(proto),
                reason: Reason::NoResponse,
                ttl: 0,
                icmp_code: 0,
                rtt_us: 0,
                time_us: now_us(),
            }))?;
        }
        Ok(())
    }

    /// A Sample with the interface's bytes and the RTTs measured since the last.
    fn sample(&mut self, sink: &mut dyn EventSink) -> Result<(), ScanError> {
        let mut rtts = std::mem::take(&mut *self.sh.rtts.lock().unwrap());
        let extras = SampleExtras {
            net: metrics::net_bytes(&self.iface),
            rtt_us: metrics::percentiles(&mut rtts),
        };
        self.lifecycle.sample(sink, self.counters, extras)?;
        Ok(())
    }
}
