//! The scan loop: walk the permutation, pace, send, read replies, decide port states,
//! and push every fact into the event sink.
//!
//! Owns: [`ScanPlan`] (a `ScanSpec` turned into targets, ports, walk, cookies and
//! timing), the answered-set bitmap, the sender / receiver / event threads, retries,
//! the late-reply wait, checkpoints, samples, pause/hold/abort through [`ScanControl`].
//! Never opens sockets itself (it is handed a [`BackendPair`]) and never writes files
//! (it is handed an [`EventSink`]).
//!
//! Threads: the sender owns the `Transmit` half, the receiver owns the `Receive`
//! half and classifies frames, and the calling thread owns the sink: it turns
//! verdicts into `Reply` events and writes `Checkpoint` and `Sample` events.
//!
//! Checkpoints: `Checkpoint { next_index }` promises that every walk position below
//! `next_index` was sent and its replies are in the log. The event thread therefore
//! checkpoints the position the sender had reached `min(--wait, 2 s)` earlier (replies
//! to later probes may still be in flight); on pause it stops the sender, waits
//! `--wait`, and checkpoints the exact position. Resume sends from `next_index`: at
//! most that window is probed twice, never a probe skipped.
//!
//! Answered set: one bit per (target, port) value, set by the first valid reply;
//! later replies for a set bit are dropped (duplicates folded), retry passes skip set
//! bits, and after the last pass every clear bit becomes `filtered` (TCP) or
//! `open|filtered` (UDP). On resume the caller rebuilds it from the log's `Reply`
//! events ([`ScanPlan::mark_answered`]). It is allocated lazily (the kernel maps
//! zero pages on first touch) and only when the index space has at most
//! [`ANSWERED_CAP`] values (256 MiB); above that, retries resend every probe,
//! duplicates are folded by the log's projections, and silent ports are not reported.

mod events;
mod receiver;
mod sender;
mod shared;
mod uplink;

use crate::backend::{BackendPair, Probe};
use crate::cookie::Cookies;
use crate::pacing;
use crate::permutation::Walk;
use crate::ports::PortList;
use crate::probe::ProbeSet;
use crate::targets::{TargetError, TargetSet};
use prtip_store::event::{
    now_us, Checkpoint, Counters, EventSink, PortState, Protocol, ScanSpec, ScanType, SinkError,
};
use shared::Msg;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest index space that gets an answered-set bitmap (2^31 values = 256 MiB).
pub const ANSWERED_CAP: u64 = 1 << 31;
/// Probes per send call.
const BATCH: u64 = 64;

/// Why a spec cannot be scanned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Targets did not parse.
    #[error(transparent)]
    Targets(#[from] TargetError),
    /// Ports did not parse.
    #[error(transparent)]
    Ports(#[from] crate::ports::PortError),
    /// Something else about the spec.
    #[error("{0}")]
    Spec(String),
}

/// Why a scan stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The sink (log writer) failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The backend failed.
    #[error("packet backend: {0}")]
    Backend(#[from] std::io::Error),
}

/// Exact timing a plan runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanTiming {
    /// Probes per second × 1000 (0 = unlimited).
    pub rate_mpps: u64,
    /// Retransmissions.
    pub max_retries: u32,
    /// Late-reply wait, ms.
    pub wait_ms: u64,
    /// Least time between passes, ms.
    pub retry_gap_ms: u64,
    /// How the rate is governed (`rate_mpps` is the ceiling when adaptive).
    /// [`PlanTiming::of`] gives a fixed rate; the session turns the governor on.
    pub governor: crate::governor::GovernorSettings,
}

impl PlanTiming {
    /// Timing of `spec`: its rate capped by its `max_rate_mpps`, its retries and
    /// wait, and its retry gap (else the timing template's, at most the wait).
    pub fn of(spec: &ScanSpec) -> PlanTiming {
        let mut rate_mpps = spec.rate_mpps;
        if spec.max_rate_mpps > 0 && (rate_mpps == 0 || rate_mpps > spec.max_rate_mpps) {
            rate_mpps = spec.max_rate_mpps;
        }
        let retry_gap_ms = spec.retry_gap_ms.unwrap_or_else(|| {
            pacing::timing(spec.timing)
                .map(|t| t.retry_gap_ms)
                .unwrap_or(1000)
                .min(spec.wait_ms.max(1))
        });
        PlanTiming {
            rate_mpps,
            max_retries: spec.max_retries,
            wait_ms: spec.wait_ms,
            retry_gap_ms,
            governor: crate::governor::GovernorSettings::FIXED,
        }
    }
}

/// The answered set: one bit per index-space value.
struct Answered {
    bits: Vec<AtomicU64>,
}

impl Answered {
    fn new(n: u64) -> Answered {
        let words = n.div_ceil(64) as usize;
        let mut bits = Vec::with_capacity(words);
        // `resize_with` of zeroed atomics becomes a calloc'd region: pages are only
        // backed once touched.
        bits.resize_with(words, || AtomicU64::new(0));
        Answered { bits }
    }
    #[inline]
    fn get(&self, v: u64) -> bool {
        self.bits[(v / 64) as usize].load(Relaxed) & (1 << (v % 64)) != 0
    }
    /// Set; true if it was clear.
    #[inline]
    fn set(&self, v: u64) -> bool {
        let m = 1 << (v % 64);
        self.bits[(v / 64) as usize].fetch_or(m, Relaxed) & m == 0
    }
}

/// A `ScanSpec` made ready to run.
pub struct ScanPlan {
    /// The spec as given.
    pub spec: ScanSpec,
    /// Target addresses.
    pub targets: TargetSet,
    /// Ports.
    pub ports: PortList,
    /// The walk of this shard.
    pub walk: Walk,
    /// Cookie function.
    pub cookies: Cookies,
    /// Timing.
    pub timing: PlanTiming,
    /// The uplink to watch while sending (`-sS`: set by the session from the
    /// route): the scan holds while it fails. `None`: not watched.
    pub uplink: Option<crate::uplink::Uplink>,
    answered: Option<Answered>,
    answered_in_shard: AtomicU64,
}

impl ScanPlan {
    /// Build from a spec. Host names are looked up in `spec.resolved` only (the cli
    /// resolves once before writing the spec), so a plan never touches DNS.
    pub fn new(spec: &ScanSpec) -> Result<ScanPlan, PlanError> {
        let mut lookup = |name: &str| -> Result<IpAddr, String> {
            spec.resolved
                .iter()
                .find(|h| h.name == name)
                .map(|h| h.addr.ip())
                .ok_or_else(|| "not resolved when the scan started".to_string())
        };
        let targets = TargetSet::build(&spec.targets, &spec.excludes, &mut lookup)?;
        let default = if spec.scan_type == ScanType::Udp {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let ports = PortList::parse(&spec.ports, default)?;
        Self::from_parts(spec.clone(), targets, ports)
    }

    /// Build from already parsed targets and ports.
    pub fn from_parts(
        spec: ScanSpec,
        targets: TargetSet,
        ports: PortList,
    ) -> Result<ScanPlan, PlanError> {
        if targets.is_empty() {
            return Err(PlanError::Spec(
                "no targets left to scan (after excludes)".into(),
            ));
        }
        if ports.is_empty() {
            return Err(PlanError::Spec("no ports to scan".into()));
        }
        if !targets.v6.is_empty() && !targets.v4.is_empty() && spec.scan_type.is_raw() {
            return Err(PlanError::Spec(format!(
                "{} IPv4 and {} IPv6 targets given: a {} scan sends one address family (one route, one source address); scan each family on its own (-6 keeps to IPv6), or use -sT for both at once",
                targets.v4.len(),
                targets.v6.len(),
                spec.scan_type.flag()
            )));
        }
        let range = targets
            .len()
            .checked_mul(ports.len() as u64)
            .filter(|r| *r < 1 << 62)
            .ok_or_else(|| {
                PlanError::Spec(format!(
                    "{} targets × {} ports is more probes than prtip's 2^62 index space",
                    targets.len(),
                    ports.len()
                ))
            })?;
        let timing = PlanTiming::of(&spec);
        let passes = timing.max_retries as u64 + 1;
        if range.checked_mul(passes).is_none_or(|t| t >= 1 << 63) {
            return Err(PlanError::Spec(
                "index space × (retries + 1) does not fit in 2^63; lower --max-retries".into(),
            ));
        }
        let walk = Walk::new(range, spec.seed, spec.shard_index, spec.shard_count, passes);
        let answered = (range <= ANSWERED_CAP).then(|| Answered::new(range));
        Ok(ScanPlan {
            cookies: Cookies::with_source_port(spec.seed, spec.probe.source_port),
            spec,
            targets,
            ports,
            walk,
            timing,
            uplink: None,
            answered,
            answered_in_shard: AtomicU64::new(0),
        })
    }

    /// Walk positions of this shard (targets × ports × passes).
    pub fn total_probes(&self) -> u64 {
        self.walk.len()
    }
    /// Number of target addresses.
    pub fn total_targets(&self) -> u64 {
        self.targets.len()
    }
    /// Whether duplicates are folded and silent ports reported (index space ≤ cap).
    pub fn has_answered_set(&self) -> bool {
        self.answered.is_some()
    }

    /// Index-space value of (address, protocol, port), if the scan covers it.
    #[inline]
    pub fn value_of(&self, addr: IpAddr, proto: Protocol, port: u16) -> Option<u64> {
        let t = self.targets.index_of(addr)?;
        let p = self.ports.index_of(proto, port)? as u64;
        Some(t + self.targets.len() * p)
    }

    /// (address, protocol, port) of an index-space value.
    #[inline]
    pub fn probe_of(&self, v: u64) -> (IpAddr, Protocol, u16) {
        let n = self.targets.len();
        let (proto, port) = self.ports.get((v / n) as usize);
        (
            self.targets
                .get(v % n)
                .expect("value within the index space"),
            proto,
            port,
        )
    }

    /// The probe sent at walk position `p`.
    #[inline]
    pub fn probe_at(&self, p: u64) -> (u64, Probe) {
        let (v, _) = self.walk.at(p);
        (v, self.probe_for(v))
    }

    /// The probe for index-space value `v`.
    #[inline]
    pub fn probe_for(&self, v: u64) -> Probe {
        let n = self.targets.len();
        let (proto, dport) = self.ports.get((v / n) as usize);
        let dst = if self.targets.v6.is_empty() {
            IpAddr::V4(self.targets.get_v4(v % n))
        } else {
            self.targets
                .get(v % n)
                .expect("value within the index space")
        };
        let c = self.cookies.cookie(dst, dport, proto);
        Probe {
            dst,
            dport,
            sport: c.sport,
            seq: c.seq,
            proto,
        }
    }

    /// Record that (address, protocol, port) already has a state (resume: replay the
    /// log's `Reply` events through this). Returns true if it was new to this shard.
    pub fn mark_answered(&self, addr: IpAddr, proto: Protocol, port: u16) -> bool {
        match (self.value_of(addr, proto, port), &self.answered) {
            (Some(v), Some(a)) if self.walk.position_of(v).is_some() => {
                let new = a.set(v);
                if new {
                    self.answered_in_shard.fetch_add(1, Relaxed);
                }
                new
            }
            _ => false,
        }
    }

    fn is_answered(&self, v: u64) -> bool {
        self.answered.as_ref().is_some_and(|a| a.get(v))
    }

    fn all_answered(&self) -> bool {
        self.answered.is_some() && self.answered_in_shard.load(Relaxed) >= self.walk.span()
    }
}

/// Live numbers a progress line or monitor can read while a scan runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Walk positions done (sent or skipped as answered).
    pub position: AtomicU64,
    /// Walk length.
    pub total: AtomicU64,
    /// Probes sent by this process.
    pub sent: AtomicU64,
    /// Valid replies.
    pub replies: AtomicU64,
    /// Open ports found.
    pub open: AtomicU64,
    /// Closed ports found.
    pub closed: AtomicU64,
    /// Service detection (`-sV`) after the port scan: ports to detect (0 until
    /// detection starts; then the progress line shows this phase).
    pub detect_total: AtomicU64,
    /// Service detection: ports done.
    pub detect_done: AtomicU64,
}

/// Switches the cli, signal handlers or a monitor flip while a scan runs.
#[derive(Debug, Default)]
pub struct ScanControl {
    stop: AtomicBool,
    hold: AtomicBool,
    abort: AtomicBool,
    reason: Mutex<String>,
    notes: Mutex<Vec<String>>,
    /// Live progress.
    pub progress: Progress,
}

impl ScanControl {
    /// New, running.
    pub fn new() -> ScanControl {
        ScanControl::default()
    }
    /// Leave a message for the operator (e.g. a host given up on by
    /// `--host-timeout`); whoever runs the scan prints [`ScanControl::take_notes`].
    pub fn note(&self, message: String) {
        self.notes.lock().unwrap().push(message);
    }
    /// The notes left so far, oldest first (taken: a second call returns the new ones).
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap())
    }
    /// Pause and return: stop sending, wait for late replies, write Checkpoint + Paused.
    pub fn request_pause(&self, reason: &str) {
        *self.reason.lock().unwrap() = reason.to_string();
        self.stop.store(true, SeqCst);
    }
    /// Pause in place (the process keeps running until [`ScanControl::release`]).
    pub fn hold(&self, reason: &str) {
        *self.reason.lock().unwrap() = reason.to_string();
        self.hold.store(true, SeqCst);
    }
    /// Continue after [`ScanControl::hold`].
    pub fn release(&self) {
        self.hold.store(false, SeqCst);
    }
    /// Stop at once: no wait, no more events (the log stays resumable).
    pub fn abort(&self) {
        self.abort.store(true, SeqCst);
        self.stop.store(true, SeqCst);
    }
    /// Whether a pause was requested.
    pub fn pause_requested(&self) -> bool {
        self.stop.load(SeqCst)
    }
    /// Whether held in place.
    pub fn is_held(&self) -> bool {
        self.hold.load(SeqCst)
    }
    /// Whether aborted.
    pub fn is_aborted(&self) -> bool {
        self.abort.load(SeqCst)
    }
    /// Why the scan was paused or held (`SIGINT`, `monitor`, ...).
    pub fn reason(&self) -> String {
        self.reason.lock().unwrap().clone()
    }
}

/// How a run starts and what it reports.
pub struct RunOptions<'a> {
    /// History id (goes into ScanStarted).
    pub scan_id: u64,
    /// Command line as typed.
    pub command_line: Vec<String>,
    /// `None`: a fresh scan (writes ScanStarted). `Some(i)`: resume at walk position `i`
    /// (writes Resumed).
    pub resume_from: Option<u64>,
    /// Counters restored from the last checkpoint when resuming.
    pub counters: Counters,
    /// Durable log bytes so far, for samples.
    pub log_bytes: Option<&'a (dyn Fn() -> u64 + Sync)>,
    /// Checkpoint spacing in ms (0: only by count; both 0: 1000 ms).
    pub checkpoint_every_ms: u64,
    /// Checkpoint spacing in probes (0: only by time).
    pub checkpoint_every_probes: u64,
    /// Sample spacing (default 1 s).
    pub sample_every: Duration,
    /// Resume: replays the log's decided ports (address, protocol, port, state) into
    /// the callback it is given. Runs on its own thread while the first probes go out
    /// (positions before the checkpoint are not probed again in the first pass); the
    /// engine waits for it before a retry pass, a pause, or the end. The open, closed
    /// and reply counters of the log are counted from it, not taken from `counters`.
    pub preload: Option<Preload<'a>>,
}

/// See [`RunOptions::preload`].
pub type Preload<'a> =
    Box<dyn FnOnce(&mut dyn FnMut(IpAddr, Protocol, u16, PortState)) + Send + 'a>;

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            scan_id: 0,
            command_line: Vec::new(),
            resume_from: None,
            counters: Counters::default(),
            log_bytes: None,
            checkpoint_every_ms: 1000,
            checkpoint_every_probes: 0,
            sample_every: Duration::from_secs(1),
            preload: None,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanOutcome {
    /// Walk complete, wait over, Finished written.
    Finished {
        /// Final counters.
        counters: Counters,
    },
    /// Paused on request: Checkpoint + Paused written.
    Paused {
        /// Where a resume continues.
        next_index: u64,
        /// Walk length.
        total: u64,
        /// Counters at the pause.
        counters: Counters,
    },
    /// Aborted at once: nothing more written; resume from the last checkpoint.
    Aborted,
}

/// Run `plan` to completion, pause or abort.
pub fn run(
    plan: &ScanPlan,
    io: BackendPair,
    sink: &mut dyn EventSink,
    control: &ScanControl,
    mut opts: RunOptions<'_>,
) -> Result<ScanOutcome, ScanError> {
    let start = Instant::now();
    let preload = opts.preload.take();
    let total = plan.walk.len();
    let from = opts.resume_from.unwrap_or(0).min(total);
    let counters = opts.counters;
    control.progress.total.store(total, Relaxed);
    control.progress.position.store(from, Relaxed);
    crate::lifecycle::push_start(plan, &opts, sink, total, from)?;
    // Make the first event durable at once: a scan killed right after starting is
    // still a resumable log (its checkpoint says: start at 0). A resumed log has its
    // checkpoints already; it goes straight to sending.
    if opts.resume_from.is_none() {
        sink.checkpoint(Checkpoint {
            next_index: from,
            counters,
            time_us: now_us(),
        })?;
    }
    let shared = shared::new(plan, from, preload.is_some());
    let (vtx, vrx) = crossbeam_channel::unbounded::<Msg>();
    let BackendPair { tx, rx, probes } = io;
    let probes = &probes;
    let opts = &opts;
    std::thread::scope(|s| {
        let shared = &shared;
        if let Some(f) = preload {
            std::thread::Builder::new()
                .name("prtip-preload".into())
                .spawn_scoped(s, move || shared::run_preload(plan, shared, f))
                .expect("spawn preload");
        }
        let rxh = std::thread::Builder::new()
            .name("prtip-rx".into())
            .spawn_scoped(s, move || {
                receiver::receiver(plan, rx, probes, shared, vtx, start)
            })
            .expect("spawn receiver");
        let txh = std::thread::Builder::new()
            .name("prtip-tx".into())
            .spawn_scoped(s, move || {
                sender::sender(plan, tx, control, shared, from, start)
            })
            .expect("spawn sender");
        if let Some(u) = &plan.uplink {
            shared.uplink_watched.store(true, SeqCst);
            std::thread::Builder::new()
                .name("prtip-uplink".into())
                .spawn_scoped(s, move || uplink::watch(u, shared, start))
                .expect("spawn uplink watch");
        }
        let events = events::EventThread::new(plan, probes, control, opts, shared, &vrx, counters)
            .started_at(start);
        let r = events.run(sink);
        shared.rx_stop.store(true, SeqCst);
        if r.is_err() {
            control.abort();
        }
        let tx_panicked = txh.join().is_err();
        let rx_panicked = rxh.join().is_err();
        match r {
            Ok(_) if tx_panicked || rx_panicked => {
                Err(ScanError::Backend(std::io::Error::other(format!(
                    "the {} thread panicked",
                    if tx_panicked { "sender" } else { "receiver" }
                ))))
            }
            r => r,
        }
    })
}

/// The frame parameters for probes leaving through `route` (TTL 64).
pub fn frame_params(route: &crate::route::Route) -> crate::backend::FrameParams {
    frame_params_with(route, &Default::default())
}

/// [`frame_params`] with the spec's per-probe settings: `--ttl` (IPv4 TTL and
/// IPv6 hop limit, 64 when not given).
pub fn frame_params_with(
    route: &crate::route::Route,
    settings: &prtip_store::event::ProbeSettings,
) -> crate::backend::FrameParams {
    crate::backend::FrameParams {
        src_mac: route.src_mac,
        dst_mac: route.dst_mac,
        src_ip: route.src_v4(),
        ttl: settings.ttl.unwrap_or(64),
    }
}

/// Open the AF_PACKET backend for `route` with the SYN template and UDP templates
/// whose payload `udp_payload(port)` gives (empty payload when `None`).
pub fn open_packet_backend(
    route: &crate::route::Route,
    udp_payload: &dyn Fn(u16) -> Option<Vec<u8>>,
    udp_ports: &[u16],
) -> std::io::Result<BackendPair> {
    open_packet_backend_prepared(
        route,
        probe_set(route, None, udp_payload, udp_ports, &Default::default()),
        None,
    )
}

/// Open the AF_PACKET backend on `route`'s interface for `probes` (see
/// [`probe_set`]), with the receiver's socket and ring made beforehand when `rx`
/// is given (see [`crate::backend::packet::PreparedRx`]: its set-up waits ~8 ms
/// for the kernel, which a caller can overlap with other work).
pub fn open_packet_backend_prepared(
    route: &crate::route::Route,
    probes: ProbeSet,
    rx: Option<crate::backend::packet::PreparedRx>,
) -> std::io::Result<BackendPair> {
    crate::backend::packet::open_pair_prepared(&route.iface, probes, rx)
}

/// The raw scan's probe modules for `route` (its source address's family): TCP
/// probed by `tcp` (`None`: SYN; see [`TcpFlagScan::of`] for a scan type's) and
/// UDP with the payloads `udp_payload` gives for `udp_ports` (empty otherwise).
/// See [`ProbeSet::raw`]. `settings` are the spec's per-probe settings: `--ttl`
/// in every template, `-g` as the one source port the reply filter lets in (the
/// plan's cookies put it in every probe).
///
/// [`TcpFlagScan::of`]: crate::probe::TcpFlagScan::of
pub fn probe_set(
    route: &crate::route::Route,
    tcp: Option<crate::probe::TcpFlagScan>,
    udp_payload: &dyn Fn(u16) -> Option<Vec<u8>>,
    udp_ports: &[u16],
    settings: &prtip_store::event::ProbeSettings,
) -> ProbeSet {
    ProbeSet::raw(
        &frame_params_with(route, settings),
        route.src_ip,
        tcp,
        udp_payload,
        udp_ports,
    )
    .with_source_port(settings.source_port)
}
