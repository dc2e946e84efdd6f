//! Whole `-sT` and `-sU` scans from a [`ScanPlan`], with the same events, control and
//! checkpoints as the SYN engine's [`crate::scan::run`]; and `-sV` after any port scan.
//!
//! Owns: turning the plan's walk into [`Job`]s (first pass only: the connect and UDP
//! loops retry by themselves, so a walk position is one port and `total_probes` is
//! targets × ports), ScanStarted / Resumed / Checkpoint / Paused / Finished / Sample
//! events, obeying [`ScanControl`] (pause, hold, abort) and live [`Progress`]
//! numbers. The timing comes from the plan and from the spec's
//! [`SocketSettings`](prtip_store::event::SocketSettings).
//! Never opens the log or parses flags (the cli does).
//!
//! [`Progress`]: crate::scan::Progress

use super::grab::{self, GrabError, GrabOptions, OpenPorts};
use super::{ConnectError, ConnectOptions, Driver, Job};
use crate::scan::{RunOptions, ScanControl, ScanOutcome, ScanPlan};
use crate::udp::{self, UdpError, UdpOptions};
use prtip_services::{DetectOptions, ProbeDb};
use prtip_store::event::{Counters, EventSink, Protocol, ScanType, SinkError};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Why a connect or UDP scan stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The connect loop failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The UDP loop failed.
    #[error(transparent)]
    Udp(#[from] UdpError),
    /// Service detection failed.
    #[error(transparent)]
    Grab(#[from] GrabError),
    /// The sink failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The plan is not a connect or UDP scan.
    #[error("{0}")]
    Plan(String),
}

/// Tunables of the connect/UDP loops and of detection, as the plan sets them.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Connect loop.
    pub connect: ConnectOptions,
    /// UDP loop.
    pub udp: UdpOptions,
    /// Service detection.
    pub grab: GrabOptions,
}

impl Tuning {
    /// Derives the tuning of `plan`: rate and retries from its timing; the per-attempt
    /// timeout from `connect_timeout_ms` (else the `--wait` clamped to 0.5..3 s);
    /// parallelism from `max_parallelism`; detection from `version_intensity` and
    /// `version_wait_ms`.
    pub fn of(plan: &ScanPlan) -> Tuning {
        let sockets = &plan.spec.sockets;
        let timeout = Duration::from_millis(
            sockets
                .connect_timeout_ms
                .unwrap_or(plan.timing.wait_ms.clamp(500, 3000)),
        );
        let parallel = sockets.max_parallelism.map(|n| n.max(1) as usize);
        let host_timeout = plan.spec.probe.host_timeout_ms.map(Duration::from_millis);
        let t = plan.timing;
        let connect = ConnectOptions {
            timeout,
            max_retries: t.max_retries,
            max_inflight: parallel.unwrap_or(4096),
            rate_mpps: t.rate_mpps,
            checkpoint_every_probes: 0,
            checkpoint_every: Duration::ZERO, // the run driver checkpoints
            host_timeout,
        };
        let udp = UdpOptions {
            timeout,
            max_retries: t.max_retries,
            max_inflight: parallel.unwrap_or(1024),
            rate_mpps: t.rate_mpps,
            service_detection: plan.spec.service_detection,
            checkpoint_every_probes: 0,
            checkpoint_every: Duration::ZERO,
            ..UdpOptions::default()
        };
        let mut detect = DetectOptions::default();
        if let Some(i) = sockets.version_intensity {
            detect.intensity = i.min(9);
        }
        if let Some(w) = sockets.version_wait_ms {
            detect.null_wait = Some(Duration::from_millis(w));
            detect.probe_wait = Some(Duration::from_millis(w));
        }
        let grab = GrabOptions {
            max_parallel: parallel.unwrap_or(512).min(4096),
            connect_timeout: timeout,
            detect,
            host_timeout,
            ..GrabOptions::default()
        };
        Tuning { connect, udp, grab }
    }
}

/// The driver the loops see: obeys the control, keeps progress, and leaves
/// checkpoints, samples and the Paused/Resumed pair of a hold to the shared
/// [`Lifecycle`](crate::lifecycle::Lifecycle) (the SYN engine's event thread uses the same).
struct ControlDriver<'a> {
    control: &'a ScanControl,
    base: Counters,
    lifecycle: crate::lifecycle::Lifecycle<'a>,
    /// Whether `tick` positions are walk positions (port scan) or a count (detection).
    positions: bool,
}

impl<'a> ControlDriver<'a> {
    fn new(control: &'a ScanControl, opts: &'a RunOptions<'a>, base: Counters, from: u64) -> Self {
        ControlDriver {
            control,
            base,
            lifecycle: crate::lifecycle::Lifecycle::new(control, opts, from, &base),
            positions: true,
        }
    }

    fn total(&self, c: &Counters) -> Counters {
        Counters {
            sent: self.base.sent + c.sent,
            replies: self.base.replies + c.replies,
            invalid: self.base.invalid + c.invalid,
            open: self.base.open + c.open,
            closed: self.base.closed + c.closed,
            drops: self.base.drops + c.drops,
        }
    }

    fn sample(&mut self, sink: &mut dyn EventSink, c: &Counters) -> Result<(), SinkError> {
        let c = self.total(c);
        self.lifecycle.sample(sink, c, Default::default())
    }
}

impl Driver for ControlDriver<'_> {
    fn pause_requested(&self) -> bool {
        self.control.pause_requested()
    }
    fn aborted(&self) -> bool {
        self.control.is_aborted()
    }
    fn held(&self) -> bool {
        self.control.is_held()
    }
    fn tick(
        &mut self,
        sink: &mut dyn EventSink,
        next: u64,
        counters: &Counters,
    ) -> Result<(), SinkError> {
        let c = self.total(counters);
        if self.positions {
            let p = &self.control.progress;
            p.position.store(next, Relaxed);
            p.sent.store(c.sent, Relaxed);
            p.replies.store(c.replies, Relaxed);
            p.open.store(c.open, Relaxed);
            p.closed.store(c.closed, Relaxed);
        }
        if !self.positions {
            self.control.progress.detect_done.store(next, Relaxed);
        }
        let now = Instant::now();
        if self.positions {
            // A hold: once nothing is in flight (the loops only tick then), Checkpoint
            // + Paused; Resumed on release. Nothing is in flight below `next`, so it
            // is the safe checkpoint position.
            if self.control.is_held() && !self.lifecycle.holding() {
                self.lifecycle.hold(sink, next, c)?;
            }
            if !self.control.is_held() {
                self.lifecycle.release(sink)?;
            }
            if self.lifecycle.checkpoint_due(now, next) {
                self.lifecycle.checkpoint(sink, now, Some(next), c)?;
            }
        }
        if self.lifecycle.sample_due(now) {
            self.sample(sink, counters)?;
        }
        Ok(())
    }
}

/// The plan's first pass as jobs of one protocol, from walk position `from`.
pub fn jobs(plan: &ScanPlan, proto: Protocol, from: u64) -> impl Iterator<Item = Job> + '_ {
    let span = plan.walk.span();
    (from..span).filter_map(move |p| {
        let (v, _) = plan.walk.at(p);
        let (addr, pr, port) = plan.probe_of(v);
        (pr == proto).then(|| Job {
            position: p,
            addr: SocketAddr::new(addr, port),
        })
    })
}

/// Runs a `-sT` or `-sU` plan to completion, pause or abort; with
/// `spec.service_detection` a `-sT` scan then detects the services of its open ports
/// (before Finished), and a `-sU` scan matches every reply as it comes.
pub fn run(
    plan: &ScanPlan,
    db: &ProbeDb,
    sink: &mut dyn EventSink,
    control: &ScanControl,
    opts: RunOptions<'_>,
) -> Result<ScanOutcome, RunError> {
    run_with_pending(plan, db, sink, control, opts, Vec::new())
}

/// [`run`], with `pending`: open TCP ports whose service detection a paused run
/// did not do (the resume of a `-sT -sV` scan paused during detection; the
/// session reads them from the log). They are detected with the ports this run
/// finds open.
pub fn run_with_pending(
    plan: &ScanPlan,
    db: &ProbeDb,
    sink: &mut dyn EventSink,
    control: &ScanControl,
    opts: RunOptions<'_>,
    pending: Vec<SocketAddr>,
) -> Result<ScanOutcome, RunError> {
    let proto = match plan.spec.scan_type {
        ScanType::Connect => Protocol::Tcp,
        ScanType::Udp => Protocol::Udp,
        raw => {
            return Err(RunError::Plan(format!(
                "connect::run runs -sT and -sU plans; {} goes through scan::run",
                raw.flag()
            )))
        }
    };
    let tuning = Tuning::of(plan);
    let total = plan.walk.span();
    let from = opts.resume_from.unwrap_or(0).min(total);
    control.progress.total.store(total, Relaxed);
    control.progress.position.store(from, Relaxed);
    crate::lifecycle::push_start(plan, &opts, sink, total, from)?;
    let base = opts.counters;
    let mut driver = ControlDriver::new(control, &opts, base, from);
    let detect_tcp = proto == Protocol::Tcp && plan.spec.service_detection;
    let mut tee = OpenPorts::new(sink);
    let (c, next, stopped) = match proto {
        Protocol::Tcp => {
            let r = super::scan_with(
                &mut jobs(plan, proto, from),
                &tuning.connect,
                &mut tee,
                &mut driver,
            )?;
            note_timed_out(control, "", &r.timed_out);
            (r.counters, r.next_position, r.stopped)
        }
        Protocol::Udp | Protocol::Host => {
            let r = udp::scan_with(
                &mut jobs(plan, proto, from),
                db,
                &tuning.udp,
                &mut tee,
                &mut driver,
            )?;
            (r.counters, r.next_position, r.stopped)
        }
    };
    let open = tee.take_sorted();
    let sink = tee.into_inner();
    if control.is_aborted() {
        return Ok(ScanOutcome::Aborted);
    }
    let counters = driver.total(&c);
    if stopped {
        crate::lifecycle::push_paused(sink, next, counters, control.reason())?;
        return Ok(ScanOutcome::Paused {
            next_index: next,
            total,
            counters,
        });
    }
    control.progress.position.store(total, Relaxed);
    if detect_tcp {
        driver.positions = false;
        let ports = merge_ports(open, pending);
        match detect_phase(ports, db, &tuning.grab, sink, &mut driver, control)? {
            Some(true) => {}
            Some(false) => {
                crate::lifecycle::push_paused(sink, total, counters, control.reason())?;
                return Ok(ScanOutcome::Paused {
                    next_index: total,
                    total,
                    counters,
                });
            }
            None => return Ok(ScanOutcome::Aborted),
        }
    }
    driver.sample(sink, &c)?;
    crate::lifecycle::push_finished(sink, total, counters)?;
    Ok(ScanOutcome::Finished { counters })
}

/// The ports of this run and those a paused run left, sorted, each once.
fn merge_ports(mut open: Vec<SocketAddr>, pending: Vec<SocketAddr>) -> Vec<SocketAddr> {
    open.extend(pending);
    open.sort();
    open.dedup();
    open
}

/// Service detection of `ports` under the control: `Some(true)` when every port
/// was done, `Some(false)` when a pause left some undone (the ports started
/// before the pause are finished and their events pushed), `None` on an abort.
fn detect_phase(
    ports: Vec<SocketAddr>,
    db: &ProbeDb,
    opts: &GrabOptions,
    sink: &mut dyn EventSink,
    driver: &mut ControlDriver<'_>,
    control: &ScanControl,
) -> Result<Option<bool>, GrabError> {
    let n = ports.len() as u64;
    let p = &control.progress;
    p.detect_total.store(n, Relaxed);
    p.detect_done.store(0, Relaxed);
    let report = grab::detect_with(&mut ports.into_iter(), db, opts, sink, driver)?;
    note_timed_out(control, "-sV: ", &report.timed_out);
    if control.is_aborted() {
        return Ok(None);
    }
    // A pause asked for after the last port had started leaves nothing undone.
    Ok(Some(report.ports >= n))
}

/// Tell the operator which hosts `--host-timeout` gave up on (nmap's "Skipping
/// host ... due to host timeout"), through the control's notes.
fn note_timed_out(control: &ScanControl, phase: &str, hosts: &[(std::net::IpAddr, u64)]) {
    for (ip, n) in hosts {
        control.note(format!(
            "{phase}skipping host {ip} due to host timeout (--host-timeout): {n} {} not {}",
            if *n == 1 { "port" } else { "ports" },
            if phase.is_empty() {
                "scanned"
            } else {
                "fully probed"
            }
        ));
    }
}

/// `-sV` after a SYN scan: detects the services on `open` (the ports an [`OpenPorts`]
/// tee collected) and on `pending` (those a paused run left undone), obeying
/// `control`. The port scan ended at walk position `total` with `counters`.
///
/// Returns `Finished` when every port was done (the caller then pushes its
/// held-back `Finished`); `Paused` at `total` when a pause stopped detection
/// (Checkpoint + Paused pushed: a resume starts after the walk and detects the
/// ports still lacking a result); `Aborted` on an abort (nothing pushed).
#[allow(clippy::too_many_arguments)]
pub fn detect_after(
    open: Vec<SocketAddr>,
    pending: Vec<SocketAddr>,
    plan: &ScanPlan,
    db: &ProbeDb,
    sink: &mut dyn EventSink,
    control: &ScanControl,
    opts: &RunOptions<'_>,
    (total, counters): (u64, Counters),
) -> Result<ScanOutcome, GrabError> {
    let tuning = Tuning::of(plan);
    let mut driver = ControlDriver::new(control, opts, opts.counters, 0);
    driver.positions = false;
    let ports = merge_ports(open, pending);
    match detect_phase(ports, db, &tuning.grab, sink, &mut driver, control)? {
        Some(true) => Ok(ScanOutcome::Finished { counters }),
        Some(false) => {
            crate::lifecycle::push_paused(sink, total, counters, control.reason())?;
            Ok(ScanOutcome::Paused {
                next_index: total,
                total,
                counters,
            })
        }
        None => Ok(ScanOutcome::Aborted),
    }
}
