//! A port scan that discovers hosts first (nmap's `-P` options on a port scan,
//! [`ScanSpec::discovery`]): one session, one log, two walks.
//!
//! 1. The ping sweep of every target with the `-P` probes
//!    ([`ScanSpec::discovery_walk`]): host results as a `-sn` scan writes them
//!    (up with the reason, down with `no-response`), its checkpoints positions
//!    of that walk. Its `Finished` is held back.
//! 2. A [`PortPhase`] event listing the hosts found up (sorted): from here on
//!    the checkpoints are positions of the port walk, and a resume continues
//!    that walk over exactly those hosts, whatever answers later.
//! 3. The port scan of those hosts ([`ScanSpec::port_walk`]; `-sV` after it as
//!    for any SYN scan), ending with the one `Finished` of the log.
//!
//! The backend is opened once, before privileges are dropped, with the probe
//! modules of both walks ([`PhaseProbes::both`]: one AF_PACKET filter or one
//! XDP program lets either walk's replies in); each walk classifies replies
//! with its own modules only. A pause, an abort or a kill in either walk leaves
//! a log that [`crate::resume_point`] continues in the walk it stopped in.
//!
//! Owns the order of the two walks and the events between them; never sends,
//! classifies or reads flags itself.

use crate::error::usage;
use anyhow::{anyhow, Context};
use prtip_engine::backend::{BackendPair, Receive, RxStats, Transmit, TxStats};
use prtip_engine::governor::GovernorSettings;
use prtip_engine::probe::{DiscoveryProbe, ProbeSet};
use prtip_engine::scan::{self as engine_scan, RunOptions, ScanControl, ScanOutcome, ScanPlan};
use prtip_store::event::{
    now_us, Addr, Checkpoint, Event, EventSink, PortPhase, PortState, Protocol, ScanSpec, SinkError,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a scan that discovers hosts first cannot do (yet), refused before
/// anything is written.
pub(crate) fn check(spec: &ScanSpec) -> anyhow::Result<()> {
    if !spec.scan_type.is_raw() {
        return Err(usage(format!(
            "-P{}: host discovery before a port scan runs with the raw scans (-sS, -sF, -sN, -sX, -sA, -sW, -sM); {} is a socket scan: use -sS, or sweep first with -sn and scan the hosts up",
            spec.discovery.split(',').next().unwrap_or("").trim_start_matches('P'),
            spec.scan_type.flag()
        )));
    }
    let list = DiscoveryProbe::parse_list(&spec.discovery).map_err(usage)?;
    if list.contains(&DiscoveryProbe::Arp) {
        return Err(usage(
            "-PR before a port scan: ARP/NDP discovery runs in a -sn sweep only (the port probes \
             need the next hop's MAC, which an ARP sweep does not give); use -PE, -PS or -PA, or \
             sweep first with -sn -PR",
        ));
    }
    if spec.shard_count > 1 || spec.walk_from > 0 || !spec.merged_from.is_empty() {
        return Err(usage(format!(
            "--shard {}/{} with host discovery (-P{}): a sharded scan does not discover hosts first yet; shard the -sn sweep and the port scan of its hosts separately, or drop the -P options",
            spec.shard_index,
            spec.shard_count,
            spec.discovery.split(',').next().unwrap_or("").trim_start_matches('P'),
        )));
    }
    Ok(())
}

/// The probe modules of the two walks.
#[derive(Clone, Debug)]
pub(crate) struct PhaseProbes {
    discovery: ProbeSet,
    port: ProbeSet,
    source_port: Option<u16>,
    /// How the port walk's rate is governed (the sweep's stays fixed, as a
    /// `-sn` scan's).
    pub(crate) governor: GovernorSettings,
}

impl PhaseProbes {
    /// The sweep's modules and the port scan's (`-g`: the one source port).
    pub(crate) fn new(discovery: ProbeSet, port: ProbeSet, source_port: Option<u16>) -> Self {
        PhaseProbes {
            discovery,
            port,
            source_port,
            governor: GovernorSettings::ADAPTIVE,
        }
    }

    /// Both walks' modules: what the backend sends from and lets replies in for
    /// (a ping probe and a port probe never go to the same module: the first
    /// are of [`Protocol::Host`], the others TCP or UDP).
    pub(crate) fn both(&self) -> ProbeSet {
        let mut m = self.discovery.modules().to_vec();
        m.extend(self.port.modules().iter().cloned());
        ProbeSet::of(m).with_source_port(self.source_port)
    }
}

/// One backend half behind a lock, lent to each walk in turn.
struct Lent<T: ?Sized>(Arc<Mutex<Box<T>>>);

impl<T: ?Sized> Lent<T> {
    fn lend(&self) -> Lent<T> {
        Lent(self.0.clone())
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Box<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Transmit for Lent<dyn Transmit> {
    fn send(&mut self, probes: &[prtip_engine::backend::Probe]) -> std::io::Result<usize> {
        self.lock().send(probes)
    }
    fn stats(&self) -> TxStats {
        self.lock().stats()
    }
}

impl Receive for Lent<dyn Receive> {
    fn recv(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> std::io::Result<usize> {
        self.lock().recv(timeout, on_frame)
    }
    fn stats(&self) -> RxStats {
        self.lock().stats()
    }
}

/// Where the log of a scan that discovers hosts first stands.
struct LogPhase {
    /// The hosts up the log holds (the sweep's answers so far).
    up: BTreeSet<Addr>,
    /// The port phase, if the log reached it: its hosts, and the walk position
    /// of its last checkpoint (0 before the first).
    port: Option<(Vec<Addr>, u64)>,
}

fn read_log_phase(dir: &Path) -> prtip_store::Result<LogPhase> {
    let r = prtip_store::LogReader::open(dir)?;
    let mut lp = LogPhase {
        up: BTreeSet::new(),
        port: None,
    };
    for e in r.iter() {
        match e?.to_event() {
            Event::Reply(x) if x.proto == Protocol::Host && x.state == PortState::Open => {
                lp.up.insert(x.addr);
            }
            Event::PortPhase(p) => lp.port = Some((p.hosts, 0)),
            Event::Checkpoint(c) => {
                if let Some((_, at)) = &mut lp.port {
                    *at = c.next_index;
                }
            }
            _ => {}
        }
    }
    Ok(lp)
}

/// Which walk a [`PhaseSink`] passes events of.
#[derive(PartialEq)]
enum Walk {
    /// The sweep: its `ScanStarted` carries the whole spec, its hosts up are
    /// kept, its `Finished` is held back.
    Sweep,
    /// The port walk: the engine's `ScanStarted` of it is not the log's.
    Ports,
}

struct PhaseSink<'a> {
    inner: &'a mut dyn EventSink,
    walk: Walk,
    whole: &'a ScanSpec,
    up: &'a mut BTreeSet<Addr>,
    finished: Option<Event>,
}

impl EventSink for PhaseSink<'_> {
    fn push(&mut self, event: Event) -> Result<(), SinkError> {
        match (event, &self.walk) {
            (Event::ScanStarted(mut s), Walk::Sweep) => {
                s.spec = self.whole.clone();
                self.inner.push(Event::ScanStarted(s))
            }
            (Event::ScanStarted(_), Walk::Ports) => Ok(()),
            (Event::Finished(f), Walk::Sweep) => {
                self.finished = Some(Event::Finished(f));
                Ok(())
            }
            (Event::Reply(r), Walk::Sweep) => {
                if r.proto == Protocol::Host && r.state == PortState::Open {
                    self.up.insert(r.addr);
                }
                self.inner.push(Event::Reply(r))
            }
            (e, _) => self.inner.push(e),
        }
    }
    fn checkpoint(&mut self, c: Checkpoint) -> Result<(), SinkError> {
        self.inner.checkpoint(c)
    }
}

/// How the port walk runs (`-sV` after it or not); see [`run`].
pub(crate) type PortRun<'r> = &'r mut dyn FnMut(
    &ScanPlan,
    BackendPair,
    &mut dyn EventSink,
    RunOptions<'_>,
) -> anyhow::Result<ScanOutcome>;

/// The scan's two walks (see the module docs): `sweep` is the session's plan,
/// `opts` its run options (`resume_from` and `preload` of a resumed log, in
/// whichever walk it stopped), `port_run` runs the port walk. Returns how the
/// scan ended.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    spec: &ScanSpec,
    sweep: &ScanPlan,
    io: BackendPair,
    probes: &PhaseProbes,
    dir: &Path,
    sink: &mut dyn EventSink,
    control: &ScanControl,
    opts: RunOptions<'_>,
    port_run: PortRun<'_>,
) -> anyhow::Result<ScanOutcome> {
    let BackendPair { tx, rx, .. } = io;
    let tx: Lent<dyn Transmit> = Lent(Arc::new(Mutex::new(tx)));
    let rx: Lent<dyn Receive> = Lent(Arc::new(Mutex::new(rx)));
    let pair = |p: &ProbeSet| BackendPair {
        tx: Box::new(tx.lend()),
        rx: Box::new(rx.lend()),
        probes: p.clone(),
    };
    let RunOptions {
        scan_id,
        command_line,
        resume_from,
        counters,
        log_bytes,
        checkpoint_every_ms,
        checkpoint_every_probes,
        sample_every,
        preload,
    } = opts;
    let options = |resume_from, counters, preload| RunOptions {
        scan_id,
        command_line: command_line.clone(),
        resume_from,
        counters,
        log_bytes,
        checkpoint_every_ms,
        checkpoint_every_probes,
        sample_every,
        preload,
    };
    let logged = match resume_from {
        Some(_) => read_log_phase(dir).context("reading where the scan's log stands")?,
        None => LogPhase {
            up: BTreeSet::new(),
            port: None,
        },
    };
    // A log that reached its port walk continues it.
    if let (Some((hosts, at)), Some(_)) = (logged.port, resume_from) {
        return ports(
            (spec, sweep, probes),
            &hosts,
            pair(&probes.port),
            sink,
            options(Some(at), counters, preload),
            port_run,
        );
    }
    // The sweep, from the start or where the log stopped.
    let mut up = logged.up;
    let (outcome, finished) = {
        let mut s = PhaseSink {
            inner: sink,
            walk: Walk::Sweep,
            whole: spec,
            up: &mut up,
            finished: None,
        };
        let o = engine_scan::run(
            sweep,
            pair(&probes.discovery),
            &mut s,
            control,
            options(resume_from, counters, preload),
        )
        .map_err(|e| anyhow!("host discovery: {e}"))?;
        (o, s.finished)
    };
    let counters = match outcome {
        ScanOutcome::Finished { counters } => counters,
        other => return Ok(other),
    };
    // The hosts up become the port walk's targets, in the log before its first
    // checkpoint.
    let hosts: Vec<Addr> = up.into_iter().collect();
    let port_plan = port_plan((spec, sweep, probes), &hosts)?;
    sink.push(Event::PortPhase(PortPhase {
        time_us: now_us(),
        total_probes: port_plan.as_ref().map_or(0, |p| p.total_probes()),
        hosts: hosts.clone(),
    }))?;
    let Some(_) = port_plan else {
        // No host up: nothing to scan; the scan ends here.
        sink.checkpoint(Checkpoint {
            next_index: 0,
            counters,
            time_us: now_us(),
        })?;
        if let Some(f) = finished {
            sink.push(f)?;
        }
        return Ok(ScanOutcome::Finished { counters });
    };
    ports(
        (spec, sweep, probes),
        &hosts,
        pair(&probes.port),
        sink,
        options(None, counters, None),
        port_run,
    )
}

/// What the port walk's plan is made from: the whole spec, the sweep's plan
/// (its uplink watch is the port walk's too) and the probes (the governor).
type Whole<'a> = (&'a ScanSpec, &'a ScanPlan, &'a PhaseProbes);

/// The port walk's plan over `hosts` (`None`: no host up).
fn port_plan((spec, sweep, probes): Whole<'_>, hosts: &[Addr]) -> anyhow::Result<Option<ScanPlan>> {
    if hosts.is_empty() {
        return Ok(None);
    }
    let mut plan = ScanPlan::new(&spec.port_walk(hosts))
        .map_err(|e| anyhow!("the port scan of the {} hosts up: {e}", hosts.len()))?;
    plan.timing.governor = probes.governor;
    plan.uplink = sweep.uplink.clone();
    Ok(Some(plan))
}

/// The port walk over `hosts`, fresh or resumed (`opts.resume_from`).
fn ports(
    whole: Whole<'_>,
    hosts: &[Addr],
    io: BackendPair,
    sink: &mut dyn EventSink,
    opts: RunOptions<'_>,
    port_run: PortRun<'_>,
) -> anyhow::Result<ScanOutcome> {
    let Some(plan) = port_plan(whole, hosts)? else {
        // A resumed log whose sweep found no host: its end was not written.
        let counters = opts.counters;
        sink.checkpoint(Checkpoint {
            next_index: 0,
            counters,
            time_us: now_us(),
        })?;
        sink.push(Event::Finished(prtip_store::event::Finished {
            time_us: now_us(),
            counters,
        }))?;
        return Ok(ScanOutcome::Finished { counters });
    };
    let mut s = PhaseSink {
        inner: sink,
        walk: Walk::Ports,
        whole: whole.0,
        up: &mut BTreeSet::new(),
        finished: None,
    };
    port_run(&plan, io, &mut s, opts)
}
